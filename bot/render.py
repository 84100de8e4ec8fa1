"""From the service's records to the card builders' view records (``cards.views``) and on to
card JSON. The only place the bot decides what a card shows; the builders decide how."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cards import views as v
from cards.text import escape_md
from sync.models import DirectoryUser, Kind, ProposalState
from sync.service.service import Item, TenantStatus

CARD_VERSION = "1.5"

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
        try:
            cause = v.RemovalCause(p.removal_cause or "deleted")
        except ValueError:
            cause = v.RemovalCause.DELETED
        return v.RemovalView(
            ref=ref, entra=_entra(item), app_user=_app_user(item, names), cause=cause
        )
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


def digest_view(items: Sequence[Item], *, pid: str) -> v.DigestView:
    counts: dict[Kind, int] = {}
    for i in items:
        counts[i.kind] = counts.get(i.kind, 0) + 1
    return v.DigestView(
        ref=v.CardRef(pid=pid, digest=str(len(items))),
        counts=counts,
        items=tuple(v.DigestItem(kind=i.kind, name=i.proposal.label or i.id) for i in items[:10]),
    )


# --- minimal fallback builders (used only for what cards/ does not build) -------------------


def message_card(
    title: str, lines: Sequence[str] = (), *, actions: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A small card: an escaped title, escaped lines, optional Action.Execute buttons."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": escape_md(title), "weight": "Bolder", "wrap": True}
    ]
    body += [{"type": "TextBlock", "text": escape_md(line, 400), "wrap": True} for line in lines]
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body,
    }
    if actions:
        card["actions"] = list(actions)
    return card


def execute(title: str, verb: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "Action.Execute", "title": title, "verb": verb, "data": dict(data)}
