"""A real SCIM 2.0 server for the tests: scim2-server's WSGI application on 127.0.0.1 with an
ephemeral port, in a background thread, with the RFC 7643 schemas and the User/Group
resource types, an in-memory storage, and a static bearer token.

``running_scim_server(features=...)`` chooses what /ServiceProviderConfig announces (and so
what the server accepts: it answers 501 to PATCH or a filter it does not announce), which is
how the adapter's fallbacks are tested against a real server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from scim2_models import (
    ETag,
    Filter,
    Pagination,
    Patch,
    ScimProvider,
    ServiceProviderConfig,
)
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.testserver.cli import ThreadingWSGIServer
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

TOKEN = "test-scim-token"


@dataclass(frozen=True)
class ScimServer:
    base_url: str  # ends in /v2
    token: str
    storage: InMemoryStorage


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def running_scim_server(
    *,
    patch: bool = True,
    etag: bool = True,
    filter: bool = True,
    max_page_size: int = 50,
    token: str = TOKEN,
) -> Iterator[ScimServer]:
    config: ServiceProviderConfig = load_default_service_provider_config()
    config.patch = Patch(supported=patch)
    config.etag = ETag(supported=etag)
    config.filter = Filter(supported=filter, max_results=1000 if filter else None)
    config.pagination = Pagination(
        index=True, default_page_size=max_page_size, max_page_size=max_page_size
    )
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    storage = InMemoryStorage()
    app = BearerTokenApplication(
        storage, provider, service=ScimService(provider), bearer_tokens=[token]
    )
    server = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="scim-server", daemon=True
    )
    thread.start()
    try:
        yield ScimServer(f"http://127.0.0.1:{server.server_port}/v2", token, storage)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def scim_server() -> Iterator[ScimServer]:
    """Every feature announced: PATCH, ETag, filter; pages of at most 50."""
    with running_scim_server() as s:
        yield s


@pytest.fixture
def scim_server_minimal() -> Iterator[ScimServer]:
    """No PATCH, no ETag, no filter (the server answers 501 to them); pages of at most 50."""
    with running_scim_server(patch=False, etag=False, filter=False) as s:
        yield s
