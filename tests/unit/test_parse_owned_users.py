"""parse_owned_entra_users (the Graph client's page parser) against parse_entra_user (the
reference): equal users, the same errors in the same order, for Graph-shaped and odd JSON."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.errors import GraphDataError
from sync.models import (
    _NAMED_KEYS,
    MAX_ATTR_LEN,
    MAX_LIST_LEN,
    EntraUser,
    make_entra_user,
    parse_entra_user,
    parse_owned_entra_user,
    parse_owned_entra_users,
)


def reference(values: list[Any]) -> tuple[list[EntraUser], list[str]]:
    users: list[EntraUser] = []
    errors: list[str] = []
    for obj in values:
        try:
            users.append(parse_entra_user(obj))
        except GraphDataError as e:
            errors.append(e.message)
    return users, errors


def owned(values: list[Any]) -> tuple[list[EntraUser], list[str]]:
    users, errors = parse_owned_entra_users(values)
    assert all(isinstance(e, GraphDataError) for e in errors)
    return users, [e.message for e in errors]


def assert_same(values: list[Any]) -> None:
    expected = reference(copy.deepcopy(values))
    got = owned(copy.deepcopy(values))
    assert got == expected
    for g, e in zip(got[0], expected[0], strict=True):
        assert type(g) is EntraUser
        assert list(g.attrs) == list(e.attrs)  # the same keys in the same order


# JSON as Graph could send it, and then some: the named attributes with every type, odd keys,
# long strings and lists, nested objects, numbers.
KEYS = st.sampled_from(
    [
        "id",
        "accountEnabled",
        *sorted(_NAMED_KEYS),  # the attributes the parser checks by name
        "otherMails",
        "department",
        "@odata.type",
        "@odata.etag",
        "@other",
        "0day",
        "Zed",
        "_x",
        "ödla",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "\u2003", "x" * MAX_ATTR_LEN, "y" * (MAX_ATTR_LEN + 1)])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(st.text(max_size=5), min_size=MAX_LIST_LEN, max_size=MAX_LIST_LEN + 1)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
IDS = st.sampled_from(["e1", "e2", "", "   ", "\t", "x" * 128, "x" * 129]) | st.text(max_size=8)


@st.composite
def users(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["graph", "graph", "graph", "odd", "not_a_dict"]))
    if kind == "not_a_dict":
        return draw(VALUES)
    obj: dict[str, Any] = {}
    if kind == "graph":  # the shape Graph sends, with a few values swapped for anything
        obj = {
            "displayName": draw(st.text(max_size=10) | st.none()),
            "mobilePhone": draw(st.none() | st.text(max_size=10)),
            "businessPhones": draw(st.lists(st.text(max_size=10), max_size=3)),
            "id": draw(IDS),
            "accountEnabled": draw(st.booleans()),
        }
    for k, v in draw(st.dictionaries(KEYS, VALUES | IDS, max_size=4)).items():
        obj[k] = v
    for k in draw(st.lists(KEYS, max_size=2)):
        obj.pop(k, None)
    return obj


@settings(max_examples=600, deadline=None)
@given(values=st.lists(users(), max_size=6))
def test_owned_pages_parse_like_the_reference(values: list[Any]) -> None:
    assert_same(values)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(users(), max_size=6))
def test_owned_pages_parse_like_the_reference_after_a_json_round_trip(values: list[Any]) -> None:
    assert_same(json.loads(json.dumps(values)))


def test_a_graph_page_reuses_its_dicts_and_lists() -> None:
    phones = ["+46 8 123"]
    obj = {"displayName": "Åsa", "businessPhones": phones, "id": "e1", "accountEnabled": True}
    (u,), errors = parse_owned_entra_users([obj])
    assert errors == []
    assert u == EntraUser(
        "e1", True, {"displayName": "Åsa", "businessPhones": ["+46 8 123"], "accountEnabled": True}
    )
    assert u.attrs is obj and u.attrs["businessPhones"] is phones


MALFORMED = [
    {"displayName": "Carl Dahl", "mobilePhone": "+46701234569"},
    {"id": "e-carl", "accountEnabled": "sometimes", "displayName": "Carl"},
    {"id": "e-carl", "businessPhones": "+46 8 123 456", "displayName": "Carl"},
    {"id": "e-carl", "mobilePhone": 46701234569, "displayName": "Carl"},
    {"id": "e-carl", "mobilePhone": "+46701234569", "displayName": "C" * 1_000_000},
    {"id": "e" * 10_000},
    "e-carl",
    [1, 2, 3],
    {"id": "e-carl", "displayName": "Carl", "otherMails": ["x@y"] * 5000},
    {"id": "e-carl", "mobilePhone": True},
    {"id": "e-carl", "businessPhones": [True]},
    {"id": "e-carl", "otherMails": ["x" * (MAX_ATTR_LEN + 1)]},
    {},
]


def test_each_malformed_shape_gives_the_reference_error_between_good_users() -> None:
    good = {"id": "e1", "accountEnabled": True, "displayName": "Anna"}
    for bad in MALFORMED:
        values = [dict(good), bad, {**good, "id": "e2"}]
        assert_same(values)
        users, errors = owned(copy.deepcopy(values))
        assert [u.id for u in users] == ["e1", "e2"] and len(errors) == 1


def test_odata_keys_are_dropped_and_other_at_keys_kept_like_the_reference() -> None:
    obj = {"@odata.type": "#microsoft.graph.user", "id": "e1", "@x": 1, "displayName": "A"}
    assert_same([obj])
    (u,), _ = owned([dict(obj)])
    assert u.attrs == {"@x": 1, "displayName": "A"}


def test_one_owned_user_raises_the_reference_error() -> None:
    try:
        parse_owned_entra_user({"id": "e-carl", "accountEnabled": "sometimes"})
    except GraphDataError as e:
        assert e.message == "user e-carl: accountEnabled is not true/false"
    else:
        raise AssertionError("no error")
    assert parse_owned_entra_user({"id": "e1"}) == EntraUser("e1", True, {})


def test_make_entra_user_equals_the_dataclass_constructor() -> None:
    attrs = {"displayName": "A"}
    u = make_entra_user("e1", False, attrs)
    assert u == EntraUser("e1", False, attrs) and repr(u) == repr(EntraUser("e1", False, attrs))
    try:
        u.id = "x"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("EntraUser is frozen")
