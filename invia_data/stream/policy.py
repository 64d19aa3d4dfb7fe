"""The stream's rules, without I/O: reconnect backoff, re-sends after 401, retries after 429
and 5xx, keep-alive and staleness, the ``/cws`` -> ``/ws`` fallback, and backfill planning.

A :class:`Policy` is driven by events (a rejection, a confirmation, a message, a tick) with
the time passed in (``now``, monotonic seconds) and a random source injected at construction,
so each rule is a unit test with a fake clock. It owns no socket, thread or lock; the
connection thread asks it what to do and does the I/O. Per-subscription bookkeeping lives in a
:class:`Retry` beside each subscription, mutated only by the thread that drives the policy.
"""

from __future__ import annotations

import random as _random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

AUTH_RETRIES = 3
TRANSIENT_RETRIES = 5
MAX_RETRY_DELAY = 30.0
WATCHED_KINDS = frozenset({"orderbook", "quotes", "bars", "all_trades"})
BACKFILLED_KINDS = frozenset({"all_trades", "bars"})

# what a server says when it does not know an opcode on this endpoint
_UNKNOWN_OPERATION = re.compile(r"(unknown|unsupported|not supported|not found|invalid)"
                                r".{0,40}(opcode|operation|command|method)"
                                r"|(opcode|operation|command|method).{0,40}"
                                r"(unknown|unsupported|not supported|not found)", re.I)

RESEND = "resend"        # re-send now with a fresh token (after invalidating the old one)
RETRY = "retry"          # re-send at Retry.retry_at
FAIL = "fail"            # the subscription is refused: surface the error
SWITCH_TO_WS = "switch"  # data is not served on /cws here: reconnect to /ws once

PING = "ping"
RECONNECT = "reconnect"


@dataclass
class Retry:
    """Retry budgets and timing of one subscription."""

    auth_retries: int = 0
    transient_retries: int = 0
    retry_at: float | None = None   # monotonic time of a re-send after a 429/5xx
    sent_at: float = 0.0            # the last subscribe frame went out
    last_message: float | None = None


@dataclass(frozen=True)
class Backfill:
    """What to fetch over HTTP after a gap: ``kind``, where the data held ends (``cursor``: the
    last trade id or the last candle's start time in s; None when nothing is held) and when
    the gap began (``lost_at``, unix s)."""

    kind: str
    cursor: Any
    lost_at: float


class Policy:
    """The decisions of one connection. ``random()`` returns a float in [0, 1)."""

    def __init__(self, *, stale_after: float | None = 60.0, ping_interval: float = 10.0,
                 reconnect_delay: float = 0.5, max_reconnect_delay: float = 15.0,
                 random: Callable[[], float] = _random.random) -> None:
        self.stale_after = stale_after
        self.ping_interval = ping_interval
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._random = random
        self.switched_to_ws = False

    def _uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random()

    # --- connecting -------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before connecting again; ``attempt`` counts failures in a row
        (0: the connection was healthy, reconnect soon but not all clients at once)."""
        if attempt <= 0:
            return self.reconnect_delay * self._uniform(0.2, 0.6)
        delay = min(self.max_reconnect_delay, self.reconnect_delay * 2 ** (attempt - 1))
        return delay * self._uniform(0.5, 1.0)

    # --- answers to subscriptions -----------------------------------------------------------

    def sent(self, retry: Retry, now: float) -> None:
        retry.sent_at = now
        retry.retry_at = None

    def confirmed(self, retry: Retry) -> None:
        retry.auth_retries = 0
        retry.transient_retries = 0

    def message(self, retry: Retry, now: float) -> None:
        retry.last_message = now

    def rejected(self, retry: Retry, status: int, message: str, now: float, *,
                 on_cws: bool = False) -> str:
        """What to do with a rejected subscription: RESEND, RETRY (``retry.retry_at`` set),
        SWITCH_TO_WS or FAIL."""
        if on_cws and not self.switched_to_ws and is_unknown_operation(status, message):
            self.switched_to_ws = True
            return SWITCH_TO_WS
        if status == 401 and retry.auth_retries < AUTH_RETRIES:
            retry.auth_retries += 1
            return RESEND
        if (status == 429 or status >= 500) and retry.transient_retries < TRANSIENT_RETRIES:
            # the server is busy or failing, not refusing this request: try again later
            retry.transient_retries += 1
            delay = min(MAX_RETRY_DELAY, self.reconnect_delay * 2 ** retry.transient_retries)
            retry.retry_at = now + delay * self._uniform(0.5, 1.0)
            return RETRY
        return FAIL

    def orphan_401(self, retries: Iterable[tuple[Any, Retry, bool]]) -> list[Any]:
        """A 401 without a known guid: which unconfirmed subscriptions to re-send. ``retries``
        yields ``(key, retry, confirmed)``."""
        out = []
        for key, retry, confirmed in retries:
            if not confirmed and retry.auth_retries < AUTH_RETRIES:
                retry.auth_retries += 1
                out.append(key)
        return out

    @staticmethod
    def due(retries: Iterable[tuple[Any, Retry]], now: float) -> list[Any]:
        """Subscriptions whose re-send after a 429/5xx is due."""
        return [key for key, retry in retries
                if retry.retry_at is not None and now >= retry.retry_at]

    # --- liveness ---------------------------------------------------------------------------

    def keepalive(self, now: float, last_recv: float, pinged: bool) -> str | None:
        """PING after ``ping_interval`` quiet seconds, RECONNECT after twice that."""
        quiet = now - last_recv
        if quiet > 2 * self.ping_interval:
            return RECONNECT
        if not pinged and quiet > self.ping_interval:
            return PING
        return None

    def stale(self, subs: Iterable[tuple[Any, str, Retry]], now: float) -> list[Any]:
        """Market-data subscriptions silent for more than ``stale_after`` seconds since their
        last message or their subscribe frame. ``subs`` yields ``(key, kind, retry)``."""
        if self.stale_after is None:
            return []
        return [key for key, kind, retry in subs
                if kind in WATCHED_KINDS
                and now - max(retry.last_message or 0.0, retry.sent_at) > self.stale_after]

    def silence(self, retry: Retry, now: float) -> float:
        return now - max(retry.last_message or 0.0, retry.sent_at)

    # --- gaps -------------------------------------------------------------------------------

    @staticmethod
    def backfill(kind: str, cursor: Any, lost_at: float) -> Backfill | None:
        """The HTTP fetch that fills a gap of ``kind``, or None when it cannot be fetched
        (books and rows are complete again with the next message)."""
        if kind not in BACKFILLED_KINDS:
            return None
        return Backfill(kind, cursor, lost_at)

    @staticmethod
    def merge_backfills(pending: Backfill, new: Backfill) -> Backfill:
        """Two gaps of one subscription before the first was fetched: one fetch from the
        earlier start covers both."""
        cursors = [c for c in (pending.cursor, new.cursor) if c is not None]
        cursor = min(cursors) if len(cursors) == 2 else None
        return Backfill(pending.kind, cursor, min(pending.lost_at, new.lost_at))


def is_unknown_operation(status: int, message: str) -> bool:
    """An answer meaning "this endpoint does not serve that opcode"."""
    return status in (400, 404, 405, 501) and bool(_UNKNOWN_OPERATION.search(message or ""))


__all__ = ["Policy", "Retry", "Backfill", "is_unknown_operation", "RESEND", "RETRY", "FAIL",
           "SWITCH_TO_WS", "PING", "RECONNECT", "WATCHED_KINDS", "BACKFILLED_KINDS"]
