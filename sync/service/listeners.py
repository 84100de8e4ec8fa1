"""Who hears about items and runs: the bot's listeners. A failing listener is logged and never
breaks a decision or a run."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from sync.service.records import Item, ItemListener, RunListener, RunResult

if TYPE_CHECKING:
    from sync.service.reminders import Reminder

ReminderListener = Callable[["Reminder"], Awaitable[None]]

log = logging.getLogger(__name__)

# hears a whole run at once (every result of one run_sync): e.g. one notification mail per run
RunsListener = Callable[[Sequence[RunResult]], Awaitable[None]]


class Listeners:
    def __init__(self) -> None:
        self._items: list[ItemListener] = []
        self._runs: list[RunListener] = []
        self._whole_runs: list[RunsListener] = []
        self._reminders: list[ReminderListener] = []

    def add_item_listener(self, listener: ItemListener) -> None:
        self._items.append(listener)

    def add_run_listener(self, listener: RunListener) -> None:
        self._runs.append(listener)

    def add_whole_run_listener(self, listener: RunsListener) -> None:
        self._whole_runs.append(listener)

    def add_reminder_listener(self, listener: ReminderListener) -> None:
        self._reminders.append(listener)

    async def remind(self, reminder: Reminder) -> None:
        for listener in self._reminders:
            try:
                await listener(reminder)
            except Exception:
                log.exception("reminder listener failed")

    async def item_changed(self, item: Item) -> None:
        for listener in self._items:
            try:
                await listener(item)
            except Exception:  # a card update must never break a decision
                log.exception("item listener failed for %s", item.id)

    async def runs_done(self, results: Iterable[RunResult]) -> None:
        done = list(results)
        for result in done:
            for listener in self._runs:
                try:
                    await listener(result)
                except Exception:
                    log.exception("run listener failed")
        for whole in self._whole_runs:
            try:
                await whole(done)
            except Exception:
                log.exception("run listener failed")
