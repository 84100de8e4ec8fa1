"""Configuration: the TOML file (DESIGN.md §5) and the environment, parsed once at the edge.

Every section is optional; the defaults are the seeds' defaults. A ``[mapping]`` table, when
given, replaces the default mapping as a whole.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.errors import ConfigError, MappingError
from sync.graph.attributes import check_attribute
from sync.models import STRING_FIELDS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScopeSettings(_Strict):
    groups: tuple[str, ...] = ()
    enabled_only: bool = True
    require_phone: bool = True
    # advanced query: a Graph OData $filter on users ("" = none). With groups, a user must be
    # in both. Graph alone judges it (a bad one is refused with Graph's own message).
    filter: str = ""

    @field_validator("filter")
    @classmethod
    def _one_line_filter(cls, v: str) -> str:
        v = v.strip()
        if len(v) > 2000:
            raise ValueError("the scope filter is longer than 2000 characters")
        if any(ord(c) < 32 for c in v):
            raise ValueError("the scope filter must be one line of text (no control characters)")
        return v


DEFAULT_MAPPING: dict[str, str | list[str]] = {
    "first_name": "givenName",
    "last_name": "surname",
    "display_name": "displayName",
    "email": "mail",
}


class MappingSettings(BaseModel):
    """directory field -> Graph attribute (case-sensitive); ``tags`` takes a list."""

    model_config = ConfigDict(frozen=True)
    fields: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] | None = None  # None: tags are not mapped (never touched)

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> MappingSettings:
        fields: dict[str, str] = {}
        tags: tuple[str, ...] | None = None
        seen: dict[str, str] = {}

        def claim(attr: Any, where: str) -> str:
            if not isinstance(attr, str) or not attr:
                raise MappingError(f"mapping.{where}: expected a Graph attribute name")
            check_attribute(attr, where=f"mapping.{where}")
            if attr in seen:
                raise MappingError(
                    f"mapping.{where}: attribute '{attr}' is already mapped to {seen[attr]}; "
                    "each attribute may be mapped once"
                )
            seen[attr] = where
            return attr

        for key, value in table.items():
            if key == "tags":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list):
                    raise MappingError("mapping.tags: expected a list of Graph attribute names")
                tags = tuple(claim(a, "tags") for a in value)
            elif key in STRING_FIELDS:
                fields[key] = claim(value, key)
            else:
                raise MappingError(
                    f"mapping.{key}: unknown directory field; use one of "
                    f"{', '.join((*STRING_FIELDS, 'tags'))}"
                )
        return cls(fields=fields, tags=tags)

    @property
    def attributes(self) -> tuple[str, ...]:
        return (*self.fields.values(), *(self.tags or ()))

    def to_table(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.fields)
        if self.tags is not None:
            out["tags"] = list(self.tags)
        return out


def default_mapping() -> MappingSettings:
    return MappingSettings.from_table(dict(DEFAULT_MAPPING))


class MatchingSettings(_Strict):
    keys: tuple[Literal["phone", "email"], ...] = ("phone", "email")
    default_region: str = "SE"

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        import phonenumbers

        v = v.upper()
        if v not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"'{v}' is not a region code like SE, NO, DE or US")
        return v

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("each key may be listed once")
        return v


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ScheduleSettings(_Strict):
    """When syncs run by themselves: ``manual`` (never), ``daily`` at ``at`` (UTC),
    ``interval`` every ``every_hours``, or ``watch``: a delta round every ``every_seconds``."""

    mode: Literal["manual", "daily", "interval", "watch"] = "manual"
    at: str = "02:00"
    every_hours: int = Field(default=12, ge=1, le=168)
    every_seconds: int = Field(default=60, ge=10, le=3600)

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"'{v}' is not a time like 02:00 (24-hour HH:MM)")
        return v


class GuardSettings(_Strict):
    max_removals: int = Field(default=10, ge=0)
    max_removal_share: float = Field(default=0.2, ge=0.0, le=1.0)


class BotSettings(_Strict):
    admins: tuple[str, ...] = ()
    notify_admins_personally: bool = False
    max_cards_per_run: int = Field(default=5, ge=0, le=50)
    # Teams tenant ids served, besides MICROSOFT_APP_TENANT_ID and each [[tenants]] tenant_id
    tenants: tuple[str, ...] = ()
    # Bot Connector serviceUrl hosts the bot may send to (replaces the default list)
    service_url_allow: tuple[str, ...] = ()


def check_address(value: str) -> str:
    """One e-mail address (``name@example.com``), trimmed; ValueError saying what is wrong.
    No display names, no CR/LF or spaces, a domain with a dot: the address goes into mail
    headers as it is."""
    v = value.strip()
    local, at, domain = v.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain.strip(".")
        or len(v) > 254
        or any(c.isspace() or c in '<>,;:"()[]\\' for c in v)
    ):
        raise ValueError(f"'{v[:80]}' is not an e-mail address like servicedesk@contoso.com")
    return v


class MailTransportSettings(_Strict):
    """``[notify.mail]``: how the notification mails leave. ``graph``: Microsoft Graph sendMail
    from ``from_mailbox`` with the app of ``tenant`` (empty: the first tenant; application
    permission Mail.Send); ``smtp``: ``host``:``port`` with STARTTLS, signing in as ``username``
    with the password in the environment variable ``password_env``."""

    transport: Literal["graph", "smtp"] = "graph"
    from_mailbox: str = ""
    tenant: str = ""
    host: str = ""
    port: int = Field(default=587, ge=1, le=65535)
    username: str = ""
    password_env: str = ""
    starttls: bool = True
    timeout_s: float = Field(default=30.0, gt=0, le=300)

    @field_validator("from_mailbox")
    @classmethod
    def _from(cls, v: str) -> str:
        return check_address(v) if v.strip() else ""

    @model_validator(mode="after")
    def _clear_text(self) -> MailTransportSettings:
        if self.transport == "smtp" and not self.starttls and self.username:
            raise ValueError(
                "starttls = false with a username would send the password in clear text; "
                "keep starttls = true"
            )
        return self


class NotifySettings(_Strict):
    """``[notify]``: ``email`` gets a digest per run (new pending items, errors that need a
    human); ``[notify.mail]`` says how it is sent; ``remind_after_days``: reminders in Teams."""

    email: tuple[str, ...] = Field(default=(), max_length=50)
    mail: MailTransportSettings = MailTransportSettings()
    # items pending longer than this many days are mentioned once a day in one digest; 0: off
    remind_after_days: int = Field(default=3, ge=0, le=365)

    @field_validator("email")
    @classmethod
    def _emails(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out: dict[str, str] = {}
        for x in v:
            address = check_address(x)
            out.setdefault(address.lower(), address)
        return tuple(out.values())

    @model_validator(mode="after")
    def _sender(self) -> NotifySettings:
        if not self.email:
            return self
        m = self.mail
        if not m.from_mailbox:
            raise ValueError(
                "mail.from_mailbox: set the address the notifications come from in "
                "[notify.mail] of the config file (Graph: the mailbox that sends)"
            )
        if m.transport == "smtp" and not m.host:
            raise ValueError(
                'mail.host: transport = "smtp" needs host (and port, default 587) '
                "in [notify.mail] of the config file"
            )
        return self


_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


class AppSettings(_Strict):
    """What the Teams app package (``entra-sync manifest``) shows admins and users: the
    publisher's pages (https) and the bot's public host name. Unset: the template's
    placeholders (example.com), which ``manifest`` refuses once the bot has credentials."""

    developer_name: str | None = Field(default=None, min_length=1, max_length=32)
    website_url: str | None = None
    privacy_url: str | None = None
    terms_url: str | None = None
    domain: str | None = None  # e.g. "sync.contoso.com": added to the package's validDomains

    @field_validator("website_url", "privacy_url", "terms_url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https://[^\s/?#]+\.[^\s/?#]+(/\S*)?$", v):
            raise ValueError(f"'{v}' is not an https:// address (Teams accepts only https)")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not _HOST.match(v):
            raise ValueError(f"'{v}' is not a host name like sync.contoso.com (no https://)")
        return v


class CredentialSettings(_Strict):
    """When ``status`` warns that an Entra app's client secret or certificate expires."""

    warn_days: int = Field(default=30, ge=1, le=365)


class TenantConfig(_Strict):
    name: str
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret_env: str | None = None
    # or a certificate: a PEM file (private key + certificate) or a .pfx; relative to the file
    client_certificate: str | None = None
    client_certificate_password_env: str | None = None  # for an encrypted key or a .pfx
    directory: str = "main"
    directories: tuple[str, ...] = ()
    simulate: str | None = None
    authority_host: str | None = None  # tests: a simulated login host
    graph_url: str | None = None  # tests: a simulated Graph

    @model_validator(mode="after")
    def _either(self) -> TenantConfig:
        if self.simulate is None and not (self.tenant_id and self.client_id):
            raise ValueError(
                f"tenant '{self.name}': give tenant_id, client_id and client_secret_env (or "
                'client_certificate), or simulate = "tenant.json"'
            )
        return self

    @property
    def directory_names(self) -> tuple[str, ...]:
        return self.directories or (self.directory,)


class DirectoryConfig(_Strict):
    name: str = "main"
    kind: Literal["builtin", "scim"] = "builtin"
    seed_file: str | None = None
    url: str | None = None
    token_env: str | None = None

    @model_validator(mode="after")
    def _scim(self) -> DirectoryConfig:
        if self.kind == "scim" and not self.url:
            raise ValueError(f"directory '{self.name}': kind = \"scim\" needs url")
        return self


class Config(BaseModel):
    """The whole TOML config. Frozen: a changed setting is a new Config."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scope: ScopeSettings = ScopeSettings()
    mapping: MappingSettings = Field(default_factory=default_mapping)
    matching: MatchingSettings = MatchingSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    guard: GuardSettings = GuardSettings()
    bot: BotSettings = BotSettings()
    notify: NotifySettings = NotifySettings()
    app: AppSettings = AppSettings()
    credentials: CredentialSettings = CredentialSettings()
    tenants: tuple[TenantConfig, ...] = ()
    directories: tuple[DirectoryConfig, ...] = (DirectoryConfig(),)
    base_dir: Path = Path()

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p


def _format_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:3]:
        loc = ".".join(str(x) for x in e["loc"] if x != "__root__")
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def config_from_dict(
    data: dict[str, Any], *, source: str = "config", base_dir: Path = Path()
) -> Config:
    data = dict(data)
    try:
        if "mapping" in data:
            if not isinstance(data["mapping"], dict):
                raise MappingError("mapping: expected a table")
            data["mapping"] = MappingSettings.from_table(data["mapping"])
        cfg = Config.model_validate({**data, "base_dir": base_dir})
    except MappingError as e:
        raise MappingError(f"{source}: {e.message}") from None
    except ValidationError as e:
        raise ConfigError(f"{source}: {_format_validation(e)}") from None
    names = [t.name for t in cfg.tenants]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: tenant names must be unique")
    dnames = {d.name for d in cfg.directories}
    for t in cfg.tenants:
        for d in t.directory_names:
            if d not in dnames:
                raise ConfigError(f"{source}: tenant '{t.name}' names unknown directory '{d}'")
    mail_tenant = cfg.notify.mail.tenant
    if mail_tenant and mail_tenant not in names:
        raise ConfigError(f"{source}: notify.mail.tenant names unknown tenant '{mail_tenant}'")
    return cfg


def load_config(path: str | Path | None) -> Config:
    """Load a TOML config file; ``None`` gives the defaults. Raises ConfigError naming the file."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    return config_from_dict(data, source=str(p), base_dir=p.parent)


class EnvSettings(BaseSettings):
    """What comes from the environment (README has the table). Secrets are SecretStr."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=True)

    REDIS_URL: str | None = None
    ENTRA_SYNC_REDIS_PREFIX: str = "es:"  # several deployments can share one Redis
    MICROSOFT_APP_ID: str | None = None
    MICROSOFT_APP_PASSWORD: SecretStr | None = None
    MICROSOFT_APP_TENANT_ID: str | None = None
    ENTRA_SYNC_CONFIG: str | None = None
    ENTRA_SYNC_SECRET_KEY: SecretStr | None = None  # Fernet key for secrets at rest in Redis
    ENTRA_SYNC_METRICS_TOKEN: SecretStr | None = None  # bearer token for /metrics (else loopback)
    ENTRA_SYNC_SECRET_KEYS_OLD: SecretStr | None = None  # comma-separated keys still read
    # the certificate `connect` in Teams signs in with when the secret is left empty
    ENTRA_SYNC_CLIENT_CERTIFICATE: str | None = None  # PEM (key + certificate) or .pfx path
    ENTRA_SYNC_CLIENT_CERTIFICATE_PASSWORD: SecretStr | None = None

    @property
    def local_mode(self) -> bool:
        return not self.MICROSOFT_APP_ID
