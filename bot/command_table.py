"""The bot's commands: one table, the single source of truth for the parser, `help`, and the
Teams manifest's command lists. ``changes_state`` commands are for admins only."""

from __future__ import annotations

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
