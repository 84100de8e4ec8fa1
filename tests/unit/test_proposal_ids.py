"""Proposal ids are stored in Redis and posted on cards: the orjson fast path of
``Proposal.compute_id`` must give the very bytes the json reference gave, for every input."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.models import Change, Kind, Proposal


def reference_id(p: Proposal) -> str:
    """compute_id as it was written before the fast path (json.dumps, ensure_ascii)."""
    body = json.dumps(
        [
            p.kind.value,
            p.entra_id,
            p.app_user_id,
            sorted(p.entra_ids),
            {k: v.to_dict() for k, v in sorted(p.changes.items())},
            p.number,
            p.removal_cause,
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()[:20]


# every code point, surrogates and control characters included
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None)
texts = st.text(any_char, max_size=12) | st.sampled_from(
    ["", "\x7f", "Åsa Öberg", "\u2028", "😀", "\ud800", 'a"b\\c\n\t\x00', "Łukasz"]
)
opt_texts = st.none() | texts
scalars = (
    opt_texts
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.floats(allow_nan=True, allow_infinity=True)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(texts, inner, max_size=2)
    ),
    max_leaves=6,
) | st.lists(texts, max_size=3).map(tuple)
changes = st.dictionaries(texts, st.builds(Change, values, values), max_size=4)


@st.composite
def proposals(draw: st.DrawFn) -> Proposal:
    return Proposal(
        kind=draw(st.sampled_from(list(Kind))),
        entra_id=draw(opt_texts),
        app_user_id=draw(opt_texts),
        reason=draw(texts),
        changes=draw(changes),
        entra_ids=tuple(draw(st.lists(texts, max_size=3))),
        match_key=draw(st.none() | st.sampled_from(["phone", "email"])),
        match_value=draw(opt_texts),
        number=draw(opt_texts),
        removal_cause=draw(opt_texts),
        label=draw(texts),
    )


def _id_or_error(f: Any, p: Proposal) -> str:
    try:
        return str(f(p))
    except Exception as e:  # the reference raises for some inputs: so must the fast path
        return f"error {type(e).__name__}"


@settings(max_examples=600)
@given(proposals())
def test_compute_id_equals_the_json_reference_for_any_field_values(p: Proposal) -> None:
    assert _id_or_error(Proposal.compute_id, p) == _id_or_error(reference_id, p)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.text(any_char, max_size=6),
        st.builds(
            Change,
            st.none() | st.text(any_char, max_size=20),
            st.text(any_char, max_size=20) | st.lists(st.text(any_char, max_size=8)).map(tuple),
        ),
        max_size=5,
    ),
    st.lists(st.text(any_char, max_size=8), max_size=3),
)
def test_compute_id_equals_the_reference_for_string_changes_and_entra_ids(
    ch: dict[str, Change], ids: list[str]
) -> None:
    p = Proposal(Kind.CONFLICT, None, None, "r", changes=ch, entra_ids=tuple(ids))
    assert _id_or_error(Proposal.compute_id, p) == _id_or_error(reference_id, p)


def test_compute_id_keeps_the_ids_of_the_json_implementation() -> None:
    # ids computed with the json implementation before the fast path existed
    cases = {
        "996914e28cdd10acc2b4": Proposal(Kind.MATCH, "e1", "u1", "phone matched"),
        "4dd34ccb158434ff18b5": Proposal(
            Kind.NEW,
            "d9b2eb9c",
            None,
            "new",
            changes={
                "first_name": Change(None, "Åsa"),
                "last_name": Change(None, "Öberg 😀\x7f"),
                "phones": Change(None, ("+46701234567", "+4687654321")),
            },
        ),
        "d756497b6abcb0e7be06": Proposal(
            Kind.CONFLICT, None, None, "shared", entra_ids=("b", "a"), number="+46701234567"
        ),
    }
    for want, p in cases.items():
        assert p.compute_id() == reference_id(p)
        assert p.id == want


def test_with_id_is_replace_of_the_id_with_every_other_field_kept() -> None:
    from dataclasses import fields, replace

    p = Proposal(
        kind=Kind.CONFLICT,
        entra_id="e1",
        app_user_id="d1",
        reason="why",
        changes={"mobile": Change("+46701234567", "+46701234568")},
        entra_ids=("e1", "e2"),
        match_key="phone",
        match_value="+46701234567",
        number="+46701234567",
        removal_cause="deleted",
        label="Anna",
        app_label="Anna A",
        entra_labels=("Anna", "Bo"),
    )
    # every field set to something other than its default, so a field with_id dropped shows
    for f in fields(Proposal):
        assert getattr(p, f.name) != f.default, f.name
    scoped = p.with_id("scoped-id")
    assert scoped == replace(p, id="scoped-id")
    assert scoped.id == "scoped-id" and p.id != "scoped-id"
