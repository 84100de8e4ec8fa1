"""MsalTokenProvider's error mapping, with MSAL's HTTP answered in-process (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from pydantic import SecretStr

from sync.config import TenantConfig
from sync.errors import AuthError, AuthUnavailable, ConfigError
from sync.graph.auth import HttpxMsalClient, MsalTokenProvider, _aadsts_from_text, _authority_base
from sync.graph.client import GraphClient
from sync.retry import RetryPolicy

SECRET = "super-secret-value-123"
OIDC_PATH = "/contoso/v2.0/.well-known/openid-configuration"
INSTANCE_METADATA = {
    "api-version": "1.1",
    "tenant_discovery_endpoint": "https://login.microsoftonline.com/contoso/v2.0/.well-known/openid-configuration",
    "metadata": [
        {
            "preferred_network": "login.microsoftonline.com",
            "preferred_cache": "login.windows.net",
            "aliases": ["login.microsoftonline.com", "login.windows.net", "sts.windows.net"],
        }
    ],
}


@dataclass
class Entra:
    """A scripted Entra login endpoint: discovery answers normally, the token endpoint as told."""

    token_answer: Callable[[httpx.Request], httpx.Response]
    token_requests: list[httpx.Request] = field(default_factory=list)
    discovery_answer: Callable[[httpx.Request], httpx.Response] | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/common/discovery/instance":
            return httpx.Response(200, json=INSTANCE_METADATA)
        if request.url.path == OIDC_PATH:
            if self.discovery_answer is not None:
                return self.discovery_answer(request)
            base = "https://login.microsoftonline.com/contoso"
            return httpx.Response(
                200,
                json={
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "issuer": f"{base}/v2.0",
                },
            )
        self.token_requests.append(request)
        return self.token_answer(request)

    def provider(self) -> MsalTokenProvider:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        return MsalTokenProvider("contoso", "app-id", SecretStr(SECRET), http=http)


def aadsts(
    status: int, error: str, code: int, text: str
) -> Callable[[httpx.Request], httpx.Response]:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            json={
                "error": error,
                "error_description": f"AADSTS{code}: {text}",
                "error_codes": [code],
            },
        )

    return answer


def issued(counter: list[int]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(_: httpx.Request) -> httpx.Response:
        counter.append(1)
        return httpx.Response(
            200,
            json={"token_type": "Bearer", "expires_in": 3599, "access_token": f"tok{len(counter)}"},
        )

    return answer


async def test_invalid_secret_maps_to_aadsts7000215_with_value_not_id_hint() -> None:
    entra = Entra(aadsts(401, "invalid_client", 7000215, "Invalid client secret provided."))
    with pytest.raises(AuthError) as info:
        await entra.provider().token()
    err = info.value
    assert err.code == "AADSTS7000215"
    assert "Value" in err.hint and "Secret ID" in err.hint
    assert not err.retryable


async def test_secret_never_appears_in_error_or_repr() -> None:
    entra = Entra(aadsts(401, "invalid_client", 7000215, "Invalid client secret provided."))
    provider = entra.provider()
    with pytest.raises(AuthError) as info:
        await provider.token()
    assert SECRET not in str(info.value)
    assert SECRET not in json.dumps(info.value.to_dict())
    assert SECRET not in repr(provider)


async def test_unknown_app_maps_to_aadsts700016() -> None:
    entra = Entra(aadsts(400, "unauthorized_client", 700016, "Application not found."))
    with pytest.raises(AuthError) as info:
        await entra.provider().token()
    assert info.value.aadsts == 700016
    assert "client id" in info.value.hint


async def test_unknown_tenant_in_discovery_maps_to_aadsts90002() -> None:
    entra = Entra(
        issued([]),
        discovery_answer=aadsts(400, "invalid_tenant", 90002, "Tenant 'contoso' not found."),
    )
    with pytest.raises(AuthError) as info:
        await entra.provider().token()
    assert info.value.code == "AADSTS90002"


async def test_unreachable_token_endpoint_raises_auth_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(AuthUnavailable) as info:
        await Entra(refuse).provider().token()
    assert info.value.retryable


async def test_token_endpoint_5xx_raises_auth_unavailable() -> None:
    with pytest.raises(AuthUnavailable):
        await Entra(lambda _: httpx.Response(503, text="busy")).provider().token()


async def test_token_is_cached_by_msal_and_refresh_gets_a_new_one() -> None:
    count: list[int] = []
    entra = Entra(issued(count))
    provider = entra.provider()
    first = await provider.token()
    again = await provider.token()
    fresh = await provider.refresh()
    assert (first, again, fresh) == ("tok1", "tok1", "tok2")
    assert len(entra.token_requests) == 2


async def test_token_request_asks_for_graph_default_scope_with_client_credentials() -> None:
    entra = Entra(issued([]))
    await entra.provider().token()
    form = dict(httpx.QueryParams(entra.token_requests[0].content.decode()))
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "https://graph.microsoft.com/.default"
    assert form["client_id"] == "app-id"


def test_http_authority_is_shown_to_msal_as_https_and_mapped_back() -> None:
    base, rewrite, official = _authority_base("http://127.0.0.1:8765")
    assert base == "https://127.0.0.1:8765"
    assert rewrite == ("https://127.0.0.1:8765", "http://127.0.0.1:8765")
    assert not official
    assert _authority_base("https://login.microsoftonline.com") == (
        "https://login.microsoftonline.com",
        None,
        True,
    )


def test_msal_http_client_rewrites_only_the_mapped_prefix() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, text="{}")

    client = HttpxMsalClient(
        httpx.Client(transport=httpx.MockTransport(record)),
        rewrite=("https://127.0.0.1:1", "http://127.0.0.1:1"),
    )
    client.get("https://127.0.0.1:1/t/v2.0/x", params={"a": "b"})
    resp = client.post("https://other.example/t", data={"k": "v"})
    client.close()
    assert seen == ["http://127.0.0.1:1/t/v2.0/x?a=b", "https://other.example/t"]
    assert resp.status_code == 200 and resp.text == "{}"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"error_codes": [7000222]}', 7000222),
        ("OIDC Discovery failed. Error: AADSTS900023: Specified tenant identifier", 900023),
        ("no code at all", None),
    ],
)
def test_aadsts_number_is_found_in_error_text(text: str, code: int | None) -> None:
    assert _aadsts_from_text(text) == code


def test_retry_policy_backs_off_exponentially_and_caps_retry_after() -> None:
    policy = RetryPolicy(max_retries=6, base_delay=1.0, max_delay=20.0, max_retry_after=120.0)
    assert [policy.delay(n, None) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0]
    assert policy.delay(0, 5.0) == 5.0
    assert policy.delay(3, 9999.0) == 120.0


def test_select_param_adds_id_and_account_enabled_once() -> None:
    assert GraphClient.select_param(["mail", "id", "mail", "employeeOrgData.division"]) == (
        "mail,id,employeeOrgData,accountEnabled"
    )


def test_for_tenant_uses_the_configured_ids_and_authority_host() -> None:
    tenant = TenantConfig(
        name="contoso", tenant_id="tid", client_id="cid", authority_host="http://127.0.0.1:9"
    )
    provider = MsalTokenProvider.for_tenant(tenant, SecretStr(SECRET))
    provider.close()
    assert provider.authority == "https://127.0.0.1:9/tid"
    assert provider.client_id == "cid"


def test_for_tenant_refuses_a_tenant_without_ids() -> None:
    with pytest.raises(ConfigError):
        MsalTokenProvider.for_tenant(TenantConfig(name="sim", simulate="t.json"), SecretStr("x"))
