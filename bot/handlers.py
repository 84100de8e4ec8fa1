"""Commands and card actions: one handler per command (from ``bot.command_table``) and one per
card verb. Thin: every decision is the sync service's; the bot checks admin rights, turns
records into view records, and posts cards.

Never trusts card data beyond ``pid``, ``d`` and the named inputs of each verb; every failure
becomes a card or a message (HTTP 200), never an exception out of a turn.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import SecretStr

from bot import render
from bot.adapter import InvokeReply, reference_of
from bot.auth import AdminCheck, actor_id, actor_name
from bot.command_table import COMMANDS, CommandSpec
from bot.posting import Poster, card_activity, text_activity
from cards import build
from cards import views as v
from cards.build import CONNECT_INPUTS, SETTINGS_INPUTS
from sync.config import Config
from sync.errors import SyncError
from sync.models import DirectoryUser, Kind, Plan, ProposalState
from sync.service.service import Actor, Decision, Item, ItemListener, RunResult, TenantStatus

log = logging.getLogger(__name__)

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_PID = 200
MAX_INPUT = 2000
SETTINGS_PID = "settings"
CONNECT_PID = "connect"
DISCONNECT_PID = "disconnect"
DISCONNECT_CONFIRM = "disconnect_confirm"
DISCONNECT_CANCEL = "disconnect_cancel"

# Verbs that act on one item through SyncService.decide; their extra inputs.
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


class Store(Protocol):
    async def save_conversation(self, conv_id: str, ref: dict[str, Any]) -> None: ...

    async def conversation(self, conv_id: str) -> dict[str, Any] | None: ...

    async def set_notify_channel(self, conv_id: str) -> None: ...

    async def notify_channel(self) -> str | None: ...

    async def set_card_ref(self, pid: str, ref: dict[str, Any]) -> None: ...

    async def card_ref(self, pid: str) -> dict[str, Any] | None: ...


class AuditLike(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class BotService(Protocol):
    """The part of ``sync.service.service.SyncService`` the bot calls (exactly these)."""

    store: Any
    config: Config

    async def run_sync(
        self, tenant: str | None = None, *, actor: Actor, trigger: Any = "manual"
    ) -> list[RunResult]: ...

    async def sync_user(
        self, query: str, *, actor: Actor
    ) -> tuple[list[RunResult], list[Item]]: ...

    async def preview(self) -> list[tuple[str, str, Plan]]: ...

    async def pending(self, kind: Kind | None = None) -> list[Item]: ...

    async def item(self, pid: str) -> Item | None: ...

    async def decide(
        self, pid: str, verb: str, *, actor: Actor, digest: str, inputs: Mapping[str, str]
    ) -> Decision: ...

    async def decide_all(self, kind: Kind, *, actor: Actor) -> list[Decision]: ...

    async def ignored(self) -> list[tuple[str, str, str]]: ...

    async def status(self) -> list[TenantStatus]: ...

    async def audit(self, limit: int = 20) -> Sequence[Any]: ...

    async def settings_table(self) -> dict[str, Any]: ...

    async def update_settings(self, form: Mapping[str, str], *, actor: Actor) -> dict[str, str]: ...

    async def connect(
        self, tenant_id: str, client_id: str, secret: SecretStr, *, actor: Actor
    ) -> TenantStatus: ...

    def consent_url(self, tenant_id: str, client_id: str) -> str: ...

    async def disconnect(self, tenant: str | None, *, actor: Actor) -> Any: ...

    async def directory_choices(self, directory: str, limit: int = 100) -> list[DirectoryUser]: ...

    def add_listener(self, listener: ItemListener) -> None: ...

    async def guard_id(self, tenant: str, directory: str) -> tuple[str, str]: ...

    async def unignore_digest(self, entra_id: str) -> str: ...


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
    "max_removals": "guard.max_removals",
    "max_removal_share": "guard.max_removal_share",
    "notify_admins_personally": "bot.notify_admins_personally",
    "max_cards_per_run": "bot.max_cards_per_run",
}
SETTINGS_INPUT_OF = {dotted: flat for flat, dotted in SETTINGS_FIELDS.items()}

# --- parsing ----------------------------------------------------------------------------------

_AT = re.compile(r"<at\b[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]{0,200}>")
_WS = re.compile(r"\s+")
_BY_NAME = {c.name: c for c in COMMANDS}


def normalise(text: str) -> str:
    """Mentions stripped, HTML dropped, entities decoded, spacing collapsed (case kept)."""
    text = _AT.sub(" ", text[:4000])
    text = _TAG.sub(" ", text)
    text = html.unescape(text).replace("\u00a0", " ")
    return _WS.sub(" ", text).strip()


def parse_command(text: str) -> tuple[CommandSpec | None, str]:
    """(command, argument). Exact names first ("sync now" beats "sync <arg>"); then commands
    taking an argument by their first word(s). Unknown input: (None, "")."""
    clean = normalise(text)
    lower = clean.lower()
    if lower in _BY_NAME and not _BY_NAME[lower].takes_argument:
        return _BY_NAME[lower], ""
    for spec in sorted(COMMANDS, key=lambda c: -len(c.name)):
        if spec.takes_argument and lower.startswith(spec.name + " "):
            arg = clean[len(spec.name) + 1 :].strip()
            if arg:
                return spec, arg
    return None, ""


def card_reply(card: Mapping[str, Any]) -> InvokeReply:
    return InvokeReply(200, {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": dict(card)})


def _digest(obj: Any) -> str:
    raw = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _str_input(data: Mapping[str, Any], key: str, limit: int = MAX_INPUT) -> str | None:
    val = data.get(key)
    if isinstance(val, bool) or val is None:
        return None if val is None else ("true" if val else "false")
    if isinstance(val, int | float):
        return str(val)
    if isinstance(val, str) and len(val) <= limit:
        return val
    return None


# --- the bot ----------------------------------------------------------------------------------


@dataclass
class Bot:
    service: BotService
    poster: Poster
    admins: AdminCheck
    clock: Callable[[], datetime]
    local_mode: bool = True
    _commands: dict[str, Callable[[dict[str, Any], str], Awaitable[None]]] = field(
        init=False, repr=False
    )
    _announces_runs: bool = field(init=False, default=False)
    _verbs: dict[
        str, Callable[[dict[str, Any], str, str, Mapping[str, Any]], Awaitable[InvokeReply]]
    ] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._commands = {
            "help": self.cmd_help,
            "status": self.cmd_status,
            "sync now": self.cmd_sync_now,
            "sync": self.cmd_sync_user,
            "pending": self.cmd_pending,
            "ignored": self.cmd_ignored,
            "preview": self.cmd_preview,
            "settings": self.cmd_settings,
            "connect": self.cmd_connect,
            "disconnect": self.cmd_disconnect,
            "audit": self.cmd_audit,
            "notify here": self.cmd_notify_here,
        }
        missing = {c.name for c in COMMANDS} - set(self._commands)
        if missing:  # the table is the source of truth: every command needs a handler
            raise RuntimeError(f"commands without a handler: {sorted(missing)}")
        self._verbs = {verb: self.verb_item for verb in ITEM_VERBS}
        self._verbs.update(
            {
                "refresh": self.verb_refresh,
                "accept_all": self.verb_accept_all,
                "apply_all": self.verb_apply_all,
                "unignore": self.verb_unignore,
                "settings_save": self.verb_settings_save,
                "connect_save": self.verb_connect_save,
                DISCONNECT_CONFIRM: self.verb_disconnect_confirm,
                DISCONNECT_CANCEL: self.verb_disconnect_cancel,
            }
        )
        self.service.add_listener(self.on_item_decided)
        add_run_listener = getattr(self.service, "add_run_listener", None)
        self._announces_runs = callable(add_run_listener)
        if callable(add_run_listener):
            # every run (manual, scheduled, one user) reports here; cards are posted once
            add_run_listener(self.on_run)

    @property
    def store(self) -> Store:
        store: Store = self.service.store
        return store

    @property
    def config(self) -> Config:
        return self.service.config

    def _now(self) -> str:
        return render.hhmm(self.clock())

    # --- entry ---------------------------------------------------------------------------------
    async def on_activity(self, activity: dict[str, Any]) -> InvokeReply | None:
        kind = activity.get("type")
        try:
            await self._remember(activity)
        except SyncError as e:
            log.error("could not store the conversation reference: %s", e.code)
        if kind == "message":
            await self._on_message(activity)
            return None
        if kind == "invoke":
            return await self._on_invoke(activity)
        if kind == "installationUpdate":
            if str(activity.get("action") or "").startswith("add"):
                await self._installed(activity)
            return None
        if kind == "conversationUpdate":
            bot_id = (activity.get("recipient") or {}).get("id")
            added = activity.get("membersAdded") or []
            if bot_id and any(isinstance(m, dict) and m.get("id") == bot_id for m in added):
                await self._installed(activity)
            return None
        log.debug("ignored activity type %r", kind)
        return None

    # --- conversation references -----------------------------------------------------------------
    @staticmethod
    def _conv_id(activity: Mapping[str, Any]) -> str:
        conv = activity.get("conversation")
        cid = conv.get("id") if isinstance(conv, dict) else None
        return cid if isinstance(cid, str) and 0 < len(cid) <= 512 else ""

    async def _remember(self, activity: dict[str, Any]) -> None:
        """Store/refresh the reference of the activity's conversation (serviceUrl can change)."""
        conv_id = self._conv_id(activity)
        service_url = activity.get("serviceUrl")
        if not conv_id or not isinstance(service_url, str) or not service_url:
            return
        fresh = reference_of(activity)
        old = await self.store.conversation(conv_id) or {}
        team = ((activity.get("channelData") or {}).get("team") or {}).get("id")
        merged = {**old, **fresh}
        if isinstance(team, str) and team:
            merged["teamId"] = team
        if merged != old:
            await self.store.save_conversation(conv_id, merged)
        conv = activity.get("conversation") or {}
        aad = actor_id(activity)
        if conv.get("conversationType") == "personal" and aad:
            await self.store.save_conversation(f"user:{aad}", merged)

    async def _installed(self, activity: dict[str, Any]) -> None:
        conv_id = self._conv_id(activity)
        if not conv_id:
            return
        ref = await self.store.conversation(conv_id) or reference_of(activity)
        installer = actor_id(activity)
        if installer:
            ref["installedBy"] = installer
        greeted = bool(ref.get("greeted"))  # Teams sends installationUpdate and conversationUpdate
        ref["greeted"] = True
        await self.store.save_conversation(conv_id, ref)
        conv_type = (activity.get("conversation") or {}).get("conversationType")
        if conv_type != "personal" and not await self.store.notify_channel():
            await self.store.set_notify_channel(conv_id)
            log.info("notification channel set on installation")
        if greeted:
            return
        await self._send(
            activity,
            text_activity(
                "Hello! I keep the phone system's directory in step with Entra ID. "
                "Type 'help' to see what I can do."
            ),
            reply=False,
        )

    # --- sending -----------------------------------------------------------------------------
    async def _send(
        self, activity: dict[str, Any], out: dict[str, Any], *, reply: bool = True
    ) -> str:
        ref = await self.store.conversation(self._conv_id(activity)) or reference_of(activity)
        reply_to = activity.get("id") if reply and isinstance(activity.get("id"), str) else None
        try:
            return await self.poster.send(ref, out, reply_to=reply_to)
        except SyncError as e:
            log.error("reply failed: %s", e.code)
            return ""

    async def _reply_card(self, activity: dict[str, Any], card: Mapping[str, Any]) -> str:
        return await self._send(activity, card_activity(card))

    async def _reply_text(self, activity: dict[str, Any], text: str) -> None:
        await self._send(activity, text_activity(text))

    # --- messages ------------------------------------------------------------------------------
    async def _on_message(self, activity: dict[str, Any]) -> None:
        text = activity.get("text")
        spec, arg = parse_command(text if isinstance(text, str) else "")
        if spec is None:
            await self.cmd_help(activity, "")
            return
        if spec.changes_state and not await self.admins.is_admin(actor_id(activity)):
            await self._reply_card(
                activity,
                render.message_card("Only admins can do this", [self.admins.explain()]),
            )
            return
        try:
            await self._commands[spec.name](activity, arg)
        except SyncError as e:
            log.warning("command %r failed: %s", spec.name, e.code)
            await self._reply_card(
                activity, render.message_card("That did not work", [e.message, e.hint])
            )
        except Exception:
            log.exception("command %r crashed", spec.name)
            await self._reply_card(
                activity, render.message_card("Something went wrong", ["The error was logged."])
            )

    def _actor(self, activity: dict[str, Any]) -> Actor:
        return Actor(id=actor_id(activity), name=actor_name(activity))

    async def cmd_help(self, activity: dict[str, Any], _arg: str) -> None:
        view = v.HelpView(commands=tuple((c.title, c.description) for c in COMMANDS))
        await self._reply_card(activity, build.help_card(view))

    async def cmd_status(self, activity: dict[str, Any], _arg: str) -> None:
        statuses = await self.service.status()
        await self._reply_card(activity, build.status_card(render.status_view(statuses)))

    async def cmd_sync_now(self, activity: dict[str, Any], _arg: str) -> None:
        results = await self.service.run_sync(actor=self._actor(activity), trigger="manual")
        await self._reply_text(activity, summarise(results))
        if not self._announces_runs:
            await self.announce(results, fallback=activity)
        elif not await self.store.notify_channel():
            await self._reply_text(
                activity, "No notification channel yet: type 'notify here' where cards should go."
            )

    async def cmd_sync_user(self, activity: dict[str, Any], arg: str) -> None:
        results, items = await self.service.sync_user(arg, actor=self._actor(activity))
        if not items:
            failed = [r for r in results if r.error is not None]
            if failed:
                await self._reply_text(activity, summarise(results))
            else:
                await self._reply_text(activity, f"Nothing to decide for '{arg[:100]}'.")
            return
        for card, pid in await self._item_cards(items):
            activity_id = await self._reply_card(activity, card)
            await self._remember_card(pid, self._conv_id(activity), activity_id)

    async def cmd_pending(self, activity: dict[str, Any], _arg: str) -> None:
        items = await self.service.pending()
        if not items:
            await self._reply_text(activity, "Nothing waits for a decision.")
            return
        if len(items) > self.config.bot.max_cards_per_run:
            await self._reply_card(
                activity, build.digest_card(render.digest_view(items, pid="pending"))
            )
            return
        for card, pid in await self._item_cards(items):
            activity_id = await self._reply_card(activity, card)
            await self._remember_card(pid, self._conv_id(activity), activity_id)

    async def _ignored_card(self) -> dict[str, Any]:
        rows = await self.service.ignored()
        items = [
            v.IgnoredItem(entra_id=e, name=label or e, digest=await self.service.unignore_digest(e))
            for _t, e, label in rows
        ]
        return build.ignored_list_card(v.IgnoredListView(items=tuple(items)))

    async def cmd_ignored(self, activity: dict[str, Any], _arg: str) -> None:
        await self._reply_card(activity, await self._ignored_card())

    async def cmd_preview(self, activity: dict[str, Any], _arg: str) -> None:
        plans = await self.service.preview()
        items: list[v.PreviewItem] = []
        counts: dict[Kind, int] = {}
        for _tenant, _directory, plan in plans:
            for p in plan.proposals:
                counts[p.kind] = counts.get(p.kind, 0) + 1
                items.append(
                    v.PreviewItem(
                        kind=p.kind, name=p.label or p.entra_id or p.id, changes=p.changes
                    )
                )
        await self._reply_card(
            activity, build.preview_card(v.PreviewView(items=tuple(items), counts=counts))
        )

    async def _settings_card(
        self, errors: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        table = await self.service.settings_table()
        values = settings_values(flatten_settings(table))
        if form:
            values.update(settings_values(form))
        card_errors = {SETTINGS_INPUT_OF.get(k, k): msg for k, msg in (errors or {}).items()}
        view = v.SettingsView(
            ref=v.CardRef(pid=SETTINGS_PID, digest=_digest(table)),
            errors=card_errors,
            **values,
        )
        return build.settings_card(view)

    async def cmd_settings(self, activity: dict[str, Any], _arg: str) -> None:
        await self._reply_card(activity, await self._settings_card())

    def _connect_view(
        self, errors: Mapping[str, str] | None = None, tenant_id: str = "", client_id: str = ""
    ) -> v.ConnectView:
        if not tenant_id:
            for t in self.config.tenants:
                if t.tenant_id and t.client_id:
                    tenant_id, client_id = t.tenant_id, t.client_id
                    break
        consent = self.service.consent_url(tenant_id, client_id) if tenant_id and client_id else ""
        return v.ConnectView(
            ref=v.CardRef(pid=CONNECT_PID, digest=""),
            tenant_id=tenant_id,
            client_id=client_id,
            consent_url=consent,
            errors=dict(errors or {}),
        )

    async def cmd_connect(self, activity: dict[str, Any], _arg: str) -> None:
        await self._reply_card(activity, build.connect_card(self._connect_view()))

    async def cmd_disconnect(self, activity: dict[str, Any], _arg: str) -> None:
        data = {"pid": DISCONNECT_PID, "d": ""}
        card = render.message_card(
            "Disconnect Entra?",
            [
                "This removes the sync: tenant links, credentials and sync settings go.",
                "Every directory user and all their data stay as they are.",
            ],
            actions=[
                {**render.execute("Disconnect", DISCONNECT_CONFIRM, data), "style": "destructive"},
                render.execute("Cancel", DISCONNECT_CANCEL, data),
            ],
        )
        await self._reply_card(activity, card)

    async def cmd_audit(self, activity: dict[str, Any], _arg: str) -> None:
        entries = await self.service.audit(20)
        out = []
        for e in entries:
            d = e.to_dict()
            at = d.get("at") or ""
            out.append(
                v.AuditEntry(
                    actor=str(d.get("actor_name") or d.get("actor_id") or ""),
                    action=str(d.get("action") or ""),
                    at=str(at)[:16].replace("T", " "),
                    subject=str(d.get("entra_id") or d.get("app_user_id") or d.get("tenant") or ""),
                    before=_short(d.get("before")),
                    after=_short(d.get("after")),
                )
            )
        await self._reply_card(activity, build.audit_card(v.AuditView(entries=tuple(out))))

    async def cmd_notify_here(self, activity: dict[str, Any], _arg: str) -> None:
        conv_id = self._conv_id(activity)
        ref = await self.store.conversation(conv_id) or reference_of(activity)
        ref["notifySetBy"] = actor_id(activity)
        await self.store.save_conversation(conv_id, ref)
        await self.store.set_notify_channel(conv_id)
        await self._reply_text(activity, "I will post sync notifications here.")

    # --- posting items ----------------------------------------------------------------------------
    async def _item_cards(self, items: Sequence[Item]) -> list[tuple[dict[str, Any], str]]:
        choices: dict[str, list[DirectoryUser]] = {}
        out = []
        for item in items:
            if item.kind is Kind.NEW and item.directory not in choices:
                choices[item.directory] = await self.service.directory_choices(
                    item.directory, limit=100
                )
            view = render.proposal_view(item, choices=choices.get(item.directory, ()))
            out.append((build.proposal_card(view), item.id))
        return out

    async def _remember_card(self, pid: str, conv: str, activity_id: str) -> None:
        if not activity_id or not conv:
            return
        old = await self.store.card_ref(pid) or {}
        posts = [p for p in old.get("posts") or () if isinstance(p, dict)]
        posts.append({"conv": conv, "activityId": activity_id})
        await self.store.set_card_ref(pid, {"posts": posts[-5:]})

    async def announce(
        self, results: Sequence[RunResult], *, fallback: dict[str, Any] | None = None
    ) -> int:
        """Post what a run produced: item cards (or one digest when many), guard cards, the
        auto-applied digest. Used after ``sync now`` and by scheduled runs."""
        new = [i for r in results for i in r.new_items]
        cards: list[tuple[str | None, dict[str, Any]]] = []
        if len(new) > self.config.bot.max_cards_per_run:
            stamp = self.clock().strftime("%Y%m%d%H%M%S")
            cards.append((None, build.digest_card(render.digest_view(new, pid=f"digest:{stamp}"))))
        else:
            cards += [(pid, card) for card, pid in await self._item_cards(new)]
        for r in results:
            for b in r.blocked:
                gpid, gdigest = await self.service.guard_id(r.tenant, r.directory)
                ref = v.CardRef(pid=gpid, digest=gdigest)
                linked = int(r.counters.get("linked", r.counters.get("syncable", 0)))
                cards.append(
                    (
                        None,
                        build.guard_card(
                            v.GuardView(ref=ref, removals=b.count, linked=linked, tenant=r.tenant)
                        ),
                    )
                )
            if r.auto_applied:
                cards.append(
                    (
                        None,
                        build.auto_applied_card(
                            v.AutoAppliedView(
                                applied=len(r.auto_applied),
                                items=tuple(
                                    v.DigestItem(kind=i.kind, name=i.proposal.label or i.id)
                                    for i in r.auto_applied
                                ),
                                at=render.hhmm(r.finished_at),
                            )
                        ),
                    )
                )
        if not cards:
            return 0
        personal = self.config.bot.admins if self.config.bot.notify_admins_personally else ()
        if not await self.store.notify_channel() and fallback is not None:
            for pid, card in cards:
                activity_id = await self._send(fallback, card_activity(card), reply=False)
                if pid:
                    await self._remember_card(pid, self._conv_id(fallback), activity_id)
            return len(cards)
        return await self.poster.post_cards(cards, personal=personal)

    async def on_run(self, result: RunResult) -> None:
        """The service's run listener: announce one run's results (any trigger)."""
        try:
            await self.announce([result])
        except SyncError as e:
            log.error("announcing a run failed: %s", e.code)

    async def on_item_decided(self, item: Item) -> None:
        """The service decided an item somewhere: update its posted card(s) in place."""
        if item.state is ProposalState.PENDING:
            card = build.proposal_card(render.proposal_view(item))
        else:
            card = build.decided_card(render.decided_view(item))
        try:
            await self.poster.update_card(item.id, card)
        except SyncError as e:
            log.error("card update for %s failed: %s", item.id, e.code)

    # --- invokes -----------------------------------------------------------------------------
    async def _on_invoke(self, activity: dict[str, Any]) -> InvokeReply:
        if activity.get("name") != "adaptiveCard/action":
            return InvokeReply(200, {})
        value = activity.get("value")
        action = value.get("action") if isinstance(value, dict) else None
        if not isinstance(action, dict):
            return card_reply(render.message_card("This action could not be read."))
        verb = action.get("verb")
        data = action.get("data")
        if not isinstance(data, dict):
            data = {}
        handler = self._verbs.get(verb) if isinstance(verb, str) else None
        pid = data.get("pid")
        digest = data.get("d")
        if handler is None or not isinstance(pid, str) or not 0 < len(pid) <= MAX_PID:
            return card_reply(build.refusal_card(v.RefusalView(reason=v.RefusalReason.NOT_FOUND)))
        if not isinstance(digest, str) or len(digest) > MAX_PID:
            digest = ""
        assert isinstance(verb, str)
        if verb != "refresh" and not await self.admins.is_admin(actor_id(activity)):
            return await self._not_admin(pid)
        try:
            return await handler(activity, pid, digest, data)
        except SyncError as e:
            log.warning("action %s failed: %s", verb, e.code)
            return card_reply(self._failed_card(pid, digest, e.message, e.hint))
        except Exception:
            log.exception("action %s crashed", verb)
            return card_reply(
                self._failed_card(pid, digest, "Something went wrong; the error was logged.")
            )

    def _failed_card(self, pid: str, digest: str, *lines: str) -> dict[str, Any]:
        return render.message_card(
            "That did not work",
            [line for line in lines if line],
            actions=[render.execute("Show the item again", "refresh", {"pid": pid, "d": digest})],
        )

    async def _not_admin(self, pid: str) -> InvokeReply:
        item = await self.service.item(pid)
        view = v.RefusalView(
            reason=v.RefusalReason.NOT_ADMIN,
            proposal=render.proposal_view(item)
            if item and item.state is ProposalState.PENDING
            else None,
        )
        return card_reply(build.refusal_card(view))

    async def verb_item(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        action = (activity.get("value") or {}).get("action") or {}
        verb = str(action.get("verb"))
        inputs: dict[str, str] = {}
        for name in ITEM_VERBS[verb]:
            val = _str_input(data, name, 200)
            if val:
                inputs[name] = val
        actor = self._actor(activity)
        decision = await self.service.decide(pid, verb, actor=actor, digest=digest, inputs=inputs)
        return card_reply(await self._decision_card(decision, actor))

    async def _decision_card(self, d: Decision, actor: Actor) -> dict[str, Any]:
        item = d.item
        if d.outcome == "done" and item is None:  # guard decisions: no item
            return render.message_card(d.message or "Done", [f"{actor.name}, {self._now()}"])
        if d.outcome == "done" and item is not None:
            return build.decided_card(
                render.decided_view(
                    item, actor=item.decided_by or actor.name, at=item.decided_at or self.clock()
                )
            )
        if d.outcome == "already" and item is not None:
            return build.refusal_card(
                v.RefusalView(
                    reason=v.RefusalReason.NOT_PENDING,
                    actor=item.decided_by or "",
                    at=render.hhmm(item.decided_at),
                    state=item.state.value,
                )
            )
        if d.outcome == "stale" and item is not None:
            return build.stale_card(await self._view(item))
        if d.outcome == "confirm" and item is not None:
            view = await self._view(item)
            if isinstance(view, v.RemovalView):
                return build.removal_confirm_card(view)
            return build.proposal_card(view)
        if d.outcome == "not_found" or item is None:
            if d.outcome in ("refused", "failed"):
                hint = d.error.hint if d.error is not None else ""
                return render.message_card("That did not work", [d.message, hint])
            return build.refusal_card(v.RefusalView(reason=v.RefusalReason.NOT_FOUND))
        hint = d.error.hint if d.error is not None else ""
        return self._failed_card(item.id, item.digest, d.message, hint)

    async def _view(self, item: Item) -> v.ProposalView:
        choices = (
            await self.service.directory_choices(item.directory, limit=100)
            if item.kind is Kind.NEW
            else []
        )
        return render.proposal_view(item, choices=choices)

    async def verb_refresh(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        if pid == SETTINGS_PID:
            return card_reply(await self._settings_card())
        if pid.startswith("digest:") or pid == "pending":
            items = await self.service.pending()
            if not items:
                return card_reply(render.message_card("Nothing waits for a decision."))
            return card_reply(build.digest_card(render.digest_view(items, pid=pid)))
        if pid.startswith("guard:"):
            return card_reply(await self._guard_card(pid, digest))
        item = await self.service.item(pid)
        if item is None:
            return card_reply(build.refusal_card(v.RefusalView(reason=v.RefusalReason.NOT_FOUND)))
        if item.state is ProposalState.PENDING:
            view = await self._view(item)
            return card_reply(
                build.proposal_card(view) if item.digest == digest else build.stale_card(view)
            )
        return card_reply(build.decided_card(render.decided_view(item)))

    async def _guard_card(self, pid: str, digest: str) -> dict[str, Any]:
        data = {"pid": pid, "d": digest}
        return render.message_card(
            "Removals held back by the guard",
            ["Nothing was removed. Type 'sync now' to see the current count."],
            actions=[
                {**render.execute("Confirm", "guard_confirm", data), "style": "destructive"},
                render.execute("Dismiss", "guard_dismiss", data),
            ],
        )

    async def _decide_all(self, activity: dict[str, Any], kind: Kind, what: str) -> InvokeReply:
        actor = self._actor(activity)
        decisions = await self.service.decide_all(kind, actor=actor)
        done = sum(1 for d in decisions if d.outcome == "done")
        other = len(decisions) - done
        lines = [f"{done} {what} by {actor.name}, {self._now()}."]
        if other:
            lines.append(
                f"{other} could not be done (already handled, changed, or failed); type 'pending'."
            )
        return card_reply(render.message_card(f"{what.capitalize()}: {done}", lines))

    async def verb_accept_all(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        return await self._decide_all(activity, Kind.MATCH, "matches accepted")

    async def verb_apply_all(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        return await self._decide_all(activity, Kind.UPDATE, "updates applied")

    async def verb_unignore(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        decision = await self.service.decide(
            pid, "unignore", actor=self._actor(activity), digest=digest, inputs={}
        )
        if decision.outcome not in ("done", "already"):
            return card_reply(render.message_card("Could not un-ignore", [decision.message]))
        return card_reply(await self._ignored_card())

    async def verb_settings_save(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        form = {k: val for k in SETTINGS_INPUTS if (val := _str_input(data, k)) is not None}
        actor = self._actor(activity)
        dotted = {SETTINGS_FIELDS[k]: val for k, val in form.items() if k in SETTINGS_FIELDS}
        errors = await self.service.update_settings(dotted, actor=actor)
        if errors:
            return card_reply(await self._settings_card(errors, form))
        return card_reply(
            render.message_card(
                "Settings saved",
                [f"Saved by {actor.name}, {self._now()}. They apply from the next sync."],
                actions=[
                    render.execute("Edit settings", "refresh", {"pid": SETTINGS_PID, "d": ""})
                ],
            )
        )

    async def verb_connect_save(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        tenant_id = (_str_input(data, "tenant_id", 200) or "").strip()
        client_id = (_str_input(data, "client_id", 200) or "").strip()
        secret = _str_input(data, "client_secret", 1000) or ""
        errors: dict[str, str] = {}
        if not tenant_id:
            errors["tenant_id"] = "The tenant id is required."
        if not client_id:
            errors["client_id"] = "The client id is required."
        if not secret:
            errors["client_secret"] = "The client secret is required."
        if errors:
            return card_reply(build.connect_card(self._connect_view(errors, tenant_id, client_id)))
        actor = self._actor(activity)
        try:
            status = await self.service.connect(
                tenant_id, client_id, SecretStr(secret), actor=actor
            )
        except SyncError as e:
            field_name = (
                "client_secret" if "7000215" in e.code or "7000222" in e.code else "connect"
            )
            return card_reply(
                build.connect_card(
                    self._connect_view(
                        {field_name: f"{e.message} {e.hint}".strip()}, tenant_id, client_id
                    )
                )
            )
        if not status.connected:
            err = status.error or {}
            msg = (
                " ".join(str(x) for x in (err.get("code"), err.get("hint")) if x)
                or "Connection failed."
            )
            return card_reply(
                build.connect_card(self._connect_view({"connect": msg}, tenant_id, client_id))
            )
        return card_reply(build.status_card(render.status_view([status])))

    async def verb_disconnect_confirm(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        actor = self._actor(activity)
        await self.service.disconnect(None, actor=actor)
        return card_reply(
            render.message_card(
                "Disconnected",
                [f"By {actor.name}, {self._now()}. Every directory user and their data were kept."],
            )
        )

    async def verb_disconnect_cancel(
        self, activity: dict[str, Any], pid: str, digest: str, data: Mapping[str, Any]
    ) -> InvokeReply:
        return card_reply(
            render.message_card("Nothing was disconnected", [f"Cancelled, {self._now()}."])
        )


# --- helpers ------------------------------------------------------------------------------------


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


def settings_values(table: Mapping[str, Any]) -> dict[str, Any]:
    """SettingsView fields from the service's settings table (or a submitted form)."""
    out: dict[str, Any] = {}

    def tup(val: Any) -> tuple[str, ...]:
        if isinstance(val, str):
            return tuple(x.strip() for x in val.split(",") if x.strip())
        if isinstance(val, list | tuple):
            return tuple(str(x) for x in val)
        return ()

    def boolean(val: Any) -> bool:
        return val is True or (isinstance(val, str) and val.lower() == "true")

    for key, val in table.items():
        if key in ("groups", "tags"):
            out[key] = tup(val)
        elif key in ("enabled_only", "require_phone", "notify_admins_personally"):
            out[key] = boolean(val)
        elif key in ("first_name", "last_name", "display_name", "email", "mode", "at"):
            out[key] = "" if val is None else str(val)
        elif key in ("every_hours", "max_removals", "max_cards_per_run"):
            try:
                out[key] = int(val)
            except (TypeError, ValueError):
                continue
        elif key == "max_removal_share":
            try:
                out[key] = float(val)
            except (TypeError, ValueError):
                continue
    return out


def _short(val: Any) -> str:
    if val is None or val == "":
        return ""
    if isinstance(val, str):
        return val[:200]
    return json.dumps(val, ensure_ascii=False, default=str)[:200]


def summarise(results: Sequence[RunResult]) -> str:
    if not results:
        return "No tenant is configured. Type 'connect' to connect one."
    parts = []
    for r in results:
        where = f"{r.tenant} \u2192 {r.directory}"
        if r.status == "failed":
            code = r.error.code if r.error is not None else "error"
            hint = r.error.hint if r.error is not None else ""
            parts.append(f"{where}: failed ({code}). {hint}".strip())
        elif r.status == "skipped":
            parts.append(f"{where}: skipped" + (f" ({r.error.code})" if r.error else ""))
        else:
            bits = [f"{len(r.new_items)} new to decide"]
            if r.auto_applied:
                bits.append(f"{len(r.auto_applied)} applied automatically")
            if r.blocked:
                bits.append("removals held back by the guard")
            parts.append(f"{where}: " + ", ".join(bits))
    return "Sync done. " + "; ".join(parts) + "."


__all__ = ["CONNECT_INPUTS", "Bot", "BotService", "card_reply", "normalise", "parse_command"]
