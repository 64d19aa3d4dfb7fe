"""The stream under the simulator's faults: drops, refused connections, token expiry, 401
frames, stalled subscriptions, malformed frames; plus error frames and unknown guids fed to
the connection directly. Every test is bounded (a few seconds each)."""

from __future__ import annotations

import functools
import threading
import time
from types import SimpleNamespace

import orjson
import pandas as pd
import pytest
import requests
from fakes import until

import invia_data
from invia_data.auth import TokenManager
from invia_data.stream import Stream
from invia_data.stream.connection import Connection, Sub
from invia_data.stream.live import LiveFrame
from invia_data.stream.protocol import instrument_request
from invia_data.stream.state import BookState

WAIT = 15.0


_until = functools.partial(until, timeout=WAIT, step=0.05)


def _record_statuses(frame):
    seen = []
    frame.on_update(lambda f: seen.append(f.status) if not seen or seen[-1] != f.status else None)
    return seen


def test_drop_reconnects_resubscribes_and_backfills_without_duplicates(fresh_sim):
    sim = fresh_sim(speed=20)  # one-minute candles every 3 s of wall time
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        stream = inv.stream
        book = stream.orderbook("SBER", depth=5)
        trades = stream.all_trades("SBER", maxlen=1_000_000)  # no replay: only HTTP fills gaps
        bars = stream.bars("SBER", "1min", start=sim.market.now() - 600)
        for frame in (book, trades, bars):
            frame.wait(0, timeout=WAIT)
        guids_before = {sub.route.guid for sub in stream.connection.subs()}
        statuses = _record_statuses(book)
        sim.faults.refuse_connections(2.0)
        sim.faults.drop_connections()
        assert _until(lambda: "reconnecting" in statuses)
        assert _until(lambda: book.status == "live" and len(stream.gaps()) == 3)
        gaps = stream.gaps().set_index("kind")
        assert gaps["error"].isna().all(), gaps
        assert gaps.loc["all_trades", "backfilled"] > 0  # trades of the outage came over HTTP
        assert (gaps["end"] - gaps["start"]).min() >= pd.Timedelta("1.5s")
        guids_after = {sub.route.guid for sub in stream.connection.subs()}
        assert not guids_before & guids_after  # fresh guids on the new connection
        health = stream.health()
        assert (health["reconnects"] == 1).all() and (health["gaps"] == 1).all()
        assert (health["status"] == "live").all()
        version = trades.version
        trades.wait(1, timeout=WAIT)
        assert trades.version > version

        frame = trades.df
        assert frame["id"].is_unique and frame["id"].is_monotonic_increasing
        lo, hi = int(frame["id"].min()), int(frame["id"].max())
        http = inv.all_trades("SBER", from_id=lo, to_id=hi)
        assert set(http["id"]) <= set(frame["id"])  # nothing missing across the outage

        candles = bars.df
        assert candles.index.is_unique and candles.index.is_monotonic_increasing
        closed = candles[candles["is_closed"]].drop(columns="is_closed")
        reference = inv.history("SBER", "1min", start=closed.index[0],
                                end=closed.index[-1] + pd.Timedelta("1min"))
        pd.testing.assert_frame_equal(closed, reference.loc[closed.index], check_freq=False)


def test_repeated_drops_keep_recovering(fresh_sim):
    sim = fresh_sim()
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    with Stream(sim.ws_url, tokens.token, reconnect_delay=0.1) as stream:
        book = stream.orderbook("SBER", depth=5)
        trades = stream.all_trades("GAZP")
        book.wait(0, timeout=WAIT)
        sim.faults.drop_every = 1.0
        assert _until(lambda: stream.health()["reconnects"].min() >= 3, timeout=10)
        sim.faults.drop_every = 0.0
        assert _until(lambda: book.status == "live" and trades.status == "live")
        version = book.version
        book.wait(3, timeout=WAIT)
        assert book.version >= version + 3
        assert stream.health().attrs["connection"]["connects"] >= 4
        assert trades.df["id"].is_unique


def test_refused_connections_back_off_then_connect(fresh_sim):
    sim = fresh_sim()
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    sim.faults.refuse_connections(1.5)
    started = time.monotonic()
    with Stream(sim.ws_url, tokens.token, reconnect_delay=0.2, subscribe_timeout=0.5) as stream:
        book = stream.orderbook("SBER", depth=3)
        assert book.status == "connecting"  # no answer within the timeout: not an error
        book.wait(0, timeout=WAIT)
        assert time.monotonic() - started >= 1.4
        assert "503" in (stream.connection.last_error or "")
        assert book.status == "live"


def test_token_expiry_while_streaming(fresh_sim):
    sim = fresh_sim()
    sim.faults.token_lifetime = 2.0
    skew = [0.0]  # the client's clock runs ahead instead of the test sleeping
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url, leeway=1.0,
                          clock=lambda: time.time() + skew[0])
    with Stream(sim.ws_url, tokens.token, reconnect_delay=0.1) as stream:
        book = stream.orderbook("SBER", depth=3)
        book.wait(0, timeout=WAIT)
        sim.faults.token_lifetime = 1800.0
        skew[0] = 2.5  # the first token has expired by now
        sim.faults.drop_connections()
        assert _until(lambda: stream.health()["reconnects"].min() >= 1 and book.status == "live")
        later = stream.all_trades("SBER", timeout=5)  # a new request after expiry
        later.wait(0, timeout=WAIT)
        assert tokens.refresh_count >= 2  # renewed ahead of expiry, not after a rejection
        health = stream.health()
        assert (health["status"] == "live").all()
        assert later.status == "live"


class StaleFirst:
    """A token provider whose first token has already expired (like a cached JWT after a
    laptop slept); ``invalidate`` makes it fetch a fresh one."""

    def __init__(self, sim, stale):
        self.sim = sim
        self.current = stale
        self.invalidated = 0

    def token(self):
        return self.current

    def invalidate(self, token):
        self.invalidated += 1
        self.current = requests.post(f"{self.sim.auth_url}/refresh",
                                     params={"token": self.sim.refresh_token},
                                     timeout=10).json()["AccessToken"]


def _expired_token(sim):
    """A token the simulator signed an hour ago, expired since (no sleeping for it)."""
    issuer = sim._issuer
    real = issuer._clock
    issuer._clock = lambda: real() - 3600
    try:
        return issuer.issue()
    finally:
        issuer._clock = real


def test_401_frame_resends_with_a_fresh_token(fresh_sim):
    sim = fresh_sim()
    stale = _expired_token(sim)
    provider = StaleFirst(sim, stale)
    with Stream(sim.ws_url, provider.token) as stream:
        book = stream.orderbook("SBER", depth=3)
        book.wait(0, timeout=WAIT)
        assert provider.invalidated == 1 and book.status == "live"
        assert stream.health()["errors"].iloc[0] == 1  # the 401, counted


def test_401_that_persists_becomes_an_auth_error(fresh_sim):
    sim = fresh_sim()
    stale = _expired_token(sim)
    with Stream(sim.ws_url, lambda: stale) as stream:
        with pytest.raises(invia_data.AuthError):
            stream.orderbook("SBER", depth=3)


def test_stalled_subscription_is_reconnected_by_the_watchdog(fresh_sim):
    sim = fresh_sim()
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    with Stream(sim.ws_url, tokens.token, stale_after=1.0, reconnect_delay=0.1) as stream:
        book = stream.orderbook("SBER", depth=3)
        book.wait(0, timeout=WAIT)
        statuses = _record_statuses(book)
        sim.faults.stalled = True
        assert _until(lambda: "stale" in statuses, timeout=5)
        assert stream.health().attrs["connection"]["stale"] >= 1
        sim.faults.stalled = False
        assert _until(lambda: book.status == "live" and stream.health()["reconnects"].iloc[0] >= 1)
        version = book.version
        book.wait(2, timeout=WAIT)
        assert book.version >= version + 2


def test_malformed_frames_are_counted_and_the_rest_carries_on(fresh_sim):
    sim = fresh_sim()
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    with Stream(sim.ws_url, tokens.token) as stream:
        book = stream.orderbook("SBER", depth=3)
        trades = stream.all_trades("SBER")
        book.wait(0, timeout=WAIT)
        sim.faults.malformed_rate = 0.3
        assert _until(lambda: stream.health().attrs["connection"]["malformed"] >= 5)
        sim.faults.malformed_kind = "garbage"
        count = stream.health().attrs["connection"]["malformed"]
        assert _until(lambda: stream.health().attrs["connection"]["malformed"] >= count + 5)
        sim.faults.malformed_rate = 0.0
        version = book.version
        book.wait(3, timeout=WAIT)
        assert book.version >= version + 3 and trades.status == "live"
        assert stream.connection.thread.is_alive()
        assert stream.health().attrs["connection"]["reconnects"] == 0


INLINE = SimpleNamespace(submit=lambda job: job(), stop=lambda: None)  # sends at once


def _offline_connection():
    connection = Connection("ws://127.0.0.1:9/cws", lambda: "t", stale_after=None,
                            sender=INLINE)
    frame = LiveFrame("orderbook", "MOEX:SBER", {}, BookState("Slim"))
    sub = Sub(frame, instrument_request("orderbook", "SBER", "MOEX"), "SBER", "MOEX")
    connection._subs.append(sub)
    connection._session.subscribe(sub.route, "t")
    return connection, sub, frame


def test_error_frames_unknown_guids_and_bad_data_are_counted_not_fatal():
    connection, sub, frame = _offline_connection()
    guid = sub.route.guid
    frames = [
        b'{"requestGuid":"","httpCode":401,"message":"Invalid JWT token!"}',
        b'{"requestGuid":"zzz","httpCode":500,"message":"oops"}',
        b'{"data":{"b":[],"a":[]},"guid":"not-ours"}',
        b'{"data":[1,2,3],"guid":"' + guid.encode() + b'"}',
        b"{broken",
        b'{"data":{"b":[{"p":1.0,"v":1}],"a":[{"p":2.0,"v":1}],"t":5},"guid":"'
        + guid.encode() + b'"}',
    ]
    assert connection._process(frames, time.monotonic())
    stats = connection.stats
    assert (stats["error_frames"], stats["unknown_guid"], stats["malformed"]) == (2, 1, 2)
    assert sub.errors == 1 and sub.messages == 1
    assert frame.version == 1 and frame.df["price"].tolist() == [1.0, 2.0]


def test_rejection_of_one_subscription_leaves_the_others():
    connection, sub, frame = _offline_connection()
    other = LiveFrame("orderbook", "MOEX:GAZP", {}, BookState("Slim"))
    other_sub = Sub(other, instrument_request("orderbook", "GAZP", "MOEX"), "GAZP", "MOEX")
    connection._subs.append(other_sub)
    connection._session.subscribe(other_sub.route, "t")
    connection._process([b'{"requestGuid":"' + sub.route.guid.encode()
                         + b'","httpCode":404,"message":"no such instrument"}'],
                        time.monotonic())
    assert frame.status == "error" and isinstance(frame.error, invia_data.NotFound)
    assert connection.subs() == [other_sub] and other.status == "connecting"
    assert sub.settled.is_set() and not other_sub.settled.is_set()


def test_close_from_another_thread_while_reading(fresh_sim):
    sim = fresh_sim(firehose=True)
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    stream = Stream(sim.ws_url, tokens.token, frequency=0)
    book = stream.orderbook("SBER", depth=10)
    book.wait(100, timeout=WAIT)
    closer = threading.Thread(target=stream.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive()
    assert not stream.connection.thread.is_alive()
    assert book.status == "closed"


def test_tokens_never_reach_logs_reprs_or_errors(fresh_sim, caplog):
    sim = fresh_sim()
    stale = _expired_token(sim)
    provider = StaleFirst(sim, stale)
    texts = []
    with caplog.at_level("DEBUG"):
        with Stream(sim.ws_url, provider.token, reconnect_delay=0.1) as stream:
            book = stream.orderbook("SBER", depth=3)
            book.wait(0, timeout=WAIT)
            sim.faults.drop_connections()
            assert _until(lambda: stream.health()["reconnects"].iloc[0] >= 1
                          and book.status == "live")
            with pytest.raises(invia_data.NotFound) as missing:
                stream.orderbook("NOSUCH")
            texts += [repr(stream), repr(book), book._repr_html_(), str(missing.value),
                      stream.health().to_string(), repr(stream.connection.subs())]
    texts.append(caplog.text)
    for secret in (stale, provider.current, sim.refresh_token):
        assert all(secret not in text for text in texts)
        assert all(secret[-20:] not in text for text in texts)


class Flaky:
    """A token provider that fails while ``broken`` is set (the auth server is down)."""

    def __init__(self, sim):
        self.tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
        self.broken = False

    def __call__(self):
        if self.broken:
            raise invia_data.TransportError("auth server unreachable")
        return self.tokens.token()


def test_token_provider_failures_surface_then_recover(fresh_sim):
    sim = fresh_sim()
    provider = Flaky(sim)
    with Stream(sim.ws_url, provider, reconnect_delay=0.1) as stream:
        book = stream.orderbook("SBER", depth=3)
        book.wait(0, timeout=WAIT)
        provider.broken = True
        with pytest.raises(invia_data.TransportError):
            stream.all_trades("SBER")  # the subscribe call itself needs a token
        assert stream.health()["kind"].tolist() == ["orderbook"]
        sim.faults.drop_connections()
        assert _until(lambda: book.status == "reconnecting")
        time.sleep(0.5)  # reconnects fail for want of a token; the thread keeps trying
        assert "auth server unreachable" in (stream.connection.last_error or "")
        assert stream.connection.thread.is_alive()
        provider.broken = False
        assert _until(lambda: book.status == "live")
        book.close()
        assert book.status == "closed"


class RecordingSocket:
    """Stands in for the websocket-client object: records what the connection sends."""

    def __init__(self):
        self.sent = []

    def send(self, frame):
        self.sent.append(orjson.loads(frame))


def test_server_errors_are_retried_later_then_given_up():
    connection, sub, frame = _offline_connection()
    connection._ws = RecordingSocket()
    for attempt in range(1, 7):
        guid = sub.route.guid
        connection._process([b'{"requestGuid":"' + guid.encode()
                             + b'","httpCode":503,"message":"busy"}'], time.monotonic())
        if attempt <= 5:
            assert frame.status == "connecting" and not sub.settled.is_set()
            assert sub.retry.retry_at is not None
            connection._tick(sub.retry.retry_at - 0.01)
            assert len(connection._ws.sent) == attempt - 1  # not due yet
            connection._tick(sub.retry.retry_at + 0.01)
            sent = connection._ws.sent[-1]
            assert len(connection._ws.sent) == attempt
            assert sent["opcode"] == "OrderBookGetAndSubscribe" and sent["guid"] != guid
    assert frame.status == "error" and isinstance(frame.error, invia_data.ServerError)
    assert sub.settled.is_set() and connection.subs() == []
    assert sub.errors == 6


def test_a_confirmation_resets_the_server_error_budget():
    connection, sub, frame = _offline_connection()
    connection._ws = RecordingSocket()
    connection._process([b'{"requestGuid":"' + sub.route.guid.encode()
                         + b'","httpCode":429,"message":"slow down"}'], time.monotonic())
    connection._tick(sub.retry.retry_at + 0.01)
    connection._process([b'{"requestGuid":"' + sub.route.guid.encode()
                         + b'","httpCode":200,"message":"ok"}'], time.monotonic())
    assert sub.retry.transient_retries == 0 and frame.status == "live"


def test_a_quiet_connection_is_kept_alive_with_pings(fresh_sim):
    sim = fresh_sim()
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    with Stream(sim.ws_url, tokens.token, stale_after=None, ping_interval=0.5) as stream:
        book = stream.orderbook("SBER", depth=3)
        book.wait(0, timeout=WAIT)
        sim.faults.stalled = True  # no data at all, but the server still answers pings
        assert _until(lambda: stream.health().attrs["connection"]["pings"] >= 3, timeout=8)
        assert stream.health().attrs["connection"]["reconnects"] == 0
        assert book.status == "live"


def test_request_reconnect_resubscribes_everything(sim, token):
    with Stream(sim.ws_url, lambda: token, reconnect_delay=0.1) as stream:
        book = stream.orderbook("SBER", depth=3)
        summary = stream.summary("D39004")
        for frame in (book, summary):
            frame.wait(0, timeout=WAIT)
        stream.connection.request_reconnect()
        assert _until(lambda: (stream.health()["reconnects"] == 1).all()
                      and (stream.health()["status"] == "live").all())
        version = book.version
        book.wait(1, timeout=WAIT)
        assert book.version > version
        assert stream.gaps()["kind"].tolist() == ["orderbook", "summary"]
        assert (stream.gaps()["backfilled"] == 0).all()


class FakeClock:
    """``time`` for one module: ``monotonic()`` is set by the test, the rest is real."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_message_rate_survives_a_reconnect(monkeypatch):
    from invia_data.stream import connection as connection_module
    from invia_data.stream import stream as stream_module

    clock = FakeClock(1000.0)
    monkeypatch.setattr(connection_module, "time", clock)
    monkeypatch.setattr(stream_module, "time", clock)
    stream = Stream("ws://127.0.0.1:9/cws", lambda: "t", stale_after=None)
    connection, sub, frame = _offline_connection()
    stream._conn, stream._frames[frame] = connection, [sub]

    def deliver(times):
        for now in times:
            clock.now = now
            book = b'{"data":{"b":[{"p":1.0,"v":1}],"a":[{"p":2.0,"v":1}],"t":5},"guid":"'
            connection._process([book + sub.route.guid.encode() + b'"}'], now)
            connection._tick(now)

    deliver([1000.0 + i / 10 for i in range(10)])          # 10 messages in the first second
    connection._disconnected(SimpleNamespace(sock=None))   # the server dropped the connection
    connection._session.subscribe(sub.route, "t")          # re-sent on the new connection
    deliver([1001.2, 1001.3, 1001.4, 1001.5, 1001.6])
    assert stream.health()["messages"].tolist() == [15]
    # 15 messages since the subscription began 1.6 s ago, the outage included
    assert stream.health()["messages_per_s"].tolist() == [pytest.approx(15 / 1.6)]
    clock.now = 1004.0
    assert stream.health()["messages_per_s"].tolist() == [pytest.approx(15 / 4.0)]
    clock.now = 1010.0  # nothing for longer than the window: the rate falls to zero
    assert stream.health()["messages_per_s"].tolist() == [0.0]
