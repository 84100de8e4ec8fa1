"""Card builders: pure functions from view records (cards.views) to Adaptive Card 1.5 JSON.

Rules every builder keeps:
- the card is ``{"$schema", "type": "AdaptiveCard", "version": "1.5", ...}``;
- every button is an ``Action.Execute`` whose ``data`` is exactly ``{"pid", "d"}``; the only
  other values Teams sends are the inputs the admin fills in (``target``, ``owner``, settings);
  buttons that need no input send none (``associatedInputs: "none"``);
- proposal cards carry a ``refresh`` block (verb ``refresh``, same data, ``userIds`` <= 60);
- untrusted strings pass through :func:`cards.text.escape_md` (Markdown slots) or
  :func:`cards.text.plain` (plain slots);
- list builders cap their lists, say "and N more", and shrink further until the card fits
  in :data:`SIZE_BUDGET` bytes (UTF-8 JSON), well under Teams' 28 KB.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cards.text import escape_md, fmt_value, md_link, plain
from cards.views import (
    INPUT_OWNER,
    INPUT_TARGET,
    MAX_LINK_CHOICES,
    MAX_REFRESH_USERS,
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
    IgnoredListView,
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

KIND_LABELS: Mapping[Kind, str] = {
    Kind.MATCH: "Match",
    Kind.NEW: "New",
    Kind.UPDATE: "Update",
    Kind.REMOVAL: "Removal",
    Kind.CONFLICT: "Conflict",
}

FIELD_LABELS: Mapping[str, str] = {
    "first_name": "First name",
    "last_name": "Last name",
    "display_name": "Display name",
    "email": "E-mail",
    "phones": "Phones",
    "tags": "Tags",
}

CAUSE_TEXT: Mapping[RemovalCause, str] = {
    RemovalCause.DELETED: "deleted in Entra",
    RemovalCause.SOFT_DELETED: "deleted in Entra",
    RemovalCause.DISABLED: "disabled in Entra",
    RemovalCause.OUT_OF_SCOPE: "out of scope",
}

OUTCOME_TEXT: Mapping[Outcome, str] = {
    Outcome.ACCEPTED: "Accepted",
    Outcome.IGNORED: "Ignored",
    Outcome.APPLIED: "Applied",
    Outcome.LINKED: "Linked",
    Outcome.CREATED: "Created",
    Outcome.REMOVED_SYNC: "Removed sync",
    Outcome.DELETED: "Deleted",
    Outcome.OWNER_PICKED: "Owner chosen",
    Outcome.CONFIRMED: "Confirmed",
    Outcome.DISMISSED: "Dismissed",
    Outcome.SUPERSEDED: "Superseded",
    Outcome.HANDLED: "Handled",
}

STALE_NOTICE = (
    "The data in Entra changed since this card was posted; nothing was applied. "
    "Review the current values."
)


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
        card["refresh"] = _refresh(refresh)
    return card


def _refresh(ref: CardRef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "action": {
            "type": "Action.Execute",
            "title": "Refresh",
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


def _kind_label(kind: Kind) -> Element:
    return _text(KIND_LABELS[kind].upper(), size="Small", isSubtle=True, weight="Bolder")


def _notice(text: str, color: str = "attention") -> Element:
    return {
        "type": "Container",
        "style": "warning" if color == "warning" else "attention",
        "items": [_text(text, color=color, weight="Bolder")],
    }


def _facts(pairs: Iterable[tuple[str, str]]) -> Element:
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs]}


def _field_label(name: str) -> str:
    return FIELD_LABELS.get(name) or escape_md(name, 40)


def _change_facts(
    changes: Mapping[str, Change], *, new_only: bool = False, limit: int = MAX_CHANGES_SHOWN
) -> list[Element]:
    items = list(changes.items())
    shown = items[: max(0, min(limit, MAX_CHANGES_SHOWN))]
    pairs = [
        (
            _field_label(name),
            fmt_value(ch.new) if new_only else f"{fmt_value(ch.old)} \u2192 {fmt_value(ch.new)}",
        )
        for name, ch in shown
    ]
    out: list[Element] = [_facts(pairs)] if pairs else []
    if len(items) > len(shown):
        out.append(_more(len(items) - len(shown), "fields"))
    return out


def _more(n: int, what: str = "more") -> Element:
    word = "more" if what == "more" else f"more {what}"
    return _text(f"\u2026 and {n} {word}", isSubtle=True, spacing="Small")


def _person(p: EntraPerson) -> str:
    if p.upn:
        return f"{escape_md(p.name, 100)} ({escape_md(p.upn, 100)})"
    return escape_md(p.name, 100)


def _app_user(u: AppUser) -> str:
    return f"{escape_md(u.name, 100)} (id {escape_md(u.id, 64)})"


def _counts_line(counts: Mapping[Kind, int]) -> str:
    return " \u00b7 ".join(f"{KIND_LABELS[k]} {int(counts.get(k, 0))}" for k in Kind)


def _bullet(kind: Kind | None, name: str, extra: str = "") -> Element:
    label = f"**{KIND_LABELS[kind]}** \u00b7 " if kind is not None else ""
    tail = f" \u2014 {escape_md(extra, 80)}" if extra else ""
    return _text(f"\u2022 {label}{escape_md(name, 80)}{tail}", spacing="None")


def _error_line(message: str) -> Element:
    return _text(escape_md(message, 300), color="attention", size="Small", spacing="None")


# --- proposal cards -------------------------------------------------------------------------


def _match_body(v: MatchView, n: int) -> list[Element]:
    why = f"{escape_md(v.key, 20)} {escape_md(v.value, 100)}"
    if v.source:
        why += f" ({escape_md(v.source, 40)})"
    body: list[Element] = [
        _kind_label(Kind.MATCH),
        _heading(f"{escape_md(v.entra.name, 100)} matches a directory user"),
        _facts(
            [
                ("Entra user", _person(v.entra)),
                ("Directory user", _app_user(v.app_user)),
                ("Matched by", why),
            ]
        ),
    ]
    if v.changes:
        body.append(_subheading("Accept links the users and applies:"))
        body.extend(_change_facts(v.changes, limit=n))
    else:
        body.append(_text("Accept links the users; no field changes.", spacing="Medium"))
    return body


def _match_actions(v: MatchView) -> list[Element]:
    return [
        _execute("Accept", Verb.ACCEPT, v.ref.pid, v.ref.digest, style="positive"),
        _execute("Ignore", Verb.IGNORE, v.ref.pid, v.ref.digest),
    ]


def _new_body(v: NewView, n_choices: int) -> list[Element]:
    body: list[Element] = [
        _kind_label(Kind.NEW),
        _heading(f"{escape_md(v.entra.name, 100)} is not in the directory"),
        _facts([("Entra user", _person(v.entra)), ("Entra id", escape_md(v.entra.id, 64))]),
    ]
    if v.fields:
        body.append(_subheading("Create would add a user with:"))
        body.extend(_change_facts(v.fields, new_only=True))
    choices = v.choices[:n_choices]
    if choices:
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": INPUT_TARGET,
                "label": "Link to an existing directory user",
                "style": "filtered",
                "placeholder": "Type a name to search",
                "isRequired": True,
                "errorMessage": "Pick a directory user to link to.",
                "choices": [
                    {"title": plain(f"{c.name} ({c.id})", 120), "value": c.id} for c in choices
                ],
            }
        )
        total = max(v.choices_total or 0, len(v.choices))
        if total > len(choices):
            body.append(
                _text(
                    f"Showing {len(choices)} of {total} directory users.",
                    isSubtle=True,
                    size="Small",
                    spacing="None",
                )
            )
    else:
        body.append(_text("No directory user is free to link to.", isSubtle=True))
    return body


def _new_actions(v: NewView, n_choices: int) -> list[Element]:
    actions: list[Element] = []
    if v.choices[:n_choices]:
        actions.append(_execute("Link", Verb.LINK, v.ref.pid, v.ref.digest, inputs=True))
    actions.append(_execute("Create", Verb.CREATE, v.ref.pid, v.ref.digest, style="positive"))
    actions.append(_execute("Ignore", Verb.IGNORE, v.ref.pid, v.ref.digest))
    return actions


def _update_body(v: UpdateView, n: int) -> list[Element]:
    return [
        _kind_label(Kind.UPDATE),
        _heading(f"{escape_md(v.entra.name, 100)} changed in Entra"),
        _facts([("Entra user", _person(v.entra)), ("Directory user", _app_user(v.app_user))]),
        _subheading("Apply writes:"),
        *_change_facts(v.changes, limit=n),
    ]


def _update_actions(v: UpdateView) -> list[Element]:
    return [
        _execute("Apply", Verb.APPLY, v.ref.pid, v.ref.digest, style="positive"),
        _execute("Ignore", Verb.IGNORE, v.ref.pid, v.ref.digest),
    ]


def _removal_state(v: RemovalView) -> list[tuple[str, str]]:
    """Whether a deleted user can come back: soft-deleted (restorable, until when) or gone."""
    if v.cause is RemovalCause.SOFT_DELETED:
        until = f" until {escape_md(v.restorable_until, 40)}" if v.restorable_until else ""
        return [("In Entra", f"Soft-deleted: an Entra admin can restore the user{until}")]
    if v.cause is RemovalCause.DELETED:
        return [("In Entra", "Gone: permanently deleted, or not readable any more")]
    return []


def _removal_body(v: RemovalView) -> list[Element]:
    return [
        _kind_label(Kind.REMOVAL),
        _heading(f"{escape_md(v.entra.name, 100)} was {CAUSE_TEXT[v.cause]}"),
        _facts(
            [
                ("Entra user", _person(v.entra)),
                ("Directory user", _app_user(v.app_user)),
                *_removal_state(v),
            ]
        ),
        _text(
            "**Remove sync** keeps the directory user and all its data; only the link goes. "
            "**Delete user** deletes the directory user (you confirm it next).",
            spacing="Medium",
        ),
    ]


def _removal_actions(v: RemovalView) -> list[Element]:
    return [
        _execute("Remove sync", Verb.REMOVE_SYNC, v.ref.pid, v.ref.digest),
        _execute("Delete user", Verb.DELETE_USER, v.ref.pid, v.ref.digest, style="destructive"),
    ]


def _conflict_body(v: ConflictView, n: int) -> list[Element]:
    shown = v.claimants[:n]
    body: list[Element] = [
        _kind_label(Kind.CONFLICT),
        _heading(f"{len(v.claimants)} Entra users have the number {escape_md(v.number, 40)}"),
        _facts(
            [
                (f"Entra user {i}", f"{_person(p)}, id {escape_md(p.id, 64)}")
                for i, p in enumerate(shown, 1)
            ]
            + [
                (
                    "Directory user",
                    _app_user(v.holder) if v.holder else "_(nobody holds it yet)_",
                )
            ]
        ),
    ]
    if len(v.claimants) > len(shown):
        body.append(_more(len(v.claimants) - len(shown)))
    body.append(
        {
            "type": "Input.ChoiceSet",
            "id": INPUT_OWNER,
            "label": "Who owns this number?",
            "style": "expanded",
            "isRequired": True,
            "errorMessage": "Pick the Entra user who owns the number.",
            "choices": [
                {"title": plain(f"{p.name} ({p.upn or p.id})", 120), "value": p.id} for p in shown
            ],
        }
    )
    return body


def _conflict_actions(v: ConflictView) -> list[Element]:
    return [
        _execute(
            "Use this owner",
            Verb.PICK_OWNER,
            v.ref.pid,
            v.ref.digest,
            style="positive",
            inputs=True,
        ),
        _execute("Ignore", Verb.IGNORE, v.ref.pid, v.ref.digest),
    ]


def _render_proposal(
    view: ProposalView, notice: Element | None, with_actions: bool, with_refresh: bool
) -> Card:
    def render(n: int) -> Card:
        body: list[Element]
        actions: list[Element]
        if isinstance(view, MatchView):
            body, actions = _match_body(view, n), _match_actions(view)
        elif isinstance(view, NewView):
            body, actions = _new_body(view, n), _new_actions(view, n)
        elif isinstance(view, UpdateView):
            body, actions = _update_body(view, n), _update_actions(view)
        elif isinstance(view, RemovalView):
            body, actions = _removal_body(view), _removal_actions(view)
        else:
            body, actions = _conflict_body(view, n), _conflict_actions(view)
        if notice is not None:
            body.insert(0, notice)
        return _card(
            body,
            actions if with_actions else (),
            view.ref if with_refresh else None,
        )

    if isinstance(view, NewView):
        return _fit(render, min(len(view.choices), MAX_LINK_CHOICES))
    if isinstance(view, ConflictView):
        return _fit(render, min(len(view.claimants), MAX_CLAIMANTS))
    if isinstance(view, MatchView | UpdateView):
        return _fit(render, min(len(view.changes), MAX_CHANGES_SHOWN))
    return render(0)


def match_card(view: MatchView) -> Card:
    """A pending auto-match: who, which directory user, why, what Accept writes."""
    return _render_proposal(view, None, True, True)


def new_card(view: NewView) -> Card:
    """An Entra user with no match: Link (input ``target``) / Create / Ignore."""
    return _render_proposal(view, None, True, True)


def update_card(view: UpdateView) -> Card:
    """Field changes of a linked user: Apply / Ignore."""
    return _render_proposal(view, None, True, True)


def removal_card(view: RemovalView) -> Card:
    """A linked user deleted/disabled/out of scope: Remove sync / Delete user."""
    return _render_proposal(view, None, True, True)


def removal_confirm_card(view: RemovalView) -> Card:
    """Second step of Delete user: Yes, delete (delete_user_confirm) / Cancel (refresh)."""
    body: list[Element] = [
        _notice(
            f"Delete the directory user {escape_md(view.app_user.name, 100)} "
            f"(id {escape_md(view.app_user.id, 64)})? This cannot be undone.",
        ),
        *_removal_body(view),
    ]
    actions = [
        _execute(
            "Yes, delete",
            Verb.DELETE_USER_CONFIRM,
            view.ref.pid,
            view.ref.digest,
            style="destructive",
        ),
        _execute("Cancel", Verb.REFRESH, view.ref.pid, view.ref.digest),
    ]
    return _card(body, actions, view.ref)


def conflict_card(view: ConflictView) -> Card:
    """Two or more Entra users share a number: pick the owner (input ``owner``) / Ignore."""
    return _render_proposal(view, None, True, True)


def proposal_card(view: ProposalView) -> Card:
    """The card of any proposal view (dispatches on its type)."""
    return _render_proposal(view, None, True, True)


def stale_card(view: ProposalView) -> Card:
    """The proposal re-rendered with current values, under a notice that nothing was applied."""
    return _render_proposal(view, _notice(STALE_NOTICE, "warning"), True, True)


# --- guard, digest --------------------------------------------------------------------------


def guard_card(view: GuardView) -> Card:
    """Mass-removal guard: Confirm / Dismiss."""
    where = f" in {escape_md(view.tenant, 60)}" if view.tenant else ""
    body: list[Element] = [
        _text("GUARD", size="Small", isSubtle=True, weight="Bolder"),
        _heading(f"This run would remove {view.removals} of {view.linked} linked users{where}"),
        _text(
            "Nothing was removed and no removal was proposed. **Confirm** lets this run's "
            "removals through as proposals (each still needs a decision); **Dismiss** holds "
            "them back.",
        ),
    ]
    actions = [
        _execute("Confirm", Verb.GUARD_CONFIRM, view.ref.pid, view.ref.digest, style="destructive"),
        _execute("Dismiss", Verb.GUARD_DISMISS, view.ref.pid, view.ref.digest),
    ]
    return _card(body, actions, view.ref)


def _item_list(items: Sequence[DigestItem], n: int) -> list[Element]:
    out = [_bullet(i.kind, i.name) for i in items[:n]]
    if len(items) > n:
        out.append(_more(len(items) - n))
    return out


def digest_card(view: DigestView) -> Card:
    """Many pending items: counts by kind, the first ``limit`` names, Accept all / Apply all."""
    total = sum(int(view.counts.get(k, 0)) for k in Kind)

    def render(n: int) -> Card:
        body: list[Element] = [
            _heading(f"{total} items wait for a decision"),
            _facts([(KIND_LABELS[k], str(int(view.counts.get(k, 0)))) for k in Kind]),
        ]
        if view.pager is None:
            body += _item_list(view.items, n)
        else:
            body += _paged_list(view.items, n, view.pager)
        actions: list[Element] = []
        if view.counts.get(Kind.MATCH, 0) > 0:
            actions.append(
                _execute(
                    "Accept all matches",
                    Verb.ACCEPT_ALL,
                    view.ref.pid,
                    view.ref.digest,
                    style="positive",
                )
            )
        if view.counts.get(Kind.UPDATE, 0) > 0:
            actions.append(
                _execute("Apply all updates", Verb.APPLY_ALL, view.ref.pid, view.ref.digest)
            )
        if view.pager is not None:
            actions += _page_buttons(view.pager)
        return _card(body, actions, view.ref)

    return _fit(render, min(len(view.items), max(0, view.limit)))


def _paged_list(items: Sequence[DigestItem], n: int, pager: Pager) -> list[Element]:
    """A page of the pending list: where it is, the names, and how many more and how to see
    them ("… and 17 more — type 'pending' or press Next")."""
    out: list[Element] = []
    if pager.changed:
        out.append(
            _text(
                "The list changed since that page was shown; this is the current list.",
                isSubtle=True,
                spacing="Small",
            )
        )
    shown = items[:n]
    if pager.pages > 1 and shown:
        last = pager.first + len(shown) - 1
        out.append(
            _text(
                f"Page {pager.page} of {pager.pages} (items {pager.first}\u2013{last})",
                isSubtle=True,
                spacing="Small",
            )
        )
    out += [_bullet(i.kind, i.name) for i in shown]
    more = pager.after + max(0, len(items) - n)
    if more:
        how = "type 'pending' or press Next" if pager.next else "type 'pending'"
        out.append(_text(f"\u2026 and {more} more \u2014 {how}", isSubtle=True, spacing="Small"))
    return out


def _page_buttons(pager: Pager) -> list[Element]:
    """Previous / Next: ``Action.Execute`` "page" with the page cursor and its HMAC."""
    out: list[Element] = []
    if pager.previous is not None:
        out.append(_execute("Previous", Verb.PAGE, pager.previous.pid, pager.previous.digest))
    if pager.next is not None:
        out.append(_execute("Next", Verb.PAGE, pager.next.pid, pager.next.digest))
    return out


def auto_applied_card(view: AutoAppliedView) -> Card:
    """Scheduled mode: "Applied N changes automatically" with the list. No buttons."""
    when = f" ({escape_md(view.at, 40)})" if view.at else ""
    noun = "change" if view.applied == 1 else "changes"

    def render(n: int) -> Card:
        return _card(
            [
                _heading(f"Applied {view.applied} {noun} automatically{when}"),
                *_item_list(view.items, n),
            ]
        )

    return _fit(render, min(len(view.items), max(0, view.limit)))


# --- status ---------------------------------------------------------------------------------


def _tenant_section(t: TenantStatus, with_name: bool) -> list[Element]:
    out: list[Element] = []
    if with_name:
        out.append(_subheading(f"Tenant {escape_md(t.name, 60)}"))
    if t.connected:
        out.append(_text("\u2705 Connected", color="good", weight="Bolder", spacing="Small"))
    else:
        code = f": {escape_md(t.error_code, 40)}" if t.error_code else ""
        out.append(
            _text(
                f"\u274c Not connected{code}", color="attention", weight="Bolder", spacing="Small"
            )
        )
        if t.error_hint:
            out.append(_text(escape_md(t.error_hint, 400), spacing="None"))
    if t.connected and (t.error_code or t.error_hint):
        # connected, but the last sync failed (Graph down, throttled...) or could not read
        # every user: the code and what to do, as for a connection error
        code = f"{escape_md(t.error_code, 40)}: " if t.error_code else ""
        warning = f"\u26a0\ufe0f {code}{escape_md(t.error_hint, 400)}"
        out.append(_text(warning, color="warning", spacing="Small"))
    if not t.last_sync_at:
        last = "never"
    elif t.last_sync_ok is False:
        reason = f": {escape_md(t.last_sync_reason, 200)}" if t.last_sync_reason else ""
        last = f"{escape_md(t.last_sync_at, 40)}, failed{reason}"
    else:
        last = f"{escape_md(t.last_sync_at, 40)}, ok"
    nxt = escape_md(t.next_sync_at, 40) if t.next_sync_at else "manual (type **sync now**)"
    out.append(
        _facts(
            [
                ("Last sync", last),
                ("Next sync", nxt),
                ("Synced", f"{t.synced}/{t.syncable} synced"),
                ("Pending", _counts_line(t.pending)),
            ]
        )
    )
    return out


def status_card(view: StatusView) -> Card:
    """Connection, last/next sync, the synced counter and pending counts, per tenant."""
    several = len(view.tenants) > 1

    def render(n: int) -> Card:
        tenants = view.tenants[:n]
        body: list[Element] = [_heading("Entra Sync status")]
        if not view.tenants:
            body.append(_text("No tenant is connected yet. Type **connect** to add one."))
        for t in tenants:
            body.extend(_tenant_section(t, several))
        if len(view.tenants) > len(tenants):
            body.append(_more(len(view.tenants) - len(tenants), "tenants"))
        return _card(body)

    return _fit(render, min(len(view.tenants), MAX_TENANTS_SHOWN))


# --- decided, refusal -----------------------------------------------------------------------


def decided_line(view: DecidedView) -> str:
    """ "Accepted by Anna, 14:02" (escaped Markdown)."""
    word = OUTCOME_TEXT[view.outcome]
    line = f"**{word}**"
    if view.actor:
        line += f" by {escape_md(view.actor, 80)}"
    if view.at:
        line += f"{',' if view.actor else ''} {escape_md(view.at, 40)}"
    return line


def decided_card(view: DecidedView) -> Card:
    """The replacement after an action: who did what when, a short summary, no buttons."""
    color = "attention" if view.outcome in (Outcome.DELETED, Outcome.SUPERSEDED) else "good"
    if view.outcome in (Outcome.IGNORED, Outcome.DISMISSED, Outcome.HANDLED):
        color = "default"

    def render(n: int) -> Card:
        body: list[Element] = [
            _heading(escape_md(view.title, 120)),
            _text(decided_line(view), color=color),
        ]
        body += [_text(escape_md(s, 300), spacing="None", isSubtle=True) for s in view.summary[:n]]
        if len(view.summary) > n:
            body.append(_more(len(view.summary) - n))
        return _card(body)

    return _fit(render, min(len(view.summary), MAX_SUMMARY_LINES))


def refusal_text(view: RefusalView) -> str:
    """The refusal as one Markdown-safe sentence (for a plain message)."""
    if view.reason is RefusalReason.NOT_ADMIN:
        return "Only admins can do this."
    if view.reason is RefusalReason.NOT_FOUND:
        return "This item is not known any more. Type **pending** to see what is open."
    who = escape_md(view.actor, 80) if view.actor else "someone else"
    text = f"This item is no longer pending: handled by {who}"
    if view.at:
        text += f" at {escape_md(view.at, 40)}"
    if view.state:
        text += f" ({escape_md(view.state, 40)})"
    return text + "."


def refusal_card(view: RefusalView) -> Card:
    """The refusal notice; with ``view.proposal``, the proposal read-only below it."""
    notice = _notice(refusal_text(view))
    if view.proposal is not None:
        return _render_proposal(view.proposal, notice, False, False)
    return _card([notice])


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
)


def settings_card(view: SettingsView) -> Card:
    """The settings form; ``view.errors`` (input id -> message) show in red under each input."""
    e = view.errors
    body: list[Element] = [_heading("Sync settings")]
    if e:
        body.append(_notice("Nothing was saved. Fix the fields marked in red."))
        for key in sorted(k for k in e if k not in SETTINGS_INPUTS):
            body.append(_error_line(f"{key}: {e[key]}"))
    body.append(_subheading("Scope"))
    body += _with_error(
        _input_text(
            "groups",
            "Groups (object ids, comma-separated; empty: all users)",
            ", ".join(view.groups),
            placeholder="all users",
        ),
        e,
    )
    body += _with_error(_toggle("enabled_only", "Only enabled accounts", view.enabled_only), e)
    body += _with_error(
        _toggle("require_phone", "Only users with a phone number", view.require_phone), e
    )
    body.append(_subheading("Field mapping (Graph attribute, case-sensitive)"))
    for id_, label in (
        ("first_name", "First name"),
        ("last_name", "Last name"),
        ("display_name", "Display name"),
        ("email", "E-mail"),
    ):
        body += _with_error(
            _input_text(id_, label, getattr(view, id_), placeholder="not mapped"), e
        )
    body += _with_error(
        _input_text(
            "tags",
            "Tags (attributes, comma-separated)",
            ", ".join(view.tags),
            placeholder="e.g. department, city",
        ),
        e,
    )
    body.append(_subheading("Schedule"))
    body += _with_error(
        {
            "type": "Input.ChoiceSet",
            "id": "mode",
            "label": "Mode",
            "style": "compact",
            "value": view.mode if view.mode in SCHEDULE_MODES else "manual",
            "choices": [
                {"title": "Manual: every change waits for an admin", "value": "manual"},
                {"title": "Daily at a set time", "value": "daily"},
                {"title": "Every N hours", "value": "interval"},
                {"title": "Watch: look for Entra changes every N seconds", "value": "watch"},
            ],
        },
        e,
    )
    body += _with_error(
        _input_text(
            "at",
            "Daily at (HH:MM)",
            view.at,
            placeholder="02:00",
            regex="^([01][0-9]|2[0-3]):[0-5][0-9]$",
            errorMessage="Use HH:MM, e.g. 02:00.",
        ),
        e,
    )
    body += _with_error(
        {
            "type": "Input.Number",
            "id": "every_hours",
            "label": "Every N hours",
            "min": 1,
            "max": 168,
            "value": view.every_hours,
        },
        e,
    )
    body += _with_error(
        {
            "type": "Input.Number",
            "id": "every_seconds",
            "label": "Watch: every N seconds",
            "min": 10,
            "max": 3600,
            "value": view.every_seconds,
        },
        e,
    )
    body.append(_subheading("Mass-removal guard"))
    body += _with_error(
        {
            "type": "Input.Number",
            "id": "max_removals",
            "label": "Hold back a run that removes more than this many users",
            "min": 0,
            "value": view.max_removals,
        },
        e,
    )
    body += _with_error(
        {
            "type": "Input.Number",
            "id": "max_removal_share",
            "label": "... or more than this share of linked users (0 to 1)",
            "min": 0,
            "max": 1,
            "value": view.max_removal_share,
        },
        e,
    )
    body.append(_subheading("Notifications"))
    body += _with_error(
        _toggle(
            "notify_admins_personally",
            "Also notify the admins personally (1:1 chat)",
            view.notify_admins_personally,
        ),
        e,
    )
    body += _with_error(
        {
            "type": "Input.Number",
            "id": "max_cards_per_run",
            "label": "One card per item up to this many; more become one digest card",
            "min": 0,
            "max": 50,
            "value": view.max_cards_per_run,
        },
        e,
    )
    actions = [
        _execute(
            "Save",
            Verb.SETTINGS_SAVE,
            view.ref.pid,
            view.ref.digest,
            style="positive",
            inputs=True,
        ),
        _execute("Cancel", Verb.REFRESH, view.ref.pid, view.ref.digest),
    ]
    return _card(body, actions)


CONNECT_INPUTS = ("tenant_id", "client_id", "client_secret")


def connect_card(view: ConnectView) -> Card:
    """Connect a tenant: tenant id, client id, client secret (password, never pre-filled)."""
    e = view.errors
    body: list[Element] = [
        _heading("Connect an Entra tenant"),
        _text(
            "Register an app in Entra (App registrations), give it the Microsoft Graph "
            "application permission **User.Read.All** (and **GroupMember.Read.All** for group "
            "scope), grant admin consent, and create a client secret."
        ),
    ]
    if e:
        body.append(_notice("Nothing was saved. Fix the fields marked in red."))
        for key in sorted(k for k in e if k not in CONNECT_INPUTS):
            body.append(_error_line(f"{key}: {e[key]}"))
    body += _with_error(
        _input_text(
            "tenant_id",
            "Directory (tenant) ID",
            view.tenant_id,
            isRequired=True,
            errorMessage="The tenant id is required.",
            placeholder="00000000-0000-0000-0000-000000000000",
        ),
        e,
    )
    body += _with_error(
        _input_text(
            "client_id",
            "Application (client) ID",
            view.client_id,
            isRequired=True,
            errorMessage="The client id is required.",
            placeholder="00000000-0000-0000-0000-000000000000",
        ),
        e,
    )
    body += _with_error(
        {
            "type": "Input.Text",
            "id": "client_secret",
            "label": "Client secret (its Value, not its Secret ID)",
            "style": "password",
            "isRequired": True,
            "errorMessage": "The client secret is required.",
        },
        e,
    )
    if view.consent_url:
        body.append(
            _text(
                "Not an Entra admin? Forward this link to one to grant consent: "
                + md_link("admin consent", view.consent_url),
                spacing="Medium",
            )
        )
    actions = [
        _execute(
            "Save",
            Verb.CONNECT_SAVE,
            view.ref.pid,
            view.ref.digest,
            style="positive",
            inputs=True,
        )
    ]
    return _card(body, actions)


# --- lists ----------------------------------------------------------------------------------


def pending_list_card(view: PendingListView) -> Card:
    """What waits for a decision: counts by kind and the first ``limit`` items."""
    counts = {k: sum(1 for i in view.items if i.kind is k) for k in Kind}

    def render(n: int) -> Card:
        body: list[Element] = [
            _heading(f"Pending ({len(view.items)})"),
            _text(_counts_line(counts), isSubtle=True, spacing="None"),
        ]
        if not view.items:
            body.append(_text("Nothing is pending."))
        body += [_bullet(i.kind, i.name, i.reason) for i in view.items[:n]]
        if len(view.items) > n:
            body.append(_more(len(view.items) - n))
        return _card(body)

    return _fit(render, min(len(view.items), max(0, view.limit)))


def ignored_list_card(view: IgnoredListView) -> Card:
    """Ignored Entra users, each with an Un-ignore button (verb unignore, pid = Entra id)."""

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
                            "actions": [_execute("Un-ignore", Verb.UNIGNORE, entra_id, digest)],
                        }
                    ],
                },
            ],
        }

    def render(n: int) -> Card:
        body: list[Element] = [_heading(f"Ignored users ({len(view.items)})")]
        if not view.items:
            body.append(_text("No user is ignored."))
        body += [row(i.name, i.entra_id, i.digest) for i in view.items[:n]]
        if len(view.items) > n:
            body.append(_more(len(view.items) - n))
        return _card(body)

    return _fit(render, min(len(view.items), max(0, view.limit)))


def audit_card(view: AuditView) -> Card:
    """Recent decisions: who, what, when, before/after in short."""

    def entry(a: AuditEntry) -> list[Element]:
        out = [
            _text(
                f"**{escape_md(a.at, 40)}** \u00b7 {escape_md(a.actor, 60)} "
                f"{escape_md(a.action, 40)} {escape_md(a.subject, 80)}",
                spacing="Small",
            )
        ]
        if a.before or a.after:
            out.append(
                _text(
                    f"{fmt_value(a.before)} \u2192 {fmt_value(a.after)}",
                    isSubtle=True,
                    size="Small",
                    spacing="None",
                )
            )
        return out

    def render(n: int) -> Card:
        body: list[Element] = [_heading("Recent decisions")]
        if not view.entries:
            body.append(_text("No decisions yet."))
        for a in view.entries[:n]:
            body += entry(a)
        if len(view.entries) > n:
            body.append(_more(len(view.entries) - n))
        return _card(body)

    return _fit(render, min(len(view.entries), max(0, view.limit)))


def help_card(view: HelpView) -> Card:
    """The command table."""

    def render(n: int) -> Card:
        rows = view.commands[:n]
        body = [
            _heading("Entra Sync commands"),
            _facts((f"**{escape_md(c, 40)}**", escape_md(d, 200)) for c, d in rows),
        ]
        if len(view.commands) > n:
            body.append(_more(len(view.commands) - n))
        return _card(body)

    return _fit(render, min(len(view.commands), MAX_HELP_ROWS))


def preview_card(view: PreviewView) -> Card:
    """Dry run: per-user diff, no buttons, "and N more"."""

    def render(n: int) -> Card:
        body: list[Element] = [
            _heading("Preview: what a sync would propose"),
            _text("A dry run; nothing was changed.", isSubtle=True, spacing="None"),
        ]
        if view.counts:
            body.append(_text(_counts_line(view.counts), spacing="Small"))
        if not view.items:
            body.append(_text("Nothing would change."))
        for item in view.items[:n]:
            body.append(_bullet(item.kind, item.name))
            body.extend(_change_facts(item.changes))
        if len(view.items) > n:
            body.append(_more(len(view.items) - n))
        return _card(body)

    return _fit(render, min(len(view.items), max(0, view.limit)))
