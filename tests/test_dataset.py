"""dataset.open with pandas, Dask and DuckDB: the frames of history(), partition pruning, the
errors for a missing extra, an unknown engine, symbol or ambiguous board."""

from __future__ import annotations

import sys
from pathlib import Path

import dask
import duckdb
import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest
from distributed import Client as DaskClient
from distributed import LocalCluster

from invia_data import dataset
from invia_data.download import history_to_dataset
from invia_data.errors import InvalidArgument

START, END = "2022-11-01", "2024-02-01"  # three years of files a series
SYMBOLS = ["SBER", "GAZP", "LKOH", "ITS:SOGN"]


@pytest.fixture(scope="module")
def hourly(client, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hourly")
    history_to_dataset(client.http, SYMBOLS, root, "1h", START, END, progress=False)
    history_to_dataset(client.http, ["SBER"], root, "D", START, END, progress=False)
    return root


def expected(client, symbols, start=START, end=END, tf="1h") -> pd.DataFrame:
    return client.history(symbols, tf, start=start, end=end, cache=False)


def test_pandas_is_the_frame_of_history(client, hourly) -> None:
    for symbols in (["GAZP", "SBER"], "LKOH", ["ITS:SOGN", "SBER"]):
        got = dataset.open(hourly, symbols=symbols, tf="1h")
        want = expected(client, symbols)
        pd.testing.assert_frame_equal(got, want)
        assert got.attrs == want.attrs
    window = dataset.open(hourly, symbols="SBER", tf="1h", start="2023-06-01 10:00",
                          end="2023-06-03")
    pd.testing.assert_frame_equal(window, expected(client, "SBER", "2023-06-01 10:00",
                                                   "2023-06-03"))
    moscow = dataset.open(hourly, symbols="SBER", tf="D", tz="Europe/Moscow")
    assert str(moscow.index.tz) == "Europe/Moscow"
    pd.testing.assert_frame_equal(moscow, client.history("SBER", "D", start=START, end=END,
                                                         cache=False, tz="Europe/Moscow"))


def test_every_symbol_when_none_is_named(client, hourly) -> None:
    frame = dataset.open(hourly, tf="1h", start="2023-01-03", end="2023-01-05")
    assert sorted(frame.index.get_level_values("symbol").unique()) == ["GAZP", "LKOH", "SBER",
                                                                       "SOGN"]
    assert not frame.index.duplicated().any()


def test_dask_reads_equal_history_for_sampled_series(client, hourly) -> None:
    single = dataset.open(hourly, "dask", symbols="GAZP", tf="1h")
    assert single.known_divisions and single.npartitions == 3
    pd.testing.assert_frame_equal(single.compute(), expected(client, "GAZP"))
    assert single.loc["2023-03-01":"2023-03-02"].npartitions == 1  # divisions prune partitions

    several = dataset.open(hourly, "dask", symbols=["SBER", "LKOH"], tf="1h",
                           start="2023-05-01", end="2023-08-01")
    assert not several.known_divisions  # two symbols overlap in time
    want = expected(client, ["SBER", "LKOH"], "2023-05-01", "2023-08-01")
    got = several.compute().set_index("symbol", append=True).swaplevel()
    pd.testing.assert_frame_equal(got, want, check_index_type=True)
    assert dict(several.dtypes) == {"symbol": want.index.levels[0].dtype, **dict(want.dtypes)}


@pytest.mark.filterwarnings("ignore:Couldn.t detect a suitable IP address:RuntimeWarning")
def test_dask_on_a_distributed_cluster(client, hourly) -> None:
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
                      ) as cluster, DaskClient(cluster):
        frame = dataset.open(hourly, "dask", tf="1h")
        means = frame.groupby("symbol")["close"].mean().compute()
    data = dataset.open(hourly, tf="1h")
    pd.testing.assert_series_equal(means.sort_index(),
                                   data.groupby(level="symbol")["close"].mean().sort_index(),
                                   check_names=False)


def test_duckdb_reads_equal_history_for_sampled_series(client, hourly) -> None:
    relation = dataset.open(hourly, "duckdb", symbols=["LKOH", "SOGN"], tf="1h",
                            start="2023-12-20", end="2024-01-10")
    assert relation.columns == ["symbol", "time", "open", "high", "low", "close", "volume"]
    got = relation.df().set_index(["symbol", "time"])
    want = expected(client, ["LKOH", "ITS:SOGN"], "2023-12-20", "2024-01-10").sort_index()
    got.index = got.index.set_levels(got.index.levels[1].as_unit("ns"), level="time")
    pd.testing.assert_frame_equal(got, want, check_index_type=False)
    con = duckdb.connect()
    total = dataset.open(hourly, "duckdb", tf="1h", connection=con).aggregate("count(*)")
    assert total.fetchall()[0][0] == len(dataset.open(hourly, tf="1h"))


def test_pruning_opens_only_the_files_asked_for(hourly, monkeypatch) -> None:
    everything = dataset.files(hourly, tf="1h")
    assert len(everything) == 4 * 3
    some = dataset.files(hourly, tf="1h", symbols=["SBER", "GAZP"], start="2023-03-01",
                         end="2023-04-01")
    assert [(f.symbol, f.year) for f in some] == [("SBER", 2023), ("GAZP", 2023)]
    opened: list[str] = []
    real = pq.read_table

    def counting(source, *args, **kwargs):
        opened.append(str(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", counting)
    dataset.open(hourly, symbols=["SBER", "GAZP"], tf="1h", start="2023-03-01",
                 end="2023-04-01")
    assert sorted(opened) == sorted(str(f.path) for f in some)
    opened.clear()
    with dask.config.set(scheduler="synchronous"):
        lazy = dataset.open(hourly, "dask", symbols="SBER", tf="1h", start="2023-01-01")
        assert lazy.npartitions == 2
        lazy.compute()
    assert len(opened) == 2
    plan = dataset.open(hourly, "duckdb", symbols="SBER", tf="1h", start="2024-01-01"
                        ).explain(type="analyze")
    assert "Total Files Read: 1" in plan and "symbol=SBER/board=primary/tf=1h/year=2024" in plan


def test_an_engine_that_is_not_installed_names_the_extra(hourly, monkeypatch) -> None:
    for module, engine in (("duckdb", "duckdb"), ("dask.dataframe", "dask")):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
        with pytest.raises(InvalidArgument, match=r"pip install 'invia-data\[scale\]'"):
            dataset.open(hourly, engine, tf="1h")
        monkeypatch.delitem(sys.modules, module)


@pytest.mark.parametrize("kwargs, match", [
    ({"engine": "spark"}, "engine"),
    ({"symbols": "NOSUCH"}, "NOSUCH not in the dataset"),
    ({"symbols": []}, "empty"),
    ({"start": "2024-02-01", "end": "2024-01-01"}, "after"),
    ({"tf": None}, "several timeframes"),
])
def test_bad_reads_are_refused(hourly, kwargs, match) -> None:
    args = {"tf": "1h", **kwargs}
    with pytest.raises(InvalidArgument, match=match):
        dataset.open(hourly, **args)


def test_a_path_that_is_not_a_dataset(tmp_path) -> None:
    with pytest.raises(InvalidArgument, match="not a folder"):
        dataset.open(tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="no candle series"):
        dataset.open(tmp_path)


def test_a_symbol_on_two_boards_must_be_picked(client, tmp_path) -> None:
    history_to_dataset(client.http, "SBER", tmp_path, "1h", "2024-01-03", "2024-01-05",
                       progress=False)
    history_to_dataset(client.http, "SBER", tmp_path, "1h", "2024-01-03", "2024-01-05",
                       board="SMAL", progress=False)
    with pytest.raises(InvalidArgument, match="board"):
        dataset.open(tmp_path, symbols="SBER")
    primary = dataset.open(tmp_path, symbols="SBER", board="primary")
    pd.testing.assert_frame_equal(primary, expected(client, "SBER", "2024-01-03", "2024-01-05"))
    assert len(dataset.open(tmp_path, symbols="SBER", board="smal")) > 0


def test_a_dataset_in_object_storage_reads_the_same(client, hourly) -> None:
    """An fsspec URL (here the in-memory filesystem, as s3:// or gs:// would be) is listed,
    pruned and read like the local folder, by all three engines."""
    store = fsspec.filesystem("memory")
    store.put(str(hourly), "/bucket/candles", recursive=True)
    try:
        url = "memory://bucket/candles"
        local = dataset.open(hourly, symbols=["GAZP", "SOGN"], tf="1h", start="2023-06-01")
        pd.testing.assert_frame_equal(
            dataset.open(url, symbols=["GAZP", "SOGN"], tf="1h", start="2023-06-01"), local)
        remote_files = dataset.files(url, tf="1h", symbols="SBER", start="2024-01-01")
        assert [f.year for f in remote_files] == [2024]
        lazy = dataset.open(url, "dask", symbols="GAZP", tf="1h", start="2023-06-01")
        assert lazy.known_divisions
        pd.testing.assert_frame_equal(lazy.compute(), local.loc["GAZP"])
        rows = dataset.open(url, "duckdb", symbols=["GAZP", "SOGN"], tf="1h",
                            start="2023-06-01").aggregate("count(*)").fetchall()[0][0]
        assert rows == len(local)
    finally:
        store.rm("/bucket", recursive=True)
