"""The activity's locale reaches the cards: a Teams client in Swedish (``locale: sv-SE``, or
only the ``clientInfo`` entity's locale) gets Swedish cards and replies through the real app;
an English one gets English."""

from __future__ import annotations

from typing import Any

import pytest

from tests.component.fake_connector import FakeConnector
from tests.component.test_bot_flow import (
    Rig,
    card_texts,
    executes,
    install,
    invoke,
    make_rig,
    message,
)

SV = {"locale": "sv-SE"}


@pytest.fixture
async def connector() -> Any:
    async with FakeConnector.serve() as fc:
        yield fc


@pytest.fixture
async def rig(aiohttp_client: Any, connector: FakeConnector) -> Rig:
    return await make_rig(aiohttp_client, connector)


async def test_a_swedish_client_gets_the_sync_reply_and_status_in_swedish(rig: Rig) -> None:
    await install(rig)
    await rig.post(message(rig.fc, "sync now", **SV))
    texts = [str(r.body.get("text") or "") for r in rig.fc.posts]
    assert any(t.startswith("Synken är klar.") for t in texts)
    await rig.post(message(rig.fc, "status", **SV))
    status = card_texts(rig.fc.cards("POST")[-1])
    assert "Status för Entra Sync" in status and "Senaste synk" in status


async def test_a_decision_from_a_swedish_client_answers_with_a_swedish_decided_card(
    rig: Rig,
) -> None:
    await install(rig)
    await rig.post(message(rig.fc, "sync now"))
    accept = next(a for c in rig.fc.cards("POST") for a in executes(c) if a["verb"] == "accept")
    status, body = await rig.post(invoke(rig.fc, "accept", accept["data"], **SV))
    assert status == 200
    text = card_texts(body["value"])
    assert "Godkänd" in text and "av Ann Admin" in text
    assert "{{TIME(" in text  # the viewer's own time zone


async def test_the_client_info_locale_is_enough(rig: Rig) -> None:
    entities = [{"type": "clientInfo", "locale": "sv-SE", "country": "SE"}]
    await rig.post(message(rig.fc, "help", entities=entities))
    assert "Kommandon i Entra Sync" in card_texts(rig.fc.cards("POST")[-1])


async def test_an_english_client_gets_english(rig: Rig) -> None:
    await rig.post(message(rig.fc, "help", locale="en-US"))
    assert "Entra Sync commands" in card_texts(rig.fc.cards("POST")[-1])
