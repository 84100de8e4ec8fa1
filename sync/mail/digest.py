"""The digest mail of one run: what it tells, and the mail (plain text + HTML) that tells it.

Names and reasons come from Entra and are untrusted: control characters (CR, LF, tabs) become
spaces, long values are cut, and the HTML part escapes them (``html.escape``). The subject is
built from counts only, so no data reaches a mail header. Pure: no I/O, no clock.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

from sync.models import Kind

MAX_ITEMS = 50  # items listed in one mail; the rest are counted
MAX_FIELD = 200  # characters of one name or reason

ProblemKind = Literal["secret_expired", "connection", "guard"]

KIND_TITLE: Mapping[Kind, str] = {
    Kind.MATCH: "Match to confirm",
    Kind.NEW: "New Entra user",
    Kind.UPDATE: "Field change",
    Kind.REMOVAL: "Removal",
    Kind.CONFLICT: "Shared number",
}
PROBLEM_TITLE: Mapping[str, str] = {
    "secret_expired": "The app's client secret has expired",
    "connection": "The connection is lost",
    "guard": "Removals held back by the guard",
}


@dataclass(frozen=True, slots=True)
class NewItem:
    """A pending item a run created (``name``, ``reason``: untrusted text)."""

    tenant: str
    directory: str
    kind: Kind
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a human must fix or confirm: an error of a run, or the guard."""

    tenant: str
    directory: str
    kind: ProblemKind
    code: str
    message: str
    hint: str


@dataclass(frozen=True, slots=True)
class RunNews:
    items: tuple[NewItem, ...] = ()
    problems: tuple[Problem, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items or self.problems)


@dataclass(frozen=True, slots=True)
class ChannelLink:
    url: str
    name: str


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    sender: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str


def clean(value: object, limit: int = MAX_FIELD) -> str:
    """One line of untrusted text: control and separator characters become spaces, runs of
    spaces one space, cut at ``limit`` characters."""
    chars = (
        " " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in str(value or "")
    )
    text = " ".join("".join(chars).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def channel_link(ref: Mapping[str, Any] | None) -> ChannelLink | None:
    """The Teams deep link to the conversation of a stored conversation reference.

    A channel: ``https://teams.microsoft.com/l/channel/<channel id>/<name>?groupId=<team's
    Entra group id>&tenantId=<tenant id>`` (learn.microsoft.com, "Deep link to navigate to
    channel"); without the group id (a reference stored before it was kept) there is no link.
    A group chat: ``https://teams.microsoft.com/l/chat/<chat id>/0?tenantId=<tenant id>``."""
    if not ref:
        return None
    conv = ref.get("conversation") or {}
    if not isinstance(conv, Mapping):
        return None
    cid = str(conv.get("id") or "").split(";", 1)[0]
    tenant = str(conv.get("tenantId") or "")
    if not cid or not tenant:
        return None
    kind = conv.get("conversationType")
    if kind == "channel":
        group = str(ref.get("aadGroupId") or "")
        if not group:
            return None
        general = cid == ref.get("teamId")
        name = clean(conv.get("name") or ("General" if general else "channel"), 100)
        query = urlencode({"groupId": group, "tenantId": tenant})
        url = f"https://teams.microsoft.com/l/channel/{quote(cid, safe='')}/{quote(name, safe='')}"
        return ChannelLink(f"{url}?{query}", name)
    if kind == "groupChat":
        query = urlencode({"tenantId": tenant})
        url = f"https://teams.microsoft.com/l/chat/{quote(cid, safe='')}/0?{query}"
        return ChannelLink(url, clean(conv.get("name") or "group chat", 100))
    return None


def subject_of(news: RunNews) -> str:
    """From counts only: nothing from Entra reaches the header."""
    parts = []
    if news.problems:
        n = len(news.problems)
        parts.append(f"{n} problem{'s' if n != 1 else ''} need{'s' if n == 1 else ''} you")
    if news.items:
        n = len(news.items)
        parts.append(f"{n} new pending item{'s' if n != 1 else ''}")
    return "Entra Sync: " + ", ".join(parts)


def _where(tenant: str, directory: str) -> str:
    return clean(f"{tenant} \u2192 {directory}", 120)


def _item_line(item: NewItem) -> str:
    title = KIND_TITLE.get(item.kind, str(item.kind))
    reason = f" \u2014 {clean(item.reason)}" if item.reason else ""
    return f"{title}: {clean(item.name) or '(no name)'}{reason}"


def _problem_line(p: Problem) -> str:
    code = f" ({clean(p.code, 60)})" if p.code else ""
    return f"{PROBLEM_TITLE.get(p.kind, p.kind)}{code}: {clean(p.message, 300)}"


def compose(
    news: RunNews,
    *,
    sender: str,
    to: Sequence[str],
    link: ChannelLink | None,
    at: datetime,
) -> OutgoingMail:
    """The digest mail of one run. ``at``: when the run ended (shown in UTC)."""
    when = at.strftime("%Y-%m-%d %H:%M UTC")
    open_line = (
        f"Open the Teams channel {link.name}: {link.url}"
        if link
        else "Open the Teams channel where Entra Sync posts and type 'pending'."
    )
    text: list[str] = [f"Entra Sync, run of {when}", "", open_line, ""]
    parts: list[str] = [
        f"<p>Entra Sync, run of {html.escape(when)}</p>",
        (
            f'<p><a href="{html.escape(link.url)}">Open the Teams channel '
            f"{html.escape(link.name)}</a></p>"
            if link
            else "<p>Open the Teams channel where Entra Sync posts and type <b>pending</b>.</p>"
        ),
    ]
    if news.problems:
        text.append("Needs a human:")
        parts.append("<h3>Needs a human</h3><ul>")
        for p in news.problems:
            where = _where(p.tenant, p.directory)
            line, hint = _problem_line(p), clean(p.hint, 500)
            text.append(f"- {where}: {line}")
            parts.append(f"<li><b>{html.escape(where)}</b>: {html.escape(line)}")
            if hint:
                text.append(f"  What to do: {hint}")
                parts.append(f"<br>What to do: {html.escape(hint)}")
            parts.append("</li>")
        text.append("")
        parts.append("</ul>")
    if news.items:
        n = len(news.items)
        text.append(f"New pending items ({n}), waiting for a decision in Teams:")
        parts.append(f"<h3>New pending items ({n})</h3><ul>")
        for item in news.items[:MAX_ITEMS]:
            where, line = _where(item.tenant, item.directory), _item_line(item)
            text.append(f"- {where}: {line}")
            parts.append(f"<li><b>{html.escape(where)}</b>: {html.escape(line)}</li>")
        if n > MAX_ITEMS:
            more = f"\u2026 and {n - MAX_ITEMS} more (type 'pending' in Teams)"
            text.append(more)
            parts.append(f"<li>{html.escape(more)}</li>")
        text.append("")
        parts.append("</ul>")
    footer = "You get this mail because your address is in [notify] email of Entra Sync."
    text.append(footer)
    parts.append(f"<p><small>{html.escape(footer)}</small></p>")
    body = "\n".join(parts)
    return OutgoingMail(
        sender=sender,
        to=tuple(to),
        subject=subject_of(news),
        text="\n".join(text) + "\n",
        html=f'<!DOCTYPE html>\n<html><body style="font-family: sans-serif">\n{body}\n'
        "</body></html>\n",
    )
