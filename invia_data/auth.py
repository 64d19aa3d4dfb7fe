"""Tokens: a refresh token exchanged for short-lived JWTs, their claims, and their renewal.

``POST {auth_url}/refresh?token=<refresh token>`` answers ``{"AccessToken": "<JWT>"}``. The JWT's
claims (read without checking the signature, as every client of this API does) carry the login
(``sub``), the ``portfolios`` and ``agreements`` (space-separated) and ``exp``.

A :class:`TokenManager` hands out a valid JWT and renews it ahead of expiry, once, however many
threads ask at the same time. Neither tokens nor the refresh token ever appear in a repr, a log
line or an exception text: messages from the token server are redacted, the refresh URL is
logged without its query, and urllib3's debug log of request lines is redacted too.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pandas as pd
import requests

from .errors import (
    AuthError,
    DecodeError,
    InvalidArgument,
    RequestTimeout,
    ServerError,
    TransportError,
    error_for_status,
)

__all__ = ["TokenManager", "decode_claims", "redact"]

log = logging.getLogger("invia_data.http")

_REDACTED = "***"
_TOKEN_IN_QUERY = re.compile(r"(?i)(token=)[^&\s\"']+")
_JWT_LIKE = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret, every ``token=...`` query value and anything shaped like a
    JWT replaced by ``***``."""
    for secret in secrets:
        if secret:
            # whole words only: a short wrong token ("x") must not mangle "expired"
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", _REDACTED, text)
    text = _TOKEN_IN_QUERY.sub(lambda m: m.group(1) + _REDACTED, text)
    return _JWT_LIKE.sub(_REDACTED, text)


class _RedactTokens(logging.Filter):
    """urllib3 logs request lines (with the query string) at DEBUG; the refresh token is in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _install_urllib3_filter() -> None:
    target = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactTokens) for f in target.filters):
        target.addFilter(_RedactTokens())


_install_urllib3_filter()


def decode_claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT as a dict (base64url, no signature check).

    Raises InvalidArgument when ``jwt`` is not a JWT; the text never contains the token.
    """
    parts = jwt.split(".") if isinstance(jwt, str) else []
    if len(parts) != 3 or not parts[1]:
        raise InvalidArgument("the token is not a JWT (expected three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidArgument("the token's payload is not base64url-encoded JSON") from exc
    if not isinstance(claims, dict):
        raise InvalidArgument("the token's payload is not a JSON object")
    return claims


def _split_claim(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


class TokenManager:
    """A valid JWT on demand: from a refresh token (renewed ahead of expiry) or a static token.

    ``leeway``: renew this many seconds before ``exp``, but never earlier than 90 % of the
    token's lifetime, so a short-lived token is not renewed on every call.
    ``clock`` (unix seconds) and ``session`` are injectable for tests.
    """

    def __init__(self, refresh_token: str | None = None, token: str | None = None,
                 auth_url: str | None = None, session: requests.Session | None = None,
                 leeway: float = 60.0, *, timeout: float = 10.0, attempts: int = 3,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if refresh_token is None and token is None:
            raise InvalidArgument("a refresh token or a token is required")
        if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token.strip()):
            raise InvalidArgument("the refresh token must be a non-empty string")
        if refresh_token is not None and not auth_url:
            raise InvalidArgument("auth_url is required to use a refresh token")
        self._refresh_token = refresh_token.strip() if refresh_token else None
        self.auth_url = auth_url.rstrip("/") if auth_url else None
        self._own_session = session is None
        self._session = session or requests.Session()
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._leeway = float(leeway)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()           # the token and its claims
        self._refresh_lock = threading.Lock()   # one renewal at a time
        self._token: str | None = None
        self._claims: dict[str, Any] = {}
        self._stale = False
        self.refresh_count = 0
        if token is not None:
            self._adopt(token)

    # --- public ---------------------------------------------------------------------------

    @property
    def can_refresh(self) -> bool:
        return self._refresh_token is not None

    @property
    def has_token(self) -> bool:
        """Whether a token was obtained already (reading claims then needs no request)."""
        return self._token is not None

    def token(self) -> str:
        """A JWT valid for at least the leeway; refreshes (once, under a lock) when needed.
        While another thread renews a token that has not expired yet, that token is returned
        at once: a slow token server delays only the thread that renews."""
        with self._lock:
            if self._token is not None and not self._stale and not self._expiring():
                return self._token
            if not self.can_refresh:
                raise AuthError(self._static_token_problem(), request="token")
            usable = self._token if self._token is not None and not self._stale \
                and not self._expired() else None
        if not self._refresh_lock.acquire(blocking=usable is None):
            assert usable is not None
            return usable
        try:
            with self._lock:  # another thread may have renewed it meanwhile
                if self._token is not None and not self._stale and not self._expiring():
                    return self._token
            self._refresh_locked()
            assert self._token is not None
            return self._token
        finally:
            self._refresh_lock.release()

    def close(self) -> None:
        """Close the pooled connections to the token server (a session passed in is left
        open: it belongs to the caller)."""
        if self._own_session:
            self._session.close()

    def invalidate(self, token: str | None) -> None:
        """The server rejected ``token`` (401): the next :meth:`token` refreshes, unless another
        thread already replaced it."""
        with self._lock:
            if token is not None and token == self._token:
                self._stale = True

    @property
    def claims(self) -> dict[str, Any]:
        """Claims of the current token; empty before the first :meth:`token` (reading an
        attribute never makes a request)."""
        return dict(self._claims)

    @property
    def login(self) -> str | None:
        return self.claims.get("sub")

    @property
    def portfolios(self) -> list[str]:
        return _split_claim(self.claims.get("portfolios"))

    @property
    def agreements(self) -> list[str]:
        return _split_claim(self.claims.get("agreements"))

    @property
    def expires_at(self) -> pd.Timestamp | None:
        exp = self.claims.get("exp")
        return pd.Timestamp(exp, unit="s", tz="UTC") if isinstance(exp, (int, float)) else None

    def __repr__(self) -> str:
        if self._token is None:
            return f"TokenManager(refresh={'yes' if self.can_refresh else 'no'}, no token yet)"
        expires = self.expires_at
        return (f"TokenManager(login={self._claims.get('sub')!r}, "
                f"portfolios={_split_claim(self._claims.get('portfolios'))}, "
                f"expires_at={expires.isoformat() if expires is not None else None!r}, "
                f"refresh={'yes' if self.can_refresh else 'no'})")

    # --- internals ------------------------------------------------------------------------

    def _adopt(self, token: str) -> None:
        self._claims = decode_claims(token)
        self._token = token
        self._stale = False
        self._issued_at = self._clock()

    def _expiring(self) -> bool:
        exp = self._claims.get("exp")
        if not isinstance(exp, (int, float)):
            return False  # no expiry claim: valid until the server says otherwise (401)
        iat = self._claims.get("iat")
        start = iat if isinstance(iat, (int, float)) and 0 < iat < exp else self._issued_at
        leeway = min(self._leeway, max(0.0, 0.1 * (exp - start)))
        return self._clock() >= exp - leeway

    def _expired(self) -> bool:
        exp = self._claims.get("exp")
        return isinstance(exp, (int, float)) and self._clock() >= exp

    def _static_token_problem(self) -> str:
        exp = self._claims.get("exp")
        if self._stale:
            return "the server rejected the token and it cannot be renewed without a refresh token"
        if isinstance(exp, (int, float)):
            when = pd.Timestamp(exp, unit="s", tz="UTC").isoformat()
            return (f"the token expired at {when}; pass refresh_token= (or set "
                    "INVIA_REFRESH_TOKEN) so that it is renewed automatically")
        return "no valid token"

    def _refresh_locked(self) -> None:
        last_error: Exception | None = None
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(min(2.0, 0.2 * 2 ** (attempt - 1)))
            try:
                token = self._fetch()  # the slow part, with only the renewal lock held
                with self._lock:
                    self._adopt(token)
                    self.refresh_count += 1
                return
            except (TransportError, ServerError) as exc:  # no answer or 5xx: worth a retry
                last_error = exc
        assert last_error is not None
        raise last_error

    def _fetch(self) -> str:
        url = f"{self.auth_url}/refresh"
        started = time.perf_counter()
        failure = None
        timed_out = False
        try:
            response = self._session.post(url, params={"token": self._refresh_token},
                                          timeout=self._timeout)
        except requests.RequestException as exc:
            failure = type(exc).__name__
            timed_out = isinstance(exc, requests.Timeout)
        if failure is not None:
            # raised outside the handler: the request's exception (whose text holds the URL
            # with the token) must not ride along as __context__
            kind = RequestTimeout if timed_out else TransportError
            raise kind(f"POST {self.auth_url}/refresh: no answer from the token server "
                       f"({failure})")
        elapsed = (time.perf_counter() - started) * 1000
        log.info("POST /refresh %d %.0f ms", response.status_code, elapsed)
        if response.status_code != 200:
            text = redact(response.text[:500], [self._refresh_token])
            message = _message_of(text) or response.reason or "refresh failed"
            if response.status_code in (401, 403):
                message = f"the token server refused the refresh token: {message}"
            raise error_for_status(response.status_code, message, "POST /refresh")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise DecodeError("the token server answered with a body that is not JSON",
                              status=response.status_code, request="POST /refresh") from None
        jwt = (body.get("AccessToken") or body.get("accessToken")) if isinstance(body, dict) else None
        if not isinstance(jwt, str):
            raise DecodeError("the token server's answer has no AccessToken",
                              status=response.status_code, request="POST /refresh")
        try:
            decode_claims(jwt)
        except InvalidArgument as exc:
            raise DecodeError(f"the token server returned an unreadable token: {exc}",
                              status=response.status_code, request="POST /refresh") from None
        return jwt


def _message_of(text: str) -> str:
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.strip()
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return text.strip()
