"""The e-mail run listener: at most one digest mail per run, only when there is news.

News of a run: the pending items it created, and the problems that need a human (the
connection lost, the client secret expired, the guard holding removals back). A problem is
told once: what was last told per tenant and directory is kept in Redis, and the same error
or the same held-back set in the next runs is no news; a run that ends well clears it, so the
next failure is told again. Nothing to tell: no mail.

The mail is sent in the background: the run returns at once (``idle()`` waits for the mails,
``aclose()`` lets them finish at shutdown). A failed mail is logged (code, hint) and kept as
the last result for ``status``; the problems it carried are told again by the next run. It
never breaks or slows a sync.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import MailTransportSettings, NotifySettings
from sync.errors import (
    AuthError,
    AuthUnavailable,
    ConfigError,
    DirectoryAuthError,
    DirectoryUnavailable,
    GraphPermissionDenied,
    GraphUnavailable,
    MailError,
    MailRefused,
)
from sync.graph.client import GraphClient
from sync.mail.digest import (
    NewItem,
    OutgoingMail,
    Problem,
    ProblemKind,
    RunNews,
    channel_link,
    compose,
)
from sync.mail.transports import GraphMail, MailTransport, SmtpMail
from sync.models import ProposalState
from sync.service.records import RunResult
from sync.state.keys import Keys

log = logging.getLogger(__name__)

SECRET_EXPIRED = "AADSTS7000222"
# errors of a run that need a human (besides any AADSTS sign-in error): the connection is lost
HUMAN_ERRORS = frozenset(
    {
        AuthError.code,
        AuthUnavailable.code,
        GraphPermissionDenied.code,
        GraphUnavailable.code,
        ConfigError.code,
        DirectoryAuthError.code,
        DirectoryUnavailable.code,
    }
)


@dataclass(frozen=True, slots=True)
class MailResult:
    """The last mail's outcome, for ``status``."""

    at: datetime
    ok: bool
    recipients: int
    items: int
    problems: int
    code: str = ""
    message: str = ""
    hint: str = ""

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "at": self.at.isoformat()})

    @classmethod
    def from_json(cls, raw: str | bytes) -> MailResult:
        data = json.loads(raw)
        return cls(**{**data, "at": datetime.fromisoformat(data["at"])})


def problem_of(result: RunResult) -> Problem | None:
    """The run's error when a human must act on it, else None."""
    e = result.error
    if result.status != "failed" or e is None:
        return None
    kind: ProblemKind
    if e.code == SECRET_EXPIRED:
        kind = "secret_expired"
    elif e.code.startswith("AADSTS") or e.code in HUMAN_ERRORS:
        kind = "connection"
    else:
        return None
    return Problem(result.tenant, result.directory, kind, e.code, e.message, e.hint)


def guard_of(result: RunResult) -> Problem | None:
    if not result.blocked:
        return None
    held = "; ".join(f"{b.count} held back: {b.reason}" for b in result.blocked)
    return Problem(
        result.tenant,
        result.directory,
        "guard",
        "guard",
        held,
        "Confirm or dismiss the guard card in the Teams channel.",
    )


def _guard_mark(result: RunResult) -> str | None:
    marks = sorted(f"{b.reason}\u0000{b.count}" for b in result.blocked)
    return "\u0001".join(marks) if marks else None


def news_of(
    results: Sequence[RunResult], told: Mapping[str, Mapping[str, Any]]
) -> tuple[RunNews, dict[str, dict[str, Any]]]:
    """What a run has to tell, given what was told before (``told``: ``tenant/directory`` ->
    ``{"error": code, "guard": mark}``); and what is told once this news is sent. Pure."""
    items: list[NewItem] = []
    problems: list[Problem] = []
    after: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.status == "skipped":
            continue
        key = f"{r.tenant}/{r.directory}"
        before = dict(told.get(key) or {})
        now = dict(before)
        problem = problem_of(r)
        if r.status == "ok":
            now["error"] = None
            mark = _guard_mark(r)
            guard = guard_of(r)
            if guard is not None and mark != before.get("guard"):
                problems.append(guard)
            now["guard"] = mark
        elif problem is not None:
            if problem.code != before.get("error"):
                problems.append(problem)
            now["error"] = problem.code
        for item in r.new_items:
            if item.state is ProposalState.PENDING:
                p = item.proposal
                name = p.label or ", ".join(p.entra_labels) or p.entra_id or item.id
                items.append(NewItem(r.tenant, r.directory, p.kind, name, p.reason))
        if now != before:
            after[key] = now
    return RunNews(tuple(items), tuple(problems)), after


class MailNotifier:
    """Registered as a run listener (one call per run, with all its results)."""

    def __init__(
        self,
        *,
        settings: Callable[[], NotifySettings],
        graph_for: Callable[[str], GraphClient | None],
        channel_ref: Callable[[], Awaitable[Mapping[str, Any] | None]],
        redis: aioredis.Redis,
        keys: Keys,
        clock: Callable[[], datetime],
        environ: Mapping[str, str],
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._settings, self._graph_for, self._channel_ref = settings, graph_for, channel_ref
        self._r, self._k, self._clock = redis, keys, clock
        self._environ = environ
        self.tls_context = tls_context  # SMTP: None = the system's trust store (SSL_CERT_FILE)
        self._sending: set[asyncio.Task[None]] = set()
        self._order = asyncio.Lock()

    async def last_result(self) -> MailResult | None:
        raw = await self._r.get(self._k.mail_status())
        return MailResult.from_json(raw) if raw else None

    async def on_runs(self, results: Sequence[RunResult]) -> None:
        """Hand the run to the mail sender and return: a run never waits for a mail server.
        Runs are mailed one after the other, in the order they ended."""
        if not self._settings().email or not results:
            return
        task = asyncio.create_task(self._deliver(list(results)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def idle(self) -> None:
        """Wait until every run handed over has been mailed (or has failed to be)."""
        while self._sending:
            await asyncio.wait(list(self._sending))

    async def aclose(self, timeout_s: float = 60.0) -> None:
        """Let the mails in flight finish (at most ``timeout_s``), then give up on them."""
        if not self._sending:
            return
        _, late = await asyncio.wait(list(self._sending), timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning(
                "notification mail: %d mail(s) still sending at shutdown, dropped", len(late)
            )

    async def _deliver(self, results: Sequence[RunResult]) -> None:
        async with self._order:
            try:
                await self._mail_run(results)
            except Exception:  # a bug or Redis gone: logged; the sync already ended well
                log.exception("notification mail: the run could not be mailed")

    async def _mail_run(self, results: Sequence[RunResult]) -> None:
        notify = self._settings()
        if not notify.email:
            return
        raw = await self._r.hgetall(self._k.mail_sent())  # type: ignore[misc]
        told = {_text(k): json.loads(v) for k, v in raw.items()}
        news, after = news_of(results, told)
        if news:
            ref = await self._channel_ref()
            mail = compose(
                news,
                sender=notify.mail.from_mailbox,
                to=notify.email,
                link=channel_link(ref),
                at=max(r.finished_at for r in results),
            )
            if not await self._send(notify.mail, mail, news):
                return  # the problems are told again by the next run
        if after:
            await self._r.hset(  # type: ignore[misc]
                self._k.mail_sent(), mapping={k: json.dumps(v) for k, v in after.items()}
            )

    async def _send(
        self, settings: MailTransportSettings, mail: OutgoingMail, news: RunNews
    ) -> bool:
        counts = (len(mail.to), len(news.items), len(news.problems))
        try:
            await self.transport(settings).send(mail)
        except MailError as e:
            log.warning("notification mail failed: %s: %s (hint: %s)", e.code, e.message, e.hint)
            failed = MailResult(self._clock(), False, *counts, e.code, e.message, e.hint)
            await self._r.set(self._k.mail_status(), failed.to_json())
            return False
        log.info("notification mail sent to %d recipients (%d items, %d problems)", *counts)
        await self._r.set(self._k.mail_status(), MailResult(self._clock(), True, *counts).to_json())
        return True

    def transport(self, settings: MailTransportSettings) -> MailTransport:
        """The transport of ``[notify.mail]``; raises MailError when it cannot be built."""
        if settings.transport == "graph":
            graph = self._graph_for(settings.tenant)
            if graph is None:
                raise MailRefused(
                    f"no open tenant '{settings.tenant or '(the first)'}' to send mail with",
                    hint=(
                        "Graph sendMail uses a connected tenant's app: connect it, set "
                        '[notify.mail] tenant, or use transport = "smtp".'
                    ),
                )
            return GraphMail(graph, settings.from_mailbox)
        password: SecretStr | None = None
        if settings.password_env:
            value = self._environ.get(settings.password_env)
            if not value:
                raise MailRefused(
                    f"the SMTP password is missing: {settings.password_env} is not set",
                    hint=f"Set the environment variable {settings.password_env} for the bot.",
                )
            password = SecretStr(value)
        return SmtpMail(
            settings.host,
            settings.port,
            username=settings.username,
            password=password,
            starttls=settings.starttls,
            timeout_s=settings.timeout_s,
            tls_context=self.tls_context,
        )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
