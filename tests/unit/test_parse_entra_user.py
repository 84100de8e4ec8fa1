"""parse_entra_user: one Graph user object to an EntraUser, or a GraphDataError naming what is
wrong with it (the reader counts such entries and makes the read incomplete)."""

from __future__ import annotations

from typing import Any

import pytest

from sync.errors import GraphDataError
from sync.models import MAX_ATTR_LEN, MAX_LIST_LEN, EntraUser, parse_entra_user


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"displayName": "Carl Dahl"}, "a user entry has no valid 'id'"),
        ({}, "a user entry has no valid 'id'"),
        ({"id": "   "}, "a user entry has no valid 'id'"),
        ({"id": "e" * 129}, "a user entry has no valid 'id'"),
        ("e-carl", "a user entry is a str, not an object"),
        ([1, 2, 3], "a user entry is a list, not an object"),
        (
            {"id": "e-carl", "accountEnabled": "sometimes"},
            "user e-carl: accountEnabled is not true/false",
        ),
        (
            {"id": "e-carl", "businessPhones": "+46 8 123 456"},
            "user e-carl: businessPhones is not a list of strings",
        ),
        (
            {"id": "e-carl", "businessPhones": [True]},
            "user e-carl: businessPhones is not a list of strings",
        ),
        ({"id": "e-carl", "mobilePhone": 46701234569}, "user e-carl: mobilePhone is not a string"),
        ({"id": "e-carl", "mobilePhone": True}, "user e-carl: mobilePhone is not a string"),
        (
            {"id": "e-carl", "displayName": "C" * 1_000_000},
            "user e-carl: attribute displayName is 1000000 characters (limit 1024)",
        ),
        (
            {"id": "e-carl", "otherMails": ["x@y"] * 5000},
            "user e-carl: attribute otherMails has 5000 entries",
        ),
        (
            {"id": "e-carl", "otherMails": ["x" * (MAX_ATTR_LEN + 1)]},
            "user e-carl: attribute otherMails is 1025 characters (limit 1024)",
        ),
        (
            {"id": "e-carl", "extra": {"a": {1, 2}}},
            "user e-carl: attribute extra.a has an unexpected type",
        ),
    ],
)
def test_a_malformed_user_raises_an_error_naming_the_problem(obj: Any, message: str) -> None:
    with pytest.raises(GraphDataError) as e:
        parse_entra_user(obj)
    assert e.value.message == message


def test_a_graph_user_keeps_every_attribute_but_the_id_and_odata_annotations() -> None:
    phones = ["+46 8 123"]
    obj = {
        "@odata.type": "#microsoft.graph.user",
        "id": "e1",
        "@x": 1,
        "displayName": "Åsa",
        "businessPhones": phones,
        "accountEnabled": False,
        "onPremisesExtensionAttributes": {"extensionAttribute1": "sales", "n": 2.5},
        "mail": None,
    }
    u = parse_entra_user(obj)
    assert u == EntraUser(
        "e1",
        False,
        {
            "@x": 1,
            "displayName": "Åsa",
            "businessPhones": ["+46 8 123"],
            "accountEnabled": False,
            "onPremisesExtensionAttributes": {"extensionAttribute1": "sales", "n": 2.5},
            "mail": None,
        },
    )
    assert u.attrs["businessPhones"] is not phones  # the caller's object is not kept


def test_a_user_without_account_enabled_is_enabled() -> None:
    assert parse_entra_user({"id": "e1"}) == EntraUser("e1", True, {})


def test_values_at_the_bounds_are_accepted() -> None:
    longest = "x" * MAX_ATTR_LEN
    u = parse_entra_user(
        {"id": "e" * 128, "displayName": longest, "otherMails": ["a"] * MAX_LIST_LEN}
    )
    assert u.attrs["displayName"] == longest and len(u.attrs["otherMails"]) == MAX_LIST_LEN
