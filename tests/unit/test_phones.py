"""``sync.plan.phones.normalize``: E.164 with a default region, None for what is no number."""

from __future__ import annotations

import random

import pytest

from sync.devtools.bench import _number
from sync.plan.phones import normalize


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+46 70 123 45 67", "+46701234567"),
        ("070-123 45 67", "+46701234567"),
        ("  +46701234567 ", "+46701234567"),
        ("0046 70 123 45 67", "+46701234567"),  # "00" is the international prefix
        ("+46 (0)70 123 45 67", "+46701234567"),  # the national prefix in parentheses
        ("+46.70.123.45.67", "+46701234567"),
        ("070 123 45 67 ext 12", "+46701234567"),  # the extension is not part of E.164
        ("+1 415 555 0134", "+14155550134"),
        ("+1 (415) 555-0134", "+14155550134"),
        ("+800 1234 5678", "+80012345678"),  # a non-geographic code
        ("+39 06 1234 5678", "+390612345678"),  # Italy keeps its leading zero
    ],
)
def test_normalize_writes_common_shapes_as_e164(raw: str, e164: str) -> None:
    assert normalize(raw, "SE") == e164


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "x", "+46 70 12", "+46 70 123 45 67 89 01 23", "0701", "+1 415 555 01", "+46 0 1"],
)
def test_normalize_answers_none_for_text_that_is_no_possible_number(raw: str) -> None:
    assert normalize(raw, "SE") is None


def test_normalize_answers_none_for_text_longer_than_any_number() -> None:
    assert normalize("+46701234567" + " " * 60, "SE") == "+46701234567"  # stripped first
    assert normalize("1" * 65, "SE") is None


def test_normalize_reads_national_numbers_in_the_default_region() -> None:
    assert normalize("070-123 45 67", "SE") == "+46701234567"
    assert normalize("070 123 45 67 ext 12", "KZ") == "+70701234567"
    assert normalize("(415) 555-0134", "US") == "+14155550134"


def test_normalize_tests_the_length_against_the_main_region_of_a_shared_country_code() -> None:
    # KZ shares +7 with RU; is_possible_number uses RU's lengths, which 5 digits are not
    assert normalize("14804", "KZ") is None
    assert normalize("+7 14804", "SE") is None


def test_normalize_gives_the_bench_numbers_their_e164_form_in_any_region() -> None:
    rng = random.Random(7)
    for _ in range(500):
        e164, shown = _number(rng)
        assert normalize(shown, "SE") == e164
        for region in ("SE", "NO", "US"):
            assert normalize(e164, region) == e164


def test_a_plan_after_read_numbers_parses_no_number_of_entra_again() -> None:
    """A full read calls ``read_numbers`` on each page so the plan finds every Entra number
    already parsed: the plan must ask ``normalize`` exactly what ``read_numbers`` asked."""
    from sync.config import config_from_dict
    from sync.models import EntraSnapshot, StateView, parse_entra_user
    from sync.plan.planner import plan, read_numbers

    users = [
        parse_entra_user(
            {
                "id": f"e-{i}",
                "accountEnabled": True,
                "displayName": f"User {i}",
                "mobilePhone": f"070-{i:03d} 45 67",
                "businessPhones": [f"+46 8 {i:03d} 00 00", f"0046 31 {i:03d} 1"],
            }
        )
        for i in range(50)
    ]
    config = config_from_dict({}, source="test")
    normalize.cache_clear()
    read_numbers(users, config.matching.default_region)
    read = normalize.cache_info()
    assert read.misses == 150
    plan(EntraSnapshot(users), [], StateView(), config)
    assert normalize.cache_info().misses == read.misses
    assert normalize.cache_info().hits >= read.hits + 150
