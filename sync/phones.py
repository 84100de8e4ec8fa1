"""Phone numbers normalised to E.164 with `phonenumbers` and a default region.

``phonenumbers.parse`` costs ~50 µs a number (most of it generic extraction: extensions,
alpha characters, IDD prefixes, phone-context), which is seconds for a 100,000-user tenant. The
common shapes, ``+46 70 123 45 67`` / ``+46701234567`` / ``070-123 45 67`` (digits, spaces,
hyphens, one leading plus), take a fast path that runs the same steps ``parse`` runs for them
(country code extraction, the region's national-prefix stripping and possible-length tests, with
phonenumbers' own helpers and metadata) and skips the rest. Anything else, and every case the
fast path is not sure about, goes to ``phonenumbers.parse``. ``tests/unit/test_phones.py``
checks that both give the same answer.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import phonenumberutil as _pnu

_SIMPLE = frozenset("0123456789 -")
_DIGITS = frozenset("0123456789")
_MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
_strip_prefix: Any = getattr(_pnu, "_maybe_strip_national_prefix_carrier_code", None)
_test_length: Any = getattr(_pnu, "_test_number_length", None)
_VR: Any = getattr(_pnu, "ValidationResult", None)
_KEEP = (
    frozenset({_VR.TOO_SHORT, _VR.IS_POSSIBLE_LOCAL_ONLY, _VR.INVALID_LENGTH})
    if _VR is not None
    else frozenset()
)
_POSSIBLE = frozenset({_VR.IS_POSSIBLE, _VR.IS_POSSIBLE_LOCAL_ONLY}) if _VR is not None else None


@lru_cache(maxsize=512)
def _metadata(region: str) -> Any:
    return phonenumbers.PhoneMetadata.metadata_for_region(region, None)


@lru_cache(maxsize=1024)
def _region_facts(region: str) -> tuple[Any, str, str] | None:
    """(metadata, country code as text, international prefix) of a region whose IDD prefix is
    plain digits, or None (then no fast path for national numbers there)."""
    md = _metadata(region)
    if md is None or md.country_code is None:
        return None
    idd = md.international_prefix or ""
    if not idd or not set(idd) <= _DIGITS:
        return None
    return md, str(md.country_code), idd


def _national(national: str, md: Any) -> str | None:
    """parse's national-prefix step: strip when the stripped number still has a usable length."""
    _carrier, potential, _stripped = _strip_prefix(national, md)
    if _test_length(potential, md) not in _KEEP:
        national = potential
    if len(national) < 2 or len(national) > _MAX_NSN or national[0] == "0":
        return None  # an error, or an Italian-style leading zero: let phonenumbers decide
    return national


def _fast(text: str, region: str) -> str | None:
    """E.164 for the simple shapes, or "" when the fast path does not apply."""
    if _POSSIBLE is None or _strip_prefix is None or _test_length is None:
        return ""
    plus = text[0] == "+"
    body = text[1:] if plus else text
    if not body or not set(body) <= _SIMPLE:
        return ""
    digits = body.replace(" ", "").replace("-", "")
    if len(digits) < 4 or len(digits) > _MAX_NSN + 3:
        return ""
    if plus:
        if digits[0] == "0":
            return ""
        for n in (1, 2, 3):
            cc = int(digits[:n])
            if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return ""
        number_region = phonenumbers.region_code_for_country_code(cc)
        if number_region in ("ZZ", "001"):
            return ""
        md = _metadata(number_region)
        if md is None:
            return ""
        rest = digits[n:]
    else:
        facts = _region_facts(region)
        if facts is None:
            return ""
        md, cc_text, idd = facts
        if digits.startswith(cc_text) or digits.startswith(idd):
            return ""  # parse's country-code-without-plus and IDD rules apply: not here
        cc = int(cc_text)
        rest = digits
    national = _national(rest, md)
    if national is None:
        return ""
    if _test_length(national, md) not in _POSSIBLE:
        return ""  # not possible: phonenumbers gives the final word
    return f"+{cc}{national}"


@lru_cache(maxsize=262_144)
def normalize(raw: str, region: str = "SE") -> str | None:
    """E.164 form of ``raw`` ("070-123 45 67" in SE -> "+46701234567"), or None when it is not
    a possible number. Idempotent: normalising an E.164 result gives it back."""
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    fast = _fast(text, region)
    if fast:
        return fast
    return slow_normalize(text, region)


def slow_normalize(text: str, region: str) -> str | None:
    """``normalize`` through ``phonenumbers.parse`` only (the reference for the fast path)."""
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
