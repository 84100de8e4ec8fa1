"""Card builders: pure functions from view records (cards.views) to Adaptive Card 1.5 JSON.

Rules every builder keeps:
- the card is ``{"$schema", "type": "AdaptiveCard", "version": "1.5", ...}``;
- every button is an ``Action.Execute`` whose ``data`` is exactly ``{"pid", "d"}``; the only
  other values Teams sends are the inputs the admin fills in (``target``, ``owner``, settings);
  buttons that need no input send none (``associatedInputs: "none"``);
- proposal cards carry a ``refresh`` block (verb ``refresh``, same data, ``userIds`` <= 60);
- untrusted strings pass through :func:`cards.text.escape_md` (Markdown slots) or
  :func:`cards.text.plain` (plain slots);
- every product string goes through the viewer's :class:`cards.catalogue.Texts` (the last
  argument of each builder; English when not given); times are shown with
  :meth:`~cards.catalogue.Texts.when` (the viewer's own time zone);
- text is drawn in the default colour (never ``good``/``warning``/``attention`` text, which
  fails WCAG AA on Teams' light or dark theme); meaning comes from words, icons and
  container styles;
- list builders cap their lists, say "and N more", and shrink further until the card fits
  in :data:`SIZE_BUDGET` bytes (UTF-8 JSON), well under Teams' 28 KB.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from cards.catalogue import ENGLISH, N_, Texts
from cards.text import escape_md, fmt_value, md_link, plain
from cards.views import (
    INPUT_OWNER,
    INPUT_TARGET,
    MAX_LINK_CHOICES,
    MAX_REFRESH_USERS,
    AppUser,
    At,
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
    IgnoredListView,
    MailStatus,
    MatchView,
    NewView,
    Outcome,
    Pager,
    PendingListView,
    PreviewView,
    ProposalView,
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

Card = dict[str, Any]
Element = dict[str, Any]

SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
MAX_CARD_BYTES = 28 * 1024  # Teams: keep every card under this
SIZE_BUDGET = 26 * 1024  # what the builders aim for (margin for the activity envelope)
MAX_CLAIMANTS = 20
MAX_CHANGES_SHOWN = 15
MAX_TENANTS_SHOWN = 20
MAX_HELP_ROWS = 40
MAX_SUMMARY_LINES = 20

# Labels are catalogue keys (English); they are translated where they are shown.
KIND_LABELS: Mapping[Kind, str] = {
    Kind.MATCH: N_("Match"),
    Kind.NEW: N_("New"),
    Kind.UPDATE: N_("Update"),
    Kind.REMOVAL: N_("Removal"),
    Kind.CONFLICT: N_("Conflict"),
}

# "Email", not "E-mail": a fact title may break at a hyphen ("E-/mail").
FIELD_LABELS: Mapping[str, str] = {
    "first_name": N_("First name"),
    "last_name": N_("Last name"),
    "display_name": N_("Display name"),
    "email": N_("Email"),
    "phones": N_("Phones"),
    "tags": N_("Tags"),
}

CAUSE_TEXT: Mapping[RemovalCause, str] = {
    RemovalCause.DELETED: N_("{name} was deleted in Entra"),
    RemovalCause.SOFT_DELETED: N_("{name} was deleted in Entra"),
    RemovalCause.DISABLED: N_("{name} was disabled in Entra"),
    RemovalCause.OUT_OF_SCOPE: N_("{name} is out of the sync's scope"),
}

OUTCOME_TEXT: Mapping[Outcome, str] = {
    Outcome.ACCEPTED: N_("Accepted"),
    Outcome.IGNORED: N_("Ignored"),
    Outcome.APPLIED: N_("Applied"),
    Outcome.LINKED: N_("Linked"),
    Outcome.CREATED: N_("Created"),
    Outcome.REMOVED_SYNC: N_("Sync removed"),
    Outcome.DELETED: N_("Deleted"),
    Outcome.OWNER_PICKED: N_("Owner chosen"),
    Outcome.CONFIRMED: N_("Confirmed"),
    Outcome.DISMISSED: N_("Dismissed"),
    Outcome.SUPERSEDED: N_("Superseded"),
    Outcome.HANDLED: N_("Handled"),
}

# An icon per outcome: the decided line is default-coloured text (contrast), the icon says
# at a glance whether something was written, removed or left alone.
OUTCOME_ICON: Mapping[Outcome, str] = {
    Outcome.ACCEPTED: "\u2705",
    Outcome.APPLIED: "\u2705",
    Outcome.LINKED: "\u2705",
    Outcome.CREATED: "\u2705",
    Outcome.OWNER_PICKED: "\u2705",
    Outcome.CONFIRMED: "\u2705",
    Outcome.REMOVED_SYNC: "\u2796",
    Outcome.DELETED: "\U0001f5d1\ufe0f",
    Outcome.IGNORED: "\u23f8\ufe0f",
    Outcome.DISMISSED: "\u23f8\ufe0f",
    Outcome.SUPERSEDED: "\u21bb",
    Outcome.HANDLED: "\u2714\ufe0f",
}

STALE_NOTICE = N_(
    "The data in Entra changed since this card was posted; nothing was applied. "
    "Review the current values."
)


def when(t: Texts, at: At, limit: int = 40) -> str:
    """A moment for TextBlock text: a datetime in the viewer's zone, text escaped."""
    if isinstance(at, datetime):
        return t.when(at)
    return escape_md(at, limit)


# --- measuring ------------------------------------------------------------------------------


def card_size(card: Card) -> int:
    """Bytes of the card as UTF-8 JSON (default separators, as the bot sends it)."""
    return len(json.dumps(card, ensure_ascii=False).encode("utf-8"))


def _fit(render: Callable[[int], Card], n: int) -> Card:
    """``render(n)``, with ``n`` lowered until the card fits in SIZE_BUDGET."""
    card = render(n)
    while n > 0 and card_size(card) > SIZE_BUDGET:
        n = min(n - 1, n * 4 // 5)
        card = render(n)
    return card


# --- elements -------------------------------------------------------------------------------


def _card(
    body: list[Element],
    actions: Sequence[Element] = (),
    refresh: CardRef | None = None,
    t: Texts = ENGLISH,
) -> Card:
    card: Card = {
        "$schema": SCHEMA_URL,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    }
    if actions:
        card["actions"] = list(actions)
    if refresh is not None:
        card["refresh"] = _refresh(refresh, t)
    return card


def _refresh(ref: CardRef, t: Texts) -> dict[str, Any]:
    out: dict[str, Any] = {
        "action": {
            "type": "Action.Execute",
            "title": t("Refresh"),
            "verb": Verb.REFRESH.value,
            "data": _data(ref.pid, ref.digest),
        }
    }
    user_ids = list(dict.fromkeys(u for u in ref.admin_ids if u))[:MAX_REFRESH_USERS]
    if user_ids:
        out["userIds"] = user_ids
    return out


def _data(pid: str, digest: str) -> dict[str, str]:
    return {"pid": pid, "d": digest}


def _execute(
    title: str,
    verb: Verb,
    pid: str,
    digest: str,
    *,
    style: str | None = None,
    inputs: bool = False,
) -> Element:
    action: Element = {
        "type": "Action.Execute",
        "title": title,
        "verb": verb.value,
        "data": _data(pid, digest),
        "associatedInputs": "auto" if inputs else "none",
    }
    if style is not None:
        action["style"] = style
    return action


def _text(text: str, **kw: Any) -> Element:
    return {"type": "TextBlock", "text": text, "wrap": True, **kw}


def _heading(text: str) -> Element:
    return _text(text, size="Medium", weight="Bolder")


def _subheading(text: str) -> Element:
    return _text(text, weight="Bolder", spacing="Medium")


def _kind_label(t: Texts, kind: Kind) -> Element:
    return _text(t(KIND_LABELS[kind]).upper(), size="Small", isSubtle=True, weight="Bolder")


def _notice(text: str, style: str = "attention") -> Element:
    """A framed message; default-coloured bold text (readable on both themes)."""
    return {
        "type": "Container",
        "style": "warning" if style == "warning" else "attention",
        "items": [_text(text, weight="Bolder")],
    }


def _facts(pairs: Iterable[tuple[str, str]]) -> Element:
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs]}


def _field_label(t: Texts, name: str) -> str:
    label = FIELD_LABELS.get(name)
    return t(label) if label else escape_md(name, 40)


def _change_facts(
    t: Texts,
    changes: Mapping[str, Change],
    *,
    new_only: bool = False,
    limit: int = MAX_CHANGES_SHOWN,
) -> list[Element]:
    items = list(changes.items())
    shown = items[: max(0, min(limit, MAX_CHANGES_SHOWN))]
    pairs = [
        (
            _field_label(t, name),
            _value(t, ch.new) if new_only else f"{_value(t, ch.old)} \u2192 {_value(t, ch.new)}",
        )
        for name, ch in shown
    ]
    out: list[Element] = [_facts(pairs)] if pairs else []
    if len(items) > len(shown):
        out.append(_more(t, len(items) - len(shown), N_("\u2026 and {n} more fields")))
    return out


def _value(t: Texts, value: Any) -> str:
    """A field value, escaped; empty values read "(empty)" in the viewer's language."""
    if value is None or value == "" or value == () or value == []:
        return "_" + t("(empty)") + "_"
    return fmt_value(value)


def _more(t: Texts, n: int, text: str = N_("\u2026 and {n} more")) -> Element:
    return _text(t(text, n=n), isSubtle=True, spacing="Small")


def _person(p: EntraPerson) -> str:
    if p.upn:
        return f"{escape_md(p.name, 100)} ({escape_md(p.upn, 100)})"
    return escape_md(p.name, 100)


def _app_user(t: Texts, u: AppUser) -> str:
    return t("{name} (id {id})", name=escape_md(u.name, 100), id=escape_md(u.id, 64))


def _counts_line(t: Texts, counts: Mapping[Kind, int]) -> str:
    return " \u00b7 ".join(f"{t(KIND_LABELS[k])} {t.number(int(counts.get(k, 0)))}" for k in Kind)


def _bullet(t: Texts, kind: Kind | None, name: str, extra: str = "") -> Element:
    label = f"**{t(KIND_LABELS[kind])}** \u00b7 " if kind is not None else ""
    tail = f" \u2014 {escape_md(extra, 80)}" if extra else ""
    return _text(f"\u2022 {label}{escape_md(name, 80)}{tail}", spacing="None")


def _error_line(message: str) -> Element:
    """An input's error under it: a warning sign and default-coloured text (contrast)."""
    return _text("\u26a0\ufe0f " + escape_md(message, 300), size="Small", spacing="None")


# --- proposal cards -------------------------------------------------------------------------


MATCH_KEYS: Mapping[str, str] = {"phone": N_("phone"), "email": N_("email")}


def _match_body(t: Texts, v: MatchView, n: int) -> list[Element]:
    key = t(MATCH_KEYS[v.key]) if v.key in MATCH_KEYS else escape_md(v.key, 20)
    why = f"{key} {escape_md(v.value, 100)}"
    if v.source:
        why += f" ({escape_md(v.source, 40)})"
    body: list[Element] = [
        _kind_label(t, Kind.MATCH),
        _heading(t("{name} matches a directory user", name=escape_md(v.entra.name, 100))),
        _facts(
            [
                (t("Entra user"), _person(v.entra)),
                (t("Directory user"), _app_user(t, v.app_user)),
                (t("Matched by"), why),
            ]
        ),
    ]
    if v.changes:
        body.append(_subheading(t("Accept links the users and applies:")))
        body.extend(_change_facts(t, v.changes, limit=n))
    else:
        body.append(_text(t("Accept links the users; no field changes."), spacing="Medium"))
    return body


def _match_actions(t: Texts, v: MatchView) -> list[Element]:
    return [
        _execute(t("Accept"), Verb.ACCEPT, v.ref.pid, v.ref.digest, style="positive"),
        _execute(t("Ignore"), Verb.IGNORE, v.ref.pid, v.ref.digest),
    ]


def _new_body(t: Texts, v: NewView, n_choices: int) -> list[Element]:
    body: list[Element] = [
        _kind_label(t, Kind.NEW),
        _heading(t("{name} is not in the directory", name=escape_md(v.entra.name, 100))),
        _facts([(t("Entra user"), _person(v.entra)), (t("Entra id"), escape_md(v.entra.id, 64))]),
    ]
    if v.fields:
        body.append(_subheading(t("Create would add a user with:")))
        body.extend(_change_facts(t, v.fields, new_only=True))
    choices = v.choices[:n_choices]
    if choices:
        # optional: Create works without it; only Link needs a choice (the server says so
        # when Link is pressed without one)
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": INPUT_TARGET,
                "label": t("Or link to an existing directory user (optional)"),
                "style": "filtered",
                "placeholder": t("Type a name to search"),
                "spacing": "Medium",
                "choices": [
                    {"title": plain(f"{c.name} ({c.id})", 120), "value": c.id} for c in choices
                ],
            }
        )
        total = max(v.choices_total or 0, len(v.choices))
        if total > len(choices):
            body.append(
                _text(
                    t(
                        "Showing {shown} of {total} directory users.",
                        shown=len(choices),
                        total=total,
                    ),
                    isSubtle=True,
                    size="Small",
                    spacing="None",
                )
            )
    else:
        body.append(_text(t("No directory user is free to link to."), isSubtle=True))
    return body


def _new_actions(t: Texts, v: NewView, n_choices: int) -> list[Element]:
    actions: list[Element] = []
    if v.choices[:n_choices]:
        actions.append(_execute(t("Link"), Verb.LINK, v.ref.pid, v.ref.digest, inputs=True))
    actions.append(_execute(t("Create"), Verb.CREATE, v.ref.pid, v.ref.digest, style="positive"))
    actions.append(_execute(t("Ignore"), Verb.IGNORE, v.ref.pid, v.ref.digest))
    return actions


def _update_body(t: Texts, v: UpdateView, n: int) -> list[Element]:
    return [
        _kind_label(t, Kind.UPDATE),
        _heading(t("{name} changed in Entra", name=escape_md(v.entra.name, 100))),
        _facts(
            [(t("Entra user"), _person(v.entra)), (t("Directory user"), _app_user(t, v.app_user))]
        ),
        _subheading(t("Apply writes:")),
        *_change_facts(t, v.changes, limit=n),
    ]


def _update_actions(t: Texts, v: UpdateView) -> list[Element]:
    return [
        _execute(t("Apply"), Verb.APPLY, v.ref.pid, v.ref.digest, style="positive"),
        _execute(t("Ignore"), Verb.IGNORE, v.ref.pid, v.ref.digest),
    ]


def _a_date(t: Texts, d: date | str) -> str:
    return escape_md(t.date(d) if isinstance(d, date) else d, 40)


def _removal_state(t: Texts, v: RemovalView) -> list[tuple[str, str]]:
    """Whether a deleted user can come back: soft-deleted (restorable, until when) or gone."""
    if v.cause is RemovalCause.SOFT_DELETED:
        if v.restorable_until:
            text = t(
                "Soft-deleted: an Entra admin can restore the user until {date}",
                date=_a_date(t, v.restorable_until),
            )
        else:
            text = t("Soft-deleted: an Entra admin can restore the user")
        return [(t("In Entra"), text)]
    if v.cause is RemovalCause.DELETED:
        return [(t("In Entra"), t("Gone: permanently deleted, or not readable any more"))]
    return []


def _removal_body(t: Texts, v: RemovalView) -> list[Element]:
    return [
        _kind_label(t, Kind.REMOVAL),
        _heading(t(CAUSE_TEXT[v.cause], name=escape_md(v.entra.name, 100))),
        _facts(
            [
                (t("Entra user"), _person(v.entra)),
                (t("Directory user"), _app_user(t, v.app_user)),
                *_removal_state(t, v),
            ]
        ),
        _text(
            t(
                "**Remove sync** keeps the directory user and all its data; only the link goes. "
                "**Delete user** deletes the directory user (you confirm it next)."
            ),
            spacing="Medium",
        ),
    ]


def _removal_actions(t: Texts, v: RemovalView) -> list[Element]:
    return [
        _execute(t("Remove sync"), Verb.REMOVE_SYNC, v.ref.pid, v.ref.digest),
        _execute(t("Delete user"), Verb.DELETE_USER, v.ref.pid, v.ref.digest, style="destructive"),
    ]


def _claimant(t: Texts, p: EntraPerson) -> str:
    """A claimant by name and UPN/mail; the long object id only when no UPN is known."""
    if p.upn:
        return _person(p)
    return t("{name}, id {id}", name=escape_md(p.name, 100), id=escape_md(p.id, 64))


def _conflict_body(t: Texts, v: ConflictView, n: int) -> list[Element]:
    shown = v.claimants[:n]
    body: list[Element] = [
        _kind_label(t, Kind.CONFLICT),
        _heading(
            t(
                "{n} Entra users have the number {number}",
                n=len(v.claimants),
                number=escape_md(v.number, 40),
            )
        ),
        _facts(
            [(t("Entra user {i}", i=i), _claimant(t, p)) for i, p in enumerate(shown, 1)]
            + [
                (
                    t("Directory user"),
                    _app_user(t, v.holder) if v.holder else "_" + t("(nobody holds it yet)") + "_",
                )
            ]
        ),
    ]
    if len(v.claimants) > len(shown):
        body.append(_more(t, len(v.claimants) - len(shown)))
    body.append(
        {
            "type": "Input.ChoiceSet",
            "id": INPUT_OWNER,
            "label": t("Who owns this number?"),
            "style": "expanded",
            "isRequired": True,
            "errorMessage": t("Pick the Entra user who owns the number."),
            "choices": [
                {"title": plain(f"{p.name} ({p.upn or p.id})", 120), "value": p.id} for p in shown
            ],
        }
    )
    return body


def _conflict_actions(t: Texts, v: ConflictView) -> list[Element]:
    return [
        _execute(
            t("Use this owner"),
            Verb.PICK_OWNER,
            v.ref.pid,
            v.ref.digest,
            style="positive",
            inputs=True,
        ),
        _execute(t("Ignore"), Verb.IGNORE, v.ref.pid, v.ref.digest),
    ]


def _render_proposal(
    t: Texts,
    view: ProposalView,
    notice: Element | None,
    with_actions: bool,
    with_refresh: bool,
) -> Card:
    def render(n: int) -> Card:
        body: list[Element]
        actions: list[Element]
        if isinstance(view, MatchView):
            body, actions = _match_body(t, view, n), _match_actions(t, view)
        elif isinstance(view, NewView):
            body, actions = _new_body(t, view, n), _new_actions(t, view, n)
        elif isinstance(view, UpdateView):
            body, actions = _update_body(t, view, n), _update_actions(t, view)
        elif isinstance(view, RemovalView):
            body, actions = _removal_body(t, view), _removal_actions(t, view)
        else:
            body, actions = _conflict_body(t, view, n), _conflict_actions(t, view)
        if notice is not None:
            body.insert(0, notice)
        return _card(
            body,
            actions if with_actions else (),
            view.ref if with_refresh else None,
            t,
        )

    if isinstance(view, NewView):
        return _fit(render, min(len(view.choices), MAX_LINK_CHOICES))
    if isinstance(view, ConflictView):
        return _fit(render, min(len(view.claimants), MAX_CLAIMANTS))
    if isinstance(view, MatchView | UpdateView):
        return _fit(render, min(len(view.changes), MAX_CHANGES_SHOWN))
    return render(0)


def match_card(view: MatchView, texts: Texts = ENGLISH) -> Card:
    """A pending auto-match: who, which directory user, why, what Accept writes."""
    return _render_proposal(texts, view, None, True, True)


def new_card(view: NewView, texts: Texts = ENGLISH) -> Card:
    """An Entra user with no match: Link (input ``target``) / Create / Ignore."""
    return _render_proposal(texts, view, None, True, True)


def update_card(view: UpdateView, texts: Texts = ENGLISH) -> Card:
    """Field changes of a linked user: Apply / Ignore."""
    return _render_proposal(texts, view, None, True, True)


def removal_card(view: RemovalView, texts: Texts = ENGLISH) -> Card:
    """A linked user deleted/disabled/out of scope: Remove sync / Delete user."""
    return _render_proposal(texts, view, None, True, True)


def removal_confirm_card(view: RemovalView, texts: Texts = ENGLISH) -> Card:
    """Second step of Delete user: Yes, delete (delete_user_confirm) / Cancel (refresh)."""
    t = texts
    body: list[Element] = [
        _notice(
            t(
                "Delete the directory user {name} (id {id})? This cannot be undone.",
                name=escape_md(view.app_user.name, 100),
                id=escape_md(view.app_user.id, 64),
            )
        ),
        *_removal_body(t, view),
    ]
    actions = [
        _execute(
            t("Yes, delete"),
            Verb.DELETE_USER_CONFIRM,
            view.ref.pid,
            view.ref.digest,
            style="destructive",
        ),
        _execute(t("Cancel"), Verb.REFRESH, view.ref.pid, view.ref.digest),
    ]
    return _card(body, actions, view.ref, t)


def conflict_card(view: ConflictView, texts: Texts = ENGLISH) -> Card:
    """Two or more Entra users share a number: pick the owner (input ``owner``) / Ignore."""
    return _render_proposal(texts, view, None, True, True)


def proposal_card(view: ProposalView, texts: Texts = ENGLISH) -> Card:
    """The card of any proposal view (dispatches on its type)."""
    return _render_proposal(texts, view, None, True, True)


def proposal_read_only_card(
    view: ProposalView, *, offer_actions: bool, texts: Texts = ENGLISH
) -> Card:
    """The same proposal without its buttons: the card everyone sees when its admins get
    their buttons through ``refresh.userIds``, and what a refresh answers anyone else.
    ``offer_actions``: a "Show my actions" button (verb ``refresh``) for admins Teams did not
    refresh by itself (more than 60 of them)."""
    t = texts
    card = _render_proposal(t, view, None, False, True)
    card["body"].append(
        _text(t("Only admins can decide on this item."), isSubtle=True, size="Small")
    )
    if offer_actions:
        card["actions"] = [
            _execute(t("Show my actions"), Verb.REFRESH, view.ref.pid, view.ref.digest)
        ]
    return card


def stale_card(view: ProposalView, texts: Texts = ENGLISH) -> Card:
    """The proposal re-rendered with current values, under a notice that nothing was applied."""
    return _render_proposal(texts, view, _notice(texts(STALE_NOTICE), "warning"), True, True)


# --- guard, digest --------------------------------------------------------------------------


def guard_card(view: GuardView, texts: Texts = ENGLISH) -> Card:
    """Mass-removal guard: Confirm / Dismiss."""
    t = texts
    if view.tenant:
        heading = t(
            "This run would remove {n} of {total} linked users in {tenant}",
            n=view.removals,
            total=view.linked,
            tenant=escape_md(view.tenant, 60),
        )
    else:
        heading = t(
            "This run would remove {n} of {total} linked users",
            n=view.removals,
            total=view.linked,
        )
    body: list[Element] = [
        _text(t("GUARD"), size="Small", isSubtle=True, weight="Bolder"),
        _heading(heading),
        _text(
            t(
                "Nothing was removed and no removal was proposed. **Confirm** lets this run's "
                "removals through as proposals (each still needs a decision); **Dismiss** holds "
                "them back."
            ),
        ),
    ]
    actions = [
        _execute(
            t("Confirm"), Verb.GUARD_CONFIRM, view.ref.pid, view.ref.digest, style="destructive"
        ),
        _execute(t("Dismiss"), Verb.GUARD_DISMISS, view.ref.pid, view.ref.digest),
    ]
    return _card(body, actions, view.ref, t)


def _item_list(t: Texts, items: Sequence[DigestItem], n: int) -> list[Element]:
    out = [_bullet(t, i.kind, i.name) for i in items[:n]]
    if len(items) > n:
        out.append(_more(t, len(items) - n))
    return out


def digest_card(view: DigestView, texts: Texts = ENGLISH) -> Card:
    """Many pending items: counts by kind, the first ``limit`` names, Accept all / Apply all."""
    t = texts
    total = sum(int(view.counts.get(k, 0)) for k in Kind)

    def render(n: int) -> Card:
        body: list[Element] = [
            _heading(
                t.plural("{n} item waits for a decision", "{n} items wait for a decision", total)
            ),
            _facts([(t(KIND_LABELS[k]), t.number(int(view.counts.get(k, 0)))) for k in Kind]),
        ]
        if view.pager is None:
            body += _item_list(t, view.items, n)
        else:
            body += _paged_list(t, view.items, n, view.pager)
        actions: list[Element] = []
        if view.counts.get(Kind.MATCH, 0) > 0:
            actions.append(
                _execute(
                    t("Accept all matches"),
                    Verb.ACCEPT_ALL,
                    view.ref.pid,
                    view.ref.digest,
                    style="positive",
                )
            )
        if view.counts.get(Kind.UPDATE, 0) > 0:
            actions.append(
                _execute(t("Apply all updates"), Verb.APPLY_ALL, view.ref.pid, view.ref.digest)
            )
        if view.pager is not None:
            actions += _page_buttons(t, view.pager)
        return _card(body, actions, view.ref, t)

    return _fit(render, min(len(view.items), max(0, view.limit)))


def _paged_list(t: Texts, items: Sequence[DigestItem], n: int, pager: Pager) -> list[Element]:
    """A page of the pending list: where it is, the names, and how many more and how to see
    them ("… and 17 more — type 'pending' or press Next")."""
    out: list[Element] = []
    if pager.changed:
        out.append(
            _text(
                t("The list changed since that page was shown; this is the current list."),
                isSubtle=True,
                spacing="Small",
            )
        )
    shown = items[:n]
    if pager.pages > 1 and shown:
        last = pager.first + len(shown) - 1
        out.append(
            _text(
                t(
                    "Page {page} of {pages} (items {first}\u2013{last})",
                    page=pager.page,
                    pages=pager.pages,
                    first=pager.first,
                    last=last,
                ),
                isSubtle=True,
                spacing="Small",
            )
        )
    out += [_bullet(t, i.kind, i.name) for i in shown]
    more = pager.after + max(0, len(items) - n)
    if more:
        text = (
            N_("\u2026 and {n} more \u2014 type 'pending' or press Next")
            if pager.next
            else N_("\u2026 and {n} more \u2014 type 'pending'")
        )
        out.append(_text(t(text, n=more), isSubtle=True, spacing="Small"))
    return out


def _page_buttons(t: Texts, pager: Pager) -> list[Element]:
    """Previous / Next: ``Action.Execute`` "page" with the page cursor and its HMAC."""
    out: list[Element] = []
    if pager.previous is not None:
        out.append(_execute(t("Previous"), Verb.PAGE, pager.previous.pid, pager.previous.digest))
    if pager.next is not None:
        out.append(_execute(t("Next"), Verb.PAGE, pager.next.pid, pager.next.digest))
    return out


def auto_applied_card(view: AutoAppliedView, texts: Texts = ENGLISH) -> Card:
    """Scheduled mode: "Applied N changes automatically" with the list. No buttons."""
    t = texts
    heading = t.plural(
        "Applied {n} change automatically", "Applied {n} changes automatically", view.applied
    )

    def render(n: int) -> Card:
        body = [_heading(heading)]
        if view.at:
            body.append(_text(when(t, view.at), isSubtle=True, spacing="None"))
        return _card([*body, *_item_list(t, view.items, n)])

    return _fit(render, min(len(view.items), max(0, view.limit)))


# --- status ---------------------------------------------------------------------------------


def _status_line(label: str, value: str) -> Element:
    return _text(f"**{label}:** {value}", spacing="None")


def _tenant_section(t: Texts, s: TenantStatus, with_name: bool) -> list[Element]:
    out: list[Element] = []
    if with_name:
        out.append(_subheading(t("Tenant {name}", name=escape_md(s.name, 60))))
    if s.connected:
        out.append(_text("\u2705 " + t("Connected"), weight="Bolder", spacing="Small"))
    else:
        text = "\u274c " + t("Not connected")
        if s.error_code:
            text += f": {escape_md(s.error_code, 40)}"
        out.append(_text(text, weight="Bolder", spacing="Small"))
        if s.error_hint:
            out.append(_text(escape_md(s.error_hint, 400), spacing="None"))
    if s.connected and (s.error_code or s.error_hint):
        # connected, but the last sync failed (Graph down, throttled...) or could not read
        # every user: the code and what to do, as for a connection error
        code = f"{escape_md(s.error_code, 40)}: " if s.error_code else ""
        out.append(_text(f"\u26a0\ufe0f {code}{escape_md(s.error_hint, 400)}", spacing="Small"))
    if not s.last_sync_at:
        last = t("never")
    elif s.last_sync_ok is False:
        if s.last_sync_reason:
            last = t(
                "{when}, failed: {reason}",
                when=when(t, s.last_sync_at),
                reason=escape_md(s.last_sync_reason, 200),
            )
        else:
            last = t("{when}, failed", when=when(t, s.last_sync_at))
    else:
        last = t("{when}, ok", when=when(t, s.last_sync_at))
    nxt = when(t, s.next_sync_at) if s.next_sync_at else t("manual (type **sync now**)")
    out += [
        _status_line(t("Last sync"), last),
        _status_line(t("Next sync"), nxt),
        _status_line(t("Synced"), t("{synced}/{total} synced", synced=s.synced, total=s.syncable)),
        _status_line(t("Pending"), _counts_line(t, s.pending)),
    ]
    return out


def _mail_section(t: Texts, mail: MailStatus) -> list[Element]:
    """The last notification mail: sent, or failed with its code and what to do."""
    out: list[Element] = [_subheading(t("E-mail notifications"))]
    at = when(t, mail.at)
    if mail.ok:
        sent = t.plural(
            "\u2705 Last mail sent {at} to {n} address",
            "\u2705 Last mail sent {at} to {n} addresses",
            mail.recipients,
            at=at,
        )
        out.append(_text(sent, spacing="Small"))
        return out
    code = f": {escape_md(mail.error_code, 40)}" if mail.error_code else ""
    out.append(
        _text(
            t("\u26a0\ufe0f Last mail failed {at}", at=at) + code, weight="Bolder", spacing="Small"
        )
    )
    if mail.error_message:
        out.append(_text(escape_md(mail.error_message, 300), spacing="None"))
    if mail.error_hint:
        out.append(_text(escape_md(mail.error_hint, 400), spacing="None"))
    return out


def status_card(view: StatusView, texts: Texts = ENGLISH) -> Card:
    """Connection, last/next sync (in the viewer's time zone), the synced counter and pending
    counts, per tenant."""
    t = texts
    several = len(view.tenants) > 1

    def render(n: int) -> Card:
        tenants = view.tenants[:n]
        body: list[Element] = [_heading(t("Entra Sync status"))]
        if not view.tenants:
            body.append(_text(t("No tenant is connected yet. Type **connect** to add one.")))
        for s in tenants:
            body.extend(_tenant_section(t, s, several))
        if len(view.tenants) > len(tenants):
            body.append(
                _more(t, len(view.tenants) - len(tenants), N_("\u2026 and {n} more tenants"))
            )
        if view.mail is not None:
            body.extend(_mail_section(t, view.mail))
        if any(isinstance(x, datetime) for s in tenants for x in (s.last_sync_at, s.next_sync_at)):
            body.append(_text(t("Times are in your time zone."), isSubtle=True, size="Small"))
        return _card(body, t=t)

    return _fit(render, min(len(view.tenants), MAX_TENANTS_SHOWN))


# --- decided, refusal -----------------------------------------------------------------------


def decided_line(view: DecidedView, texts: Texts = ENGLISH) -> str:
    """ "✅ **Accepted** by Anna, 14:02" (escaped Markdown; the time in the viewer's zone)."""
    t = texts
    line = f"{OUTCOME_ICON[view.outcome]} **{t(OUTCOME_TEXT[view.outcome])}**"
    if view.actor:
        line += " " + t("by {name}", name=escape_md(view.actor, 80))
    if view.at:
        line += f"{',' if view.actor else ''} {when(t, view.at)}"
    return line


def _decision_content(t: Texts, v: DecidedView, n: int) -> list[Element]:
    """What was decided, by outcome: linked to whom, which owner keeps the number, which
    fields were written."""
    user = _app_user(t, v.app_user) if v.app_user is not None else ""
    out: list[Element] = []
    o = v.outcome
    if o in (Outcome.ACCEPTED, Outcome.LINKED):
        if user:
            out.append(_text(t("Linked to the directory user {user}.", user=user)))
        if v.changes:
            out.append(_subheading(t("Fields written:")))
            out += _change_facts(t, v.changes, limit=n)
        elif o is Outcome.ACCEPTED:
            out.append(_text(t("No field changed.")))
    elif o is Outcome.APPLIED:
        if user:
            out.append(_text(t("Written to the directory user {user}:", user=user)))
        out += _change_facts(t, v.changes, limit=n)
    elif o is Outcome.CREATED:
        out.append(_text(t("A directory user was created with:")))
        out += _change_facts(t, v.changes, new_only=True, limit=n)
    elif o is Outcome.REMOVED_SYNC:
        target = user or t("The directory user")
        out.append(
            _text(t("{user} was kept with all its data; only the link was removed.", user=target))
        )
    elif o is Outcome.DELETED and user:
        out.append(_text(t("The directory user {user} was deleted.", user=user)))
    elif o is Outcome.OWNER_PICKED:
        owner = _person(v.owner) if v.owner is not None else t("The chosen Entra user")
        out.append(
            _text(
                t("{owner} keeps the number {number}.", owner=owner, number=escape_md(v.number, 40))
            )
        )
    elif o is Outcome.IGNORED:
        out.append(
            _text(t("Not proposed again until un-ignored (type **ignored**)."), isSubtle=True)
        )
    elif o is Outcome.SUPERSEDED:
        out.append(
            _text(t("The data changed since; a newer card replaces this one."), isSubtle=True)
        )
    return out


def decided_card(view: DecidedView, texts: Texts = ENGLISH) -> Card:
    """The replacement after an action: what was decided, by whom, when; no buttons."""
    t = texts

    def render(n: int) -> Card:
        body: list[Element] = [
            _heading(escape_md(view.title, 120)),
            _text(decided_line(view, t), spacing="Small"),
            *_decision_content(t, view, n),
        ]
        body += [_text(escape_md(s, 300), spacing="None", isSubtle=True) for s in view.summary[:n]]
        if len(view.summary) > n:
            body.append(_more(t, len(view.summary) - n))
        return _card(body, t=t)

    size = max(len(view.summary), min(len(view.changes), MAX_CHANGES_SHOWN))
    return _fit(render, min(size, MAX_SUMMARY_LINES))


def refusal_text(view: RefusalView, texts: Texts = ENGLISH) -> str:
    """The refusal as one Markdown-safe sentence (times as card templates)."""
    t = texts
    if view.reason is RefusalReason.NOT_ADMIN:
        return t("Only admins can do this.")
    if view.reason is RefusalReason.NOT_FOUND:
        return t("This item is not known any more. Type **pending** to see what is open.")
    who = escape_md(view.actor, 80) if view.actor else t("someone else")
    text = t("This item is no longer pending: handled by {name}", name=who)
    if view.at:
        text += " " + t("at {when}", when=when(t, view.at))
    if view.state:
        text += f" ({escape_md(view.state, 40)})"
    return text + "."


def refusal_card(view: RefusalView, texts: Texts = ENGLISH) -> Card:
    """The refusal notice; with ``view.proposal``, the proposal read-only below it."""
    notice = _notice(refusal_text(view, texts))
    if view.proposal is not None:
        return _render_proposal(texts, view.proposal, notice, False, False)
    return _card([notice], t=texts)


# --- settings, connect ----------------------------------------------------------------------


def _with_error(inp: Element, errors: Mapping[str, str]) -> list[Element]:
    out = [inp]
    msg = errors.get(inp["id"])
    if msg:
        out.append(_error_line(msg))
    return out


def _input_text(id_: str, label: str, value: str, **kw: Any) -> Element:
    el: Element = {"type": "Input.Text", "id": id_, "label": label, **kw}
    if value:
        el["value"] = plain(value, 500)
    return el


def _toggle(id_: str, title: str, value: bool) -> Element:
    return {
        "type": "Input.Toggle",
        "id": id_,
        "title": title,
        "value": "true" if value else "false",
        "valueOn": "true",
        "valueOff": "false",
    }


SCHEDULE_MODES = ("manual", "daily", "interval", "watch")
SETTINGS_INPUTS = (
    "groups",
    "scope_filter",
    "enabled_only",
    "require_phone",
    "first_name",
    "last_name",
    "display_name",
    "email",
    "tags",
    "mode",
    "at",
    "every_hours",
    "every_seconds",
    "max_removals",
    "max_removal_share",
    "notify_admins_personally",
    "max_cards_per_run",
    "notify_email",
)
# Which schedule input each mode uses; the others are folded away (see _schedule_inputs).
MODE_INPUT: Mapping[str, str] = {"daily": "at", "interval": "every_hours", "watch": "every_seconds"}
SCHEDULE_MORE_ID = "schedule_more"


def _schedule_inputs(t: Texts, view: SettingsView, e: Mapping[str, str]) -> list[Element]:
    """The mode's own input shows; the other modes' inputs sit in a folded container that
    "Show the other schedule fields" opens (Adaptive Cards 1.5 cannot show an input when
    another input changes). Folded inputs are still sent, with their saved values."""
    mode = view.mode if view.mode in SCHEDULE_MODES else "manual"
    inputs: dict[str, list[Element]] = {
        "at": _with_error(
            _input_text(
                "at",
                t("Daily at (HH:MM, UTC)"),
                view.at,
                placeholder="02:00",
                regex="^([01][0-9]|2[0-3]):[0-5][0-9]$",
                errorMessage=t("Use HH:MM, e.g. 02:00."),
            ),
            e,
        ),
        "every_hours": _with_error(
            {
                "type": "Input.Number",
                "id": "every_hours",
                "label": t("Every N hours"),
                "min": 1,
                "max": 168,
                "value": view.every_hours,
            },
            e,
        ),
        "every_seconds": _with_error(
            {
                "type": "Input.Number",
                "id": "every_seconds",
                "label": t("Watch: every N seconds"),
                "min": 10,
                "max": 3600,
                "value": view.every_seconds,
            },
            e,
        ),
    }
    own = MODE_INPUT.get(mode)
    out: list[Element] = list(inputs[own]) if own else []
    others = [el for key, els in inputs.items() if key != own for el in els]
    folded = not any(k in e for k in inputs if k != own)  # an error shows its field
    out.append(
        _text(
            t("Changing the mode? Open the other schedule fields to set its time."),
            isSubtle=True,
            size="Small",
        )
    )
    out.append(
        {
            "type": "ActionSet",
            "actions": [
                {
                    "type": "Action.ToggleVisibility",
                    "title": t("Show the other schedule fields"),
                    "targetElements": [SCHEDULE_MORE_ID],
                }
            ],
        }
    )
    out.append(
        {"type": "Container", "id": SCHEDULE_MORE_ID, "isVisible": not folded, "items": others}
    )
    return out


def settings_card(view: SettingsView, texts: Texts = ENGLISH) -> Card:
    """The settings form; ``view.errors`` (input id -> message) show under each input."""
    t = texts
    e = view.errors
    body: list[Element] = [_heading(t("Sync settings"))]
    if view.filter_confirm:
        body += _scope_filter_impact(t, view)
    if e:
        body.append(_notice(t("Nothing was saved. Fix the fields marked \u26a0\ufe0f.")))
        for key in sorted(k for k in e if k not in SETTINGS_INPUTS):
            body.append(_error_line(f"{key}: {e[key]}"))
    body.append(_subheading(t("Scope")))
    body += _with_error(
        _input_text(
            "groups",
            t("Groups (object ids, comma-separated; empty: all users)"),
            ", ".join(view.groups),
            placeholder=t("all users"),
        ),
        e,
    )
    body += _scope_filter_input(t, view)
    body += _with_error(_toggle("enabled_only", t("Only enabled accounts"), view.enabled_only), e)
    body += _with_error(
        _toggle("require_phone", t("Only users with a phone number"), view.require_phone), e
    )
    body.append(_subheading(t("Field mapping (Graph attribute, case-sensitive)")))
    for id_, label in (
        ("first_name", FIELD_LABELS["first_name"]),
        ("last_name", FIELD_LABELS["last_name"]),
        ("display_name", FIELD_LABELS["display_name"]),
        ("email", FIELD_LABELS["email"]),
    ):
        body += _with_error(
            _input_text(id_, t(label), getattr(view, id_), placeholder=t("not mapped")), e
        )
    body += _with_error(
        _input_text(
            "tags",
            t("Tags (attributes, comma-separated)"),
            ", ".join(view.tags),
            placeholder=t("e.g. department, city"),
        ),
        e,
    )
    body.append(_subheading(t("Schedule")))
    body += _with_error(
        {
            "type": "Input.ChoiceSet",
            "id": "mode",
            "label": t("Mode"),
            "style": "compact",
            "value": view.mode if view.mode in SCHEDULE_MODES else "manual",
            "choices": [
                {"title": t("Manual: every change waits for an admin"), "value": "manual"},
                {"title": t("Daily at a set time"), "value": "daily"},
                {"title": t("Every N hours"), "value": "interval"},
                {"title": t("Watch: look for Entra changes every N seconds"), "value": "watch"},
            ],
        },
        e,
    )
    body += _schedule_inputs(t, view, e)
    body.append(_subheading(t("Mass-removal guard")))
    body += _with_error(
        {
            "type": "Input.Number",
            "id": "max_removals",
            "label": t("Hold back a run that removes more than this many users"),
            "min": 0,
            "value": view.max_removals,
        },
        e,
    )
    body += _with_error(
        {
            "type": "Input.Number",
            "id": "max_removal_share",
            "label": t("... or more than this share of linked users (0 to 1)"),
            "min": 0,
            "max": 1,
            "value": view.max_removal_share,
        },
        e,
    )
    body.append(_subheading(t("Notifications")))
    body += _with_error(
        _toggle(
            "notify_admins_personally",
            t("Also notify the admins personally (1:1 chat)"),
            view.notify_admins_personally,
        ),
        e,
    )
    body += _with_error(
        {
            "type": "Input.Number",
            "id": "max_cards_per_run",
            "label": t("One card per item up to this many; more become one digest card"),
            "min": 0,
            "max": 50,
            "value": view.max_cards_per_run,
        },
        e,
    )
    body += _notify_email_inputs(t, view)
    save = (
        _execute(
            t("Confirm and save"),
            Verb.SETTINGS_SAVE,
            view.ref.pid,
            view.filter_confirm,
            style="positive",
            inputs=True,
        )
        if view.filter_confirm
        else _execute(
            t("Save"),
            Verb.SETTINGS_SAVE,
            view.ref.pid,
            view.ref.digest,
            style="positive",
            inputs=True,
        )
    )
    actions = [save, _execute(t("Cancel"), Verb.REFRESH, view.ref.pid, view.ref.digest)]
    return _card(body, actions, t=t)


def _scope_filter_input(t: Texts, view: SettingsView) -> list[Element]:
    """The advanced-query filter of the scope."""
    el: Element = {
        "type": "Input.Text",
        "id": "scope_filter",
        "label": t("Advanced filter (Graph $filter on users; empty: no filter)"),
        "placeholder": "department eq 'Support' and startswith(jobTitle, 'Team')",
        "maxLength": 2000,
    }
    if view.scope_filter:
        el["value"] = plain(view.scope_filter, 2000)
    out = _with_error(el, view.errors)
    out.append(
        _text(
            t(
                "Microsoft Graph checks the filter before it is saved. With groups, a user "
                "must be in both."
            ),
            size="Small",
            isSubtle=True,
            spacing="None",
        )
    )
    return out


def _scope_filter_impact(t: Texts, view: SettingsView) -> list[Element]:
    """The impact of a new scope filter Graph took, before the admin confirms it."""
    out: list[Element] = [
        _notice(t("Check the new scope, then press Confirm and save."), style="warning")
    ]
    if not view.filter_impacts:
        out.append(_text(t("No tenant is connected: the filter applies from the first sync.")))
    for i in view.filter_impacts:
        removals = t.number(i.removals)
        if i.removals and i.held_back:
            removals += " " + t("(held back by the mass-removal guard until an admin confirms)")
        out.append(_subheading(f"{escape_md(i.tenant, 60)} \u2192 {escape_md(i.directory, 60)}"))
        out.append(
            _facts(
                [
                    (t("Users in scope now"), t.number(i.in_scope_before)),
                    (t("Users in scope with this filter"), t.number(i.in_scope_after)),
                    (t("Removals the next sync would propose"), removals),
                ]
            )
        )
    out.append(
        _text(
            t("Removals are proposals: no user is removed until an admin decides."),
            size="Small",
            isSubtle=True,
        )
    )
    return out


def _notify_email_inputs(t: Texts, view: SettingsView) -> list[Element]:
    """The e-mail recipients of the digest mail (the transport stays in the config file)."""
    return _with_error(
        _input_text(
            "notify_email",
            t("E-mail a digest of each run to (addresses, comma-separated; empty: no mail)"),
            ", ".join(view.notify_email),
            placeholder=t("e.g. servicedesk@contoso.com"),
        ),
        view.errors,
    )


CONNECT_INPUTS = ("tenant_id", "client_id", "client_secret")


def connect_card(view: ConnectView, texts: Texts = ENGLISH) -> Card:
    """Connect a tenant: tenant id, client id, client secret (password, never pre-filled)."""
    t = texts
    e = view.errors
    body: list[Element] = [
        _heading(t("Connect an Entra tenant")),
        _text(
            t(
                "Register an app in Entra (App registrations), give it the Microsoft Graph "
                "application permission **User.Read.All** (and **GroupMember.Read.All** for "
                "group scope), grant admin consent, and create a client secret."
            )
        ),
    ]
    if e:
        body.append(_notice(t("Nothing was saved. Fix the fields marked \u26a0\ufe0f.")))
        for key in sorted(k for k in e if k not in CONNECT_INPUTS):
            body.append(_error_line(f"{key}: {e[key]}"))
    body += _with_error(
        _input_text(
            "tenant_id",
            t("Directory (tenant) ID"),
            view.tenant_id,
            isRequired=True,
            errorMessage=t("The tenant id is required."),
            placeholder="00000000-0000-0000-0000-000000000000",
        ),
        e,
    )
    body += _with_error(
        _input_text(
            "client_id",
            t("Application (client) ID"),
            view.client_id,
            isRequired=True,
            errorMessage=t("The client id is required."),
            placeholder="00000000-0000-0000-0000-000000000000",
        ),
        e,
    )
    body += _with_error(
        {
            "type": "Input.Text",
            "id": "client_secret",
            "label": t("Client secret (its Value, not its Secret ID)"),
            "style": "password",
            "isRequired": not view.certificate_thumbprint,
            "errorMessage": t("The client secret is required."),
        },
        e,
    )
    if view.certificate_thumbprint:
        body.append(
            _text(
                "Or leave the secret empty: the bot signs in with its certificate (thumbprint "
                f"{view.certificate_thumbprint}; upload it under Certificates & secrets)."
            )
        )
    if view.consent_url:
        body.append(
            _text(
                t(
                    "Not an Entra admin? Forward this link to one to grant consent: {link}",
                    link=md_link(t("admin consent"), view.consent_url),
                ),
                spacing="Medium",
            )
        )
    actions = [
        _execute(
            t("Save"),
            Verb.CONNECT_SAVE,
            view.ref.pid,
            view.ref.digest,
            style="positive",
            inputs=True,
        )
    ]
    return _card(body, actions, t=t)


# --- lists ----------------------------------------------------------------------------------


def pending_list_card(view: PendingListView, texts: Texts = ENGLISH) -> Card:
    """What waits for a decision: counts by kind and the first ``limit`` items."""
    t = texts
    counts = {k: sum(1 for i in view.items if i.kind is k) for k in Kind}

    def render(n: int) -> Card:
        body: list[Element] = [
            _heading(t("Pending ({n})", n=len(view.items))),
            _text(_counts_line(t, counts), isSubtle=True, spacing="None"),
        ]
        if not view.items:
            body.append(_text(t("Nothing is pending.")))
        body += [_bullet(t, i.kind, i.name, i.reason) for i in view.items[:n]]
        if len(view.items) > n:
            body.append(_more(t, len(view.items) - n))
        return _card(body, t=t)

    return _fit(render, min(len(view.items), max(0, view.limit)))


def ignored_list_card(view: IgnoredListView, texts: Texts = ENGLISH) -> Card:
    """Ignored Entra users, each with an Un-ignore button (verb unignore, pid = Entra id)."""
    t = texts

    def row(name: str, entra_id: str, digest: str) -> Element:
        return {
            "type": "ColumnSet",
            "spacing": "Small",
            "columns": [
                {
                    "type": "Column",
                    "width": "stretch",
                    "verticalContentAlignment": "Center",
                    "items": [_text(escape_md(name, 80))],
                },
                {
                    "type": "Column",
                    "width": "auto",
                    "items": [
                        {
                            "type": "ActionSet",
                            "actions": [_execute(t("Un-ignore"), Verb.UNIGNORE, entra_id, digest)],
                        }
                    ],
                },
            ],
        }

    def render(n: int) -> Card:
        body: list[Element] = [_heading(t("Ignored users ({n})", n=len(view.items)))]
        if not view.items:
            body.append(_text(t("No user is ignored.")))
        body += [row(i.name, i.entra_id, i.digest) for i in view.items[:n]]
        if len(view.items) > n:
            body.append(_more(t, len(view.items) - n))
        return _card(body, t=t)

    return _fit(render, min(len(view.items), max(0, view.limit)))


def audit_change_lines(t: Texts, changes: Sequence[tuple[str, str, str]]) -> list[Element]:
    """One line per changed field: "Display name: Reception → Gustav Holm"."""
    out = []
    for name, old, new in changes[:MAX_CHANGES_SHOWN]:
        label = f"{_field_label(t, name)}: " if name else ""
        line = f"{label}{_value(t, old)} \u2192 {_value(t, new)}"
        out.append(_text(line, isSubtle=True, size="Small", spacing="None"))
    if len(changes) > MAX_CHANGES_SHOWN:
        out.append(_more(t, len(changes) - MAX_CHANGES_SHOWN))
    return out


def audit_card(view: AuditView, texts: Texts = ENGLISH) -> Card:
    """Recent decisions: who, what, when (the viewer's time), only the fields that changed."""
    t = texts

    def entry(a: AuditEntry) -> list[Element]:
        out = [
            _text(
                f"**{when(t, a.at)}** \u00b7 {escape_md(a.actor, 60)} "
                f"{escape_md(a.action, 40)} {escape_md(a.subject, 80)}",
                spacing="Small",
            )
        ]
        if a.changes:
            out += audit_change_lines(t, a.changes)
        elif a.before or a.after:
            out.append(
                _text(
                    f"{_value(t, a.before)} \u2192 {_value(t, a.after)}",
                    isSubtle=True,
                    size="Small",
                    spacing="None",
                )
            )
        return out

    def render(n: int) -> Card:
        body: list[Element] = [_heading(t("Recent decisions"))]
        if not view.entries:
            body.append(_text(t("No decisions yet.")))
        for a in view.entries[:n]:
            body += entry(a)
        if len(view.entries) > n:
            body.append(_more(t, len(view.entries) - n))
        return _card(body, t=t)

    return _fit(render, min(len(view.entries), max(0, view.limit)))


def help_card(view: HelpView, texts: Texts = ENGLISH) -> Card:
    """The command table (descriptions translated when the catalogue has them)."""
    t = texts

    def render(n: int) -> Card:
        rows = view.commands[:n]
        body = [
            _heading(t("Entra Sync commands")),
            _facts((f"**{escape_md(c, 40)}**", escape_md(t(d), 200)) for c, d in rows),
        ]
        if len(view.commands) > n:
            body.append(_more(t, len(view.commands) - n))
        return _card(body, t=t)

    return _fit(render, min(len(view.commands), MAX_HELP_ROWS))


def preview_card(view: PreviewView, texts: Texts = ENGLISH) -> Card:
    """Dry run: per-user diff, no buttons, "and N more". Each person's name and fields sit in
    one container, separated from the next person by a line and space."""
    t = texts

    def render(n: int) -> Card:
        body: list[Element] = [
            _heading(t("Preview: what a sync would propose")),
            _text(t("A dry run; nothing was changed."), isSubtle=True, spacing="None"),
        ]
        if view.counts:
            body.append(_text(_counts_line(t, view.counts), spacing="Small"))
        if not view.items:
            body.append(_text(t("Nothing would change.")))
        for item in view.items[:n]:
            body.append(
                {
                    "type": "Container",
                    "separator": True,
                    "spacing": "Medium",
                    "items": [_bullet(t, item.kind, item.name), *_change_facts(t, item.changes)],
                }
            )
        if len(view.items) > n:
            body.append(_more(t, len(view.items) - n))
        return _card(body, t=t)

    return _fit(render, min(len(view.items), max(0, view.limit)))
