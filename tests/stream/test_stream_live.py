"""The stream against the simulator: every subscription kind in every format, the same frames
as the HTTP calls, rejections, health, callbacks and closing."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pandas as pd
import pytest
import requests
from fakes import market_time

import invia_data
from invia_data.errors import (
    BadRequest,
    InvalidArgument,
    NotFound,
    StreamClosed,
)
from invia_data.frames import dtypes
from invia_data.schema import BOOK_LEVEL, CANDLE, INSTRUMENT_STATE, TRADE
from invia_data.stream import LiveFrame, Stream
from invia_data.stream.protocol import MIN_FREQUENCY
from invia_data.stream.state import _KEYED, _ROWS
from invia_data.stream.stream import DEFAULT_FORMATS

FORMATS = ("Simple", "Slim", "Heavy")
WAIT = 10.0


def _client(sim, fmt=None):
    return invia_data.connect(sim.refresh_token, env=sim.url, format=fmt)


def _same_schema(live: pd.DataFrame, http: pd.DataFrame, extra=()):
    assert list(live.columns) == list(http.columns) + list(extra)
    for column in http.columns:
        assert live[column].dtype == http[column].dtype, column
    assert type(live.index) is type(http.index)
    assert live.index.name == http.index.name


def _check_book(frame: pd.DataFrame, depth: int):
    bids = frame.loc[frame["side"] == "bid", "price"].to_numpy()
    asks = frame.loc[frame["side"] == "ask", "price"].to_numpy()
    assert len(bids) == depth and len(asks) == depth
    assert np.all(np.diff(bids) < 0) and np.all(np.diff(asks) > 0)
    assert bids[0] < asks[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_kind_matches_the_http_frame(sim, fmt):
    with _client(sim, fmt) as inv:
        stream = inv.stream
        assert isinstance(stream, Stream) and stream.format == fmt
        live = {
            "orderbook": stream.orderbook("SBER", depth=5),
            "quotes": stream.quotes(["SBER", "MOEX:GAZP"]),
            "all_trades": stream.all_trades("SBER", recent=20),
            "bars": stream.bars("SBER", "1min", start=sim.market.now() - 3600),
            "instrument_state": stream.instrument_state("SBER"),
            "positions": stream.positions(),
            "summary": stream.summary(),
            "risk": stream.risk(),
            "forts_risk": stream.forts_risk("7500GHC"),
            "orders": stream.orders(),
            "stop_orders": stream.stop_orders(),
            "own_trades": stream.own_trades(),
        }
        for kind, frame in live.items():
            assert isinstance(frame, LiveFrame) and frame.kind == kind
            frame.wait(0, timeout=WAIT)
            assert frame.status == "live", kind
            assert frame.params["format"] == fmt
        http = {
            "orderbook": inv.orderbook("SBER", depth=5),
            "quotes": inv.quotes(["SBER", "GAZP"]),
            "all_trades": inv.all_trades("SBER", limit=5),
            "bars": inv.history("SBER", "1min", start=market_time(sim) - pd.Timedelta("1h")),
            "positions": inv.positions(),
            "summary": inv.summary(),
            "risk": inv.risk(),
            "forts_risk": inv.forts_risk("7500GHC"),
            "orders": inv.orders(),
            "stop_orders": inv.stop_orders(),
            "own_trades": inv.own_trades(),
        }
        for kind, reference in http.items():
            _same_schema(live[kind].df, reference, ("is_closed",) if kind == "bars" else ())
        state = live["instrument_state"].df
        assert {c: state[c].dtype for c in state.columns} == dtypes(INSTRUMENT_STATE)
        assert state.loc[0, "symbol"] == "SBER" and state.loc[0, "trading_status"] > 0
        book = live["orderbook"].df
        _check_book(book, 5)
        assert pd.Timestamp(book.attrs["time"]).tz is not None
        assert set(http["orderbook"].attrs) <= set(book.attrs)
        assert sorted(live["quotes"].wait(0).df["symbol"]) in (["SBER"], ["GAZP", "SBER"])
        positions = live["positions"].df
        assert not positions.duplicated(["symbol", "exchange"]).any()
        assert len(live["summary"].df) == len(live["risk"].df) == 1


def test_each_default_format_is_the_fastest_that_carries_every_column():
    by_speed = sorted(FORMATS, key=MIN_FREQUENCY.get)
    schemas = {**{kind: schema for kind, (schema, _) in _KEYED.items()}, **_ROWS,
               "orderbook": BOOK_LEVEL, "all_trades": TRADE, "bars": CANDLE}
    assert set(DEFAULT_FORMATS) == set(schemas)
    for kind, schema in schemas.items():
        complete = [fmt for fmt in by_speed
                    if all(f.legacy or f.key(fmt) is not None for f in schema.fields)]
        assert DEFAULT_FORMATS[kind] == complete[0], kind


def test_live_frames_hold_the_values_of_the_http_frames(sim):
    with _client(sim) as inv:
        stream = inv.stream
        quotes = stream.quotes(["SBER", "GAZP"])
        positions = stream.positions()
        own_trades = stream.own_trades()
        for frame in (quotes, positions, own_trades):
            frame.wait(0, timeout=WAIT)
        quote = quotes.df
        assert quote[["prev_close_price", "change", "change_percent", "currency"]].notna().all().all()
        shares = positions.df[~positions.df["is_currency"]]
        assert len(shares) and shares["open_qty_batch"].notna().all()
        trades = own_trades.df
        # the stream's own trades lack short_name and currency in every format (the API's)
        assert len(trades) and trades[["settle_date", "qty"]].notna().all().all()


def test_bars_replay_history_then_keep_one_open_candle(sim, token):
    with Stream(sim.ws_url, lambda: token) as stream:
        bars = stream.bars("SBER", "1min", start=sim.market.now() - 1800)
        deadline = time.monotonic() + WAIT
        while len(bars.df) < 20 and time.monotonic() < deadline:
            bars.wait(1, timeout=WAIT)
        frame = bars.df
        assert len(frame) >= 20
        assert frame.index.is_monotonic_increasing and frame.index.is_unique
        assert frame["is_closed"].tolist() == [True] * (len(frame) - 1) + [False]
        assert (frame["high"] >= frame["low"]).all()


def test_an_old_candle_that_arrives_first_is_not_shown_as_open(client, sim):
    """A client's stream reads the server's clock: right after subscribing, the first history
    candle (half an hour old) is closed although no later one has arrived yet."""
    bars = client.stream.bars("SBER", "1min", start=sim.market.now() - 1800)
    frame = bars.wait(0, timeout=WAIT).df
    now = client.time().timestamp()
    ends = frame.index.astype("int64") // 10**9 + 60
    clear = abs(ends - now) > 2   # (leave out a candle that closed while we read the clock)
    assert frame["is_closed"][clear].tolist() == (ends <= now)[clear].tolist()
    assert frame["is_closed"].iloc[0]
    deadline = time.monotonic() + WAIT
    while True:   # the candle of now, 2 s or more before its end (no race with the minute)
        frame = bars.df
        if frame.index[-1].timestamp() + 60 > client.time().timestamp() + 2:
            break
        assert time.monotonic() < deadline, "the history never reached the open candle"
        bars.wait(1, timeout=WAIT)
    assert not frame["is_closed"].iloc[-1] and frame["is_closed"].iloc[:-1].all()
    bars.close()


def test_trades_replay_depth_and_ids_unique(sim, token):
    with Stream(sim.ws_url, lambda: token) as stream:
        trades = stream.all_trades("SBER", recent=50, maxlen=30)
        deadline = time.monotonic() + WAIT
        while len(trades.df) < 30 and time.monotonic() < deadline:
            trades.wait(1, timeout=WAIT)
        frame = trades.df
        assert len(frame) == 30  # the replay of 50 went through a 30-row ring buffer
        assert frame["id"].is_unique and frame["id"].is_monotonic_increasing


def test_rejections_raise_the_matching_error(sim, token, token_for):
    with Stream(sim.ws_url, lambda: token, portfolio="D39004") as stream:
        with pytest.raises(NotFound):
            stream.orderbook("NOSUCH")
        with pytest.raises((BadRequest, NotFound)):
            stream.bars("SBER", "1min", exchange="NOWHERE")
        book = stream.orderbook("SBER")
        assert book.status == "live"
        statuses = stream.health()["status"].tolist()
        assert statuses == ["live"]  # the rejected ones are gone from health
    narrow = token_for(sim, allowedPortfolios=["D39004"])
    with Stream(sim.ws_url, lambda: narrow) as stream:
        # a portfolio the token lacks is refused before anything is sent, as over HTTP
        with pytest.raises(InvalidArgument, match="not in the token"):
            stream.positions("G39004")
        assert stream.connection.stats["connects"] == 0 and not stream.frames


def test_a_rejection_raised_to_the_caller_is_not_also_a_warning(sim, token, caplog):
    with Stream(sim.ws_url, lambda: token) as stream:
        with caplog.at_level(logging.INFO, logger="invia_data.stream"):
            with pytest.raises(NotFound):
                stream.orderbook("NOSUCH")
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1 and rejected[0].levelno == logging.INFO


def test_bad_arguments_raise_before_anything_is_sent(sim, token):
    stream = Stream(sim.ws_url, lambda: token)
    calls = [
        lambda: stream.orderbook("SBER", depth=0),
        lambda: stream.orderbook("SBER", depth=51),
        lambda: stream.orderbook("SBER", depth=True),
        lambda: stream.orderbook(""),
        lambda: stream.orderbook("SBER", format="Fat"),
        lambda: stream.orderbook("SBER", frequency=-1),
        lambda: stream.all_trades("SBER", recent=5001),
        lambda: stream.all_trades("SBER", maxlen=0),
        lambda: stream.bars("SBER", "fortnight"),
        lambda: stream.bars("SBER", "1min", start="not a time"),
        lambda: stream.quotes([]),
        lambda: stream.quotes(42),
        lambda: stream.positions("D00000"),  # not a portfolio of the token
        lambda: stream.positions(""),
        lambda: stream.orderbook("SBER", board=""),
        lambda: stream.orderbook("SB ER"),
        lambda: stream.orderbook("SBER", exchange="MO EX"),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument):
            call()
    assert stream.connection.thread is None  # nothing was connected, nothing sent
    with pytest.raises(InvalidArgument):
        Stream("http://x", lambda: token)
    with pytest.raises(InvalidArgument):
        Stream(sim.ws_url, lambda: token, path="/other")
    stream.close()


def test_ws_path_is_selectable(sim, token):
    with Stream(sim.ws_url, lambda: token, path="/ws") as stream:
        assert stream.url.endswith("/ws")
        assert stream.orderbook("GAZP", depth=3).wait(0, timeout=WAIT).status == "live"


def test_health_counts_messages(sim, token):
    with Stream(sim.ws_url, lambda: token) as stream:
        book = stream.orderbook("SBER", depth=3)
        book.wait(5, timeout=WAIT)
        health = stream.health()
        assert list(health.columns) == ["kind", "symbol", "timeframe", "status", "messages",
                                        "messages_per_s",
                                        "last_message_age", "data_age", "callback_lag",
                                        "callbacks_skipped", "reconnects", "errors", "gaps",
                                        "unfilled_gaps"]
        row = health.iloc[0]
        assert (row["kind"], row["symbol"], row["status"]) == ("orderbook", "MOEX:SBER", "live")
        assert row["messages"] >= 5 and row["messages_per_s"] > 0
        assert 0 <= row["last_message_age"] < 5
        assert (row["reconnects"], row["errors"], row["gaps"], row["unfilled_gaps"]) == (0, 0, 0, 0)
        assert 0 <= row["data_age"] < 5 and row["callback_lag"] == 0.0
        assert health.attrs["connection"]["connects"] == 1 and health.attrs["connected"]


def test_callbacks_may_subscribe_and_raise_without_harm(sim, token):
    with Stream(sim.ws_url, lambda: token) as stream:
        book = stream.orderbook("SBER", depth=3)
        opened: list[LiveFrame] = []
        done = threading.Event()

        def subscribe_once(frame):
            if not opened:
                opened.append(stream.orderbook("GAZP", depth=3))  # from the stream thread
                opened[0].on_update(lambda f: done.set())

        def broken(frame):
            raise ValueError("a bug in user code")

        book.on_update(subscribe_once)
        book.on_update(broken)
        assert done.wait(WAIT), "the nested subscription never delivered"
        book.wait(3, timeout=WAIT)
        assert book.callback_errors >= 1
        assert stream.health()["errors"].iloc[0] >= 1
        assert opened[0].status == "live"
        opened[0].close()
        assert opened[0].status == "closed"
        assert len(stream.health()) == 1

        closed_inside = threading.Event()

        def close_self(frame):
            frame.close()  # unsubscribing from the stream thread must not deadlock
            closed_inside.set()

        book.on_update(close_self)
        assert closed_inside.wait(WAIT)
        assert book.status == "closed" and len(stream.health()) == 0
        assert stream.orderbook("LKOH", depth=3).wait(0, timeout=WAIT).status == "live"


def test_close_unsubscribes_joins_and_is_idempotent(sim, token):
    stream = Stream(sim.ws_url, lambda: token)
    book = stream.orderbook("SBER", depth=3)
    trades = stream.all_trades("SBER")
    book.wait(0, timeout=WAIT)
    thread = stream.connection.thread
    assert thread.daemon and thread.is_alive()
    book.close()
    version = book.version
    time.sleep(0.3)
    assert book.version == version and book.status == "closed"
    stream.close()
    stream.close()
    assert not thread.is_alive()
    assert trades.status == "closed"
    with pytest.raises(StreamClosed):
        stream.orderbook("SBER")
    with pytest.raises(StreamClosed):
        trades.wait(1, timeout=1)


def test_many_readers_see_consistent_books_while_streaming(fresh_sim):
    from invia_data.auth import TokenManager

    sim = fresh_sim(firehose=True)
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    with Stream(sim.ws_url, tokens.token, frequency=0) as stream:
        book = stream.orderbook("SBER", depth=20)
        book.wait(0, timeout=WAIT)
        problems = []
        reads = [0]
        stop = time.monotonic() + 3.0

        def reader():
            while time.monotonic() < stop:
                frame = book.df
                try:
                    _check_book(frame, 20)
                except AssertionError as exc:
                    problems.append(exc)
                reads[0] += 1

        threads = [threading.Thread(target=reader) for _ in range(6)]
        start_version = book.version
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not problems
        assert reads[0] > 50 and book.version - start_version > 100


def test_wss_with_the_simulators_certificate(fresh_sim):
    sim = fresh_sim(tls=True)
    assert sim.ws_url.startswith("wss://")
    token = requests.post(f"{sim.auth_url}/refresh", params={"token": sim.refresh_token},
                          verify=sim.cert_path, timeout=10).json()["AccessToken"]
    with Stream(sim.ws_url, lambda: token, sslopt={"ca_certs": sim.cert_path},
                reconnect_delay=0.1) as stream:
        book = stream.orderbook("SBER", depth=5)
        trades = stream.all_trades("SBER", recent=200)
        book.wait(5, timeout=WAIT)
        trades.wait(0, timeout=WAIT)
        _check_book(book.df, 5)
        sim.faults.drop_connections()
        deadline = time.monotonic() + WAIT
        while stream.health()["reconnects"].min() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stream.health()["reconnects"].min() == 1
        assert book.wait(1, timeout=WAIT).status == "live"


def test_exchange_prefixed_symbols_and_boards(sim, token):
    with Stream(sim.ws_url, lambda: token) as stream:
        its = stream.orderbook("ITS:SOGN", depth=3)
        board = stream.quotes("SBER", board="TQBR")
        for frame in (its, board):
            frame.wait(0, timeout=WAIT)
        assert its.symbol == "ITS:SOGN" and its.df.attrs["exchange"] == "ITS"
        assert board.params["symbols"] == ["MOEX:SBER"]
        requests_sent = [sub.request.fields for sub in stream.connection.subs()]
        assert requests_sent[0]["exchange"] == "ITS" and requests_sent[0]["code"] == "SOGN"
        assert requests_sent[1]["instrumentGroup"] == "TQBR"


def test_a_parameter_that_cannot_be_encoded_fails_only_its_own_call(sim, token):
    with Stream(sim.ws_url, lambda: token) as stream:
        quotes = stream.quotes("SBER").wait(0, timeout=WAIT)
        with pytest.raises(InvalidArgument, match="frequency"):
            stream.orderbook("GAZP", frequency=2**70)  # beyond 64 bits: orjson cannot send it
        with pytest.raises(InvalidArgument, match="frequency"):
            stream.quotes("GAZP", frequency=2**64)
        quotes.wait(2, timeout=WAIT)
        health = stream.health()
        assert len(health) == 1 and health["status"].tolist() == ["live"]
        assert health.attrs["connection"]["connects"] == 1  # no reconnect loop
        assert health.attrs["connection"]["reconnects"] == 0
