"""From the service's records to the card builders' view records (``cards.views``): the only
place the bot decides what a card shows; ``cards/`` decides how it is drawn."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cards import build
from cards import views as v
from cards.reminder import ReminderItem, ReminderView
from sync.models import DirectoryUser, Kind, Plan, ProposalState
from sync.service import listing
from sync.service.listing import PendingPage
from sync.service.reminders import Reminder
from sync.service.service import Item, TenantStatus

Choices = Callable[[str], Awaitable[Sequence[DirectoryUser]]]

VERB_OUTCOME: Mapping[str, v.Outcome] = {
    "accept": v.Outcome.ACCEPTED,
    "accept_all": v.Outcome.ACCEPTED,
    "ignore": v.Outcome.IGNORED,
    "apply": v.Outcome.APPLIED,
    "apply_all": v.Outcome.APPLIED,
    "link": v.Outcome.LINKED,
    "create": v.Outcome.CREATED,
    "remove_sync": v.Outcome.REMOVED_SYNC,
    "delete_user": v.Outcome.DELETED,
    "delete_user_confirm": v.Outcome.DELETED,
    "pick_owner": v.Outcome.OWNER_PICKED,
    "guard_confirm": v.Outcome.CONFIRMED,
    "guard_dismiss": v.Outcome.DISMISSED,
}


def hhmm(at: datetime | None) -> str:
    return at.strftime("%H:%M") if at is not None else ""


def _entra(item: Item) -> v.EntraPerson:
    p = item.proposal
    return v.EntraPerson(id=p.entra_id or "", name=p.label or p.entra_id or "?")


def _app_user(item: Item, names: Mapping[str, str]) -> v.AppUser:
    uid = item.proposal.app_user_id or ""
    return v.AppUser(id=uid, name=names.get(uid) or item.proposal.app_label or uid)


def _removal_view(item: Item, ref: v.CardRef, names: Mapping[str, str]) -> v.RemovalView:
    """A removal says why; a soft-deleted user's also until when Entra can restore it."""
    p = item.proposal
    try:
        cause = v.RemovalCause(p.removal_cause or "deleted")
    except ValueError:
        cause = v.RemovalCause.DELETED
    until = p.restorable_until
    return v.RemovalView(
        ref=ref,
        entra=_entra(item),
        app_user=_app_user(item, names),
        cause=cause,
        restorable_until=f"{until.day} {until:%b %Y}" if until is not None else "",
    )


def proposal_view(
    item: Item,
    *,
    choices: Sequence[DirectoryUser] = (),
    names: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    admin_ids: Sequence[str] = (),
) -> v.ProposalView:
    p = item.proposal
    names = names or {}
    ref = v.CardRef(pid=item.id, digest=item.digest, admin_ids=tuple(admin_ids))
    if p.kind is Kind.MATCH:
        return v.MatchView(
            ref=ref,
            entra=_entra(item),
            app_user=_app_user(item, names),
            key=p.match_key or "",
            value=p.match_value or "",
            changes=p.changes,
        )
    if p.kind is Kind.NEW:
        return v.NewView(
            ref=ref,
            entra=_entra(item),
            fields=p.changes,
            choices=tuple(
                v.LinkChoice(id=u.id, name=u.display_name or u.email or u.id)
                for u in choices[: v.MAX_LINK_CHOICES]
            ),
            choices_total=len(choices) if len(choices) > v.MAX_LINK_CHOICES else None,
        )
    if p.kind is Kind.UPDATE:
        return v.UpdateView(
            ref=ref, entra=_entra(item), app_user=_app_user(item, names), changes=p.changes
        )
    if p.kind is Kind.REMOVAL:
        return _removal_view(item, ref, names)
    labels = labels or {}
    own = dict(zip(p.entra_ids, p.entra_labels, strict=False))
    return v.ConflictView(
        ref=ref,
        number=p.number or "",
        claimants=tuple(
            v.EntraPerson(id=e, name=labels.get(e) or own.get(e) or e) for e in p.entra_ids
        ),
        holder=_app_user(item, names) if p.app_user_id else None,
    )


def decided_view(
    item: Item, *, actor: str | None = None, at: datetime | None = None
) -> v.DecidedView:
    verb = item.verb or ""
    if item.state is ProposalState.SUPERSEDED:
        outcome = v.Outcome.SUPERSEDED
    else:
        outcome = VERB_OUTCOME.get(verb, v.Outcome.HANDLED)
    return v.DecidedView(
        title=item.proposal.label or item.proposal.entra_id or item.id,
        outcome=outcome,
        actor=actor if actor is not None else (item.decided_by or ""),
        at=hhmm(at if at is not None else item.decided_at),
    )


def status_view(statuses: Sequence[TenantStatus]) -> v.StatusView:
    out = []
    for s in statuses:
        err = s.error or {}
        pending: dict[Kind, int] = {}
        for k, n in s.pending.items():
            try:
                pending[Kind(k)] = int(n)
            except ValueError:
                continue
        out.append(
            v.TenantStatus(
                name=s.tenant,
                connected=s.connected,
                error_code=str(err.get("code") or ""),
                error_hint=str(err.get("hint") or ""),
                last_sync_at=s.last_sync_at.strftime("%Y-%m-%d %H:%M") if s.last_sync_at else "",
                last_sync_ok=None if s.last_status is None else s.last_status == "ok",
                last_sync_reason=str(err.get("message") or "") if s.last_status == "failed" else "",
                next_sync_at=s.next_sync_at.strftime("%Y-%m-%d %H:%M") if s.next_sync_at else "",
                synced=s.synced,
                syncable=s.syncable,
                pending=pending,
            )
        )
    return v.StatusView(tenants=tuple(out))


def digest_view(items: Sequence[Item], *, pid: str, digest: str) -> v.DigestView:
    """The digest card of ``items``; ``digest`` is the service's HMAC of ``pid``."""
    counts: dict[Kind, int] = {}
    for i in items:
        counts[i.kind] = counts.get(i.kind, 0) + 1
    return v.DigestView(
        ref=v.CardRef(pid=pid, digest=digest),
        counts=counts,
        items=tuple(v.DigestItem(kind=i.kind, name=i.proposal.label or i.id) for i in items[:10]),
    )


def digest_page_view(listed: PendingPage, *, pid: str, digest: str) -> v.DigestView:
    """A page of the pending list as a digest card's view (the pager is the caller's)."""
    return v.DigestView(
        ref=v.CardRef(pid=pid, digest=digest),
        counts=listed.counts,
        items=tuple(
            v.DigestItem(kind=i.kind, name=listing.display_name(i.proposal)) for i in listed.items
        ),
        limit=len(listed.items),
    )


def reminder_view(reminder: Reminder, *, show: v.CardRef | None = None) -> ReminderView:
    """The daily reminder: its overdue items with the day each was proposed."""
    return ReminderView(
        after_days=reminder.after_days,
        total=len(reminder.items),
        items=tuple(
            ReminderItem(
                kind=o.stored.proposal.kind,
                name=listing.display_name(o.stored.proposal),
                since=f"{o.since.day} {o.since:%b}",
            )
            for o in reminder.items
        ),
        show=show,
    )


async def proposal_cards(
    items: Sequence[Item], choices: Choices
) -> list[tuple[dict[str, Any], str]]:
    """(card, pid) per item; new-user cards list the directory's users to link to
    (``choices(directory)``, asked once per directory)."""
    by_directory: dict[str, Sequence[DirectoryUser]] = {}
    out = []
    for item in items:
        if item.kind is Kind.NEW and item.directory not in by_directory:
            by_directory[item.directory] = await choices(item.directory)
        view = proposal_view(item, choices=by_directory.get(item.directory, ()))
        out.append((build.proposal_card(view), item.id))
    return out


def preview_view(plans: Sequence[tuple[str, str, Plan]]) -> v.PreviewView:
    items: list[v.PreviewItem] = []
    counts: dict[Kind, int] = {}
    proposals = [p for _tenant, _directory, plan in plans for p in plan.proposals]
    for p in listing.in_display_order(proposals, lambda p: p):
        counts[p.kind] = counts.get(p.kind, 0) + 1
        items.append(v.PreviewItem(kind=p.kind, name=listing.display_name(p), changes=p.changes))
    return v.PreviewView(items=tuple(items), counts=counts)


def _short(val: Any) -> str:
    if val is None or val == "":
        return ""
    if isinstance(val, str):
        return val[:200]
    return json.dumps(val, ensure_ascii=False, default=str)[:200]


def audit_view(entries: Sequence[Mapping[str, Any]]) -> v.AuditView:
    """Audit entries (as their ``to_dict()``) as card rows."""
    out = []
    for d in entries:
        out.append(
            v.AuditEntry(
                actor=str(d.get("actor_name") or d.get("actor_id") or ""),
                action=str(d.get("action") or ""),
                at=str(d.get("at") or "")[:16].replace("T", " "),
                subject=str(d.get("entra_id") or d.get("app_user_id") or d.get("tenant") or ""),
                before=_short(d.get("before")),
                after=_short(d.get("after")),
            )
        )
    return v.AuditView(entries=tuple(out))


# Settings card input id (flat, cards.build.SETTINGS_INPUTS) -> service form field (dotted).
SETTINGS_FIELDS: Mapping[str, str] = {
    "groups": "scope.groups",
    "enabled_only": "scope.enabled_only",
    "require_phone": "scope.require_phone",
    "first_name": "mapping.first_name",
    "last_name": "mapping.last_name",
    "display_name": "mapping.display_name",
    "email": "mapping.email",
    "tags": "mapping.tags",
    "mode": "schedule.mode",
    "at": "schedule.at",
    "every_hours": "schedule.every_hours",
    "every_seconds": "schedule.every_seconds",
    "max_removals": "guard.max_removals",
    "max_removal_share": "guard.max_removal_share",
    "notify_admins_personally": "bot.notify_admins_personally",
    "max_cards_per_run": "bot.max_cards_per_run",
}
SETTINGS_INPUT_OF = {dotted: flat for flat, dotted in SETTINGS_FIELDS.items()}
_TUPLES = frozenset({"groups", "tags"})
_BOOLS = frozenset({"enabled_only", "require_phone", "notify_admins_personally"})
_TEXTS = frozenset({"first_name", "last_name", "display_name", "email", "mode", "at"})
_NUMBERS: Mapping[str, Callable[[Any], Any]] = {
    "every_hours": int,
    "every_seconds": int,
    "max_removals": int,
    "max_cards_per_run": int,
    "max_removal_share": float,
}


def flatten_settings(table: Mapping[str, Any]) -> dict[str, Any]:
    """The service's settings table ({section: {field: value}}) as card input ids."""
    out: dict[str, Any] = {}
    for section, fields in table.items():
        if isinstance(fields, Mapping):
            for name, val in fields.items():
                flat = SETTINGS_INPUT_OF.get(f"{section}.{name}")
                if flat:
                    out[flat] = val
        elif section in SETTINGS_FIELDS:
            out[section] = fields
    return out


def _settings_value(key: str, val: Any) -> Any:
    """One SettingsView field from a table value or a submitted string; None: unusable."""
    if key in _TUPLES:
        if isinstance(val, str):
            return tuple(x.strip() for x in val.split(",") if x.strip())
        return tuple(str(x) for x in val) if isinstance(val, list | tuple) else ()
    if key in _BOOLS:
        return val is True or (isinstance(val, str) and val.lower() == "true")
    if key in _TEXTS:
        return "" if val is None else str(val)
    try:
        return _NUMBERS[key](val) if key in _NUMBERS else None
    except (TypeError, ValueError):
        return None


def settings_values(table: Mapping[str, Any]) -> dict[str, Any]:
    """SettingsView fields from the flattened settings table (or a submitted form)."""
    out = {}
    for key, val in table.items():
        value = _settings_value(key, val)
        if value is not None:
            out[key] = value
    return out


def settings_view(
    table: Mapping[str, Any],
    errors: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
) -> v.SettingsView:
    """The settings card's view: the saved settings, overlaid with a submitted form (when its
    validation failed) and the errors per input. Its digest is the saved settings' hash."""
    values = settings_values(flatten_settings(table))
    if form:
        values.update(settings_values(form))
    raw = json.dumps(table, sort_keys=True, default=str, separators=(",", ":"))
    return v.SettingsView(
        ref=v.CardRef(pid="settings", digest=hashlib.sha256(raw.encode()).hexdigest()[:16]),
        errors={SETTINGS_INPUT_OF.get(k, k): msg for k, msg in (errors or {}).items()},
        **values,
    )
