"""Downloads of many candle series into one dataset (``dataset.py`` describes its layout).

:func:`download_universe` lists the instruments of an exchange (filtered by market, board and
type) and downloads every series; :func:`history_to_dataset` does the same for a list of
symbols. Both run one engine, :func:`download`:

* **What is missing.** Each series folder keeps a coverage manifest (``_coverage.json``), so a
  second run asks only for the ranges not yet downloaded, and a finished one asks for nothing.
  Only closed candles are written: the range stops before the candle still open at the server's
  ``now``.
* **Requests.** The missing ranges are cut per calendar year, then into pages of
  ``history.CANDLES_PER_REQUEST`` candles (the pages of ``history()``), fetched by
  ``history.fetch_range`` in one thread pool of ``max_workers`` through the client's rate
  limiter (100 requests/s). A window of a few series-years is in flight at a time, so memory
  holds a handful of years of one series, however large the universe.
* **Writes.** When every page of a series-year has arrived, the year is merged into its
  ``part.parquet`` (temporary file, then rename) and the manifest extended (also atomically),
  in that order: an interruption (Ctrl-C, a crash) at any moment leaves complete files, and at
  worst a year written but not yet in the manifest, which the next run fetches again and merges
  without duplicates.
* **Failures.** A series whose request fails (unknown instrument, server errors after the
  retries) is reported in the summary and the others go on.
* **Progress.** One tqdm bar over all requests (hence the ETA), with the instruments finished
  and the candles written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import history as history_module
from . import validate
from .cache import PART_FILE, Columns, concat_columns, sort_unique, years_of
from .dataset import DatasetStore, series_key
from .errors import InvalidArgument, InviaError
from .history import (
    DEFAULT_FORMAT,
    Query,
    _instruments,
    _symbol_list,
    _year_pieces,
    closed_before,
    fetch_range,
    server_now,
    split_range,
)
from .schema import normalize_format
from .timeframes import label, to_seconds
from .times import TimeLike, to_epoch_seconds

if TYPE_CHECKING:
    from .http import Http

__all__ = ["SUMMARY_COLUMNS", "Series", "download", "download_universe", "history_to_dataset",
           "select_instruments"]

logger = logging.getLogger("invia_data.http")

SUMMARY_COLUMNS = ["exchange", "symbol", "board", "status", "candles", "files", "requests",
                   "error"]
FILE_COLUMNS = ["symbol", "year", "candles", "path"]
MAX_WORKERS = 64  # parallel requests: far above what the rate limit lets through
UNITS_IN_FLIGHT_PER_WORKER = 2  # series-years whose pages are queued or running, per worker


@dataclass(frozen=True)
class Series:
    """One instrument to download: exchange, symbol and board (None: its primary board)."""

    exchange: str
    symbol: str
    board: str | None = None
    # the board of an instrument downloaded as "primary" (board None), for the summary
    primary: str | None = field(default=None, compare=False)


@dataclass
class _Outcome:
    """What happened to one series during a download."""

    series: Series
    candles: int = 0
    files: int = 0
    requests: int = 0
    missing: bool = False
    had_candles: bool = False  # the dataset held some of the series before this run
    error: BaseException | None = None
    written: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        if not self.missing or (not self.candles and self.had_candles):
            return "complete"  # a rerun that found nothing new since the last one is up to date
        return "written" if self.candles else "no candles"

    def row(self) -> dict[str, Any]:
        error = None if self.error is None else f"{type(self.error).__name__}: {self.error}"
        return {"exchange": self.series.exchange, "symbol": self.series.symbol,
                "board": self.series.board or self.series.primary, "status": self.status, "candles": self.candles,
                "files": self.files, "requests": self.requests, "error": error}


@dataclass
class _Unit:
    """One series-year: its missing ranges, cut into pages."""

    index: int
    year_range: tuple[int, int]
    gaps: list[tuple[int, int]]
    pages: list[tuple[int, int]]
    futures: list[Future[Columns]] = field(default_factory=list)


# --- the engine ---------------------------------------------------------------------------------

def download(http: Http, series: Sequence[Series], path: str | os.PathLike[str],
             tf: str | int = "1min", start: TimeLike | None = None, end: TimeLike | None = None,
             *, format: str | None = None, progress: bool | None = None, max_workers: int = 4,
             description: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Download the closed candles of ``series`` in ``[start, end)`` into the dataset at
    ``path``; returns (summary: one row per series, files: one row per file written).

    ``start`` is required; ``end`` defaults to the server's now. See the module docstring."""
    outcomes, root, tf_label, seconds = _download(http, series, path, tf, start, end, format,
                                                  progress, max_workers, description)
    summary = pd.DataFrame([o.row() for o in outcomes], columns=SUMMARY_COLUMNS)
    for name in ("candles", "files", "requests"):
        summary[name] = summary[name].astype("int64")
    summary.attrs = {"path": str(root), "tf": tf_label, "seconds": seconds,
                     "candles": int(summary["candles"].sum())}
    written = pd.DataFrame([row for o in outcomes for row in o.written], columns=FILE_COLUMNS)
    return summary, written


def _download(http: Any, series: Sequence[Series], path: str | os.PathLike[str],
              tf: str | int, start: TimeLike | None, end: TimeLike | None, format: str | None,
              progress: bool | None, max_workers: int, description: str | None
              ) -> tuple[list[_Outcome], Path, str, float]:
    tf_seconds = to_seconds(tf)
    fmt = normalize_format(DEFAULT_FORMAT if format is None else format)
    root = _dataset_root(path)
    if start is None:
        raise InvalidArgument("start: a download needs a start (e.g. start='2024-01-01')")
    lo = to_epoch_seconds(start, name="start")
    hi = None if end is None else to_epoch_seconds(end, name="end")
    if hi is not None and lo > hi:
        raise InvalidArgument(f"start ({start!r}) is after end ({end!r})")
    if progress is not None and not isinstance(progress, bool):
        raise InvalidArgument(f"progress: expected None, True or False, got {progress!r}")
    validate.count(max_workers, "max_workers", high=MAX_WORKERS)
    now = server_now(http)  # the server's clock decides what is closed, never the local one
    hi = min(now + 1 if hi is None else hi, closed_before(tf_seconds, now))
    store = DatasetStore(root)
    tf_label = label(tf_seconds)
    outcomes = [_Outcome(s) for s in series]
    units = _plan_units(store, series, tf_label, tf_seconds, lo, hi, outcomes)
    run = _Run(http, store, series, outcomes, tf_seconds, tf_label, fmt, max_workers)
    run.go(units, progress, description or f"download {tf_label}")
    return outcomes, root, tf_label, run.seconds


def _dataset_root(path: str | os.PathLike[str]) -> Path:
    root = validate.local_path(path)
    if root.exists() and not root.is_dir():
        raise InvalidArgument(f"path: {str(root)!r} is a file; a dataset is a folder")
    return root


def _plan_units(store: DatasetStore, series: Sequence[Series], tf_label: str, tf_seconds: int,
                lo: int, hi: int, outcomes: list[_Outcome]) -> list[_Unit]:
    """The series-years with something missing, in series order."""
    units = []
    for i, item in enumerate(series):
        key = series_key(item.exchange, item.symbol, item.board, tf_label)
        outcomes[i].had_candles = bool(store.coverage(key))
        for year_lo, year_hi in _year_pieces(lo, hi):
            gaps = store.missing(key, year_lo, year_hi)
            if not gaps:
                continue
            pages = [page for gap in gaps
                     for page in split_range(*gap, tf_seconds,
                                             history_module.CANDLES_PER_REQUEST)]
            units.append(_Unit(i, (year_lo, year_hi), gaps, pages))
            outcomes[i].missing = True
    return units


class _Run:
    """One download in progress: the pool, the window of units in flight, the bar."""

    def __init__(self, http: Any, store: DatasetStore, series: Sequence[Series],
                 outcomes: list[_Outcome], tf_seconds: int, tf_label: str, fmt: str,
                 max_workers: int) -> None:
        self.http = http
        self.store = store
        self.series = series
        self.outcomes = outcomes
        self.tf_seconds = tf_seconds
        self.tf_label = tf_label
        self.fmt = fmt
        self.max_workers = max_workers
        self.seconds = 0.0
        self.candles = 0
        self._bar: Any = None
        self._bar_lock = threading.Lock()
        self._left: dict[int, int] = {}

    def go(self, units: list[_Unit], progress: bool | None, description: str) -> None:
        started = time.perf_counter()
        pages = sum(len(u.pages) for u in units)
        for unit in units:
            self._left[unit.index] = self._left.get(unit.index, 0) + 1
        show = pages > history_module.PROGRESS_MIN_REQUESTS if progress is None else progress
        if show and pages:
            self._bar = _progress_bar(pages, description)
            self._show_counts()
        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="invia-download")
        window: deque[_Unit] = deque()
        queue = deque(units)
        try:
            while queue or window:
                while queue and len(window) < self.max_workers * UNITS_IN_FLIGHT_PER_WORKER:
                    unit = queue.popleft()
                    if self.outcomes[unit.index].error is None:
                        self._submit(pool, unit)
                        window.append(unit)
                    else:
                        self._finish_series(unit.index)
                if window:
                    self._complete(window.popleft())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            self.seconds = time.perf_counter() - started
            if self._bar is not None:
                self._bar.close()

    def _submit(self, pool: ThreadPoolExecutor, unit: _Unit) -> None:
        item = self.series[unit.index]
        query = Query(item.symbol, item.exchange, item.board, self.tf_seconds, self.fmt)
        for a, b in unit.pages:
            future = pool.submit(fetch_range, self.http, query, a, b)
            future.add_done_callback(self._page_done)
            unit.futures.append(future)

    def _page_done(self, future: Future[Columns]) -> None:
        if self._bar is not None and not future.cancelled():
            with self._bar_lock:
                self._bar.update(1)

    def _complete(self, unit: _Unit) -> None:
        """Wait for a unit's pages, then write its year (or record the failure)."""
        outcome = self.outcomes[unit.index]
        try:
            parts = [future.result() for future in unit.futures]
        except InviaError as exc:
            if outcome.error is None:
                outcome.error = exc
                logger.warning("download: %s:%s failed: %s", outcome.series.exchange,
                               outcome.series.symbol, exc)
            for future in unit.futures:
                future.cancel()
            self._finish_series(unit.index)
            return
        outcome.requests += len(parts)
        if outcome.error is None:
            self._write(unit, sort_unique(concat_columns(parts)))
        self._finish_series(unit.index)

    def _write(self, unit: _Unit, columns: Columns) -> None:
        item = self.series[unit.index]
        outcome = self.outcomes[unit.index]
        key = series_key(item.exchange, item.symbol, item.board, self.tf_label)
        self.store.store(key, columns, unit.gaps)
        n = len(columns["time"])
        if n:
            year = int(years_of(np.array([unit.year_range[0]], dtype="int64"))[0])
            target = self.store.series_dir(key) / f"year={year}" / PART_FILE
            total = _rows_in(target)
            outcome.candles += n
            outcome.files += 1
            outcome.written.append({"symbol": item.symbol, "year": year, "candles": total,
                                    "path": str(target)})
        self.candles += n

    def _finish_series(self, index: int) -> None:
        self._left[index] -= 1
        self._show_counts()

    def _show_counts(self) -> None:
        if self._bar is None:
            return
        done = sum(1 for i in range(len(self.series)) if self._left.get(i, 0) == 0)
        with self._bar_lock:
            self._bar.set_postfix(instruments=f"{done}/{len(self.series)}",
                                  candles=_short(self.candles), refresh=False)


def _rows_in(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _short(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.0f}k"
    return str(n)


def _progress_bar(total: int, description: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="req", dynamic_ncols=True)


# --- instruments ---------------------------------------------------------------------------------

def _names(value: str | Iterable[str] | None, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, (list, tuple, set)):
        items = list(value)
    else:
        raise InvalidArgument(f"{name}: expected a name or a list of names, got {value!r}")
    if not items:
        raise InvalidArgument(f"{name}: the list is empty (pass None for no filter)")
    return [validate.board(v, name) or "" for v in items]


def select_instruments(instruments: pd.DataFrame, *, boards: str | Iterable[str] | None = None,
                       types: str | Iterable[str] | None = None) -> list[Series]:
    """The series to download from an instruments frame (``inv.instruments()``): rows on one of
    ``boards`` and of one of ``types`` (case-insensitive; None keeps all). An instrument on its
    primary board is downloaded as ``board=primary`` (what ``history()`` asks by default)."""
    board_names = _names(boards, "boards")
    type_names = _names(types, "types")
    picked: list[Series] = []
    for row in instruments.itertuples(index=False):
        board = str(row.board or "").upper()
        if board_names is not None and board not in board_names:
            continue
        if type_names is not None and str(row.type or "").upper() not in type_names:
            continue
        primary = str(getattr(row, "primary_board", "") or board).upper()
        item = Series(str(row.exchange).upper(), str(row.symbol),
                      None if not board or board == primary else board, primary=board or None)
        if item not in picked:
            picked.append(item)
    return picked


def download_universe(list_instruments: Callable[[str | None], pd.DataFrame], http: Http,
                      path: str | os.PathLike[str], *, exchange: str = "MOEX",
                      markets: str | Iterable[str] | None = None,
                      boards: str | Iterable[str] | None = None,
                      types: str | Iterable[str] | None = None, tf: str | int = "1min",
                      start: TimeLike | None = None, end: TimeLike | None = None,
                      format: str | None = None, progress: bool | None = None,
                      max_workers: int = 4) -> pd.DataFrame:
    """List the instruments of ``exchange`` (``list_instruments(market)`` per market, all when
    ``markets`` is None), keep those on ``boards`` and of ``types``, and download their candles
    into the dataset at ``path``. Returns the summary frame (one row per instrument: exchange,
    symbol, board, status ``written``/``complete``/``no candles``/``failed``, candles written,
    files written, requests, error)."""
    validate.exchange(exchange)
    to_seconds(tf)
    normalize_format(DEFAULT_FORMAT if format is None else format)
    _dataset_root(path)
    if start is None:
        raise InvalidArgument("start: a download needs a start (e.g. start='2024-01-01')")
    market_names = _names(markets, "markets")
    asked: list[str | None] = list(market_names) if market_names else [None]  # None: all
    frames = [list_instruments(m) for m in asked]
    listed = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    series = select_instruments(listed, boards=boards, types=types)
    if not series and not listed.empty:
        raise InvalidArgument(f"no instrument of {exchange} matches markets={markets!r}, "
                              f"boards={boards!r}, types={types!r}; the boards listed are "
                              f"{', '.join(sorted(set(listed['board'].dropna())))}")
    summary, _ = download(http, series, path, tf, start, end, format=format, progress=progress,
                          max_workers=max_workers, description=f"{exchange} {label(to_seconds(tf))}")
    return summary


def history_to_dataset(http: Http, symbols: str | Sequence[str], path: str | os.PathLike[str],
                       tf: str | int = "1min", start: TimeLike | None = None,
                       end: TimeLike | None = None, *, exchange: str = "MOEX",
                       board: str | None = None, format: str | None = None,
                       progress: bool | None = None, max_workers: int = 4) -> pd.DataFrame:
    """Download the closed candles of ``symbols`` into the dataset at ``path`` (layout in
    ``dataset.py``), resuming from its coverage manifest. Without ``start``, the window of
    ``history()`` before ``end``. Returns one row per file written: symbol, year, candles (in the
    file after the merge), path. When a symbol fails, the others are still written and its
    error is raised at the end."""
    root = _dataset_root(path)
    names, _ = _symbol_list(symbols)
    exchanges, bare = _instruments(names, validate.exchange(exchange))
    board = validate.board(board)
    if start is None:
        ends = None if end is None else to_epoch_seconds(end, name="end")
        stop = server_now(http) + 1 if ends is None else ends
        start = stop - history_module.default_window(to_seconds(tf))
    series = [Series(ex, s, board) for ex, s in zip(exchanges, bare, strict=True)]
    outcomes, _, _, _ = _download(http, series, root, tf, start, end, format, progress,
                                  max_workers, f"export {label(to_seconds(tf))}")
    for outcome in outcomes:
        if outcome.error is not None:
            raise outcome.error
    return pd.DataFrame([row for o in outcomes for row in o.written], columns=FILE_COLUMNS)
