"""Bot Framework JWT validation on ``/api/messages`` outside local mode (issue 6, Authentication).

The real route, the real SDK validator (botframework-connector 4.17.1) and the real sync
service on the real Redis. Tokens are signed with a local RSA key. The SDK's channel metadata
(``ChannelValidation.open_id_metadata_endpoint``) points at an OpenID server on loopback that
runs in its own thread (the SDK fetches it with blocking ``requests`` from the event loop); the
emulator metadata is pre-seeded in ``JwtTokenExtractor.metadataCache`` (no network).

Valid -> handled (200 and the invoke's card); anything else -> 401, never 500, and the turn
never runs (nothing is stored, nothing is decided).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis.asyncio as aioredis
from botframework.connector.auth import (
    AuthenticationConstants,
    ChannelValidation,
    JwtTokenExtractor,
)
from botframework.connector.auth.jwt_token_extractor import _OpenIdMetadata
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr

from sync.config import EnvSettings
from sync.models import ProposalState
from sync.service.service import SyncService
from sync.state.keys import Keys
from tests.component.real_rig import (
    ADMIN,
    Rig,
    every_kind_world,
    make_service,
    real_bot,
    write_world,
)
from tests.component.test_bot_flow import executes

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("no_tracebacks")]

APP_ID = "3f1c0d6e-0000-4000-8000-00000000b07a"
KID = "test-key-1"
TEAMS_TENANT = "7c9a1f3e-0000-4000-8000-00000000feed"  # the organisation the bot serves
LOOPBACK = "http://127.0.0.1"  # the fake Bot Connector's origin (any port)
BF_ISSUER = AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER  # https://api.botframework.com
EMULATOR_ISSUER = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"


# --- keys and the OpenID metadata server -------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey
    jwk: dict[str, Any]


def _keypair(kid: str) -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "use": "sig", "endorsements": ["msteams"]})
    return KeyPair(private, jwk)


@pytest.fixture(scope="module")
def trusted() -> KeyPair:
    """The key the (simulated) Bot Framework signs with; published by the metadata server."""
    return _keypair(KID)


@pytest.fixture(scope="module")
def attacker() -> KeyPair:
    """Another key with the same kid: what a forger would sign with."""
    return _keypair(KID)


@pytest.fixture(scope="module")
def webchat_only() -> KeyPair:
    """A published Bot Framework key endorsed for another channel only (not msteams)."""
    pair = _keypair("webchat-key")
    pair.jwk["endorsements"] = ["webchat"]
    return pair


@dataclass
class MetadataServer:
    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def metadata(
    trusted: KeyPair, webchat_only: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MetadataServer]:
    """OpenID metadata + JWKS on loopback, in a thread; the SDK is pointed at it, with an empty
    key cache; the emulator's metadata is pre-seeded with the same trusted key set."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            base = f"http://127.0.0.1:{port}"
            if self.path == "/v1/.well-known/openidconfiguration":
                body: dict[str, Any] = {
                    "issuer": BF_ISSUER,
                    "jwks_uri": f"{base}/v1/keys",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            elif self.path == "/v1/keys":
                body = {"keys": [trusted.jwk, webchat_only.jwk]}
            else:
                self.send_error(404)
                return
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = int(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="openid-metadata", daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{port}/v1/.well-known/openidconfiguration"
    cache: dict[str, Any] = {}
    emulator = _OpenIdMetadata(AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL)
    emulator.keys = [trusted.jwk]
    emulator.last_updated = datetime.now()
    cache[emulator.url] = emulator
    monkeypatch.setattr(ChannelValidation, "open_id_metadata_endpoint", url)
    monkeypatch.setattr(JwtTokenExtractor, "metadataCache", cache)
    try:
        yield MetadataServer(url=url, hits=hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the app outside local mode -------------------------------------------------------------


@pytest.fixture
async def service(
    real_redis: aioredis.Redis, keys: Keys, tmp_path: Path
) -> AsyncIterator[SyncService]:
    tenant, directory = every_kind_world()
    svc = make_service(
        tmp_path,
        write_world(
            tmp_path,
            tenant,
            directory,
            bot={"admins": [ADMIN], "tenants": [TEAMS_TENANT], "service_url_allow": [LOOPBACK]},
        ),
        redis=real_redis,
        keys=keys,
        env=_env(),
    )
    await svc.start(scheduler=False)
    yield svc
    await svc.stop()


def _env() -> EnvSettings:
    return EnvSettings(
        MICROSOFT_APP_ID=APP_ID,
        MICROSOFT_APP_PASSWORD=SecretStr("bot-password-not-used-offline"),
        REDIS_URL=None,
    )


@pytest.fixture
async def rig(
    aiohttp_client: Any, service: SyncService, metadata: MetadataServer
) -> AsyncIterator[Rig]:
    async with real_bot(aiohttp_client, service, env=_env()) as r:
        yield r


def sign(key: KeyPair, service_url: str, **claims: Any) -> str:
    """A Bot Framework channel token (what Teams' connector sends) unless ``claims`` override;
    a claim given as None is left out."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": BF_ISSUER,
        "aud": APP_ID,
        "exp": now + 3600,
        "nbf": now - 60,
        "serviceurl": service_url,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key.private, algorithm="RS256", headers={"kid": KID})


def refresh_invoke(service_url: str, pid: str = "not-a-proposal") -> dict[str, Any]:
    """A read-only card action; its answer is the card itself (no outbound call needed)."""
    return {
        "type": "invoke",
        "name": "adaptiveCard/action",
        "id": "in-1",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": "29:admin", "aadObjectId": ADMIN, "name": "Ann Admin"},
        "recipient": {"id": f"28:{APP_ID}", "name": "Entra Sync"},
        "conversation": {
            "id": "19:auth@thread.tacv2",
            "conversationType": "channel",
            "tenantId": TEAMS_TENANT,
        },
        "value": {"action": {"type": "Action.Execute", "verb": "refresh", "data": {"pid": pid}}},
    }


async def post(rig: Rig, body: dict[str, Any], auth: str | None) -> tuple[int, Any]:
    headers = {"Authorization": auth} if auth is not None else {}
    resp = await rig.client.post("/api/messages", json=body, headers=headers)
    text = await resp.text()
    return resp.status, (json.loads(text) if text else None)


async def conversations(service: SyncService) -> dict[Any, Any]:
    stored: dict[Any, Any] = await service.redis.hgetall(service.keys.conversations())  # type: ignore[misc]
    return stored


# --- valid -------------------------------------------------------------------------------------


async def test_a_valid_channel_token_is_handled_with_the_invokes_card(
    rig: Rig, metadata: MetadataServer, trusted: KeyPair
) -> None:
    status, body = await post(
        rig, refresh_invoke(rig.fc.url), f"Bearer {sign(trusted, rig.fc.url)}"
    )
    assert status == 200
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    assert body["value"]["type"] == "AdaptiveCard"
    # the turn ran: the conversation reference was stored, and the keys came from our server
    assert b"19:auth@thread.tacv2" in await conversations(rig.service)  # type: ignore[arg-type]
    assert "/v1/keys" in metadata.hits


async def test_a_valid_token_lets_an_admin_accept_a_proposal(
    rig: Rig, service: SyncService, trusted: KeyPair
) -> None:
    await service.run_sync()
    item = next(i for i in await service.pending() if i.proposal.kind.value == "match")
    body = refresh_invoke(rig.fc.url)
    body["value"]["action"] = {
        "type": "Action.Execute",
        "verb": "accept",
        "data": {"pid": item.id, "d": item.digest},
    }
    status, reply = await post(rig, body, f"Bearer {sign(trusted, rig.fc.url)}")
    assert status == 200
    assert not [a for a in executes(reply["value"]) if a["verb"] == "accept"]
    after = await service.item(item.id)
    assert after is not None and after.state is ProposalState.APPLIED


# --- invalid -> 401, never 500 ---------------------------------------------------------------

BadToken = Callable[[KeyPair, KeyPair, str], str | None]

BAD_TOKENS: dict[str, BadToken] = {
    "missing": lambda t, a, su: None,
    "empty_bearer": lambda t, a, su: "Bearer ",
    "basic_scheme": lambda t, a, su: "Basic dXNlcjpwYXNz",
    "not_a_jwt": lambda t, a, su: "Bearer not.a.jwt",
    "expired": lambda t, a, su: (
        "Bearer " + sign(t, su, exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200)
    ),
    "not_yet_valid": lambda t, a, su: "Bearer " + sign(t, su, nbf=int(time.time()) + 3600),
    "wrong_audience": lambda t, a, su: "Bearer " + sign(t, su, aud="another-bots-app-id"),
    "no_audience": lambda t, a, su: "Bearer " + sign(t, su, aud=None),
    "wrong_issuer": lambda t, a, su: "Bearer " + sign(t, su, iss="https://evil.example"),
    "no_issuer": lambda t, a, su: "Bearer " + sign(t, su, iss=None),
    "bad_signature": lambda t, a, su: "Bearer " + sign(a, su),
    "tampered_payload": lambda t, a, su: "Bearer " + _tamper(sign(t, su), aud=APP_ID + "x"),
    "unknown_key_id": lambda t, a, su: (
        "Bearer "
        + jwt.encode(
            {"iss": BF_ISSUER, "aud": APP_ID, "exp": int(time.time()) + 600, "serviceurl": su},
            t.private,
            algorithm="RS256",
            headers={"kid": "no-such-key"},
        )
    ),
    "unsigned_alg_none": lambda t, a, su: (
        "Bearer "
        + _unsigned(
            {"iss": BF_ISSUER, "aud": APP_ID, "exp": int(time.time()) + 600, "serviceurl": su}
        )
    ),
    "hs256_with_public_key_as_secret": lambda t, a, su: (
        "Bearer "
        + _hs256({"iss": BF_ISSUER, "aud": APP_ID, "exp": int(time.time()) + 600, "serviceurl": su})
    ),
    "service_url_mismatch": lambda t, a, su: "Bearer " + sign(t, "https://smba.attacker.example/"),
    "emulator_issuer_forged_signature": lambda t, a, su: (
        "Bearer " + sign(a, su, iss=EMULATOR_ISSUER, appid=APP_ID, ver="1.0")
    ),
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _tamper(token: str, **claims: Any) -> str:
    """Swap the payload of a signed token for another one, keeping header and signature."""
    header, _payload, sig = token.split(".")
    body = jwt.decode(token, options={"verify_signature": False})
    body.update(claims)
    return f"{header}.{_b64(json.dumps(body).encode())}.{sig}"


def _unsigned(claims: dict[str, Any]) -> str:
    """``alg: none`` with an empty signature."""
    head = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": KID}).encode())
    return f"{head}.{_b64(json.dumps(claims).encode())}."


def _hs256(claims: dict[str, Any]) -> str:
    """An HS256 token whose 'secret' is a public value (the classic algorithm-confusion
    forgery). PyJWT refuses short HMAC keys in strict mode, so the MAC is built by hand."""
    b64 = _b64
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(b"public-key-bytes", f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_a_bad_token_is_refused_with_401_and_the_turn_never_runs(
    rig: Rig, trusted: KeyPair, attacker: KeyPair, case: str
) -> None:
    auth = BAD_TOKENS[case](trusted, attacker, rig.fc.url)
    before = await conversations(rig.service)  # type: ignore[arg-type]
    status, body = await post(rig, refresh_invoke(rig.fc.url), auth)
    assert status == 401, body
    assert body == {"error": "unauthorized"}
    assert await conversations(rig.service) == before  # type: ignore[arg-type]


async def test_a_forged_accept_with_a_bad_signature_changes_nothing(
    rig: Rig, service: SyncService, attacker: KeyPair
) -> None:
    await service.run_sync()
    item = next(i for i in await service.pending() if i.proposal.kind.value == "match")
    body = refresh_invoke(rig.fc.url)
    body["value"]["action"] = {
        "type": "Action.Execute",
        "verb": "accept",
        "data": {"pid": item.id, "d": item.digest},
    }
    status, _ = await post(rig, body, f"Bearer {sign(attacker, rig.fc.url)}")
    assert status == 401
    after = await service.item(item.id)
    assert after is not None and after.state is ProposalState.PENDING
    assert [e for e in await service.audit(50) if e.actor_id == ADMIN] == []


async def test_a_message_with_a_forged_token_is_refused_with_401(
    rig: Rig, attacker: KeyPair
) -> None:
    body = refresh_invoke(rig.fc.url)
    body.update(type="message", text="sync now")
    body.pop("value")
    status, _ = await post(rig, body, f"Bearer {sign(attacker, rig.fc.url)}")
    assert status == 401
    assert rig.fc.posts == []


async def test_an_unreachable_metadata_endpoint_is_a_401_not_a_500(
    rig: Rig, trusted: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1/.well-known/openidconfiguration"
    monkeypatch.setattr(ChannelValidation, "open_id_metadata_endpoint", dead)
    monkeypatch.setattr(JwtTokenExtractor, "metadataCache", {})
    status, _ = await post(rig, refresh_invoke(rig.fc.url), f"Bearer {sign(trusted, rig.fc.url)}")
    assert status == 401


async def test_a_token_signed_with_a_key_not_endorsed_for_teams_is_refused(
    rig: Rig, webchat_only: KeyPair
) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"iss": BF_ISSUER, "aud": APP_ID, "exp": now + 600, "serviceurl": rig.fc.url},
        webchat_only.private,
        algorithm="RS256",
        headers={"kid": "webchat-key"},
    )
    status, _ = await post(rig, refresh_invoke(rig.fc.url), f"Bearer {token}")
    assert status == 401


# --- tenant pinning, channel and serviceUrl (issue 19) ------------------------------------------

STRANGER_TENANT = "0bad0bad-0000-4000-8000-00000000beef"


def teams_activity(kind: str, service_url: str, tenant: str, **kw: Any) -> dict[str, Any]:
    """A Teams activity in a team channel of ``tenant`` (both places Teams names the tenant)."""
    return {
        "type": kind,
        "id": "in-2",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": "29:admin", "aadObjectId": ADMIN, "name": "Ann Admin"},
        "recipient": {"id": f"28:{APP_ID}", "name": "Entra Sync"},
        "conversation": {
            "id": f"19:{tenant[:8]}@thread.tacv2",
            "conversationType": "channel",
            "tenantId": tenant,
        },
        "channelData": {"team": {"id": f"19:{tenant[:8]}-team"}, "tenant": {"id": tenant}},
        **kw,
    }


async def test_a_strangers_tenant_installing_the_bot_sets_nothing(
    rig: Rig, service: SyncService, trusted: KeyPair
) -> None:
    auth = f"Bearer {sign(trusted, rig.fc.url)}"
    install = teams_activity("installationUpdate", rig.fc.url, STRANGER_TENANT, action="add")
    status, _ = await post(rig, install, auth)
    assert status == 200
    assert await conversations(service) == {}
    assert await service.conversations.notify_channel() is None
    # our organisation installing afterwards is served and becomes the notification channel
    ours = teams_activity("installationUpdate", rig.fc.url, TEAMS_TENANT, action="add")
    status, _ = await post(rig, ours, auth)
    assert status == 200
    assert await service.conversations.notify_channel() == ours["conversation"]["id"]


async def test_a_strangers_tenant_cannot_accept_a_proposal_even_with_an_admins_id(
    rig: Rig, service: SyncService, trusted: KeyPair
) -> None:
    await service.run_sync()
    item = next(i for i in await service.pending() if i.proposal.kind.value == "match")
    action = {
        "type": "Action.Execute",
        "verb": "accept",
        "data": {"pid": item.id, "d": item.digest},
    }
    body = teams_activity(
        "invoke",
        rig.fc.url,
        STRANGER_TENANT,
        name="adaptiveCard/action",
        value={"action": action},
    )
    status, reply = await post(rig, body, f"Bearer {sign(trusted, rig.fc.url)}")
    assert status == 200
    assert "does not serve" in json.dumps(reply)
    after = await service.item(item.id)
    assert after is not None and after.state is ProposalState.PENDING
    assert await conversations(service) == {}


async def test_an_activity_naming_a_second_foreign_tenant_is_refused(
    rig: Rig, service: SyncService, trusted: KeyPair
) -> None:
    body = teams_activity("message", rig.fc.url, TEAMS_TENANT, text="status")
    body["channelData"]["tenant"]["id"] = STRANGER_TENANT
    status, _ = await post(rig, body, f"Bearer {sign(trusted, rig.fc.url)}")
    assert status == 200
    assert await conversations(service) == {}
    assert rig.fc.posts == []


async def test_an_activity_whose_service_url_is_not_allowed_touches_nothing(
    rig: Rig, service: SyncService, trusted: KeyPair
) -> None:
    evil = "https://collector.attacker.example/teams/"
    body = teams_activity("installationUpdate", evil, TEAMS_TENANT, action="add")
    status, _ = await post(rig, body, f"Bearer {sign(trusted, evil)}")
    assert status == 200
    assert await conversations(service) == {}
    assert await service.conversations.notify_channel() is None


async def test_the_bot_refuses_to_serve_when_no_tenant_is_pinned(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    from bot.app import AppParts, create_app
    from sync.errors import ConfigError

    tenant, directory = every_kind_world()
    svc = make_service(
        tmp_path, write_world(tmp_path, tenant, directory), redis=real_redis, keys=keys, env=_env()
    )
    with pytest.raises(ConfigError, match="no Teams tenant is pinned"):
        create_app(env=_env(), service=svc, parts=AppParts(clock=datetime.now, sleep=_no_sleep))


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_a_channel_other_than_msteams_is_refused_even_with_a_valid_token(
    rig: Rig, service: SyncService, webchat_only: KeyPair
) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"iss": BF_ISSUER, "aud": APP_ID, "exp": now + 600, "serviceurl": rig.fc.url},
        webchat_only.private,
        algorithm="RS256",
        headers={"kid": "webchat-key"},
    )
    body = teams_activity("installationUpdate", rig.fc.url, TEAMS_TENANT, action="add")
    body["channelId"] = "webchat"
    status, _ = await post(rig, body, f"Bearer {token}")
    assert status in (200, 401)
    assert await conversations(service) == {}
    assert await service.conversations.notify_channel() is None


# --- sovereign clouds: the Bot Framework's own setting names, from the environment --------------


async def test_the_channel_openid_metadata_url_is_read_from_the_environment(
    aiohttp_client: Any,
    service: SyncService,
    metadata: MetadataServer,
    trusted: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the SDK's built-in public-cloud metadata unreachable, the keys are fetched from the
    URL named by TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL (as a US Gov or China bot would)."""
    from bot.adapter import ChannelSettings
    from bot.app import AppParts, create_app
    from tests.component.fake_connector import FakeConnector

    monkeypatch.setattr(ChannelValidation, "open_id_metadata_endpoint", "http://127.0.0.1:9/x")
    monkeypatch.setattr(JwtTokenExtractor, "metadataCache", {})
    monkeypatch.setenv("TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL", metadata.url)
    monkeypatch.setenv("TO_BOT_FROM_CHANNEL_TOKEN_ISSUER", BF_ISSUER)
    parts = AppParts(clock=datetime.now, sleep=_no_sleep, channel=ChannelSettings())
    async with FakeConnector.serve() as fc:
        app = create_app(env=_env(), service=service, parts=parts, manage_service=False)
        client = await aiohttp_client(app)
        body = teams_activity("installationUpdate", fc.url, TEAMS_TENANT, action="add")
        resp = await client.post(
            "/api/messages", json=body, headers={"Authorization": f"Bearer {sign(trusted, fc.url)}"}
        )
        assert resp.status == 200
    assert "/v1/keys" in metadata.hits
    assert await service.conversations.notify_channel() == body["conversation"]["id"]
