"""Reducers and LiveFrame, fed plain wire objects (no sockets, no threads unless stated)."""

from __future__ import annotations

import functools
import logging
import random
import threading

import numpy as np
import orjson
import pandas as pd
import pytest
from fakes import until

from invia_data.errors import InvalidArgument, NotFound, StreamClosed, StreamError, StreamTimeout
from invia_data.frames import dtypes, to_frame
from invia_data.schema import CANDLE, ORDERBOOK, POSITION, TRADE
from invia_data.stream.live import FrameWriter, LiveFrame
from invia_data.stream.state import (
    BarsState,
    BookState,
    KeyedState,
    RowState,
    TradesState,
    make_state,
)

SLIM_BOOK = ('{"b":[{"p":257.7,"v":157},{"p":257.6,"v":5}],"a":[{"p":257.71,"v":288}],'
             '"t":1702631123780,"h":false}')


def test_book_long_form_matches_the_http_order_book_frame():
    market = pytest.importorskip("invia_data.market")
    for fmt, wire in (("Slim", orjson.loads(SLIM_BOOK)),
                      ("Simple", {"bids": [{"price": 1.5, "volume": 2}], "asks": [],
                                  "ms_timestamp": 1702631123780, "timestamp": 1702631123,
                                  "snapshot": True, "existing": True}),
                      ("Heavy", {"bids": [], "asks": [{"price": 3.0, "volume": 1}],
                                 "msTimestamp": 1702631123780, "existing": False})):
        state = BookState(fmt, {"symbol": "SBER", "exchange": "MOEX", "depth": 20})
        state.apply(wire)
        got = state.frame(state.snapshot())
        want = market.book_frame(ORDERBOOK.decode(wire, fmt), symbol="SBER", exchange="MOEX",
                                 depth=20)
        pd.testing.assert_frame_equal(got, want)
        assert got.attrs == want.attrs


def test_book_replaced_by_each_message():
    state = BookState("Slim")
    empty = state.frame(state.snapshot())
    assert list(empty.columns) == ["side", "level", "price", "volume", "yield"] and empty.empty
    state.apply(orjson.loads(SLIM_BOOK))
    frame = state.frame(state.snapshot())
    assert frame["side"].tolist() == ["bid", "bid", "ask"]
    assert frame["level"].tolist() == [0, 1, 0]
    assert frame["price"].tolist() == [257.7, 257.6, 257.71]
    assert pd.Timestamp(frame.attrs["time"]) == pd.Timestamp(1702631123780, unit="ms", tz="UTC")
    state.apply({"b": [{"p": 1.0, "v": 1, "y": 7.5}], "a": [], "t": 1})
    frame = state.frame(state.snapshot())
    assert len(frame) == 1 and frame["yield"].tolist() == [7.5]
    with pytest.raises(TypeError):
        state.apply([1, 2])


def _candle(t, c, v=10):
    return {"t": t, "o": c, "h": c, "l": c, "c": c, "v": v}


def test_bars_open_candle_updates_in_place_and_closes_when_a_later_one_starts():
    state = BarsState("Slim")
    assert state.apply(_candle(60, 1.0)) == 2
    assert state.apply(_candle(60, 1.5)) == 1
    frame = state.frame(state.snapshot())
    assert frame["close"].tolist() == [1.5] and frame["is_closed"].tolist() == [False]
    assert state.apply(_candle(120, 2.0)) == 2
    assert state.apply(_candle(30, 0.5)) == 2  # a late history candle lands in order
    frame = state.frame(state.snapshot())
    assert frame.index.name == "time"
    assert frame.index.tolist() == [pd.Timestamp(t, unit="s", tz="UTC") for t in (30, 60, 120)]
    assert frame["is_closed"].tolist() == [True, True, False]
    want = {**dtypes(CANDLE)}
    want.pop("time")
    assert {c: frame[c].dtype for c in want} == want
    with pytest.raises(TypeError):
        state.apply({"o": 1})


def test_with_the_server_clock_the_newest_candle_is_closed_once_its_minute_is_over():
    now = [600.0]
    state = BarsState("Slim", tf=60, clock=lambda: now[0])
    state.apply(_candle(60, 1.0))   # the first history candle, long over
    assert state.frame(state.snapshot())["is_closed"].tolist() == [True]
    state.apply(_candle(540, 2.0))  # the candle of [540, 600): over exactly at 600
    assert state.frame(state.snapshot())["is_closed"].tolist() == [True, True]
    now[0] = 599.5
    assert state.frame(state.snapshot())["is_closed"].tolist() == [True, False]


def test_bars_merge_fills_missing_candles_and_keeps_the_streamed_open_candle():
    state = BarsState("Heavy")
    for t, c in ((60, 1.0), (120, 2.0)):
        state.apply({"time": t, "open": c, "high": c, "low": c, "close": c, "volume": 1})
    history = [{"time": t, "open": 9.0, "high": 9.0, "low": 9.0, "close": 9.0, "volume": 5}
               for t in (60, 180, 240, 120)]
    assert state.merge(history) == 3
    closes = state.frame(state.snapshot())["close"].tolist()
    assert closes == [9.0, 2.0, 9.0, 9.0]
    assert state.last_time() == 240


def _trade(i, t=None):
    return {"id": i, "t": t if t is not None else 1_700_000_000_000 + i, "px": 1.0 + i,
            "q": 1, "s": "buy", "sym": "SBER", "bd": "TQBR", "h": False}


def test_trades_ring_buffer_is_bounded_and_deduplicated():
    state = TradesState("Slim", maxlen=5)
    for i in range(1, 9):
        assert state.apply(_trade(i)) == 1
    assert state.apply(_trade(8)) == 0
    assert [t["id"] for t in state.snapshot()[2]] == [4, 5, 6, 7, 8]
    assert state.ids == {4, 5, 6, 7, 8}
    assert state.apply(_trade(2)) == 1  # older than the window: kept in order, then cut
    assert [t["id"] for t in state.snapshot()[2]] == [4, 5, 6, 7, 8]
    assert state.merge([_trade(9), _trade(7), _trade(10)]) == 2
    assert [t["id"] for t in state.snapshot()[2]] == [6, 7, 8, 9, 10]
    assert state.last_time_ms() == 1_700_000_000_010
    frame = state.frame(state.snapshot())
    reference = to_frame(TRADE, state.snapshot()[2], "Slim", index="time")
    pd.testing.assert_frame_equal(frame, reference)
    with pytest.raises(InvalidArgument):
        TradesState("Slim", maxlen=0)
    for bad in ({"px": 1.0}, {"id": "7"}, {"id": None}, [1]):
        with pytest.raises(TypeError):
            state.apply(bad)
    assert state.merge([{"px": 1.0}, {"id": 1.5}, "junk"]) == 0


def test_trades_out_of_order_arrival_is_sorted_by_id():
    state = TradesState("Slim", maxlen=100)
    for i in (1, 2, 5, 3, 4, 4):
        state.apply(_trade(i))
    assert [t["id"] for t in state.snapshot()[2]] == [1, 2, 3, 4, 5]


def test_keyed_tables_update_in_place():
    state = make_state("positions", "Slim")
    state.apply({"sym": "SBER", "ex": "MOEX", "q": 10, "pxavg": 250.0})
    state.apply({"sym": "GAZP", "ex": "MOEX", "q": 5})
    state.apply({"sym": "SBER", "ex": "MOEX", "q": 20})
    frame = state.frame(state.snapshot())
    assert frame["symbol"].tolist() == ["SBER", "GAZP"]
    assert frame["qty_units"].tolist() == [20.0, 5.0]
    assert frame["avg_price"].iloc[0] == 250.0
    assert {c: frame[c].dtype for c in frame.columns} == dtypes(POSITION)
    orders = make_state("orders", "Heavy")
    assert isinstance(orders, KeyedState)
    orders.apply({"id": "1", "status": "working"})
    orders.apply({"id": "1", "status": "filled"})
    assert orders.frame(orders.snapshot())["status"].tolist() == ["filled"]


def test_instrument_state_partial_updates_merge_into_one_row():
    state = make_state("instrument_state", "Simple")
    assert isinstance(state, RowState)
    state.apply({"symbol": "SBER", "exchange": "MOEX", "tradingStatus": 17, "priceMin": 1.0})
    before = state.snapshot()
    state.apply({"symbol": "SBER", "priceMin": 2.0})
    assert before["priceMin"] == 1.0  # a snapshot is never mutated by later updates
    frame = state.frame(state.snapshot())
    assert len(frame) == 1
    assert frame.loc[0, "price_min"] == 2.0 and frame.loc[0, "trading_status"] == 17
    assert make_state("summary", "Slim").frame(None).empty
    with pytest.raises(InvalidArgument):
        make_state("candles", "Slim")


def test_incremental_frames_equal_frames_built_from_scratch():
    """Random appends, evictions, late and out-of-order rows, merges and open-candle updates,
    with reads in between: every read equals the frame built from all rows at once."""
    rng = random.Random(7)
    trades = TradesState("Slim", maxlen=300)
    trades._frames._chunk = 64
    bars = BarsState("Slim", maxlen=40)
    model: dict[int, dict] = {}  # what the bars must hold: the latest version of each candle
    next_id, minute = 1, 60
    for _ in range(1500):
        roll = rng.random()
        if roll < 0.8:
            trades.apply(_trade(next_id))
            next_id += rng.choice((1, 1, 1, 2))
        elif roll < 0.85:
            trades.apply(_trade(max(1, next_id - rng.randint(1, 50))))  # late or duplicate
        elif roll < 0.87:
            trades.merge([_trade(next_id + 1), _trade(max(1, next_id - 3))])
            next_id += 2
        if rng.random() < 0.3:
            minute += 60
        bars.apply(candle := _candle(minute, rng.random()))
        model[minute] = candle
        if rng.random() < 0.02:
            late = max(60, minute - 60 * rng.randint(1, 5))
            bars.apply(candle := _candle(late, 7.0))
            model[late] = candle
        if rng.random() < 0.01:
            fetched = [_candle(minute - 120, 8.0), _candle(minute + 60 * 50, 9.0)]
            bars.merge(fetched)
            latest = max(model)
            model.update({c["t"]: c for c in fetched if c["t"] != latest})
            minute = max(model)
        for t in sorted(model)[:-40]:
            del model[t]
        if rng.random() < 0.06:
            epoch, first, rows = trades.snapshot()
            pd.testing.assert_frame_equal(trades.frame((epoch, first, rows)),
                                          to_frame(TRADE, rows, "Slim", index="time"))
            snap = bars.snapshot()
            bars.apply(_candle(minute, -1.0))  # a later update does not reach the snapshot
            model[minute] = _candle(minute, -1.0)
            want = to_frame(CANDLE, [model[t] for t in sorted(model)], "Slim", index="time")
            want["is_closed"] = [True] * (len(want) - 1) + [False]
            got = bars.frame(snap)
            assert got["close"].iloc[-1] != -1.0
            pd.testing.assert_frame_equal(got.iloc[:-1], want.iloc[:-1])
            pd.testing.assert_frame_equal(bars.frame(bars.snapshot()), want)
    assert len(trades.snapshot()[2]) == 300


# --- LiveFrame ----------------------------------------------------------------------------------

def _book_frame():
    return LiveFrame("orderbook", "MOEX:SBER", {"depth": 2}, BookState("Slim"))


_until = functools.partial(until, timeout=5.0, step=0.005)


def test_live_frame_version_cache_and_snapshot_isolation():
    live = _book_frame()
    assert (live.version, live.age, live.updated_at, live.status) == (0, None, None, "connecting")
    assert live.df.empty
    FrameWriter(live).apply_one(orjson.loads(SLIM_BOOK))
    assert live.version == 1 and live.status == "live"
    assert isinstance(live.updated_at, pd.Timestamp) and live.age >= 0
    first = live.df
    first["price"] = 0.0  # the user's copy, not the cached snapshot
    assert live.df["price"].iloc[0] == 257.7
    assert live._cache[0] == 1
    assert "live" in live._repr_html_() and "257.7" in live._repr_html_()
    assert "version 1" in repr(live)


def test_callbacks_run_after_unlocking_and_errors_are_counted():
    live = _book_frame()
    writer = FrameWriter(live)
    seen = []

    def reader(frame):
        seen.append(len(frame.df))  # reading takes the lock: must not deadlock
        frame.on_update(lambda f: seen.append("nested"))

    def broken(frame):
        raise RuntimeError("boom")

    handle = live.on_update(reader)
    live.on_update(broken)
    writer.apply_one(orjson.loads(SLIM_BOOK))
    assert _until(lambda: live.callback_errors == 1)
    assert seen == [3]
    live.remove_callback(handle)
    writer.publish()
    assert _until(lambda: live.callback_errors == 2)
    assert seen == [3, "nested"]
    with pytest.raises(InvalidArgument):
        live.on_update(42)


def test_a_failing_callback_logs_its_traceback_once(caplog):
    live = _book_frame()
    writer = FrameWriter(live)
    writer.apply_one(orjson.loads(SLIM_BOOK))

    def broken(frame):
        raise RuntimeError("boom")

    live.on_update(broken)
    with caplog.at_level(logging.DEBUG, logger="invia_data.stream"):
        for count in range(1, 6):
            writer.publish()
            assert _until(lambda: live.callback_errors == count)  # noqa: B023
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "callback_errors" in errors[0].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4
    assert live.callback_errors == 5


def test_wait_counts_updates_and_reports_errors_and_closing():
    live = _book_frame()
    with pytest.raises(TimeoutError) as timed_out:  # a plain `except TimeoutError` catches it
        live.wait(0, timeout=0.05)
    assert isinstance(timed_out.value, StreamTimeout)
    assert isinstance(timed_out.value, StreamError)
    timer = threading.Timer(0.05, lambda: FrameWriter(live).apply_one(orjson.loads(SLIM_BOOK)))
    timer.start()
    assert live.wait(0, timeout=5) is live
    timer.join()
    assert live.wait(0, timeout=0.01) is live  # data is there: returns at once
    with pytest.raises(StreamError):
        live.wait(1, timeout=0.05)
    with pytest.raises(InvalidArgument):
        live.wait(-1)
    error = NotFound("instrument not found", request="OrderBookGetAndSubscribe")
    FrameWriter(live).set_status("error", error)
    assert live.error is error and live.status == "error"
    with pytest.raises(NotFound):
        live.wait(1, timeout=1)
    closed = []
    other = LiveFrame("orderbook", "X", {}, BookState("Slim"), closer=closed.append)
    other.close()
    other.close()
    assert closed == [other] and other.status == "closed"
    with pytest.raises(StreamClosed):
        other.wait(1, timeout=1)
    assert not FrameWriter(other).apply_one({"b": [], "a": []})


def test_a_wait_that_times_out_on_a_frame_with_data_says_that_it_has_data():
    live = _book_frame()
    with pytest.raises(StreamTimeout) as empty:
        live.wait(timeout=0.05)
    assert "holds data" not in str(empty.value)
    FrameWriter(live).apply_one(orjson.loads(SLIM_BOOK))
    with pytest.raises(StreamTimeout, match=r"holds data already \(version 1\): read \.df, "
                                            r"or wait\(0\)"):
        live.wait(timeout=0.05)
    assert live.wait(0, timeout=0.05) is live


def test_concurrent_readers_never_see_a_half_applied_book():
    live = LiveFrame("orderbook", "X", {}, BookState("Slim"))
    depth = 20
    stop = threading.Event()
    problems = []

    def write():
        writer = FrameWriter(live)
        for n in range(3000):
            mid = 100.0 + (n % 50) * 0.01
            book = {"b": [{"p": round(mid - 0.01 * (i + 1), 2), "v": n + 1} for i in range(depth)],
                    "a": [{"p": round(mid + 0.01 * (i + 1), 2), "v": n + 1} for i in range(depth)],
                    "t": 1_700_000_000_000 + n}
            writer.apply_one(book)
        stop.set()

    def reader():
        while not stop.is_set():
            frame = live.df
            if frame.empty:
                continue
            bids = frame[frame["side"] == "bid"]["price"].to_numpy()
            asks = frame[frame["side"] == "ask"]["price"].to_numpy()
            volumes = set(frame["volume"].tolist())
            if (len(bids) != depth or len(asks) != depth or not np.all(np.diff(bids) < 0)
                    or not np.all(np.diff(asks) > 0) or bids[0] >= asks[0] or len(volumes) != 1):
                problems.append(frame)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    write()
    for thread in readers:
        thread.join(10)
    assert not problems
    assert live.version == 3000


def test_bars_are_columns_bounded_by_maxlen():
    state = BarsState("Slim", maxlen=1000)
    for minute in range(5000):
        state.apply(_candle(60 * minute, float(minute)))
        state.apply(_candle(60 * minute, float(minute) + 0.5))  # the open candle changes
    assert len(state) == 1000 and state.last_time() == 60 * 4999
    held = state._t.nbytes + state._px.nbytes + state._vol.nbytes
    assert held / len(state) <= 2 * 48  # 48 bytes a candle, at most twice that reserved
    frame = state.frame(state.snapshot())
    assert frame["close"].iloc[0] == 4000.5 and frame["close"].iloc[-1] == 4999.5
    with pytest.raises(InvalidArgument):
        BarsState("Slim", maxlen=0)


def test_trades_batches_take_the_fast_path_only_when_it_equals_one_by_one():
    batches = [[_trade(i) for i in range(1, 50)], [_trade(i) for i in range(50, 60)],
               [_trade(58), _trade(61)], [_trade(70), {"id": "x"}], [_trade(80), [1]],
               [_trade(i) for i in range(90, 400)]]
    fast, slow = TradesState("Slim", maxlen=100), TradesState("Slim", maxlen=100)
    fast_writer = FrameWriter(LiveFrame("all_trades", "X", {}, fast))
    for batch in batches:
        fast_writer.apply(batch, 0.0)
        for data in batch:
            try:
                slow.apply(data)
            except TypeError:
                pass
    assert [t["id"] for t in fast.trades] == [t["id"] for t in slow.trades]
    assert fast.ids == slow.ids and len(fast.trades) == 100
    pd.testing.assert_frame_equal(fast.frame(fast.snapshot()), slow.frame(slow.snapshot()))
    assert fast.extend([_trade(1000), _trade(999)]) == 0  # not ascending: nothing changed
    assert fast.trades[-1]["id"] == 399


def test_remove_callback_returns_after_the_running_call_ended():
    """A notebook collects in a callback, removes it, then builds a frame of what it collected:
    a call still running must not append while the frame is built."""
    live = LiveFrame("all_trades", "MOEX:SBER", {}, make_state("all_trades", "Slim"))
    started, release = threading.Event(), threading.Event()
    collected = []

    def slow(frame):
        started.set()
        release.wait(5)
        collected.append(frame.version)

    handle = live.on_update(slow)
    FrameWriter(live).apply([{"id": 1, "t": 1_700_000_000_000, "px": 1.0, "q": 1}], 0.0)
    FrameWriter(live).publish()
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()
    live.remove_callback(handle)   # waits for the call that is running
    assert collected == [1]
    FrameWriter(live).apply([{"id": 2, "t": 1_700_000_000_001, "px": 1.0, "q": 1}], 0.0)
    FrameWriter(live).publish()
    live.wait(0, timeout=1)
    assert collected == [1]   # removed: not called again
