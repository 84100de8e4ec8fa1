"""Phone numbers normalised to E.164 with `phonenumbers` and a default region."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

MAX_INPUT_LEN = 64  # longer text is no phone number


# Cached: a tenant's numbers are planned again every run (each one ~50 µs to parse), and
# most directory numbers are already E.164. 262,144 entries hold a 100,000-user tenant.
@lru_cache(maxsize=262_144)
def normalize(raw: str, region: str = "SE") -> str | None:
    """E.164 form of ``raw`` ("070-123 45 67" in SE -> "+46701234567"), or None when it is not
    a possible number: ``phonenumbers.parse`` with ``region`` for national numbers, a leading
    "00" read as "+", then ``is_possible_number``. Idempotent: normalising an E.164 result
    gives it back."""
    text = raw.strip()
    if not 0 < len(text) <= MAX_INPUT_LEN:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
