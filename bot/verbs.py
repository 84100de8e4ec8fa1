"""One handler per card verb. Each gets the pressed card's ``pid`` and ``d`` (digest) and the
named inputs of its verb, and returns the card that replaces the pressed one. Card data is
never trusted beyond that: item verbs are verified by the service (``d`` is its HMAC of the
item), digest buttons by their HMAC here, destructive confirmations by a server-side record
(``bot.context.Confirmations``). Who may press what is decided before, in ``bot.access``."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
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
from cards import views as v
from cards.build import SETTINGS_INPUTS
from sync.errors import SyncError
from sync.models import Kind, ProposalState
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
# Azure AD errors that mean "the secret is wrong" (invalid / expired client secret).
SECRET_ERRORS = ("7000215", "7000222")


@dataclass(frozen=True, slots=True)
class CardAction:
    """A pressed button: its verb, ``pid`` and ``d``, and the inputs Teams sent with it."""

    verb: str
    pid: str
    digest: str
    data: Mapping[str, Any]

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


def not_found_card() -> Card:
    return build.refusal_card(v.RefusalView(reason=v.RefusalReason.NOT_FOUND))


async def proposal_view(ctx: BotContext, item: Item) -> v.ProposalView:
    """An item's view; new-user items list the directory's users to link to."""
    choices = (
        await ctx.service.directory_choices(item.directory, limit=100)
        if item.kind is Kind.NEW
        else []
    )
    return to_views.proposal_view(item, choices=choices)


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
    if action.verb == "delete_user_confirm" and not await ctx.confirmations.redeem(
        action.pid, action.digest
    ):
        return not_found_card()
    inputs = {
        name: val for name in ITEM_VERBS[action.verb] if (val := action.text(name, MAX_ID_INPUT))
    }
    actor = turn.actor
    decision = await ctx.service.decide(
        action.pid, action.verb, actor=actor, digest=action.digest, inputs=inputs
    )
    if decision.outcome == "confirm" and decision.item is not None:
        await ctx.confirmations.issue(decision.item.id, decision.item.digest)
    return await decision_card(ctx, decision, actor.name)


async def _item_decision_card(ctx: BotContext, d: Decision, item: Item, actor: str) -> Card:
    if d.outcome == "done":
        decided = to_views.decided_view(
            item, actor=item.decided_by or actor, at=item.decided_at or ctx.clock()
        )
        return build.decided_card(decided)
    if d.outcome == "already":
        return build.refusal_card(
            v.RefusalView(
                reason=v.RefusalReason.NOT_PENDING,
                actor=item.decided_by or "",
                at=to_views.hhmm(item.decided_at),
                state=item.state.value,
            )
        )
    if d.outcome == "stale":
        return build.stale_card(await proposal_view(ctx, item))
    if d.outcome == "confirm":
        view = await proposal_view(ctx, item)
        if isinstance(view, v.RemovalView):
            return build.removal_confirm_card(view)
        return build.proposal_card(view)
    hint = d.error.hint if d.error is not None else ""
    return notices.failed_card((d.message, hint), v.CardRef(item.id, item.digest))


async def decision_card(ctx: BotContext, d: Decision, actor: str) -> Card:
    """The card that answers a decision, by its outcome."""
    if d.item is not None and d.outcome != "not_found":
        return await _item_decision_card(ctx, d, d.item, actor)
    if d.outcome == "done":  # guard decisions: no item
        return notices.guard_decided_card(d.message, actor, ctx.now())
    if d.outcome in ("refused", "failed"):
        hint = d.error.hint if d.error is not None else ""
        return notices.failed_card((d.message, hint))
    return not_found_card()


# --- other verbs ------------------------------------------------------------------------------


async def refresh(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """The card's current state: settings, the pending digest, a guard, or an item (its
    proposal card when pending and unchanged, the stale card when changed, else decided)."""
    pid = action.pid
    if pid == notices.SETTINGS_PID:
        return await settings_card(ctx)
    if pid.startswith("digest:") or pid == PENDING_PID or parse_page_pid(pid) is not None:
        return await pending_card(ctx, pid) if await _signed(ctx, action) else not_found_card()
    if pid.startswith("guard:"):
        return notices.guard_held_card(v.CardRef(pid, action.digest))
    item = await ctx.service.item(pid)
    if item is None:
        return not_found_card()
    if item.state is not ProposalState.PENDING:
        return build.decided_card(to_views.decided_view(item))
    view = await proposal_view(ctx, item)
    return build.proposal_card(view) if item.digest == action.digest else build.stale_card(view)


async def page(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Previous / Next on a `pending` page: the page its cursor names (its HMAC must verify).
    A cursor of a list that changed since still answers: that page of the current list (the
    last page when it is shorter now), saying that the list changed."""
    if parse_page_pid(action.pid) is None or not await _signed(ctx, action):
        return not_found_card()
    return await pending_card(ctx, action.pid)


async def _decide_all(ctx: BotContext, turn: Turn, action: CardAction, kind: Kind) -> Card:
    if not await _signed(ctx, action):
        return not_found_card()
    actor = turn.actor
    decisions = await ctx.service.decide_all(kind, actor=actor)
    done = sum(1 for d in decisions if d.outcome == "done")
    what = "matches accepted" if kind is Kind.MATCH else "updates applied"
    return notices.decided_all_card(what, done, len(decisions) - done, actor.name, ctx.now())


async def accept_all(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Accept every pending match (a digest card's button; its HMAC must verify)."""
    return await _decide_all(ctx, turn, action, Kind.MATCH)


async def apply_all(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Apply every pending update (a digest card's button; its HMAC must verify)."""
    return await _decide_all(ctx, turn, action, Kind.UPDATE)


async def unignore(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    decision = await ctx.service.decide(
        action.pid, "unignore", actor=turn.actor, digest=action.digest, inputs={}
    )
    if decision.outcome not in ("done", "already"):
        return notices.unignore_failed_card(decision.message)
    return await ignored_card(ctx)


async def settings_save(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    form = {k: val for k in SETTINGS_INPUTS if (val := action.text(k)) is not None}
    fields = to_views.SETTINGS_FIELDS
    dotted = {fields[k]: val for k, val in form.items() if k in fields}
    errors = await ctx.service.update_settings(dotted, actor=turn.actor)
    if errors:
        return await settings_card(ctx, errors, form)
    return notices.settings_saved_card(turn.actor_name, ctx.now())


def _missing_connect_fields(tenant_id: str, client_id: str, secret: str) -> dict[str, str]:
    required = {
        "tenant_id": (tenant_id, "The tenant id is required."),
        "client_id": (client_id, "The client id is required."),
        "client_secret": (secret, "The client secret is required."),
    }
    return {name: msg for name, (val, msg) in required.items() if not val}


async def connect_save(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Connect a tenant with the submitted credentials; errors go back into the form (the
    secret is never echoed)."""
    tenant_id = (action.text("tenant_id", MAX_ID_INPUT) or "").strip()
    client_id = (action.text("client_id", MAX_ID_INPUT) or "").strip()
    secret = action.text("client_secret", MAX_SECRET) or ""

    def form(errors: Mapping[str, str]) -> Card:
        return build.connect_card(connect_view(ctx, errors, tenant_id, client_id))

    missing = _missing_connect_fields(tenant_id, client_id, secret)
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
        return form({"connect": msg or "Connection failed."})
    return build.status_card(to_views.status_view([status]))


async def disconnect_confirm(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    """Disconnect, only with the token of a confirmation card issued by ``disconnect``."""
    if not await ctx.confirmations.redeem(notices.DISCONNECT_PID, action.digest):
        return not_found_card()
    await ctx.service.disconnect(None, actor=turn.actor)
    return notices.disconnected_card(turn.actor_name, ctx.now())


async def disconnect_cancel(ctx: BotContext, turn: Turn, action: CardAction) -> Card:
    await ctx.confirmations.redeem(notices.DISCONNECT_PID, action.digest)
    return notices.disconnect_cancelled_card(ctx.now())


VERBS: Mapping[str, VerbHandler] = {
    **{verb: decide_item for verb in ITEM_VERBS},
    v.Verb.REFRESH: refresh,
    v.Verb.PAGE: page,
    v.Verb.ACCEPT_ALL: accept_all,
    v.Verb.APPLY_ALL: apply_all,
    v.Verb.UNIGNORE: unignore,
    v.Verb.SETTINGS_SAVE: settings_save,
    v.Verb.CONNECT_SAVE: connect_save,
    v.Verb.DISCONNECT_CONFIRM: disconnect_confirm,
    v.Verb.DISCONNECT_CANCEL: disconnect_cancel,
}
