"""The product's wording in Swedish and English: one catalogue, keyed by the English text.

Every user-visible string of the cards and of the bot's text replies is written in English in
the code and passed through a :class:`Texts` (gettext style)::

    texts = catalogue.for_locale(activity_locale, now=clock())
    texts("Accept")                      # "Godkänn" in Swedish
    texts("{n} more", n=3)               # numbers are formatted for the language
    texts.plural("{n} change", "{n} changes", n)

A string with no Swedish entry renders in English (the fallback), so wrapping a new string is
one call; its Swedish goes into :data:`cards.catalogue_sv.SWEDISH` under the same English key
(tests/unit/test_catalogue.py finds every wrapped literal and fails until it is translated).
Strings kept in tables (labels) are marked with :func:`N_` so the test finds them too.

Placeholders are ``str.format`` fields; their values are inserted as given (ints and floats
are formatted for the language first), so untrusted values are escaped by the caller before.
Times on cards are Adaptive Cards ``{{DATE()}}``/``{{TIME()}}`` functions (:meth:`Texts.when`),
which Teams renders in the viewer's own time zone and locale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from babel.dates import format_date
from babel.numbers import format_decimal

from cards.catalogue_sv import SWEDISH


class Lang(StrEnum):
    EN = "en"
    SV = "sv"


# English dates as "3 Dec 2026" (day first: unambiguous for admins in Sweden and elsewhere)
BABEL_LOCALE: Mapping[Lang, str] = {Lang.EN: "en_GB", Lang.SV: "sv_SE"}
TABLES: Mapping[Lang, Mapping[str, str]] = {Lang.EN: {}, Lang.SV: SWEDISH}


def N_(english: str) -> str:  # gettext's name: mark now, translate where shown
    """Marks a string kept in a table as catalogue text; translated where it is shown."""
    return english


def lang_of(locale: str | None) -> Lang:
    """``sv``, ``sv-SE``, ``sv_FI``... -> Swedish; anything else (or nothing) -> English."""
    if isinstance(locale, str) and locale.strip().lower().replace("_", "-").split("-")[0] == "sv":
        return Lang.SV
    return Lang.EN


def iso_utc(at: datetime) -> str:
    """``2026-12-03T08:11:00Z``: the form Adaptive Cards' DATE/TIME functions read (a naive
    datetime is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Texts:
    """The catalogue in one language, plus the server's clock reading when the card is drawn
    (``now``: only used to leave out the date of a time that is today)."""

    lang: Lang = Lang.EN
    now: datetime | None = None

    @property
    def locale(self) -> str:
        return BABEL_LOCALE[self.lang]

    def __call__(self, english: str, /, **values: object) -> str:
        """``english`` in this language (English when not translated), placeholders filled."""
        text = TABLES[self.lang].get(english, english)
        if not values:
            return text
        return text.format_map({k: self._value(v) for k, v in values.items()})

    def plural(self, one: str, other: str, n: int, /, **values: object) -> str:
        """``one`` when ``n`` is 1, else ``other`` (Swedish and English share the rule);
        ``n`` is available as ``{n}``."""
        return self(one if n == 1 else other, n=n, **values)

    def _value(self, value: object) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return self.number(value)
        return value

    def number(self, n: float) -> str:
        """``1 234`` (Swedish, with a no-break space) or ``1,234`` (English)."""
        return format_decimal(n, locale=self.locale)

    def date(self, d: date | datetime) -> str:
        """``3 dec. 2026`` (Swedish) or ``3 Dec 2026`` (English): plain text, no template."""
        return format_date(d, "medium", locale=self.locale)

    def when(self, at: datetime) -> str:
        """A time in the viewer's own zone: Adaptive Cards' ``{{TIME()}}``, preceded by
        ``{{DATE(…, SHORT)}}`` unless ``at`` falls on the server's current UTC day (an
        approximation: near midnight a viewer far from UTC may see a time without a date).
        Only valid inside TextBlock text (not in facts, inputs or titles)."""
        iso = iso_utc(at)
        time = "{{TIME(" + iso + ")}}"
        if self.now is not None and iso[:10] == iso_utc(self.now)[:10]:
            return time
        return "{{DATE(" + iso + ", SHORT)}} " + time

    def utc(self, at: datetime) -> str:
        """A time for plain text (replies, facts): ``3 dec. 2026 08:11 UTC``."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        at = at.astimezone(UTC)
        return f"{self.date(at)} {at:%H:%M} UTC"


ENGLISH = Texts()


def for_locale(locale: str | None, now: datetime | None = None) -> Texts:
    """The texts for an activity's ``locale`` (``sv*`` -> Swedish, else English)."""
    return Texts(lang_of(locale), now)
