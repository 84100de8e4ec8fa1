"""The workaround for msrest's quadratic retry list (bot/adapter.py) keeps msrest's codes."""

from __future__ import annotations

from msrest.universal_http.requests import ClientRetryPolicy

from bot.adapter import TeamsAdapter, quick_msrest_retry_codes


def test_the_retry_status_list_is_msrests_own_with_the_set() -> None:
    safe = [i for i in range(500) if i != 408] + [501, 505]  # msrest 0.7.1's list
    expected = [i for i in range(999) if i not in safe]
    TeamsAdapter()  # applies it
    quick_msrest_retry_codes()  # idempotent
    assert isinstance(ClientRetryPolicy.safe_codes, frozenset)
    assert ClientRetryPolicy().policy.status_forcelist == expected
    assert expected[:4] == [408, 500, 502, 503]
