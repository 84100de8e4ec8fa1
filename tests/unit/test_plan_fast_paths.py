"""The planner's shortcuts agree with the reference rules they skip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.config import MappingSettings, default_mapping
from sync.models import DirectoryUser, EntraUser
from sync.plan.mapping import clean, field_changes
from sync.plan.phones import normalize
from sync.plan.planner import KIND_ORDER, InStep, entra_phones, is_clean

# names as people type them, plus every kind of whitespace, angle brackets and separators
TEXT = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list("Anna Öberg<>|  \t\u00a0\u2003\n-'.")), max_size=12),
    st.text(max_size=8),
)


@settings(max_examples=2000, deadline=None)
@given(TEXT.filter(lambda t: t is not None))
def test_is_clean_text_is_what_clean_gives_back(text: str) -> None:
    if is_clean(text):
        assert clean(text) == text


def test_is_clean_accepts_ordinary_names() -> None:
    assert is_clean("Anna Öberg-Lind") and not is_clean("Anna  Öberg") and not is_clean("A <x>")


def _pair(
    values: list[str | None], dir_values: list[str | None]
) -> tuple[EntraUser, DirectoryUser]:
    attrs = dict(zip(("givenName", "surname", "displayName", "mail"), values, strict=True))
    user = EntraUser(id="e1", enabled=True, attrs=attrs)
    d = DirectoryUser("d1", *dir_values, entra_id="e1")  # first, last, display, email
    return user, d


@settings(max_examples=3000, deadline=None)
@given(
    values=st.lists(TEXT, min_size=4, max_size=4),
    same=st.lists(st.booleans(), min_size=4, max_size=4),
    other=st.lists(TEXT, min_size=4, max_size=4),
)
def test_in_step_only_when_no_field_changes(
    values: list[str | None], same: list[bool], other: list[str | None]
) -> None:
    dir_values = [v if s else o for v, s, o in zip(values, same, other, strict=True)]
    user, d = _pair(values, dir_values)
    mapping = default_mapping()
    check = InStep.for_mapping(mapping)
    assert check is not None
    if check(user.attrs, d):
        assert field_changes(user, d, mapping) == {}


def test_in_step_is_sure_for_equal_clean_values_and_not_for_a_changed_surname() -> None:
    check = InStep.for_mapping(default_mapping())
    assert check is not None
    user, d = _pair(
        ["Anna", "Berg", "Anna Berg", "anna@x.se"], ["Anna", "Berg", "Anna Berg", "anna@x.se"]
    )
    assert check(user.attrs, d)
    user, d = _pair(
        ["Anna", "Lind", "Anna Lind", "anna@x.se"], ["Anna", "Berg", "Anna Berg", "anna@x.se"]
    )
    assert not check(user.attrs, d)


def test_in_step_reads_users_whose_null_attributes_were_left_out() -> None:
    check = InStep.for_mapping(default_mapping())
    assert check is not None
    user = EntraUser(id="e1", enabled=True, attrs={"givenName": "Bo", "surname": "Ek"})
    assert check(user.attrs, DirectoryUser("d1", "Bo", "Ek", None, None, entra_id="e1"))
    assert not check(user.attrs, DirectoryUser("d1", "Bo", "Ek", "Bo Ek", None, entra_id="e1"))


def test_mappings_with_tags_or_dotted_attributes_take_the_full_comparison() -> None:
    tags = MappingSettings.from_table({"first_name": "givenName", "tags": ["department"]})
    dotted = MappingSettings.from_table(
        {"first_name": "onPremisesExtensionAttributes.extensionAttribute1"}
    )
    assert InStep.for_mapping(tags) is None
    assert InStep.for_mapping(dotted) is None


PHONE = st.one_of(
    st.none(),
    st.sampled_from(["070-123 45 67", "+46 8 123 456 78", "  ", "", "x", "0046701234567"]),
)


@settings(max_examples=500, deadline=None)
@given(
    mobile=PHONE,
    business=st.one_of(st.none(), st.lists(PHONE.filter(lambda p: p is not None), max_size=3)),
)
def test_entra_phones_fast_path_gives_the_general_result(
    mobile: str | None, business: list[str] | None
) -> None:
    user = EntraUser(
        id="e1", enabled=True, attrs={"mobilePhone": mobile, "businessPhones": business}
    )
    expected: dict[str, str] = {}
    for source, raw in user.raw_phones:
        e = normalize(raw, "SE")
        if e is not None and e not in expected:
            expected[e] = source
    assert entra_phones(user, "SE") == tuple(expected.items())


@settings(max_examples=300, deadline=None)
@given(
    labels=st.lists(st.sampled_from(["Anna", "anna", "Bo", "Åsa", ""]), min_size=1, max_size=8),
    keep=st.lists(st.booleans(), min_size=8, max_size=8),
    twice=st.booleans(),
)
def test_sorting_with_the_last_order_gives_the_order_of_a_sort_from_scratch(
    labels: list[str], keep: list[bool], twice: bool
) -> None:
    """``_sort`` merges the proposals kept from the last plan (already in order) with the new
    ones; it must give what sorting everything gives, also when an id is there twice."""
    from dataclasses import replace

    from sync.models import Kind, Proposal
    from sync.plan.planner import _sort, _World

    kinds = [Kind.UPDATE, Kind.NEW, Kind.MATCH, Kind.REMOVAL]
    made = [
        Proposal(kind=kinds[i % 4], entra_id=f"e{i}", app_user_id=None, reason="r", label=lab)
        for i, lab in enumerate(labels)
    ]
    last = object.__new__(_World)
    last.order = _sort(list(made), None)
    now = [p if keep[i] else replace(p, label=p.label + "x", id="") for i, p in enumerate(made)]
    if twice:
        now.append(replace(now[0]))  # another object with the same id
    expected = sorted(now, key=lambda p: (KIND_ORDER[p.kind], p.label.lower(), p.id))
    got = [p for _k, p in _sort(list(now), last)]
    assert [(p.kind, p.label, p.id) for p in got] == [(p.kind, p.label, p.id) for p in expected]
