"""Outbound HTTP honours the enterprise egress settings (issue 19): HTTP_PROXY / HTTPS_PROXY,
NO_PROXY, and the CA bundle in SSL_CERT_FILE.

A tiny forwarding HTTP proxy (aiohttp) on loopback records what it carried. The real
SyncService signs in (MSAL through the product's httpx client) and reads Graph (the product's
shared httpx client, also the SCIM client's) at the tenant simulator; with HTTP_PROXY set both
go through the proxy, with NO_PROXY naming the host neither does. The Bot Framework SDK speaks
``requests``; ``serve`` points requests at SSL_CERT_FILE.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import fakeredis
import pytest
import requests
from aiohttp import web

from bot.adapter import requests_trust_ssl_cert_file
from sync.state.keys import Keys
from tests.component.real_rig import (
    ENTRA_SECRET,
    entra_user,
    make_service,
    serve_entra,
    write_world,
)

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@asynccontextmanager
async def forwarding_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP proxy for plain-http targets: it gets the absolute URL and forwards it."""
    seen: list[str] = []

    async def forward(request: web.BaseRequest) -> web.Response:
        target = f"http://{request.headers['Host']}{request.rel_url.path_qs}"
        seen.append(f"{request.method} {target}")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with (
            aiohttp.ClientSession(trust_env=False) as session,
            session.request(
                request.method, target, headers=headers, data=await request.read()
            ) as resp,
        ):
            body = await resp.read()
            kept = {"Content-Type": resp.headers.get("Content-Type", "application/json")}
            return web.Response(status=resp.status, body=body, headers=kept)

    server = web.Server(forward)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("CONTOSO_SECRET", ENTRA_SECRET)
    return monkeypatch


async def _sync_through(tmp_path: Path) -> list[str]:
    """One sync of a signed-in tenant; returns the run statuses."""
    async with serve_entra([entra_user("anna", "Anna", "Berg", "+46701234567")]) as entra:
        cfg = write_world(tmp_path, [], [])
        cfg["tenants"] = [entra.tenant_config()]
        svc = make_service(tmp_path, cfg, redis=fakeredis.FakeAsyncRedis(), keys=Keys("t:px:"))
        await svc.start(scheduler=False)
        try:
            runs = await svc.run_sync()
        finally:
            await svc.stop()
        assert entra.graph_requests >= 1
        return [r.status for r in runs]


async def test_sign_in_and_graph_requests_go_through_the_proxy_when_one_is_set(
    tmp_path: Path, no_proxy_env: pytest.MonkeyPatch
) -> None:
    async with forwarding_proxy() as (proxy, seen):
        no_proxy_env.setenv("HTTP_PROXY", proxy)
        no_proxy_env.setenv("HTTPS_PROXY", proxy)
        assert await _sync_through(tmp_path) == ["ok"]
    assert any("/oauth2/v2.0/token" in s for s in seen), seen  # the token request (MSAL)
    assert any("/v1.0/users" in s for s in seen), seen  # the Graph read


async def test_no_proxy_names_hosts_reached_directly(
    tmp_path: Path, no_proxy_env: pytest.MonkeyPatch
) -> None:
    async with forwarding_proxy() as (proxy, seen):
        no_proxy_env.setenv("HTTP_PROXY", proxy)
        no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        assert await _sync_through(tmp_path) == ["ok"]
    assert seen == []


def test_the_bot_frameworks_requests_use_the_ca_bundle_in_ssl_cert_file(
    tmp_path: Path, no_proxy_env: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    no_proxy_env.delenv("REQUESTS_CA_BUNDLE", raising=False)
    no_proxy_env.delenv("CURL_CA_BUNDLE", raising=False)
    no_proxy_env.setenv("SSL_CERT_FILE", str(bundle))
    requests_trust_ssl_cert_file(os.environ)
    settings = requests.Session().merge_environment_settings(
        "https://smba.trafficmanager.net/teams/", {}, None, None, None
    )
    assert settings["verify"] == str(bundle)
    # an explicit requests bundle wins
    no_proxy_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/other.pem")
    requests_trust_ssl_cert_file(os.environ)
    assert os.environ["REQUESTS_CA_BUNDLE"] == "/etc/ssl/other.pem"
