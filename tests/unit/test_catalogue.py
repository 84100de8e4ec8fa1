"""The catalogue (cards.catalogue): every wrapped string has Swedish, placeholders match, the
activity's locale picks the language, numbers and dates follow it, and a Swedish card has no
English product text left. Swedish golden files: tests/unit/golden/sv/<name>.json
(regenerate with ``UPDATE_GOLDEN=1``, as for the English ones)."""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.command_table import COMMANDS
from bot.context import locale_of
from cards.catalogue import Lang, Texts, for_locale, lang_of
from cards.catalogue_keys import keys_in, keys_in_source
from cards.catalogue_sv import NB_HYPHEN, SWEDISH
from tests.unit.card_sets import every_card
from tests.unit.test_cards import ENGLISH_NOW, NOW, SWEDISH_NOW, walk

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_SV = Path(__file__).parent / "golden" / "sv"
SV_CARDS = every_card(SWEDISH_NOW)
EN_CARDS = every_card(ENGLISH_NOW)


def used_keys() -> set[str]:
    """What the code wraps (cards/ and bot/), plus the command table's descriptions, which
    the help card translates."""
    return keys_in([ROOT / "cards", ROOT / "bot"]) | {c.description for c in COMMANDS}


def fields(text: str) -> list[str]:
    return sorted(f for _, f, _, _ in string.Formatter().parse(text) if f is not None)


# --- the catalogue itself --------------------------------------------------------------------


def test_every_string_the_code_wraps_has_a_swedish_translation() -> None:
    missing = sorted(used_keys() - set(SWEDISH))
    assert missing == [], f"add these to cards/catalogue_sv.py SWEDISH: {missing}"


def test_every_swedish_entry_is_a_string_the_code_uses() -> None:
    assert sorted(set(SWEDISH) - used_keys()) == []


@pytest.mark.parametrize("english", sorted(SWEDISH))
def test_placeholders_match_between_english_and_swedish(english: str) -> None:
    assert fields(SWEDISH[english]) == fields(english)


def test_the_key_finder_sees_every_way_of_wrapping_a_string() -> None:
    source = (
        't("a")\ntexts("b", n=1)\nN_("c")\nctx.texts(turn)("d")\n'
        't.plural("e", "f", 2)\nprint("not a key")\n'
    )
    assert keys_in_source(source) == {"a", "b", "c", "d", "e", "f"}


# --- choosing the language ---------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["sv-SE", "sv", "SV-fi", "sv_SE"])
def test_swedish_locales_choose_swedish(locale: str) -> None:
    assert lang_of(locale) is Lang.SV


@pytest.mark.parametrize("locale", ["en-US", "de-DE", "", None, "svenska", "nb-NO"])
def test_other_locales_choose_english(locale: str | None) -> None:
    assert lang_of(locale) is Lang.EN


def test_the_locale_comes_from_the_activity_or_its_client_info() -> None:
    assert locale_of({"locale": "sv-SE"}) == "sv-SE"
    client_info = {"entities": [{"type": "clientInfo", "locale": "sv-SE", "timezone": "X"}]}
    assert locale_of(client_info) == "sv-SE"
    assert locale_of({"entities": "junk"}) == ""


def test_an_untranslated_string_renders_in_english() -> None:
    assert SWEDISH_NOW("A string added today, {n} users", n=2) == "A string added today, 2 users"


def test_a_translated_string_fills_its_placeholders() -> None:
    assert SWEDISH_NOW("… and {n} more", n=3) == "… och 3 till"
    assert ENGLISH_NOW.plural(
        "{n} item waits for a decision", "{n} items wait for a decision", 1
    ) == ("1 item waits for a decision")


def test_numbers_are_formatted_for_the_language() -> None:
    assert SWEDISH_NOW("… and {n} more", n=12345) == "… och 12\u00a0345 till"
    assert ENGLISH_NOW("… and {n} more", n=12345) == "… and 12,345 more"


def test_dates_are_formatted_for_the_language() -> None:
    assert SWEDISH_NOW.date(date(2026, 12, 3)) == "3 dec. 2026"
    assert ENGLISH_NOW.date(date(2026, 12, 3)) == "3 Dec 2026"


def test_a_time_today_shows_only_the_time_in_the_viewers_zone() -> None:
    assert SWEDISH_NOW.when(NOW.replace(hour=8)) == "{{TIME(2026-12-03T08:02:00Z)}}"


def test_a_time_of_another_day_shows_the_date_too() -> None:
    at = datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC)
    assert SWEDISH_NOW.when(at) == (
        "{{DATE(2026-12-02T23:59:59Z, SHORT)}} {{TIME(2026-12-02T23:59:59Z)}}"
    )


def test_without_a_clock_every_time_shows_its_date() -> None:
    assert Texts(Lang.EN).when(NOW).startswith("{{DATE(2026-12-03T14:02:00Z, SHORT)}}")


def test_plain_text_times_say_utc() -> None:
    assert for_locale("sv-SE").utc(NOW) == "3 dec. 2026 14:02 UTC"


# --- Swedish cards ------------------------------------------------------------------------------


def visible(card: dict[str, Any]) -> Iterator[str]:
    """Every text a viewer sees: text blocks, facts, button titles, input labels/placeholders/
    error messages/toggle titles, choice titles."""
    for n in walk(card):
        kind = str(n.get("type", ""))
        if kind == "TextBlock":
            yield n["text"]
        elif kind == "FactSet":
            for fact in n["facts"]:
                yield fact["title"]
                yield fact["value"]
        elif kind.startswith("Action.") and "title" in n:
            yield n["title"]
        elif kind.startswith("Input."):
            for key in ("label", "placeholder", "errorMessage", "title"):
                if key in n:
                    yield n[key]
            for choice in n.get("choices", ()):
                yield choice["title"]


def unmarked(text: str) -> str:
    """Markdown escapes and emphasis removed: the words as they read."""
    text = re.sub(r"\\(.)", r"\1", text)
    return text.replace("**", "").replace("_", "")


def english_left(text: str) -> list[str]:
    """The English catalogue texts (those Swedish changes) still found in ``text``: a whole
    slot equal to one, or a fragment of 10+ characters of one."""
    found = []
    for en, sv in SWEDISH.items():
        if en == sv:
            continue
        parts = [p.strip(" .,:;()") for p in re.split(r"\{[^}]*\}", en)]
        if text.strip() == en or any(len(p) >= 10 and p in text for p in parts):
            found.append(en)
    return found


@pytest.mark.parametrize("name", sorted(SV_CARDS))
def test_no_english_catalogue_text_is_left_on_a_swedish_card(name: str) -> None:
    left = {t: english_left(unmarked(t)) for t in visible(SV_CARDS[name])}
    assert {t: en for t, en in left.items() if en} == {}


def test_the_english_check_finds_english_text() -> None:
    assert english_left(unmarked(EN_CARDS["match"]["actions"][0]["title"])) == ["Accept"]
    assert english_left("Nothing was removed. Type 'sync now' to see the current count.")


@pytest.mark.parametrize("name", sorted(SV_CARDS))
def test_swedish_card_matches_golden_file(name: str) -> None:
    card = SV_CARDS[name]
    path = GOLDEN_SV / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_SV.mkdir(parents=True, exist_ok=True)
        text = json.dumps(card, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1"
    assert json.loads(path.read_text(encoding="utf-8")) == card


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_fact_titles_never_break_at_a_hyphen(lang: str) -> None:
    """Teams may wrap a fact title after an ASCII hyphen ("E-/mail"); titles use none (a
    non-breaking U+2011 where Swedish needs one, as in E-post)."""
    cards = EN_CARDS if lang == "en" else SV_CARDS
    titles = [
        f["title"]
        for c in cards.values()
        for n in walk(c)
        if n.get("type") == "FactSet"
        for f in n["facts"]
    ]
    assert titles and [t for t in titles if "-" in unmarked(t)] == []
    if lang == "sv":
        assert f"E{NB_HYPHEN}post" in titles
