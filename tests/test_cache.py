"""The candle cache on its own: intervals, Parquet round trips, corruption, threads, layout."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from invia_data.cache import (
    COVERAGE_FILE,
    CacheKey,
    CacheWarning,
    CandleCache,
    environment_name,
    merge_intervals,
    missing_intervals,
    resolve_cache_dir,
    sort_unique,
)
from invia_data.errors import InvalidArgument

KEY = CacheKey("127.0.0.1_8000", "MOEX", "SBER", None, "1min")
T0 = 1_703_980_800  # 2023-12-31 00:00 UTC


def candles(start: int, count: int, step: int = 60, price: float = 100.0) -> dict:
    time = start + step * np.arange(count, dtype="int64")
    base = price + np.arange(count, dtype="float64")
    return {"time": time, "open": base, "high": base + 1, "low": base - 1, "close": base + 0.5,
            "volume": np.arange(count, dtype="int64") + 1}


# --- intervals ---

def test_merge_intervals_joins_overlapping_and_adjacent() -> None:
    assert merge_intervals([(5, 7), (1, 3), (3, 4), (6, 9), (20, 20)]) == [(1, 4), (5, 9)]


@pytest.mark.parametrize(("start", "end", "covered", "gaps"), [
    (0, 10, [], [(0, 10)]),
    (0, 10, [(0, 10)], []),
    (0, 10, [(-5, 3), (6, 8)], [(3, 6), (8, 10)]),
    (0, 10, [(2, 4), (3, 5)], [(0, 2), (5, 10)]),
    (0, 10, [(10, 20), (-9, 0)], [(0, 10)]),
    (5, 5, [], []),
])
def test_missing_intervals(start, end, covered, gaps) -> None:
    assert missing_intervals(start, end, covered) == gaps


def test_sort_unique_keeps_last_of_duplicates() -> None:
    first = candles(T0, 3)
    second = candles(T0 + 60, 3, price=500.0)
    merged = sort_unique({k: np.concatenate([first[k], second[k]]) for k in first})
    assert merged["time"].tolist() == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert merged["open"].tolist() == [100.0, 500.0, 501.0, 502.0]


# --- store and read ---

def test_round_trip_across_a_year_boundary(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    data = candles(T0 + 86_400 - 120, 5)  # two minutes of 2023, three of 2024
    cache.store(KEY, data, [(T0, T0 + 2 * 86_400)])
    folder = cache.series_dir(KEY)
    assert (folder / "year=2023" / "part.parquet").exists()
    assert (folder / "year=2024" / "part.parquet").exists()
    back = cache.read(KEY, T0, T0 + 2 * 86_400)
    for name, values in data.items():
        np.testing.assert_array_equal(back[name], values)
        assert back[name].dtype == values.dtype
    assert cache.coverage(KEY) == [(T0, T0 + 2 * 86_400)]
    assert cache.missing(KEY, T0 - 60, T0 + 3 * 86_400) == [(T0 - 60, T0),
                                                             (T0 + 2 * 86_400, T0 + 3 * 86_400)]
    assert not list(folder.rglob("*.tmp")), "temporary files are renamed or removed"


def test_read_returns_only_the_range(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store(KEY, candles(T0, 10), [(T0, T0 + 600)])
    back = cache.read(KEY, T0 + 120, T0 + 300)
    assert back["time"].tolist() == [T0 + 120, T0 + 180, T0 + 240]


def test_store_merges_and_replaces_duplicates(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store(KEY, candles(T0, 4), [(T0, T0 + 240)])
    cache.store(KEY, candles(T0 + 180, 3, price=900.0), [(T0 + 180, T0 + 360)])
    back = cache.read(KEY, T0, T0 + 360)
    assert back["time"].tolist() == [T0 + 60 * i for i in range(6)]
    assert back["open"].tolist() == [100.0, 101.0, 102.0, 900.0, 901.0, 902.0]
    assert cache.coverage(KEY) == [(T0, T0 + 360)]


def test_an_empty_range_is_remembered(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store(KEY, candles(T0, 0), [(T0, T0 + 3600)])
    assert cache.missing(KEY, T0, T0 + 3600) == []
    assert len(cache.read(KEY, T0, T0 + 3600)["time"]) == 0


def test_keys_do_not_mix(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    board_key = CacheKey(KEY.environment, "MOEX", "SBER", "TQBR", "1min")
    other_env = CacheKey("api.inviabroker.com", "MOEX", "SBER", None, "1min")
    cache.store(KEY, candles(T0, 3), [(T0, T0 + 180)])
    assert cache.missing(board_key, T0, T0 + 180) == [(T0, T0 + 180)]
    assert cache.missing(other_env, T0, T0 + 180) == [(T0, T0 + 180)]
    assert len(cache.read(board_key, T0, T0 + 180)["time"]) == 0


# --- damaged files ---

def test_corrupted_part_file_is_discarded_with_a_warning(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store(KEY, candles(T0 + 86_400 - 120, 5), [(T0, T0 + 2 * 86_400)])
    part = cache.series_dir(KEY) / "year=2024" / "part.parquet"
    part.write_bytes(b"PAR1 not really parquet")
    with pytest.warns(CacheWarning, match="unreadable cache file"):
        back = cache.read(KEY, T0, T0 + 2 * 86_400)
    assert back["time"].tolist() == [T0 + 86_400 - 120, T0 + 86_400 - 60]  # 2023 survives
    assert not part.exists()
    assert cache.missing(KEY, T0, T0 + 2 * 86_400) == [(T0 + 86_400, T0 + 2 * 86_400)]


def test_lookup_gives_candles_and_gaps_that_agree(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store(KEY, candles(T0 + 86_400 - 120, 5), [(T0, T0 + 2 * 86_400)])
    (cache.series_dir(KEY) / "year=2023" / "part.parquet").write_bytes(b"\x00" * 64)
    with pytest.warns(CacheWarning):
        columns, gaps = cache.lookup(KEY, T0 - 600, T0 + 2 * 86_400)
    assert columns["time"].tolist() == [T0 + 86_400 + 60 * i for i in range(3)]
    assert gaps == [(T0 - 600, T0 + 86_400)]  # before the coverage, and the damaged 2023


def test_corrupted_coverage_is_forgotten_with_a_warning(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store(KEY, candles(T0, 3), [(T0, T0 + 180)])
    (cache.series_dir(KEY) / COVERAGE_FILE).write_text("{not json")
    with pytest.warns(CacheWarning, match="metadata"):
        assert cache.missing(KEY, T0, T0 + 180) == [(T0, T0 + 180)]
    cache.store(KEY, candles(T0, 3), [(T0, T0 + 180)])
    assert cache.missing(KEY, T0, T0 + 180) == []


# --- threads ---

def test_concurrent_stores_keep_every_candle_and_interval(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    errors: list[BaseException] = []

    def store(i: int) -> None:
        try:
            start = T0 + i * 600
            cache.store(KEY, candles(start, 10, price=float(i)), [(start, start + 600)])
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=store, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert cache.coverage(KEY) == [(T0, T0 + 12 * 600)]
    assert cache.read(KEY, T0, T0 + 12 * 600)["time"].tolist() == [T0 + 60 * i for i in range(120)]


# --- layout and location ---

def test_the_cache_is_a_hive_dataset(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.store(KEY, candles(T0 + 86_400 - 120, 5), [(T0, T0 + 2 * 86_400)])
    gazp = CacheKey(KEY.environment, "MOEX", "GAZP", None, "1min")
    cache.store(gazp, candles(T0, 2), [(T0, T0 + 120)])
    table = ds.dataset(tmp_path / KEY.environment, format="parquet",
                       partitioning="hive").to_table()
    frame = table.to_pandas()
    assert len(frame) == 7
    assert sorted(frame["symbol"].unique()) == ["GAZP", "SBER"]
    assert set(frame["board"]) == {"primary"}
    assert set(frame["tf"]) == {"1min"}
    assert sorted(frame["year"].unique()) == [2023, 2024]
    assert isinstance(frame["time"].dtype, pd.DatetimeTZDtype)
    assert frame["time"].min() == pd.Timestamp(T0, unit="s", tz="UTC")


def test_cache_dir_argument_then_environment_then_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INVIA_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("INVIA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir() == tmp_path / "xdg" / "invia-data"
    with pytest.raises(InvalidArgument):
        resolve_cache_dir(42)  # type: ignore[arg-type]


def test_environment_name_is_host_and_port_without_credentials() -> None:
    assert environment_name("https://api.inviabroker.com") == "api.inviabroker.com"
    assert environment_name("http://127.0.0.1:8123/") == "127.0.0.1_8123"
    assert environment_name("http://user:secret@host:1") == "host_1"
