"""One error tree for the whole product.

Every error has a stable ``code`` (logs, tests and cards key on it, never on the text), whether
it is ``retryable``, and a ``hint`` an admin can act on. Secrets never go into any of them.
"""

from __future__ import annotations

from typing import ClassVar


class SyncError(Exception):
    """Root of every error the product raises on purpose."""

    code: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False
    default_hint: ClassVar[str] = ""

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        if code is not None:
            self.code = code  # type: ignore[misc]

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "retryable": self.retryable,
        }

    def __str__(self) -> str:
        return self.message


# --- input and configuration -------------------------------------------------------------


class InputError(SyncError):
    """A file or a value given by a person is wrong. Names the file/field and the problem."""

    code = "bad_input"


class ConfigError(InputError):
    code = "bad_config"


class MappingError(ConfigError):
    code = "bad_mapping"


# --- Microsoft Graph and Entra --------------------------------------------------------------


class GraphError(SyncError):
    code = "graph_error"


class GraphUnavailable(GraphError):
    """5xx, timeouts, connection errors: try again later."""

    code = "graph_unavailable"
    retryable = True
    default_hint = "Microsoft Graph did not answer. The sync will retry; nothing was changed."


class GraphThrottled(GraphUnavailable):
    code = "graph_throttled"
    default_hint = (
        "Microsoft Graph is throttling this app (HTTP 429). The sync backs off and retries; "
        "if it keeps happening, sync less often."
    )

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GraphPermissionDenied(GraphError):
    code = "graph_permission_denied"
    default_hint = (
        "The Entra app lacks a Microsoft Graph application permission. In Entra admin center > "
        "App registrations > your app > API permissions, add User.Read.All (and "
        "GroupMember.Read.All for group scope) as Application permissions and click "
        "'Grant admin consent'. User.ReadBasic.All is not enough: it has no phone numbers."
    )


class GraphNotFound(GraphError):
    code = "graph_not_found"
    default_hint = "A group selected in the scope no longer exists in Entra. Check the settings."


class ScopeFilterRejected(GraphError):
    """Graph refused the ``[scope] filter`` (400): the message is Graph's own."""

    code = "scope_filter_rejected"
    default_hint = (
        "Microsoft Graph refused the scope filter. Fix it in the settings card or [scope] "
        "filter (see 'Advanced query capabilities on Microsoft Entra ID objects' for the "
        "operators each user property takes); nothing was changed."
    )

    def __init__(self, message: str, *, graph_message: str = "") -> None:
        super().__init__(message)
        self.graph_message = graph_message  # Graph's own words, shown as they are


class DeltaExpired(GraphError):
    """The delta link is no longer valid (410 / syncStateNotFound): do a full resync."""

    code = "delta_expired"
    retryable = True


class GraphDataError(GraphError):
    """Graph answered with something that is not what Graph answers."""

    code = "graph_bad_data"
    default_hint = "Microsoft Graph returned data the bot could not read. Nothing was changed."


class AuthError(GraphError):
    """The token endpoint refused us. ``aadsts`` is the Entra error number when there is one."""

    code = "auth_failed"

    def __init__(self, message: str, *, aadsts: int | None = None, hint: str | None = None) -> None:
        self.aadsts = aadsts
        super().__init__(message, hint=hint if hint is not None else aadsts_hint(aadsts))
        if aadsts is not None:
            self.code = f"AADSTS{aadsts}"  # type: ignore[misc]

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["aadsts"] = self.aadsts
        return out


class AuthUnavailable(AuthError):
    code = "auth_unavailable"
    retryable = True


AADSTS_HINTS: dict[int, str] = {
    7000215: (
        "The client secret is wrong. Paste the secret's Value (shown once when it is created), "
        "not its Secret ID. If you just created it, wait a minute and try again."
    ),
    7000222: (
        "The client secret expired: create a new one in Entra > App registrations > your app > "
        "Certificates & secrets and run connect (or update the secret's environment variable)."
    ),
    700027: (
        "Entra does not know the certificate the bot signs in with (or the signature is wrong). "
        "Upload the certificate's public part (.cer/.pem) in Entra > App registrations > your "
        "app > Certificates & secrets, and check that its thumbprint matches."
    ),
    700024: (
        "The certificate sign-in was outside its valid time: check the clock of the machine "
        "the bot runs on (it must be within 5 minutes of the real time)."
    ),
    700016: (
        "The client id is not an app in this tenant. Check the Application (client) ID and the "
        "tenant id, and that the app was consented in this tenant."
    ),
    90002: "The tenant was not found. Check the Directory (tenant) ID.",
    900023: "The tenant id is malformed. Use the Directory (tenant) ID, a GUID or a domain name.",
    1002012: "The requested scope must end in /.default (this is a bug; please report it).",
    53003: (
        "Conditional Access blocked the sign-in. Exclude this app (a service principal) from "
        "the policy, or allow it from where the bot runs."
    ),
    90055: "Entra is throttling sign-ins for this app. The bot retries later.",
    50196: "Entra detected a sign-in loop. The bot will retry later.",
    65001: (
        "Admin consent is missing. Send the admin-consent link to an Entra admin, or grant "
        "consent in App registrations > API permissions."
    ),
    7000218: "The request needs a client secret. Set the secret for this tenant.",
}


def aadsts_hint(code: int | None) -> str:
    if code is None:
        return "Sign-in to Entra failed. Check tenant id, client id and secret."
    return AADSTS_HINTS.get(
        code,
        f"Entra refused the sign-in (AADSTS{code}). Look the code up at "
        "https://learn.microsoft.com/entra/identity-platform/reference-error-codes",
    )


# --- state, proposals, directory -----------------------------------------------------------


class StateError(SyncError):
    code = "state_error"


class StoreUnavailable(StateError):
    code = "store_unavailable"
    retryable = True
    default_hint = "The Redis store is not reachable. The sync will retry; nothing was lost."


class ProposalNotFound(StateError):
    code = "proposal_not_found"
    default_hint = "This item is not known (it may have been cleaned up). Run 'pending' again."


class ProposalNotPending(StateError):
    """Someone else (or an earlier click) already decided this proposal."""

    code = "proposal_not_pending"

    def __init__(self, message: str, *, state: str, actor: str | None, at: str | None) -> None:
        super().__init__(message)
        self.state = state
        self.actor = actor
        self.at = at


class ProposalStale(StateError):
    code = "proposal_stale"
    default_hint = "The data in Entra changed since this card was posted; it has been refreshed."


class NotAuthorized(SyncError):
    code = "not_authorized"
    default_hint = "Only the admins named in the bot's settings can do this."


class LockBusy(SyncError):
    code = "sync_running"
    retryable = True
    default_hint = "A sync for this tenant is already running. Try again in a moment."


class DirectoryError(SyncError):
    code = "directory_error"


class DirectoryConflict(DirectoryError):
    code = "directory_conflict"
    default_hint = "The phone system already has a user with this value (it must be unique)."


class DirectoryNotFound(DirectoryError):
    code = "directory_not_found"
    default_hint = "The user no longer exists in the phone system. Run 'sync now'."


class DirectoryPreconditionFailed(DirectoryError):
    code = "directory_changed"
    retryable = True
    default_hint = "The user changed in the phone system meanwhile; the bot re-reads and retries."


class DirectoryAuthError(DirectoryError):
    code = "directory_auth"
    default_hint = (
        "The phone system refused the token. Check the SCIM token's environment variable."
    )


class DirectoryUnavailable(DirectoryError):
    code = "directory_unavailable"
    retryable = True
    default_hint = "The phone system's API did not answer. The bot will retry."


class DirectoryRejected(DirectoryError):
    """The phone system refused the request as invalid (SCIM 400: bad value, bad filter...)."""

    code = "directory_rejected"
    default_hint = (
        "The phone system refused the values sent (see the message). Check the mapping and the "
        "user's data in Entra."
    )


# --- e-mail notifications -------------------------------------------------------------------


class MailError(SyncError):
    """An e-mail notification could not be sent (never breaks a sync; shown in status)."""

    code = "mail_failed"
    default_hint = "Check the [notify.mail] settings in the config file."


class MailUnavailable(MailError):
    """The mail server or Graph did not answer (refused, timed out, 5xx)."""

    code = "mail_unavailable"
    retryable = True
    default_hint = (
        "The mail server did not answer. Check [notify.mail] host and port and that the bot "
        "may reach it; the next run with news tries again."
    )


class MailRefused(MailError):
    """The mail server or Graph refused the message: sign-in, sender, or recipients."""

    code = "mail_refused"
