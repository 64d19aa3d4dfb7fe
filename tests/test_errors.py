"""Timeouts are TimeoutErrors, a server body that cannot be read is a DecodeError (an APIError,
never InvalidArgument nor AuthError), and which candle is closed is decided by the server's
clock, never by a silent fallback to the local one."""

from __future__ import annotations

import time

import orjson
import pandas as pd
import pytest
import requests
from fakes import FakeClock, demo_claims, make_jwt, scripted_session, sequence

import invia_data
from invia_data import history as history_module
from invia_data.auth import TokenManager
from invia_data.cache import CacheKey, CandleCache, environment_name
from invia_data.client import Client
from invia_data.errors import (
    APIError,
    AuthError,
    DecodeError,
    InvalidArgument,
    InviaError,
    NotFound,
    RequestTimeout,
    StreamError,
    StreamTimeout,
    Timeout,
    TransportError,
)
from invia_data.history import history, server_now
from invia_data.http import Http
from invia_data.stream.live import LiveFrame
from invia_data.stream.state import make_state

REFRESH = "refresh-token-secret"


# --- the tree ---------------------------------------------------------------------------------------

def test_every_timeout_is_a_builtin_timeout_error_under_invia_error():
    for cls in (Timeout, RequestTimeout, StreamTimeout):
        assert issubclass(cls, TimeoutError) and issubclass(cls, InviaError)
    assert issubclass(RequestTimeout, TransportError) and issubclass(RequestTimeout, ConnectionError)
    assert issubclass(StreamTimeout, StreamError)
    assert issubclass(DecodeError, APIError)
    assert not issubclass(DecodeError, (InvalidArgument, AuthError, ValueError))


# --- timeouts ---------------------------------------------------------------------------------------

def test_an_http_timeout_after_the_retries_is_a_request_timeout():
    clock = FakeClock()
    session, adapter = scripted_session(sequence(requests.ReadTimeout("read timed out")))
    http = Http("http://api.test", None, session=session, rate=None, sleep=clock.sleep)
    with pytest.raises(TimeoutError) as caught:
        http.get("/md/v2/time", auth=False)
    assert isinstance(caught.value, RequestTimeout) and isinstance(caught.value, TransportError)
    assert "GET /md/v2/time" in str(caught.value) and len(adapter.requests) == 3


def test_a_refused_connection_stays_a_transport_error_not_a_timeout():
    clock = FakeClock()
    session, _ = scripted_session(sequence(requests.ConnectionError("refused")))
    http = Http("http://api.test", None, session=session, rate=None, sleep=clock.sleep)
    with pytest.raises(TransportError) as caught:
        http.get("/md/v2/time", auth=False)
    assert not isinstance(caught.value, TimeoutError)


def test_a_token_server_timeout_in_connect_is_a_request_timeout_without_the_token():
    session, adapter = scripted_session(sequence(
        requests.ConnectTimeout(f"https://oauth.test/refresh?token={REFRESH} timed out")))
    with pytest.raises(TimeoutError) as caught:
        invia_data.connect(REFRESH, env="http://127.0.0.1:9", session=session)
    assert isinstance(caught.value, RequestTimeout)
    assert REFRESH not in str(caught.value) and caught.value.__context__ is None
    assert len(adapter.requests) >= 1


def test_live_frame_wait_times_out_with_a_stream_timeout():
    frame = LiveFrame("all_trades", "MOEX:SBER", {}, make_state("all_trades", "Slim"))
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        frame.wait(1, timeout=0.05)
    assert isinstance(caught.value, StreamTimeout) and isinstance(caught.value, Timeout)
    assert time.monotonic() - started < 5


# --- bodies that cannot be read ---------------------------------------------------------------------

def test_a_success_body_that_is_not_json_is_a_decode_error():
    session, _ = scripted_session(sequence((200, b"<html>gateway</html>", {})))
    http = Http("http://api.test", None, session=session, rate=None)
    with pytest.raises(DecodeError, match="not JSON") as caught:
        http.get("/md/v2/Securities", auth=False)
    assert caught.value.status == 200 and caught.value.request == "GET /md/v2/Securities"


class AnswerHttp:
    """The HTTP seam answering each path from a table (a missing path is a 404)."""

    base_url = "http://api.test"

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.paths: list[str] = []

    def get(self, path, params=None, **_):
        self.paths.append(path)
        if path not in self.answers:
            raise NotFound("no such route", request=f"GET {path}")
        answer = self.answers[path]
        return answer(params) if callable(answer) else answer

    def get_bytes(self, path, params=None, **_):
        return orjson.dumps(self.get(path, params))

    def close(self) -> None:
        pass


def client_of(http: AnswerHttp) -> Client:
    tokens = TokenManager(token=make_jwt(**demo_claims(time.time())))
    return Client(http, tokens, env="test", ws_url="ws://127.0.0.1:9/cws")  # type: ignore[arg-type]


@pytest.mark.parametrize("answer", ["soon", None, True, {"time": 1}, [1]])
def test_a_server_time_that_is_not_a_number_is_a_decode_error(answer):
    inv = client_of(AnswerHttp({"/md/v2/time": answer}))
    with pytest.raises(DecodeError, match="not a number"):
        inv.time()
    with pytest.raises(DecodeError):
        server_now(inv.http)


@pytest.mark.parametrize(("path", "call", "body"), [
    ("/md/v2/Securities/MOEX:SBER/quotes", lambda inv: inv.quotes("SBER"), "busy"),
    ("/md/v2/Securities/MOEX/SBER/alltrades", lambda inv: inv.all_trades("SBER"), 7),
    ("/md/v2/Clients/MOEX/D39004/positions", lambda inv: inv.positions(), 42),
])
def test_bodies_of_another_shape_are_decode_errors(path, call, body):
    inv = client_of(AnswerHttp({path: body}))
    with pytest.raises(DecodeError):
        call(inv)


# --- the server's clock decides what is closed ------------------------------------------------------

def test_without_a_server_clock_history_raises_instead_of_guessing():
    inv = client_of(AnswerHttp({}))  # no time route: NotFound, as the server says
    with pytest.raises(NotFound):
        server_now(inv.http)
    with pytest.raises(NotFound):
        inv.history("SBER", "1min", cache=False)


def test_a_server_clock_behind_ours_never_caches_its_open_candle(tmp_path, monkeypatch):
    """A server whose clock is two days behind the local one (a simulator started in the
    past): its newest candle is open, though by the local clock it ended long ago."""
    server_time = int(pd.Timestamp("2024-03-05 12:00:30", tz="UTC").timestamp())
    monkeypatch.setattr(history_module.time, "time", lambda: server_time + 2 * 86_400)
    first = server_time - 630  # candles start on whole minutes; the last one, 12:00, is open

    def candles(params):
        lo, hi = int(params["from"]), int(params["to"])
        since = first + max(0, -(-(lo - first) // 60)) * 60  # the first minute at or after lo
        rows = [{"t": t, "o": 1.0, "h": 1.0, "l": 1.0, "c": 1.0, "v": 1}
                for t in range(since, min(hi, server_time) + 1, 60)]
        return {"h": rows, "next": None, "prev": None}

    http = AnswerHttp({"/md/v2/time": server_time, "/md/v2/history": candles})
    start = pd.Timestamp(first, unit="s", tz="UTC")
    end = pd.Timestamp(server_time + 3600, unit="s", tz="UTC")
    frame = history(http, "SBER", "1min", start, end, cache_dir=tmp_path)
    open_start = pd.Timestamp(server_time - 30, unit="s", tz="UTC")
    assert frame.index[-1] == open_start
    assert pd.Timestamp(frame.attrs["open_candle"]) == open_start
    assert "/md/v2/time" in http.paths  # the cache asked the server's clock before storing
    key = CacheKey(environment_name(http.base_url), "MOEX", "SBER", None, "1min")
    covered = CandleCache(tmp_path).coverage(key)
    assert covered and max(b for _, b in covered) <= server_time - 30
    http.paths.clear()
    again = history(http, "SBER", "1min", start, end, cache_dir=tmp_path)
    assert "/md/v2/history" in http.paths  # the open tail is asked again, not served stale
    pd.testing.assert_frame_equal(again, frame)
