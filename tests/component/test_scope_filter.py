"""The advanced-query scope end to end: the SyncService reads a simulated tenant over loopback
HTTP (Graph judges the filter: the simulator's OData subset), plans against the built-in
directory, and the settings card tries a new filter before it is saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot import to_views
from cards import build
from sync.models import Kind
from sync.service.runner import sync_once
from sync.service.service import SyncService
from tests.component.real_rig import real_bot
from tests.component.test_bot_flow import ADMIN, card_texts, executes, invoke
from tests.component.test_service import ADA, Clock, dir_user, entra, make_service, write_world

SUPPORT = "department eq 'Support'"
REFUSED = (
    "Unsupported or invalid query filter clause specified for property 'faxNumber' of "
    "resource 'User'."
)


def _people() -> list[dict[str, Any]]:
    """Three in Support, three in Sales; every one with a number."""
    return [
        entra("e-anna", "Anna", "Lind", "+46701111111", department="Support"),
        entra("e-bo", "Bo", "Ek", "+46702222222", department="Sales"),
        entra("e-cia", "Cia", "Berg", "+46703333333", department="Support"),
        entra("e-dan", "Dan", "Ek", "+46704444444", department="Sales"),
        entra("e-eva", "Eva", "Ny", "+46705555555", department="support"),
        entra("e-fia", "Fia", "Ek", "+46706666666", department="Sales"),
    ]


def _linked_world(tmp: Path) -> None:
    """Every Entra user linked to its directory user."""
    people = _people()
    write_world(
        tmp,
        people,
        [
            dir_user(str(i), p["givenName"], p["surname"], p["mobilePhone"], entra_id=p["id"])
            for i, p in enumerate(people, 1)
        ],
    )


def _support_linked_world(tmp: Path) -> None:
    """Only the Support users are in the directory, linked."""
    people = _people()
    write_world(
        tmp,
        people,
        [
            dir_user(str(i), p["givenName"], p["surname"], p["mobilePhone"], entra_id=p["id"])
            for i, p in enumerate(people, 1)
            if p["department"].lower() == "support"
        ],
    )


def _sim(svc: SyncService) -> Any:
    sim = svc.tenants["contoso"].sim
    assert sim is not None
    return sim


async def test_a_filtered_sync_now_proposes_only_users_in_scope(tmp_path: Path) -> None:
    write_world(
        tmp_path,
        _people(),
        [dir_user("1", "Anna", "Lind", "+46701111111"), dir_user("2", "Bo", "Ek", "+46702222222")],
    )
    svc = await make_service(tmp_path, Clock(), scope={"filter": SUPPORT})
    try:
        (result,) = await svc.run_sync(actor=ADA)
    finally:
        await svc.stop()
    assert result.status == "ok"
    by_user = {i.proposal.entra_id: i.kind for i in result.new_items}
    # Eva's "support" is in scope too: Graph compares case-insensitively
    assert by_user == {"e-anna": Kind.MATCH, "e-cia": Kind.NEW, "e-eva": Kind.NEW}


async def test_the_filter_is_sent_as_an_advanced_query(tmp_path: Path) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock(), scope={"filter": SUPPORT})
    try:
        await svc.run_sync(actor=ADA)
        log = list(_sim(svc).filter_log)
    finally:
        await svc.stop()
    assert [(q.filter, q.advanced, q.consistency_level) for q in log] == [
        (SUPPORT, True, "eventual")
    ]


async def test_with_groups_a_user_must_be_in_a_group_and_taken_by_the_filter(
    tmp_path: Path,
) -> None:
    write_world(tmp_path, _people(), [])
    tenant = tmp_path / "tenant.json"
    data = json.loads(tenant.read_text())
    data["groups"] = [{"id": "g-1", "displayName": "Phones", "members": ["e-anna", "e-bo"]}]
    tenant.write_text(json.dumps(data))
    svc = await make_service(tmp_path, Clock(), scope={"filter": SUPPORT, "groups": ["g-1"]})
    try:
        (result,) = await svc.run_sync(actor=ADA)
    finally:
        await svc.stop()
    assert {i.proposal.entra_id for i in result.new_items} == {"e-anna"}


async def test_a_bad_filter_in_the_config_fails_the_run_with_graphs_message(
    tmp_path: Path,
) -> None:
    _linked_world(tmp_path)
    (tmp_path / "config.toml").write_text(
        "[scope]\nfilter = \"faxNumber eq '1'\"\n\n"
        '[[tenants]]\nname = "contoso"\nsimulate = "tenant.json"\n\n'
        '[[directories]]\nname = "main"\nseed_file = "directory.json"\n'
    )
    out = await sync_once(str(tmp_path / "config.toml"))
    (run,) = out["runs"]
    assert run["status"] == "failed"
    assert run["error"]["code"] == "scope_filter_rejected"
    assert REFUSED in run["error"]["message"]
    assert "[scope] filter" in run["error"]["hint"]


async def test_a_refused_filter_fails_the_run_before_the_users_are_read(tmp_path: Path) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock(), scope={"filter": "faxNumber eq '1'"})
    try:
        (run,) = await svc.run_sync(actor=ADA)
        user_requests = _sim(svc).requests["users"]
    finally:
        await svc.stop()
    assert run.status == "failed" and run.error is not None
    assert run.error.code == "scope_filter_rejected"
    assert user_requests == 1  # the filter's own request; no page of users was read


async def test_a_bad_filter_from_the_card_shows_graphs_message_and_saves_nothing(
    tmp_path: Path,
) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock())
    try:
        await svc.run_sync(actor=ADA)
        form = {"scope.filter": "faxNumber eq '1'"}
        outcome = await svc.save_settings(form, actor=ADA)
        table = await svc.settings_table()
        saved = await svc.store.settings.get_settings_overrides()
    finally:
        await svc.stop()
    assert not outcome.saved and dict(outcome.errors) == {"scope.filter": REFUSED}
    assert table["scope"]["filter"] == "" and saved is None
    card = build.settings_card(
        to_views.settings_view(table, outcome.errors, {"scope_filter": "faxNumber eq '1'"})
    )
    texts = [b.get("text", "") for b in card["body"]]
    assert any("faxNumber" in t and "of resource 'User'" in t for t in texts)


async def test_a_filter_that_cannot_be_tried_is_not_saved_and_says_why(tmp_path: Path) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock())
    try:
        await svc.run_sync(actor=ADA)
        _sim(svc).faults.forbidden = True  # Graph answers 403 to everything
        outcome = await svc.save_settings({"scope.filter": SUPPORT}, actor=ADA)
        in_force = svc.config.scope.filter
    finally:
        await svc.stop()
    assert not outcome.saved and not outcome.confirm_token and in_force == ""
    assert "could not be tried against Microsoft Graph" in outcome.errors["scope.filter"]
    assert "User.Read.All" in outcome.errors["scope.filter"]  # the permission hint


async def test_the_impact_preview_counts_users_in_scope_and_the_removals(
    tmp_path: Path,
) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock(), guard={"max_removal_share": 1.0})
    try:
        await svc.run_sync(actor=ADA)
        outcome = await svc.save_settings({"scope.filter": SUPPORT}, actor=ADA)
        in_force = svc.config.scope.filter
    finally:
        await svc.stop()
    assert not outcome.saved and outcome.confirm_token and in_force == ""
    (impact,) = outcome.impacts
    assert (impact.in_scope_before, impact.in_scope_after) == (6, 3)
    assert (impact.removals, impact.held_back) == (3, False)  # Bo, Dan, Fia leave the scope


async def test_the_impact_card_offers_confirm_and_save_with_the_token(tmp_path: Path) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock())
    try:
        await svc.run_sync(actor=ADA)
        outcome = await svc.save_settings({"scope.filter": SUPPORT}, actor=ADA)
        table = await svc.settings_table()
    finally:
        await svc.stop()
    card = build.settings_card(
        to_views.settings_view(table, None, {"scope_filter": SUPPORT}, outcome)
    )
    (confirm,) = [a for a in card["actions"] if a["title"] == "Confirm and save"]
    assert confirm["data"]["d"] == outcome.confirm_token
    facts = {
        f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]
    }
    assert facts["Users in scope with this filter"] == "3"
    assert facts["Removals the next sync would propose"].startswith("3 (held back")


async def test_a_new_filter_is_not_saved_without_its_confirm_token(tmp_path: Path) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock())
    try:
        direct = await svc.update_settings({"scope.filter": SUPPORT}, actor=ADA)
        forged = await svc.save_settings({"scope.filter": SUPPORT}, actor=ADA, confirm="0" * 24)
        in_force = svc.config.scope.filter
    finally:
        await svc.stop()
    assert "scope.filter" in direct
    assert not forged.saved and forged.confirm_token  # shown the impact again
    assert in_force == ""


async def test_a_filter_that_takes_many_users_out_trips_the_guard_and_removes_nobody(
    tmp_path: Path,
) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock())  # guard: at most 20 % of the linked users
    try:
        await svc.run_sync(actor=ADA)
        first = await svc.save_settings({"scope.filter": SUPPORT}, actor=ADA)
        saved = await svc.save_settings(
            {"scope.filter": SUPPORT}, actor=ADA, confirm=first.confirm_token
        )
        (run,) = await svc.run_sync(actor=ADA)
        removals = await svc.pending(Kind.REMOVAL)
        users = await svc.directories["main"].list_users()
    finally:
        await svc.stop()
    assert first.impacts[0].held_back and saved.saved
    assert [b.count for b in run.blocked] == [3]
    assert removals == [] and [i for i in run.new_items if i.kind is Kind.REMOVAL] == []
    assert all(u.entra_id for u in users)  # every link kept


async def test_a_quiet_delta_round_does_not_ask_graph_for_the_filter_again(
    tmp_path: Path,
) -> None:
    _support_linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock(), scope={"filter": SUPPORT})
    try:
        await svc.run_sync(actor=ADA)
        (quiet,) = await svc.run_sync(actor=ADA)
        asked = len(_sim(svc).filter_log)
    finally:
        await svc.stop()
    assert quiet.mode == "delta" and asked == 1


async def test_a_delta_round_with_changes_asks_the_filter_again_and_proposes_the_removal(
    tmp_path: Path,
) -> None:
    _support_linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock(), scope={"filter": SUPPORT})
    try:
        await svc.run_sync(actor=ADA)
        _sim(svc).update_user("e-cia", department="Sales")
        (changed,) = await svc.run_sync(actor=ADA)
        asked = len(_sim(svc).filter_log)
    finally:
        await svc.stop()
    assert changed.mode == "delta" and asked == 2
    removals = [i.proposal for i in changed.new_items if i.kind is Kind.REMOVAL]
    assert [(p.entra_id, p.removal_cause) for p in removals] == [("e-cia", "out_of_scope")]


# --- the settings card through the bot (real route, real service) ----------------------------


async def test_the_card_shows_graphs_refusal_then_the_impact_then_saves_on_confirm(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    _linked_world(tmp_path)
    svc = await make_service(tmp_path, Clock(), bot={"admins": [ADMIN]})
    try:
        await svc.run_sync(actor=ADA)
        async with real_bot(aiohttp_client, svc) as rig:

            async def save(d: str, text: str) -> dict[str, Any]:
                data = {"pid": "settings", "d": d, "scope_filter": text}
                status, body = await rig.post(invoke(rig.fc, "settings_save", data))
                assert status == 200
                card: dict[str, Any] = body["value"]
                return card

            refused = await save("", "faxNumber eq '1'")
            impact = await save("", SUPPORT)
            (confirm,) = [a for a in executes(impact) if a["title"] == "Confirm and save"]
            saved = await save(confirm["data"]["d"], SUPPORT)
        in_force = svc.config.scope.filter
    finally:
        await svc.stop()
    assert "of resource 'User'" in card_texts(refused)
    assert "Check the new scope" in card_texts(impact)
    assert "Settings saved" in card_texts(saved) and in_force == SUPPORT
