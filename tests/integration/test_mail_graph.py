"""E-mail notifications through Microsoft Graph sendMail: the simulator's sendMail over loopback
HTTP (as documented: 202 Accepted with an empty body, 400 ErrorInvalidRecipients, 404 for an
unknown mailbox), and the service sending its digest with the tenant's own app token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from sync.devtools.simulator import TenantSim, serve_simulator
from sync.service.service import Actor
from tests.integration.mail_rig import entra, mail_service

FIXTURE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "graph" / "user-sendmail.json").read_text()
)
SENDER = "e-desk@contoso.example"
USERS = [
    entra("e-desk", "Service Desk", "070-000 00 00"),
    entra("e-anna", "Anna Lind", "070-111 11 11"),
]


def graph_notify(**mail: object) -> dict[str, object]:
    return {
        "email": ["servicedesk@contoso.example"],
        "mail": {"transport": "graph", "from_mailbox": SENDER, **mail},
    }


async def _post(base: str, sim: TenantSim, who: str, body: Any) -> httpx.Response:
    token = sim.issue_token()
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{base}/v1.0/users/{who}/sendMail",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )


async def test_simulator_sendmail_accepts_the_documented_request_with_202_and_an_empty_body() -> (
    None
):
    sim = TenantSim(USERS)
    async with serve_simulator(sim) as base:
        resp = await _post(base, sim, SENDER, FIXTURE["body"])
    assert resp.status_code == FIXTURE["response"]["status"] == 202
    assert resp.content == b""
    assert sim.mail.sent == [{"from": SENDER, "request": FIXTURE["body"]}]


async def test_simulator_sendmail_refuses_a_message_without_recipients_as_graph_does() -> None:
    sim = TenantSim(USERS)
    body = {"message": {"subject": "x", "body": {"contentType": "Text", "content": "x"}}}
    async with serve_simulator(sim) as base:
        resp = await _post(base, sim, SENDER, body)
    expected = FIXTURE["errors"]["no_recipients"]
    assert resp.status_code == expected["status"]
    error = resp.json()["error"]
    assert {k: error[k] for k in ("code", "message")} == expected["body"]["error"]
    assert sim.mail.sent == []


async def test_simulator_sendmail_refuses_an_unresolved_recipient_as_graph_does() -> None:
    sim = TenantSim(USERS)
    body = {"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": "bad"}}]}}
    async with serve_simulator(sim) as base:
        resp = await _post(base, sim, SENDER, body)
    expected = FIXTURE["errors"]["unresolved_recipient"]
    assert resp.status_code == expected["status"]
    error = resp.json()["error"]
    assert {k: error[k] for k in ("code", "message")} == expected["body"]["error"]


async def test_simulator_sendmail_from_a_user_that_does_not_exist_is_404() -> None:
    sim = TenantSim(USERS)
    async with serve_simulator(sim) as base:
        resp = await _post(base, sim, "nobody@contoso.example", FIXTURE["body"])
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "ErrorInvalidUser"


async def test_a_run_mails_its_digest_through_graph_sendmail_from_the_configured_mailbox(
    tmp_path: Path,
) -> None:
    svc = await mail_service(tmp_path, USERS, graph_notify())
    try:
        (run,) = await svc.run_sync()
        await svc.run_sync()  # nothing new: no second mail
        sim = svc.tenants["contoso"].sim
        await svc.mailer.idle()
        mail = await svc.mail_status()
    finally:
        await svc.stop()
    assert sim is not None and run.status == "ok"
    (sent,) = sim.mail.sent
    assert sent["from"] == SENDER
    message = sent["request"]["message"]
    assert message["subject"] == "Entra Sync: 2 new pending items"
    assert message["toRecipients"] == [{"emailAddress": {"address": "servicedesk@contoso.example"}}]
    assert message["body"]["contentType"] == "HTML"
    assert "New Entra user: Anna Lind" in message["body"]["content"]
    assert "https://teams.microsoft.com/l/channel/" in message["body"]["content"]
    assert mail is not None and mail.ok


async def test_graph_denying_the_mailbox_shows_the_mail_send_hint_in_status_and_the_run_is_ok(
    tmp_path: Path,
) -> None:
    svc = await mail_service(tmp_path, USERS, graph_notify())
    try:
        sim = svc.tenants["contoso"].sim
        assert sim is not None
        sim.mail.denied = True  # an application access policy that leaves this mailbox out
        (run,) = await svc.run_sync()
        await svc.mailer.idle()
        mail = await svc.mail_status()
    finally:
        await svc.stop()
    assert run.status == "ok" and len(run.new_items) == 2 and sim.mail.sent == []
    assert mail is not None and not mail.ok and mail.code == "mail_refused"
    assert "ErrorAccessDenied" in mail.message and "Mail.Send" in mail.hint


async def test_a_lost_connection_is_mailed_once_and_again_only_after_it_came_back(
    tmp_path: Path,
) -> None:
    svc = await mail_service(tmp_path, USERS, graph_notify(), redis=None)
    try:
        sim = svc.tenants["contoso"].sim
        assert sim is not None
        await svc.run_sync()  # the first digest (two new items)
        sim.faults.forbidden = True  # Graph: 403 Authorization_RequestDenied on reads
        first = (await svc.run_sync())[0]
        second = (await svc.run_sync())[0]
        assert first.status == second.status == "failed"
        await svc.mailer.idle()
        denied_mails = len(sim.mail.sent)
        sim.faults.forbidden = False
        await svc.run_sync()  # ok again: clears it, nothing new to tell
        sim.faults.forbidden = True
        await svc.run_sync()
    finally:
        await svc.stop()
    subjects = [m["request"]["message"]["subject"] for m in sim.mail.sent]
    assert denied_mails == 2  # the digest, then the lost connection once (not per run)
    assert subjects == [
        "Entra Sync: 2 new pending items",
        "Entra Sync: 1 problem needs you",
        "Entra Sync: 1 problem needs you",
    ]
    body = sim.mail.sent[1]["request"]["message"]["body"]["content"]
    assert "The connection is lost (graph_permission_denied)" in body
    assert "User.Read.All" in body  # the hint: which permission to grant


async def test_recipients_saved_on_the_settings_card_get_the_next_digest(tmp_path: Path) -> None:
    svc = await mail_service(tmp_path, USERS, graph_notify())
    try:
        errors = await svc.update_settings(
            {"notify.email": "anna.admin@contoso.example, desk@contoso.example"},
            actor=Actor("admin-ada", "Ada"),
        )
        table = await svc.settings_table()
        await svc.run_sync()
        sim = svc.tenants["contoso"].sim
    finally:
        await svc.stop()
    assert errors == {}
    assert table["notify"] == {"email": ["anna.admin@contoso.example", "desk@contoso.example"]}
    assert sim is not None
    (sent,) = sim.mail.sent
    to = [r["emailAddress"]["address"] for r in sent["request"]["message"]["toRecipients"]]
    assert to == ["anna.admin@contoso.example", "desk@contoso.example"]


async def test_a_bad_recipient_on_the_settings_card_is_refused_and_nothing_is_saved(
    tmp_path: Path,
) -> None:
    svc = await mail_service(tmp_path, USERS, graph_notify())
    try:
        errors = await svc.update_settings(
            {"notify.email": "desk@contoso.example, desk at contoso"},
            actor=Actor("admin-ada", "Ada"),
        )
        email = svc.config.notify.email
    finally:
        await svc.stop()
    assert errors == {
        "notify.email": "'desk at contoso' is not an e-mail address like servicedesk@contoso.com"
    }
    assert email == ("servicedesk@contoso.example",)
