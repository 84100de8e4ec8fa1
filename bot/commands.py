"""One handler per command of ``bot.command_table``; the ``HANDLERS`` table maps each command
name to its handler. Who may run a command is decided before, in ``bot.access``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from bot import to_views
from bot.command_table import COMMANDS
from bot.context import BotContext, BotService
from bot.turn import Turn
from cards import build, notices
from cards import views as v
from cards.catalogue import ENGLISH, Texts
from sync.service import listing
from sync.service.service import RunResult
from sync.service.settings_editor import SettingsOutcome

CONNECT_PID = "connect"
PENDING_PID = "pending"
MAX_ARGUMENT_SHOWN = 100

Handler = Callable[[BotContext, Turn, str], Awaitable[None]]


def summarise(results: Sequence[RunResult], texts: Texts = ENGLISH) -> str:
    """One line per tenant/directory run: failed (code, hint), skipped, or what it produced."""
    t = texts
    if not results:
        return t("No tenant is configured. Type 'connect' to connect one.")
    parts = []
    for r in results:
        where = f"{r.tenant} \u2192 {r.directory}"
        if r.status == "failed":
            code = r.error.code if r.error is not None else "error"
            hint = r.error.hint if r.error is not None else ""
            parts.append(
                t("{where}: failed ({code}).", where=where, code=code) + f" {hint}".rstrip()
            )
        elif r.status == "skipped":
            parts.append(
                t("{where}: skipped", where=where) + (f" ({r.error.code})" if r.error else "")
            )
        else:
            bits = [t("{n} new to decide", n=len(r.new_items))]
            if r.auto_applied:
                bits.append(t("{n} applied automatically", n=len(r.auto_applied)))
            if r.blocked:
                bits.append(t("removals held back by the guard"))
            parts.append(f"{where}: " + ", ".join(bits))
    return t("Sync done.") + " " + "; ".join(parts) + "."


def help_card(texts: Texts = ENGLISH) -> dict[str, Any]:
    view = v.HelpView(commands=tuple((c.title, c.description) for c in COMMANDS))
    return build.help_card(view, texts)


async def show_help(ctx: BotContext, turn: Turn, _arg: str) -> None:
    await ctx.replies.card(turn, help_card(ctx.texts(turn)))


async def status(ctx: BotContext, turn: Turn, _arg: str) -> None:
    statuses = await ctx.service.status()
    mail = await ctx.service.mail_status()
    t = ctx.texts(turn)
    await ctx.replies.card(turn, build.status_card(to_views.status_view(statuses, mail), t))
    credentials = to_views.credential_lines(statuses)
    if credentials:
        await ctx.replies.card(turn, notices.credential_expiry_card(credentials, t))


async def sync_now(ctx: BotContext, turn: Turn, _arg: str) -> None:
    """Run every tenant now; the service's run listener posts the cards (``bot.announce``)."""
    t = ctx.texts(turn)
    results = await ctx.service.run_sync(actor=turn.actor, trigger="manual")
    await ctx.replies.text(turn, summarise(results, t))
    if not await ctx.conversations.notify_channel():
        await ctx.replies.text(
            turn, t("No notification channel yet: type 'notify here' where cards should go.")
        )


async def sync_user(ctx: BotContext, turn: Turn, arg: str) -> None:
    t = ctx.texts(turn)
    results, items = await ctx.service.sync_user(arg, actor=turn.actor)
    if not items:
        if any(r.error is not None for r in results):
            await ctx.replies.text(turn, summarise(results, t))
        else:
            await ctx.replies.text(
                turn, t("Nothing to decide for '{query}'.", query=arg[:MAX_ARGUMENT_SHOWN])
            )
        return
    for card, pid in await to_views.proposal_cards(
        items, ctx.service.directory_choices, await ctx.audience(), t
    ):
        await ctx.replies.item_card(turn, pid, card)


def page_pid(page: int, set_digest: str) -> str:
    """The cursor a page button carries: the page number and the listed set's digest."""
    return f"{PENDING_PID}:{page}:{set_digest}"


def parse_page_pid(pid: str) -> tuple[int, str] | None:
    """(page, set digest) of a page cursor; None when ``pid`` is no page cursor."""
    parts = pid.split(":")
    if len(parts) != 3 or parts[0] != PENDING_PID or not parts[1].isdigit():
        return None
    return int(parts[1][:6]), parts[2][:64]


async def digest_page_card(
    service: BotService, pid: str = PENDING_PID, texts: Texts = ENGLISH
) -> dict[str, Any]:
    """A page of what waits (or "nothing waits"), signed like every card. ``pid`` is a page
    cursor (``page_pid``), or another digest id (``pending``, ``digest:<when>``): page 1.
    The buttons carry only the cursors of the pages before and after, with their HMACs."""
    items = await service.pending()
    if not items:
        return notices.nothing_pending_card(texts)
    page, expected = parse_page_pid(pid) or (1, "")
    listed = listing.page_of(items, page, listing.PAGE_SIZE, expected)
    own = page_pid(listed.page, listed.set_digest) if parse_page_pid(pid) else pid

    async def cursor(n: int) -> v.CardRef | None:
        if not 1 <= n <= listed.pages or n == listed.page:
            return None
        at = page_pid(n, listed.set_digest)
        return v.CardRef(pid=at, digest=await service.digest(at))

    pager = v.Pager(
        page=listed.page,
        pages=listed.pages,
        first=listed.first,
        after=listed.after,
        previous=await cursor(listed.page - 1),
        next=await cursor(listed.page + 1),
        changed=listed.changed,
    )
    view = to_views.digest_page_view(listed, pid=own, digest=await service.digest(own))
    return build.digest_card(replace(view, pager=pager), texts)


async def pending_card(
    ctx: BotContext, pid: str = PENDING_PID, texts: Texts = ENGLISH
) -> dict[str, Any]:
    return await digest_page_card(ctx.service, pid, texts)


async def pending(ctx: BotContext, turn: Turn, _arg: str) -> None:
    """Every pending item as its card, or one digest card when there are more than
    ``[bot] max_cards_per_run``."""
    t = ctx.texts(turn)
    items = await ctx.service.pending()
    if not items:
        await ctx.replies.text(turn, t("Nothing waits for a decision."))
    elif len(items) > ctx.config.bot.max_cards_per_run:
        await ctx.replies.card(turn, await pending_card(ctx, texts=t))
    else:
        for card, pid in await to_views.proposal_cards(
            items, ctx.service.directory_choices, await ctx.audience(), t
        ):
            await ctx.replies.item_card(turn, pid, card)


async def ignored_card(ctx: BotContext, texts: Texts = ENGLISH) -> dict[str, Any]:
    rows = await ctx.service.ignored()
    items = [
        v.IgnoredItem(entra_id=e, name=label or e, digest=await ctx.service.unignore_digest(e))
        for _tenant, e, label in rows
    ]
    return build.ignored_list_card(v.IgnoredListView(items=tuple(items)), texts)


async def ignored(ctx: BotContext, turn: Turn, _arg: str) -> None:
    await ctx.replies.card(turn, await ignored_card(ctx, ctx.texts(turn)))


async def preview(ctx: BotContext, turn: Turn, _arg: str) -> None:
    plans = await ctx.service.preview()
    card = build.preview_card(to_views.preview_view(plans), ctx.texts(turn))
    await ctx.replies.card(turn, card)


async def settings_card(
    ctx: BotContext,
    errors: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    outcome: SettingsOutcome | None = None,
    texts: Texts = ENGLISH,
) -> dict[str, Any]:
    table = await ctx.service.settings_table()
    return build.settings_card(to_views.settings_view(table, errors, form, outcome), texts)


async def settings(ctx: BotContext, turn: Turn, _arg: str) -> None:
    await ctx.replies.card(turn, await settings_card(ctx, texts=ctx.texts(turn)))


def connect_view(
    ctx: BotContext,
    errors: Mapping[str, str] | None = None,
    tenant_id: str = "",
    client_id: str = "",
) -> v.ConnectView:
    """The connect form, pre-filled with the first configured tenant when none is given."""
    if not tenant_id:
        for t in ctx.config.tenants:
            if t.tenant_id and t.client_id:
                tenant_id, client_id = t.tenant_id, t.client_id
                break
    consent = ctx.service.consent_url(tenant_id, client_id) if tenant_id and client_id else ""
    return v.ConnectView(
        ref=v.CardRef(pid=CONNECT_PID, digest=""),
        tenant_id=tenant_id,
        client_id=client_id,
        consent_url=consent,
        errors=dict(errors or {}),
        certificate_thumbprint=ctx.service.connect_certificate_thumbprint() or "",
    )


async def connect(ctx: BotContext, turn: Turn, _arg: str) -> None:
    await ctx.replies.card(turn, build.connect_card(connect_view(ctx), ctx.texts(turn)))


async def disconnect(ctx: BotContext, turn: Turn, _arg: str) -> None:
    """Asks first: the confirmation card carries a token issued (and kept) server-side."""
    token = await ctx.confirmations.issue(notices.DISCONNECT_PID)
    await ctx.replies.card(turn, notices.disconnect_confirm_card(token, ctx.texts(turn)))


async def audit(ctx: BotContext, turn: Turn, _arg: str) -> None:
    entries = [e.to_dict() for e in await ctx.service.audit(20)]
    await ctx.replies.card(turn, build.audit_card(to_views.audit_view(entries), ctx.texts(turn)))


async def notify_here(ctx: BotContext, turn: Turn, _arg: str) -> None:
    await ctx.installations.notify_here(turn)
    await ctx.replies.text(turn, ctx.texts(turn)("I will post sync notifications here."))


HANDLERS: Mapping[str, Handler] = {
    "help": show_help,
    "status": status,
    "sync now": sync_now,
    "sync": sync_user,
    "pending": pending,
    "ignored": ignored,
    "preview": preview,
    "settings": settings,
    "connect": connect,
    "disconnect": disconnect,
    "audit": audit,
    "notify here": notify_here,
}

_missing = {c.name for c in COMMANDS} ^ set(HANDLERS)
if _missing:  # the table is the source of truth: every command has exactly one handler
    raise RuntimeError(f"commands and handlers differ: {sorted(_missing)}")
