"""A real SMTP server on loopback for the e-mail tests: aiosmtpd with STARTTLS required (a
throwaway certificate for 127.0.0.1 from a test CA, trustme) and AUTH only after TLS; and a
SyncService on a simulated tenant that mails its digests."""

from __future__ import annotations

import asyncio
import email
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import fakeredis
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sync.config import EnvSettings, config_from_dict
from sync.service.service import SyncService
from sync.state.keys import Keys

SMTP_USER = "entra-sync@contoso.example"
SMTP_PASSWORD = "correct horse battery staple"
CHANNEL_ID = "19:3f2a0c1b9d8e4f6a@thread.tacv2"
TEAM_ID = "19:0c1b9d8e4f6a3f2a@thread.tacv2"
GROUP_ID = "6b3f9c2e-1a4d-4e8b-9f0a-2c5d7e8f9a1b"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    over_tls: bool


@dataclass
class Inbox:
    mails: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        self.mails.append(
            Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                msg,
                session.ssl is not None,
            )
        )
        return "250 OK"


def _authenticator(inbox: Inbox) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == SMTP_USER
            and auth_data.password.decode() == SMTP_PASSWORD
        )
        if ok:
            inbox.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    return check


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    ca_file: Path


@asynccontextmanager
async def smtp_server(tmp: Path) -> AsyncIterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 (ephemeral port): STARTTLS required before MAIL, AUTH LOGIN/PLAIN
    only after TLS. ``ca_file``: the CA that signed its certificate (PEM)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            inbox,
            hostname="smtp.test",
            tls_context=server_ctx,
            require_starttls=True,
            authenticator=_authenticator(inbox),
            auth_require_tls=True,
        ),
        "127.0.0.1",
        0,
    )
    try:
        yield SmtpServer(server.sockets[0].getsockname()[1], inbox, ca_file)
    finally:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting is refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def entra(uid: str, name: str, phone: str, **kw: Any) -> dict[str, Any]:
    first, _, last = name.partition(" ")
    upn = f"{uid}@contoso.example"
    return {
        "id": uid,
        "accountEnabled": True,
        "givenName": first,
        "surname": last,
        "displayName": name,
        "mail": upn,
        "userPrincipalName": upn,
        "mobilePhone": phone,
        "businessPhones": [],
        **kw,
    }


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def no_sleep(_s: float) -> None:
    return None


async def mail_service(
    tmp: Path, users: list[dict[str, Any]], notify: dict[str, Any], *, redis: Any = None
) -> SyncService:
    """A SyncService on a simulated tenant (Graph over loopback HTTP) and the built-in
    directory (one user already linked), with ``[notify]`` as given, and a notification
    channel whose reference Teams gave (with the team's Entra group id)."""
    (tmp / "tenant.json").write_text(json.dumps({"users": users, "groups": []}))
    (tmp / "directory.json").write_text(json.dumps({"users": [], "ignored": []}))
    cfg = config_from_dict(
        {
            "tenants": [{"name": "contoso", "simulate": "tenant.json"}],
            "directories": [{"name": "main", "seed_file": "directory.json"}],
            "notify": notify,
        },
        base_dir=tmp,
    )
    svc = SyncService(
        config=cfg,
        env=EnvSettings(),
        redis=redis or fakeredis.FakeAsyncRedis(),
        keys=Keys("mail:"),
        clock=Clock(),
        sleep=no_sleep,
    )
    await svc.start(scheduler=False)
    ref = {
        "channelId": "msteams",
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "conversation": {
            "id": f"{CHANNEL_ID};messageid=1733214000000",
            "conversationType": "channel",
            "tenantId": TENANT_ID,
            "isGroup": True,
            "name": "Telephony admins",
        },
        "teamId": TEAM_ID,
        "aadGroupId": GROUP_ID,
    }
    await svc.conversations.save_conversation(CHANNEL_ID, ref)
    await svc.conversations.set_notify_channel(CHANNEL_ID)
    return svc
