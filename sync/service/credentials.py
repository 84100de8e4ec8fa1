"""When the Entra app's credential expires: its client secret or certificate, read from the
app's own registration in Graph (``GET /applications(appId='...')?$select=passwordCredentials,
keyCredentials``, permission Application.Read.All), so `status` warns before the sign-in fails.

Which entry is the one in use: a secret's first three characters are its ``hint``; a
certificate's SHA-1 thumbprint is its ``customKeyIdentifier``. A certificate's own expiry is
known locally too, so it is shown even when Graph may not be read.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sync.errors import GraphError, GraphPermissionDenied
from sync.graph.auth import ClientCertificate, Credential
from sync.graph.client import GraphClient

# unknown: may not be read (a missing permission, shown with what to grant); unchecked: the
# read failed for another reason (Graph down, the app registered in another tenant): not shown
State = Literal["ok", "expiring", "expired", "unknown", "unchecked"]
SELECT = ("passwordCredentials", "keyCredentials")
PERMISSION = "Application.Read.All"
GRANT_HINT = (
    f"grant the Microsoft Graph application permission {PERMISSION} to the app (Entra > App "
    "registrations > your app > API permissions) and admin consent, so the bot can read when "
    "its own secret or certificate expires"
)
RENEW_SECRET = (
    "create a new secret in Entra > App registrations > your app > Certificates & secrets, "
    "then run connect (or update the secret's environment variable)"
)
RENEW_CERTIFICATE = (
    "upload a new certificate in Entra > App registrations > your app > Certificates & "
    "secrets and point the bot at it"
)


@dataclass(frozen=True, slots=True)
class CredentialExpiry:
    """The state of the credential a tenant signs in with. ``message`` is an admin's line."""

    state: State
    kind: Literal["secret", "certificate"]
    ends_at: datetime | None
    days_left: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "kind": self.kind,
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "days_left": self.days_left,
            "message": self.message,
        }


def _when(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _thumbprint_of(custom_key_identifier: object) -> str:
    """A keyCredential's ``customKeyIdentifier`` as upper-case hex: Graph shows the hex
    thumbprint, or (Edm.Binary) its base64."""
    text = str(custom_key_identifier or "").strip()
    if len(text) == 40 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.upper()
    try:
        return base64.b64decode(text, validate=True).hex().upper()
    except (binascii.Error, ValueError):
        return text.upper()


def _ends(entries: Sequence[Mapping[str, Any]]) -> list[datetime]:
    return [d for d in (_when(e.get("endDateTime")) for e in entries) if d is not None]


def credential_end(app: Mapping[str, Any], credential: Credential) -> datetime | None:
    """When the credential in use ends, per the app registration: the matching entry (for a
    secret its hint, for a certificate its thumbprint); none matches: the latest of its kind
    (the bot signs in, so one of them is in use); none at all: None."""
    if isinstance(credential, ClientCertificate):
        entries = [e for e in app.get("keyCredentials") or [] if isinstance(e, Mapping)]
        mine = [
            e
            for e in entries
            if _thumbprint_of(e.get("customKeyIdentifier")) == credential.sha1_thumbprint
        ]
    else:
        entries = [e for e in app.get("passwordCredentials") or [] if isinstance(e, Mapping)]
        prefix = credential.get_secret_value()[:3]
        mine = [e for e in entries if e.get("hint") and e.get("hint") == prefix]
    ends = _ends(mine) or _ends(entries)
    return max(ends) if ends else None


def evaluate(
    ends_at: datetime | None, credential: Credential, *, now: datetime, warn_days: int
) -> CredentialExpiry:
    """The state of a credential that ends at ``ends_at`` (None: unknown)."""
    kind: Literal["secret", "certificate"] = (
        "certificate" if isinstance(credential, ClientCertificate) else "secret"
    )
    what = "client certificate" if kind == "certificate" else "client secret"
    renew = RENEW_CERTIFICATE if kind == "certificate" else RENEW_SECRET
    if ends_at is None:
        return CredentialExpiry(
            "unknown", kind, None, None, f"The {what}'s expiry is unknown: none is listed."
        )
    left = ends_at - now
    days = left.days
    day = ends_at.date().isoformat()
    if left.total_seconds() <= 0:
        return CredentialExpiry(
            "expired", kind, ends_at, days, f"The {what} expired on {day}: {renew}."
        )
    if days < warn_days:
        when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
        return CredentialExpiry(
            "expiring", kind, ends_at, days, f"The {what} expires {when} ({day}): {renew}."
        )
    return CredentialExpiry("ok", kind, ends_at, days, f"The {what} is valid until {day}.")


async def check_expiry(
    graph: GraphClient,
    client_id: str,
    credential: Credential,
    *,
    now: datetime,
    warn_days: int,
) -> CredentialExpiry:
    """Read the app registration and evaluate the credential in use. Never raises a
    GraphError: without the permission (403) the expiry is "unknown" with what to grant."""
    local_end = credential.not_after if isinstance(credential, ClientCertificate) else None
    try:
        app = await graph.application(client_id, SELECT)
    except GraphError as e:
        if local_end is not None:
            return evaluate(local_end, credential, now=now, warn_days=warn_days)
        if isinstance(e, GraphPermissionDenied):
            return CredentialExpiry(
                "unknown", "secret", None, None, f"Expiry unknown: {GRANT_HINT}."
            )
        return CredentialExpiry(
            "unchecked",
            "secret",
            None,
            None,
            f"Expiry not checked: the app registration could not be read ({e.code}).",
        )
    ends = credential_end(app, credential)
    if local_end is not None:
        ends = min(ends, local_end) if ends is not None else local_end
    return evaluate(ends, credential, now=now, warn_days=warn_days)
