"""`entra-sync state export` / `state import`: the whole store under one prefix as JSON Lines.

The file (format ``entra-sync-state``, version ``EXPORT_VERSION``):

- line 1, the header: ``{"format": "entra-sync-state", "version": 1, "data_format": N,
  "prefix": "es:", "exported_at": ISO, "keys": count}``;
- then one line per Redis key: ``{"k": key without the prefix, "t": type, "v": value,
  "ttl_ms": ms or null}`` with ``t`` one of string, hash, set, zset, list, stream. Values are
  text, or ``{"b64": ...}`` for bytes that are not UTF-8. Hashes are ``[[field, value], ...]``,
  sorted sets ``[[member, score], ...]``, streams ``[[id, [[field, value], ...]], ...]`` (the
  audit keeps its ids and order).

Every key under the prefix is in it: proposals with their state and decision, pending sets,
links and every other user of the built-in directory, ignored users, number owners,
settings, conversation references, run logs, snapshots, delta links and the audit. Left out:
the run locks, the scheduler's slot claims and the data-format key (the header carries it).
Saved client secrets stay as stored: encrypted with ``ENTRA_SYNC_SECRET_KEY`` (never plain
text); importing elsewhere needs the same key (or it in ``ENTRA_SYNC_SECRET_KEYS_OLD``).

Import reads and checks the whole file before it writes anything, refuses a file of another
format or a newer version, and refuses a store that already has keys under the prefix unless
``replace`` (then those keys are deleted). The deletes and writes go to Redis in ONE
MULTI/EXEC: a failure before EXEC (a bad line, a lost connection, a crash) leaves the store
as it was. After the import the store is brought to the current data format.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ExecAbortError, ResponseError

from sync.errors import InputError, StateError
from sync.state.dataformat import DATA_FORMAT, DataFormat, too_new
from sync.state.keys import Keys
from sync.state.values import chunks, glob_escape, iso, text

EXPORT_FORMAT = "entra-sync-state"
EXPORT_VERSION = 1
TYPES = ("string", "hash", "set", "zset", "list", "stream")


@dataclass(frozen=True, slots=True)
class ImportResult:
    keys: int
    replaced: int  # keys deleted first (``replace``)
    data_format: int  # the file's data format (upgraded to the current one after import)


def _transient(keys: Keys) -> tuple[str, ...]:
    """Key prefixes (without the store prefix) that are never exported."""
    p = len(keys.prefix)
    return (
        keys.lock("")[p:],
        keys.schedule_claim("\0", "").split("\0")[0][p:],
        keys.data_format()[p:],
    )


def _enc(v: bytes | str) -> Any:
    if isinstance(v, str):
        return v
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(v).decode("ascii")}


def _dec(v: Any, where: str) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, dict) and isinstance(v.get("b64"), str):
        try:
            return base64.b64decode(v["b64"], validate=True)
        except ValueError:
            pass
    raise InputError(f'{where}: a value is neither text nor {{"b64": ...}}')


def _stable(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


_READ = {
    "string": lambda p, k: p.get(k),
    "hash": lambda p, k: p.hgetall(k),
    "set": lambda p, k: p.smembers(k),
    "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
    "list": lambda p, k: p.lrange(k, 0, -1),
    "stream": lambda p, k: p.xrange(k),
}


def _shape(kind: str, raw: Any) -> Any:
    """A Redis reply in the file's shape; None when the key vanished meanwhile (expired)."""
    if kind == "string":
        return None if raw is None else _enc(raw)
    if kind == "hash":
        return sorted(([_enc(f), _enc(v)] for f, v in raw.items()), key=_stable)
    if kind == "set":
        return sorted((_enc(m) for m in raw), key=_stable)
    if kind == "zset":
        return [[_enc(m), s] for m, s in raw]
    if kind == "list":
        return [_enc(x) for x in raw]
    return [[text(sid), [[_enc(f), _enc(v)] for f, v in fields.items()]] for sid, fields in raw]


async def _records(redis: aioredis.Redis, names: list[str], n: int) -> list[str]:
    """The key lines of ``names``, read in pipelines of BATCH keys (a few round trips per
    1,000 keys instead of three per key)."""
    out: list[str] = []
    for chunk in chunks(names):
        meta = redis.pipeline(transaction=False)
        for key in chunk:
            meta.type(key)
            meta.pttl(key)
        replies = await meta.execute()
        kinds = [text(t) for t in replies[0::2]]
        ttls = replies[1::2]
        read = redis.pipeline(transaction=False)
        todo = [(key, kind, ttl) for key, kind, ttl in zip(chunk, kinds, ttls, strict=True)]
        todo = [t for t in todo if t[1] in TYPES]  # "none": expired since SCAN
        for key, kind, _ttl in todo:
            _READ[kind](read, key)
        for (key, kind, ttl), raw in zip(todo, await read.execute(), strict=True):
            value = _shape(kind, raw)
            if value is None:
                continue
            record = {"k": key[n:], "t": kind, "v": value, "ttl_ms": ttl if ttl > 0 else None}
            out.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return out


async def export_lines(
    redis: aioredis.Redis, keys: Keys, *, clock: Callable[[], datetime]
) -> list[str]:
    """The export file's lines (without newlines): the header, then one line per key, sorted.
    Refuses a store in a newer data format (StateError ``store_too_new``)."""
    fmt = DataFormat(redis, keys)
    found = await fmt.stored()
    if found is not None and found > DATA_FORMAT:
        raise too_new(found, f"the store (prefix {keys.prefix!r})")
    skip = _transient(keys)
    n = len(keys.prefix)
    names = sorted(
        {text(k) async for k in redis.scan_iter(match=glob_escape(keys.prefix) + "*", count=1000)}
    )
    body = await _records(redis, [k for k in names if not k[n:].startswith(skip)], n)
    header = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "data_format": found if found is not None else (0 if body else DATA_FORMAT),
        "prefix": keys.prefix,
        "exported_at": iso(clock()),
        "keys": len(body),
    }
    return [json.dumps(header, ensure_ascii=False, separators=(",", ":")), *body]


@dataclass(frozen=True, slots=True)
class _Record:
    key: str
    kind: str
    value: Any
    ttl_ms: int | None


def parse_export(lines: Iterable[str], source: str) -> tuple[int, list[_Record]]:
    """(the file's data format, its records), every line checked; InputError names the line."""
    it: Iterator[tuple[int, str]] = ((i, line) for i, line in enumerate(lines, 1) if line.strip())
    first = next(it, None)
    if first is None:
        raise InputError(f"{source} is empty: it is not an Entra Sync state export")
    header = _json(first[1], f"{source} line {first[0]}")
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise InputError(
            f"{source} is not an Entra Sync state export (its first line has no "
            f'"format": "{EXPORT_FORMAT}"); give a file written by: entra-sync state export',
            hint="Give the file written by: entra-sync state export --out FILE",
        )
    version, data_format = header.get("version"), header.get("data_format")
    if not isinstance(version, int) or not isinstance(data_format, int):
        raise InputError(f"{source} line 1: the header has no version or data_format number")
    if version > EXPORT_VERSION:
        raise InputError(
            f"{source} is an export of version {version}, written by a newer Entra Sync (this "
            f"one reads versions up to {EXPORT_VERSION}); upgrade the app, then import it",
            hint="It was written by a newer Entra Sync: upgrade the app, then import it.",
        )
    if data_format > DATA_FORMAT:
        raise InputError(
            f"{source} holds data format {data_format}, written by a newer Entra Sync (this "
            f"one knows formats up to {DATA_FORMAT}); upgrade the app, then import it",
            hint="It was written by a newer Entra Sync: upgrade the app, then import it.",
        )
    records = [_record(_json(line, f"{source} line {i}"), f"{source} line {i}") for i, line in it]
    expected = header.get("keys")
    if isinstance(expected, int) and expected != len(records):
        raise InputError(
            f"{source} is incomplete: the header announces {expected} keys, the file has "
            f"{len(records)}",
            hint="The export was cut short (disk full? copy interrupted?). Export again.",
        )
    return data_format, records


def _json(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"{where} is not JSON ({e.msg}, column {e.colno})") from None


def _record(raw: Any, where: str) -> _Record:
    if not isinstance(raw, dict) or not isinstance(raw.get("k"), str) or not raw["k"]:
        raise InputError(f'{where}: a key line needs "k" (the key), "t" (its type) and "v"')
    kind, value, ttl = raw.get("t"), raw.get("v"), raw.get("ttl_ms")
    if kind not in TYPES:
        raise InputError(f"{where}: unknown key type {kind!r} (expected one of {TYPES})")
    if ttl is not None and (not isinstance(ttl, int) or ttl <= 0):
        raise InputError(f'{where}: "ttl_ms" must be a positive number of milliseconds or null')
    if kind == "string":
        shape_ok = not isinstance(value, list)
    elif kind in ("set", "list"):
        shape_ok = isinstance(value, list)
    else:  # hash, zset, stream: a list of pairs
        shape_ok = isinstance(value, list) and all(
            isinstance(x, list) and len(x) == 2 for x in value
        )
    if not shape_ok:
        raise InputError(f"{where}: the value of {raw['k']!r} is not a {kind}")
    return _Record(raw["k"], kind, _decode(kind, value, where), ttl)


def _decode(kind: str, v: Any, where: str) -> Any:
    if kind == "string":
        return _dec(v, where)
    if kind in ("set", "list"):
        return [_dec(x, where) for x in v]
    if kind == "hash":
        return {_dec(f, where): _dec(x, where) for f, x in v}
    if kind == "zset":
        if not all(isinstance(s, int | float) for _, s in v):
            raise InputError(f"{where}: a sorted-set score is not a number")
        return {_dec(m, where): float(s) for m, s in v}
    out = []
    for sid, fields in v:
        if not isinstance(sid, str) or not isinstance(fields, list):
            raise InputError(f"{where}: a stream entry needs an id and its fields")
        out.append((sid, {_dec(f, where): _dec(x, where) for f, x in fields}))
    return out


async def import_records(
    redis: aioredis.Redis,
    keys: Keys,
    data_format: int,
    records: list[_Record],
    *,
    replace: bool,
) -> ImportResult:
    """Write ``records`` under ``keys.prefix`` in one MULTI/EXEC (see the module notes)."""
    existing = [
        text(k) async for k in redis.scan_iter(match=glob_escape(keys.prefix) + "*", count=1000)
    ]
    skip = _transient(keys)
    data = [k for k in existing if not k[len(keys.prefix) :].startswith(skip)]
    if data and not replace:
        raise InputError(
            f"the store is not empty ({len(data)} keys under the prefix {keys.prefix!r}); add "
            "--replace to overwrite it, or import into an empty store",
            hint=(
                "Import into an empty store, or add --replace to delete what is there first "
                "(export it before: entra-sync state export --out before.jsonl)."
            ),
        )
    async with redis.pipeline(transaction=True) as tx:
        for chunk in chunks(existing):
            tx.delete(*chunk)
        for rec in records:
            _write(tx, keys.prefix + rec.key, rec)
        tx.set(keys.data_format(), str(data_format))
        try:
            replies = await tx.execute(raise_on_error=False)
        except ResponseError as e:
            if not isinstance(e, ExecAbortError) and not isinstance(e.__cause__, ExecAbortError):
                raise
            # refused while queued (e.g. out of memory): EXECABORT, none of it applied
            raise StateError(
                f"Redis refused the import, nothing was changed: {e}",
                code="import_refused",
                hint="Give Redis more memory (maxmemory) or free some, then import again.",
            ) from None
    failed = [r for r in replies if isinstance(r, Exception)]
    if failed:  # checked types and fresh keys make this unexpected; say so, never hide it
        raise StateError(
            f"Redis rejected {len(failed)} of the import's writes ({failed[0]}); the store "
            "is partly imported",
            code="import_partial",
            hint="Import the same file again with --replace.",
        )
    await DataFormat(redis, keys).ensure()
    return ImportResult(len(records), len(data) if replace else 0, data_format)


def _write(tx: Any, key: str, rec: _Record) -> None:
    v = rec.value
    tx.delete(key)
    if rec.kind == "string":
        tx.set(key, v)
    elif rec.kind == "hash" and v:
        tx.hset(key, mapping=v)
    elif rec.kind == "set" and v:
        tx.sadd(key, *v)
    elif rec.kind == "zset" and v:
        tx.zadd(key, v)
    elif rec.kind == "list" and v:
        tx.rpush(key, *v)
    elif rec.kind == "stream":
        for sid, fields in v:
            tx.xadd(key, fields, id=sid)
    if rec.ttl_ms is not None:
        tx.pexpire(key, rec.ttl_ms)
