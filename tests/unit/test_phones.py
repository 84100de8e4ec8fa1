"""The fast path of ``sync.phones.normalize`` agrees with ``phonenumbers.parse`` everywhere."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.bench import _number
from sync.phones import _fast, normalize, slow_normalize

REGIONS = ("SE", "NO", "DK", "FI", "DE", "GB", "US", "IT", "AR", "MX", "BR", "RU", "FR", "IN")


def _reference(raw: str, region: str) -> str | None:
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    return slow_normalize(text, region)


@st.composite
def simple_numbers(draw: st.DrawFn) -> str:
    lead = draw(st.sampled_from(["", "+", "00", "0", "+46", "+1", "+39 0", "+54 9"]))
    groups = draw(st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=1, max_size=5))
    seps = draw(st.lists(st.sampled_from([" ", "-", "", "  "]), min_size=4, max_size=4))
    out = lead
    for i, g in enumerate(groups):
        out += g + (seps[i] if i < len(groups) - 1 else "")
    return out


@settings(max_examples=3000, deadline=None)
@given(simple_numbers(), st.sampled_from(REGIONS))
def test_normalize_fast_path_agrees_with_phonenumbers(raw: str, region: str) -> None:
    assert normalize(raw, region) == _reference(raw, region)


def test_normalize_fast_path_agrees_on_generated_swedish_and_international_numbers() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        e164, shown = _number(rng)
        for region in ("SE", "NO", "US"):
            assert normalize(shown, region) == _reference(shown, region)
            assert normalize(e164, region) == _reference(e164, region) == e164


def test_normalize_fast_path_takes_the_common_shapes() -> None:
    assert _fast("+46 70 123 45 67", "SE") == "+46701234567"
    assert _fast("070-123 45 67", "SE") == "+46701234567"
    assert _fast("+1 415 555 0134", "SE") == "+14155550134"


def test_normalize_leaves_unusual_shapes_to_phonenumbers() -> None:
    assert _fast("+46 (0)70 123 45 67", "SE") == ""
    assert _fast("070 123 45 67 ext 12", "SE") == ""
    assert normalize("+46 (0)70 123 45 67", "SE") == _reference("+46 (0)70 123 45 67", "SE")
