"""Phone numbers normalised to E.164 with `phonenumbers` and a default region.

``phonenumbers.parse`` costs ~50 µs a number (most of it generic extraction: extensions,
alpha characters, IDD prefixes, phone-context), which is seconds for a 100,000-user tenant. The
common shapes, ``+46 70 123 45 67`` / ``+46701234567`` / ``070-123 45 67`` / ``+1 (415)
555-0134`` (digits, spaces, hyphens, parentheses, one leading plus), take a fast path that runs
the same steps ``parse`` runs for them (country code extraction, the region's national-prefix
stripping, the possible-length tests) and skips the rest. What those steps read of a region's
metadata is precomputed once per region (``_plan``) and per first three digits after a plus
(``_country_code``) from phonenumbers' own metadata and helpers: length tables, plain-digit
national prefixes, whether a number starting with the prefix can match the region's pattern at
all. Anything else, and every case the fast path is not sure about (regex prefix rules where
they match, Italian-style leading zeros, non-geographic codes, ...), goes to
``phonenumbers.parse`` or its helpers. ``tests/unit/test_phones.py`` checks that both give the
same answer, for every region phonenumbers knows.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import phonenumberutil as _pnu

_MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
_MAX_INPUT = 64  # normalize's longest input
_strip_prefix: Any = getattr(_pnu, "_maybe_strip_national_prefix_carrier_code", None)
_test_length: Any = getattr(_pnu, "_test_number_length", None)
_VR: Any = getattr(_pnu, "ValidationResult", None)
_KEEP = (
    frozenset({_VR.TOO_SHORT, _VR.IS_POSSIBLE_LOCAL_ONLY, _VR.INVALID_LENGTH})
    if _VR is not None
    else frozenset()
)
_POSSIBLE = (
    frozenset({_VR.IS_POSSIBLE, _VR.IS_POSSIBLE_LOCAL_ONLY}) if _VR is not None else frozenset()
)


@lru_cache(maxsize=512)
def _metadata(region: str) -> Any:
    return phonenumbers.PhoneMetadata.metadata_for_region(region, None)


def _may_start_with(pattern: str, char: str) -> bool:
    """False only when no string ``pattern`` matches can start with ``char`` (conservative: True
    for anything this reading of the parsed pattern does not follow)."""
    try:
        parser: Any = importlib.import_module("re._parser")
        names: Any = importlib.import_module("re._constants")
        items = parser.parse(pattern)
    except Exception:  # no parser, no proof
        return True
    code = ord(char)

    def starts(seq: Any) -> bool:
        # False means: the first item of seq always consumes a character, never ``char``
        if not len(seq):
            return True
        op, av = seq[0]
        if op is names.LITERAL:
            return bool(av == code)
        if op is names.IN:
            for in_op, in_av in av:
                if in_op is names.LITERAL and in_av != code:
                    continue
                if in_op is names.RANGE and not in_av[0] <= code <= in_av[1]:
                    continue
                return True  # matches it, or NEGATE/CATEGORY/anything else: assume it may
            return False
        if op is names.BRANCH:
            return any(starts(alt) for alt in av[1])
        if op is names.SUBPATTERN:
            return starts(av[-1])
        if op in (names.MAX_REPEAT, names.MIN_REPEAT) and av[0] >= 1:
            return starts(av[2])
        return True

    return starts(items)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the fast path needs of one region's metadata, precomputed once.

    ``keep`` / ``possible``: the lengths of a national number for which phonenumbers'
    ``_test_number_length`` gives a result in ``_KEEP`` (with this region's metadata, as parse
    does) / in ``_POSSIBLE`` (with the country code's main region, as is_possible_number does;
    2..17 digits only). That test reads nothing of the number but its length.
    ``literal``: the national prefix for parsing when it is plain digits and there is no
    transform rule; then phonenumbers' prefix step is "strip it unless the number matched
    ``general`` before and does not after" (``general`` is None when no number starting with
    the prefix can match it, or there is no pattern: then it is always stripped). Otherwise
    ``pattern`` (the compiled prefix for parsing, None when the region has none) tells whether
    phonenumbers' own helper has anything to do: when it does not match, the helper returns the
    number unchanged. ``lead``: national numbers starting with one of these need the prefix step
    or are Italian-style ("0"); others are final as they are. ``blocked``: (IDD prefix, country
    code) -- national-format input starting with either is left to phonenumbers -- or None when
    the IDD prefix is not plain digits (no fast path for national input then)."""

    md: Any
    cc: str
    blocked: tuple[str, str] | None
    literal: str | None
    pattern: re.Pattern[str] | None
    general: re.Pattern[str] | None
    lead: tuple[str, ...]
    keep: frozenset[int]
    possible: frozenset[int]


@lru_cache(maxsize=1024)
def _plan(region: str) -> _Plan | None:
    md = _metadata(region)
    if md is None or md.country_code is None or None in (_strip_prefix, _test_length, _VR):
        return None  # no metadata, or phonenumbers' helpers moved: no fast path
    cc = str(md.country_code)
    idd = md.international_prefix or ""
    npfp = md.national_prefix_for_parsing or ""
    rule = md.national_prefix_transform_rule or ""
    literal = npfp if npfp and _plain(npfp) and not rule else None
    gd = md.general_desc.national_number_pattern if md.general_desc is not None else None
    if literal is not None and gd and not _may_start_with(gd, literal[0]):
        gd = None  # a number starting with the prefix never matches: always stripped
    # is_possible_number tests the length against the country code's main region (RU for KZ)
    main_region = phonenumbers.region_code_for_country_code(md.country_code)
    main = _metadata(main_region) if main_region == region else None
    if main is None:
        main = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            md.country_code, main_region
        )
        if main is None:
            return None
    results = [(n, _test_length("5" * n, md)) for n in range(_MAX_INPUT + 1)]
    main_results = [(n, _test_length("5" * n, main)) for n in range(_MAX_INPUT + 1)]
    return _Plan(
        md=md,
        cc=cc,
        blocked=(idd, cc) if idd and _plain(idd) else None,
        literal=literal,
        pattern=re.compile(npfp) if npfp and literal is None else None,
        general=re.compile(gd) if gd else None,
        lead=("0", literal) if literal is not None else ("",) if npfp else ("0",),
        keep=frozenset(n for n, r in results if r in _KEEP),
        possible=frozenset(n for n, r in main_results if r in _POSSIBLE and 2 <= n <= _MAX_NSN),
    )


def _plain(text: str) -> bool:
    return text.isdigit() and text.isascii()


@lru_cache(maxsize=1024)
def _country_code(first3: str) -> tuple[int, _Plan] | None:
    """(length of the country code, plan of its main region) for the first three digits after a
    "+", as phonenumbers reads them; None when that is no code with a geographic main region."""
    if first3[0] == "0":
        return None
    for n in (1, 2, 3):
        cc = int(first3[:n])
        if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    number_region = phonenumbers.region_code_for_country_code(cc)
    if number_region in ("ZZ", "001"):
        return None
    plan = _plan(number_region)
    if plan is None or plan.cc != first3[:n]:
        return None
    return n, plan


def _fast(text: str, region: str) -> str | None:
    """E.164 for the simple shapes, None when such a number is not a possible number, or ""
    when the fast path does not apply.

    A national number is the number parse would make of the input -- nothing of the input but its
    digits matters for these shapes -- and its E.164 form is "+", the country code and it; parse
    fails for one under 2 or over 17 digits, and is_possible_number tests nothing but its length
    against the main region of the country code."""
    plus = text[0] == "+"
    digits = (text[1:] if plus else text).replace(" ", "").replace("-", "")
    if not digits.isdigit():  # parentheses are rarer: removed only when needed
        digits = digits.replace("(", "").replace(")", "")
        if not digits.isdigit():
            return ""
    if not digits.isascii() or not 4 <= len(digits) <= _MAX_NSN + 3:
        return ""
    if plus:
        entry = _country_code(digits[:3])
        if entry is None:
            return ""
        n, plan = entry
        if not digits.startswith(plan.lead, n):
            # no national prefix, no leading zero: the national number is what follows the code
            return "+" + digits if len(digits) - n in plan.possible else None
        if len(digits) - n < 2:
            return None  # parse: too short after the country code
        national = digits[n:]
    else:
        found = _plan(region)
        if found is None or found.blocked is None or digits.startswith(found.blocked):
            return ""  # parse's country-code-without-plus and IDD rules apply: not here
        plan = found
        national = digits
    # parse's national-prefix step: strip when the stripped number still has a usable length
    literal = plan.literal
    if literal is not None:
        if national.startswith(literal):
            stripped = national[len(literal) :]
            general = plan.general
            if (
                general is None
                or not general.fullmatch(national)
                or general.fullmatch(stripped) is not None
            ) and len(stripped) not in plan.keep:
                national = stripped
    elif plan.pattern is not None and plan.pattern.match(national):
        _carrier, potential, _stripped = _strip_prefix(national, plan.md)
        if len(potential) not in plan.keep:
            national = potential
    if len(national) not in plan.possible:
        return None  # parse fails (under 2 or over 17 digits) or is_possible_number says no
    if national[0] == "0":
        return ""  # an Italian-style leading zero: phonenumbers decides
    return "+" + plan.cc + national


@lru_cache(maxsize=262_144)
def normalize(raw: str, region: str = "SE") -> str | None:
    """E.164 form of ``raw`` ("070-123 45 67" in SE -> "+46701234567"), or None when it is not
    a possible number. Idempotent: normalising an E.164 result gives it back."""
    text = raw.strip()
    if not 0 < len(text) <= 64:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    fast = _fast(text, region)
    return slow_normalize(text, region) if fast == "" else fast


def slow_normalize(text: str, region: str) -> str | None:
    """``normalize`` through ``phonenumbers.parse`` only (the reference for the fast path)."""
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
