"""From the service's records to the card builders' view records (``cards.views``): the only
place the bot decides what a card shows; ``cards/`` decides how it is drawn."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cards import build
from cards import views as v
from cards.catalogue import ENGLISH, Texts
from cards.reminder import ReminderItem, ReminderView
from sync.mail.notifier import MailResult
from sync.models import DirectoryUser, Kind, Plan, ProposalState
from sync.service import listing
from sync.service.decisions import BulkSet
from sync.service.listing import PendingPage
from sync.service.reminders import Reminder
from sync.service.service import Item, TenantStatus
from sync.service.settings_editor import SettingsOutcome

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
        restorable_until=until.date() if until is not None else "",
    )


def proposal_view(
    item: Item,
    *,
    choices: Sequence[DirectoryUser] = (),
    names: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    admin_ids: Sequence[str] = (),
    upns: Mapping[str, str] | None = None,
) -> v.ProposalView:
    """``labels`` / ``upns``: Entra id -> display name / userPrincipalName (or mail), where the
    caller knows them (a conflict card shows a claimant's UPN rather than its object id)."""
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
    upns = upns or {}
    own = dict(zip(p.entra_ids, p.entra_labels, strict=False))
    return v.ConflictView(
        ref=ref,
        number=p.number or "",
        claimants=tuple(
            v.EntraPerson(id=e, name=labels.get(e) or own.get(e) or e, upn=upns.get(e, ""))
            for e in p.entra_ids
        ),
        holder=_app_user(item, names) if p.app_user_id else None,
    )


def decided_view(
    item: Item,
    *,
    actor: str | None = None,
    at: datetime | None = None,
    inputs: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> v.DecidedView:
    """What was decided: the outcome, who, when, and its content (linked to whom, which owner
    keeps the number, which fields were written). ``inputs`` are the decision's inputs
    (``target``, ``owner``) when known; ``names`` directory user id -> name."""
    verb = item.verb or ""
    p = item.proposal
    names = names or {}
    inputs = inputs or {}
    if item.state is ProposalState.SUPERSEDED:
        outcome = v.Outcome.SUPERSEDED
    else:
        outcome = VERB_OUTCOME.get(verb, v.Outcome.HANDLED)
    app_user = _app_user(item, names) if p.app_user_id else None
    target = inputs.get(v.INPUT_TARGET)
    if outcome is v.Outcome.LINKED and target:
        app_user = v.AppUser(id=target, name=names.get(target) or target)
    owner = None
    owner_id = inputs.get(v.INPUT_OWNER)
    if outcome is v.Outcome.OWNER_PICKED and owner_id:
        own = dict(zip(p.entra_ids, p.entra_labels, strict=False))
        owner = v.EntraPerson(id=owner_id, name=own.get(owner_id) or owner_id)
    written = outcome in (v.Outcome.ACCEPTED, v.Outcome.APPLIED, v.Outcome.CREATED)
    return v.DecidedView(
        title=p.label or p.entra_id or item.id,
        outcome=outcome,
        actor=actor if actor is not None else (item.decided_by or ""),
        at=at if at is not None else (item.decided_at or ""),
        kind=p.kind,
        app_user=app_user,
        changes=p.changes if written else {},
        number=p.number or "",
        owner=owner,
    )


def mail_status_view(mail: MailResult | None) -> v.MailStatus | None:
    if mail is None:
        return None
    return v.MailStatus(
        at=mail.at,
        ok=mail.ok,
        recipients=mail.recipients,
        error_code=mail.code,
        error_message=mail.message,
        error_hint=mail.hint,
    )


def status_view(statuses: Sequence[TenantStatus], mail: MailResult | None = None) -> v.StatusView:
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
                last_sync_at=s.last_sync_at or "",
                last_sync_ok=None if s.last_status is None else s.last_status == "ok",
                last_sync_reason=str(err.get("message") or "") if s.last_status == "failed" else "",
                next_sync_at=s.next_sync_at or "",
                synced=s.synced,
                syncable=s.syncable,
                pending=pending,
            )
        )
    return v.StatusView(tenants=tuple(out), mail=mail_status_view(mail))


def item_card(view: v.ProposalView, texts: Texts = ENGLISH) -> dict[str, Any]:
    """The card an item is posted (or updated) with: when its ``refresh.userIds`` names the
    admins (per-user views), everyone sees it read-only and the admins' Teams clients refresh
    it to the card with buttons; else the card with buttons."""
    if view.ref.admin_ids:
        return build.proposal_read_only_card(view, offer_actions=True, texts=texts)
    return build.proposal_card(view, texts)


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
    items: Sequence[Item],
    choices: Choices,
    audience: Sequence[str] = (),
    texts: Texts = ENGLISH,
) -> list[tuple[dict[str, Any], str]]:
    """(card, pid) per item (``item_card``; ``audience``: the admins' Teams user ids);
    new-user cards list the directory's users to link to (``choices(directory)``, asked once
    per directory)."""
    by_directory: dict[str, Sequence[DirectoryUser]] = {}
    out = []
    for item in items:
        if item.kind is Kind.NEW and item.directory not in by_directory:
            by_directory[item.directory] = await choices(item.directory)
        view = proposal_view(item, choices=by_directory.get(item.directory, ()), admin_ids=audience)
        out.append((item_card(view, texts), item.id))
    return out


def preview_view(plans: Sequence[tuple[str, str, Plan]]) -> v.PreviewView:
    items: list[v.PreviewItem] = []
    counts: dict[Kind, int] = {}
    proposals = [p for _tenant, _directory, plan in plans for p in plan.proposals]
    for p in listing.in_display_order(proposals, lambda p: p):
        counts[p.kind] = counts.get(p.kind, 0) + 1
        items.append(v.PreviewItem(kind=p.kind, name=listing.display_name(p), changes=p.changes))
    return v.PreviewView(items=tuple(items), counts=counts)


def _moment(value: Any) -> v.At:
    """An ISO-8601 time (audit entries store strings) as a datetime, else the text as is."""
    if isinstance(value, datetime):
        return value
    text = str(value or "")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return text[:16].replace("T", " ")
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def audit_view(entries: Sequence[Mapping[str, Any]]) -> v.AuditView:
    """Audit entries (as their ``to_dict()``) as card rows: the action in words, the names
    of whom it is about, and only the fields that changed (no ids)."""
    out = []
    for d in entries:
        out.append(
            v.AuditEntry(
                actor=str(d.get("actor_name") or d.get("actor_id") or ""),
                action=str(d.get("what") or d.get("action") or ""),
                at=_moment(d.get("at")),
                subject=str(d.get("subject") or ""),
                changes=tuple(
                    (str(f), str(old), str(new)) for f, old, new in d.get("changes") or ()
                ),
            )
        )
    return v.AuditView(entries=tuple(out))


# Settings card input id (flat, cards.build.SETTINGS_INPUTS) -> service form field (dotted).
SETTINGS_FIELDS: Mapping[str, str] = {
    "groups": "scope.groups",
    "enabled_only": "scope.enabled_only",
    "require_phone": "scope.require_phone",
    "scope_filter": "scope.filter",
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
    "notify_email": "notify.email",
}
SETTINGS_INPUT_OF = {dotted: flat for flat, dotted in SETTINGS_FIELDS.items()}
_TUPLES = frozenset({"groups", "tags", "notify_email"})
_BOOLS = frozenset({"enabled_only", "require_phone", "notify_admins_personally"})
_TEXTS = frozenset(
    {"first_name", "last_name", "display_name", "email", "mode", "at", "scope_filter"}
)
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
    outcome: SettingsOutcome | None = None,
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
        **_filter_preview(outcome),
    )


def bulk_entry(item: Item, why: str = "") -> v.BulkEntry:
    """An item of Accept all / Apply all: the Entra name, the directory user, (left out) why."""
    p = item.proposal
    name = listing.display_name(p)
    if p.app_label and p.app_label != name:
        name = f"{name} \u2192 {p.app_label}"
    return v.BulkEntry(name=name, detail=why)


def bulk_view(bulk: BulkSet, *, with_ref: bool) -> v.BulkView:
    """The confirmation (``with_ref``: the Yes button carries the set's digest) or the list."""
    return v.BulkView(
        kind=bulk.kind,
        items=tuple(bulk_entry(i) for i in bulk.included),
        left_out=tuple(bulk_entry(i, why) for i, why in bulk.left_out),
        ref=v.CardRef(bulk.pid, bulk.digest) if with_ref else None,
    )


def _filter_preview(outcome: SettingsOutcome | None) -> dict[str, Any]:
    """The settings card's impact of a new scope filter, waiting for the admin's confirm."""
    if outcome is None or not outcome.confirm_token:
        return {}
    impacts = tuple(
        v.ScopeImpactView(
            i.tenant, i.directory, i.in_scope_before, i.in_scope_after, i.removals, i.held_back
        )
        for i in outcome.impacts
    )
    return {"filter_impacts": impacts, "filter_confirm": outcome.confirm_token}


def credential_lines(statuses: Sequence[TenantStatus]) -> list[tuple[str, str, str]]:
    """(tenant, state, message) for each tenant whose app credential is not simply fine:
    expiring, expired or of unknown expiry for want of the permission (once per tenant,
    whatever its directories). A failed check ("unchecked") is not worth a card."""
    out: dict[str, tuple[str, str, str]] = {}
    for s in statuses:
        expiry = s.credential
        if expiry is not None and expiry.state in ("expiring", "expired", "unknown"):
            out.setdefault(s.tenant, (s.tenant, expiry.state, expiry.message))
    return list(out.values())
