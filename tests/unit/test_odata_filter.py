"""The simulator's OData ``$filter`` on users (sync/devtools/odata_filter.py): the documented
operators, Graph's advanced-query rules and its refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.devtools.odata_filter import FilterRefused, parse_filter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "graph"
EXAMPLES = json.loads((FIXTURES / "users-filter-advanced-query.json").read_text())
ERRORS = json.loads((FIXTURES / "users-filter-advanced-query-errors.json").read_text())

ANNA: dict[str, Any] = {
    "id": "e-anna",
    "accountEnabled": True,
    "department": "Support",
    "jobTitle": "Team lead",
    "displayName": "Anna Lind",
    "city": "Lund",
    "mail": "anna@contoso.example",
    "companyName": None,
    "mobilePhone": "+46701111111",
    "businessPhones": ["+46 8 123 45"],
    "proxyAddresses": ["SMTP:anna@contoso.onmicrosoft.com"],
}
BO: dict[str, Any] = {
    **ANNA,
    "id": "e-bo",
    "department": "Sales",
    "jobTitle": "Seller",
    "city": "Oslo",
    "displayName": "Conference room",
    "accountEnabled": False,
    "businessPhones": ["+47 22 00 00 00"],
    "companyName": "Contoso",
}


def takes(text: str, user: dict[str, Any], *, advanced: bool = True) -> bool:
    return parse_filter(text, advanced=advanced)(user)


@pytest.mark.parametrize("text", EXAMPLES["default"])
def test_documented_default_filters_need_no_advanced_parameters(text: str) -> None:
    parse_filter(text, advanced=False)  # raises when Graph would refuse it


@pytest.mark.parametrize("text", EXAMPLES["advanced_only"])
def test_documented_advanced_filters_are_refused_without_the_advanced_parameters(
    text: str,
) -> None:
    parse_filter(text, advanced=True)
    with pytest.raises(FilterRefused) as refused:
        parse_filter(text, advanced=False)
    assert (refused.value.status, refused.value.code) == (400, "Request_UnsupportedQuery")


def test_the_issue_example_takes_support_team_leads_only() -> None:
    text = "department eq 'Support' and startswith(jobTitle, 'Team')"
    assert [takes(text, u) for u in (ANNA, BO)] == [True, False]


def test_any_on_business_phones_matches_an_element_prefix() -> None:
    text = "businessPhones/any(p:startswith(p, '+46'))"
    assert [takes(text, u) for u in (ANNA, BO)] == [True, False]


def test_in_matches_any_listed_value_case_insensitively() -> None:
    assert [takes("city in ('lund', 'Malmö')", u) for u in (ANNA, BO)] == [True, False]


def test_ne_null_and_not_combine_as_documented() -> None:
    text = "companyName ne null and NOT(companyName eq 'Microsoft')"
    assert [takes(text, u) for u in (ANNA, BO)] == [False, True]


def test_or_binds_looser_than_and() -> None:
    text = "city eq 'Oslo' or department eq 'Support' and jobTitle eq 'Nobody'"
    assert [takes(text, u) for u in (ANNA, BO)] == [False, True]


def test_ends_with_on_a_collection_through_any() -> None:
    text = "proxyAddresses/any(p:endsWith(p, 'OnMicrosoft.com'))"
    assert takes(text, ANNA)


def test_missing_advanced_parameters_answer_graphs_documented_error() -> None:
    want = ERRORS["missing_advanced_parameters"]
    with pytest.raises(FilterRefused) as refused:
        parse_filter("endsWith(userPrincipalName,'#EXT#@contoso.com')", advanced=False)
    assert refused.value.status == want["status"]
    assert {"code": refused.value.code, "message": refused.value.message} == want["error"]


def test_a_property_graph_does_not_filter_answers_graphs_documented_error() -> None:
    want = ERRORS["property_not_indexed"]
    with pytest.raises(FilterRefused) as refused:
        parse_filter("faxNumber eq '1'", advanced=True)
    assert refused.value.status == want["status"]
    assert {"code": refused.value.code, "message": refused.value.message} == want["error"]


@pytest.mark.parametrize(
    "text",
    [
        "businessPhones eq '+46'",  # a collection needs any()
        "startswith(accountEnabled, 't')",  # startsWith on a Boolean
        "endsWith(department, 'port')",  # endsWith only on mail, otherMails, UPN, proxyAddresses
        "city gt 'A'",  # no gt on users
        "contains(displayName, 'a')",  # no contains on users
        "businessPhones/all(p:p eq '1')",  # all() is not supported
    ],
)
def test_unsupported_filters_are_refused_as_unsupported_queries(text: str) -> None:
    with pytest.raises(FilterRefused) as refused:
        parse_filter(text, advanced=True)
    assert (refused.value.status, refused.value.code) == (400, "Request_UnsupportedQuery")


@pytest.mark.parametrize(
    "text", ["department eq", "(city eq 'Lund'", "city eq 'Lund' and", "city eq 'unclosed"]
)
def test_text_that_does_not_parse_is_a_bad_request_naming_the_position(text: str) -> None:
    with pytest.raises(FilterRefused) as refused:
        parse_filter(text, advanced=True)
    assert refused.value.code == "BadRequest"
    assert "Syntax error at position" in refused.value.message


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
def test_a_quoted_literal_round_trips_any_text(value: str) -> None:
    user = {**ANNA, "department": value}
    assert takes(f"department eq {_literal(value)}", user)


@given(
    st.sampled_from(["Support", "Sales", "support", "Ops"]),
    st.sampled_from(["Lund", "Oslo"]),
)
def test_not_is_the_negation_and_de_morgan_holds(dept: str, city: str) -> None:
    user = {**ANNA, "department": dept, "city": city}
    a, b = "department eq 'Support'", "city eq 'Lund'"
    assert takes(f"not ({a})", user) is not takes(a, user)
    assert takes(f"not ({a} or {b})", user) == takes(f"not ({a}) and not ({b})", user)
