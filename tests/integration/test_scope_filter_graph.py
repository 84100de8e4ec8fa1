"""The scope filter between GraphClient and the simulated Graph over real HTTP on loopback:
the advanced-query headers are sent, Graph's refusal comes back with Graph's own words."""

from __future__ import annotations

import httpx
import pytest

from sync.devtools.simulator import TenantSim
from sync.errors import ScopeFilterRejected
from tests.integration.test_graph_client import running


def _users() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(7):
        out.append(
            {
                "id": f"e-{i}",
                "accountEnabled": True,
                "displayName": f"User {i}",
                "department": "Support" if i % 2 == 0 else "Sales",
                "jobTitle": "Team lead" if i < 4 else "Agent",
                "businessPhones": [f"+46 8 00{i}"] if i < 3 else [],
            }
        )
    return out


async def test_filtered_ids_are_the_users_graph_returns_for_the_filter_across_pages() -> None:
    sim = TenantSim(_users())
    async with running(sim, page_size=1) as env:
        ids = await env.client.filtered_user_ids(
            "department eq 'Support' and startswith(jobTitle, 'Team')"
        )
    assert ids == {"e-0", "e-2"}


async def test_every_filtered_page_carries_consistency_level_and_count() -> None:
    sim = TenantSim(_users())
    async with running(sim, page_size=1) as env:
        await env.client.filtered_user_ids("department ne 'Sales'")  # ne: advanced only
        pages = [r for r in env.sent if r.url.path.endswith("/users")]
    assert len(pages) == 4  # e-0, e-2, e-4, e-6: one per page
    assert all(r.headers.get("ConsistencyLevel") == "eventual" for r in pages)
    assert all(r.url.params.get("$count") == "true" for r in pages)
    assert [(q.filter, q.advanced) for q in sim.filter_log] == [("department ne 'Sales'", True)] * 4


async def test_a_refused_filter_raises_with_graphs_own_message() -> None:
    sim = TenantSim(_users())
    async with running(sim) as env:
        with pytest.raises(ScopeFilterRejected) as refused:
            await env.client.filtered_user_ids("faxNumber eq '1'")
    assert refused.value.graph_message == (
        "Unsupported or invalid query filter clause specified for property 'faxNumber' of "
        "resource 'User'."
    )
    assert refused.value.code == "scope_filter_rejected" and not refused.value.retryable
    assert "Request_UnsupportedQuery" in refused.value.message


async def test_the_simulator_refuses_ne_without_the_advanced_headers() -> None:
    sim = TenantSim(_users())
    async with running(sim) as env:
        token = await env.tokens.token()
        async with httpx.AsyncClient() as http:  # a plain request, without the headers
            resp = await http.get(
                f"{env.url}/v1.0/users",
                params={"$filter": "department ne 'Sales'"},
                headers={"Authorization": f"Bearer {token}"},
            )
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "Request_UnsupportedQuery"
    assert err["message"].startswith("Operator 'ne' is not supported")
    assert sim.filter_log[-1].advanced is False
