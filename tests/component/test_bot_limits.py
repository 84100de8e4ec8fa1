"""Posting stays within Teams' per-thread limits; /api/messages never answers 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.posting import TEAMS_LIMITS, Poster, SlidingWindowLimiter
from tests.component.fake_connector import FakeConnector
from tests.component.test_bot_flow import (  # fixtures imported by name
    CHANNEL,
    FakeTime,
    Rig,
    activity,
    connector,
    install,
    invoke,
    make_rig,
    message,
    rig,
)

__all__ = ["connector", "rig"]  # fixtures used by name


def within_limits(times: list[float]) -> bool:
    for window, limit in TEAMS_LIMITS:
        for i, t in enumerate(times):
            inside = [x for x in times[i:] if x < t + window]
            if len(inside) > limit:
                return False
    return True


class _CountingSender:
    def __init__(self, clock: FakeTime) -> None:
        self.clock = clock
        self.times: list[float] = []

    async def send(
        self, ref: dict[str, Any], activity: dict[str, Any], *, reply_to: str | None = None
    ) -> str:
        self.times.append(self.clock.now)
        return f"a{len(self.times)}"

    async def update(self, ref: dict[str, Any], activity_id: str, activity: dict[str, Any]) -> None:
        self.times.append(self.clock.now)


class _Store:
    def __init__(self) -> None:
        self.refs: dict[str, dict[str, Any]] = {CHANNEL: {"conversation": {"id": CHANNEL}}}
        self.cards: dict[str, dict[str, Any]] = {}

    async def conversation(self, conv_id: str) -> dict[str, Any] | None:
        return self.refs.get(conv_id)

    async def notify_channel(self) -> str | None:
        return CHANNEL

    async def set_card_ref(self, pid: str, ref: dict[str, Any]) -> None:
        self.cards[pid] = ref

    async def card_ref(self, pid: str) -> dict[str, Any] | None:
        return self.cards.get(pid)


async def test_500_cards_are_posted_within_every_teams_window() -> None:
    t = FakeTime()
    sender = _CountingSender(t)
    poster = Poster(
        sender=sender,
        store=_Store(),
        limiter=SlidingWindowLimiter(clock=t.monotonic, sleep=t.sleep),
        sleep=t.sleep,
    )
    cards = [(f"p{i}", {"type": "AdaptiveCard", "version": "1.5", "body": []}) for i in range(500)]
    posted = await poster.post_cards(cards)
    assert posted == 500
    assert within_limits(sender.times)
    per_30s = max(sum(1 for x in sender.times if s <= x < s + 30) for s in sender.times)
    assert per_30s <= 60


async def test_a_run_with_500_new_items_posts_one_digest(aiohttp_client: Any) -> None:
    async with FakeConnector.serve() as fc:
        rig = await make_rig(aiohttp_client, fc)
        rig.service.entra_count = 500
        await install(rig)
        before = len(fc.posts)
        await rig.post(message(fc, "sync now"))
        assert len(fc.posts) - before == 2  # the summary and one digest card
        assert "500 items" in json.dumps(fc.cards("POST")[-1])


async def test_malformed_json_is_a_400(rig: Rig) -> None:
    resp = await rig.client.post(
        "/api/messages", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400


async def test_unknown_activity_type_is_ignored_with_200(rig: Rig) -> None:
    status, _ = await rig.post(activity("typing", rig.fc))
    assert status == 200
    status, _ = await rig.post(activity("somethingNew", rig.fc))
    assert status == 200


async def test_an_invoke_for_another_name_gets_200(rig: Rig) -> None:
    body = activity("invoke", rig.fc, name="composeExtension/query", value={})
    status, _ = await rig.post(body)
    assert status == 200


async def test_a_crash_inside_the_service_is_an_error_card_not_a_500(rig: Rig) -> None:
    async def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("bug")

    rig.service.decide = boom  # type: ignore[method-assign]
    status, body = await rig.post(invoke(rig.fc, "accept", {"pid": "x", "d": "y"}))
    assert status == 200
    assert body["type"] == "application/vnd.microsoft.card.adaptive"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(["message", "invoke", "conversationUpdate", "installationUpdate", "x"]),
    verb=st.one_of(
        st.sampled_from(
            [
                "accept",
                "link",
                "refresh",
                "settings_save",
                "unignore",
                "connect_save",
                "guard_confirm",
            ]
        ),
        json_values,
    ),
    data=json_values,
    text=st.one_of(st.text(max_size=60), json_values),
    frm=json_values,
)
async def test_forged_payloads_never_yield_a_500(
    rig: Rig, kind: str, verb: Any, data: Any, text: Any, frm: Any
) -> None:
    body = activity(kind, rig.fc, text=text, name="adaptiveCard/action")
    body["value"] = {"action": {"type": "Action.Execute", "verb": verb, "data": data}}
    if isinstance(frm, dict):
        body["from"] = frm
    status, _ = await rig.post(body)
    assert status in (200, 400)
    assert rig.service.applied == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=json_values)
async def test_any_json_body_never_yields_a_500(rig: Rig, payload: Any) -> None:
    resp = await rig.client.post("/api/messages", json=payload)
    # json=None sends no body and no content type: local mode answers 415 (JSON only)
    assert resp.status in ((415,) if payload is None else (200, 400))
