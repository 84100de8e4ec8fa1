"""Untrusted strings into card text.

Names, mails and attribute values come from Entra and from the phone system's directory: they
are untrusted. ``TextBlock`` text and ``Fact`` titles/values are Markdown in Teams, so every
such string goes through :func:`escape_md`, which makes Markdown and HTML inert, removes control
and format characters (including bidi overrides), folds line breaks into spaces and bounds the
length. Plain-text slots (choice titles, input values, placeholders) go through :func:`plain`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

DEFAULT_LIMIT = 200
ELLIPSIS = "\u2026"

# Characters that Markdown (CommonMark + GFM), HTML, or the Adaptive Card text functions
# ({{DATE(...)}}) give a meaning. Each is ASCII punctuation, so a backslash before it is a
# CommonMark escape that renders the character itself.
MD_SPECIAL = frozenset("\\*_`~[](){}#+-.!<>&|")

# Unicode categories removed outright: control, format (bidi overrides, zero-width joiners),
# surrogates, private use, unassigned.
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# Categories turned into a plain space: line and paragraph separators.
_SPACE_CATEGORIES = frozenset({"Zl", "Zp", "Zs"})


def clean(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """A one-line, bounded, printable version of ``value`` (no escaping).

    ``None`` becomes ``""``; tuples and lists are joined with ", "; whitespace (line breaks
    included) collapses to single spaces; control and format characters are removed; a result
    longer than ``limit`` characters is cut to ``limit - 1`` characters plus an ellipsis.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if value is None:
        text = ""
    elif isinstance(value, list | tuple | set | frozenset):
        parts: list[str] = []
        size = 0
        for v in value:
            part = clean(v, limit)
            parts.append(part)
            size += len(part) + 2
            if size > limit:  # the rest would be cut anyway
                break
        text = ", ".join(parts)
    else:
        text = str(value)
    if text.isprintable() and "  " not in text:  # fast path: nothing to drop or fold
        return _cut(text.strip(" "), limit)
    out: list[str] = []
    last_space = True  # drops leading whitespace
    for ch in text:
        if ch in "\t\n\r\v\f":
            cat = "Zs"
        else:
            cat = unicodedata.category(ch)
        if cat in _DROP_CATEGORIES:
            continue
        if cat in _SPACE_CATEGORIES:
            if not last_space:
                out.append(" ")
                last_space = True
            continue
        out.append(ch)
        last_space = False
        if len(out) > limit:  # enough to know it gets cut: stop reading
            break
    return _cut("".join(out).rstrip(" "), limit)


def _cut(text: str, limit: int) -> str:
    if len(text) > limit:
        return text[: limit - 1].rstrip(" ") + ELLIPSIS
    return text


def plain(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """For slots that are not Markdown (choice titles, input values): :func:`clean`."""
    return clean(value, limit)


def escape_md(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """Render ``value`` inert in a Markdown ``TextBlock`` or ``Fact``.

    The text is first cleaned and bounded (:func:`clean`), then every Markdown/HTML control
    character gets a backslash. The result is at most ``2 * limit`` characters long.
    Leading list and heading markers (``-``, ``+``, ``*``, ``#``, ``>``, ``1.``) are covered
    because each of their characters is escaped wherever it stands.
    """
    text = clean(value, limit)
    return "".join("\\" + ch if ch in MD_SPECIAL else ch for ch in text)


def is_inert(md: str) -> bool:
    """True when every Markdown control character in ``md`` is backslash-escaped and no
    backslash dangles at the end. (What the tests hold :func:`escape_md` to.)"""
    i = 0
    n = len(md)
    while i < n:
        ch = md[i]
        if ch == "\\":
            if i + 1 >= n or md[i + 1] not in MD_SPECIAL:
                return False
            i += 2
            continue
        if ch in MD_SPECIAL:
            return False
        i += 1
    return True


def fmt_value(value: Any, limit: int = 60) -> str:
    """A field value for an old -> new line, escaped: empty values read "(empty)"."""
    if value is None or value == "" or value == () or value == []:
        return "_(empty)_"
    return escape_md(value, limit)


def join_names(names: Iterable[str], limit: int = 60) -> str:
    """Escaped names joined with ", "."""
    return ", ".join(escape_md(n, limit) for n in names)


def admin_consent_url(tenant_id: str, client_id: str) -> str:
    """The admin-consent link an Entra admin opens to consent the app in ``tenant_id``."""
    tenant = quote(tenant_id.strip() or "organizations", safe="")
    client = quote(client_id.strip(), safe="")
    return f"https://login.microsoftonline.com/{tenant}/adminconsent?client_id={client}"


def md_link(label: str, url: str) -> str:
    """A Markdown link with an escaped label. Only https URLs are linked; the characters that
    could end the link target early are percent-encoded."""
    if not url.startswith("https://"):
        return escape_md(url)
    safe_url = quote(clean(url, 2000), safe=":/?&=#%@+,;~-._!*'$")
    safe_url = safe_url.replace("(", "%28").replace(")", "%29")
    return f"[{escape_md(label)}]({safe_url})"
