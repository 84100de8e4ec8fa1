"""Phone numbers normalised to E.164 with `phonenumbers` and a default region."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


@lru_cache(maxsize=262_144)
def normalize(raw: str, region: str = "SE") -> str | None:
    """E.164 form of ``raw`` ("070-123 45 67" in SE -> "+46701234567"), or None when it is not
    a possible number. Idempotent: normalising an E.164 result gives it back."""
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
