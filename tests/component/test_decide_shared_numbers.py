"""After an admin chose the owner of a shared number, the loser's proposals never carry it
(the service end to end: simulated tenant, built-in directory, fakeredis)."""

from __future__ import annotations

from pathlib import Path

from sync.models import Kind
from tests.component.test_service import ADA, Clock, dir_user, entra, make_service, write_world

SHARED = "+46855500099"


async def test_after_the_owner_is_chosen_the_loser_is_created_without_the_shared_number(
    tmp_path: Path,
) -> None:
    clock = Clock()
    write_world(
        tmp_path,
        [
            entra("e-a", "Ann", "One", "070-444 44 44", businessPhones=["08-555 000 99"]),
            entra("e-b", "Ben", "Two", None, businessPhones=["+46 8 555 000 99"]),
        ],
        [dir_user("9", "Reception", "Desk", SHARED)],
    )
    s = await make_service(tmp_path, clock)
    try:
        (run,) = await s.run_sync(actor=ADA)
        (conflict,) = [i for i in run.new_items if i.kind is Kind.CONFLICT]
        picked = await s.decide(
            conflict.id, "pick_owner", actor=ADA, digest=conflict.digest, inputs={"owner": "e-b"}
        )
        assert picked.outcome == "done"
        (new,) = await s.pending(Kind.NEW)
        assert new.proposal.entra_id == "e-a"
        assert new.proposal.changes["phones"].new == ("+46704444444",)
        created = await s.decide(new.id, "create", actor=ADA, digest=new.digest, inputs={})
        assert created.outcome == "done"  # not "stale": the check agrees with the planner
        users = await s.directories["main"].list_users()
        (ann,) = [u for u in users if u.entra_id == "e-a"]
        assert SHARED not in ann.phones
        (again,) = await s.run_sync(actor=ADA)
        assert [i for i in again.new_items if i.proposal.entra_id == "e-a"] == []
    finally:
        await s.stop()
