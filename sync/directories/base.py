"""The phone system's directory, behind one small interface with two adapters:
the built-in directory (Redis, :mod:`sync.directories.builtin`) and SCIM 2.0
(:mod:`sync.directories.scim`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sync.models import DirectoryUser


@dataclass(frozen=True, slots=True)
class NewDirectoryUser:
    """What a create needs. ``entra_id`` links the new user (SCIM: goes into externalId)."""

    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    phones: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    entra_id: str | None = None

    def as_patch(self) -> UserPatch:
        """Every field of the new user, as the patch that writes them."""
        return UserPatch(
            {
                "first_name": self.first_name,
                "last_name": self.last_name,
                "display_name": self.display_name,
                "email": self.email,
                "phones": self.phones,
                "tags": self.tags,
                "entra_id": self.entra_id,
            }
        )


@dataclass(frozen=True, slots=True)
class UserPatch:
    """A partial update: only the fields present in ``fields`` are written.
    Keys are directory fields (first_name, last_name, display_name, email, tags, phones,
    entra_id, sync_enabled); a value of None clears the field."""

    fields: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Directory(Protocol):
    """Every adapter implements this; one contract test suite runs against all of them."""

    name: str

    async def list_users(self) -> Sequence[DirectoryUser]: ...

    async def get(self, user_id: str) -> DirectoryUser | None: ...

    async def find_by_phone(self, e164: str) -> Sequence[DirectoryUser]: ...

    async def find_by_email(self, email: str) -> Sequence[DirectoryUser]: ...

    async def find_by_external_id(self, entra_id: str) -> DirectoryUser | None: ...

    async def create(self, user: NewDirectoryUser) -> DirectoryUser: ...

    async def update(self, user_id: str, patch: UserPatch) -> DirectoryUser: ...

    async def deactivate(self, user_id: str) -> DirectoryUser: ...

    async def delete(self, user_id: str) -> None: ...
