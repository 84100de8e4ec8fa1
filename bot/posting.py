"""Proactive posting into Teams: new items as cards (or one digest), card updates in place,
inside Teams' per-thread rate limits, with backoff on 429/412/502/504 honouring Retry-After.

Rate limiting is a sliding window per conversation, kept in memory per process (decision: a
bot deployment runs one process per bot; a multi-process deployment would move the window to
``keys.post_window(conv)``). Every attempt counts, failed ones too, as Teams counts requests.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.adapter import ConnectorError
from sync.metrics import Metrics
from sync.retry import RetryableFailure, RetryPolicy

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]

# Teams, per bot per conversation thread: 7/s, 8 per 2 s, 60 per 30 s, 1800 per hour.
TEAMS_LIMITS: tuple[tuple[float, int], ...] = ((1.0, 7), (2.0, 8), (30.0, 60), (3600.0, 1800))
# 5 attempts; Retry-After (capped at 60 s), else 1 s doubling up to 60 s
TEAMS_RETRY = RetryPolicy(max_retries=4, base_delay=1.0, max_delay=60.0, max_retry_after=60.0)


class Sender(Protocol):
    async def send(
        self, ref: dict[str, Any], activity: dict[str, Any], *, reply_to: str | None = None
    ) -> str: ...

    async def update(
        self, ref: dict[str, Any], activity_id: str, activity: dict[str, Any]
    ) -> None: ...


class ConversationStore(Protocol):
    async def conversation(self, conv_id: str) -> dict[str, Any] | None: ...

    async def notify_channel(self) -> str | None: ...

    async def set_card_ref(self, pid: str, ref: dict[str, Any]) -> None: ...

    async def card_ref(self, pid: str) -> dict[str, Any] | None: ...


@dataclass
class SlidingWindowLimiter:
    """Waits (with the injected sleep) until one more message fits every window."""

    clock: Monotonic
    sleep: Sleep
    limits: tuple[tuple[float, int], ...] = TEAMS_LIMITS
    _sent: dict[str, deque[float]] = field(default_factory=dict)

    def wait_time(self, conv: str) -> float:
        now = self.clock()
        sent = self._sent.setdefault(conv, deque())
        longest = max(w for w, _ in self.limits)
        while sent and sent[0] <= now - longest:
            sent.popleft()
        wait = 0.0
        for window, limit in self.limits:
            inside = [t for t in sent if t > now - window]
            if len(inside) >= limit:
                # the oldest message that must leave the window before one more fits
                wait = max(wait, inside[len(inside) - limit] + window - now)
        return wait

    async def acquire(self, conv: str) -> None:
        while (wait := self.wait_time(conv)) > 0:
            await self.sleep(wait)
        self._sent[conv].append(self.clock())

    def history(self, conv: str) -> list[float]:
        return list(self._sent.get(conv, ()))


def _conv_id(ref: Mapping[str, Any]) -> str:
    conv = ref.get("conversation") or {}
    return str(conv.get("id") or "")


@dataclass
class Poster:
    """Every outgoing message of the bot goes through here (replies too), so the rate limit and
    the retry policy hold for all of them."""

    sender: Sender
    store: ConversationStore
    limiter: SlidingWindowLimiter
    sleep: Sleep
    retry: RetryPolicy = TEAMS_RETRY
    metrics: Metrics | None = None  # counts each request (``what``: send, update) and its 429s

    async def _attempt(self, conv: str, what: str, op: Callable[[], Awaitable[Any]]) -> Any:
        """``op`` inside the rate limit, retried by the policy when the connector error is
        retryable (every attempt waits for the limiter)."""

        async def attempt(number: int) -> Any:
            await self.limiter.acquire(conv)
            try:
                result = await op()
                if self.metrics is not None:
                    self.metrics.teams_request(what, 200)
                return result
            except ConnectorError as e:
                if self.metrics is not None:
                    self.metrics.teams_request(what, e.status)
                log.warning("teams send failed (%s, status %s, try %d)", e.code, e.status, number)
                if e.retryable:
                    raise RetryableFailure(e, e.retry_after) from None
                raise

        return await self.retry.run(attempt, sleep=self.sleep)

    async def send(
        self, ref: dict[str, Any], activity: dict[str, Any], *, reply_to: str | None = None
    ) -> str:
        result = await self._attempt(
            _conv_id(ref), "send", lambda: self.sender.send(ref, activity, reply_to=reply_to)
        )
        return str(result or "")

    async def update(self, ref: dict[str, Any], activity_id: str, activity: dict[str, Any]) -> None:
        await self._attempt(
            _conv_id(ref), "update", lambda: self.sender.update(ref, activity_id, activity)
        )

    # --- higher level -------------------------------------------------------------------------
    async def targets(self, personal: Sequence[str] = ()) -> list[tuple[str, dict[str, Any]]]:
        """The conversations to notify: the notify channel, then admins' 1:1 chats (stored under
        ``user:<aad id>`` when they wrote to the bot personally)."""
        out: list[tuple[str, dict[str, Any]]] = []
        channel = await self.store.notify_channel()
        if channel:
            ref = await self.store.conversation(channel)
            if ref:
                out.append((channel, ref))
        for aad in personal:
            ref = await self.store.conversation(f"user:{aad}")
            if ref:
                out.append((_conv_id(ref), ref))
        return out

    async def post_cards(
        self,
        cards: Sequence[tuple[str | None, dict[str, Any]]],
        *,
        personal: Sequence[str] = (),
    ) -> int:
        """Post each (pid, card) to every target; remember where item cards went so they can be
        updated in place. Returns how many messages were posted. A target that fails is logged
        and skipped (the items stay pending; ``pending`` lists them)."""
        posted = 0
        targets = await self.targets(personal)
        if not targets:
            log.info("no notification channel yet: %d card(s) not posted", len(cards))
            return 0
        refs: dict[str, list[dict[str, str]]] = {}
        for conv, ref in targets:
            for pid, card in cards:
                try:
                    activity_id = await self.send(ref, card_activity(card))
                except ConnectorError as e:
                    log.error("posting to %s failed: %s (status %s)", conv, e.code, e.status)
                    break
                posted += 1
                if pid and activity_id:
                    refs.setdefault(pid, []).append({"conv": conv, "activityId": activity_id})
        for pid, posts in refs.items():
            await self.store.set_card_ref(pid, {"posts": posts})
        return posted

    async def update_card(self, pid: str, card: dict[str, Any]) -> int:
        """Replace every posted copy of ``pid``'s card. Returns how many were updated."""
        stored = await self.store.card_ref(pid)
        if not stored:
            return 0
        done = 0
        for post in stored.get("posts") or ():
            ref = await self.store.conversation(str(post.get("conv", "")))
            if not ref or not post.get("activityId"):
                continue
            try:
                await self.update(ref, str(post["activityId"]), card_activity(card))
                done += 1
            except ConnectorError as e:
                log.error("updating card %s failed: %s (status %s)", pid, e.code, e.status)
        return done


def card_activity(card: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": dict(card)}
        ],
    }


def text_activity(text: str) -> dict[str, Any]:
    return {"type": "message", "text": text, "textFormat": "plain"}
