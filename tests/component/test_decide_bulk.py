"""Accept all / Apply all through the real route and the REAL SyncService: the list is shown
and confirmed above BULK_CONFIRM_ABOVE items, items that need an individual look (the shared
"Reception" entry of the issue) are left out, and a forged confirmation does nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fakeredis

from sync.models import Kind
from sync.service.decisions import BULK_CONFIRM_ABOVE
from sync.service.service import Actor, SyncService
from sync.state.keys import Keys
from tests.component.real_rig import dir_user, entra_user, make_service, real_bot, write_world
from tests.component.test_bot_flow import Rig, card_texts, executes, invoke

ADA = Actor("aad-admin", "Ann Admin")
SHARED = "+46855500099"
PEOPLE = [
    ("anna", "Anna", "Berg"),
    ("bo", "Bo", "Ek"),
    ("cia", "Cia", "Falk"),
    ("dan", "Dan", "Gran"),
]


def reception_world(tmp: Path, people: int) -> dict[str, Any]:
    """``people`` ordinary matches (their directory names are out of date), and the issue's
    case: Frida and Gustav share the reception's number, held by the directory's "Reception"."""
    tenant = [entra_user(k, g, s, f"+4670100000{i}") for i, (k, g, s) in enumerate(PEOPLE[:people])]
    tenant += [
        entra_user("frida", "Frida", "Holm", None, businessPhones=["08-555 000 99"]),
        entra_user("gustav", "Gustav", "Holm", None, businessPhones=["+46 8 555 000 99"]),
    ]
    directory = [
        dir_user(str(i + 1), g, s, f"+4670100000{i}", display=f"{g} {s} (old)")
        for i, (_k, g, s) in enumerate(PEOPLE[:people])
    ]
    directory.append(
        dir_user("9", "Reception", "", SHARED, email="reception@contoso.se", display="Reception")
    )
    return write_world(tmp, tenant, directory)


async def started(tmp: Path, people: int) -> SyncService:
    s = make_service(
        tmp, reception_world(tmp, people), redis=fakeredis.FakeAsyncRedis(), keys=Keys("t:bulk:")
    )
    await s.start(scheduler=False)
    (run,) = await s.run_sync(actor=ADA)
    (conflict,) = [i for i in run.new_items if i.kind is Kind.CONFLICT]
    picked = await s.decide(
        conflict.id, "pick_owner", actor=ADA, digest=conflict.digest, inputs={"owner": "e-gustav"}
    )
    assert picked.outcome == "done"
    return s


async def accept_all_button(rig: Rig) -> dict[str, Any]:
    """The data of the pending digest's Accept all button (``pid`` "pending", signed)."""
    return {"pid": "pending", "d": await rig.service.digest("pending")}


async def reception(s: SyncService) -> Any:
    return await s.directories["main"].get("9")


async def test_accept_all_leaves_out_the_shared_reception_entry(tmp_path: Path) -> None:
    s = await started(tmp_path, people=2)
    try:
        bulk = await s.bulk_set(Kind.MATCH)
        assert sorted(i.proposal.entra_id or "" for i in bulk.included) == ["e-anna", "e-bo"]
        ((left, why),) = bulk.left_out
        assert left.proposal.entra_id == "e-gustav" and "shared number" in why
    finally:
        await s.stop()


async def test_accept_all_of_a_few_matches_is_done_at_once_and_lists_them(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    s = await started(tmp_path, people=2)
    try:
        async with real_bot(aiohttp_client, s) as rig:
            data = await accept_all_button(rig)
            status, body = await rig.post(invoke(rig.fc, "accept_all", data))
            assert status == 200
            text = card_texts(body["value"])
            assert "2 matches accepted" in text and "Anna Berg" in text and "Bo Ek" in text
            assert "Left out for an individual look (1)" in text and "Gustav Holm" in text
        assert [i.proposal.entra_id for i in await s.pending(Kind.MATCH)] == ["e-gustav"]
        assert (await reception(s)).display_name == "Reception"
    finally:
        await s.stop()


async def test_accept_all_above_the_threshold_asks_to_confirm_the_list_first(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    s = await started(tmp_path, people=BULK_CONFIRM_ABOVE + 1)
    try:
        async with real_bot(aiohttp_client, s) as rig:
            data = await accept_all_button(rig)
            _, body = await rig.post(invoke(rig.fc, "accept_all", data))
            confirm = body["value"]
            text = card_texts(confirm)
            assert "Accept these 4 matches?" in text
            assert all(f"{g} {n}" in text for _k, g, n in PEOPLE)
            assert "Reception" in text and "shared number" in text
            assert len(await s.pending(Kind.MATCH)) == 5  # nothing done yet
            (yes,) = [a for a in executes(confirm) if a["verb"] == "bulk_confirm"]
            _, body = await rig.post(invoke(rig.fc, "bulk_confirm", yes["data"]))
            assert "4 matches accepted by Ann Admin" in card_texts(body["value"])
        assert [i.proposal.entra_id for i in await s.pending(Kind.MATCH)] == ["e-gustav"]
        assert (await reception(s)).email == "reception@contoso.se"
    finally:
        await s.stop()


async def test_a_forged_bulk_confirmation_does_nothing(aiohttp_client: Any, tmp_path: Path) -> None:
    s = await started(tmp_path, people=BULK_CONFIRM_ABOVE + 1)
    try:
        async with real_bot(aiohttp_client, s) as rig:
            forged = {"pid": "bulk:match", "d": "0" * 24}
            _, body = await rig.post(invoke(rig.fc, "bulk_confirm", forged))
            assert "Nothing was done" in card_texts(body["value"])
            # a genuine digest of another pid (the pending card's) is no confirmation either
            data = await accept_all_button(rig)
            _, body = await rig.post(invoke(rig.fc, "bulk_confirm", {**data, "pid": "bulk:match"}))
            assert "Nothing was done" in card_texts(body["value"])
        assert len(await s.pending(Kind.MATCH)) == 5
    finally:
        await s.stop()


async def test_a_bulk_confirmation_is_refused_when_the_list_changed_since(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    s = await started(tmp_path, people=BULK_CONFIRM_ABOVE + 1)
    try:
        async with real_bot(aiohttp_client, s) as rig:
            data = await accept_all_button(rig)
            _, body = await rig.post(invoke(rig.fc, "accept_all", data))
            (yes,) = [a for a in executes(body["value"]) if a["verb"] == "bulk_confirm"]
            first = (await s.bulk_set(Kind.MATCH)).included[0]
            await s.decide(first.id, "ignore", actor=ADA, digest=first.digest, inputs={})
            _, body = await rig.post(invoke(rig.fc, "bulk_confirm", yes["data"]))
            assert "Nothing was done" in card_texts(body["value"])
        assert len(await s.pending(Kind.MATCH)) == 4
    finally:
        await s.stop()
