"""Authorisation (issue 6): every state-changing command and every card verb is refused for a
non-admin and allowed for an admin; read-only commands are open to the team.

The real route and the real SyncService (fakeredis, an in-process simulated tenant, the
built-in directory). "Refused" means: the refusal is shown, and neither Redis (every key under
the test's prefix except the conversation-reference hash, which every incoming activity
refreshes) nor the directory (writes counted) changed. "Allowed" means the change happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from sync.devtools.simulator import TenantSim
from sync.models import Kind, ProposalState
from sync.service.service import Actor, Item, SyncService
from sync.state.keys import Keys
from tests.component.real_rig import (
    ADMIN,
    CONFLICT_NUMBER,
    OTHER,
    CountingDirectory,
    Rig,
    count_writes,
    entra_user,
    every_kind_world,
    make_service,
    real_bot,
    redis_snapshot,
    simulated_entra,
    write_world,
)
from tests.component.test_bot_flow import (
    LOCAL_TENANT,
    TEAM,
    activity,
    card_texts,
    executes,
    invoke,
    message,
)

pytestmark = pytest.mark.usefixtures("no_tracebacks")

MEMBER = "aad-team-member"
GUARD_VERBS = frozenset({"guard_confirm", "guard_dismiss"})
CONNECT_CLIENT = "c0ffee00-0000-4000-8000-000000000001"
CONNECT_SECRET = "s3cret-value-for-connect"


@dataclass
class World:
    rig: Rig
    service: SyncService
    directory: CountingDirectory
    keys: Keys
    sim: TenantSim

    async def item(self, kind: Kind) -> Item:
        return next(i for i in await self.service.pending() if i.kind is kind)

    async def snapshot(self, *, bookkeeping: bool = False) -> dict[str, Any]:
        """Redis under the prefix, minus what any activity may refresh: the conversation
        references (and, with ``bookkeeping``, where read-only replies posted item cards)."""
        exclude = [self.keys.conversations()]
        if bookkeeping:
            exclude.append(self.keys.card_ref(""))
        return await redis_snapshot(self.service.redis, self.keys.prefix, exclude=exclude)

    async def dir_user(self, uid: str) -> Any:
        return await self.directory.inner.get(uid)


async def _world(
    aiohttp_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    admins: tuple[str, ...] = (ADMIN,),
    guard: dict[str, Any] | None = None,
) -> AsyncIterator[World]:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory, admins=admins)
    if guard:
        cfg["guard"] = guard
    keys = Keys(prefix="t:authz:")
    service = make_service(tmp_path, cfg, redis=fakeredis.FakeAsyncRedis(), keys=keys)
    await service.start(scheduler=False)
    await service.run_sync()
    counting = count_writes(service)
    sim = service.tenants["contoso"].sim
    assert sim is not None
    # the tenant an admin connects from Teams signs in at a simulator that checks the secret
    entra = TenantSim(tenant, client_id=CONNECT_CLIENT, client_secret=CONNECT_SECRET)
    try:
        async with simulated_entra(monkeypatch, entra), real_bot(aiohttp_client, service) as rig:
            status, _ = await rig.post(activity("installationUpdate", rig.fc, action="add"))
            assert status == 200
            yield World(rig, service, counting, keys, sim)
    finally:
        await service.stop()


@pytest.fixture
async def world(
    aiohttp_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> AsyncIterator[World]:
    """The world after one sync; for the guard verbs, one where any removal is more than the
    guard allows (the run holds removals back and posts the guard card)."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    verb = params.get("verb")
    guard = {"max_removals": 0, "max_removal_share": 0.0} if verb in GUARD_VERBS else None
    async for w in _world(aiohttp_client, tmp_path, monkeypatch, guard=guard):
        yield w


@pytest.fixture
async def team_world(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """No admins configured: the members of the admin team (where the bot is installed)."""
    async for w in _world(aiohttp_client, tmp_path, monkeypatch, admins=()):
        yield w


# --- card verbs -----------------------------------------------------------------------------

Prepare = Callable[[World], Awaitable[dict[str, Any]]]
Check = Callable[[World, dict[str, Any], dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Verb:
    prepare: Prepare
    allowed: Check


def _item_data(kind: Kind, **inputs: str) -> Prepare:
    async def prepare(w: World) -> dict[str, Any]:
        it = await w.item(kind)
        return {"pid": it.id, "d": it.digest, **inputs}

    return prepare


def _state_is(state: ProposalState) -> Check:
    async def check(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
        got = await w.service.item(data["pid"])
        assert got is not None and got.state is state
        assert got.decided_by == "Ann Admin"

    return check


async def _accepted(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    await _state_is(ProposalState.APPLIED)(w, data, body)
    assert (await w.dir_user("1")).entra_id == "e-anna"


async def _applied(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    await _state_is(ProposalState.APPLIED)(w, data, body)
    assert (await w.dir_user("2")).display_name == "Carl Dahl"


async def _linked(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    await _state_is(ProposalState.APPLIED)(w, data, body)
    assert (await w.dir_user("4")).entra_id == "e-dora"


async def _created(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    await _state_is(ProposalState.APPLIED)(w, data, body)
    created = await w.directory.inner.find_by_external_id("e-dora")
    assert created is not None and w.directory.count("create") == 1


async def _sync_removed(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    await _state_is(ProposalState.APPLIED)(w, data, body)
    kept = await w.dir_user("3")
    assert kept is not None and kept.entra_id is None


async def _asked_to_confirm(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    verbs = {a["verb"] for a in executes(body["value"])}
    assert "delete_user_confirm" in verbs  # the admin is asked to confirm; nothing deleted yet
    assert await w.dir_user("3") is not None


async def _deleted(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    await _state_is(ProposalState.APPLIED)(w, data, body)
    assert await w.dir_user("3") is None
    assert w.directory.count("delete") == 1


async def _owner_picked(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    await _state_is(ProposalState.APPLIED)(w, data, body)
    assert (await w.service.store.choices.number_owners("contoso")) == {CONFLICT_NUMBER: "e-eve"}


async def _guard_data(w: World) -> dict[str, Any]:
    pid, digest = await w.service.guard_id("contoso", "main")
    return {"pid": pid, "d": digest}


async def _guard_confirmed(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    assert any(i.kind is Kind.REMOVAL for i in await w.service.pending())
    assert [e.action for e in await w.service.audit(5)].count("guard confirmed") == 1


async def _guard_dismissed(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    assert not any(i.kind is Kind.REMOVAL for i in await w.service.pending())
    assert [e.action for e in await w.service.audit(5)].count("guard dismissed") == 1


async def _all_data(w: World) -> dict[str, Any]:
    return {"pid": "pending", "d": await w.service.digest("pending")}


async def _confirmed_removal_data(w: World) -> dict[str, Any]:
    """The data of a delete_user_confirm button the server issued (after delete_user)."""
    data = await _item_data(Kind.REMOVAL)(w)
    _, body = await w.rig.post(invoke(w.rig.fc, "delete_user", data, aad=ADMIN))
    (confirm,) = [a for a in executes(body["value"]) if a["verb"] == "delete_user_confirm"]
    return dict(confirm["data"])


async def _all_matches_accepted(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    assert not [i for i in await w.service.pending() if i.kind is Kind.MATCH]
    assert (await w.dir_user("1")).entra_id == "e-anna"


async def _all_updates_applied(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    assert not [i for i in await w.service.pending() if i.kind is Kind.UPDATE]
    assert (await w.dir_user("2")).display_name == "Carl Dahl"


async def _unignore_data(w: World) -> dict[str, Any]:
    it = await w.item(Kind.NEW)
    done = await w.service.decide(
        it.id, "ignore", actor=Actor(ADMIN, "Ann Admin"), digest=it.digest, inputs={}
    )
    assert done.outcome == "done"
    return {"pid": "e-dora", "d": await w.service.unignore_digest("e-dora")}


async def _unignored(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    assert "e-dora" not in await w.service.store.choices.ignored("contoso")


async def _settings_data(w: World) -> dict[str, Any]:
    return {"pid": "settings", "d": "", "mode": "interval", "every_hours": "6"}


async def _settings_saved(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    assert w.service.config.schedule.mode == "interval"
    assert (await w.service.store.settings.get_settings_overrides() or {}).get("schedule", {}).get(
        "every_hours"
    ) == 6


async def _connect_data(w: World) -> dict[str, Any]:
    return {
        "pid": "connect",
        "d": "",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": CONNECT_CLIENT,
        "client_secret": CONNECT_SECRET,
    }


async def _connected(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    assert await w.service.store.tenant_credentials.credentials("entra") is not None
    assert "entra" in w.service.tenants


async def _disconnect_data(w: World) -> dict[str, Any]:
    """The data of the Disconnect button of the confirmation card the server issued."""
    await w.rig.post(message(w.rig.fc, "disconnect", aad=ADMIN))
    card = w.rig.fc.posts[-1].body["attachments"][0]["content"]
    (confirm,) = [a for a in executes(card) if a["verb"] == "disconnect_confirm"]
    return dict(confirm["data"])


async def _disconnected(w: World, data: dict[str, Any], body: dict[str, Any]) -> None:
    assert "Disconnected" in card_texts(body["value"])
    assert (await w.dir_user("2")).entra_id is None  # links go, users stay
    assert len(await w.directory.inner.list_users()) == 5


VERBS: dict[str, Verb] = {
    "accept": Verb(_item_data(Kind.MATCH), _accepted),
    "ignore": Verb(_item_data(Kind.MATCH), _state_is(ProposalState.IGNORED)),
    "apply": Verb(_item_data(Kind.UPDATE), _applied),
    "link": Verb(_item_data(Kind.NEW, target="4"), _linked),
    "create": Verb(_item_data(Kind.NEW), _created),
    "remove_sync": Verb(_item_data(Kind.REMOVAL), _sync_removed),
    "delete_user": Verb(_item_data(Kind.REMOVAL), _asked_to_confirm),
    "delete_user_confirm": Verb(_confirmed_removal_data, _deleted),
    "pick_owner": Verb(_item_data(Kind.CONFLICT, owner="e-eve"), _owner_picked),
    "guard_confirm": Verb(_guard_data, _guard_confirmed),
    "guard_dismiss": Verb(_guard_data, _guard_dismissed),
    "accept_all": Verb(_all_data, _all_matches_accepted),
    "apply_all": Verb(_all_data, _all_updates_applied),
    "unignore": Verb(_unignore_data, _unignored),
    "settings_save": Verb(_settings_data, _settings_saved),
    "connect_save": Verb(_connect_data, _connected),
    "disconnect_confirm": Verb(_disconnect_data, _disconnected),
}


@pytest.mark.parametrize("verb", sorted(VERBS))
async def test_a_non_admin_card_action_is_refused_and_changes_nothing(
    world: World, verb: str
) -> None:
    w = world
    data = await VERBS[verb].prepare(w)
    before = await w.snapshot()
    status, body = await w.rig.post(invoke(w.rig.fc, verb, data, aad=OTHER))
    assert status == 200
    assert "Only admins can do this." in card_texts(body["value"])
    assert await w.snapshot() == before
    assert w.directory.writes == []


@pytest.mark.parametrize("verb", sorted(VERBS))
async def test_an_admin_card_action_is_carried_out(world: World, verb: str) -> None:
    w = world
    data = await VERBS[verb].prepare(w)
    status, body = await w.rig.post(invoke(w.rig.fc, verb, data, aad=ADMIN))
    assert status == 200
    assert "Only admins" not in card_texts(body["value"])
    await VERBS[verb].allowed(w, data, body)


async def test_the_link_card_names_the_directory_user_it_linked(world: World) -> None:
    """After Link the user is no longer among the unlinked choices: the card reads it by id
    (directory user 4, Ivar Holm, now carries Dora's mapped fields)."""
    data = await VERBS["link"].prepare(world)
    status, body = await world.rig.post(invoke(world.rig.fc, "link", data, aad=ADMIN))
    assert status == 200
    assert "Linked to the directory user Dora Ek" in card_texts(body["value"])


async def test_a_card_action_without_an_entra_object_id_is_refused(world: World) -> None:
    it = await world.item(Kind.MATCH)
    body = invoke(world.rig.fc, "accept", {"pid": it.id, "d": it.digest})
    body["from"] = {"id": "29:someone", "name": "Ann Admin"}  # the admin's name, but no aad id
    before = await world.snapshot()
    status, reply = await world.rig.post(body)
    assert status == 200
    assert "Only admins can do this." in card_texts(reply["value"])
    assert await world.snapshot() == before


async def test_the_read_only_refresh_verb_is_open_to_the_team_without_the_buttons(
    world: World,
) -> None:
    world.rig.fc.add_member(TEAM, OTHER, "Olle Other")
    it = await world.item(Kind.MATCH)
    before = await world.snapshot()
    status, reply = await world.rig.post(
        invoke(world.rig.fc, "refresh", {"pid": it.id, "d": it.digest}, aad=OTHER)
    )
    assert status == 200
    assert "accept" not in {a["verb"] for a in executes(reply["value"])}  # per-user view
    assert "Only admins can decide" in card_texts(reply["value"])
    assert await world.snapshot() == before


# --- commands ---------------------------------------------------------------------------------


def _last_reply(w: World) -> str:
    rec = w.rig.fc.posts[-1]
    if rec.body.get("text"):
        return str(rec.body["text"])
    return card_texts(rec.body["attachments"][0]["content"])


STATE_CHANGING = ["sync now", "sync anna", "settings", "connect", "disconnect", "notify here"]


async def _admin_command_effect(w: World, command: str, graph_before: int) -> None:
    reply = _last_reply(w)
    if command in ("sync now", "sync anna"):
        assert w.sim.requests["graph"] > graph_before  # a sync really ran
        assert any(i.proposal.entra_id == "e-new" for i in await w.service.pending())
    elif command == "settings":
        assert "Input." in str(w.rig.fc.posts[-1].body)  # the settings form
    elif command == "connect":
        assert "client_secret" in str(w.rig.fc.posts[-1].body)  # the connect form
    elif command == "disconnect":
        assert "disconnect_confirm" in str(w.rig.fc.posts[-1].body)
    elif command == "notify here":
        assert await w.service.conversations.notify_channel() == "19:elsewhere@thread.tacv2"
        assert "notifications here" in reply


@pytest.mark.parametrize("command", STATE_CHANGING)
async def test_a_non_admin_state_changing_command_is_refused_and_changes_nothing(
    world: World, command: str
) -> None:
    world.sim.upsert_user(entra_user("new", "Nina", "Nyberg", "+46701239999"))
    graph_before = world.sim.requests["graph"]
    before = await world.snapshot()
    conv = "19:elsewhere@thread.tacv2"
    status, _ = await world.rig.post(message(world.rig.fc, command, aad=OTHER, conv=conv))
    assert status == 200
    assert "Only admins can do this" in _last_reply(world)
    assert await world.snapshot() == before
    assert world.sim.requests["graph"] == graph_before
    assert world.directory.writes == []


@pytest.mark.parametrize("command", STATE_CHANGING)
async def test_an_admin_state_changing_command_is_carried_out(world: World, command: str) -> None:
    world.sim.upsert_user(entra_user("new", "Nina", "Nyberg", "+46701239999"))
    graph_before = world.sim.requests["graph"]
    conv = "19:elsewhere@thread.tacv2"
    status, _ = await world.rig.post(message(world.rig.fc, command, aad=ADMIN, conv=conv))
    assert status == 200
    assert "Only admins" not in _last_reply(world)
    await _admin_command_effect(world, command, graph_before)


READ_ONLY = {
    "help": "sync now",
    "status": "Entra Sync status",
    "pending": "Anna Berg",
    "ignored": "gnored",
    "preview": "Preview",
    "audit": "Recent decisions",
}


@pytest.mark.parametrize("command", sorted(READ_ONLY))
async def test_a_read_only_command_is_open_to_the_team_and_changes_nothing(
    world: World, command: str
) -> None:
    world.rig.fc.add_member(TEAM, OTHER, "Olle Other")
    before = await world.snapshot(bookkeeping=True)
    n = len(world.rig.fc.posts)
    status, _ = await world.rig.post(message(world.rig.fc, command, aad=OTHER))
    assert status == 200
    replies = " ".join(
        card_texts(a["content"]) + str(r.body.get("text") or "")
        for r in world.rig.fc.posts[n:]
        for a in (r.body.get("attachments") or [{"content": {}}])
    )
    assert "Only admins" not in replies
    assert READ_ONLY[command] in replies
    assert await world.snapshot(bookkeeping=True) == before


def _replies_since(w: World, n: int) -> str:
    return " ".join(
        card_texts(a["content"]) + str(r.body.get("text") or "")
        for r in w.rig.fc.posts[n:]
        for a in (r.body.get("attachments") or [{"content": {}}])
    )


@pytest.mark.parametrize("command", sorted(set(READ_ONLY) - {"help"}))
async def test_read_only_commands_answer_nobody_outside_the_admin_team(
    world: World, command: str
) -> None:
    before = await world.snapshot(bookkeeping=True)
    n = len(world.rig.fc.posts)
    status, _ = await world.rig.post(message(world.rig.fc, command, aad=OTHER))
    assert status == 200
    replies = _replies_since(world, n)
    assert READ_ONLY[command] not in replies
    assert "Anna Berg" not in replies
    assert "the bot's team can see this" in replies
    assert await world.snapshot(bookkeeping=True) == before


@pytest.mark.parametrize("command", ["pending", "audit", "status"])
async def test_read_only_commands_in_a_personal_chat_answer_admins_only(
    world: World, command: str
) -> None:
    world.rig.fc.add_member(TEAM, OTHER, "Olle Other")
    personal = "a:1-personal-chat"
    n = len(world.rig.fc.posts)
    await world.rig.post(
        message(
            world.rig.fc,
            command,
            aad=OTHER,
            conv=personal,
            conversation={"id": personal, "conversationType": "personal", "tenantId": LOCAL_TENANT},
        )
    )
    assert READ_ONLY[command] not in _replies_since(world, n)
    n = len(world.rig.fc.posts)
    await world.rig.post(
        message(
            world.rig.fc,
            command,
            aad=ADMIN,
            conv=personal,
            conversation={"id": personal, "conversationType": "personal", "tenantId": LOCAL_TENANT},
        )
    )
    assert READ_ONLY[command] in _replies_since(world, n)


async def test_the_refresh_of_a_digest_card_is_refused_outside_the_admin_team(
    world: World,
) -> None:
    signed = await world.service.digest("pending")
    status, reply = await world.rig.post(
        invoke(world.rig.fc, "refresh", {"pid": "pending", "d": signed}, aad=OTHER)
    )
    assert status == 200
    assert "Anna Berg" not in card_texts(reply["value"])
    assert "Only admins can do this." in card_texts(reply["value"])


# --- admin team (no admins configured) ---------------------------------------------------------


async def test_a_member_of_the_admin_team_may_act_when_no_admins_are_configured(
    team_world: World,
) -> None:
    w = team_world
    w.rig.fc.add_member(TEAM, MEMBER, "Mia Member")
    it = await w.item(Kind.MATCH)
    status, _ = await w.rig.post(
        invoke(w.rig.fc, "accept", {"pid": it.id, "d": it.digest}, aad=MEMBER)
    )
    assert status == 200
    got = await w.service.item(it.id)
    assert got is not None and got.state is ProposalState.APPLIED


async def test_someone_outside_the_admin_team_is_refused_when_no_admins_are_configured(
    team_world: World,
) -> None:
    w = team_world
    it = await w.item(Kind.MATCH)
    before = await w.snapshot()
    status, body = await w.rig.post(
        invoke(w.rig.fc, "accept", {"pid": it.id, "d": it.digest}, aad=OTHER)
    )
    assert status == 200
    assert "Only admins can do this." in card_texts(body["value"])
    assert await w.snapshot() == before


async def test_nobody_is_an_admin_before_the_bot_knows_its_admin_team(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory, admins=())
    service = make_service(tmp_path, cfg, redis=fakeredis.FakeAsyncRedis(), keys=Keys("t:nb:"))
    await service.start(scheduler=False)
    try:
        await service.run_sync()
        async with real_bot(aiohttp_client, service) as rig:
            it = next(i for i in await service.pending() if i.kind is Kind.MATCH)
            status, body = await rig.post(
                invoke(rig.fc, "accept", {"pid": it.id, "d": it.digest}, aad=ADMIN)
            )
            assert status == 200
            assert "Only admins can do this." in card_texts(body["value"])
            got = await service.item(it.id)
            assert got is not None and got.state is ProposalState.PENDING
    finally:
        await service.stop()
