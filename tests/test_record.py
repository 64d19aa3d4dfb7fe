"""Recording live subscriptions to a Hive-partitioned Parquet dataset: every kind, the readers
that did not come from us (pandas, pyarrow, DuckDB, polars, Dask), crash safety with a killed
recorder process, gaps across a forced disconnect, day rotation, bounded buffers, restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import invia_data
from invia_data.errors import InvalidArgument
from invia_data.record import MERGED_KINDS, Recorder, partition_key
from invia_data.stream import LiveFrame
from invia_data.stream.live import FrameWriter
from invia_data.stream.state import make_state

WAIT = 15.0


def _client(sim):
    return invia_data.connect(sim.refresh_token, env=sim.url)


def _wait_until(predicate, timeout=WAIT, step=0.05):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


def _read(path: Path, kind: str) -> pd.DataFrame:
    return pd.read_parquet(path / f"kind={kind}")


def test_every_kind_is_recorded_with_the_http_columns_and_reads_back(sim, tmp_path):
    with _client(sim) as inv:
        s = inv.stream
        frames = {
            "orderbook": s.orderbook("SBER", depth=5),
            "all_trades": s.all_trades("SBER", recent=20),
            "quotes": s.quotes(["SBER", "GAZP"]),
            "bars": s.bars("SBER", "1min"),
            "instrument_state": s.instrument_state("SBER"),
            "positions": s.positions(),
            "summary": s.summary(),
            "orders": s.orders(),
        }
        recorder = s.record(tmp_path, list(frames.values()), batch_seconds=0.2)
        _wait_until(lambda: frames["orderbook"].version > 3 and frames["all_trades"].version > 2)
        http = {"orderbook": inv.orderbook("SBER", depth=5), "all_trades": inv.all_trades("SBER"),
                "quotes": inv.quotes("SBER"), "bars": frames["bars"].df.drop(columns="is_closed"),
                "instrument_state": frames["instrument_state"].df, "positions": inv.positions(),
                "summary": inv.summary(), "orders": inv.orders()}
        recorder.close()
    assert "closed after 8 frame(s)" in recorder.status_line()
    health = recorder.health()
    assert set(health["kind"]) == set(frames) and (health["rows"] > 0).all()
    for kind, expected in http.items():
        table = _read(tmp_path, kind)
        key = partition_key(kind)
        columns = [c for c in expected.reset_index().columns if c not in ("index", key)]
        if kind == "orderbook":
            columns = ["snapshot_id", *columns]
        merged = ["absent_fields"] if kind in MERGED_KINDS else []
        if kind == "bars":   # the HTTP candles' columns and the recorded timeframe
            columns = [*columns, "timeframe"]
        assert list(table.columns) == [*columns, "exchange_time", "receive_time", *merged, key,
                                       "date"], kind
        assert len(table) > 0 and table["receive_time"].dt.tz is not None
    book = _read(tmp_path, "orderbook")
    sizes = book.groupby(["snapshot_id", "side"]).size()
    assert (sizes == 5).all()
    assert book["snapshot_id"].is_monotonic_increasing
    assert book["exchange_time"].notna().all()
    trades = _read(tmp_path, "all_trades")
    ids = trades["id"].to_numpy()
    assert len(ids) == len(set(ids)) and (np.diff(ids) > 0).all()
    assert (trades["exchange_time"] == trades["time"]).all()
    quotes = _read(tmp_path, "quotes")
    assert set(quotes["symbol"]) == {"SBER", "GAZP"}
    assert set(_read(tmp_path, "positions")["portfolio"]) == {inv.portfolio}


# dask's own parquet reader still passes inplace= to pandas 3.1
@pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")
def test_the_dataset_reads_the_same_in_pyarrow_duckdb_polars_and_dask(sim, tmp_path):
    with _client(sim) as inv:
        book = inv.stream.orderbook("SBER", depth=3)
        trades = inv.stream.all_trades("SBER", recent=50)
        with inv.stream.record(tmp_path, [book, trades], batch_seconds=0.2):
            book.wait(3, timeout=WAIT)
    expected = {kind: _read(tmp_path, kind) for kind in ("orderbook", "all_trades")}
    pyarrow_rows = pq.ParquetDataset(tmp_path / "kind=all_trades").read().num_rows
    assert pyarrow_rows == len(expected["all_trades"])
    duckdb = pytest.importorskip("duckdb")
    for kind, frame in expected.items():
        glob = (tmp_path / f"kind={kind}" / "**" / "*.parquet").as_posix()
        got = duckdb.sql(f"select * from read_parquet('{glob}', hive_partitioning=true)").df()
        assert len(got) == len(frame) and set(got["symbol"]) == {"SBER"}
    spread = duckdb.sql(
        "select snapshot_id, min(price) filter (where side='ask') - "
        "max(price) filter (where side='bid') as spread from read_parquet("
        f"'{(tmp_path / 'kind=orderbook' / '**' / '*.parquet').as_posix()}', "
        "hive_partitioning=true) group by snapshot_id").df()
    assert len(spread) == expected["orderbook"]["snapshot_id"].nunique()
    assert (spread["spread"] > 0).all()
    polars = pytest.importorskip("polars")
    got = polars.scan_parquet(tmp_path / "kind=all_trades" / "**" / "*.parquet",
                              hive_partitioning=True).collect()
    assert got.height == len(expected["all_trades"])
    assert sorted(got["id"].to_list()) == sorted(expected["all_trades"]["id"].tolist())
    dd = pytest.importorskip("dask.dataframe")
    got = dd.read_parquet(str(tmp_path / "kind=all_trades")).compute()
    assert len(got) == len(expected["all_trades"])


def _fake_trades_frame(fmt="Simple"):
    return LiveFrame("all_trades", "MOEX:SBER", {"format": fmt}, make_state("all_trades", fmt, maxlen=1000))


def _trade(i, ms):
    return {"id": i, "orderno": 0, "symbol": "SBER", "board": "TQBR", "qty": 1, "price": 100.0,
            "time": pd.Timestamp(ms, unit="ms", tz="UTC").isoformat(), "timestamp": ms,
            "side": "buy", "oi": 0, "existing": False}


def test_two_timeframes_of_one_instrument_stay_apart(sim, tmp_path):
    """1-minute and 5-minute candles of SBER share its folder: each row says its timeframe,
    read_recording and the replay pick one, and neither's versions hide the other's."""
    with _client(sim) as inv:
        minutes = inv.stream.bars("SBER", "1min", record=tmp_path)
        fives = inv.stream.bars("SBER", "5min", record=tmp_path)
        minutes.wait(timeout=WAIT)
        fives.wait(timeout=WAIT)
        shown = {60: minutes.df, 300: fives.df}
        inv.stream.close()
    rows = invia_data.read_recording(tmp_path, "bars")
    assert rows["timeframe"].dtype == "Int64"
    assert sorted(rows["timeframe"].unique().tolist()) == [60, 300]
    for tf, name in ((60, "1min"), (300, "5min")):
        one = invia_data.read_recording(tmp_path, "bars", timeframe=name)
        assert (one["timeframe"] == tf).all()
        assert (one["time"].astype("int64") // 10**9 % tf == 0).all()
        last = one.groupby("time").last()
        held = shown[tf][shown[tf]["is_closed"]].drop(columns="is_closed")   # (final ones)
        pd.testing.assert_frame_equal(last.loc[held.index, held.columns], held,
                                      check_names=False, check_freq=False)
    with invia_data.replay(tmp_path, paused=True) as rp:
        fives_again = rp.bars("SBER", "5min")
        rp.seek(rp.end)
        assert fives_again.df.index.equals(shown[300].index)
        with pytest.raises(InvalidArgument, match="60 s, 300 s, not 900 s"):
            rp.bars("SBER", "15min")
    with pytest.raises(InvalidArgument, match="'quotes' has no timeframe"):
        invia_data.read_recording(tmp_path, "quotes", timeframe="1min")


def test_files_rotate_by_day_and_buffers_stay_bounded(tmp_path):
    frame = _fake_trades_frame()
    midnight = pd.Timestamp("2024-03-02", tz="UTC").timestamp()
    recorder = Recorder(tmp_path, [frame], batch_rows=10, max_pending_rows=25,
                        batch_seconds=3600)
    for i in range(100):   # 100 messages around midnight, the writer thread is never woken
        now = midnight - 50 + i
        FrameWriter(frame).apply([_trade(i + 1, int(now * 1000))], now)
        assert recorder.health()["pending"].sum() <= 25
    recorder.close()
    days = sorted(p.name for p in (tmp_path / "kind=all_trades" / "symbol=SBER").iterdir())
    assert days == ["date=2024-03-01", "date=2024-03-02"]
    table = _read(tmp_path, "all_trades")
    assert sorted(table["id"]) == list(range(1, 101))
    first_day = table[table["date"] == "2024-03-01"]
    assert (first_day["receive_time"] < pd.Timestamp(midnight, unit="s", tz="UTC")).all()
    assert len(first_day) == 50


def test_a_restart_appends_trades_above_the_last_id_written(tmp_path):
    base = 1_700_000_000.0
    for run, ids in enumerate([range(1, 41), range(30, 71)]):   # the second run repeats 30..40
        frame = _fake_trades_frame()
        # the second run writes once, at close: its one batch holds the resent trades
        with Recorder(tmp_path, [frame], batch_rows=7 if run == 0 else 10_000,
                      batch_seconds=60) as recorder:
            for i in ids:
                FrameWriter(frame).apply([_trade(i, int((base + i) * 1000))], base + run * 100 + i)
        assert recorder.rows == (40 if run == 0 else 30)
    assert sorted(_read(tmp_path, "all_trades")["id"]) == list(range(1, 71))
    gap = _read(tmp_path, "gaps")   # the time between the two runs
    assert len(gap) == 1 and gap["error"].iloc[0] == "the recorder was not running"
    assert gap["start"].iloc[0] == pd.Timestamp(base + 40, unit="s", tz="UTC")
    assert gap["end"].iloc[0] == pd.Timestamp(base + 130, unit="s", tz="UTC")
    assert gap["backfilled"].iloc[0] == 30   # ids 41-70 traded while it was not running


def test_a_restarted_quotes_frame_gets_the_gap_of_each_instrument_as_other_kinds_do(tmp_path):
    """A notebook cell recording quotes of several instruments, run again on a new connection:
    each instrument's "recorder was not running" gap, from its last quote written to the first
    message of the new run (an instrument new to the recording has none), as for a
    one-instrument kind."""
    base = 1_700_000_000.0
    runs = [{"SBER": range(10), "GAZP": range(5)},                # GAZP's last quote at +4
            {"SBER": range(100, 105), "GAZP": range(102, 104),   # the new run starts at +100
             "LKOH": range(101, 103)}]
    for times in runs:
        symbols = list(times)
        labels = [f"MOEX:{s}" for s in symbols]
        quotes = LiveFrame("quotes", ",".join(labels), {"format": "Simple", "symbols": labels},
                           make_state("quotes", "Simple"))
        state = LiveFrame("instrument_state", "MOEX:SBER", {"format": "Simple"},
                          make_state("instrument_state", "Simple"))
        with Recorder(tmp_path, [quotes, state], batch_seconds=3600):
            moments = sorted((t, s) for s in symbols for t in times[s])
            for t, symbol in moments:
                FrameWriter(quotes).apply([{"symbol": symbol, "exchange": "MOEX",
                                            "bid": 100.0 + t, "ask": 101.0 + t}], base + t)
                if symbol == "SBER":
                    FrameWriter(state).apply([{"symbol": "SBER", "tradingStatus": 17}],
                                             base + t)
    gaps = invia_data.read_recording(tmp_path, "gaps").set_index(["data_kind", "symbol"])
    assert sorted(gaps.index) == [("instrument_state", "SBER"), ("quotes", "GAZP"),
                                  ("quotes", "SBER")]
    assert (gaps["error"] == "the recorder was not running").all()
    assert gaps["timeframe"].isna().all() and (gaps["backfilled"] == 0).all()
    at = {t: pd.Timestamp(base + t, unit="s", tz="UTC") for t in (4, 9, 100)}
    assert (gaps["end"] == at[100]).all()
    assert gaps.loc[("quotes", "GAZP"), "start"] == at[4]
    assert gaps.loc[("quotes", "SBER"), "start"] == at[9]
    assert gaps.loc[("instrument_state", "SBER"), "start"] == at[9]


def test_a_frame_that_cannot_be_recorded_is_refused(tmp_path):
    frame = LiveFrame("widgets", "X", {"format": "Simple"}, make_state("summary", "Simple"))
    with Recorder(tmp_path) as recorder, pytest.raises(InvalidArgument, match="recordable kinds"):
        recorder.add(frame)
    with pytest.raises(InvalidArgument, match="batch_rows"):
        Recorder(tmp_path, batch_rows=0)


def test_gaps_across_a_forced_disconnect_are_in_the_dataset(fresh_sim, tmp_path):
    sim = fresh_sim()
    with _client(sim) as inv:
        trades = inv.stream.all_trades("SBER", recent=500)
        book = inv.stream.orderbook("SBER", depth=5)
        recorder = inv.stream.record(tmp_path, [trades, book], batch_seconds=0.2)
        book.wait(2, timeout=WAIT)
        sim.faults.drop_connections()
        _wait_until(lambda: len(inv.stream.gaps()) >= 2)
        _wait_until(lambda: book.status == "live")
        trades.wait(2, timeout=WAIT)
        recorder.close()
    gaps = _read(tmp_path, "gaps")
    assert {"data_kind", "start", "end", "backfilled", "error"} <= set(gaps.columns)
    assert set(gaps["data_kind"]) >= {"all_trades", "orderbook"}
    assert (gaps["end"] >= gaps["start"]).all() and set(gaps["symbol"]) == {"SBER"}
    assert recorder.health().attrs["gaps"] >= 2
    ids = _read(tmp_path, "all_trades")["id"].sort_values().to_numpy()
    assert len(ids) == len(set(ids))
    assert list(ids) == _server_ids_between(sim, ids), "recent trades resent fill the outage"


def test_two_timeframes_of_one_instrument_say_theirs_in_health_and_gaps(fresh_sim, tmp_path):
    sim = fresh_sim()
    with _client(sim) as inv:
        minutes = inv.stream.bars("SBER", "1min", record=tmp_path)
        fives = inv.stream.bars("SBER", "5min", record=tmp_path)
        minutes.wait(timeout=WAIT)
        fives.wait(timeout=WAIT)
        recorder = inv.stream.recorders[tmp_path.resolve()]
        health = recorder.health()
        assert health["timeframe"].dtype == "Int64"
        assert sorted(health["timeframe"].tolist()) == [60, 300]
        live = inv.stream.health()   # the stream's rows tell the two apart the same way
        assert live.columns.tolist()[:3] == health.columns.tolist()[:3] == ["kind", "symbol",
                                                                             "timeframe"]
        assert live["timeframe"].dtype == "Int64"
        assert sorted(live["timeframe"].tolist()) == [60, 300]
        sim.faults.drop_connections()
        _wait_until(lambda: len(inv.stream.gaps()) >= 2)
        assert sorted(inv.stream.gaps()["timeframe"].tolist()) == [60, 300]
        _wait_until(lambda: minutes.status == "live" and fives.status == "live")
        inv.stream.record(tmp_path, [inv.stream.orderbook("SBER", depth=1)])
        assert recorder.health()["timeframe"].isna().sum() == 1   # the book has none
        assert inv.stream.health()["timeframe"].isna().sum() == 1
    gaps = invia_data.read_recording(tmp_path, "gaps")
    assert gaps["timeframe"].dtype == "Int64"
    assert sorted(gaps.loc[gaps["data_kind"] == "bars", "timeframe"].tolist()) == [60, 300]
    with invia_data.replay(tmp_path, paused=True) as rp:
        rp.bars("SBER", "1min")
        rp.bars("SBER", "5min")
        rp.seek(rp.end)
        health = rp.health()
        assert health.columns.tolist()[:3] == ["kind", "symbol", "timeframe"]
        assert health["timeframe"].dtype == "Int64"
        assert health["timeframe"].tolist() == [60, 300]
        assert health["gaps"].tolist() == [1, 1], health   # each its own timeframe's


def test_gaps_recorded_before_they_had_a_timeframe_still_read_and_replay(sample_recording,
                                                                         tmp_path):
    import shutil

    path = tmp_path / "recording"
    shutil.copytree(sample_recording, path)
    with invia_data.replay(path, paused=True) as rp:
        start = rp.start
    end = start + pd.Timedelta("1s")
    old = pa.table({"data_kind": ["bars"], "start": pa.array([start], pa.timestamp("us", "UTC")),
                    "end": pa.array([end], pa.timestamp("us", "UTC")),
                    "backfilled": pa.array([0], pa.int64()), "error": [None],
                    "receive_time": pa.array([end], pa.timestamp("us", "UTC"))})
    day = path / "kind=gaps" / "symbol=SBER" / f"date={start:%Y-%m-%d}"
    day.mkdir(parents=True)
    pq.write_table(old, day / "part-1-1-000001.parquet")
    gaps = invia_data.read_recording(path, "gaps")
    assert gaps.columns.tolist()[:2] == ["data_kind", "timeframe"]
    assert gaps["timeframe"].dtype == "Int64" and gaps["timeframe"].isna().all()
    assert len(gaps) == 1 and gaps["symbol"].tolist() == ["SBER"]
    newer = old.add_column(1, "timeframe", pa.array([60], pa.int64()))
    pq.write_table(newer, day / "part-2-1-000002.parquet")   # the two kinds of files together
    both = invia_data.read_recording(path, "gaps")
    assert both["timeframe"].tolist()[0] is pd.NA and both["timeframe"].tolist()[1] == 60
    with invia_data.replay(path, paused=True) as rp:
        rp.bars("SBER", "1min")
        rp.seek(rp.end)
        assert rp.health()["gaps"].tolist() == [2]   # the old gap counts for every timeframe


def _server_ids_between(sim, ids):
    """The simulator's own trade ids of SBER from the first to the last recorded one."""
    key = sim.market.resolve("MOEX", "SBER")
    return [t["id"] for t in sim.market.trades(key) if ids[0] <= t["id"] <= ids[-1]]


def _record_process(sim, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "INVIA_REFRESH_TOKEN": sim.refresh_token, "INVIA_ENV": sim.url}
    return subprocess.Popen(
        [sys.executable, "-m", "invia_data.cli", "record", "--all-trades", "SBER",
         "--orderbook", "SBER", "--depth", "5", "--out", str(out), "--batch-seconds", "0.3",
         "--status-every", "0", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _files(out: Path, kind: str) -> list[Path]:
    return sorted((out / f"kind={kind}").glob("*/*/*.parquet"))


@pytest.mark.slow
def test_a_killed_recorder_loses_at_most_its_last_batch_and_a_restart_does_not_repeat(
        sim, tmp_path):
    first = _record_process(sim, tmp_path)
    try:
        _wait_until(lambda: len(_files(tmp_path, "all_trades")) >= 3
                    and len(_files(tmp_path, "orderbook")) >= 3, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        first.stdout.close()
        first.stderr.close()
    for path in _files(tmp_path, "all_trades") + _files(tmp_path, "orderbook"):
        assert pq.read_metadata(path).num_rows > 0     # every file complete
    before = set(_read(tmp_path, "all_trades")["id"])
    second = _record_process(sim, tmp_path, "--duration", "2")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()
    assert b"closed after 2 frame(s)" in err   # the last status line
    assert b"embedded simulator" not in err    # one server's market: nothing to warn of
    assert not list(tmp_path.glob("**/.*.tmp"))
    ids = _read(tmp_path, "all_trades")["id"].sort_values().to_numpy()
    assert len(ids) == len(set(ids)), "a restart must not write a trade twice"
    assert before < set(ids)
    assert list(ids) == _server_ids_between(sim, ids), "--recent brings the downtime's trades"
    gaps = _read(tmp_path, "gaps")
    assert set(gaps["data_kind"]) == {"all_trades", "orderbook"}
    assert (gaps["error"] == "the recorder was not running").all()


def test_record_command_needs_something_to_record(sim, tmp_path):
    env = {**os.environ, "INVIA_REFRESH_TOKEN": sim.refresh_token, "INVIA_ENV": sim.url}
    done = subprocess.run([sys.executable, "-m", "invia_data.cli", "record", "--out",
                           str(tmp_path)], env=env, capture_output=True, timeout=60)
    assert done.returncode == 1 and b"nothing to record" in done.stderr


@pytest.mark.parametrize("engine", ["arrow", "duckdb"])
def test_a_large_batch_keeps_every_book_in_its_place(engine):
    """20,000 books of 0-12 levels a side: DuckDB parses the batch in parallel chunks; the rows
    must still come out book by book, as from the decoded objects."""
    import orjson

    from invia_data.record import FrameBytes, book_table, plain_books, raw_book_table

    if engine == "duckdb":
        pytest.importorskip("duckdb")
    rng = np.random.default_rng(7)
    books = []
    for i in range(20_000):
        nb, na = rng.integers(0, 13, size=2)
        books.append({"b": [{"p": float(1000 - i - k), "v": int(v)}
                            for k, v in enumerate(rng.integers(1, 10**6, size=nb))],
                      "a": [{"p": float(1001 + i + k), "v": int(v)}
                            for k, v in enumerate(rng.integers(1, 10**6, size=na))],
                      "t": 1_700_000_000_000 + i})
    frames = [orjson.dumps({"data": book, "guid": "g"}) for book in books]
    times = [1_700_000_000.0 + i // 300 * 0.01 for i in range(len(books))]
    held = FrameBytes()   # as the recorder holds them: 300 frames a read
    for lo in range(0, len(frames), 300):
        held.add(frames[lo:lo + 300], times[lo])
    assert held.times().tolist() == times
    parsed = plain_books(raw_book_table(held, times, "Slim", engine)).to_pandas()
    pd.testing.assert_frame_equal(parsed,
                                  plain_books(book_table(books, times, "Slim")).to_pandas())
    # the usual batch: every book at full depth (laid out without a gather)
    full = [{**book, "b": (book["b"] * 13)[:7], "a": (book["a"] * 13)[:7]}
            for book in books if book["b"] and book["a"]]
    frames = [orjson.dumps({"data": book, "guid": "g"}) for book in full]
    pd.testing.assert_frame_equal(
        plain_books(raw_book_table(frames, times[:len(full)], "Slim", engine)).to_pandas(),
        plain_books(book_table(full, times[:len(full)], "Slim")).to_pandas())
    assert parsed["snapshot_id"].is_monotonic_increasing
    assert parsed["snapshot_id"].nunique() == len(books)


def test_frame_bytes_keep_every_frame_in_order_across_segments_and_reuse_them(monkeypatch):
    """Reads joined into reused segments (one read larger than a segment) come back frame by
    frame, as one Arrow string array, with each read's receive time; the segments go back to
    the pool and a batch filled from reused memory reads back the same."""
    from invia_data.record import FrameBytes

    monkeypatch.setattr(FrameBytes, "SEGMENT", 64)
    rng = np.random.default_rng(3)
    pool: list[bytearray] = []
    for batch in range(3):
        held, frames, times = FrameBytes(pool), [], []
        for read in range(40):
            sizes = rng.integers(1, 30, size=int(rng.integers(1, 6)))
            got = [bytes(rng.integers(97, 123, size=n, dtype=np.uint8)) for n in sizes]
            if read == 7:
                got.append(b"x" * 100)   # on its own: larger than a segment
            held.add(got, batch * 100.0 + read)
            frames += got
            times += [batch * 100.0 + read] * len(got)
        assert len(held) == len(frames)
        strings = held.strings()
        assert strings.num_chunks > 3
        assert strings.combine_chunks().equals(
            pa.array(frames, pa.large_binary()).cast(pa.large_string()))
        assert list(held) == frames and held[5] == frames[5]
        assert held.times().tolist() == times
        held.release()
        assert pool and all(len(segment) == 64 for segment in pool)


def test_frames_parsed_from_their_bytes_give_the_same_rows_as_the_decoded_objects():
    import orjson

    from invia_data.record import (
        book_table,
        kind_schema,
        plain_books,
        raw_book_table,
        raw_record_table,
        record_table,
    )

    times = [1_700_000_000.25, 1_700_000_000.25, 1_700_000_001.5]
    books = [{"b": [{"p": 100.0 - i, "v": i + 1} for i in range(n)],
              "a": [{"p": 101.0 + i, "v": i + 2} for i in range(m)], "t": 1_700_000_000_100 + n}
             for n, m in ((3, 2), (0, 1), (2, 0))]
    frames = [orjson.dumps({"data": book, "guid": "g"}) for book in books]
    parsed = plain_books(raw_book_table(frames, times, "Slim")).to_pandas()
    decoded = plain_books(book_table(books, times, "Slim")).to_pandas()
    pd.testing.assert_frame_equal(parsed, decoded)
    assert parsed["snapshot_id"].nunique() == 3 and len(parsed) == 8
    trades = [_trade(i, 1_700_000_000_000 + i) for i in (5, 6, 7)]
    trades[1]["oi"] = None
    frames = [orjson.dumps({"data": trade, "guid": "g"}) for trade in trades]
    parsed = raw_record_table("all_trades", frames, times, "Simple")
    decoded = record_table("all_trades", trades, times, "Simple").drop(columns="symbol")
    decoded = pa.Table.from_pandas(decoded, preserve_index=False).cast(kind_schema("all_trades"))
    assert parsed.schema == kind_schema("all_trades")
    pd.testing.assert_frame_equal(parsed.to_pandas(), decoded.to_pandas())
    assert parsed.column("oi").null_count == 1


def test_recording_a_frame_again_changes_nothing_and_bad_options_are_named(sim, tmp_path):
    """A notebook cell run again: record() of frames it records already adds nothing (no
    second snapshot of what they hold, no second source); an option it lacks is named."""
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        book = inv.stream.orderbook("SBER", depth=5)
        book.wait(0, timeout=WAIT)
        recorder = inv.stream.record(tmp_path, [book])
        assert inv.stream.record(tmp_path, [book]) is recorder
        assert len(recorder.health()) == 1
        with pytest.raises(InvalidArgument, match=r"takes no 'batch_secs' \(did you mean batch_seconds=\?\)"):
            inv.stream.record(tmp_path, [book], batch_secs=1)
        book.close()
        assert "recording 0 frame(s) (1 closed)" in recorder.status_line()
        recorder.flush()
        first = _read(tmp_path, "orderbook")["snapshot_id"].min()
    rows = _read(tmp_path, "orderbook")
    assert (rows["snapshot_id"] == first).sum() == 10   # the held book once, not twice


def test_a_bars_cell_run_again_on_a_new_connection_adds_no_candle_twice(sim, tmp_path):
    """Each run brings the hundreds of history candles again; the recorder knows them."""
    shown = []
    for _ in range(2):
        with _client(sim) as inv:
            bars = inv.stream.bars("SBER", "1min", record=tmp_path)
            _wait_until(lambda bars=bars: len(bars.df) > 2)   # the history is in
            shown.append(set(bars.df.index))
    assert len(shown[0] & shown[1]) > 1   # the second run brought candles written already
    rows = invia_data.read_recording(tmp_path, "bars")
    values = ["time", "open", "high", "low", "close", "volume"]
    assert not rows.duplicated(values).any()
    with invia_data.replay(tmp_path, paused=True) as rp:
        with pytest.raises(InvalidArgument, match="has no positions; it has bars"):
            rp.positions()
        rp.close()
        with pytest.raises(invia_data.StreamClosed):
            rp.seek(0)


@pytest.mark.parametrize("engine", ["arrow", "duckdb"])
def test_yields_on_some_levels_or_none_give_the_rows_of_the_decoded_objects(engine):
    """A bond's levels carry a yield, a share's none (its column is all missing, not parsed):
    full-depth and uneven batches, yields on bids only, on some books only, on none."""
    import orjson

    from invia_data.record import book_table, plain_books, raw_book_table

    if engine == "duckdb":
        pytest.importorskip("duckdb")

    def book(i: int, depth: int, yields: str) -> dict:
        def level(price: float, side: str) -> dict:
            with_yield = yields == "all" or (yields == "bids" and side == "b")
            return {"p": price, "v": i + 1, **({"y": 7.5 + i / 100} if with_yield else {})}
        return {"b": [level(100.0 - k, "b") for k in range(depth)],
                "a": [level(101.0 + k, "a") for k in range(depth)], "t": 1_700_000_000_000 + i}

    for depths in ([5] * 6, [5, 0, 3, 5, 1, 5]):
        for pattern in (["none"] * 6, ["all"] * 6, ["bids"] * 6, ["none", "all"] * 3):
            books = [book(i, d, y) for i, (d, y) in enumerate(zip(depths, pattern, strict=True))]
            frames = [orjson.dumps({"data": b, "guid": "g"}) for b in books]
            times = [1_700_000_000.0 + i for i in range(len(books))]
            parsed = plain_books(raw_book_table(frames, times, "Slim", engine)).to_pandas()
            pd.testing.assert_frame_equal(
                parsed, plain_books(book_table(books, times, "Slim")).to_pandas())
            expected = sum(len(b["b"]) + len(b["a"]) if y == "all" else len(b["b"]) if y == "bids"
                           else 0 for b, y in zip(books, pattern, strict=True))
            assert parsed["yield"].notna().sum() == expected


def test_a_folder_holding_other_files_is_not_recorded_into(tmp_path):
    """A recording beside a user's files (notes, saved frames, other recordings) would be
    mixed into every reader of that folder: it is refused before anything is written; an
    empty folder (hidden files aside) or a recording is recorded into."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("my notes")
    frames = tmp_path / "frames"
    frames.mkdir()
    pd.DataFrame({"price": [1.0]}).to_parquet(frames / "book.parquet")
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "kind=all_trades").mkdir()
    for folder, held in ((notes, "readme.txt"), (frames, "book.parquet"),
                         (tmp_path, "frames/, notes/, rec/")):
        with pytest.raises(InvalidArgument, match=f"holds {held} and no recording: record "
                                                  "into a new or empty folder"):
            Recorder(folder)
        assert not list(folder.glob("kind=*"))
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_text("")
    for folder in (hidden, tmp_path / "rec", tmp_path / "new"):
        with Recorder(folder):
            pass


def test_an_option_the_command_lacks_is_named_with_the_ones_meant(capsys):
    """`invia-data record --trades SBER`: argparse's refusal of the command names the
    options probably meant; an unrelated word is refused as before, without a guess."""
    from invia_data import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["record", "--trades", "SBER", "--out", "data"])
    said = capsys.readouterr().err
    assert exited.value.code == 2 and "invia-data record: error: unrecognized arguments: " \
        "--trades SBER (did you mean --own-trades or --all-trades?)" in said
    with pytest.raises(SystemExit):
        cli.main(["compact", "data", "--todya"])
    assert "(did you mean --today?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["record", "--out", "data", "--xyz"])
    assert capsys.readouterr().err.rstrip().endswith("unrecognized arguments: --xyz")


@pytest.mark.slow
def test_appending_to_a_recording_of_the_embedded_simulator_says_what_that_mixes(tmp_path):
    """Each `invia-data record` without a server starts its own embedded simulator, a new
    market: a restart into the same folder says so and how to record one market across
    restarts; the first run says nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVIA_")}
    command = [sys.executable, "-m", "invia_data.cli", "record", "--env", "sim", "--quotes",
               "SBER", "--out", str(tmp_path), "--duration", "0.5", "--status-every", "0"]
    said = [subprocess.run(command, env=env, capture_output=True, timeout=120)
            for _ in range(2)]
    assert [run.returncode for run in said] == [0, 0], said[-1].stderr.decode()
    assert b"embedded simulator" not in said[0].stderr
    assert b"appending to a recording of the embedded simulator, which is a new synthetic " \
           b"market at each start" in said[1].stderr
    assert b"run `invia-data sim` and record it with --env URL" in said[1].stderr
