"""download_universe / history_to_dataset / `invia-data download`: instrument filters, the
dataset written, resuming after an interruption, failures reported, the progress bar."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest

from invia_data import cache as cache_module
from invia_data import cli, dataset
from invia_data import download as download_module
from invia_data import history as history_module
from invia_data.download import Series, download, history_to_dataset, select_instruments
from invia_data.errors import InvalidArgument, NotFound

START, END = "2023-12-28", "2024-01-05"  # across a new year (closed 1-2 January): two files a series


def dataset_files(root: Path) -> dict[str, bytes | pd.DataFrame]:
    """Every file of a dataset by relative path: the Parquet tables as frames, the manifests as
    their parsed JSON."""
    out: dict[str, bytes | pd.DataFrame] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = str(path.relative_to(root))
            if path.suffix == ".parquet":
                out[rel] = pq.read_table(path).to_pandas()
            else:
                out[rel] = orjson.loads(path.read_bytes())
    return out


def assert_same_dataset(a: Path, b: Path) -> None:
    left, right = dataset_files(a), dataset_files(b)
    assert sorted(left) == sorted(right)
    for name, value in left.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, right[name])
            assert value["time"].is_unique and value["time"].is_monotonic_increasing
        else:
            assert value == right[name], name


# --- instruments --------------------------------------------------------------------------------

def test_filters_pick_instruments_by_market_board_and_type(client) -> None:
    listed = client.instruments()
    shares = select_instruments(listed, boards="tqbr", types=["CS"])
    expected = listed[(listed["board"] == "TQBR") & (listed["type"] == "CS")]
    assert sorted(s.symbol for s in shares) == sorted(expected["symbol"])
    assert all(s.exchange == "MOEX" and s.board is None for s in shares)  # primary boards
    futures = select_instruments(client.instruments(market="FORTS"))
    assert futures and all(s.symbol in set(listed[listed["market"] == "FORTS"]["symbol"])
                           for s in futures)


def test_an_instrument_off_its_primary_board_keeps_its_board() -> None:
    listed = pd.DataFrame({"symbol": ["SBER", "SBER"], "exchange": ["MOEX", "MOEX"],
                           "board": ["TQBR", "SMAL"], "primary_board": ["TQBR", "TQBR"],
                           "type": ["CS", "CS"]})
    assert select_instruments(listed) == [Series("MOEX", "SBER", None),
                                          Series("MOEX", "SBER", "SMAL")]


@pytest.mark.parametrize("kwargs, match", [
    ({"start": None}, "start"),
    ({"tf": "7 parsecs"}, "timeframe"),
    ({"boards": ["TQBR", ""]}, "boards"),
    ({"boards": "NOPE"}, "no instrument"),
])
def test_bad_arguments_are_refused(client, tmp_path, kwargs, match) -> None:
    args = {"boards": "TQBR", "tf": "1h", "start": START, "end": END, **kwargs}
    with pytest.raises(InvalidArgument, match=match):
        client.download_universe(tmp_path / "d", **args)
    assert not (tmp_path / "d").exists()


def test_a_file_as_the_dataset_path_is_refused(client, tmp_path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InvalidArgument, match="is a file"):
        client.download_universe(target, boards="TQBR", start=START)


# --- the download --------------------------------------------------------------------------------

def test_the_universe_lands_in_one_partitioned_dataset(client, tmp_path) -> None:
    summary = client.download_universe(tmp_path, boards="TQBR", types="CS", tf="1h",
                                       start=START, end=END, progress=False)
    shares = sorted(select_instruments(client.instruments(), boards="TQBR", types="CS"),
                    key=lambda s: s.symbol)
    assert sorted(summary["symbol"]) == [s.symbol for s in shares]
    assert list(summary.columns) == download_module.SUMMARY_COLUMNS
    assert set(summary["status"]) == {"written"} and summary["error"].isna().all()
    assert set(summary["board"]) == {"TQBR"}   # the board asked for, also when it is primary
    assert (summary["files"] == 2).all()
    assert summary.attrs["candles"] == summary["candles"].sum() > 0
    sber = tmp_path / "exchange=MOEX" / "symbol=SBER" / "board=primary" / "tf=1h"
    assert sorted(p.name for p in sber.iterdir()) == ["_coverage.json", "year=2023", "year=2024"]
    direct = client.history("SBER", "1h", start=START, end=END, cache=False)
    assert summary.set_index("symbol").loc["SBER", "candles"] == len(direct)
    foreign = pd.read_parquet(tmp_path)  # any Hive-aware reader sees the partition columns
    assert len(foreign) == summary["candles"].sum()
    assert not foreign.duplicated(["symbol", "time"]).any()
    again = client.download_universe(tmp_path, boards="TQBR", types="CS", tf="1h",
                                     start=START, end=END, progress=False)
    assert set(again["status"]) == {"complete"} and again["requests"].sum() == 0


def test_a_rerun_up_to_now_with_nothing_new_is_complete(client, tmp_path) -> None:
    """Without end=, each run asks for the time since the last one; no new closed candle there
    means the dataset is up to date, not that the instrument has no candles."""
    start = client.time() - pd.Timedelta(days=10)
    first = client.download_universe(tmp_path, boards="TQBR", types="PS", tf="D", start=start,
                                     progress=False)
    assert set(first["status"]) == {"written"} and (first["candles"] > 0).all()
    again = client.download_universe(tmp_path, boards="TQBR", types="PS", tf="D", start=start,
                                     progress=False)
    assert set(again["status"]) == {"complete"} and again["candles"].sum() == 0
    holiday = client.download_universe(tmp_path / "other", boards="TQBR", types="PS", tf="D",
                                       start="2026-01-01", end="2026-01-03", progress=False)
    assert set(holiday["status"]) == {"no candles"}  # the exchange was closed, nothing held


def test_an_interrupted_download_resumes_to_the_same_dataset(client, tmp_path, monkeypatch
                                                             ) -> None:
    monkeypatch.setattr(history_module, "CANDLES_PER_REQUEST", 600)  # ~10 pages a series-year
    symbols = ["SBER", "GAZP", "LKOH", "VTBR"]
    whole = tmp_path / "whole"
    history_to_dataset(client.http, symbols, whole, "1min", START, END, progress=False)

    real_fetch = download_module.fetch_range
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt  # what Ctrl-C raises while the download waits
        return real_fetch(*args, **kwargs)

    monkeypatch.setattr(download_module, "fetch_range", interrupted)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        history_to_dataset(client.http, symbols, part, "1min", START, END, progress=False,
                           max_workers=2)
    written_before = set(dataset_files(part))
    assert written_before and len(written_before) < len(dataset_files(whole))
    assert not [p for p in part.rglob("*") if p.name.endswith(".tmp")]
    for name in written_before:  # whatever is there is complete and readable
        if name.endswith(".parquet"):
            pq.read_table(part / name)

    monkeypatch.setattr(download_module, "fetch_range", real_fetch)
    fetched: list[tuple[str, int, int]] = []

    def counting(http_, query, a, b):
        fetched.append((query.symbol, a, b))
        return real_fetch(http_, query, a, b)

    monkeypatch.setattr(download_module, "fetch_range", counting)
    history_to_dataset(client.http, symbols, part, "1min", START, END, progress=False)
    assert_same_dataset(part, whole)
    done_before = {name.split("/")[1] for name in written_before if "year=2024" in name}
    assert not [f for f in fetched if f"symbol={f[0]}" in done_before and
                f[1] >= int(pd.Timestamp("2024-01-01", tz="UTC").timestamp())]
    fetched.clear()
    history_to_dataset(client.http, symbols, part, "1min", START, END, progress=False)
    assert fetched == []  # a third run has nothing to fetch


def test_an_interrupted_write_leaves_no_partial_file(client, tmp_path, monkeypatch) -> None:
    history_to_dataset(client.http, "SBER", tmp_path, "1h", START, "2023-12-30", progress=False)
    before = dataset_files(tmp_path)
    real_write = cache_module.pq.write_table

    def torn(table, where, *args, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")  # the bytes written before Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.pq, "write_table", torn)
    with pytest.raises(KeyboardInterrupt):
        history_to_dataset(client.http, "SBER", tmp_path, "1h", START, END, progress=False)
    assert dataset_files(tmp_path).keys() == before.keys()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(cache_module.pq, "write_table", real_write)
    history_to_dataset(client.http, "SBER", tmp_path, "1h", START, END, progress=False)
    frame = dataset.open(tmp_path, symbols="SBER")
    pd.testing.assert_frame_equal(frame, client.history("SBER", "1h", start=START, end=END, cache=False))


def test_failures_are_reported_and_do_not_stop_the_others(client, tmp_path) -> None:
    listed = client.instruments()
    bogus = listed[listed["symbol"] == "SBER"].assign(symbol="NOSUCH")

    def listing(market):
        return pd.concat([bogus, listed], ignore_index=True)

    summary = download_module.download_universe(listing, client.http, tmp_path, boards="TQBR",
                                                tf="1h", start=START, end=END, progress=False)
    failed = summary[summary["status"] == "failed"]
    assert list(failed["symbol"]) == ["NOSUCH"] and "NotFound" in failed["error"].iloc[0]
    ok = summary[summary["status"] != "failed"]
    assert len(ok) >= 2 and set(ok["status"]) == {"written"} and ok["error"].isna().all()
    assert not (tmp_path / "exchange=MOEX" / "symbol=NOSUCH").exists()
    assert set(dataset.symbols_in(tmp_path)) == set(ok["symbol"])


def test_history_to_dataset_raises_a_failure_after_writing_the_rest(client, tmp_path) -> None:
    with pytest.raises(NotFound):
        history_to_dataset(client.http, ["NOSUCH", "SBER"], tmp_path, "1h", START, END,
                           progress=False)
    assert dataset.symbols_in(tmp_path) == ["SBER"]


def test_one_bar_shows_requests_instruments_and_candles(client, tmp_path, capsys) -> None:
    series = [Series("MOEX", s) for s in ("SBER", "GAZP")]
    summary, files = download(client.http, series, tmp_path, "1h", START, END, progress=True)
    err = capsys.readouterr().err
    assert "instruments=2/2" in err and "candles=" in err and "req" in err
    assert len(files) == 4 and files["candles"].sum() == summary["candles"].sum()


# --- the command line ----------------------------------------------------------------------------

@pytest.fixture
def quiet_logging(monkeypatch):
    """The command line adds a stderr handler to the package's logger: take it away after."""
    logger = logging.getLogger("invia_data")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)


def test_the_command_line_downloads_and_prints_the_summary(sim, tmp_path, monkeypatch, capsys,
                                                           quiet_logging) -> None:
    monkeypatch.setenv("INVIA_REFRESH_TOKEN", sim.refresh_token)
    status = cli.main(["download", str(tmp_path), "--env", sim.url, "--board", "TQBR",
                       "--type", "CS", "--tf", "1h", "--start", START, "--end", END,
                       "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0 and "SBER" in out and "written" in out and "0 failed" in out
    assert "SBER" in dataset.symbols_in(tmp_path)
    status = cli.main(["download", str(tmp_path), "--env", sim.url, "--board", "NOPE",
                       "--start", START])
    assert status == 2 and "no instrument" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_of_the_command_line_then_a_rerun_completes_the_dataset(sim, client, tmp_path
                                                                      ) -> None:
    """A real SIGINT to `invia-data download` while it writes: exit 130, no partial file; the
    same command again gives the dataset of an uninterrupted download."""
    env = {**os.environ, "INVIA_REFRESH_TOKEN": sim.refresh_token}
    args = ["--env", sim.url, "--board", "TQBR", "--type", "CS", "--tf", "1min", "--start",
            "2024-01-01", "--end", "2024-02-01", "--workers", "2", "--no-progress"]
    command = [sys.executable, "-m", "invia_data.cli", "download"]
    part = tmp_path / "part"
    proc = subprocess.Popen([*command, str(part), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(part.rglob("*.parquet")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no file written in 2 minutes"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    assert not [p for p in part.rglob("*") if p.name.endswith(".tmp")]
    done_before = len(list(part.rglob("*.parquet")))
    rerun = subprocess.run([*command, str(part), *args], env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    whole = tmp_path / "whole"
    shares = select_instruments(client.instruments(), boards="TQBR", types="CS")
    history_to_dataset(client.http, [s.symbol for s in shares], whole, "1min", "2024-01-01",
                       "2024-02-01", progress=False)
    assert_same_dataset(part, whole)
    assert 0 < done_before < len(list(whole.rglob("*.parquet")))
