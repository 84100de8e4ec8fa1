"""The built-in directory: the phone system's users kept in Redis.

Layout (all keys from :class:`sync.state.keys.Keys`):

- ``dir_users(name)``: hash, user id -> the user's JSON (:meth:`DirectoryUser.to_dict`);
- ``dir_index(name, "phone")``: hash, E.164 number as stored -> JSON list of user ids;
- ``dir_index(name, "email")``: hash, e-mail lower-cased -> JSON list of user ids;
- ``dir_index(name, "entra")``: hash, Entra object id -> JSON list of user ids;
- ``dir_seq(name)``: counter for the ids of created users.

Every write runs in one ``WATCH``/``MULTI`` transaction over the users hash and the three
indexes, so an index never disagrees with the users it points to. E-mail (case-insensitive)
and Entra id are unique: a create or update that would share one with another user raises
:class:`DirectoryConflict`. Phone numbers may be shared (the planner reports such conflicts).

Also here: :func:`load_directory_file`, the parser of the directory file (DESIGN §5) that the
``plan`` command and :meth:`BuiltinDirectory.import_seed` use.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, cast

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from redis.exceptions import RedisError, WatchError

from sync.directories.base import NewDirectoryUser, UserPatch
from sync.errors import DirectoryConflict, DirectoryNotFound, DirectoryUnavailable, InputError
from sync.models import DirectoryUser
from sync.state.keys import Keys

log = logging.getLogger(__name__)

STRING_PATCH_FIELDS = frozenset({"first_name", "last_name", "display_name", "email", "entra_id"})
LIST_PATCH_FIELDS = frozenset({"phones", "tags"})
BOOL_PATCH_FIELDS = frozenset({"sync_enabled", "active"})
PATCH_FIELDS = STRING_PATCH_FIELDS | LIST_PATCH_FIELDS | BOOL_PATCH_FIELDS

FILE_USER_FIELDS = frozenset(
    {
        "id",
        "first_name",
        "last_name",
        "display_name",
        "email",
        "phones",
        "tags",
        "entra_id",
        "sync_enabled",
        "active",
    }
)
FILE_TOP_FIELDS = frozenset({"users", "ignored"})
MAX_TRANSACTION_TRIES = 50
SCAN_COUNT = 5000


# --- patches (shared with the SCIM adapter) ------------------------------------------------


def validate_patch(patch: UserPatch) -> dict[str, Any]:
    """Check a patch and return its values normalised: strings (empty -> None), tuples for
    lists (None -> empty), booleans (None -> the default, True). Raises InputError."""
    unknown = sorted(set(patch.fields) - PATCH_FIELDS)
    if unknown:
        raise InputError(f"user patch: unknown directory field(s): {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, value in patch.fields.items():
        if key in STRING_PATCH_FIELDS:
            if value is not None and not isinstance(value, str):
                raise InputError(f"user patch: {key}: expected a string or null")
            out[key] = value.strip() or None if isinstance(value, str) else None
        elif key in LIST_PATCH_FIELDS:
            if value is None:
                out[key] = ()
            elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                out[key] = tuple(v.strip() for v in value if v.strip())
            else:
                raise InputError(f"user patch: {key}: expected a list of strings or null")
        else:
            if value is not None and not isinstance(value, bool):
                raise InputError(f"user patch: {key}: expected true, false or null")
            out[key] = True if value is None else value
    return out


def apply_patch(user: DirectoryUser, values: Mapping[str, Any]) -> DirectoryUser:
    """The user with the (validated) patch values written over its fields."""
    d = user.to_dict()
    for key, value in values.items():
        d[key] = list(value) if isinstance(value, tuple) else value
    return DirectoryUser.from_dict(d)


def norm_email(email: str) -> str:
    return email.strip().lower()


# --- the directory file --------------------------------------------------------------------


def load_directory_file(path: str | Path) -> tuple[list[DirectoryUser], list[str]]:
    """Read and check a directory file. Returns (users, ignored Entra ids).

    Raises InputError with a one-line message naming the file and the field, such as
    ``dir.json: users[3].phones: expected a list of strings``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read the file ({type(e).__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno})") from None
    return parse_directory_data(data, str(p))


def parse_directory_data(
    data: Any, source: str = "directory"
) -> tuple[list[DirectoryUser], list[str]]:
    """Check the JSON of a directory file (already decoded); ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object with 'users'")
    extra = sorted(set(data) - FILE_TOP_FIELDS)
    if extra:
        raise InputError(f"{source}: unknown field(s): {', '.join(map(str, extra))}")
    raw_users = data.get("users", [])
    if not isinstance(raw_users, list):
        raise InputError(f"{source}: users: expected a list")
    raw_ignored = data.get("ignored", [])
    if not isinstance(raw_ignored, list) or not all(
        isinstance(v, str) and v.strip() for v in raw_ignored
    ):
        raise InputError(f"{source}: ignored: expected a list of strings")
    users: list[DirectoryUser] = []
    seen_ids: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    seen_entra: dict[str, int] = {}
    for i, entry in enumerate(raw_users):
        user = _parse_file_user(entry, f"{source}: users[{i}]")
        for value, seen, what in (
            (user.id, seen_ids, "id"),
            (norm_email(user.email) if user.email else None, seen_emails, "email"),
            (user.entra_id, seen_entra, "entra_id"),
        ):
            if value is None:
                continue
            if value in seen:
                raise InputError(
                    f"{source}: users[{i}].{what}: {value!r} is also used by users[{seen[value]}]"
                )
            seen[value] = i
        users.append(user)
    return users, [v.strip() for v in raw_ignored]


def _int_as_text(v: Any) -> Any:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class _FileUser(BaseModel):
    """One user of the directory file: strings trimmed (empty: none), lists of strings
    (null: empty), booleans that default to true; an integer id is taken as text."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: Annotated[str, BeforeValidator(_int_as_text)]
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    entra_id: str | None = None
    phones: list[str] | None = None
    tags: list[str] | None = None
    sync_enabled: bool = True
    active: bool = True

    def to_user(self) -> DirectoryUser:
        def text(v: str | None) -> str | None:
            return v.strip() or None if v is not None else None

        def texts(vs: list[str] | None) -> tuple[str, ...]:
            return tuple(v.strip() for v in vs or () if v.strip())

        return DirectoryUser(
            id=self.id.strip(),
            first_name=text(self.first_name),
            last_name=text(self.last_name),
            display_name=text(self.display_name),
            email=text(self.email),
            phones=texts(self.phones),
            tags=texts(self.tags),
            entra_id=text(self.entra_id),
            sync_enabled=self.sync_enabled,
            active=self.active,
        )


_FILE_ERRORS = {
    "id": "expected a non-empty string",
    "phones": "expected a list of strings",
    "tags": "expected a list of strings",
    "sync_enabled": "expected true or false",
    "active": "expected true or false",
}


def _parse_file_user(entry: Any, where: str) -> DirectoryUser:
    """One entry of the file's ``users``; InputError naming the first bad field."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object")
    extra = sorted(set(entry) - FILE_USER_FIELDS)
    if extra:
        raise InputError(f"{where}: unknown field(s): {', '.join(map(str, extra))}")
    try:
        user = _FileUser.model_validate(entry).to_user()
    except ValidationError as e:
        key = str(e.errors()[0]["loc"][0])
        raise InputError(f"{where}.{key}: {_FILE_ERRORS.get(key, 'expected a string')}") from None
    if not user.id:
        raise InputError(f"{where}.id: expected a non-empty string")
    return user


# --- the adapter ---------------------------------------------------------------------------


def _index_values(user: DirectoryUser | None) -> dict[str, set[str]]:
    if user is None:
        return {"phone": set(), "email": set(), "entra": set()}
    return {
        "phone": set(user.phones),
        "email": {norm_email(user.email)} if user.email else set(),
        "entra": {user.entra_id} if user.entra_id else set(),
    }


def _decode_ids(raw: bytes | str | None) -> list[str]:
    if raw is None:
        return []
    ids = json.loads(raw)
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _decode_user(raw: bytes | str) -> DirectoryUser:
    """orjson: a listing decodes every user (92,000 at 100,000 Entra users)."""
    return DirectoryUser.from_dict(orjson.loads(raw))


def _encode_user(user: DirectoryUser) -> str:
    return json.dumps(user.to_dict(), separators=(",", ":"), ensure_ascii=False)


def _id_sort_key(uid: str) -> tuple[int, int, str]:
    return (0, int(uid), "") if uid.isdigit() else (1, 0, uid)


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except RedisError as e:
        raise DirectoryUnavailable(f"built-in directory: Redis error ({type(e).__name__})") from e


class BuiltinDirectory:
    """The built-in directory (see the module docstring); a ``sync.directories.base.Directory``.

    This directory stores the per-user ``sync_enabled`` switch itself."""

    stores_sync_enabled = True

    def __init__(self, redis: aioredis.Redis, keys: Keys, name: str = "main") -> None:
        self._redis = redis
        self._keys = keys
        self.name = name
        self._users_key = keys.dir_users(name)
        self._ix = {kind: keys.dir_index(name, kind) for kind in ("phone", "email", "entra")}
        # Writers in this process take turns (the watched hashes are shared by all users, so
        # many concurrent optimistic transactions would keep aborting each other); WATCH/MULTI
        # still keeps writes from other processes atomic.
        self._write_lock = asyncio.Lock()

    # --- reads -------------------------------------------------------------------------------

    async def list_users(self) -> Sequence[DirectoryUser]:
        """Every user, ordered by id (numbers by value, then the others by text): HSCAN in
        batches of 5,000 (each a few ms of Redis and ~50 ms of decoding: Teams is answered
        between them), sorted in a thread (0.2 s at 92,000 users)."""
        users: list[DirectoryUser] = []
        cursor = 0
        with _redis_errors():
            while True:
                cursor, reply = await self._redis.hscan(self._users_key, cursor, count=SCAN_COUNT)
                batch = cast(dict[bytes | str, bytes | str], reply)
                users += map(_decode_user, batch.values())
                if not cursor:
                    break
        return await asyncio.to_thread(sorted, users, key=lambda u: _id_sort_key(u.id))

    async def count(self) -> int:
        with _redis_errors():
            return int(await self._redis.hlen(self._users_key))

    async def get(self, user_id: str) -> DirectoryUser | None:
        with _redis_errors():
            raw = await self._redis.hget(self._users_key, user_id)
        return None if raw is None else _decode_user(raw)

    async def _by_index(self, kind: str, value: str) -> list[DirectoryUser]:
        with _redis_errors():
            ids = _decode_ids(await self._redis.hget(self._ix[kind], value))
            if not ids:
                return []
            raws = await self._redis.hmget(self._users_key, ids)
        users = [_decode_user(r) for r in raws if r is not None]
        return sorted(users, key=lambda u: _id_sort_key(u.id))

    async def find_by_phone(self, e164: str) -> Sequence[DirectoryUser]:
        return await self._by_index("phone", e164.strip())

    async def find_by_email(self, email: str) -> Sequence[DirectoryUser]:
        return await self._by_index("email", norm_email(email))

    async def find_by_external_id(self, entra_id: str) -> DirectoryUser | None:
        users = await self._by_index("entra", entra_id.strip())
        return users[0] if users else None

    # --- writes ------------------------------------------------------------------------------

    async def create(self, user: NewDirectoryUser) -> DirectoryUser:
        values = validate_patch(user.as_patch())
        with _redis_errors():
            while True:
                uid = str(await self._redis.incr(self._keys.dir_seq(self.name)))
                if not await self._redis.hexists(self._users_key, uid):
                    break  # ids given by a seed file may be numbers the counter reaches

        def build(old: DirectoryUser | None) -> DirectoryUser:
            if old is not None:
                raise DirectoryConflict(f"{self.name}: user id {uid} is taken")
            return apply_patch(DirectoryUser(id=uid), values)

        created = await self._transact(uid, build)
        assert created is not None
        return created

    async def update(self, user_id: str, patch: UserPatch) -> DirectoryUser:
        values = validate_patch(patch)

        def build(old: DirectoryUser | None) -> DirectoryUser:
            if old is None:
                raise DirectoryNotFound(f"{self.name}: no user {user_id}")
            return apply_patch(old, values)

        updated = await self._transact(user_id, build)
        assert updated is not None
        return updated

    async def deactivate(self, user_id: str) -> DirectoryUser:
        return await self.update(user_id, UserPatch({"active": False}))

    async def delete(self, user_id: str) -> None:
        def build(old: DirectoryUser | None) -> None:
            if old is None:
                raise DirectoryNotFound(f"{self.name}: no user {user_id}")
            return None

        await self._transact(user_id, build)

    async def _transact(
        self, user_id: str, build: Callable[[DirectoryUser | None], DirectoryUser | None]
    ) -> DirectoryUser | None:
        """Read the user, compute its new state (None: deleted), check uniqueness, and write
        the user and its index entries in one MULTI, retried while a watched key changes."""
        watched = (self._users_key, *self._ix.values())
        with _redis_errors():
            async with self._write_lock, self._redis.pipeline(transaction=True) as pipe:
                for _ in range(MAX_TRANSACTION_TRIES):
                    try:
                        await pipe.watch(*watched)
                        raw = await pipe.hget(self._users_key, user_id)
                        old = None if raw is None else _decode_user(raw)
                        new = build(old)
                        writes = await self._index_writes(pipe, user_id, old, new)
                        pipe.multi()  # type: ignore[no-untyped-call]
                        if new is None:
                            pipe.hdel(self._users_key, user_id)
                        else:
                            pipe.hset(self._users_key, user_id, _encode_user(new))
                        for kind, value, ids in writes:
                            if ids:
                                pipe.hset(self._ix[kind], value, json.dumps(ids))
                            else:
                                pipe.hdel(self._ix[kind], value)
                        await pipe.execute()
                        return new
                    except WatchError:
                        continue
        raise DirectoryUnavailable(f"{self.name}: too many concurrent writes to user {user_id}")

    async def _index_writes(
        self,
        pipe: Any,
        user_id: str,
        old: DirectoryUser | None,
        new: DirectoryUser | None,
    ) -> list[tuple[str, str, list[str]]]:
        before, after = _index_values(old), _index_values(new)
        writes: list[tuple[str, str, list[str]]] = []
        for kind in ("phone", "email", "entra"):
            touched = sorted(before[kind] ^ after[kind])
            if not touched:
                continue
            current = await pipe.hmget(self._ix[kind], touched)
            for value, raw in zip(touched, current, strict=True):
                ids = _decode_ids(raw)
                if value in after[kind]:
                    others = [i for i in ids if i != user_id]
                    if others and kind != "phone":
                        field = "email" if kind == "email" else "entra_id"
                        raise DirectoryConflict(
                            f"{self.name}: {field} {value} is already used by user {others[0]}"
                        )
                    ids = [*others, user_id]
                else:
                    ids = [i for i in ids if i != user_id]
                writes.append((kind, value, ids))
        return writes

    # --- seed ----------------------------------------------------------------------------------

    async def import_seed(self, path_or_data: str | Path | Mapping[str, Any]) -> int:
        """Load the users of a directory file (a path, or its decoded JSON) when this
        directory is empty, in one transaction. Returns how many users were imported (0 when
        the directory already had users). The file's ``ignored`` list is not the directory's
        business: read it with :func:`load_directory_file`."""
        if isinstance(path_or_data, Mapping):
            users, _ = parse_directory_data(path_or_data, "seed")
        else:
            users, _ = load_directory_file(path_or_data)
        if not users:
            return 0
        indexes: dict[str, dict[str, list[str]]] = {"phone": {}, "email": {}, "entra": {}}
        for u in users:
            for kind, values in _index_values(u).items():
                for value in values:
                    indexes[kind].setdefault(value, []).append(u.id)
        top = max((int(u.id) for u in users if u.id.isdigit()), default=0)
        with _redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(self._users_key)
                    if await pipe.hlen(self._users_key):
                        log.info("directory %s already has users; seed not loaded", self.name)
                        return 0
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(self._users_key, mapping={u.id: _encode_user(u) for u in users})
                    for kind, mapping in indexes.items():
                        if mapping:
                            pipe.hset(
                                self._ix[kind],
                                mapping={k: json.dumps(v) for k, v in mapping.items()},
                            )
                    seq = self._keys.dir_seq(self.name)
                    pipe.set(seq, top, nx=True)
                    await pipe.execute()
                except WatchError:
                    log.info("directory %s was written meanwhile; seed not loaded", self.name)
                    return 0
        log.info("directory %s: %d users imported from the seed", self.name, len(users))
        return len(users)
