"""How a notification mail leaves: one small interface, two transports.

- :class:`GraphMail`: Microsoft Graph ``POST /users/{from}/sendMail`` (application permission
  ``Mail.Send``) through a tenant's Graph client and token; Graph answers ``202 Accepted``
  with an empty body. The JSON message carries the HTML body (Graph's message has one body).
- :class:`SmtpMail`: SMTP with STARTTLS (aiosmtplib): ``multipart/alternative`` with the plain
  text and the HTML. With ``starttls`` the TLS upgrade is required (never falls back to clear
  text); the password is a SecretStr and is never logged.

Every failure is raised as a :class:`~sync.errors.MailError` with a code and a hint.
"""

from __future__ import annotations

import json
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import quote

import aiosmtplib
from pydantic import SecretStr

from sync.errors import GraphError, MailError, MailRefused, MailUnavailable
from sync.graph.client import GraphClient
from sync.mail.digest import OutgoingMail


class MailTransport(Protocol):
    async def send(self, mail: OutgoingMail) -> None:
        """Send one mail; raises MailError."""
        ...


def to_mime(mail: OutgoingMail) -> EmailMessage:
    """The mail as MIME: plain text with an HTML alternative. Headers are folded by the SMTP
    policy, which refuses CR/LF in a header value."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.to)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=mail.sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a notification
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    return msg


def graph_message(mail: OutgoingMail) -> dict[str, Any]:
    """The sendMail request body (learn.microsoft.com/graph/api/user-sendmail)."""
    return {
        "message": {
            "subject": mail.subject,
            "body": {"contentType": "HTML", "content": mail.html},
            "toRecipients": [{"emailAddress": {"address": a}} for a in mail.to],
        },
    }


def _graph_error(status: int, body: bytes) -> tuple[str, str]:
    try:
        err = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(err, dict):
        return "", ""
    return str(err.get("code") or "")[:80], str(err.get("message") or "")[:300]


class GraphMail:
    """Sends as ``mailbox`` with the app's token of a tenant's Graph client."""

    def __init__(self, graph: GraphClient, mailbox: str) -> None:
        self._graph = graph
        self._mailbox = mailbox

    async def send(self, mail: OutgoingMail) -> None:
        path = f"/users/{quote(self._mailbox, safe='@')}/sendMail"
        try:
            resp = await self._graph.post_json(path, graph_message(mail), what="sendMail")
        except GraphError as e:  # throttled or unreachable after the retries, or sign-in
            raise MailUnavailable(f"Microsoft Graph sendMail failed: {e.message}") from None
        if resp.status_code == 202:
            return
        code, message = _graph_error(resp.status_code, resp.content)
        detail = f"HTTP {resp.status_code}" + (f" {code}" if code else "")
        detail += f": {message}" if message else ""
        if resp.status_code == 403:
            raise MailRefused(
                f"Microsoft Graph refused to send as {self._mailbox} ({detail})",
                hint=(
                    "Grant the app the Microsoft Graph application permission Mail.Send (or "
                    "an Exchange 'Application Mail.Send' role assignment) for the mailbox "
                    f"{self._mailbox}; if an access policy limits the app, include that mailbox."
                ),
            )
        if resp.status_code == 404:
            raise MailRefused(
                f"Microsoft Graph has no mailbox {self._mailbox} ({detail})",
                hint="Set [notify.mail] from_mailbox to a licensed Exchange Online mailbox.",
            )
        if resp.status_code == 400 and code == "ErrorInvalidRecipients":
            raise MailRefused(
                f"Microsoft Graph refused the recipients ({detail})",
                hint="Check the addresses in [notify] email (or in the settings card).",
            )
        if resp.status_code >= 500:
            raise MailUnavailable(f"Microsoft Graph failed sendMail ({detail})")
        raise MailRefused(f"Microsoft Graph refused sendMail ({detail})")


class SmtpMail:
    """SMTP submission, STARTTLS required unless ``starttls`` is off (a relay on loopback)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str = "",
        password: SecretStr | None = None,
        starttls: bool = True,
        timeout_s: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout_s
        self._tls = tls_context

    async def send(self, mail: OutgoingMail) -> None:
        where = f"{self.host}:{self.port}"
        try:
            await aiosmtplib.send(
                to_mime(mail),
                hostname=self.host,
                port=self.port,
                username=self._username or None,
                password=self._password.get_secret_value() if self._password else None,
                start_tls=self._starttls,
                use_tls=False,
                tls_context=self._tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPAuthenticationError as e:
            raise MailRefused(
                f"the mail server {where} refused the sign-in ({e.code})",
                hint=(
                    "Check [notify.mail] username and the password in the environment "
                    "variable named by password_env."
                ),
            ) from None
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = ", ".join(sorted({str(r.code) for r in e.recipients}))
            raise MailRefused(
                f"the mail server {where} refused the recipients ({codes})",
                hint="Check the addresses in [notify] email, and that the server relays to them.",
            ) from None
        except aiosmtplib.SMTPSenderRefused as e:
            raise MailRefused(
                f"the mail server {where} refused the sender ({e.code})",
                hint="Check [notify.mail] from_mailbox: the account may send only as itself.",
            ) from None
        except ssl.SSLError as e:
            raise MailRefused(
                f"the TLS handshake with the mail server {where} failed ({e.reason or e})",
                hint=(
                    "The server's certificate must be valid for host and trusted by the bot "
                    "(a private CA: point SSL_CERT_FILE at it)."
                ),
            ) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError) as e:
            raise MailUnavailable(
                f"the mail server {where} did not answer ({type(e).__name__})"
            ) from None
        except aiosmtplib.SMTPResponseException as e:
            raise MailError(
                f"the mail server {where} answered {e.code}",
                hint="See the mail server's log; check [notify.mail] host, port and starttls.",
            ) from None
        except aiosmtplib.SMTPException as e:
            # e.g. STARTTLS required but the server does not offer it
            raise MailError(
                f"the mail server {where} failed: {type(e).__name__}",
                hint=(
                    "The server must offer STARTTLS (and a certificate the bot trusts: "
                    "SSL_CERT_FILE), or set starttls = false only for a relay on loopback."
                ),
            ) from None
