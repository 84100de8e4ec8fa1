"""HTTPS through the recipe (issue 16): the real Caddy (Debian's package, installed by
``make test``) runs ``deploy/Caddyfile`` with its internal CA (``tls internal``) on a free
loopback port in front of the bot (outside local mode, the real SDK validating the Bot
Framework JWT, the real service on the real Redis). A signed activity sent over HTTPS,
trusting only Caddy's root certificate, is answered by the bot.

Caddy's admin API is off, its data and config live in the test's tmp dir (HOME, XDG_*), and
``skip_install_trust`` keeps its CA out of the system trust store. Fixtures and the token
signer are those of the authentication tests (``test_security_auth``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.component.real_rig import Rig
from tests.integration import test_security_auth as auth
from tests.integration.test_security_auth import KeyPair, conversations, refresh_invoke, sign

# the authentication tests' fixtures: the OpenID metadata server and keys, the real service
# outside local mode, and the bot app over it with a fake Bot Connector
metadata, trusted, webchat_only = auth.metadata, auth.trusted, auth.webchat_only
service, rig = auth.service, auth.rig

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("metadata")]

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Caddy:
    url: str
    tls: ssl.SSLContext
    log: Path


@pytest.fixture
async def caddy(rig: Rig, tmp_path: Path) -> AsyncIterator[Caddy]:
    """``caddy run`` on deploy/Caddyfile in front of the rig's bot; yields once Caddy serves
    HTTPS with a certificate from its own CA."""
    binary = shutil.which("caddy")
    if binary is None:
        pytest.fail(
            "caddy is not installed: `make test` installs it (tests/integration/install-tools.sh)"
        )
    home = tmp_path / "caddy-home"
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "ENTRA_SYNC_SITE": f"https://127.0.0.1:{port}",
        "ENTRA_SYNC_TLS": "tls internal",
        "ENTRA_SYNC_UPSTREAM": f"127.0.0.1:{rig.client.server.port}",
        "ENTRA_SYNC_CADDY_ADMIN": "off",
        "ENTRA_SYNC_HTTP_PORT": str(free_port()),
        "ENTRA_SYNC_CADDY_OPTIONS": "default_bind 127.0.0.1",
    }
    log = tmp_path / "caddy.log"
    proc = subprocess.Popen(
        [binary, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    root = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    url = f"https://127.0.0.1:{port}"
    try:
        tls = await _until_serving(proc, root, url, log)
        yield Caddy(url, tls, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


async def _until_serving(
    proc: subprocess.Popen[bytes], root: Path, url: str, log: Path
) -> ssl.SSLContext:
    """Caddy's root certificate, once Caddy answers HTTPS with a certificate it verifies."""
    for _ in range(300):  # Caddy starts and issues its certificate in about a second; allow 30
        if proc.poll() is not None:
            pytest.fail(f"caddy exited: {log.read_text()[-3000:]}")
        if root.exists():
            tls = ssl.create_default_context(cafile=str(root))
            try:
                async with aiohttp.ClientSession() as http, http.get(url + "/", ssl=tls) as resp:
                    if resp.status == 404:
                        return tls
            except (aiohttp.ClientError, ssl.SSLError, OSError):
                pass
        await asyncio.sleep(0.1)
    pytest.fail(f"caddy did not serve HTTPS: {log.read_text()[-3000:]}")


async def post(caddy: Caddy, path: str, body: Any, auth: str | None) -> tuple[int, Any]:
    headers = {"Authorization": auth} if auth else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(caddy.url + path, json=body, headers=headers, ssl=caddy.tls) as resp:
            text = await resp.text()
            is_json = resp.content_type == "application/json"
            return resp.status, (await resp.json() if is_json else text)


async def test_a_signed_activity_over_https_through_caddy_is_answered_by_the_bot(
    caddy: Caddy, rig: Rig, trusted: KeyPair
) -> None:
    token = sign(trusted, rig.fc.url)
    status, body = await post(caddy, "/api/messages", refresh_invoke(rig.fc.url), f"Bearer {token}")
    assert status == 200
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    assert b"19:auth@thread.tacv2" in await conversations(rig.service)  # type: ignore[operator]
    # Caddy logged the request, without the bearer token (log_credentials is off by default)
    logged = caddy.log.read_text()
    assert '"uri":"/api/messages"' in logged
    assert token not in logged


async def test_through_caddy_an_unsigned_activity_is_still_refused(caddy: Caddy, rig: Rig) -> None:
    status, body = await post(caddy, "/api/messages", refresh_invoke(rig.fc.url), None)
    assert (status, body) == (401, {"error": "unauthorized"})


async def test_caddy_passes_on_the_messaging_endpoint_only(caddy: Caddy) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/metrics", "/readyz", "/healthz", "/"):
            async with http.get(caddy.url + path, ssl=caddy.tls) as resp:
                assert resp.status == 404, path


async def test_caddy_serves_a_certificate_that_only_its_own_root_vouches_for(
    caddy: Caddy,
) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(caddy.url + "/", ssl=ssl.create_default_context()):
                pass
