"""`entra-sync audit export` carries what the audit card shows: the names (subject), the
action in words (what) and only the changed fields (changes), formula-neutralised."""

from __future__ import annotations

import csv
import io

import pytest

from sync.models import Kind
from sync.service.runner import export_audit
from tests.integration.test_audit_export import World, db, world

pytestmark = pytest.mark.redis
__all__ = ["db", "world"]


async def test_the_csv_export_has_the_names_the_words_and_only_the_changes(world: World) -> None:
    await world.decide(Kind.UPDATE, "apply")
    await world.service.store.audit_log.audit(
        "a1",
        "Ann",
        "apply update",
        tenant="contoso",
        subject="=HYPERLINK(1)",
        before={"display_name": "Old"},
        after={"display_name": "=cmd|' /C calc'!A0"},
    )
    rows = list(
        csv.DictReader(
            io.StringIO(await export_audit(str(world.config_path), "csv", env=world.env))
        )
    )
    applied, forged = rows[-2], rows[-1]
    assert (applied["subject"], applied["what"]) == (
        "Carl Dahl \u2192 C. Dahl (old)",
        "Applied update",
    )
    assert applied["changes"] == (
        "display_name: C. Dahl (old) -> Carl Dahl; email:  -> carl@contoso.se"
    )
    assert forged["subject"] == "'=HYPERLINK(1)"
    assert forged["changes"] == "display_name: Old -> =cmd|' /C calc'!A0"
