"""Notice cards: the short cards the bot answers with besides the proposal cards (confirmations,
refusals, failures, "done" messages). Pure functions of their inputs, like :mod:`cards.build`;
every text here is the product's wording, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from cards.build import CARD_VERSION, SCHEMA_URL, Card, Element
from cards.text import escape_md
from cards.views import Button, CardRef, NoticeView, Verb

SETTINGS_PID = "settings"
DISCONNECT_PID = "disconnect"


def _button(b: Button) -> Element:
    action: Element = {
        "type": "Action.Execute",
        "title": b.title,
        "verb": b.verb.value,
        "data": {"pid": b.ref.pid, "d": b.ref.digest},
        "associatedInputs": "none",
    }
    if b.destructive:
        action["style"] = "destructive"
    return action


def notice_card(view: NoticeView) -> Card:
    """A bold escaped title, escaped lines (empty ones dropped), then the buttons."""
    body: list[Element] = [
        {"type": "TextBlock", "text": escape_md(view.title), "weight": "Bolder", "wrap": True}
    ]
    body += [
        {"type": "TextBlock", "text": escape_md(line, 400), "wrap": True}
        for line in view.lines
        if line
    ]
    card: Card = {"$schema": SCHEMA_URL, "type": "AdaptiveCard", "version": CARD_VERSION}
    card["body"] = body
    if view.buttons:
        card["actions"] = [_button(b) for b in view.buttons]
    return card


def failed_card(lines: Sequence[str], retry: CardRef | None = None) -> Card:
    """A command or action failed: what happened and the hint; "Show the item again"."""
    buttons = (Button("Show the item again", Verb.REFRESH, retry),) if retry else ()
    return notice_card(NoticeView("That did not work", tuple(lines), buttons))


def crashed_card() -> Card:
    return notice_card(NoticeView("Something went wrong", ("The error was logged.",)))


def unreadable_action_card() -> Card:
    return notice_card(NoticeView("This action could not be read."))


def not_allowed_card(title: str, reason: str) -> Card:
    """A command refused by the access rules (``bot.access``)."""
    return notice_card(NoticeView(title, (reason,)))


def not_served_card() -> Card:
    """The whole answer to an activity from a tenant or channel the bot does not serve."""
    return notice_card(NoticeView("This bot does not serve this organisation."))


def nothing_pending_card() -> Card:
    return notice_card(NoticeView("Nothing waits for a decision."))


def disconnect_confirm_card(digest: str) -> Card:
    """The confirmation asked before ``disconnect``; ``digest`` is the server-side token the
    confirm verb must bring back."""
    ref = CardRef(pid=DISCONNECT_PID, digest=digest)
    return notice_card(
        NoticeView(
            "Disconnect Entra?",
            (
                "This removes the sync: tenant links, credentials and sync settings go.",
                "Every directory user and all their data stay as they are.",
            ),
            (
                Button("Disconnect", Verb.DISCONNECT_CONFIRM, ref, destructive=True),
                Button("Cancel", Verb.DISCONNECT_CANCEL, ref),
            ),
        )
    )


def disconnected_card(actor: str, at: str) -> Card:
    return notice_card(
        NoticeView(
            "Disconnected",
            (f"By {actor}, {at}. Every directory user and their data were kept.",),
        )
    )


def disconnect_cancelled_card(at: str) -> Card:
    return notice_card(NoticeView("Nothing was disconnected", (f"Cancelled, {at}.",)))


def guard_held_card(ref: CardRef) -> Card:
    """The refresh of a guard card: nothing was removed; confirm or dismiss."""
    return notice_card(
        NoticeView(
            "Removals held back by the guard",
            ("Nothing was removed. Type 'sync now' to see the current count.",),
            (
                Button("Confirm", Verb.GUARD_CONFIRM, ref, destructive=True),
                Button("Dismiss", Verb.GUARD_DISMISS, ref),
            ),
        )
    )


def guard_decided_card(message: str, actor: str, at: str) -> Card:
    return notice_card(NoticeView(message or "Done", (f"{actor}, {at}",)))


def settings_saved_card(actor: str, at: str) -> Card:
    return notice_card(
        NoticeView(
            "Settings saved",
            (f"Saved by {actor}, {at}. They apply from the next sync.",),
            (Button("Edit settings", Verb.REFRESH, CardRef(pid=SETTINGS_PID, digest="")),),
        )
    )


def decided_all_card(what: str, done: int, other: int, actor: str, at: str) -> Card:
    """The answer to Accept all / Apply all: how many were done, how many could not be."""
    lines = [f"{done} {what} by {actor}, {at}."]
    if other:
        lines.append(
            f"{other} could not be done (already handled, changed, or failed); type 'pending'."
        )
    return notice_card(NoticeView(f"{what.capitalize()}: {done}", tuple(lines)))


def unignore_failed_card(message: str) -> Card:
    return notice_card(NoticeView("Could not un-ignore", (message,)))


def credential_expiry_card(lines: Sequence[tuple[str, str, str]]) -> Card:
    """After `status`: each tenant whose Entra app secret or certificate expires soon
    (``expiring``), has ``expired``, or whose expiry is ``unknown`` — ``(tenant, state,
    message)``. The title says the worst; soon or expired is in the warning colour."""
    urgent = any(state in ("expiring", "expired") for _, state, _ in lines)
    title = "An app credential expires soon" if urgent else "App credentials"
    if any(state == "expired" for _, state, _ in lines):
        title = "An app credential has expired"
    card = notice_card(NoticeView(title, tuple(f"{t}: {m}" for t, _, m in lines)))
    if urgent:
        card["body"][0]["color"] = "Warning"
    return card
