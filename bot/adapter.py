"""The seam to the Bot Framework SDK: the ONLY module that imports ``botbuilder``.

Everything above it speaks plain dicts (Bot Framework activity JSON) and conversation
references (dicts in the ``ConversationReference`` wire shape). Swapping to the Microsoft 365
Agents SDK means rewriting this file only.

Routes around the SDK's bugs (platform notes): we never call ``CloudAdapter.process()`` (it
double-serializes invoke bodies); we call ``process_activity`` ourselves and hand the invoke
body back untouched. Authentication failures (``PermissionError``, PyJWT errors) become
``BotAuthError`` (the route answers 401). Connector failures become ``ConnectorError`` with the
HTTP status and ``Retry-After`` so the poster can back off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import Activity, ConversationReference
from botframework.connector.auth import (
    AppCredentials,
    PasswordServiceClientCredentialFactory,
    ServiceClientCredentialsFactory,
)
from msrest.universal_http.requests import ClientRetryPolicy
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.service_urls import ServiceUrlPolicy
from sync.errors import SyncError
from sync.retry import parse_retry_after, utc_now

log = logging.getLogger(__name__)

# The turn logic: gets the incoming activity (the dict as received), returns the invoke body
# (for ``invoke`` activities) or None.
TurnLogic = Callable[[dict[str, Any]], Awaitable["InvokeReply | None"]]

RETRYABLE_STATUSES = frozenset({412, 429, 502, 504})


@dataclass(frozen=True, slots=True)
class InvokeReply:
    status: int
    body: dict[str, Any] | None


class BotAuthError(SyncError):
    """The request's Bot Framework JWT is missing, expired or invalid (HTTP 401)."""

    code = "bot_auth_failed"
    default_hint = "The request was not signed by the Bot Framework."


class ConnectorError(SyncError):
    """The Bot Connector (Teams) refused or failed a send/update."""

    code = "teams_send_failed"

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in RETRYABLE_STATUSES or self.status == 0


def _retry_after(headers: Any) -> float | None:
    try:
        raw = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    return parse_retry_after(None if raw is None else str(raw), utc_now())


def connector_error(exc: BaseException) -> ConnectorError:
    """Turn whatever the connector client raised into a ConnectorError (status 0: no answer)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None) or 0
    headers = getattr(response, "headers", None)
    try:
        status = int(status)
    except (TypeError, ValueError):
        status = 0
    return ConnectorError(
        f"Bot Connector answered {status or 'nothing'} ({type(exc).__name__})",
        status=status,
        retry_after=_retry_after(headers),
    )


class ChannelSettings(BaseSettings):
    """The Bot Framework's cloud settings, from the environment under the SDK's own names
    (``ParameterizedBotFrameworkAuthentication``): unset = the public cloud. US Gov: set
    ``CHANNEL_SERVICE=https://botframework.azure.us``; China or a private cloud: the four URLs."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=True)

    CHANNEL_SERVICE: str | None = None
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str | None = None
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str | None = None
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str | None = None


def requests_trust_ssl_cert_file(environ: MutableMapping[str, str]) -> None:
    """The Bot Framework SDK (connector client, channel keys, its MSAL) talks HTTP through
    ``requests``, which honours HTTPS_PROXY / NO_PROXY but takes its CA bundle from
    REQUESTS_CA_BUNDLE, not SSL_CERT_FILE: when only SSL_CERT_FILE is set, use it there too."""
    cert = environ.get("SSL_CERT_FILE")
    if cert and not environ.get("REQUESTS_CA_BUNDLE") and not environ.get("CURL_CA_BUNDLE"):
        environ["REQUESTS_CA_BUNDLE"] = cert


def quick_msrest_retry_codes() -> None:
    """msrest 0.7.1 (under botbuilder's connector clients) builds its retry status list as
    ``[i for i in range(999) if i not in safe_codes]`` with ``safe_codes`` a 500-entry list:
    3.7 ms of CPU for each client, and botbuilder's CloudAdapter builds two clients for every
    activity it handles — 7 of the 13 ms an invoke took, all on the event loop. The same
    codes as a frozenset give the same list in microseconds. Idempotent."""
    ClientRetryPolicy.safe_codes = frozenset(ClientRetryPolicy.safe_codes)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class _Configuration:
    """What ConfigurationBotFrameworkAuthentication reads (attribute names are the SDK's)."""

    APP_ID: str = ""
    APP_PASSWORD: str = ""
    APP_TYPE: str = "MultiTenant"
    APP_TENANTID: str = ""
    CHANNEL_SERVICE: str | None = None
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str | None = None
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str | None = None
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str | None = None


class ReusedCredentialsFactory(ServiceClientCredentialsFactory):  # type: ignore[misc]
    """The SDK makes new credentials (and a new MSAL app, so a new token request, on the event
    loop) for every proactive send. This keeps one credentials object per (app, scope, login
    endpoint), so MSAL's token cache answers until the token expires, and asks for a token in
    a worker thread before the SDK's synchronous request signing needs it."""

    def __init__(self, inner: ServiceClientCredentialsFactory) -> None:
        self.inner = inner
        self.cached: dict[tuple[str, str, str], AppCredentials] = {}
        self.sending = 0  # > 0 while the bot sends: then a token is needed right away

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(await self.inner.is_valid_app_id(app_id))

    async def is_authentication_disabled(self) -> bool:
        return bool(await self.inner.is_authentication_disabled())

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        key = (app_id or "", oauth_scope or "", login_endpoint or "")
        creds = self.cached.get(key)
        if creds is None:
            creds = await self.inner.create_credentials(
                app_id, oauth_scope, login_endpoint, validate_authority
            )
            self.cached[key] = creds
        if self.sending and creds.microsoft_app_id:
            await asyncio.to_thread(creds.get_access_token)  # from MSAL's cache when fresh
        return creds


def reference_of(activity: dict[str, Any]) -> dict[str, Any]:
    """The conversation reference (wire shape) of an incoming activity, for proactive sends:
    no ``activityId``, so sends start a new message instead of replying."""
    conv = activity.get("conversation") or {}
    ref: dict[str, Any] = {
        "channelId": activity.get("channelId") or "msteams",
        "serviceUrl": activity.get("serviceUrl") or "",
        "conversation": {
            k: conv[k]
            for k in ("id", "conversationType", "tenantId", "isGroup", "name")
            if k in conv
        },
        "bot": activity.get("recipient") or {},
        "user": activity.get("from") or {},
    }
    if activity.get("locale"):
        ref["locale"] = activity["locale"]
    return ref


@dataclass
class TeamsAdapter:
    """The Bot Framework adapter, behind four calls: process, send, update, is_member."""

    app_id: str = ""
    app_password: str = ""
    app_tenant_id: str = ""
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    service_urls: ServiceUrlPolicy | None = None  # None: the default list of the mode
    _cloud: CloudAdapter = field(init=False, repr=False)
    _credentials: ReusedCredentialsFactory = field(init=False, repr=False)

    def __post_init__(self) -> None:
        quick_msrest_retry_codes()
        conf = _Configuration(
            APP_ID=self.app_id,
            APP_PASSWORD=self.app_password,
            APP_TYPE="SingleTenant" if self.app_tenant_id else "MultiTenant",
            APP_TENANTID=self.app_tenant_id,
            **self.channel.model_dump(),
        )
        self._credentials = ReusedCredentialsFactory(
            PasswordServiceClientCredentialFactory(
                self.app_id, self.app_password, self.app_tenant_id
            )
        )
        self._cloud = CloudAdapter(
            ConfigurationBotFrameworkAuthentication(conf, credentials_factory=self._credentials)
        )
        if self.service_urls is None:
            self.service_urls = ServiceUrlPolicy(local_mode=self.local_mode)

    @property
    def local_mode(self) -> bool:
        return not self.app_id

    # --- incoming -----------------------------------------------------------------------------
    async def process(
        self, auth_header: str, activity: dict[str, Any], logic: TurnLogic
    ) -> InvokeReply | None:
        """Authenticate and run ``logic`` for one incoming activity. Raises BotAuthError (401),
        ValueError (malformed activity, 400); whatever ``logic`` raises propagates."""
        try:
            act = Activity().deserialize(activity)
        except Exception as e:  # msrest raises several types for a bad shape
            raise ValueError(f"not a Bot Framework activity: {type(e).__name__}") from None
        if not act.type:
            raise ValueError("activity has no type")
        holder: list[InvokeReply | None] = []

        async def on_turn(_context: TurnContext) -> None:
            holder.append(await logic(activity))

        try:
            # Authenticate first, on its own: whatever the SDK's validator raises (PermissionError,
            # PyJWT errors, but also IndexError for an unknown key id or an unsigned token, or a
            # metadata fetch failure) means the request is not proven to come from the Bot
            # Framework: 401, never 500.
            authenticated = await self._cloud.bot_framework_authentication.authenticate_request(
                act, auth_header or ""
            )
        except Exception as e:
            raise BotAuthError(f"request refused: {type(e).__name__}") from None
        try:
            await self._cloud.process_activity(authenticated, act, on_turn)
        except (PermissionError, jwt.PyJWTError) as e:
            raise BotAuthError(f"request refused: {type(e).__name__}") from None
        except Exception as e:
            if not holder and _is_auth_failure(e):
                raise BotAuthError(f"request refused: {type(e).__name__}") from None
            raise
        return holder[0] if holder else None

    # --- outgoing -----------------------------------------------------------------------------
    async def _proactive(
        self, ref: dict[str, Any], action: Callable[[TurnContext], Awaitable[None]]
    ) -> None:
        service_url = str(ref.get("serviceUrl") or "")
        if self.service_urls is None or not self.service_urls.allows(service_url):
            raise ConnectorError("serviceUrl not allowed: nothing sent", status=403)
        reference = ConversationReference().deserialize(ref)
        reply_to = ref.get("activityId")

        async def callback(context: TurnContext) -> None:
            # The SDK gives the continuation activity a random id, and every send through the
            # context would then carry it as replyToId (platform notes): reset it.
            context.activity.id = reply_to
            await action(context)

        self._credentials.sending += 1
        try:
            await self._cloud.continue_conversation(reference, callback, bot_app_id=self.app_id)
        except ConnectorError:
            raise
        except Exception as e:
            raise connector_error(e) from e
        finally:
            self._credentials.sending -= 1

    async def send(
        self, ref: dict[str, Any], activity: dict[str, Any], *, reply_to: str | None = None
    ) -> str:
        """Post ``activity`` into the referenced conversation (a reply when ``reply_to``).
        Returns the new activity id."""
        out: list[str] = []
        ref = {k: v for k, v in ref.items() if k != "activityId"}
        if reply_to:
            ref["activityId"] = reply_to

        async def action(context: TurnContext) -> None:
            resp = await context.send_activity(Activity().deserialize(activity))
            out.append(resp.id if resp is not None and resp.id else "")

        await self._proactive(ref, action)
        return out[0] if out else ""

    async def update(self, ref: dict[str, Any], activity_id: str, activity: dict[str, Any]) -> None:
        """Replace the activity ``activity_id`` (a posted card) in the referenced conversation."""

        async def action(context: TurnContext) -> None:
            act = Activity().deserialize(activity)
            act.id = activity_id
            await context.update_activity(act)

        await self._proactive({k: v for k, v in ref.items() if k != "activityId"}, action)

    async def members(self, ref: dict[str, Any], conversation_id: str) -> list[tuple[str, str]]:
        """The members of the conversation/team ``conversation_id`` as (Teams user id, the
        MRI "29:..." that ``refresh.userIds`` takes; Entra object id), in the roster's order."""
        out: list[tuple[str, str]] = []

        async def action(context: TurnContext) -> None:
            client = context.turn_state.get(self._cloud.BOT_CONNECTOR_CLIENT_KEY)
            try:
                found = await client.conversations.get_conversation_members(conversation_id)
            except Exception as e:
                raise connector_error(e) from e
            out.extend(
                (str(m.id), str(m.aad_object_id or "")) for m in found or [] if getattr(m, "id", "")
            )

        await self._proactive({k: v for k, v in ref.items() if k != "activityId"}, action)
        return out

    async def is_member(self, ref: dict[str, Any], conversation_id: str, aad_id: str) -> bool:
        """Is ``aad_id`` a member of the conversation/team ``conversation_id``? (404: no.)"""
        result: list[bool] = []

        async def action(context: TurnContext) -> None:
            client = context.turn_state.get(self._cloud.BOT_CONNECTOR_CLIENT_KEY)
            try:
                member = await client.conversations.get_conversation_member(conversation_id, aad_id)
            except Exception as e:
                err = connector_error(e)
                if err.status in (400, 403, 404):
                    result.append(False)
                    return
                raise err from e
            result.append(member is not None)

        await self._proactive({k: v for k, v in ref.items() if k != "activityId"}, action)
        return bool(result and result[0])


def _is_auth_failure(e: BaseException) -> bool:
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, PermissionError | jwt.PyJWTError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
