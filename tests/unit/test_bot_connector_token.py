"""The Bot Connector token: one credentials object per (app, scope, login endpoint), so the
token comes from MSAL's cache until it expires, and it is fetched in a worker thread, never on
the event loop (issue 19: each send used to fetch a new token synchronously)."""

from __future__ import annotations

import threading

from botframework.connector.auth import AppCredentials, ServiceClientCredentialsFactory

from bot.adapter import ReusedCredentialsFactory


class CountingCredentials(AppCredentials):  # type: ignore[misc]
    """Stands for MicrosoftAppCredentials: records which thread asked for a token."""

    def __init__(self) -> None:
        super().__init__(app_id="app-id")
        self.threads: list[int] = []

    def get_access_token(self, force_refresh: bool = False) -> str:
        self.threads.append(threading.get_ident())
        return "token"


class OneFactory(ServiceClientCredentialsFactory):  # type: ignore[misc]
    def __init__(self) -> None:
        self.created = 0

    async def is_valid_app_id(self, app_id: str) -> bool:
        return True

    async def is_authentication_disabled(self) -> bool:
        return False

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        self.created += 1
        return CountingCredentials()


async def test_credentials_are_made_once_and_the_token_is_fetched_off_the_event_loop() -> None:
    inner = OneFactory()
    factory = ReusedCredentialsFactory(inner)
    factory.sending = 1
    first = await factory.create_credentials("app-id", "scope", "https://login", True)
    second = await factory.create_credentials("app-id", "scope", "https://login", True)
    assert first is second and inner.created == 1
    assert isinstance(first, CountingCredentials)
    assert len(first.threads) == 2
    assert threading.get_ident() not in first.threads


async def test_an_incoming_turn_that_sends_nothing_fetches_no_token() -> None:
    factory = ReusedCredentialsFactory(OneFactory())
    creds = await factory.create_credentials("app-id", "scope", "https://login", True)
    assert isinstance(creds, CountingCredentials)
    assert creds.threads == []
