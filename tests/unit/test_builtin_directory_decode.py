"""The built-in directory's bulk paths equal their reference: decoding a stored user (orjson,
slots set directly) gives what json.loads + ``DirectoryUser(...)`` gave (the same users, the
same errors), and the listing order is ``sorted(ids, key=_id_sort_key)``."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.directories.builtin import _decode_user, _encode_user, _id_sort_key, _sorted_ids
from sync.models import DirectoryUser

FIELDS = [
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
]

texts = st.text(st.characters(categories=None), max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.floats()
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
objects = st.dictionaries(st.sampled_from(FIELDS) | texts, json_values, max_size=12)


def outcome(f: Any, raw: bytes | str) -> Any:
    try:
        u = f(raw)
    except Exception as e:
        return ("error", type(e))
    try:
        h: int | None = hash(u)
    except TypeError:
        h = None  # a list inside phones or tags: unhashable either way
    return ("ok", u, repr(u), h)


def reference(raw: bytes | str) -> DirectoryUser:
    """_decode_user as it was: json.loads, then DirectoryUser.from_dict inlined."""
    d = json.loads(raw)
    get = d.get
    return DirectoryUser(
        str(d["id"]),
        get("first_name"),
        get("last_name"),
        get("display_name"),
        get("email"),
        tuple(get("phones") or ()),
        tuple(get("tags") or ()),
        get("entra_id"),
        bool(get("sync_enabled", True)),
        bool(get("active", True)),
    )


@settings(max_examples=800)
@given(objects | json_values, st.booleans(), st.booleans())
def test_decode_user_equals_from_dict_of_json_loads(
    obj: Any, ensure_ascii: bool, as_bytes: bool
) -> None:
    try:
        text = json.dumps(obj, ensure_ascii=ensure_ascii)
    except ValueError:  # pragma: no cover - json writes NaN and any string
        return
    raw: bytes | str = text
    if as_bytes:
        try:
            raw = text.encode()
        except UnicodeEncodeError:  # lone surrogates: not storable in Redis as UTF-8
            raw = text.encode("utf-8", "surrogatepass")
    assert outcome(_decode_user, raw) == outcome(reference, raw)


users = st.builds(
    DirectoryUser,
    id=texts.filter(bool),
    first_name=st.none() | texts,
    last_name=st.none() | texts,
    display_name=st.none() | texts,
    email=st.none() | texts,
    phones=st.lists(texts, max_size=3).map(tuple),
    tags=st.lists(texts, max_size=3).map(tuple),
    entra_id=st.none() | texts,
    sync_enabled=st.booleans(),
    active=st.booleans(),
)


@settings(max_examples=800)
@given(
    users,
    st.sampled_from(FIELDS),
    json_values
    | st.lists(json_values, max_size=3)
    | st.just("<missing>")
    # numbers orjson reads differently from json (beyond 64 bits: a float), alone or in a list
    | st.sampled_from([2**64, -(2**63) - 1, 10**30, 1.5, -0.0, 1e300]).flatmap(
        lambda n: st.sampled_from([n, [n], ["+46701234567", n]])
    ),
    st.booleans(),
)
def test_decode_user_equals_the_reference_for_a_stored_user_with_one_field_changed(
    user: DirectoryUser, key: str, value: Any, ensure_ascii: bool
) -> None:
    d = user.to_dict()
    if value == "<missing>":
        d.pop(key, None)
    else:
        d[key] = value
    raw = json.dumps(d, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    assert outcome(_decode_user, raw) == outcome(reference, raw)


@settings(max_examples=300)
@given(users)
def test_decode_user_reads_back_what_encode_user_wrote(user: DirectoryUser) -> None:
    try:
        raw = _encode_user(user).encode()
    except UnicodeEncodeError:  # lone surrogates: Redis never stores them
        return
    got = _decode_user(raw)
    assert got == user and hash(got) == hash(user) and repr(got) == repr(user)


def test_decode_user_reads_the_stored_format() -> None:
    raw = (
        b'{"id":"67724","first_name":"Ebba","last_name":"Pettersson","display_name":'
        b'"Ebba Pettersson","email":"ebba@contoso.se","phones":["+4683852237"],"tags":[],'
        b'"sync_enabled":true,"active":false,"entra_id":"8346"}'
    )
    assert _decode_user(raw) == DirectoryUser(
        "67724",
        "Ebba",
        "Pettersson",
        "Ebba Pettersson",
        "ebba@contoso.se",
        ("+4683852237",),
        (),
        "8346",
        True,
        False,
    )


ids = st.lists(
    st.from_regex(r"\A[0-9]{1,6}\Z")
    | st.sampled_from(["0", "00", "007", "7", "٣", "²", "", "a", "Z", "10a"])
    | texts,
    max_size=40,
)


@settings(max_examples=800)
@given(ids)
def test_sorted_ids_equals_sorting_by_id_sort_key(uids: list[str]) -> None:
    def order(f: Any) -> Any:
        try:
            return f(uids)
        except Exception as e:
            return type(e)

    assert order(_sorted_ids) == order(lambda x: sorted(x, key=_id_sort_key))
