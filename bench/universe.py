"""A universe download and a universe query, each against its baseline in one run.

Download of every TQBR share (48 in the simulator), a year of 1-minute candles by default
(the simulator in a process of its own, as a server is; the same page size,
``history.CANDLES_PER_REQUEST``, and the same ``--workers`` everywhere):

* ``--rounds`` paired rounds, the ratio that counts (the machine's load moves both halves of a
  round alike): ``history()`` of one symbol, cache off, then the engine of
  ``download_universe`` (``download.download``) on four other symbols into an empty dataset;
  the median of the ratios of their candles/s;
* then ``history()`` of one symbol (best of ``--repeat``) and ``download_universe()`` of every
  TQBR share into an empty dataset: candles/s (written to Parquet) and CPU/candle (this
  process: parsing, frames, Parquet, manifests).

Query, over the files just written: per-symbol daily realised volatility (sqrt of the sum of
squared 1-minute log returns inside each UTC day), five ways:

* naive pandas loop: file by file, ``pd.read_parquet`` + ``groupby(time.dt.date)`` diff and sum,
  what a first notebook does;
* pandas loop, the same vectorised kernel as the Dask run, file by file (no parallelism);
* Dask: ``dataset.open(path, "dask").map_partitions(kernel)`` on a ``distributed.LocalCluster``
  (``--dask-threads`` threads in one worker process: this process), plus its peak memory;
* DuckDB: ``dataset.open(path, "duckdb")`` and one SQL query with ``lag()`` over each symbol
  in time order (a sort), and the same with ``lag() OVER ()`` streaming through the relation's
  file order (no sort; see ``SQL_IN_FILE_ORDER``).

The simulator keeps only its last few generated blocks, so every download figure includes the
generation of its candles on the server's core. Each query runs ``--repeat`` times; the best
time counts. The five results are checked equal.

    python bench/universe.py [--start 2025-01-01] [--end 2026-01-01] [--workers 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import invia_data  # noqa: E402
from invia_data import dataset  # noqa: E402
from invia_data import history as history_module  # noqa: E402
from invia_data.download import Series, download  # noqa: E402

NS_PER_DAY = 86_400 * 10**9
SQL = """
WITH r AS (
    SELECT symbol, epoch_us(time) // 86400000000 AS day,
           lag(epoch_us(time) // 86400000000) OVER w AS previous_day,
           ln(close) - lag(ln(close)) OVER w AS r
    FROM candles
    WINDOW w AS (PARTITION BY symbol ORDER BY time)
)
SELECT symbol, day,
       sqrt(coalesce(sum(r * r) FILTER (WHERE day = previous_day), 0)) AS rv,
       count(r) FILTER (WHERE day = previous_day) AS n
FROM r GROUP BY symbol, day
"""
# The same without a sort: the relation of dataset.open yields its files in order (symbol, then
# time) and DuckDB keeps that order (preserve_insertion_order), so lag() OVER () streams through
# the rows and a return counts when the previous row is of the same symbol and day.
SQL_IN_FILE_ORDER = """
WITH r AS (
    SELECT symbol, epoch_us(time) // 86400000000 AS day,
           lag(symbol) OVER () AS previous_symbol,
           lag(epoch_us(time) // 86400000000) OVER () AS previous_day,
           ln(close) - lag(ln(close)) OVER () AS r
    FROM candles
)
SELECT symbol, day,
       sqrt(coalesce(sum(r * r) FILTER (WHERE day = previous_day
                                          AND symbol = previous_symbol), 0)) AS rv,
       count(r) FILTER (WHERE day = previous_day AND symbol = previous_symbol) AS n
FROM r GROUP BY symbol, day
"""


class simulator_process:
    """``invia-data sim`` in a process of its own; yields (url, refresh token)."""

    def __enter__(self) -> tuple[str, str]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invia_data.cli", "sim", "--port", "0", "--log-level", "ERROR"],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        return info["url"], info["refresh_token"]

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


# --- the query, five ways -------------------------------------------------------------------------

def kernel(part: pd.DataFrame) -> pd.DataFrame:
    """Per (symbol, UTC day) of a partition in time order: realised volatility and count."""
    day = part.index.asi8 // NS_PER_DAY
    codes, names = pd.factorize(part["symbol"])
    key = codes * 100_000 + day
    r = np.diff(np.log(part["close"].to_numpy()), prepend=np.nan)
    first = np.ones(len(part), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(first)
    if not len(starts):
        return pd.DataFrame({"symbol": pd.Series(dtype=part["symbol"].dtype),
                             "day": pd.Series(dtype="int64"), "rv": pd.Series(dtype="float64"),
                             "n": pd.Series(dtype="int64")})
    return pd.DataFrame({
        "symbol": names.take(codes[starts]),
        "day": day[starts],
        "rv": np.sqrt(np.add.reduceat(np.where(first, 0.0, r * r), starts)),
        "n": np.add.reduceat((~first).astype("int64"), starts),
    })


def naive_loop(path: Path) -> pd.DataFrame:
    out = []
    for part in dataset.files(path):
        frame = pd.read_parquet(part.path)
        day = frame["time"].dt.date
        returns = np.log(frame["close"]).groupby(day).diff()
        rv = (returns ** 2).groupby(day).sum() ** 0.5
        n = returns.groupby(day).count()
        out.append(pd.DataFrame({"symbol": part.symbol, "rv": rv, "n": n}))
    result = pd.concat(out).rename_axis("day").reset_index()
    result["day"] = (pd.to_datetime(result["day"]) - pd.Timestamp(0)) // pd.Timedelta(days=1)
    return result


def kernel_loop(path: Path) -> pd.DataFrame:
    reader = dataset._DaskReader(single=False, lo=0, hi=2**40, tz=None)
    return pd.concat([kernel(reader((part.path, part.symbol))) for part in dataset.files(path)])


def on_dask(path: Path) -> pd.DataFrame:
    candles = dataset.open(path, "dask")
    return candles.map_partitions(kernel, meta=kernel(candles._meta)).compute()


def on_duckdb(path: Path) -> pd.DataFrame:
    return dataset.open(path, "duckdb").query("candles", SQL).df()


def on_duckdb_in_file_order(path: Path) -> pd.DataFrame:
    return dataset.open(path, "duckdb").query("candles", SQL_IN_FILE_ORDER).df()


def same(results: dict[str, pd.DataFrame]) -> None:
    frames = {name: r.set_index(["symbol", "day"]).sort_index() for name, r in results.items()}
    first = next(iter(frames.values()))
    for name, frame in frames.items():
        assert frame.index.equals(first.index), name
        np.testing.assert_allclose(frame["rv"], first["rv"], rtol=1e-9, err_msg=name)
        assert (frame["n"].to_numpy() == first["n"].to_numpy()).all(), name


class PeakRss:
    """The peak resident memory of this process while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakRss:
        self.process = psutil.Process()
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- main -----------------------------------------------------------------------------------------

def paired_rounds(args: argparse.Namespace, inv: Any, symbols: list[str]) -> list[float]:
    """Per round: history() of one symbol, then the download engine on four others, all new to
    the simulator; the ratio of their candles/s."""
    ratios = []
    fresh = iter(symbols)
    for number in range(args.rounds):
        one = next(fresh)
        frame, wall, _ = timed(lambda one=one: inv.history(
            one, "1min", start=args.start, end=args.end, cache=False, progress=False))
        single = len(frame) / wall
        series = [Series("MOEX", next(fresh)) for _ in range(4)]
        with tempfile.TemporaryDirectory(prefix="invia-bench-round-") as folder:
            (summary, _), wall, _ = timed(lambda series=series, folder=folder: download(
                inv.http, series, folder, "1min", args.start, args.end, progress=False,
                max_workers=args.workers))
        ratios.append(summary["candles"].sum() / wall / single)
        print(f"  round {number + 1}: {one} {single:,.0f} candles/s; "
              f"{', '.join(s.symbol for s in series)} {ratios[-1] * single:,.0f} candles/s: "
              f"{ratios[-1]:.2f}x")
    return ratios


def download_figures(args: argparse.Namespace, url: str, token: str, root: Path) -> None:
    with invia_data.connect(token, base_url=url, auth_url=url) as inv:
        listed = inv.instruments()
        shares = sorted(listed[listed["board"] == "TQBR"]["symbol"])
        print(f"page size {history_module.CANDLES_PER_REQUEST:,} candles, {args.workers} workers;"
              f" paired rounds (every symbol new to the simulator, which keeps only its last"
              f" few generated blocks):")
        ratios = paired_rounds(args, inv, shares[::-1])
        symbol_run = []
        for symbol in shares[:args.repeat]:
            frame, wall, cpu = timed(lambda symbol=symbol: inv.history(
                symbol, "1min", start=args.start, end=args.end, cache=False, progress=False))
            symbol_run.append((len(frame) / wall, cpu / len(frame)))
        rate, cpu_per = max(symbol_run)
        summary, wall, cpu = timed(lambda: inv.download_universe(
            root, boards="TQBR", tf="1min", start=args.start, end=args.end, progress=False,
            max_workers=args.workers))
    candles = int(summary["candles"].sum())
    assert set(summary["status"]) == {"written"}, summary
    universe_rate = candles / wall
    print(f"  median ratio of {len(ratios)} rounds: {float(np.median(ratios)):.2f}x")
    print(f"history() of one symbol, best of {args.repeat}: {rate:,.0f} candles/s, "
          f"{cpu_per * 1e6:.2f} us CPU/candle")
    print(f"download_universe: {len(summary)} shares, {candles:,} candles written in {wall:.1f} s"
          f" = {universe_rate:,.0f} candles/s, {cpu / candles * 1e6:.2f} us CPU/candle written"
          f" ({universe_rate / rate:.2f}x the line above)")


def query_figures(args: argparse.Namespace, root: Path) -> None:
    from distributed import Client, LocalCluster

    candles = sum(f.path and dataset.read_table(f.path).num_rows for f in dataset.files(root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=1, threads_per_worker=args.dask_threads,
                               processes=False, dashboard_address=None)
    client = Client(cluster)
    try:
        results: dict[str, pd.DataFrame] = {}
        best: dict[str, float] = {}
        peak = 0
        for name, run in (("naive pandas loop", naive_loop),
                          ("pandas loop, same kernel", kernel_loop),
                          ("Dask LocalCluster", on_dask), ("DuckDB", on_duckdb),
                          ("DuckDB, lag in file order", on_duckdb_in_file_order)):
            times = []
            for _ in range(args.repeat):
                with PeakRss() as rss:
                    results[name], wall, _ = timed(lambda run=run: run(root))
                times.append(wall)
                if name == "Dask LocalCluster":
                    peak = max(peak, rss.peak - rss.base)
            best[name] = min(times)
        same(results)
    finally:
        client.close()
        cluster.close()
    naive = best["naive pandas loop"]
    print(f"query: daily realised volatility of {len(dataset.files(root))} files, {candles:,} "
          f"candles; best of {args.repeat}; the five results agree")
    for name, seconds in best.items():
        print(f"  {name:<26} {seconds:6.2f} s   {naive / seconds:5.2f}x the naive loop")
    for duck in ("DuckDB", "DuckDB, lag in file order"):
        print(f"  Dask / {duck} speed: {best[duck] / best['Dask LocalCluster']:.2f}")
    print(f"  Dask peak memory above the start: {peak / 2**20:,.0f} MiB "
          f"(the candles in memory at once would be {candles * 48 / 2**20:,.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--end", default="2026-01-01")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--dask-threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="invia-bench-universe-") as folder:
        root = Path(folder) / "candles"
        with simulator_process() as (url, token):
            download_figures(args, url, token, root)
        query_figures(args, root)


if __name__ == "__main__":
    main()
