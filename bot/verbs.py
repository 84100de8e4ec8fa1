"""One handler per card verb. Each gets the pressed card's ``pid`` and ``d`` (digest) and the
named inputs of its verb, and returns the card that replaces the pressed one. Card data is
never trusted beyond that: item verbs are verified by the service (``d`` is its HMAC of the
item), digest buttons by their HMAC here, destructive confirmations by a server-side record
(``bot.context.Confirmations``). Who may press what is decided before, in ``bot.access``."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from bot import to_views
from bot.commands import (
    PENDING_PID,
    connect_view,
    ignored_card,
    parse_page_pid,
    pending_card,
    settings_card,
)
from bot.context import BotContext
from bot.turn import Turn
from cards import build, notices
from cards import bulk as bulk_cards
from cards import views as v
from cards.build import SETTINGS_INPUTS
from cards.catalogue import ENGLISH, Texts
from sync.errors import SyncError
from sync.models import Kind, ProposalState
from sync.service.decisions import bulk_pid
from sync.service.service import Decision, Item

MAX_INPUT = 2000
MAX_ID_INPUT = 200
MAX_SECRET = 1000
Card = dict[str, Any]

# Verbs that act on one item through SyncService.decide, and their extra inputs.
ITEM_VERBS: Mapping[str, tuple[str, ...]] = {
    "accept": (),
    "ignore": (),
    "apply": (),
    "link": (v.INPUT_TARGET,),
    "create": (),
    "remove_sync": (),
    "delete_user": (),
    "delete_user_confirm": (),
    "pick_owner": (v.INPUT_OWNER,),
    "guard_confirm": (),
    "guard_dismiss": (),
}
BULK_KINDS: Mapping[str, Kind] = {bulk_pid(k): k for k in (Kind.MATCH, Kind.UPDATE)}
# Azure AD errors that mean "the secret is wrong" (invalid / expired client secret).
SECRET_ERRORS = ("7000215", "7000222")


@dataclass(frozen=True, slots=True)
class CardAction:
    """A pressed button: its verb, ``pid`` and ``d``, and the inputs Teams sent with it."""

    verb: str
    pid: str
    digest: str
    data: Mapping[str, Any]
    by_admin: bool = False  # set for ``refresh`` only (bot.access): who gets the buttons

    def text(self, key: str, limit: int = MAX_INPUT) -> str | None:
        """An input as text (booleans as "true"/"false"); None when missing or too long."""
        val = self.data.get(key)
        if isinstance(val, bool):
            return "true" if val else "false"
        if isinstance(val, int | float):
            return str(val)
        if isinstance(val, str) and len(val) <= limit:
            return val
        return None


VerbHandler = Callable[[BotContext, Turn, CardAction], Awaitable[Card]]


def not_found_card(texts: Texts = ENGLISH) -> Card:
    return build.refusal_card(v.RefusalView(reason=v.RefusalReason.NOT_FOUND), texts)


async def proposal_view(
    ctx: BotContext, item: Item, admin_ids: Sequence[str] = ()
) -> v.ProposalView:
    """An item's view; new-user items list the directory's users to link to."""
    choices = (
        await ctx.service.directory_choices(item.directory, limit=100)
        if item.kind is Kind.NEW
        else []
    )
    return to_views.proposal_view(item, choices=choices, admin_ids=admin_ids)


async def _signed(ctx: BotContext, action: CardAction) -> bool:
    """Does ``d`` equal the service's HMAC of ``pid``? (digest and other non-item cards)"""
    return bool(action.digest) and hmac.compare_digest(
        action.digest.encode(), (await ctx.service.digest(action.pid)).encode()
    )


# --- item verbs ------------------------------------------------------------------------------


async def decide_item(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """accept, ignore, apply, link, create, remove_sync, delete_user(_confirm), pick_owner,
    guard_confirm/dismiss: the service decides; ``delete_user_confirm`` needs the confirmation
    card issued here first."""
    t = ctx.texts(turn)
    if action.verb == "delete_user_confirm" and not await ctx.confirmations.redeem(
        action.pid, action.digest
    ):
        return not_found_card(t)
    inputs = {
        name: val for name in ITEM_VERBS[action.verb] if (val := action.text(name, MAX_ID_INPUT))
    }
    actor = turn.actor
    decision = await ctx.service.decide(
        action.pid, action.verb, actor=actor, digest=action.digest, inputs=inputs
    )
    if decision.outcome == "confirm" and decision.item is not None:
        await ctx.confirmations.issue(decision.item.id, decision.item.digest)
    return await decision_card(ctx, decision, actor.name, t, inputs)


async def _decided_names(ctx: BotContext, item: Item, inputs: Mapping[str, str]) -> dict[str, str]:
    """The linked directory user's name (Link). Read by id: after the link it is no longer
    among the directory's choices (those are the unlinked users)."""
    target = inputs.get(v.INPUT_TARGET)
    if not target or item.kind is not Kind.NEW:
        return {}
    u = await ctx.service.directory_user(item.directory, target)
    return {} if u is None else {u.id: u.display_name or u.email or u.id}


async def _item_decision_card(
    ctx: BotContext,
    d: Decision,
    item: Item,
    actor: str,
    t: Texts,
    inputs: Mapping[str, str],
) -> Card:
    if d.outcome == "done":
        decided = to_views.decided_view(
            item,
            actor=item.decided_by or actor,
            at=item.decided_at or ctx.clock(),
            inputs=inputs,
            names=await _decided_names(ctx, item, inputs),
        )
        return build.decided_card(decided, t)
    if d.outcome == "already":
        return build.refusal_card(
            v.RefusalView(
                reason=v.RefusalReason.NOT_PENDING,
                actor=item.decided_by or "",
                at=item.decided_at or "",
                state=item.state.value,
            ),
            t,
        )
    if d.outcome == "stale":
        return build.stale_card(await proposal_view(ctx, item), t)
    if d.outcome == "confirm":
        view = await proposal_view(ctx, item)
        if isinstance(view, v.RemovalView):
            return build.removal_confirm_card(view, t)
        return build.proposal_card(view, t)
    hint = d.error.hint if d.error is not None else ""
    return notices.failed_card((d.message, hint), v.CardRef(item.id, item.digest), t)


async def decision_card(
    ctx: BotContext,
    d: Decision,
    actor: str,
    texts: Texts = ENGLISH,
    inputs: Mapping[str, str] | None = None,
) -> Card:
    """The card that answers a decision, by its outcome."""
    t = texts
    if d.item is not None and d.outcome != "not_found":
        return await _item_decision_card(ctx, d, d.item, actor, t, inputs or {})
    if d.outcome == "done":  # guard decisions: no item
        return notices.guard_decided_card(d.message, actor, ctx.clock(), t)
    if d.outcome in ("refused", "failed"):
        hint = d.error.hint if d.error is not None else ""
        return notices.failed_card((d.message, hint), texts=t)
    return not_found_card(t)


# --- other verbs ------------------------------------------------------------------------------


async def refresh(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """The card's current state: settings, the pending digest, a guard, or an item (its
    proposal card when pending and unchanged, the stale card when changed, else decided).
    A pending item's card has its buttons for admins only: anyone else gets it read-only
    (Universal Actions per-user views; the same ``refresh.userIds`` as the posted card)."""
    pid = action.pid
    t = ctx.texts(turn)
    if pid == notices.SETTINGS_PID:
        return await settings_card(ctx, texts=t)
    if pid.startswith("digest:") or pid == PENDING_PID or parse_page_pid(pid) is not None:
        if not await _signed(ctx, action):
            return not_found_card(t)
        return await pending_card(ctx, pid, t)
    if pid.startswith("guard:"):
        return notices.guard_held_card(v.CardRef(pid, action.digest), t)
    item = await ctx.service.item(pid)
    if item is None:
        return not_found_card(t)
    if item.state is not ProposalState.PENDING:
        return build.decided_card(to_views.decided_view(item), t)
    view = await proposal_view(ctx, item, admin_ids=await ctx.audience())
    if not action.by_admin:
        return build.proposal_read_only_card(view, offer_actions=False, texts=t)
    if item.digest == action.digest:
        return build.proposal_card(view, t)
    return build.stale_card(view, t)


async def page(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Previous / Next on a `pending` page: the page its cursor names (its HMAC must verify).
    A cursor of a list that changed since still answers: that page of the current list (the
    last page when it is shorter now), saying that the list changed."""
    t = ctx.texts(turn)
    if parse_page_pid(action.pid) is None or not await _signed(ctx, action):
        return not_found_card(t)
    return await pending_card(ctx, action.pid, t)


async def _bulk(ctx: BotContext, turn: Turn, action: CardAction, kind: Kind) -> Card:
    """Accept all / Apply all: up to ``BULK_CONFIRM_ABOVE`` items are decided at once and
    listed; more are listed first with Yes / Cancel. Items that need an individual look are
    left out either way (``sync.plan.bulk``)."""
    if not await _signed(ctx, action):
        return not_found_card(ctx.texts(turn))
    bulk = await ctx.service.bulk_set(kind)
    if bulk.needs_confirmation:
        view = to_views.bulk_view(bulk, with_ref=True)
        return bulk_cards.bulk_confirm_card(view, ctx.texts(turn))
    return await _run_bulk(ctx, turn, kind, bulk.digest)


async def _run_bulk(ctx: BotContext, turn: Turn, kind: Kind, digest: str) -> Card:
    t = ctx.texts(turn)
    decisions = await ctx.service.decide_bulk(kind, digest, actor=turn.actor)
    if decisions is None:
        return bulk_cards.bulk_refused_card(t)
    done = tuple(to_views.bulk_entry(d.item) for d in decisions if d.outcome == "done" and d.item)
    left = (await ctx.service.bulk_set(kind)).left_out
    view = v.BulkView(
        kind=kind,
        items=done,
        left_out=tuple(to_views.bulk_entry(i, why) for i, why in left),
        actor=turn.actor_name,
        at=ctx.clock(),
        failed=len(decisions) - len(done),
    )
    return bulk_cards.bulk_done_card(view, t)


async def accept_all(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Accept the pending matches (a digest card's button; its HMAC must verify)."""
    return await _bulk(ctx, turn, action, Kind.MATCH)


async def apply_all(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Apply the pending updates (a digest card's button; its HMAC must verify)."""
    return await _bulk(ctx, turn, action, Kind.UPDATE)


async def bulk_confirm(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Yes on a bulk confirmation: done only when ``d`` is the digest of the set the server
    computes now (a forged card, or a list that changed since, does nothing)."""
    kind = BULK_KINDS.get(action.pid)
    if kind is None:
        return not_found_card(ctx.texts(turn))
    return await _run_bulk(ctx, turn, kind, action.digest)


async def bulk_cancel(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    return bulk_cards.bulk_cancelled_card(turn.actor_name, ctx.clock(), ctx.texts(turn))


async def unignore(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    decision = await ctx.service.decide(
        action.pid, "unignore", actor=turn.actor, digest=action.digest, inputs={}
    )
    t = ctx.texts(turn)
    if decision.outcome not in ("done", "already"):
        return notices.unignore_failed_card(decision.message, t)
    return await ignored_card(ctx, t)


async def settings_save(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    form = {k: val for k in SETTINGS_INPUTS if (val := action.text(k)) is not None}
    fields = to_views.SETTINGS_FIELDS
    dotted = {fields[k]: val for k, val in form.items() if k in fields}
    # a new scope filter comes back with its impact first; its confirm button carries the
    # service's token in ``d`` (the plain Save carries the settings' digest, never a token)
    outcome = await ctx.service.save_settings(dotted, actor=turn.actor, confirm=action.digest)
    t = ctx.texts(turn)
    if outcome.errors:
        return await settings_card(ctx, outcome.errors, form, texts=t)
    if not outcome.saved:
        return await settings_card(ctx, None, form, outcome, texts=t)
    return notices.settings_saved_card(turn.actor_name, ctx.clock(), t)


def _missing_connect_fields(
    tenant_id: str, client_id: str, secret: str, certificate: bool, texts: Texts = ENGLISH
) -> dict[str, str]:
    required = {
        "tenant_id": (tenant_id, texts("The tenant id is required.")),
        "client_id": (client_id, texts("The client id is required.")),
        "client_secret": (secret or certificate, texts("The client secret is required.")),
    }
    return {name: msg for name, (val, msg) in required.items() if not val}


async def connect_save(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Connect a tenant with the submitted credentials; errors go back into the form (the
    secret is never echoed)."""
    tenant_id = (action.text("tenant_id", MAX_ID_INPUT) or "").strip()
    client_id = (action.text("client_id", MAX_ID_INPUT) or "").strip()
    secret = action.text("client_secret", MAX_SECRET) or ""
    t = ctx.texts(turn)

    def form(errors: Mapping[str, str]) -> Card:
        return build.connect_card(connect_view(ctx, errors, tenant_id, client_id), t)

    certificate = bool(ctx.service.connect_certificate_thumbprint())
    missing = _missing_connect_fields(tenant_id, client_id, secret, certificate, t)
    if missing:
        return form(missing)
    try:
        status = await ctx.service.connect(
            tenant_id, client_id, SecretStr(secret), actor=turn.actor
        )
    except SyncError as e:
        field_name = "client_secret" if any(c in e.code for c in SECRET_ERRORS) else "connect"
        return form({field_name: f"{e.message} {e.hint}".strip()})
    if not status.connected:
        err = status.error or {}
        msg = " ".join(str(x) for x in (err.get("code"), err.get("hint")) if x)
        return form({"connect": msg or t("Connection failed.")})
    return build.status_card(to_views.status_view([status]), t)


async def disconnect_confirm(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Disconnect, only with the token of a confirmation card issued by ``disconnect``."""
    t = ctx.texts(turn)
    if not await ctx.confirmations.redeem(notices.DISCONNECT_PID, action.digest):
        return not_found_card(t)
    await ctx.service.disconnect(None, actor=turn.actor)
    return notices.disconnected_card(turn.actor_name, ctx.clock(), t)


async def disconnect_cancel(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    await ctx.confirmations.redeem(notices.DISCONNECT_PID, action.digest)
    return notices.disconnect_cancelled_card(ctx.clock(), ctx.texts(turn))


VERBS: Mapping[str, VerbHandler] = {
    **{verb: decide_item for verb in ITEM_VERBS},
    v.Verb.REFRESH: refresh,
    v.Verb.PAGE: page,
    v.Verb.ACCEPT_ALL: accept_all,
    v.Verb.APPLY_ALL: apply_all,
    v.Verb.BULK_CONFIRM: bulk_confirm,
    v.Verb.BULK_CANCEL: bulk_cancel,
    v.Verb.UNIGNORE: unignore,
    v.Verb.SETTINGS_SAVE: settings_save,
    v.Verb.CONNECT_SAVE: connect_save,
    v.Verb.DISCONNECT_CONFIRM: disconnect_confirm,
    v.Verb.DISCONNECT_CANCEL: disconnect_cancel,
}
