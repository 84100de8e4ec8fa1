"""What the parts of the service share: the config in force, the state store, the tenants and
directories, the Entra reader, card digests, the listeners and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sync.service.digests import CardDigests
from sync.service.listeners import Listeners
from sync.service.reading import EntraReader
from sync.service.tenants import LiveConfig, Tenants
from sync.state.store import StateStore


@dataclass(frozen=True)
class Shared:
    live: LiveConfig
    store: StateStore
    tenants: Tenants
    reader: EntraReader
    digests: CardDigests
    listeners: Listeners
    clock: Callable[[], datetime]
