"""Replaying a recording: the replayed LiveFrame at a simulated time equals what the live frame
showed at that time while it was recorded; one clock for every frame (pause, resume, seek,
as fast as possible); bad input refused before anything is read."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import invia_data
from invia_data.errors import InvalidArgument, NotFound

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
                if kind == "orderbook":
                    assert got.attrs["time"] == expected.attrs["time"]
                    assert got.attrs["symbol"] == "SBER" and got.attrs["depth"] == 5


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
    with invia_data.replay(sample_recording, paused=True) as rp:
        with pytest.raises(NotFound, match="it has SBER"):
            rp.orderbook("LKOH")
        with pytest.raises(InvalidArgument, match="depth=10 or less"):
            rp.orderbook("SBER", depth=20)
        with pytest.raises(InvalidArgument, match="ask for that timeframe"):
            rp.bars("SBER", "5min")


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
        assert book.status == "live"
        assert f"updated {book.age:.1f} s ago" in book.status_line()
        health = rp.health()
        assert health["data_age"].iloc[0] == pytest.approx(book.age)
        rp.seek(rp.start - pd.Timedelta("1s"))   # back before everything: as before any data
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
        assert book.status == "live" and trades.status == "live"
        rp.resume()
        wall[0] += 4.0   # 4 s of real time at 10x: 40 simulated seconds
        assert rp.now == end + pd.Timedelta("40s")
        assert book.age == pytest.approx(40 + (end - book.updated_at).total_seconds())
        assert book.status == "live"
        wall[0] += 4.0
        assert book.status == "stale" and set(rp.health()["status"]) == {"stale"}
        rp.pause()
        rp.seek(end)
        assert book.status == "live"
    with pytest.raises(InvalidArgument, match="stale_after"):
        invia_data.replay(sample_recording, stale_after=0)
