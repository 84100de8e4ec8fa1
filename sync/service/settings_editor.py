"""The settings card: the settings in force as a table, and a submitted form validated,
saved in Redis and applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.config import Config
from sync.errors import InputError, SyncError
from sync.service.records import Actor
from sync.service.scope_change import ScopeChanges, ScopeImpact, scope_changed
from sync.service.settings_form import form_to_table, merge_config
from sync.service.shared import Shared


@dataclass(frozen=True, slots=True)
class SettingsOutcome:
    """A settings card's submission: saved, refused (errors by field), or waiting for the
    admin to confirm a new scope filter (its impact, and the token the confirm button
    carries)."""

    saved: bool = False
    errors: Mapping[str, str] = field(default_factory=dict)
    impacts: tuple[ScopeImpact, ...] = ()
    confirm_token: str = ""


class SettingsEditor:
    def __init__(self, shared: Shared) -> None:
        self._live, self._store = shared.live, shared.store
        self._scope = ScopeChanges(shared)

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

    async def save_settings(
        self, form: Mapping[str, str], *, actor: Actor, confirm: str = ""
    ) -> SettingsOutcome:
        """The settings card's Save: like ``update_settings``, but a new scope filter is first
        tried against Graph. Graph refuses it: its message, on the filter field. Graph takes
        it: the impact, to confirm (``confirm`` is the token of that impact's button)."""
        new, errors = self._parse(form)
        if new is None:
            return SettingsOutcome(errors=errors)
        if scope_changed(self._live.current, new) and not await self._scope.confirmed(new, confirm):
            try:
                check = await self._scope.check(new)
            except SyncError as e:  # Graph unreachable, permission missing...: nothing saved
                msg = f"The filter could not be tried against Microsoft Graph: {e.message}"
                return SettingsOutcome(errors={"scope.filter": f"{msg}. {e.hint}".strip()})
            if check.error:
                return SettingsOutcome(errors={"scope.filter": check.error})
            return SettingsOutcome(impacts=check.impacts, confirm_token=check.token)
        errors = await self.update_settings(form, actor=actor, confirm=confirm)
        return SettingsOutcome(saved=not errors, errors=errors)

    def _parse(self, form: Mapping[str, str]) -> tuple[Config | None, dict[str, str]]:
        table, errors = form_to_table(form)
        if errors:
            return None, errors
        try:
            return merge_config(self._live.file, table), {}
        except InputError as e:
            parts = e.message.split(": ", 2)
            field = e.message.split(":", 2)[1].strip() if e.message.count(":") >= 2 else "settings"
            return None, {field: parts[-1]}

    async def update_settings(
        self, form: Mapping[str, str], *, actor: Actor, confirm: str = ""
    ) -> dict[str, str]:
        """Validate a settings form (field names like ``schedule.mode``); save and apply when
        valid (audited). Returns field -> error (empty: saved). A new scope filter is saved
        only with the token of its confirmed impact (``save_settings``)."""
        new, errors = self._parse(form)
        if new is None:
            return errors
        if scope_changed(self._live.current, new) and not await self._scope.confirmed(new, confirm):
            return {"scope.filter": "a new scope filter is saved after its impact is confirmed"}
        table, _ = form_to_table(form)
        before = await self.settings_table()
        self._live.current = new
        await self._store.settings.set_settings_overrides(table)
        await self._store.audit_log.audit(
            actor.id, actor.name, "settings", tenant="*", before=before, after=table
        )
        return {}
