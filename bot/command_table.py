"""The bot's commands: one table, the single source of truth for the parser, `help`, and the
Teams manifest's command lists (``changes_state`` commands are for admins only, see
``bot.access``), and the parser from a message's text to a command."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str  # what the admin types (lower case, words separated by one space)
    title: str  # manifest: <= 32 characters
    description: str  # manifest: <= 128 characters
    changes_state: bool
    takes_argument: bool = False


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("help", "help", "What I can do", False),
    CommandSpec("status", "status", "Connection, last and next sync, synced users, pending", False),
    CommandSpec("sync now", "sync now", "Read Entra now and propose what changed", True),
    CommandSpec("sync", "sync <name | e-mail | number>", "Sync one user now", True, True),
    CommandSpec(
        "pending", "pending", "What waits for a decision, with Accept all / Apply all", False
    ),
    CommandSpec("ignored", "ignored", "Ignored Entra users, with un-ignore", False),
    CommandSpec("preview", "preview", "Dry run: what a sync would change, per user", False),
    CommandSpec("settings", "settings", "Scope, mapping, schedule, notifications, guard", True),
    CommandSpec(
        "connect", "connect", "Connect an Entra tenant (or get an admin-consent link)", True
    ),
    CommandSpec("disconnect", "disconnect", "Remove the sync; keeps every user and all data", True),
    CommandSpec("audit", "audit", "Recent decisions: who, what, when", False),
    CommandSpec("notify here", "notify here", "Post sync notifications in this channel", True),
)

_AT = re.compile(r"<at\b[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]{0,200}>")
_WS = re.compile(r"\s+")
_BY_NAME = {c.name: c for c in COMMANDS}
MAX_TEXT = 4000


def normalise(text: str) -> str:
    """Mentions stripped, HTML dropped, entities decoded, spacing collapsed (case kept)."""
    text = _AT.sub(" ", text[:MAX_TEXT])
    text = _TAG.sub(" ", text)
    text = html.unescape(text).replace("\u00a0", " ")
    return _WS.sub(" ", text).strip()


def parse_command(text: str) -> tuple[CommandSpec | None, str]:
    """(command, argument). Exact names first ("sync now" beats "sync <arg>"); then commands
    taking an argument by their first word(s). Unknown input: (None, "")."""
    clean = normalise(text)
    lower = clean.lower()
    if lower in _BY_NAME and not _BY_NAME[lower].takes_argument:
        return _BY_NAME[lower], ""
    for spec in sorted(COMMANDS, key=lambda c: -len(c.name)):
        if spec.takes_argument and lower.startswith(spec.name + " "):
            arg = clean[len(spec.name) + 1 :].strip()
            if arg:
                return spec, arg
    return None, ""
