"""Replaying a recording: the replayed LiveFrame at a simulated time equals what the live frame
showed at that time while it was recorded; one clock for every frame (pause, resume, seek,
as fast as possible); bad input refused before anything is read."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import invia_data
from invia_data.errors import InvalidArgument, InviaWarning
from invia_data.replay import recording_dtypes

WAIT = 15.0


def _capture(frame, seen, lock):
    def grab(live):
        with lock:
            before = live.version
            updated = live._updated
            df = live.df
            if live.version == before and updated is not None:
                seen.append((updated, df))
    return grab


def _at(updated: float) -> pd.Timestamp:
    return pd.Timestamp(int(round(updated * 1_000_000)), unit="us", tz="UTC")


def test_a_replayed_frame_shows_what_the_live_frame_showed_at_the_same_time(sim, tmp_path):
    lock = threading.Lock()
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        s = inv.stream
        live = {"orderbook": s.orderbook("SBER", depth=5),
                "all_trades": s.all_trades("SBER", recent=20),
                "bars": s.bars("SBER", "1min"),
                "quotes": s.quotes(["SBER", "GAZP"])}
        recorder = s.record(tmp_path, list(live.values()), batch_seconds=0.3)
        seen = {kind: [] for kind in live}
        handles = {kind: frame.on_update(_capture(frame, seen[kind], lock))
                   for kind, frame in live.items()}
        deadline = time.monotonic() + WAIT
        while min(len(v) for v in seen.values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        for kind, frame in live.items():
            frame.remove_callback(handles[kind])
        recorder.close()
    assert min(len(v) for v in seen.values()) >= 5
    with invia_data.replay(tmp_path, paused=True) as rp:
        replayed = {"orderbook": rp.orderbook("SBER", depth=5),
                    "all_trades": rp.all_trades("SBER"),
                    "bars": rp.bars("SBER", "1min"),
                    "quotes": rp.quotes(["SBER", "GAZP"])}
        for kind, moments in seen.items():
            for updated, expected in moments:
                rp.seek(_at(updated))
                got = replayed[kind].df
                pd.testing.assert_frame_equal(got, expected, obj=f"{kind} at {_at(updated)}")
                if kind != "bars":   # (candle versions equal to the last written are not kept)
                    assert replayed[kind].updated_at == _at(updated), kind
                    assert replayed[kind].age == 0.0
                if kind == "orderbook":
                    assert got.attrs["time"] == expected.attrs["time"]
                    assert got.attrs["symbol"] == "SBER" and got.attrs["depth"] == 5
    _read_back_equals_what_live_showed(tmp_path, seen)


def _read_back_equals_what_live_showed(path, seen):
    """read_recording up to a moment gives the live frame of that moment, dtypes included, and
    survives a Parquet round trip."""
    times = ["exchange_time", "receive_time"]
    for kind in ("orderbook", "all_trades", "bars"):
        updated, expected = seen[kind][-1]
        rows = invia_data.read_recording(path, kind, symbols="SBER",
                                         end=_at(updated) + pd.Timedelta("1us"))
        assert (rows["receive_time"] <= _at(updated)).all() and (rows["symbol"] == "SBER").all()
        if kind == "orderbook":
            last = rows[rows["snapshot_id"] == rows["snapshot_id"].iloc[-1]]
            got = last.drop(columns=["snapshot_id", *times, "symbol"]).reset_index(drop=True)
        elif kind == "all_trades":
            got = rows.drop(columns=times).set_index("time")
        else:
            got = (rows.drop_duplicates("time", keep="last").sort_values("time")
                   .drop(columns=[*times, "symbol", "timeframe"]).set_index("time"))
            expected = expected.drop(columns="is_closed")
        pd.testing.assert_frame_equal(got, expected, obj=f"{kind} read back")
        file = path / f"{kind}.parquet"
        rows.to_parquet(file)
        pd.testing.assert_frame_equal(pd.read_parquet(file), rows)


def test_the_frames_advance_together_on_one_clock(sample_recording):
    with invia_data.replay(sample_recording, paused=True) as rp:
        book = rp.orderbook("SBER", depth=10)
        trades = rp.all_trades("SBER")
        assert rp.now == rp.start and rp.paused
        first = book.version
        rp.seek(rp.end)
        assert book.version > first and len(trades.df) > 0
        assert trades.df.index[-1] <= rp.end
        rp.seek(0)
        assert len(trades.df) <= 20 and rp.now == rp.start
        middle = rp.start + (rp.end - rp.start) / 2
        rp.seek(middle)
        assert (trades.df.index <= middle + pd.Timedelta("1s")).all()
        called = threading.Event()
        trades.on_update(lambda f: called.set())
        rp.speed = None
        rp.resume()
        assert rp.wait(WAIT) and rp.done and rp.now == rp.end
        assert called.wait(WAIT) and book.df.attrs["time"] is not None
        health = rp.health()
        assert (health["messages"] == health["total"]).all()


def test_a_paused_replay_stays_put_and_resumes_at_its_speed(sample_recording):
    with invia_data.replay(sample_recording, paused=True, speed=1000) as rp:
        book = rp.orderbook("SBER", depth=10)
        version = book.version
        time.sleep(0.1)
        assert book.version == version and rp.now == rp.start
        rp.resume()
        book.wait(1, timeout=WAIT)
        rp.pause()
        now = rp.now
        time.sleep(0.1)
        assert rp.now == now and now > rp.start


def test_bad_input_is_refused_with_the_fix(sample_recording, tmp_path):
    with pytest.raises(InvalidArgument, match="no recording"):
        invia_data.replay(tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="holds no recorded data"):
        invia_data.replay(tmp_path)
    with pytest.raises(InvalidArgument, match="speed"):
        invia_data.replay(sample_recording, speed=0)
    with pytest.raises(InvalidArgument, match="the recording covers .* choose start= and end="):
        invia_data.replay(sample_recording, start="2020-01-01", end="2020-01-02")
    with pytest.raises(InvalidArgument, match="inside a recording: give its folder"):
        invia_data.replay(sample_recording / "kind=orderbook")
    with pytest.raises(InvalidArgument, match="inside a recording"):
        invia_data.read_recording(sample_recording / "kind=all_trades", "all_trades")
    with invia_data.replay(sample_recording, paused=True) as rp:
        default_depth = rp.orderbook("SBER")
        with pytest.raises(InvalidArgument, match="seek to a time the replay covers"):
            rp.seek(rp.duration + 1)
        rp.seek(rp.end)
        assert rp.done
        assert len(default_depth.df) == 20   # the recorded depth, 10 a side
        with pytest.raises(InvalidArgument, match="it has SBER"):
            rp.orderbook("LKOH")
        with pytest.raises(InvalidArgument, match="depth=10 or less"):
            rp.orderbook("SBER", depth=20)
        with pytest.raises(InvalidArgument, match="ask for that timeframe"):
            rp.bars("SBER", "5min")
        # the live call's keywords run unchanged; a typo or record= does not pass silently
        book = rp.orderbook("SBER", depth=10, timeout=5, frequency=10, format="Slim")
        assert book.kind == "orderbook"
        with pytest.raises(InvalidArgument, match="takes no 'deph'.*depth"):
            rp.orderbook("SBER", deph=10)
        with pytest.raises(InvalidArgument, match="does not record"):
            rp.all_trades("SBER", record=tmp_path / "copy")
        assert rp.all_trades("SBER", record=None).kind == "all_trades"


MISTAKES = [("orderbook", ("SBER",), {"levels": 5}, "depth"),   # the widgets' old name
            ("all_trades", ("SBER",), {"depth": 100}, "recent"),  # the wire's name
            ("bars", ("SBER",), {"timeframe": "5min"}, "tf"),
            ("quotes", (["SBER"],), {"frequncy": 10}, "frequency"),
            ("positions", (), {"portfolio_id": "D1"}, "portfolio")]


@pytest.mark.parametrize("call, args, mistake, meant", MISTAKES,
                         ids=[f"{c}-{next(iter(m))}" for c, _, m, _ in MISTAKES])
def test_a_mistaken_keyword_gets_the_same_answer_from_a_replay_as_from_the_live_call(
        sim, sample_recording, call, args, mistake, meant):
    """Both name the keyword meant and list the call's options; a replay's list leaves out
    record=, which it refuses."""
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        with pytest.raises(InvalidArgument) as live:
            getattr(inv.stream, call)(*args, **mistake)
        assert not inv.stream.frames
    with invia_data.replay(sample_recording, paused=True) as rp:
        with pytest.raises(InvalidArgument) as replayed:
            getattr(rp, call)(*args, **mistake)
    said = str(live.value)
    assert said.startswith(f"{call}() takes no {next(iter(mistake))!r} "
                           f"(did you mean {meant}=?); its options are ")
    assert ", record," in said or said.endswith(", record")
    options = said.split("its options are ", 1)[1].split(", ")
    assert str(replayed.value) == said.split("its options are ")[0] + "its options are " + \
        ", ".join(o for o in options if o != "record")


def test_replayed_frames_draw_like_live_ones(sample_recording):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from invia_data import plots

    with invia_data.replay(sample_recording, paused=True) as rp:
        rp.seek(rp.end)
        book = rp.orderbook("SBER", depth=10)
        bars = rp.bars("SBER", "1min")
        widget = book.widget()
        assert type(widget).__name__ == "OrderBookWidget"
        widget.close()
        fig, (left, right) = plt.subplots(1, 2)
        assert plots.depth(book, ax=left) is left
        assert plots.candles(bars.df, ax=right) is right
        assert len(left.lines) + len(left.collections) + len(left.patches) > 0
        plt.close(fig)
        book.close()


def test_replayed_frames_age_on_the_simulated_clock(sample_recording):
    received = pd.read_parquet(sample_recording / "kind=orderbook")["receive_time"]
    snapshots = pd.DatetimeIndex(received.unique()).sort_values()
    wall = [1000.0]   # the replay's real-time clock, moved by hand: no sleeps
    with invia_data.replay(sample_recording, paused=True, clock=lambda: wall[0]) as rp:
        book = rp.orderbook("SBER", depth=10)
        if snapshots[0] > rp.start:   # before the first book: nothing held, no age
            assert book.updated_at is None and book.age is None
        shown = snapshots[2]
        moment = shown + (snapshots[3] - shown) / 2   # between two books
        rp.seek(moment)
        assert book.updated_at == shown
        assert book.age == pytest.approx((moment - shown).total_seconds(), abs=1e-6)
        wall[0] += 3600   # an hour of real time while paused: nothing ages
        assert book.age == pytest.approx((moment - shown).total_seconds(), abs=1e-6)
        assert book.status == "paused"   # a paused replay says so
        assert f"paused, version {book.version}, updated {book.age:.1f} s ago" in \
            book.status_line()
        health = rp.health()
        assert health["data_age"].iloc[0] == pytest.approx(book.age)
        with pytest.raises(InvalidArgument, match="seek to a time the replay covers"):
            rp.seek(rp.start - pd.Timedelta("1s"))
        rp.seek(rp.start)   # back to the start: as before any data
        if snapshots[0] > rp.start:
            assert book.updated_at is None and book.age is None


def test_a_frame_silent_for_stale_after_simulated_seconds_reads_stale(sample_recording):
    wall = [0.0]
    with invia_data.replay(sample_recording, paused=True, clock=lambda: wall[0]) as probe:
        end = probe.end
    later = end + pd.Timedelta("90s")   # past the recording: no message for 90 simulated s
    with invia_data.replay(sample_recording, end=later, paused=True, speed=10,
                           clock=lambda: wall[0]) as rp:
        book, trades = rp.orderbook("SBER", depth=10), rp.all_trades("SBER")
        rp.seek(end)
        assert book.status == "paused" and trades.status == "paused"
        rp.resume()
        assert book.status == "live" and trades.status == "live"
        wall[0] += 4.0   # 4 s of real time at 10x: 40 simulated seconds
        assert rp.now == end + pd.Timedelta("40s")
        assert book.age == pytest.approx(40 + (end - book.updated_at).total_seconds())
        assert book.status == "live"
        wall[0] += 4.0
        assert book.status == "stale" and set(rp.health()["status"]) == {"stale"}
        rp.pause()
        rp.seek(end)
        assert book.status == "paused"
        rp.seek(later)
        assert rp.done and book.status == "ended" and "ended" in book.status_line()
    with pytest.raises(InvalidArgument, match="stale_after"):
        invia_data.replay(sample_recording, stale_after=0)


# the API reference's examples (Simple format) of a quote, an order and an instrument state
QUOTE = {"symbol": "SBER", "exchange": "MOEX", "description": "Сбербанк России ПАО ао",
         "prev_close_price": 313.49, "last_price": 314.51, "last_price_timestamp": 1715603781,
         "high_price": 315.7, "low_price": 314.04, "accruedInt": 0, "volume": 15237560,
         "open_interest": None, "ask": 314.71, "bid": 314.7, "ask_vol": 276, "bid_vol": 305,
         "ob_ms_timestamp": None, "open_price": 314.1, "yield": None, "lotsize": 10,
         "lotvalue": 3145.1, "facevalue": 3, "type": "CS", "total_bid_vol": 361175,
         "total_ask_vol": 614990, "accrued_interest": 0, "change": 1.02, "change_percent": 0.33}
ORDER = {"id": "41423837024", "symbol": "GAZP", "brokerSymbol": "MOEX:GAZP",
         "portfolio": "D00013", "exchange": "MOEX", "comment": "Приказ на продажу",
         "type": "limit", "side": "buy", "status": "working",
         "transTime": "2023-12-11T07:02:48.0000000Z", "updateTime": "2023-12-11T07:02:48.0000000Z",
         "endTime": "2023-12-11T23:59:59.9990000Z", "qtyUnits": 10, "qtyBatch": 1, "qty": 1,
         "filledQtyUnits": 0, "filledQtyBatch": 0, "filled": 0, "price": 161.15,
         "existing": True, "timeInForce": "oneday", "iceberg": None, "volume": 1611.5}
STATE = {"symbol": "SBER", "exchange": "MOEX", "board": "TQBR", "tradingStatus": 17,
         "tradingStatusInfo": "нормальный период торгов", "priceMin": 228.78, "priceMax": 279.96}
GAZP = {**QUOTE, "symbol": "GAZP", "description": "Газпром", "bid": 161.1, "ask": 161.2}
# without "ask" and "bid_vol": a live frame keeps their values; "bid": None blanks the bid
SBER_PARTIAL = {k: v for k, v in QUOTE.items() if k not in ("ask", "bid_vol")}
MERGED_MESSAGES = [
    ("quotes", QUOTE), ("instrument_state", STATE), ("orders", ORDER), ("quotes", GAZP),
    ("quotes", {**QUOTE, "bid": None, "last_price": 315.0}),
    ("instrument_state", {"symbol": "SBER", "priceMin": 229.1, "priceMax": 280.2}),
    ("orders", {**ORDER, "status": "filled", "comment": None, "filledQtyUnits": 10}),
    ("quotes", {**SBER_PARTIAL, "bid": 314.8}),
    ("instrument_state", {"symbol": "SBER", "tradingStatus": 18, "tradingStatusInfo": None}),
    ("orders", {**ORDER, "id": "41423837025", "price": None}),
    ("quotes", {**GAZP, "description": None, "open_interest": 5}),
    ("instrument_state", {"symbol": "SBER", "priceMax": 280.5}),
    ("quotes", {k: v for k, v in SBER_PARTIAL.items() if k != "bid"}),
]


def test_keyed_and_merged_kinds_replay_nulls_and_left_out_fields_as_live_merges_them(tmp_path):
    from invia_data.record import Recorder
    from invia_data.stream import LiveFrame
    from invia_data.stream.live import FrameWriter
    from invia_data.stream.state import make_state

    frames = {
        "quotes": LiveFrame("quotes", "MOEX:SBER,MOEX:GAZP",
                            {"format": "Simple", "symbols": ["MOEX:SBER", "MOEX:GAZP"]},
                            make_state("quotes", "Simple")),
        "instrument_state": LiveFrame("instrument_state", "MOEX:SBER", {"format": "Simple"},
                                      make_state("instrument_state", "Simple")),
        "orders": LiveFrame("orders", "D00013", {"format": "Simple", "portfolio": "D00013"},
                            make_state("orders", "Simple")),
    }
    base = 1_765_436_400.0   # 2025-12-11 07:00 UTC
    shown = []
    with Recorder(tmp_path, list(frames.values()), batch_rows=4, batch_seconds=3600):
        for i, (kind, message) in enumerate(MERGED_MESSAGES):
            now = base + i * 0.5
            FrameWriter(frames[kind]).apply([message], now)
            shown.append((now, {k: f.df for k, f in frames.items()}))
    with invia_data.replay(tmp_path, paused=True) as rp:
        replayed = {"quotes": rp.quotes(["SBER", "GAZP"]),
                    "instrument_state": rp.instrument_state("SBER"),
                    "orders": rp.orders("D00013")}
        for now, expected in shown:
            rp.seek(_at(now))
            for kind, frame in replayed.items():
                pd.testing.assert_frame_equal(frame.df, expected[kind],
                                              obj=f"{kind} at {_at(now)}")
        rp.seek(_at(shown[4][0]))   # SBER's quote with "bid": None
        assert pd.isna(replayed["quotes"].df.set_index("symbol").loc["SBER", "bid"])
        rp.seek(rp.end)
        quotes = replayed["quotes"].df.set_index("symbol")
        state = replayed["instrument_state"].df.iloc[0]
        orders = replayed["orders"].df.set_index("id")
    # the explicit nulls blanked; the fields left out kept their values
    assert quotes.loc["SBER", "bid"] == 314.8 and quotes.loc["SBER", "ask"] == 314.71
    assert quotes.loc["SBER", "bid_vol"] == 305 and pd.isna(quotes.loc["GAZP", "description"])
    assert pd.isna(state["trading_status_info"]) and state["trading_status"] == 18
    assert state["price_min"] == 229.1 and state["board"] == "TQBR"
    assert pd.isna(orders.loc["41423837024", "comment"])
    assert pd.isna(orders.loc["41423837025", "price"])
    # read back: the live frame's dtypes, and which fields each message left out
    rows = invia_data.read_recording(tmp_path, "orders", portfolio="D00013", symbols="GAZP")
    assert len(rows) == 3
    assert rows[list(shown[-1][1]["orders"].columns)].dtypes.equals(
        shown[-1][1]["orders"].dtypes)
    quotes = invia_data.read_recording(tmp_path, "quotes", symbols="SBER")
    assert list(quotes["absent_fields"].fillna("")) == ["", "", "ask,bid_vol",
                                                        "bid,ask,bid_vol"]


def test_read_recording_filters_by_symbol_and_receive_time_and_refuses_bad_input(
        sample_recording):
    plain = pd.read_parquet(sample_recording / "kind=quotes")   # what pandas gives as it is
    assert str(plain["receive_time"].dtype) == "datetime64[us, UTC]"
    quotes = invia_data.read_recording(sample_recording, "quotes")
    assert len(quotes) == len(plain) and quotes["receive_time"].is_monotonic_increasing
    assert quotes.dtypes.to_dict() == recording_dtypes("quotes")
    assert str(quotes["receive_time"].dtype) == "datetime64[ns, UTC]"
    start, end = quotes["receive_time"].iloc[[3, -3]]
    some = invia_data.read_recording(sample_recording, "quotes", symbols=["moex:gazp"],
                                     start=start, end=end)
    expected = quotes[(quotes["symbol"] == "GAZP") & (quotes["receive_time"] >= start)
                      & (quotes["receive_time"] < end)].reset_index(drop=True)
    assert 0 < len(some) < len(quotes)
    pd.testing.assert_frame_equal(some, expected)
    with pytest.warns(InviaWarning, match="no rows: the recording covers"):
        empty = invia_data.read_recording(sample_recording, "all_trades",
                                          start=end + pd.Timedelta("1h"))
    assert len(empty) == 0 and empty.dtypes.equals(
        invia_data.read_recording(sample_recording, "all_trades").dtypes)
    assert len(invia_data.read_recording(sample_recording, "gaps")) == 0
    with pytest.raises(InvalidArgument, match="no recording at"):
        invia_data.read_recording(sample_recording / "missing", "quotes")
    with pytest.raises(InvalidArgument, match="this recording has all_trades, bars, orderbook"):
        invia_data.read_recording(sample_recording, "trades")
    with pytest.raises(InvalidArgument, match="has no positions; it has all_trades"):
        invia_data.read_recording(sample_recording, "positions")
    with pytest.raises(InvalidArgument, match="no quotes of LKOH; it has GAZP, SBER"):
        invia_data.read_recording(sample_recording, "quotes", symbols="SBER,LKOH")
    with pytest.raises(InvalidArgument, match="give symbols="):
        invia_data.read_recording(sample_recording, "quotes", portfolio="D00013")
    with pytest.raises(InvalidArgument, match="symbols is empty"):
        invia_data.read_recording(sample_recording, "quotes", symbols=[])
    with pytest.raises(InvalidArgument, match="list of symbols"):
        invia_data.read_recording(sample_recording, "quotes", symbols=5)
    with pytest.raises(InvalidArgument, match="start"):
        invia_data.read_recording(sample_recording, "quotes", start="yesterday-ish")
    with pytest.raises(InvalidArgument, match="before start"):
        invia_data.read_recording(sample_recording, "quotes", start=end, end=start)


def test_a_book_that_empties_at_the_close_replays_empty(tmp_path):
    """Books recorded from their bytes, as the stream hands them over: full, empty (the close),
    full again. The replayed frame shows each as the live frame did, the empty one too."""
    import orjson

    from invia_data.record import Recorder
    from invia_data.stream import LiveFrame
    from invia_data.stream.live import FrameWriter
    from invia_data.stream.state import make_state

    live = LiveFrame("orderbook", "MOEX:SBER", {"format": "Slim", "depth": 5, "symbol": "SBER"},
                     make_state("orderbook", "Slim"))
    books = [{"b": [{"p": 100.0, "v": 3}], "a": [{"p": 101.0, "v": 4}], "t": 1_765_436_400_000},
             {"b": [], "a": [], "t": 1_765_436_401_000},
             {"b": [{"p": 99.0, "v": 1}], "a": [], "t": 1_765_436_402_000}]
    shown = []
    with Recorder(tmp_path, [live], batch_seconds=3600):
        for i, book in enumerate(books):
            now = 1_765_436_400.5 + i
            FrameWriter(live).apply([book], now, 1,
                                    [orjson.dumps({"data": book, "guid": "g"})])
            shown.append((now, live.df))
    assert shown[1][1].empty
    with invia_data.replay(tmp_path, paused=True) as rp:
        replayed = rp.orderbook("SBER", depth=1)
        for now, expected in shown:
            rp.seek(_at(now))
            pd.testing.assert_frame_equal(replayed.df, expected)
    rows = pd.read_parquet(tmp_path / "kind=orderbook")
    assert rows["level"].tolist() == [0, 0, -1, 0] and rows["side"].isna().tolist() == [
        False, False, True, False]


def test_sampling_a_replayed_book_counts_simulated_time(sample_recording):
    with invia_data.replay(sample_recording, paused=True, speed=5) as rp:
        book = rp.orderbook("SBER", depth=10)
        rp.resume()
        samples = book.sample("500ms", "2s")   # 0.4 s of real time at 5x
        assert len(samples) == 5 and samples.index.is_monotonic_increasing
        assert rp.start <= samples.index[0] and samples.index[-1] <= rp.end
        assert samples.index[-1] - samples.index[0] >= pd.Timedelta("2s")
        rp.pause()
        sleep = book._clock_sleep(poll=0.001, stall=0.01)   # paused: the clock stands still
        with pytest.raises(invia_data.StreamTimeout, match="resume"):
            for _ in range(1000):
                sleep(1.0)


def test_a_merged_frame_is_the_same_whichever_way_the_clock_moved():
    from invia_data.record import record_table
    from invia_data.replay import RowsReplay

    messages = [m for kind, m in MERGED_MESSAGES if kind == "quotes"] * 3
    rows = record_table("quotes", messages, [1.7e9 + i for i in range(len(messages))], "Simple")
    moved = RowsReplay(rows, "quotes", {})
    for position in [3, 7, 2, 12, 15, 1, 15, 9, 10]:   # forward (extends), back (recomputes)
        fresh = RowsReplay(rows, "quotes", {})
        pd.testing.assert_frame_equal(moved.frame(position), fresh.frame(position))


def test_the_newest_replayed_candle_closes_when_its_interval_is_over_on_the_simulated_clock(
        sample_recording):
    with invia_data.replay(sample_recording, paused=True) as probe:
        bars = probe.bars("SBER", "1min")
        probe.seek(probe.end)
        last_start, end = bars.df.index.max(), probe.end
    assert end < last_start + pd.Timedelta("1min")   # the recording ends within its minute
    later = last_start + pd.Timedelta("1min")
    with invia_data.replay(sample_recording, end=later, paused=True) as rp:
        bars = rp.bars("SBER", "1min")
        rp.seek(end)
        assert not bars.df["is_closed"].iloc[-1] and bars.df["is_closed"].iloc[:-1].all()
        # as live, .df is built once per version: the frame is built again at ``later``
        rp.seek(rp.start)
        rp.seek(later)
        assert bars.df.index[-1] == last_start and bars.df["is_closed"].all()


def test_replay_health_has_the_stream_columns_on_the_simulated_clock(tmp_path):
    from invia_data.record import Recorder
    from invia_data.stream import LiveFrame
    from invia_data.stream.live import FrameWriter
    from invia_data.stream.state import make_state
    from invia_data.stream.stream import HEALTH_COLUMNS

    def trade(i, seconds):
        ms = int(seconds * 1000)
        return {"id": i, "orderno": 0, "symbol": "SBER", "board": "TQBR", "qty": 1,
                "price": 100.0, "time": pd.Timestamp(ms, unit="ms", tz="UTC").isoformat(),
                "timestamp": ms, "side": "buy", "oi": 0, "existing": False}

    base = 1_765_436_400.0
    for run in range(2):   # two runs 100 s apart: a gap while the recorder was not running
        frame = LiveFrame("all_trades", "MOEX:SBER", {"format": "Simple"},
                          make_state("all_trades", "Simple", maxlen=1000))
        with Recorder(tmp_path, [frame], batch_seconds=60):
            for i in range(10):
                now = base + run * 100 + i
                FrameWriter(frame).apply([trade(run * 10 + i + 1, now)], now)
    with invia_data.replay(tmp_path, end=_at(base + 200), paused=True) as rp:
        trades = rp.all_trades("SBER")
        rp.seek(_at(base + 9.5))   # 10 trades, one a second; the last 0.5 s ago
        health = rp.health()
        assert list(health.columns) == [*HEALTH_COLUMNS, "total", "now"]
        row = health.iloc[0]
        assert (row["messages"], row["total"], row["gaps"]) == (10, 20, 0)
        assert row["timeframe"] is pd.NA and health["timeframe"].dtype == "Int64"  # not bars
        assert row["messages_per_s"] == 1.0 and row["data_age"] == pytest.approx(0.5)
        assert row["last_message_age"] == row["data_age"] == trades.age
        rp.seek(_at(base + 150))
        row = rp.health().iloc[0]
        assert (row["messages"], row["gaps"], row["unfilled_gaps"]) == (20, 1, 1)
        assert row["messages_per_s"] == 0.0 and row["data_age"] == pytest.approx(41)


def test_a_replay_nobody_holds_ends_its_thread(sample_recording):
    """A notebook cell that opens a replay, run again: the replay (and frames) left behind are
    collected and their threads end, without close()."""
    import gc
    import threading

    def replays():
        return sum(t.name == "invia-data-replay" and t.is_alive()
                   for t in threading.enumerate())

    before = replays()
    for _ in range(3):
        rp = invia_data.replay(sample_recording, speed=None)
        book = rp.orderbook("SBER")
        assert rp.wait(10) and len(book.df)
    del rp, book
    gc.collect()
    deadline = time.monotonic() + 5
    while replays() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert replays() == before


def test_each_replay_call_takes_its_arguments_as_the_live_call_does():
    """The same positions, keyword-only where live is (a notebook's calls run on either)."""
    import inspect

    from invia_data.stream import Stream
    from invia_data.stream.protocol import OPCODES

    for name in OPCODES:
        replayed, live = (inspect.signature(getattr(cls, name)).parameters
                          for cls in (invia_data.Replay, Stream))
        by_position = [[p for p, v in params.items() if v.kind is v.POSITIONAL_OR_KEYWORD]
                       for params in (replayed, live)]
        assert by_position[0] == by_position[1], name
        for param in replayed.values():
            if param.kind is param.KEYWORD_ONLY:
                assert live[param.name].kind is param.KEYWORD_ONLY, f"{name}: {param.name}"
        assert any(p.kind is p.VAR_KEYWORD for p in replayed.values()), name


def test_the_docs_name_the_dtypes_read_recording_returns(sample_recording):
    from pathlib import Path

    names = set()
    for kind in ("orderbook", "all_trades", "bars", "quotes"):
        names |= {str(dtype) for dtype in invia_data.read_recording(sample_recording, kind)
                  .dtypes if not str(dtype).startswith(("float", "int64", "datetime"))}
    assert names == {"str", "Int64", "boolean"}
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    said = readme.split("`invia_data.read_recording` reads one kind back", 1)[1][:300]
    doc = invia_data.read_recording.__doc__ or ""
    for name in names:
        assert f"`{name}`" in said and f"``{name}``" in doc, name
    assert "`string`" not in said and "``string``" not in doc   # pandas' other, pd.NA dtype


def test_sampling_past_the_end_of_a_replay_gives_the_samples_up_to_its_end(sample_recording):
    with invia_data.replay(sample_recording, paused=True, speed=20) as rp:
        book = rp.orderbook("SBER", depth=10)
        rp.seek(rp.duration - 1.0)
        rp.resume()
        with pytest.warns(invia_data.InviaWarning, match="the replay ended after"):
            samples = book.sample("250ms", "30s")   # 1 s of the replay left: 0.05 s real
        assert rp.done
        assert 2 <= len(samples) <= 6 and samples.index.is_monotonic_increasing
        assert samples.index[-1] <= rp.end and samples["mid"].notna().all()
        assert samples.index[-1] - samples.index[0] >= pd.Timedelta("750ms")


def test_read_recording_names_the_keyword_meant(sample_recording):
    """symbol= and tf= (the live calls' spellings) are named, not a TypeError; the
    keywords it takes still work by name."""
    with pytest.raises(InvalidArgument, match=r"read_recording\(\) takes no 'symbol' "
                                              r"\(did you mean symbols=\?\)"):
        invia_data.read_recording(sample_recording, "orderbook", symbol="SBER")
    with pytest.raises(InvalidArgument, match=r"takes no 'tf' \(did you mean timeframe=\?\)"):
        invia_data.read_recording(sample_recording, "bars", tf="1min")
    trades = invia_data.read_recording(path=sample_recording, kind="all_trades", symbols="SBER")
    assert len(trades) and (trades["symbol"] == "SBER").all()


def test_bars_recorded_before_they_had_a_timeframe_say_so(sample_recording):
    """The sample recording's bars have no timeframe column (an earlier version): timeframe=
    is refused with what to do, not an Arrow error."""
    with pytest.raises(InvalidArgument, match="recorded without their timeframe .*leave "
                                              "timeframe= out"):
        invia_data.read_recording(sample_recording, "bars", timeframe="1min")
    assert len(invia_data.read_recording(sample_recording, "bars"))


def test_read_recording_names_the_times_it_covers_for_a_window_that_misses_them(
        sample_recording):
    """Moscow wall times written as strings are read as UTC: a window three hours off the
    recording gives its empty frame with a warning naming the times it covers; a window
    inside it that holds no row of the kind is an empty frame without one."""
    books = invia_data.read_recording(sample_recording, "orderbook")
    first = books["receive_time"].min()
    moscow = (first + pd.Timedelta("3h")).strftime("%Y-%m-%d %H:%M:%S")
    with pytest.warns(InviaWarning, match=r"no rows: the recording covers .* \(UTC; times "
                                          r"without a zone are read as UTC\)") as said:
        assert invia_data.read_recording(sample_recording, "orderbook", start=moscow).empty
    assert said[0].filename == __file__     # the warning points at the reader's own line
    with pytest.warns(InviaWarning, match="choose start= and end= that overlap it"):
        invia_data.read_recording(sample_recording, "all_trades", end=first - pd.Timedelta("1h"))
    moment = first + pd.Timedelta("1us")
    inside = invia_data.read_recording(sample_recording, "orderbook", start=moment,
                                       end=moment + pd.Timedelta("1us"))
    assert inside.empty and list(inside.columns) == list(books.columns)
    same = invia_data.read_recording(sample_recording, "orderbook",
                                     start=first.tz_convert("Europe/Moscow"))
    assert len(same) == len(books)


def test_a_folder_of_recordings_names_them(sample_recording, tmp_path):
    """Recordings kept side by side in one folder: given that folder, every reader names the
    recordings inside it instead of only saying it holds no recorded data."""
    import shutil

    from invia_data.compact import compact_recording
    from invia_data.sim.replay import ReplayMarket

    shutil.copytree(sample_recording, tmp_path / "day one")
    (tmp_path / "notes").mkdir()
    named = f"it holds the recordings '{tmp_path / 'day one'}': give one of them"
    for read in (lambda: invia_data.read_recording(tmp_path, "orderbook"),
                 lambda: invia_data.replay(tmp_path), lambda: ReplayMarket(tmp_path),
                 lambda: compact_recording(tmp_path)):
        with pytest.raises(InvalidArgument, match=named):
            read()
    bare = r"holds no recorded data \(kind=\*/\.\.\./\*\.parquet\)$"   # nothing to name
    with pytest.raises(InvalidArgument, match=bare):
        invia_data.replay(tmp_path / "notes")
