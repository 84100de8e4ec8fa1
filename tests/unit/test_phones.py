"""The fast path of ``sync.plan.phones.normalize`` agrees with ``phonenumbers.parse`` everywhere."""

from __future__ import annotations

import random

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonenumberutil import SUPPORTED_REGIONS

from sync.devtools.bench import _number
from sync.plan.phones import _fast, _may_start_with, normalize, slow_normalize

REGIONS = ("SE", "NO", "DK", "FI", "DE", "GB", "US", "IT", "AR", "MX", "BR", "RU", "FR", "IN")
ALL_REGIONS = sorted(SUPPORTED_REGIONS)
# regions sharing a country code with another main region, and ones with unusual prefix rules
ODD_REGIONS = ("KZ", "CA", "GG", "JE", "IM", "AX", "SJ", "VA", "SM", "RE", "YT", "BS", "AG", "AU")
EXAMPLE_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.UAN,
)
EXAMPLE_FORMATS = (
    PhoneNumberFormat.NATIONAL,
    PhoneNumberFormat.INTERNATIONAL,
    PhoneNumberFormat.E164,
)


def _reference(raw: str, region: str) -> str | None:
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    return slow_normalize(text, region)


def _fast_disagreements(raws: list[str], region: str) -> list[tuple[str, str | None, str | None]]:
    """(raw, fast answer, reference) for every raw number the fast path answers differently
    from phonenumbers ("" from the fast path means "not mine" and is never a disagreement)."""
    out = []
    for raw in raws:
        text = raw.strip()
        if text.startswith("00"):
            text = "+" + text[2:]
        fast = _fast(text, region) if text else ""
        if fast != "" and fast != _reference(raw, region):
            out.append((raw, fast, _reference(raw, region)))
    return out


def _candidates(region: str, rng: random.Random) -> list[str]:
    """Numbers of every length 1..18 behind every kind of lead a region's parse rules care
    about (none, national prefixes, 0/00, its own country code and IDD prefix), as digits,
    with "+" and the country code, and with an area code in parentheses; plus phonenumbers'
    own example numbers in national, international and E.164 format."""
    md = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert md is not None
    cc = str(md.country_code)
    leads = ["", "0", "00", "000", "1", "8", "06", cc, "0" + cc, md.international_prefix or ""]
    out = []
    for length in range(1, 19):
        for lead in leads:
            d = lead + "".join(rng.choice("0123456789") for _ in range(length))
            out += [d, f"+{cc} {d}", f"+{cc}{d}", f"({d[:3]}) {d[3:]}", f"+{cc} ({d[:2]}) {d[2:]}"]
    for kind in EXAMPLE_TYPES:
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            out += [phonenumbers.format_number(example, f) for f in EXAMPLE_FORMATS]
    return out


@st.composite
def simple_numbers(draw: st.DrawFn) -> str:
    lead = draw(
        st.sampled_from(["", "+", "00", "0", "+46", "+1", "+39 0", "+54 9", "(", "+7 ", "+44 (0)"])
    )
    groups = draw(st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=1, max_size=5))
    seps = draw(
        st.lists(st.sampled_from([" ", "-", "", "  ", "(", ")", ") "]), min_size=4, max_size=4)
    )
    out = lead
    for i, g in enumerate(groups):
        out += g + (seps[i] if i < len(groups) - 1 else "")
    return out


@settings(max_examples=3000, deadline=None)
@given(simple_numbers(), st.sampled_from(REGIONS))
def test_normalize_fast_path_agrees_with_phonenumbers(raw: str, region: str) -> None:
    assert normalize(raw, region) == _reference(raw, region)


@settings(max_examples=1000, deadline=None)
@given(simple_numbers(), st.sampled_from(ALL_REGIONS + list(ODD_REGIONS) * 10))
def test_normalize_fast_path_agrees_with_phonenumbers_in_every_region(
    raw: str, region: str
) -> None:
    assert normalize(raw, region) == _reference(raw, region)


def test_fast_path_agrees_with_phonenumbers_for_every_region_lead_and_length() -> None:
    rng = random.Random(11)
    for region in ALL_REGIONS:
        assert _fast_disagreements(_candidates(region, rng), region) == []


def test_fast_path_agrees_with_phonenumbers_for_every_country_code_and_length() -> None:
    rng = random.Random(13)
    raws = []
    for first3 in range(100, 1000):  # 1-, 2- and 3-digit codes, known or not, non-geographic
        for length in range(1, 18):
            rest = "".join(rng.choice("0123456789") for _ in range(length))
            raws += [f"+{first3}{rest}", f"+{first3}0{rest}", f"00{first3} {rest}"]
    assert _fast_disagreements(raws, "SE") == []
    assert _fast_disagreements(raws[::7], "US") == []


def test_fast_path_agrees_with_phonenumbers_for_unknown_and_lowercase_regions() -> None:
    rng = random.Random(17)
    raws = []
    for first3 in range(100, 1000, 7):
        rest = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 15)))
        raws += [f"+{first3}{rest}", f"+{first3} 0{rest}", f"0{rest}", f"{first3}{rest}"]
    for region in ("ZZ", "se", "001", "XX"):
        assert _fast_disagreements(raws, region) == []


def test_normalize_tests_the_length_against_the_main_region_of_a_shared_country_code() -> None:
    # KZ shares +7 with RU; is_possible_number uses RU's lengths, which 5 digits are not
    assert normalize("14804", "KZ") == _reference("14804", "KZ") is None
    assert normalize("+7 14804", "SE") is None


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
    assert _fast("+1 (415) 555-0134", "SE") == "+14155550134"
    assert _fast("+46 (0)70 123 45 67", "SE") == "+46701234567"
    assert _reference("+46 (0)70 123 45 67", "SE") == "+46701234567"


def test_normalize_fast_path_takes_every_number_the_bench_generates() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        e164, shown = _number(rng)
        text = "+" + shown[2:] if shown.startswith("00") else shown
        assert _fast(text, "SE") == e164


def test_normalize_fast_path_answers_none_for_numbers_of_impossible_length() -> None:
    for raw in ("+46 70 12", "+46 70 123 45 67 89 01 23", "0701", "+1 415 555 01", "+46 0 1"):
        assert _fast(raw, "SE") is None
        assert _reference(raw, "SE") is None


def test_normalize_leaves_unusual_shapes_to_phonenumbers() -> None:
    assert _fast("070 123 45 67 ext 12", "SE") == ""
    assert _fast("+46.70.123.45.67", "SE") == ""
    assert _fast("+800 1234 5678", "SE") == ""  # non-geographic code
    assert _fast("+39 06 1234 5678", "SE") == ""  # Italian leading zero
    assert normalize("070 123 45 67 ext 12", "SE") == _reference("070 123 45 67 ext 12", "SE")
    assert normalize("+39 06 1234 5678", "SE") == "+390612345678"


GENERAL_PATTERNS = sorted(
    {
        md.general_desc.national_number_pattern
        for md in (phonenumbers.PhoneMetadata.metadata_for_region(r) for r in ALL_REGIONS)
        if md is not None
        and md.general_desc is not None
        and md.general_desc.national_number_pattern
    }
)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_may_start_with_never_denies_a_first_digit_a_region_pattern_matches(
    data: st.DataObject,
) -> None:
    pattern = data.draw(st.sampled_from(GENERAL_PATTERNS))
    number = data.draw(st.from_regex(pattern, fullmatch=True))
    assert _may_start_with(pattern, number[0])


def test_may_start_with_reads_only_what_it_can_prove() -> None:
    assert not _may_start_with(r"(?:[26]\d\d|9)\d{9}|[1-9]\d{8}", "0")
    assert _may_start_with(r"(?:[26]\d\d|9)\d{9}|[1-9]\d{8}", "2")
    assert _may_start_with(r"0?[1-9]\d", "0")  # optional first item
    assert _may_start_with(r"(?:1|)\d", "0")  # empty alternative
    assert _may_start_with(r"[^1]\d", "0")
    assert _may_start_with(r"\d{2}", "0")
    assert not _may_start_with(r"(?:[1-9]\d){2,}", "0")
