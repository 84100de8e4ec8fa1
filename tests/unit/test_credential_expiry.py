"""Which app credential is in use and when it ends, from the documented application object
(tests/fixtures/graph/application-credentials-response.json), and the state status shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from sync.graph.auth import ClientCertificate
from sync.service.credentials import credential_end, evaluate

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "graph"
NOW = datetime(2026, 1, 5, 14, 2, tzinfo=UTC)


def app() -> dict[str, Any]:
    data = json.loads((FIXTURE / "application-credentials-response.json").read_text())
    body: dict[str, Any] = data["responses"][0]
    return body


def cert(sha1: str, not_after: datetime) -> ClientCertificate:
    return ClientCertificate(SecretStr("k"), "pem", sha1, "00", not_after)


def test_the_secret_in_use_is_found_by_its_first_three_characters() -> None:
    assert credential_end(app(), SecretStr("rig-secret-value~1")) == datetime(
        2026, 1, 15, tzinfo=UTC
    )
    assert credential_end(app(), SecretStr("Old-one")) == datetime(2025, 6, 1, tzinfo=UTC)


def test_an_unmatched_secret_is_taken_as_the_latest_ending_one() -> None:
    assert credential_end(app(), SecretStr("zzz")) == datetime(2026, 1, 15, tzinfo=UTC)


def test_the_certificate_in_use_is_found_by_its_thumbprint() -> None:
    mine = cert("52ED9B5038A47B9E2E2190715CC238359D4F8F73", NOW + timedelta(days=900))
    assert credential_end(app(), mine) == datetime(2027, 1, 1, tzinfo=UTC)


def test_an_app_without_credentials_of_the_kind_has_no_end() -> None:
    assert credential_end({"passwordCredentials": []}, SecretStr("abc")) is None


@pytest.mark.parametrize(
    ("days", "state"),
    [(45, "ok"), (30, "ok"), (29, "expiring"), (10, "expiring"), (0, "expiring"), (-1, "expired")],
)
def test_the_state_follows_the_days_left_against_the_warning_window(days: int, state: str) -> None:
    ends = NOW + timedelta(days=days, hours=1)
    got = evaluate(ends, SecretStr("abc"), now=NOW, warn_days=30)
    assert got.state == state
    assert got.kind == "secret"


def test_an_expiring_secret_says_when_and_where_to_renew_it() -> None:
    got = evaluate(NOW + timedelta(days=9, hours=2), SecretStr("abc"), now=NOW, warn_days=30)
    assert "expires in 9 days" in got.message
    assert "Certificates & secrets" in got.message and "connect" in got.message


def test_an_expired_certificate_says_so_with_the_date() -> None:
    c = cert("AB" * 20, NOW - timedelta(days=2))
    got = evaluate(c.not_after, c, now=NOW, warn_days=30)
    assert got.state == "expired" and got.kind == "certificate"
    assert (NOW - timedelta(days=2)).date().isoformat() in got.message
