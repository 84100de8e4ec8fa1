"""Bad input (issue 6): Hypothesis-generated activities and card payloads against the real
``/api/messages`` route and the real SyncService (fakeredis, a simulated tenant, the built-in
directory) never yield a 500 nor a state change the sender was not entitled to; Markdown and
HTML in Entra names are rendered inert in the posted cards; every input has a size bound.

"No state change" is checked on Redis (every key under the prefix, before and after each
generated input, minus the conversation references and card locations that any activity or
read-only command may refresh) and on the directory (writes counted).

The number of generated inputs is the sum of the ``max_examples`` below (GENERATED).
"""

from __future__ import annotations

import json
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cards.text import escape_md
from sync.models import Kind
from sync.service.service import SyncService
from sync.state.keys import Keys
from tests.component.real_rig import (
    ADMIN,
    OTHER,
    CountingDirectory,
    Rig,
    count_writes,
    entra_user,
    every_kind_world,
    make_service,
    real_bot,
    redis_snapshot,
    write_world,
)
from tests.component.test_bot_flow import CHANNEL, activity, card_texts, invoke, message

pytestmark = pytest.mark.usefixtures("no_tracebacks")

ACTIVITIES = 120
CARD_PAYLOADS = 120
FORGED_BY_ADMIN = 80
RAW_BODIES = 80
NAMES = 30
GENERATED = ACTIVITIES + CARD_PAYLOADS + FORGED_BY_ADMIN + RAW_BODIES + NAMES  # for the note

HYPO = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "derandomize": True,  # the same inputs on every run: a failure reproduces
}


@dataclass
class World:
    rig: Rig
    service: SyncService
    keys: Keys
    writes: CountingDirectory

    async def snapshot(self) -> dict[str, Any]:
        exclude = [self.keys.conversations(), self.keys.card_ref("")]
        return await redis_snapshot(self.service.redis, self.keys.prefix, exclude=exclude)

    async def post_raw(self, body: Any) -> int:
        resp = await self.rig.client.post("/api/messages", json=body)
        await resp.read()
        return resp.status


@pytest.fixture
async def world(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[World]:
    tenant, directory = every_kind_world()
    keys = Keys(prefix="t:bad:")
    svc = make_service(
        tmp_path,
        write_world(tmp_path, tenant, directory),
        redis=fakeredis.FakeAsyncRedis(),
        keys=keys,
    )
    await svc.start(scheduler=False)
    try:
        async with real_bot(aiohttp_client, svc) as rig:
            status, _ = await rig.post(activity("installationUpdate", rig.fc, action="add"))
            assert status == 200
            await rig.post(message(rig.fc, "sync now"))
            assert len(await svc.pending()) == 5
            yield World(rig, svc, keys, count_writes(svc))
    finally:
        await svc.stop()


# --- strategies -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)
COMMAND_WORDS = [
    "help",
    "status",
    "sync now",
    "sync",
    "pending",
    "ignored",
    "preview",
    "settings",
    "connect",
    "disconnect",
    "audit",
    "notify here",
]
texts = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda cmd, tail, at: f"{at}{cmd}{tail}",
        st.sampled_from(COMMAND_WORDS),
        st.text(max_size=30),
        st.sampled_from(["", "<at>Entra Sync</at> ", "<b>", "&nbsp;"]),
    ),
    json_values,
)
VERBS = [
    "accept",
    "ignore",
    "apply",
    "link",
    "create",
    "remove_sync",
    "delete_user",
    "delete_user_confirm",
    "pick_owner",
    "guard_confirm",
    "guard_dismiss",
    "accept_all",
    "apply_all",
    "unignore",
    "settings_save",
    "connect_save",
    "disconnect_confirm",
    "disconnect_cancel",
    "refresh",
]
DIGEST_VERBS = [
    "accept",
    "ignore",
    "apply",
    "link",
    "create",
    "remove_sync",
    "delete_user_confirm",
    "pick_owner",
    "guard_confirm",
    "guard_dismiss",
    "unignore",
]
not_admin = st.text(max_size=40).filter(lambda s: s != ADMIN)


def _strip(body: dict[str, Any], drop: list[str]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in drop}


# --- generated activities --------------------------------------------------------------------


@settings(max_examples=ACTIVITIES, **HYPO)  # type: ignore[arg-type]
@given(
    kind=st.sampled_from(
        ["message", "invoke", "conversationUpdate", "installationUpdate", "event", "typing"]
    )
    | st.text(max_size=20),
    text=texts,
    aad=not_admin,
    conv=st.sampled_from([CHANNEL, "19:other@thread.tacv2", ""]) | st.text(max_size=30),
    drop=st.lists(
        st.sampled_from(["from", "conversation", "serviceUrl", "recipient", "channelData", "id"]),
        max_size=3,
    ),
    extra=st.dictionaries(
        st.sampled_from(["value", "name", "action", "membersAdded", "channelData", "entities"]),
        json_values,
        max_size=3,
    ),
)
async def test_generated_activities_from_a_non_admin_never_500_and_change_nothing(
    world: World,
    kind: str,
    text: Any,
    aad: str,
    conv: str,
    drop: list[str],
    extra: dict[str, Any],
) -> None:
    body = activity("message", world.rig.fc, aad=aad, conv=conv, text=text)
    body["type"] = kind
    body.update(extra)
    body = _strip(body, drop)
    before = await world.snapshot()
    status = await world.post_raw(body)
    assert status in (200, 400), status
    assert await world.snapshot() == before
    assert world.writes.writes == []


# --- generated card payloads --------------------------------------------------------------------


@settings(max_examples=CARD_PAYLOADS, **HYPO)  # type: ignore[arg-type]
@given(
    verb=st.sampled_from(VERBS) | json_values,
    data=json_values,
    use_real=st.booleans(),
    real_index=st.integers(min_value=0, max_value=4),
    aad=not_admin,
    value_shape=st.sampled_from(["normal", "no_action", "action_not_dict", "value_list"]),
)
async def test_generated_card_payloads_from_a_non_admin_never_500_and_change_nothing(
    world: World,
    verb: Any,
    data: Any,
    use_real: bool,
    real_index: int,
    aad: str,
    value_shape: str,
) -> None:
    if use_real:  # a real item's pid and digest, as a forger copying a card would send
        item = (await world.service.pending())[real_index]
        data = {**(data if isinstance(data, dict) else {}), "pid": item.id, "d": item.digest}
    body = invoke(world.rig.fc, "x", data, aad=aad)
    body["value"] = {
        "normal": {"action": {"type": "Action.Execute", "verb": verb, "data": data}},
        "no_action": {"verb": verb, "data": data},
        "action_not_dict": {"action": [verb, data]},
        "value_list": [verb, data],
    }[value_shape]
    before = await world.snapshot()
    status = await world.post_raw(body)
    assert status == 200
    assert await world.snapshot() == before
    assert world.writes.writes == []


@settings(max_examples=FORGED_BY_ADMIN, **HYPO)  # type: ignore[arg-type]
@given(
    verb=st.sampled_from(DIGEST_VERBS),
    pid_choice=st.integers(min_value=0, max_value=7),
    random_pid=st.text(max_size=60),
    digest=st.text(alphabet=string.hexdigits, max_size=30) | st.text(max_size=30),
    inputs=st.dictionaries(st.sampled_from(["target", "owner"]), st.text(max_size=20), max_size=2),
)
async def test_forged_card_data_from_an_admin_changes_nothing(
    world: World, verb: str, pid_choice: int, random_pid: str, digest: str, inputs: dict[str, str]
) -> None:
    """An admin's press is honoured only with the digest the bot issued for that item."""
    items = await world.service.pending()
    pids = [i.id for i in items] + ["guard:contoso:main", "e-dora", random_pid]
    pid = pids[pid_choice % len(pids)]
    issued = {i.digest for i in items} | {
        (await world.service.guard_id("contoso", "main"))[1],
        await world.service.unignore_digest("e-dora"),
    }
    assume(digest not in issued)
    before = await world.snapshot()
    status, body = await world.rig.post(
        invoke(world.rig.fc, verb, {"pid": pid, "d": digest, **inputs}, aad=ADMIN)
    )
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert await world.snapshot() == before
    assert world.writes.writes == []


# --- raw bodies and size bounds ------------------------------------------------------------------


@settings(max_examples=RAW_BODIES, **HYPO)  # type: ignore[arg-type]
@given(payload=json_values | st.binary(max_size=200))
async def test_any_body_is_answered_without_a_500(world: World, payload: Any) -> None:
    before = await world.snapshot()
    if isinstance(payload, bytes):
        resp = await world.rig.client.post(
            "/api/messages", data=payload, headers={"Content-Type": "application/json"}
        )
    else:
        resp = await world.rig.client.post("/api/messages", json=payload)
    await resp.read()
    # json=None sends no body and no content type: local mode answers 415 (JSON only)
    assert resp.status in ((415,) if payload is None else (200, 400))
    assert await world.snapshot() == before


async def test_an_oversized_body_is_refused_with_413(world: World) -> None:
    big = message(world.rig.fc, "status " + "x" * (2 * 1024 * 1024), aad=ADMIN)
    before = await world.snapshot()
    assert await world.post_raw(big) == 413
    assert await world.snapshot() == before


async def test_a_huge_command_argument_gets_a_bounded_reply(world: World) -> None:
    n = len(world.rig.fc.posts)
    status, _ = await world.rig.post(message(world.rig.fc, "sync " + "a" * 500_000, aad=ADMIN))
    assert status == 200
    replies = [json.dumps(r.body) for r in world.rig.fc.posts[n:]]
    assert replies and all(len(r) < 4000 for r in replies)


async def test_an_oversized_card_input_is_refused_not_saved(world: World) -> None:
    before = world.service.config.schedule
    huge = "9" * 5000
    status, body = await world.rig.post(
        invoke(
            world.rig.fc,
            "settings_save",
            {"pid": "settings", "d": "", "every_hours": huge, "groups": "g," * 3000},
            aad=ADMIN,
        )
    )
    assert status == 200
    assert world.service.config.schedule == before
    assert world.service.config.scope.groups == ()
    stored = await world.service.store.settings.get_settings_overrides()
    assert huge not in json.dumps(stored)
    assert len(json.dumps(body)) < 28 * 1024


async def test_an_oversized_item_id_is_refused(world: World) -> None:
    status, body = await world.rig.post(
        invoke(world.rig.fc, "accept", {"pid": "p" * 10_000, "d": "0" * 10_000}, aad=ADMIN)
    )
    assert status == 200
    assert "not known" in card_texts(body["value"])
    assert world.writes.writes == []


# --- Markdown and HTML in Entra names ------------------------------------------------------------

HOSTILE_NAMES = [
    "**Boss** [click me](https://evil.example/phish)",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "![pixel](https://evil.example/track.png)",
    "# Heading\n- list item\n> quote",
    "`code` ~~strike~~ _under_ {{DATE(2026-01-01)}}",
    "<at>Ann Admin</at> please approve",
    "Anna \u202eevil\u202c Berg",  # a bidi override
    "x" * 1024,  # the longest name Graph data may carry
]


def _name_user(name: str) -> dict[str, Any]:
    return entra_user("hostile", "Hostile", "User", "+46701239876", displayName=name)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
async def test_markdown_and_html_in_entra_names_are_inert_in_posted_cards(
    world: World, name: str
) -> None:
    sim = world.service.tenants["contoso"].sim
    assert sim is not None
    sim.upsert_user(_name_user(name))
    n = len(world.rig.fc.posts)
    await world.rig.post(message(world.rig.fc, "sync now", aad=ADMIN))
    cards = [a["content"] for r in world.rig.fc.posts[n:] for a in r.body.get("attachments") or []]
    assert cards
    _assert_inert(name, cards)


def _assert_inert(name: str, cards: list[dict[str, Any]]) -> None:
    blob = json.dumps(cards, ensure_ascii=False)
    assert all(len(json.dumps(c)) < 28 * 1024 for c in cards)  # Teams' safe card size
    if "<" not in name:  # text between < and > is dropped from Entra values altogether
        shown = escape_md(name, 40)[:30]  # a prefix survives any shortening of the name
        assert json.dumps(shown, ensure_ascii=False)[1:-1] in blob
    for raw in ("[click me](", "<script>", "<img", "![pixel]", "**Boss**", "{{DATE(", "<at>"):
        if raw in name:
            assert raw not in blob, raw
    assert "\u202e" not in blob


@settings(max_examples=NAMES, **HYPO)  # type: ignore[arg-type]
@given(
    name=st.text(
        alphabet=st.sampled_from([*"*_`~[](){}#+-.!<>&|\\/:= \n\tab1", "\u202e", "\u200b"]),
        min_size=1,
        max_size=60,
    )
)
async def test_generated_names_are_escaped_in_every_card_text(world: World, name: str) -> None:
    assume(name.strip())
    sim = world.service.tenants["contoso"].sim
    assert sim is not None
    sim.upsert_user(_name_user(name))
    n = len(world.rig.fc.posts)
    await world.rig.post(message(world.rig.fc, "sync now", aad=ADMIN))
    cards = [a["content"] for r in world.rig.fc.posts[n:] for a in r.body.get("attachments") or []]
    from cards.text import MD_SPECIAL, clean

    shown = clean(name, 40)
    if not any(ch in MD_SPECIAL for ch in shown) or len(shown) < 3:
        return  # nothing to escape in this one
    texts = _card_text_values(cards)
    # wherever the name shows, it shows escaped: never its raw (cleaned) form
    assert not any(shown in t for t in texts), shown


def _card_text_values(cards: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            for k, v in node.items():
                if k in ("text", "title", "value") and isinstance(v, str):
                    if kind in ("TextBlock", "Fact", None) or k == "text":
                        out.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for x in node:
                walk(x)

    for c in cards:
        walk(c)
    return out


async def test_the_stale_and_digest_paths_also_escape_names(world: World) -> None:
    """Many new users at once: one digest card, names escaped there too."""
    sim = world.service.tenants["contoso"].sim
    assert sim is not None
    for i in range(8):
        sim.upsert_user(
            entra_user(f"h{i}", "H", f"N{i}", f"+4670123{i:04d}", displayName=f"**bold{i}** [x](y)")
        )
    n = len(world.rig.fc.posts)
    await world.rig.post(message(world.rig.fc, "sync now", aad=ADMIN))
    blob = json.dumps([r.body for r in world.rig.fc.posts[n:]])
    assert "**bold" not in blob and "[x](y)" not in blob
    assert any(i.kind is Kind.NEW for i in await world.service.pending())


__all__ = ["GENERATED", "OTHER"]
