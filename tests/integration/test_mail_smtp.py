"""E-mail notifications over SMTP: a real aiosmtpd server on loopback that requires STARTTLS
(throwaway certificate) and AUTH after TLS, fed by a SyncService on a simulated tenant."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from bot.to_views import status_view
from cards.build import status_card
from tests.integration.mail_rig import (
    CHANNEL_ID,
    GROUP_ID,
    SMTP_PASSWORD,
    SMTP_USER,
    TENANT_ID,
    entra,
    free_port,
    mail_service,
    smtp_server,
)

# the seed rule drops "<...>" from Entra values, so the hostile part is an unclosed tag
HOSTILE = 'Eve <img src=x onerror=alert(1)// & "Co"\r\nBcc: thief@attacker.example'
USERS = [
    entra("e-anna", "Anna Lind", "070-111 11 11"),
    entra("e-evil", HOSTILE, "070-222 22 22"),
]


def smtp_notify(port: int, **mail: object) -> dict[str, object]:
    return {
        "email": ["servicedesk@contoso.example", "Ops@Contoso.example"],
        "mail": {
            "transport": "smtp",
            "from_mailbox": SMTP_USER,
            "host": "127.0.0.1",
            "port": port,
            "username": SMTP_USER,
            "password_env": "TEST_SMTP_PASSWORD",
            "timeout_s": 10,
            **mail,
        },
    }


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)


async def test_a_run_with_new_items_mails_one_digest_over_starttls_with_items_and_channel_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with smtp_server(tmp_path) as smtp:
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.ca_file))  # the bot trusts the test CA
        svc = await mail_service(tmp_path, USERS, smtp_notify(smtp.port))
        try:
            (run,) = await svc.run_sync()
        finally:
            await svc.stop()
    assert run.status == "ok" and len(run.new_items) == 2
    (mail,) = smtp.inbox.mails
    assert mail.over_tls and smtp.inbox.logins == [SMTP_USER]
    assert mail.sender == SMTP_USER
    assert mail.recipients == ["servicedesk@contoso.example", "Ops@Contoso.example"]
    msg = mail.message
    assert msg["Subject"] == "Entra Sync: 2 new pending items"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    link = (
        f"https://teams.microsoft.com/l/channel/{quote(CHANNEL_ID, safe='')}/Telephony%20admins"
        f"?groupId={GROUP_ID}&tenantId={TENANT_ID}"
    )
    assert link in text
    assert f'href="{link.replace("&", "&amp;")}"' in html
    assert "New Entra user: Anna Lind" in text and "Anna Lind" in html
    assert "contoso \u2192 main" in text


async def test_a_hostile_name_is_escaped_in_html_and_cannot_add_headers_or_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with smtp_server(tmp_path) as smtp:
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.ca_file))
        svc = await mail_service(tmp_path, USERS, smtp_notify(smtp.port))
        try:
            await svc.run_sync()
        finally:
            await svc.stop()
    (mail,) = smtp.inbox.mails
    msg = mail.message
    assert msg["Bcc"] is None and "thief@attacker.example" not in mail.recipients
    assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<img" not in html
    escaped = (
        "Eve &lt;img src=x onerror=alert(1)// &amp; &quot;Co&quot; Bcc: thief@attacker.example"
    )
    assert escaped in html
    # the CR/LF became a space: the name stays on its item's line
    assert 'New Entra user: Eve <img src=x onerror=alert(1)// & "Co" Bcc: thief@' in text
    assert not any(line.startswith("Bcc:") for line in text.splitlines())


async def test_a_second_run_with_nothing_new_sends_no_second_mail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with smtp_server(tmp_path) as smtp:
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.ca_file))
        svc = await mail_service(tmp_path, USERS, smtp_notify(smtp.port))
        try:
            await svc.run_sync()
            (again,) = await svc.run_sync()
            await svc.mailer.idle()
            sent = await svc.mail_status()
        finally:
            await svc.stop()
    assert again.status == "ok" and list(again.new_items) == []
    assert len(smtp.inbox.mails) == 1
    assert sent is not None and sent.ok and sent.recipients == 2 and sent.items == 2


async def test_a_refused_smtp_connection_shows_in_status_and_the_sync_result_is_unaffected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    svc = await mail_service(tmp_path, USERS, smtp_notify(free_port()))
    try:
        (run,) = await svc.run_sync()
        pending = await svc.pending()
        await svc.mailer.idle()
        mail = await svc.mail_status()
        statuses = await svc.status()
    finally:
        await svc.stop()
    assert run.status == "ok" and run.error is None and len(run.new_items) == 2
    assert len(pending) == 2  # the items are recorded as without mail
    assert mail is not None and not mail.ok and mail.code == "mail_unavailable"
    assert "did not answer" in mail.message and mail.hint
    card = status_card(status_view(statuses, mail))
    shown = " ".join(b.get("text", "") for b in card["body"]).replace("\\", "")  # Markdown
    # the time is the viewer's own (Adaptive Cards' DATE/TIME of the UTC moment)
    assert (
        "Last mail failed {{" in shown and "TIME(2026-12-03T08:30:00Z)}}: mail_unavailable" in shown
    )
    failed = [r for r in caplog.records if r.name == "sync.mail.notifier"]
    assert any("mail_unavailable" in r.getMessage() for r in failed)
    assert not any(r.exc_info for r in caplog.records)  # logged as a line, no traceback


async def test_a_wrong_smtp_password_is_a_refused_sign_in_and_the_password_is_never_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "Wr0ng-but-secret-pa55")
    async with smtp_server(tmp_path) as smtp:
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.ca_file))
        svc = await mail_service(tmp_path, USERS, smtp_notify(smtp.port))
        try:
            (run,) = await svc.run_sync()
            await svc.mailer.idle()
            mail = await svc.mail_status()
        finally:
            await svc.stop()
    assert run.status == "ok" and smtp.inbox.mails == []
    assert mail is not None and mail.code == "mail_refused" and "sign-in" in mail.message
    assert "password_env" in mail.hint
    assert all("Wr0ng-but-secret-pa55" not in r.getMessage() for r in caplog.records)


async def test_an_untrusted_server_certificate_sends_nothing_and_says_so(
    tmp_path: Path,
) -> None:
    async with smtp_server(tmp_path) as smtp:  # its CA is not trusted here
        svc = await mail_service(tmp_path, USERS, smtp_notify(smtp.port))
        try:
            (run,) = await svc.run_sync()
            await svc.mailer.idle()
            mail = await svc.mail_status()
        finally:
            await svc.stop()
    assert run.status == "ok" and smtp.inbox.mails == [] and smtp.inbox.logins == []
    assert mail is not None and mail.code == "mail_refused" and "TLS" in mail.message


async def test_the_run_returns_while_a_slow_mail_server_still_holds_the_mail(
    tmp_path: Path,
) -> None:
    release = asyncio.Event()
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await release.wait()  # no greeting until released, then hang up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    svc = await mail_service(tmp_path, USERS, smtp_notify(port))
    try:
        (run,) = await svc.run_sync()
        await connected.wait()
        before = await svc.mail_status()  # the run is back; the mail is still on its way
        release.set()
        await svc.mailer.idle()
        after = await svc.mail_status()
    finally:
        await svc.stop()
        server.close()
        await server.wait_closed()
    assert run.status == "ok" and len(run.new_items) == 2
    assert before is None
    assert after is not None and not after.ok and after.code == "mail_unavailable"
