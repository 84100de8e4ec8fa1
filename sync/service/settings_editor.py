"""The settings card: the settings in force as a table, and a submitted form validated,
saved in Redis and applied."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.errors import InputError
from sync.service.records import Actor
from sync.service.settings_form import form_to_table, merge_config
from sync.service.shared import Shared


class SettingsEditor:
    def __init__(self, shared: Shared) -> None:
        self._live, self._store = shared.live, shared.store

    async def settings_table(self) -> dict[str, Any]:
        c = self._live.current
        return {
            "scope": c.scope.model_dump(mode="json"),
            "mapping": c.mapping.to_table(),
            "matching": c.matching.model_dump(mode="json"),
            "schedule": c.schedule.model_dump(mode="json"),
            "guard": c.guard.model_dump(mode="json"),
            "bot": {
                "notify_admins_personally": c.bot.notify_admins_personally,
                "max_cards_per_run": c.bot.max_cards_per_run,
            },
            "notify": {"email": list(c.notify.email)},
        }

    async def update_settings(self, form: Mapping[str, str], *, actor: Actor) -> dict[str, str]:
        """Validate a settings form (field names like ``schedule.mode``); save and apply when
        valid (audited). Returns field -> error (empty: saved)."""
        table, errors = form_to_table(form)
        if errors:
            return errors
        try:
            new = merge_config(self._live.file, table)
        except InputError as e:
            parts = e.message.split(": ", 2)
            field = e.message.split(":", 2)[1].strip() if e.message.count(":") >= 2 else "settings"
            return {field: parts[-1]}
        before = await self.settings_table()
        self._live.current = new
        await self._store.settings.set_settings_overrides(table)
        await self._store.audit_log.audit(
            actor.id, actor.name, "settings", tenant="*", before=before, after=table
        )
        return {}
