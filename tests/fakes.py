"""Test doubles for the HTTP seam: hand-made JWTs, a scripted transport, a fake clock."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(**claims: Any) -> str:
    header = b64url(orjson.dumps({"alg": "ES256", "typ": "JWT"}))
    payload = b64url(orjson.dumps(claims))
    return f"{header}.{payload}.{b64url(b'not-a-real-signature')}"


def demo_claims(now: float, lifetime: float = 1800, **extra: Any) -> dict[str, Any]:
    claims = {"sub": "P039004", "agreements": "39004",
              "portfolios": "D39004 G39004 7500GHC", "iat": int(now),
              "exp": now + lifetime, "iss": "Alor.Identity"}
    claims.update(extra)
    return claims


Reply = tuple[int, Any, dict[str, str]] | Exception


class ScriptedAdapter(HTTPAdapter):
    """A transport that answers from a function ``responder(request) -> (status, body,
    headers)`` (or an exception to raise) and records every request it was given."""

    def __init__(self, responder: Callable[[requests.PreparedRequest], Reply]) -> None:
        super().__init__()
        self.responder = responder
        self.requests: list[requests.PreparedRequest] = []
        self._lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        with self._lock:
            self.requests.append(request)
        reply = self.responder(request)
        if isinstance(reply, Exception):
            raise reply
        status, body, headers = reply
        response = requests.Response()
        response.status_code = status
        response.reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}.get(status, "")
        if isinstance(body, bytes):
            response._content = body
        elif body is None:
            response._content = b""
        else:
            response._content = orjson.dumps(body)
        response.headers = CaseInsensitiveDict(headers)
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        return response


def scripted_session(responder: Callable[[requests.PreparedRequest], Reply]
                     ) -> tuple[requests.Session, ScriptedAdapter]:
    session = requests.Session()
    adapter = ScriptedAdapter(responder)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter


def sequence(*replies: Reply) -> Callable[[requests.PreparedRequest], Reply]:
    """A responder giving ``replies`` in order, then repeating the last one."""
    state = {"i": 0}
    lock = threading.Lock()

    def respond(request: requests.PreparedRequest) -> Reply:
        with lock:
            i = min(state["i"], len(replies) - 1)
            state["i"] += 1
        return replies[i]

    return respond


class FakeClock:
    """A clock whose ``sleep`` advances time instead of waiting."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingAdapter(HTTPAdapter):
    """A real transport that counts the requests it sends (to prove none was sent)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(f"{request.method} {request.path_url.split('?')[0]}")
        return super().send(request, **kwargs)


def counting_session() -> tuple[requests.Session, CountingAdapter]:
    session = requests.Session()
    adapter = CountingAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter


def market_time(server: Any) -> Any:
    """A simulator's market clock now, as a UTC Timestamp (tests take times from it: the
    market runs on its own clock, not the host's)."""
    import pandas as pd

    return pd.Timestamp(server.market.now(), unit="s", tz="UTC")


def until(predicate: Callable[[], Any], timeout: float = 15.0, step: float = 0.02,
          between: Callable[[], Any] | None = None) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass (calling ``between``
    before each pause, e.g. ``gc.collect``); its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if between is not None:
            between()
        time.sleep(step)
    return bool(predicate())
