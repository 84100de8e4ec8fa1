"""Notice cards: the short cards the bot answers with besides the proposal cards (confirmations,
refusals, failures, "done" messages). Pure functions of their inputs, like :mod:`cards.build`;
every product text goes through the viewer's :class:`cards.catalogue.Texts` (last argument,
English when not given); names and messages from elsewhere are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from cards.build import CARD_VERSION, SCHEMA_URL, Card, Element, when
from cards.catalogue import ENGLISH, Texts
from cards.text import escape_md
from cards.views import At, Button, CardRef, NoticeView, Verb

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


def _notice(title: str, lines: Sequence[str] = (), buttons: Sequence[Button] = ()) -> Card:
    """A bold title, lines, buttons; ``title`` and ``lines`` are safe Markdown already."""
    body: list[Element] = [{"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True}]
    body += [{"type": "TextBlock", "text": line, "wrap": True} for line in lines if line]
    card: Card = {"$schema": SCHEMA_URL, "type": "AdaptiveCard", "version": CARD_VERSION}
    card["body"] = body
    if buttons:
        card["actions"] = [_button(b) for b in buttons]
    return card


def notice_card(view: NoticeView) -> Card:
    """A bold escaped title, escaped lines (empty ones dropped), then the buttons. The caller
    translates ``view``'s texts (``texts("...")``) before."""
    return _notice(
        escape_md(view.title), [escape_md(line, 400) for line in view.lines], view.buttons
    )


def _by(t: Texts, actor: str, at: At) -> str:
    """ "by Ann, {{TIME(...)}}" in the viewer's language and time zone."""
    return t("by {name}, {when}", name=escape_md(actor, 80), when=when(t, at))


def failed_card(lines: Sequence[str], retry: CardRef | None = None, texts: Texts = ENGLISH) -> Card:
    """A command or action failed: what happened and the hint; "Show the item again"."""
    t = texts
    buttons = (Button(t("Show the item again"), Verb.REFRESH, retry),) if retry else ()
    return notice_card(NoticeView(t("That did not work"), tuple(lines), buttons))


def crashed_card(texts: Texts = ENGLISH) -> Card:
    return notice_card(NoticeView(texts("Something went wrong"), (texts("The error was logged."),)))


def unreadable_action_card(texts: Texts = ENGLISH) -> Card:
    return notice_card(NoticeView(texts("This action could not be read.")))


def not_allowed_card(title: str, reason: str) -> Card:
    """A command refused by the access rules (``bot.access``); the caller translates."""
    return notice_card(NoticeView(title, (reason,)))


def not_served_card(texts: Texts = ENGLISH) -> Card:
    """The whole answer to an activity from a tenant or channel the bot does not serve."""
    return notice_card(NoticeView(texts("This bot does not serve this organisation.")))


def nothing_pending_card(texts: Texts = ENGLISH) -> Card:
    return notice_card(NoticeView(texts("Nothing waits for a decision.")))


def disconnect_confirm_card(digest: str, texts: Texts = ENGLISH) -> Card:
    """The confirmation asked before ``disconnect``; ``digest`` is the server-side token the
    confirm verb must bring back."""
    t = texts
    ref = CardRef(pid=DISCONNECT_PID, digest=digest)
    return notice_card(
        NoticeView(
            t("Disconnect Entra?"),
            (
                t("This removes the sync: tenant links, credentials and sync settings go."),
                t("Every directory user and all their data stay as they are."),
            ),
            (
                Button(t("Disconnect"), Verb.DISCONNECT_CONFIRM, ref, destructive=True),
                Button(t("Cancel"), Verb.DISCONNECT_CANCEL, ref),
            ),
        )
    )


def disconnected_card(actor: str, at: At, texts: Texts = ENGLISH) -> Card:
    t = texts
    return _notice(
        escape_md(t("Disconnected")),
        (
            escape_md(t("Every directory user and their data were kept.")),
            _by(t, actor, at),
        ),
    )


def disconnect_cancelled_card(at: At, texts: Texts = ENGLISH) -> Card:
    t = texts
    return _notice(
        escape_md(t("Nothing was disconnected")), (t("Cancelled, {when}.", when=when(t, at)),)
    )


def guard_held_card(ref: CardRef, texts: Texts = ENGLISH) -> Card:
    """The refresh of a guard card: nothing was removed; confirm or dismiss."""
    t = texts
    return notice_card(
        NoticeView(
            t("Removals held back by the guard"),
            (t("Nothing was removed. Type 'sync now' to see the current count."),),
            (
                Button(t("Confirm"), Verb.GUARD_CONFIRM, ref, destructive=True),
                Button(t("Dismiss"), Verb.GUARD_DISMISS, ref),
            ),
        )
    )


def guard_decided_card(message: str, actor: str, at: At, texts: Texts = ENGLISH) -> Card:
    t = texts
    return _notice(escape_md(message or t("Done")), (_by(t, actor, at),))


def settings_saved_card(actor: str, at: At, texts: Texts = ENGLISH) -> Card:
    t = texts
    return _notice(
        escape_md(t("Settings saved")),
        (_by(t, actor, at), escape_md(t("They apply from the next sync."))),
        (Button(t("Edit settings"), Verb.REFRESH, CardRef(pid=SETTINGS_PID, digest="")),),
    )


def unignore_failed_card(message: str, texts: Texts = ENGLISH) -> Card:
    return notice_card(NoticeView(texts("Could not un-ignore"), (message,)))


def credential_expiry_card(lines: Sequence[tuple[str, str, str]], texts: Texts = ENGLISH) -> Card:
    """After `status`: each tenant whose Entra app secret or certificate expires soon
    (``expiring``), has ``expired``, or whose expiry is ``unknown`` - ``(tenant, state,
    message)``. The title says the worst, with a warning sign (text is never coloured)."""
    t = texts
    title = t("App credentials")
    if any(state in ("expiring", "expired") for _, state, _ in lines):
        title = "\u26a0\ufe0f " + t("An app credential expires soon")
    if any(state == "expired" for _, state, _ in lines):
        title = "\u26a0\ufe0f " + t("An app credential has expired")
    return notice_card(NoticeView(title, tuple(f"{name}: {m}" for name, _, m in lines)))
