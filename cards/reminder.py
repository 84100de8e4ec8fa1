"""The daily reminder card: how many items have waited longer than the configured days, the
first of them with since when, and a button to the `pending` list. Pure, like
:mod:`cards.build`; every string from Entra or the directory is escaped here."""

from __future__ import annotations

from dataclasses import dataclass

from cards.build import CARD_VERSION, KIND_LABELS, SCHEMA_URL, Card, Element
from cards.catalogue import ENGLISH, Texts
from cards.text import escape_md
from cards.views import CardRef, Verb
from sync.models import Kind


@dataclass(frozen=True, slots=True)
class ReminderItem:
    kind: Kind
    name: str
    since: str  # when it was proposed, formatted by the caller (e.g. "28 Nov")


@dataclass(frozen=True, slots=True)
class ReminderView:
    after_days: int
    total: int  # how many items have waited longer
    items: tuple[ReminderItem, ...] = ()
    show: CardRef | None = None  # the "Show the list" button: a `pending` page cursor
    limit: int = 10


def reminder_heading(t: Texts, total: int, after_days: int) -> str:
    days = t.plural("{n} day", "{n} days", after_days)
    return t.plural(
        "{n} item has waited more than {days}",
        "{n} items have waited more than {days}",
        total,
        days=days,
    )


def reminder_card(view: ReminderView, texts: Texts = ENGLISH) -> Card:
    """Posted by the scheduler (no activity, so no viewer's language: English unless a
    ``texts`` is given)."""
    t = texts
    body: list[Element] = [
        {
            "type": "TextBlock",
            "text": escape_md(reminder_heading(t, view.total, view.after_days)),
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
        }
    ]
    shown = view.items[: max(0, view.limit)]
    for i in shown:
        waiting = t("waiting since {day}", day=escape_md(i.since, 40))
        body.append(
            {
                "type": "TextBlock",
                "text": f"\u2022 **{t(KIND_LABELS[i.kind])}** \u00b7 {escape_md(i.name, 80)}"
                f" \u2014 {waiting}",
                "wrap": True,
                "spacing": "None",
            }
        )
    more = view.total - len(shown)
    if more > 0:
        tail = (
            t("\u2026 and {n} more \u2014 type 'pending' or press Show the list", n=more)
            if view.show
            else t("\u2026 and {n} more \u2014 type 'pending'", n=more)
        )
    else:
        tail = (
            t("To decide them, type 'pending' or press Show the list.")
            if view.show
            else t("To decide them, type 'pending'.")
        )
    body.append({"type": "TextBlock", "text": tail, "isSubtle": True, "wrap": True})
    card: Card = {"$schema": SCHEMA_URL, "type": "AdaptiveCard", "version": CARD_VERSION}
    card["body"] = body
    if view.show is not None:
        card["actions"] = [
            {
                "type": "Action.Execute",
                "title": t("Show the list"),
                "verb": Verb.PAGE.value,
                "data": {"pid": view.show.pid, "d": view.show.digest},
                "associatedInputs": "none",
            }
        ]
    return card
