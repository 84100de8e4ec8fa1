"""View records: the small, typed inputs of the card builders.

The bot fills these from the sync state; the builders in :mod:`cards.build` turn them into
Adaptive Card JSON. Every string here may come from Entra or the directory and is escaped by
the builders, never by the caller. Times are ``datetime`` values (UTC): the builders show them
in the viewer's own time zone (Adaptive Cards' ``{{DATE()}}``/``{{TIME()}}``, see
``cards.catalogue.Texts.when``); a ``str`` is still accepted and shown as given (escaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from sync.models import Change, Kind

# A moment on a card: a datetime (shown in the viewer's zone), or text shown as given.
At = datetime | str

MAX_REFRESH_USERS = 60  # Teams: refresh.userIds holds at most 60 ids
MAX_LINK_CHOICES = 100  # Input.ChoiceSet "target" of the new-user card


class Verb(StrEnum):
    """Every ``Action.Execute`` verb a card can send. The bot routes on these exact strings."""

    ACCEPT = "accept"
    IGNORE = "ignore"
    APPLY = "apply"
    LINK = "link"
    CREATE = "create"
    REMOVE_SYNC = "remove_sync"
    DELETE_USER = "delete_user"
    DELETE_USER_CONFIRM = "delete_user_confirm"
    PICK_OWNER = "pick_owner"
    GUARD_CONFIRM = "guard_confirm"
    GUARD_DISMISS = "guard_dismiss"
    ACCEPT_ALL = "accept_all"
    APPLY_ALL = "apply_all"
    UNIGNORE = "unignore"
    REFRESH = "refresh"
    SETTINGS_SAVE = "settings_save"
    CONNECT_SAVE = "connect_save"
    DISCONNECT_CONFIRM = "disconnect_confirm"
    DISCONNECT_CANCEL = "disconnect_cancel"
    BULK_CONFIRM = "bulk_confirm"
    BULK_CANCEL = "bulk_cancel"
    PAGE = "page"


# Ids of the inputs whose values Teams adds to an action's data.
INPUT_TARGET = "target"  # new card: directory user id to link to
INPUT_OWNER = "owner"  # conflict card: Entra id that owns the number


@dataclass(frozen=True, slots=True)
class CardRef:
    """What a card carries back: the item id and the digest of the data it shows.

    ``pid`` is a proposal id (or a guard/digest/settings id); ``digest`` lets the server see
    that the data changed since the card was posted. ``admin_ids`` are the Teams user ids for
    ``refresh.userIds`` (at most 60 are used)."""

    pid: str
    digest: str
    admin_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EntraPerson:
    """An Entra user as a card shows it."""

    id: str
    name: str
    upn: str = ""  # userPrincipalName or mail


@dataclass(frozen=True, slots=True)
class AppUser:
    """A phone-system directory user as a card shows it."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class MatchView:
    ref: CardRef
    entra: EntraPerson
    app_user: AppUser
    key: str  # "phone" | "email"
    value: str  # e.g. "+46701234567"
    source: str = ""  # Graph attribute that matched, e.g. "mobilePhone"
    changes: Mapping[str, Change] = field(default_factory=dict)  # what Accept will write


@dataclass(frozen=True, slots=True)
class LinkChoice:
    """One directory user offered in the Link picker."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class NewView:
    ref: CardRef
    entra: EntraPerson
    fields: Mapping[str, Change] = field(default_factory=dict)  # what Create would write (new)
    choices: tuple[LinkChoice, ...] = ()  # first MAX_LINK_CHOICES are offered
    choices_total: int | None = None  # how many directory users there are, if more


@dataclass(frozen=True, slots=True)
class UpdateView:
    ref: CardRef
    entra: EntraPerson
    app_user: AppUser
    changes: Mapping[str, Change] = field(default_factory=dict)


class RemovalCause(StrEnum):
    DELETED = "deleted"  # permanently deleted in Entra (or no longer readable)
    SOFT_DELETED = "soft_deleted"  # in Entra's deleted users: restorable until a date
    DISABLED = "disabled"
    OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True, slots=True)
class RemovalView:
    ref: CardRef
    entra: EntraPerson
    app_user: AppUser
    cause: RemovalCause
    restorable_until: date | str = ""  # soft-deleted: the date (formatted for the language)


@dataclass(frozen=True, slots=True)
class ConflictView:
    ref: CardRef
    number: str  # E.164
    claimants: tuple[EntraPerson, ...]  # two or more
    holder: AppUser | None = None  # directory user holding the number, if any


ProposalView = MatchView | NewView | UpdateView | RemovalView | ConflictView


@dataclass(frozen=True, slots=True)
class GuardView:
    ref: CardRef
    removals: int  # N: what this run would remove
    linked: int  # M: linked users
    tenant: str = ""


@dataclass(frozen=True, slots=True)
class DigestItem:
    kind: Kind
    name: str


@dataclass(frozen=True, slots=True)
class Pager:
    """Where a digest page is in the pending list. ``previous``/``next``: what the page
    buttons carry (a page cursor and its HMAC, nothing the server trusts), None at an end;
    ``changed``: the list changed since the pressed page was shown."""

    page: int
    pages: int
    first: int  # the position of the page's first item in the list (1-based)
    after: int  # how many items come after this page
    previous: CardRef | None = None
    next: CardRef | None = None
    changed: bool = False


@dataclass(frozen=True, slots=True)
class DigestView:
    """Many pending items in one card. ``ref.pid`` is the batch id for Accept all / Apply all."""

    ref: CardRef
    counts: Mapping[Kind, int]
    items: tuple[DigestItem, ...] = ()
    limit: int = 10
    pager: Pager | None = None


@dataclass(frozen=True, slots=True)
class AutoAppliedView:
    """Scheduled mode: what was applied without asking."""

    applied: int
    items: tuple[DigestItem, ...] = ()
    at: At = ""  # when
    limit: int = 10


@dataclass(frozen=True, slots=True)
class TenantStatus:
    name: str
    connected: bool
    error_code: str = ""  # e.g. "AADSTS7000215" or "graph_permission_denied"
    error_hint: str = ""  # the admin hint from sync.errors
    last_sync_at: At = ""  # "" = never
    last_sync_ok: bool | None = None
    last_sync_reason: str = ""  # why the last sync failed
    next_sync_at: At = ""  # "" = manual mode
    synced: int = 0
    syncable: int = 0
    pending: Mapping[Kind, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MailStatus:
    """The last notification mail: when, whether it went, and why not."""

    at: At
    ok: bool
    recipients: int = 0
    error_code: str = ""
    error_message: str = ""
    error_hint: str = ""


@dataclass(frozen=True, slots=True)
class StatusView:
    tenants: tuple[TenantStatus, ...]
    mail: MailStatus | None = None  # None: no mail sent or tried yet


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    IGNORED = "ignored"
    APPLIED = "applied"
    LINKED = "linked"
    CREATED = "created"
    REMOVED_SYNC = "removed_sync"
    DELETED = "deleted"
    OWNER_PICKED = "owner_picked"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    SUPERSEDED = "superseded"
    HANDLED = "handled"  # someone else decided; state unknown to the viewer


@dataclass(frozen=True, slots=True)
class DecidedView:
    """The card that replaces a proposal once it is decided: no buttons, but what was decided
    (linked to whom, which owner kept the number, which fields were written), by whom, when."""

    title: str  # e.g. the user's name
    outcome: Outcome
    actor: str = ""  # admin display name ("" for the system, e.g. superseded)
    at: At = ""  # when it was decided
    summary: tuple[str, ...] = ()  # extra short lines (untrusted text allowed)
    kind: Kind | None = None  # the proposal's kind
    app_user: AppUser | None = None  # linked to / kept / deleted / updated directory user
    changes: Mapping[str, Change] = field(default_factory=dict)  # the fields written
    number: str = ""  # conflict: the shared number
    owner: EntraPerson | None = None  # conflict: who keeps the number


class RefusalReason(StrEnum):
    NOT_ADMIN = "not_admin"
    NOT_PENDING = "not_pending"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class RefusalView:
    reason: RefusalReason
    actor: str = ""  # not_pending: who handled it
    at: At = ""  # not_pending: when
    state: str = ""  # not_pending: e.g. "accepted"
    proposal: ProposalView | None = None  # shown read-only under the notice, when given


@dataclass(frozen=True, slots=True)
class ScopeImpactView:
    """What a new scope filter would do to one tenant and directory (settings card)."""

    tenant: str
    directory: str
    in_scope_before: int
    in_scope_after: int
    removals: int
    held_back: bool  # the mass-removal guard would hold the removals back


@dataclass(frozen=True, slots=True)
class SettingsView:
    ref: CardRef  # pid: the settings item (e.g. "settings:contoso"), digest of saved settings
    groups: tuple[str, ...] = ()
    scope_filter: str = ""  # advanced query: a Graph OData $filter on users
    # a new filter Graph took: its impact, and the HMAC its "Confirm and save" button carries
    filter_impacts: tuple[ScopeImpactView, ...] = ()
    filter_confirm: str = ""
    enabled_only: bool = True
    require_phone: bool = True
    first_name: str = "givenName"
    last_name: str = "surname"
    display_name: str = "displayName"
    email: str = "mail"
    tags: tuple[str, ...] = ()
    mode: str = "manual"  # "manual" | "daily" | "interval" | "watch"
    at: str = "02:00"
    every_hours: int = 12
    every_seconds: int = 60
    max_removals: int = 10
    max_removal_share: float = 0.2
    notify_admins_personally: bool = False
    max_cards_per_run: int = 5
    notify_email: tuple[str, ...] = ()  # addresses that get the digest mail per run
    errors: Mapping[str, str] = field(default_factory=dict)  # input id -> message


@dataclass(frozen=True, slots=True)
class ConnectView:
    """Connect a tenant. Deliberately has no secret field: the secret input is never filled."""

    ref: CardRef
    tenant_id: str = ""
    client_id: str = ""
    consent_url: str = ""  # see cards.text.admin_consent_url
    errors: Mapping[str, str] = field(default_factory=dict)  # input id -> message
    # the bot has a certificate (SHA-1 thumbprint, as Entra shows it): the secret is optional
    certificate_thumbprint: str = ""


@dataclass(frozen=True, slots=True)
class PendingItem:
    kind: Kind
    name: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PendingListView:
    items: tuple[PendingItem, ...]
    limit: int = 30


@dataclass(frozen=True, slots=True)
class IgnoredItem:
    entra_id: str
    name: str
    digest: str = ""


@dataclass(frozen=True, slots=True)
class IgnoredListView:
    items: tuple[IgnoredItem, ...]
    limit: int = 20


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: str
    action: str  # e.g. "accepted", "applied"
    at: At
    subject: str  # the user's name
    before: str = ""
    after: str = ""
    # only the fields that changed: (field, before, after); shown instead of before/after
    changes: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AuditView:
    entries: tuple[AuditEntry, ...]
    limit: int = 20


@dataclass(frozen=True, slots=True)
class HelpView:
    commands: tuple[tuple[str, str], ...]  # (command, description)


@dataclass(frozen=True, slots=True)
class PreviewItem:
    kind: Kind
    name: str
    changes: Mapping[str, Change] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PreviewView:
    items: tuple[PreviewItem, ...]
    counts: Mapping[Kind, int] = field(default_factory=dict)
    limit: int = 20


@dataclass(frozen=True, slots=True)
class Button:
    """One ``Action.Execute`` of a notice card: it sends ``verb`` with ``{"pid", "d"}``."""

    title: str
    verb: Verb
    ref: CardRef
    destructive: bool = False


@dataclass(frozen=True, slots=True)
class NoticeView:
    """A short card: a title, a few lines of (untrusted) text, optional buttons."""

    title: str
    lines: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class BulkEntry:
    """One item of a bulk action's list: who, and (left out) why it needs its own look."""

    name: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BulkView:
    """Accept all / Apply all: the items it decides (or decided), the items it leaves out.
    ``ref`` (confirmation only) carries the digest of exactly the listed set of ids."""

    kind: Kind
    items: tuple[BulkEntry, ...]
    left_out: tuple[BulkEntry, ...] = ()
    ref: CardRef | None = None
    actor: str = ""
    at: At = ""
    failed: int = 0
    limit: int = 15
