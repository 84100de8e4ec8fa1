"""Card builders: golden JSON, the official 1.5 schema, the action contract, escaping, size.

Golden files live in tests/unit/golden/<name>.json. Regenerate them with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_cards.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cards import build, notices
from cards.catalogue import Lang, Texts
from cards.schema import CardSchema
from cards.text import MD_SPECIAL, admin_consent_url, clean, escape_md, is_inert
from cards.views import (
    AppUser,
    AuditEntry,
    AuditView,
    AutoAppliedView,
    CardRef,
    ConflictView,
    ConnectView,
    DecidedView,
    DigestItem,
    DigestView,
    EntraPerson,
    GuardView,
    HelpView,
    IgnoredItem,
    IgnoredListView,
    LinkChoice,
    MailStatus,
    MatchView,
    NewView,
    Outcome,
    PendingItem,
    PendingListView,
    PreviewItem,
    PreviewView,
    RefusalReason,
    RefusalView,
    RemovalCause,
    RemovalView,
    SettingsView,
    StatusView,
    TenantStatus,
    UpdateView,
    Verb,
)
from sync.models import Change, Kind

GOLDEN = Path(__file__).parent / "golden"
EVIL = "**Boss** [click](http://evil) <script>alert(1)</script>"
ADMINS = tuple(f"29:admin-{i}" for i in range(70))  # more than Teams' 60

REF = CardRef(pid="p-0123456789abcdef", digest="d-42", admin_ids=("29:anna", "29:bo"))
ANNA = EntraPerson(id="e-anna", name="Anna Svensson", upn="anna@contoso.com")
ANNA_APP = AppUser(id="u-17", name="Anna Svensson")
NOW = datetime(2026, 12, 3, 14, 2, tzinfo=UTC)  # the server's clock when the cards are drawn
ENGLISH_NOW = Texts(Lang.EN, NOW)
SWEDISH_NOW = Texts(Lang.SV, NOW)


def sample_views() -> dict[str, Any]:
    """One view per card type, with realistic data (the golden set)."""
    match = MatchView(
        ref=REF,
        entra=ANNA,
        app_user=ANNA_APP,
        key="phone",
        value="+46701234567",
        source="mobilePhone",
        changes={"email": Change("anna.s@old.example", "anna@contoso.com")},
    )
    new = NewView(
        ref=REF,
        entra=EntraPerson(id="e-bo", name="Bo Ek", upn="bo@contoso.com"),
        fields={
            "first_name": Change(None, "Bo"),
            "last_name": Change(None, "Ek"),
            "tags": Change(None, ("Sales", "Stockholm")),
        },
        choices=(LinkChoice("u-1", "Bo Eklund"), LinkChoice("u-2", "Reception")),
        choices_total=2,
    )
    update = UpdateView(
        ref=REF,
        entra=ANNA,
        app_user=ANNA_APP,
        changes={"last_name": Change("Svensson", "Berg"), "display_name": Change("A S", "")},
    )
    removal = RemovalView(ref=REF, entra=ANNA, app_user=ANNA_APP, cause=RemovalCause.DELETED)
    conflict = ConflictView(
        ref=REF,
        number="+46701234567",
        claimants=(ANNA, EntraPerson(id="e-carl", name="Carl Lind", upn="carl@contoso.com")),
        holder=ANNA_APP,
    )
    return {
        "match": (build.match_card, match),
        "new": (build.new_card, new),
        "update": (build.update_card, update),
        "removal": (build.removal_card, removal),
        "removal_soft_deleted": (
            build.removal_card,
            RemovalView(
                ref=REF,
                entra=ANNA,
                app_user=ANNA_APP,
                cause=RemovalCause.SOFT_DELETED,
                restorable_until=date(2026, 12, 24),
            ),
        ),
        "removal_confirm": (build.removal_confirm_card, removal),
        "conflict": (build.conflict_card, conflict),
        "stale": (build.stale_card, update),
        "guard": (
            build.guard_card,
            GuardView(ref=REF, removals=31, linked=70, tenant="contoso"),
        ),
        "digest": (
            build.digest_card,
            DigestView(
                ref=REF,
                counts={Kind.MATCH: 12, Kind.UPDATE: 3, Kind.NEW: 1},
                items=tuple(DigestItem(Kind.MATCH, f"User {i}") for i in range(12)),
            ),
        ),
        "auto_applied": (
            build.auto_applied_card,
            AutoAppliedView(
                applied=3,
                items=tuple(DigestItem(Kind.UPDATE, n) for n in ("Anna", "Bo", "Carl")),
                at=NOW - timedelta(hours=12),
            ),
        ),
        "status": (
            build.status_card,
            StatusView(
                tenants=(
                    TenantStatus(
                        name="contoso",
                        connected=True,
                        last_sync_at=NOW,
                        last_sync_ok=True,
                        next_sync_at=datetime(2026, 12, 4, 2, 0, tzinfo=UTC),
                        synced=70,
                        syncable=70,
                        pending={Kind.MATCH: 2},
                    ),
                    TenantStatus(
                        name="fabrikam",
                        connected=False,
                        error_code="AADSTS7000215",
                        error_hint="The client secret is wrong. Paste the secret's Value.",
                        last_sync_at=NOW - timedelta(hours=1),
                        last_sync_ok=False,
                        last_sync_reason="sign-in failed",
                    ),
                )
            ),
        ),
        "status_single": (
            build.status_card,
            StatusView(tenants=(TenantStatus(name="contoso", connected=True),)),
        ),
        "status_mail_failed": (
            build.status_card,
            StatusView(
                tenants=(TenantStatus(name="contoso", connected=True),),
                mail=MailStatus(
                    at="2026-12-03 08:30",
                    ok=False,
                    recipients=2,
                    error_code="mail_unavailable",
                    error_message="the mail server smtp.contoso.com:587 did not answer",
                    error_hint="Check [notify.mail] host and port.",
                ),
            ),
        ),
        "decided": (
            build.decided_card,
            DecidedView(
                title="Anna Svensson",
                outcome=Outcome.ACCEPTED,
                actor="Maria Admin",
                at=NOW,
                kind=Kind.MATCH,
                app_user=ANNA_APP,
                changes={"email": Change("anna.s@old.example", "anna@contoso.com")},
            ),
        ),
        "decided_linked": (
            build.decided_card,
            DecidedView(
                title="Bo Ek",
                outcome=Outcome.LINKED,
                actor="Maria Admin",
                at=NOW - timedelta(days=2),
                kind=Kind.NEW,
                app_user=AppUser(id="u-1", name="Bo Eklund"),
            ),
        ),
        "decided_owner": (
            build.decided_card,
            DecidedView(
                title="Anna Svensson",
                outcome=Outcome.OWNER_PICKED,
                actor="Maria Admin",
                at=NOW,
                kind=Kind.CONFLICT,
                number="+46701234567",
                owner=ANNA,
            ),
        ),
        "decided_removed_sync": (
            build.decided_card,
            DecidedView(
                title="Anna Svensson",
                outcome=Outcome.REMOVED_SYNC,
                actor="Maria Admin",
                at=NOW,
                kind=Kind.REMOVAL,
                app_user=ANNA_APP,
            ),
        ),
        "refusal_not_admin": (
            build.refusal_card,
            RefusalView(reason=RefusalReason.NOT_ADMIN, proposal=match),
        ),
        "refusal_not_pending": (
            build.refusal_card,
            RefusalView(
                reason=RefusalReason.NOT_PENDING,
                actor="Maria Admin",
                at=NOW - timedelta(days=1),
                state="applied",
            ),
        ),
        "settings": (
            build.settings_card,
            SettingsView(
                ref=CardRef(pid="settings:contoso", digest="s-1"),
                tags=("department",),
                notify_email=("servicedesk@contoso.com",),
                errors={
                    "first_name": "Unknown Graph attribute 'givenname' (did you mean givenName?)"
                },
            ),
        ),
        "connect": (
            build.connect_card,
            ConnectView(
                ref=CardRef(pid="connect", digest="c-1"),
                tenant_id="contoso.onmicrosoft.com",
                client_id="11111111-2222-3333-4444-555555555555",
                consent_url=admin_consent_url(
                    "contoso.onmicrosoft.com", "11111111-2222-3333-4444-555555555555"
                ),
                errors={"client_secret": "AADSTS7000215: paste the secret's Value."},
            ),
        ),
        "pending": (
            build.pending_list_card,
            PendingListView(
                items=(
                    PendingItem(Kind.MATCH, "Anna Svensson", "phone +46701234567"),
                    PendingItem(Kind.NEW, "Bo Ek"),
                )
            ),
        ),
        "ignored": (
            build.ignored_list_card,
            IgnoredListView(items=(IgnoredItem("e-bo", "Bo Ek", "i-1"),)),
        ),
        "audit": (
            build.audit_card,
            AuditView(
                entries=(
                    AuditEntry("Maria Admin", "applied", NOW, "Anna Svensson", "Svensson", "Berg"),
                )
            ),
        ),
        "help": (
            build.help_card,
            HelpView(
                commands=(
                    ("sync now", "Read Entra now and propose what changed"),
                    ("status", "Connection, last and next sync, synced users, pending"),
                )
            ),
        ),
        "preview": (
            build.preview_card,
            PreviewView(
                items=(
                    PreviewItem(Kind.UPDATE, "Anna", {"last_name": Change("S", "Berg")}),
                    PreviewItem(
                        Kind.NEW,
                        "Bo Ek",
                        {"first_name": Change(None, "Bo"), "email": Change(None, "bo@contoso.com")},
                    ),
                ),
                counts={Kind.UPDATE: 1, Kind.NEW: 1},
            ),
        ),
        "settings_daily": (
            build.settings_card,
            SettingsView(ref=CardRef(pid="settings:contoso", digest="s-1"), mode="daily"),
        ),
    }


SAMPLES = sample_views()


def render(name: str, texts: Texts = ENGLISH_NOW) -> dict[str, Any]:
    fn, view = SAMPLES[name]
    card: dict[str, Any] = fn(view, texts)
    return card


@pytest.fixture(scope="module")
def schema() -> CardSchema:
    return CardSchema("1.5")


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def actions_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in walk(card) if str(n.get("type", "")).startswith("Action.")]


def texts_of(card: dict[str, Any]) -> list[str]:
    out = []
    for n in walk(card):
        if n.get("type") == "TextBlock":
            out.append(n["text"])
        if n.get("type") == "FactSet":
            for fact in n["facts"]:
                out += [fact["title"], fact["value"]]
    return out


# --- golden -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_card_matches_golden_file(name: str) -> None:
    card = render(name)
    path = GOLDEN / f"{name}.json"
    text = json.dumps(card, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1"
    assert json.loads(path.read_text(encoding="utf-8")) == card


# --- schema and envelope ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_card_validates_against_the_official_1_5_schema(
    name: str, schema: CardSchema
) -> None:
    assert schema.errors(render(name)) == []


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_card_has_the_1_5_envelope(name: str) -> None:
    card = render(name)
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.5"


def test_schema_validator_rejects_a_broken_card(schema: CardSchema) -> None:
    card = render("match")
    card["actions"][0]["verbb"] = "accept"
    assert schema.errors(card)


def test_only_the_filtered_choice_style_is_added_to_the_official_schema() -> None:
    official = CardSchema("1.5", teams=False)
    new = render("new")
    assert any("filtered" in e or "not valid" in e for e in official.errors(new))
    assert CardSchema("1.5").errors(new) == []


# --- the action contract ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_action_is_execute_with_only_pid_and_digest(name: str) -> None:
    card = render(name)
    for action in actions_of(card):
        if action["type"] == "Action.ToggleVisibility":  # local: sends nothing to the bot
            assert set(action) == {"type", "title", "targetElements"}
            continue
        assert action["type"] == "Action.Execute"
        assert action["verb"] in {v.value for v in Verb}
        assert set(action["data"]) == {"pid", "d"}
        assert all(isinstance(x, str) for x in action["data"].values())


@pytest.mark.parametrize(
    "name",
    [
        "match",
        "new",
        "update",
        "removal",
        "removal_soft_deleted",
        "removal_confirm",
        "conflict",
        "stale",
        "guard",
        "digest",
    ],
)
def test_proposal_cards_carry_a_refresh_action_with_the_admin_ids(name: str) -> None:
    refresh = render(name)["refresh"]
    assert refresh["action"]["verb"] == "refresh"
    assert refresh["action"]["data"] == {"pid": REF.pid, "d": REF.digest}
    assert refresh["userIds"] == list(REF.admin_ids)


def test_refresh_user_ids_are_capped_at_60() -> None:
    _, view = SAMPLES["match"]
    card = build.match_card(
        MatchView(
            ref=CardRef("p", "d", ADMINS),
            entra=view.entra,
            app_user=view.app_user,
            key="email",
            value="a@b.c",
        )
    )
    assert card["refresh"]["userIds"] == list(ADMINS[:60])


@pytest.mark.parametrize(
    "name", ["decided", "status", "help", "preview", "auto_applied", "refusal_not_admin"]
)
def test_informational_cards_have_no_buttons_and_no_refresh(name: str) -> None:
    card = render(name)
    assert actions_of(card) == []
    assert "refresh" not in card


@pytest.mark.parametrize(
    ("name", "verbs"),
    [
        ("match", ["accept", "ignore"]),
        ("new", ["link", "create", "ignore"]),
        ("update", ["apply", "ignore"]),
        ("removal", ["remove_sync", "delete_user"]),
        ("removal_confirm", ["delete_user_confirm", "refresh"]),
        ("conflict", ["pick_owner", "ignore"]),
        ("guard", ["guard_confirm", "guard_dismiss"]),
        ("digest", ["accept_all", "apply_all"]),
        ("settings", ["settings_save", "refresh"]),
        ("connect", ["connect_save"]),
        ("ignored", ["unignore"]),
    ],
)
def test_card_offers_exactly_its_verbs(name: str, verbs: list[str]) -> None:
    card = render(name)
    assert [a["verb"] for a in card.get("actions", [])] + [
        a["verb"] for el in card["body"] for a in actions_of(el) if "verb" in a
    ] == verbs


def test_only_choosing_buttons_send_inputs() -> None:
    new = {a["verb"]: a for a in render("new")["actions"]}
    assert new["link"]["associatedInputs"] == "auto"
    assert new["create"]["associatedInputs"] == "none"
    assert new["ignore"]["associatedInputs"] == "none"
    conflict = {a["verb"]: a for a in render("conflict")["actions"]}
    assert conflict["pick_owner"]["associatedInputs"] == "auto"
    assert conflict["ignore"]["associatedInputs"] == "none"


def test_link_picker_is_a_filtered_choice_set_named_target() -> None:
    (picker,) = [n for n in walk(render("new")) if n.get("type") == "Input.ChoiceSet"]
    assert picker["id"] == "target"
    assert picker["style"] == "filtered"
    assert [c["value"] for c in picker["choices"]] == ["u-1", "u-2"]


def test_link_picker_offers_at_most_100_choices_and_says_how_many_exist() -> None:
    _, view = SAMPLES["new"]
    choices = tuple(LinkChoice(f"u-{i}", f"User {i}") for i in range(150))
    card = build.new_card(
        NewView(ref=REF, entra=view.entra, fields=view.fields, choices=choices, choices_total=150)
    )
    (picker,) = [n for n in walk(card) if n.get("type") == "Input.ChoiceSet"]
    assert len(picker["choices"]) == 100
    assert any("Showing 100 of 150" in t for t in texts_of(card))


def test_new_card_without_candidates_has_no_link_button() -> None:
    _, view = SAMPLES["new"]
    card = build.new_card(NewView(ref=REF, entra=view.entra))
    assert [a["verb"] for a in card["actions"]] == ["create", "ignore"]


def test_conflict_owner_picker_lists_every_claimant() -> None:
    (picker,) = [n for n in walk(render("conflict")) if n.get("type") == "Input.ChoiceSet"]
    assert picker["id"] == "owner"
    assert [c["value"] for c in picker["choices"]] == ["e-anna", "e-carl"]


def test_digest_without_matches_or_updates_has_no_bulk_buttons() -> None:
    card = build.digest_card(DigestView(ref=REF, counts={Kind.NEW: 4}))
    assert "actions" not in card


def test_digest_lists_first_k_names_and_says_how_many_more() -> None:
    items = tuple(DigestItem(Kind.MATCH, f"User {i}") for i in range(25))
    card = build.digest_card(DigestView(ref=REF, counts={Kind.MATCH: 25}, items=items, limit=5))
    texts = texts_of(card)
    assert sum("User" in t for t in texts) == 5
    assert any("and 20 more" in t for t in texts)


# --- content ------------------------------------------------------------------------------


def test_match_card_says_why_it_matched() -> None:
    assert any("phone \\+46701234567 (mobilePhone)" in t for t in texts_of(render("match")))


def test_update_card_shows_old_and_new_values() -> None:
    texts = texts_of(render("update"))
    assert "Svensson \u2192 Berg" in texts
    assert "A S \u2192 _(empty)_" in texts


def test_status_card_shows_green_connection_and_counter() -> None:
    texts = texts_of(render("status"))
    assert "\u2705 Connected" in texts
    assert "**Synced:** 70/70 synced" in texts


def test_status_card_shows_the_aadsts_code_and_its_fix() -> None:
    texts = texts_of(render("status"))
    assert any("AADSTS7000215" in t for t in texts)
    assert any("secret's Value" in t for t in texts)
    assert any("failed: sign\\-in failed" in t for t in texts)


def test_status_card_names_tenants_only_when_there_are_several() -> None:
    assert any("Tenant contoso" in t for t in texts_of(render("status")))
    assert not any("Tenant contoso" in t for t in texts_of(render("status_single")))


def test_decided_card_says_who_and_when_in_the_viewers_time_zone() -> None:
    line = "\u2705 **Accepted** by Maria Admin, {{TIME(2026-12-03T14:02:00Z)}}"
    assert line in texts_of(render("decided"))


def test_decided_card_of_another_day_shows_the_date_too() -> None:
    when = "{{DATE(2026-12-01T14:02:00Z, SHORT)}} {{TIME(2026-12-01T14:02:00Z)}}"
    assert any(t.endswith(when) for t in texts_of(render("decided_linked")))


def test_decided_card_keeps_what_was_decided() -> None:
    accepted = texts_of(render("decided"))
    assert "Linked to the directory user Anna Svensson (id u\\-17)." in accepted
    assert "anna\\.s@old\\.example \u2192 anna@contoso\\.com" in accepted
    linked = texts_of(render("decided_linked"))
    assert "Linked to the directory user Bo Eklund (id u\\-1)." in linked
    owner = texts_of(render("decided_owner"))
    assert "Anna Svensson (anna@contoso\\.com) keeps the number \\+46701234567." in owner
    kept = texts_of(render("decided_removed_sync"))
    assert any("was kept with all its data" in t for t in kept)


def test_stale_card_explains_nothing_was_applied() -> None:
    card = render("stale")
    assert build.STALE_NOTICE in texts_of(card)
    assert [a["verb"] for a in card["actions"]] == ["apply", "ignore"]


def test_refusal_for_non_admin_shows_the_proposal_read_only() -> None:
    card = render("refusal_not_admin")
    texts = texts_of(card)
    assert texts[0] == "Only admins can do this."
    assert any("matches a directory user" in t for t in texts)


def test_refusal_for_a_decided_item_names_who_handled_it() -> None:
    text = build.refusal_text(
        RefusalView(reason=RefusalReason.NOT_PENDING, actor="Maria Admin", at=NOW),
        ENGLISH_NOW,
    )
    assert text == (
        "This item is no longer pending: handled by Maria Admin at {{TIME(2026-12-03T14:02:00Z)}}."
    )


def test_settings_errors_show_with_a_warning_sign_under_their_field() -> None:
    body = render("settings")["body"]
    ids = [el.get("id") for el in body]
    err = body[ids.index("first_name") + 1]
    assert err["type"] == "TextBlock"
    assert err["text"].startswith("\u26a0\ufe0f Unknown Graph attribute")
    assert "color" not in err  # default colour: readable on light and dark themes
    assert "givenName" in err["text"]


def test_settings_form_has_an_input_for_every_setting() -> None:
    ids = {n["id"] for n in walk(render("settings")) if str(n.get("type")).startswith("Input.")}
    assert ids == set(build.SETTINGS_INPUTS)


def test_connect_card_never_holds_a_secret_value() -> None:
    card = build.connect_card(
        ConnectView(ref=CardRef("connect", "c"), tenant_id="t", client_id="c")
    )
    (secret,) = [n for n in walk(card) if n.get("id") == "client_secret"]
    assert secret["style"] == "password"
    assert "value" not in secret
    assert "secret" not in {f.lower() for f in ConnectView.__dataclass_fields__}


def test_connect_card_links_the_admin_consent_url() -> None:
    url = admin_consent_url("contoso.onmicrosoft.com", "abc")
    assert (
        url
        == "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?client_id=abc"
    )
    sample_url = SAMPLES["connect"][1].consent_url
    assert any(f"]({sample_url})" in t for t in texts_of(render("connect")))


def test_consent_link_target_cannot_be_broken_out_of() -> None:
    card = build.connect_card(
        ConnectView(ref=CardRef("c", "d"), consent_url="https://login.microsoftonline.com/x) [y](z")
    )
    (text,) = [t for t in texts_of(card) if "](" in t]
    target = text.split("](", 1)[1]
    assert target.count(")") == 1 and target.endswith(")")
    assert " " not in target


def test_ignored_list_unignore_buttons_carry_the_entra_id() -> None:
    (action,) = actions_of(render("ignored"))
    assert action["data"] == {"pid": "e-bo", "d": "i-1"}


# --- escaping -----------------------------------------------------------------------------


def test_malicious_name_is_inert_in_every_text_slot() -> None:
    person = EntraPerson(id="e-x", name=EVIL, upn=EVIL)
    app = AppUser(id="u-x", name=EVIL)
    cards = [
        build.match_card(
            MatchView(REF, person, app, "email", EVIL, EVIL, {EVIL: Change(EVIL, EVIL)})
        ),
        build.new_card(
            NewView(REF, person, {"tags": Change(None, (EVIL,))}, (LinkChoice("u", EVIL),))
        ),
        build.update_card(UpdateView(REF, person, app, {"email": Change(EVIL, EVIL)})),
        build.removal_card(RemovalView(REF, person, app, RemovalCause.DISABLED)),
        build.conflict_card(ConflictView(REF, EVIL, (person, person), app)),
        build.decided_card(DecidedView(EVIL, Outcome.HANDLED, EVIL, EVIL, (EVIL,))),
        build.pending_list_card(PendingListView((PendingItem(Kind.NEW, EVIL, EVIL),))),
        build.audit_card(AuditView((AuditEntry(EVIL, EVIL, EVIL, EVIL, EVIL, EVIL),))),
    ]
    for card in cards:
        for text in texts_of(card):
            assert "<script>" not in text
            assert "[click](http" not in text
            assert "**Boss**" not in text
        assert any(
            "\\*\\*Boss\\*\\* \\[click\\]\\(http://evil\\) \\<script\\>" in t
            for t in texts_of(card)
        )


def test_escape_md_of_the_malicious_name() -> None:
    assert escape_md(EVIL) == (
        "\\*\\*Boss\\*\\* \\[click\\]\\(http://evil\\) \\<script\\>alert\\(1\\)\\</script\\>"
    )


@pytest.mark.parametrize("marker", ["# ", "- ", "+ ", "* ", "> ", "1. ", "1) "])
def test_escape_md_neutralises_leading_list_and_heading_markers(marker: str) -> None:
    out = escape_md(marker + "Boss")
    assert out.startswith("\\") or out[1] == "\\"
    assert is_inert(out)


def test_escape_md_strips_control_and_bidi_characters_and_newlines() -> None:
    assert escape_md("Anna\n# Boss\x00\u202e\r\nX") == "Anna \\# Boss X"


def test_escape_md_bounds_length_with_an_ellipsis() -> None:
    out = escape_md("a" * 500)
    assert len(out) == 200
    assert out.endswith("\u2026")


def test_escape_md_does_not_change_ordinary_names() -> None:
    assert escape_md("Åsa Öberg-Ek") == "Åsa Öberg\\-Ek"
    assert escape_md(None) == ""
    assert escape_md(("Sales", "HQ")) == "Sales, HQ"


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_escaped_text_is_inert_and_bounded(s: str, limit: int) -> None:
    out = escape_md(s, limit)
    assert is_inert(out)
    assert len(out) <= 2 * limit
    assert "\n" not in out and "\r" not in out


@given(st.text(alphabet=st.sampled_from([*sorted(MD_SPECIAL), "a", " ", "\n"])))
def test_escaping_keeps_the_visible_text(s: str) -> None:
    out = escape_md(s, 10_000)
    unescaped = "".join(c for i, c in enumerate(out) if not (c == "\\" and _is_escape(out, i)))
    assert unescaped == clean(s, 10_000)


def _is_escape(s: str, i: int) -> bool:
    # a backslash at i is an escape when an even number of backslashes precede it
    n = 0
    while i - n - 1 >= 0 and s[i - n - 1] == "\\":
        n += 1
    return n % 2 == 0


# --- size ---------------------------------------------------------------------------------

LONG = "\U0001f600" * 150 + "W" * 1000  # worst case: 4-byte characters, then too long
LONG_ID = "x" * 128


def _worst_views() -> list[tuple[str, Callable[[Any], dict[str, Any]], Any]]:
    person = EntraPerson(id=LONG_ID, name=LONG, upn=LONG)
    app = AppUser(id=LONG_ID, name=LONG)
    ref = CardRef(LONG_ID, LONG_ID, ADMINS)
    changes = {f"{LONG}{i}": Change((LONG,) * 10, (LONG,) * 10) for i in range(60)}
    items60 = tuple(DigestItem(Kind.MATCH, LONG) for _ in range(60))
    return [
        ("match", build.match_card, MatchView(ref, person, app, LONG, LONG, LONG, changes)),
        (
            "new",
            build.new_card,
            NewView(
                ref, person, changes, tuple(LinkChoice(LONG_ID, LONG) for _ in range(500)), 9999
            ),
        ),
        ("update", build.update_card, UpdateView(ref, person, app, changes)),
        ("stale", build.stale_card, UpdateView(ref, person, app, changes)),
        ("conflict", build.conflict_card, ConflictView(ref, LONG, (person,) * 60, app)),
        ("digest", build.digest_card, DigestView(ref, {Kind.MATCH: 60}, items60, limit=60)),
        ("auto_applied", build.auto_applied_card, AutoAppliedView(60, items60, LONG, limit=60)),
        (
            "pending",
            build.pending_list_card,
            PendingListView(tuple(PendingItem(Kind.NEW, LONG, LONG) for _ in range(60)), limit=60),
        ),
        (
            "ignored",
            build.ignored_list_card,
            IgnoredListView(
                tuple(IgnoredItem(LONG_ID, LONG, LONG_ID) for _ in range(60)), limit=60
            ),
        ),
        (
            "audit",
            build.audit_card,
            AuditView(tuple(AuditEntry(LONG, LONG, LONG, LONG, LONG, LONG) for _ in range(60)), 60),
        ),
        (
            "preview",
            build.preview_card,
            PreviewView(
                tuple(PreviewItem(Kind.UPDATE, LONG, changes) for _ in range(60)), limit=60
            ),
        ),
        (
            "status",
            build.status_card,
            StatusView(
                tuple(
                    TenantStatus(LONG, False, LONG, LONG, LONG, False, LONG, LONG, 1, 2)
                    for _ in range(60)
                )
            ),
        ),
        ("help", build.help_card, HelpView(tuple((LONG, LONG) for _ in range(60)))),
        (
            "decided",
            build.decided_card,
            DecidedView(LONG, Outcome.APPLIED, LONG, LONG, (LONG,) * 60),
        ),
    ]


@pytest.mark.parametrize(
    ("name", "fn", "view"), _worst_views(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_card_stays_under_28_kb_with_60_worst_case_items(
    name: str, fn: Callable[[Any], dict[str, Any]], view: Any, schema: CardSchema
) -> None:
    card = fn(view)
    assert build.card_size(card) < build.MAX_CARD_BYTES
    assert len(json.dumps(card).encode()) < 100 * 1024  # even ASCII-escaped: Teams' limit
    assert schema.errors(card) == []


def test_long_lists_say_how_many_were_left_out() -> None:
    items = tuple(PendingItem(Kind.NEW, LONG, LONG) for _ in range(60))
    card = build.pending_list_card(PendingListView(items, limit=60))
    shown = sum(t.startswith("\u2022") for t in texts_of(card))
    assert 0 < shown < 60
    assert any(f"and {60 - shown} more" in t for t in texts_of(card))


# --- notice cards (cards.notices) -----------------------------------------------------------

NOTICES: dict[str, Any] = {
    "failed": lambda: notices.failed_card(("It broke *badly*", "Try again"), CardRef("p1", "d1")),
    "crashed": notices.crashed_card,
    "not_allowed": lambda: notices.not_allowed_card("Only admins can do this", "Ask an admin."),
    "not_served": notices.not_served_card,
    "disconnect_confirm": lambda: notices.disconnect_confirm_card("tok"),
    "disconnected": lambda: notices.disconnected_card("Ann <b>Admin</b>", "14:02"),
    "guard_held": lambda: notices.guard_held_card(CardRef("guard:contoso:main", "g")),
    "settings_saved": lambda: notices.settings_saved_card("Ann Admin", "14:02"),
}


@pytest.mark.parametrize("name", sorted(NOTICES))
def test_every_notice_card_validates_and_its_buttons_send_only_pid_and_digest(
    name: str, schema: CardSchema
) -> None:
    card = NOTICES[name]()
    assert schema.errors(card) == []
    for action in actions_of(card):
        assert action["type"] == "Action.Execute"
        assert set(action["data"]) == {"pid", "d"}


def test_notice_text_from_users_is_escaped() -> None:
    texts = " ".join(texts_of(notices.disconnected_card("Ann <b>Admin</b>", "14:02")))
    assert "<b>" not in texts


def test_the_disconnect_confirmation_carries_the_server_issued_token() -> None:
    confirm, cancel = actions_of(notices.disconnect_confirm_card("server-token"))
    assert (confirm["verb"], confirm["data"]["d"], confirm["style"]) == (
        "disconnect_confirm",
        "server-token",
        "destructive",
    )
    assert cancel["verb"] == "disconnect_cancel"


# --- removals: soft-deleted or gone -----------------------------------------------------------


def _card_text(card: Mapping[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


def test_removal_card_of_a_soft_deleted_user_says_restorable_and_until_when() -> None:
    view = RemovalView(
        REF, ANNA, ANNA_APP, RemovalCause.SOFT_DELETED, restorable_until="2 Jan 2027"
    )
    text = _card_text(build.removal_card(view))
    assert "Soft-deleted" in text and "restore" in text and "until 2 Jan 2027" in text
    assert "Gone" not in text


def test_removal_card_of_a_deleted_user_says_it_is_gone() -> None:
    text = _card_text(build.removal_card(RemovalView(REF, ANNA, ANNA_APP, RemovalCause.DELETED)))
    assert "Gone: permanently deleted" in text and "Soft-deleted" not in text


def test_removal_card_of_a_disabled_user_says_nothing_about_restoring() -> None:
    text = _card_text(build.removal_card(RemovalView(REF, ANNA, ANNA_APP, RemovalCause.DISABLED)))
    assert "Soft-deleted" not in text and "Gone" not in text
