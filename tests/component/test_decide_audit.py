"""The audit trail as an admin reads it: one entry per decision, the people's names, the
action in words, only the fields that changed, no ids (the real service, the real route)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import fakeredis

from sync.models import Kind
from sync.service.service import Actor, SyncService
from sync.state.audit import changed_fields, describe_action
from sync.state.keys import Keys
from tests.component.real_rig import every_kind_world, make_service, real_bot, write_world
from tests.component.test_bot_flow import activity, card_texts, message

ANN = Actor("aad-admin", "Ann Admin")


async def started(tmp: Path) -> SyncService:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp, tenant, directory)
    s = make_service(tmp, cfg, redis=fakeredis.FakeAsyncRedis(), keys=Keys("t:audit:"))
    await s.start(scheduler=False)
    await s.run_sync(actor=ANN)
    return s


async def decide(s: SyncService, kind: Kind, verb: str, **inputs: str) -> None:
    item = next(i for i in await s.pending() if i.kind is kind)
    d = await s.decide(item.id, verb, actor=ANN, digest=item.digest, inputs=inputs)
    assert d.outcome == "done", d.message


async def test_one_ignore_writes_one_audit_entry(tmp_path: Path) -> None:
    s = await started(tmp_path)
    try:
        before = len(await s.store.audit_log.export_audit())
        await decide(s, Kind.NEW, "ignore")
        (entry,) = (await s.store.audit_log.export_audit())[before:]
        assert (entry.action, entry.what, entry.subject) == ("ignore new", "Ignored", "Dora Ek")
    finally:
        await s.stop()


async def test_the_audit_card_shows_names_words_and_only_what_changed(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    s = await started(tmp_path)
    try:
        await decide(s, Kind.UPDATE, "apply")
        await decide(s, Kind.REMOVAL, "remove_sync")
        await decide(s, Kind.MATCH, "ignore")
        async with real_bot(aiohttp_client, s) as rig:
            await rig.post(activity("installationUpdate", rig.fc, action="add"))
            await rig.post(message(rig.fc, "audit"))
            text = card_texts(rig.fc.cards("POST")[-1]).replace("\\", "")  # Markdown escapes
        assert "Applied update" in text and "Removed sync" in text and "Ignored" in text
        assert "Carl Dahl" in text and "Anna Berg" in text and "Gus Gone" in text
        assert "Display name: C. Dahl (old) \u2192 Carl Dahl" in text
        assert "remove_sync" not in text and "ignore_user" not in text
        assert "Last name" not in text  # unchanged fields are not listed
        assert not re.search(r"\be-[a-z]+\b|\d{13}-\d+", text)  # no Entra ids, no entry ids
    finally:
        await s.stop()


def test_actions_read_as_words() -> None:
    assert describe_action("remove_sync removal") == "Removed sync"
    assert describe_action("ignore update") == "Ignored"
    assert describe_action("delete_user_confirm removal") == "Deleted user"
    assert describe_action("failed create") == "Failed: Created user"
    assert describe_action("some_new_thing") == "some new thing"


def test_only_the_fields_that_changed_are_listed_whole() -> None:
    long = "x" * 300
    before = {"id": "2", "display_name": long + "a", "email": "c@x.se", "entra_id": None}
    after = {"id": "2", "display_name": long + "b", "email": "c@x.se", "entra_id": "e-carl"}
    assert changed_fields(before, after) == (("display_name", long + "a", long + "b"),)
    assert changed_fields(None, {"phones": ["+4670"], "tags": []}) == (("phones", "", "+4670"),)
    assert changed_fields({"state": "pending"}, {"state": "ignored"}) == (
        ("state", "pending", "ignored"),
    )
