"""The one HTTP seam: base URL, auth header, timeouts, rate limit, retries, error mapping.

Every data call goes through :meth:`Http.get`. Policy, in order:

* a shared token-bucket :class:`RateLimiter` paces requests (100/s by default, the API's limit);
* ``Authorization: Bearer <JWT>`` from the :class:`~invia_data.auth.TokenManager`; a 401 makes
  it renew the token once and the request is sent once more;
* 429 (honouring ``Retry-After``) and 502/503/504/500 are retried with exponential backoff and
  jitter, a bounded number of times and within a bounded total wait (:class:`RetryPolicy`);
* no answer (refused, reset, timed out) is retried a bounded number of times (GETs are
  idempotent), then raised as :class:`~invia_data.errors.TransportError`;
* any other error status becomes the matching exception of :mod:`invia_data.errors`, with the
  server's message;
* every path segment is percent-encoded (:func:`~invia_data.validate.quote_segment`) and an
  empty, ``.`` or ``..`` segment is refused, so no value placed in a path changes the route.

One INFO line per request on the ``invia_data.http`` logger: method, path (never a query
string), status, milliseconds.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from .auth import TokenManager, redact
from .errors import (
    APIError,
    ClientClosed,
    DecodeError,
    InvalidArgument,
    RequestTimeout,
    TransportError,
    error_for_status,
)
from .validate import quote_segment

__all__ = ["Http", "RateLimiter", "RetryPolicy"]

log = logging.getLogger("invia_data.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RateLimiter:
    """Thread-safe token bucket: ``rate`` requests per second, bursts of up to ``burst``.

    :meth:`acquire` reserves a slot under the lock and sleeps outside it, so concurrent callers
    queue up at the right pace. ``acquired`` and ``waited`` (total seconds slept) account for
    what happened; ``clock`` and ``sleep`` are injectable so the pace can be checked exactly.
    """

    def __init__(self, rate: float | None = 100.0, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate is not None and (isinstance(rate, bool) or not rate > 0):
            raise InvalidArgument(f"rate must be a positive number of requests per second or None, got {rate!r}")
        self.rate = float(rate) if rate is not None else None
        # a small burst keeps any one-second window close to `rate`
        self.burst = float(burst) if burst is not None else max(1.0, (self.rate or 1.0) / 10)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()
        self.acquired = 0
        self.waited = 0.0

    def reserve(self) -> float:
        """Take one slot; the seconds the caller must wait before using it."""
        with self._lock:
            self.acquired += 1
            if self.rate is None:
                return 0.0
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            self.waited += wait
            return wait

    def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate}, burst={self.burst}, acquired={self.acquired})"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    ``retries``: further attempts after a 429/5xx; ``transport_retries``: further attempts after
    no answer. Delays grow ``backoff * 2**n`` up to ``max_delay``, with +-``jitter`` (a fraction)
    of randomness; a server's ``Retry-After`` replaces the computed delay. No retry is made that
    would push the total wait of one call beyond ``max_total`` seconds.
    """

    retries: int = 4
    transport_retries: int = 2
    backoff: float = 0.25
    max_delay: float = 8.0
    max_total: float = 30.0
    jitter: float = 0.25

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        base = min(self.max_delay, self.backoff * 2 ** attempt)
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rng() - 1.0)))


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (seconds from now)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Http:
    """GET requests against one base URL, with the policy described in the module docstring.

    ``session`` is injectable (tests mount counting or failing adapters on it); ``rate`` is
    requests per second (None: unlimited) unless a shared ``limiter`` is given.
    """

    def __init__(self, base_url: str, tokens: TokenManager | None = None,
                 session: requests.Session | None = None, rate: float | None = 100.0,
                 retries: RetryPolicy | int | None = None, timeout: float = 30.0, *,
                 limiter: RateLimiter | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidArgument(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.closed = False
        # the name its candles are cached under (None: its host and port), and a time from which
        # its candles are never cached (a simulator's live candles differ from run to run)
        self.cache_environment: str | None = None
        self.cache_until: int | None = None
        self.tokens = tokens
        self._own_session = session is None
        self.session = session or requests.Session()
        self.limiter = limiter or RateLimiter(rate)
        if isinstance(retries, int) and not isinstance(retries, bool):
            retries = RetryPolicy(retries=retries, transport_retries=min(retries, 2))
        self.retry = retries if isinstance(retries, RetryPolicy) else RetryPolicy()
        self.timeout = timeout
        self._sleep = sleep
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"Http({self.base_url!r}, rate={self.limiter.rate})"

    def close(self) -> None:
        """Close the session (when it is this seam's own); every later request raises
        ClientClosed. Idempotent."""
        self.closed = True
        if self._own_session:
            self.session.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, auth: bool = True,
            what: str | None = None) -> Any:
        """GET ``path`` (e.g. ``"/md/v2/time"``) and return the JSON body parsed by orjson.

        ``what`` names the thing asked for (``"instrument MOEX:SBER"``) in a NotFound.
        """
        response = self.request("GET", path, params, auth=auth, what=what)
        try:
            return orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            raise DecodeError("the server answered with a body that is not JSON",
                              status=response.status_code, request=f"GET {path}") from None

    def get_bytes(self, path: str, params: Mapping[str, Any] | None = None, *,
                  auth: bool = True, what: str | None = None) -> bytes:
        """GET ``path`` and return the raw body."""
        return self.request("GET", path, params, auth=auth, what=what).content

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None, *,
                auth: bool = True, what: str | None = None) -> requests.Response:
        """Send one request with retries; the successful response, or an exception."""
        if self.closed:
            raise ClientClosed("this client is closed: make a new one with invia_data.connect()")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidArgument(f"path must start with '/', got {path!r}")
        path = "/" + "/".join(quote_segment(s) for s in path[1:].split("/"))
        url = self.base_url + path
        label = f"{method} {path}"
        attempt = transport_failures = 0
        waited = 0.0
        renewed = False
        while True:
            self.limiter.acquire()
            headers, used_token = self._auth_headers(auth)
            try:
                response, elapsed = self._send(method, url, params, headers)
            except requests.RequestException as exc:
                log.info("%s failed: %s", label, type(exc).__name__)
                delay = self.retry.delay(transport_failures, rng=self._rng.random)
                if (method == "GET" and transport_failures < self.retry.transport_retries
                        and waited + delay <= self.retry.max_total):
                    transport_failures += 1
                    waited += self._pause(delay)
                    continue
                kind = RequestTimeout if isinstance(exc, requests.Timeout) else TransportError
                raise kind(
                    f"{label}: no answer from {self.base_url} "
                    f"({type(exc).__name__}: {redact(str(exc))[:300]})") from exc
            status = response.status_code
            log.info("%s %d %.0f ms", label, status, elapsed)
            if status < 400:
                return response
            if (status == 401 and used_token is not None and not renewed
                    and self.tokens is not None and self.tokens.can_refresh):
                renewed = True
                self.tokens.invalidate(used_token)
                continue
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if status in RETRY_STATUSES and attempt < self.retry.retries:
                delay = self.retry.delay(attempt, retry_after, rng=self._rng.random)
                if waited + delay <= self.retry.max_total:
                    attempt += 1
                    waited += self._pause(delay)
                    continue
            raise self._error(response, label, path, what, retry_after, used_token)

    # --- internals ------------------------------------------------------------------------

    def _auth_headers(self, auth: bool) -> tuple[dict[str, str], str | None]:
        if not auth or self.tokens is None:
            return {}, None
        token = self.tokens.token()
        return {"Authorization": f"Bearer {token}"}, token

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None,
              headers: dict[str, str]) -> tuple[requests.Response, float]:
        started = time.perf_counter()
        response = self.session.request(method, url, params=params, headers=headers,
                                        timeout=self.timeout)
        return response, (time.perf_counter() - started) * 1000

    def _pause(self, seconds: float) -> float:
        if seconds > 0:
            self._sleep(seconds)
        return seconds

    def _error(self, response: requests.Response, label: str, path: str, what: str | None,
               retry_after: float | None, used_token: str | None) -> APIError:
        status = response.status_code
        server_text = redact(_server_message(response), [used_token])
        if status == 401:
            if self.tokens is None:
                message = ("this call needs credentials: pass refresh_token= to connect() "
                           "or set INVIA_REFRESH_TOKEN")
            else:
                message = "the token was missing, expired or rejected"
            message = f"{message} ({server_text})" if server_text else message
        elif status == 404:
            subject = f"{what or path} not found"
            message = subject if server_text in ("", subject) else f"{subject}: {server_text}"
        else:
            message = server_text or response.reason or f"HTTP {status}"
        return error_for_status(status, message, label, retry_after)


def _server_message(response: requests.Response) -> str:
    """The server's error text: ``{"message": ...}``, ``{"detail": ...}`` or the raw body."""
    text = response.text[:1000].strip() if response.content else ""
    if not text:
        return ""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if isinstance(body, dict):
        for key in ("message", "detail", "title"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    return text
