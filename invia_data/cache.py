"""Range-aware Parquet cache of closed candles.

Where it lives: the ``cache_dir=`` argument, else the ``INVIA_CACHE_DIR`` environment variable,
else ``$XDG_CACHE_HOME/invia-data`` (``~/.cache/invia-data``). Below that root, one directory per
API environment (the host of the base URL, e.g. ``api.inviabroker.com`` or ``127.0.0.1_8123``)
holds a Hive-partitioned dataset that pandas, pyarrow, DuckDB, Dask and Spark read as it is::

    <root>/<environment>/exchange=MOEX/symbol=SBER/board=primary/tf=1min/year=2024/part.parquet
    <root>/<environment>/exchange=MOEX/symbol=SBER/board=primary/tf=1min/_coverage.json

``board=primary`` stands for "no board given" (the instrument's primary board). Each
``part.parquet`` has the columns ``time`` (timestamp[us, UTC]), ``open``, ``high``, ``low``,
``close`` (float64) and ``volume`` (int64). ``_coverage.json`` lists the half-open intervals
``[start, end)`` of unix seconds that were fetched completely, so that a range with no candles
(a night, a holiday) is not asked for again. Only closed candles are stored.

Writes go to a temporary file that is renamed over the target, so a reader never sees a half
written file; one lock per (environment, exchange, symbol, board, tf) serialises the
read-modify-write of threads in this process. A file that cannot be read is reported with a
:class:`CacheWarning`, removed, and its years are fetched again.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "CacheKey",
    "CacheWarning",
    "CandleCache",
    "Columns",
    "default_cache_dir",
    "environment_name",
    "merge_intervals",
    "missing_intervals",
    "resolve_cache_dir",
    "write_partition",
]

logger = logging.getLogger("invia_data.http")

Columns = dict[str, np.ndarray]
"""Candles as columns: ``time`` (int64 unix seconds), open/high/low/close (float64), volume
(int64), all of one length."""

Interval = tuple[int, int]

COLUMNS = ("time", "open", "high", "low", "close", "volume")
COLUMN_DTYPES = {"time": "int64", "open": "float64", "high": "float64", "low": "float64",
                 "close": "float64", "volume": "int64"}
PARQUET_SCHEMA = pa.schema([
    ("time", pa.timestamp("us", tz="UTC")),
    ("open", pa.float64()),
    ("high", pa.float64()),
    ("low", pa.float64()),
    ("close", pa.float64()),
    ("volume", pa.int64()),
])
PART_FILE = "part.parquet"
COVERAGE_FILE = "_coverage.json"  # "_" prefix: dataset readers skip it
PRIMARY_BOARD = "primary"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


class CacheWarning(UserWarning):
    """A cache file could not be read; it was discarded and its range is fetched again."""


# --- intervals ----------------------------------------------------------------------------------

def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping, non-adjacent intervals covering the same points."""
    merged: list[list[int]] = []
    for start, end in sorted((int(a), int(b)) for a, b in intervals if b > a):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def missing_intervals(start: int, end: int, covered: Sequence[Interval]) -> list[Interval]:
    """The parts of ``[start, end)`` that no interval of ``covered`` contains."""
    gaps: list[Interval] = []
    cursor = start
    for a, b in merge_intervals(covered):
        if b <= cursor:
            continue
        if a >= end:
            break
        if a > cursor:
            gaps.append((cursor, a))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def subtract_interval(intervals: Sequence[Interval], removed: Interval) -> list[Interval]:
    lo, hi = removed
    out: list[Interval] = []
    for a, b in intervals:
        if b <= lo or a >= hi:
            out.append((a, b))
            continue
        if a < lo:
            out.append((a, lo))
        if b > hi:
            out.append((hi, b))
    return out


# --- location -----------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "invia-data"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` if given, else ``$INVIA_CACHE_DIR``, else :func:`default_cache_dir`."""
    if cache_dir is not None:
        from .validate import local_path

        return local_path(cache_dir, "cache_dir")
    from_env = os.environ.get("INVIA_CACHE_DIR")
    return Path(from_env).expanduser() if from_env else default_cache_dir()


def environment_name(base_url: str) -> str:
    """A directory name for the API environment of ``base_url`` (its host and port)."""
    netloc = urlsplit(base_url).netloc or base_url
    netloc = netloc.rsplit("@", 1)[-1]  # never a user:password in a path
    return _safe(netloc.replace(":", "_")) or "default"


def _safe(value: str) -> str:
    return _UNSAFE.sub("_", value)


@dataclass(frozen=True)
class CacheKey:
    """What one cached series is: environment, exchange, symbol, board and timeframe label."""

    environment: str
    exchange: str
    symbol: str
    board: str | None
    tf: str

    def partition(self) -> Path:
        return partition_dir(self.exchange, self.symbol, self.board, self.tf)


def partition_dir(exchange: str, symbol: str, board: str | None, tf: str) -> Path:
    """``exchange=…/symbol=…/board=…/tf=…`` (values made safe for file names)."""
    return Path(f"exchange={_safe(exchange.upper())}", f"symbol={_safe(symbol.upper())}",
                f"board={_safe(board.upper()) if board else PRIMARY_BOARD}", f"tf={_safe(tf)}")


# --- columns <-> files --------------------------------------------------------------------------

def empty_columns() -> Columns:
    return {name: np.empty(0, dtype=dt) for name, dt in COLUMN_DTYPES.items()}


def years_of(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[s]").astype("datetime64[Y]").astype("int64") + 1970


def year_bounds(year: int) -> Interval:
    start = np.datetime64(f"{year:04d}-01-01", "s").astype("int64")
    end = np.datetime64(f"{year + 1:04d}-01-01", "s").astype("int64")
    return int(start), int(end)


def to_table(columns: Columns) -> pa.Table:
    arrays = [pa.array(columns["time"] * 1_000_000, type=pa.int64()).cast(PARQUET_SCHEMA[0].type)]
    arrays += [pa.array(columns[name], type=PARQUET_SCHEMA.field(name).type) for name in COLUMNS[1:]]
    return pa.Table.from_arrays(arrays, schema=PARQUET_SCHEMA)


def from_table(table: pa.Table) -> Columns:
    """A candle table (as written by :func:`write_partition`) -> columns."""
    micros = table.column("time").cast(pa.int64()).to_numpy()
    columns = {"time": (micros // 1_000_000).astype("int64")}
    for name in COLUMNS[1:]:
        columns[name] = table.column(name).to_numpy().astype(COLUMN_DTYPES[name], copy=False)
    return columns


def write_partition(path: Path, columns: Columns) -> None:
    """Write candle columns to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(to_table(columns), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def concat_columns(parts: Sequence[Columns]) -> Columns:
    parts = [p for p in parts if len(p["time"])]
    if not parts:
        return empty_columns()
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in COLUMNS}


def sort_unique(columns: Columns) -> Columns:
    """Ascending by time, one candle per time; of duplicates the last one given wins."""
    times = columns["time"]
    if len(times) == 0:
        return columns
    if np.all(times[1:] > times[:-1]):
        return columns
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    keep = np.ones(len(order), dtype=bool)
    keep[:-1] = sorted_times[1:] != sorted_times[:-1]  # last of each run of equal times
    order = order[keep]
    return {name: values[order] for name, values in columns.items()}


def select(columns: Columns, start: int, end: int) -> Columns:
    """The candles with ``start <= time < end``."""
    times = columns["time"]
    mask = (times >= start) & (times < end)
    if mask.all():
        return columns
    return {name: values[mask] for name, values in columns.items()}


# --- the cache ----------------------------------------------------------------------------------

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


class CandleCache:
    """Closed candles on disk, with the intervals known to be complete."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_cache_dir(root)

    def __repr__(self) -> str:
        return f"CandleCache({str(self.root)!r})"

    def series_dir(self, key: CacheKey) -> Path:
        return self.root / _safe(key.environment) / key.partition()

    def coverage(self, key: CacheKey) -> list[Interval]:
        """The intervals ``[start, end)`` (unix seconds) whose candles are all in the cache."""
        with _lock_for(self.series_dir(key)):
            return self._load_coverage(self.series_dir(key))

    def missing(self, key: CacheKey, start: int, end: int) -> list[Interval]:
        return missing_intervals(start, end, self.coverage(key))

    def read(self, key: CacheKey, start: int, end: int) -> Columns:
        """Cached candles with ``start <= time < end``, ascending.

        An unreadable year file is discarded (with a :class:`CacheWarning`) and its year taken
        out of the coverage, so the next :meth:`missing` reports it.
        """
        return self.lookup(key, start, end)[0]

    def lookup(self, key: CacheKey, start: int, end: int) -> tuple[Columns, list[Interval]]:
        """(:meth:`read`, :meth:`missing`) under one lock, so that the candles and the gaps
        agree even while other threads store."""
        folder = self.series_dir(key)
        with _lock_for(folder):
            columns = self._read(folder, start, end)
            return columns, missing_intervals(start, end, self._load_coverage(folder))

    def _read(self, folder: Path, start: int, end: int) -> Columns:
        if end <= start:
            return empty_columns()
        first, last = (int(y) for y in years_of(np.array([start, end - 1], dtype="int64")))
        parts = []
        for year in range(first, last + 1):
            path = folder / f"year={year}" / PART_FILE
            if path.exists():
                parts.append(self._read_part(folder, path, year))
        return select(concat_columns(parts), start, end)

    def store(self, key: CacheKey, columns: Columns, covered: Iterable[Interval]) -> None:
        """Merge closed candles into their year files and add ``covered`` to the coverage.

        ``columns`` must hold every closed candle of ``covered`` (and only closed ones).
        """
        covered = merge_intervals(covered)
        if not covered:
            return
        folder = self.series_dir(key)
        with _lock_for(folder):
            times = columns["time"]
            years = years_of(times)
            for year in np.unique(years):
                path = folder / f"year={int(year)}" / PART_FILE
                mask = years == year
                new = {name: values[mask] for name, values in columns.items()}
                old = self._read_part(folder, path, int(year)) if path.exists() else None
                if old is None or len(old["time"]) == 0:
                    merged = sort_unique(new)
                else:
                    merged = sort_unique(concat_columns([old, new]))
                write_partition(path, merged)
            coverage = self._load_coverage(folder)  # a corrupt year may have been dropped above
            self._save_coverage(folder, merge_intervals(coverage + covered))
        logger.debug("cache: stored %d candles of %s/%s %s", len(columns["time"]), key.exchange,
                     key.symbol, key.tf)

    # -- files --

    def _read_part(self, folder: Path, path: Path, year: int) -> Columns:
        try:
            return from_table(pq.read_table(path, schema=PARQUET_SCHEMA))
        except Exception as exc:  # any unreadable file: a truncated write, foreign bytes
            self._discard_year(folder, path, year, exc)
            return empty_columns()

    def _discard_year(self, folder: Path, path: Path, year: int, exc: Exception) -> None:
        message = f"discarding unreadable cache file {path} ({type(exc).__name__}); refetching"
        logger.warning("cache: %s", message)
        warnings.warn(message, CacheWarning, stacklevel=4)
        path.unlink(missing_ok=True)
        coverage = subtract_interval(self._load_coverage(folder), year_bounds(year))
        self._save_coverage(folder, coverage)

    def _load_coverage(self, folder: Path) -> list[Interval]:
        path = folder / COVERAGE_FILE
        if not path.exists():
            return []
        try:
            data = orjson.loads(path.read_bytes())
            return merge_intervals((int(a), int(b)) for a, b in data["intervals"])
        except Exception as exc:  # unreadable metadata: forget the coverage, keep the data
            message = f"discarding unreadable cache metadata {path} ({type(exc).__name__})"
            logger.warning("cache: %s", message)
            warnings.warn(message, CacheWarning, stacklevel=4)
            path.unlink(missing_ok=True)
            return []

    def _save_coverage(self, folder: Path, intervals: list[Interval]) -> None:
        payload = {"version": 1, "intervals": [[a, b] for a, b in intervals]}
        _write_bytes_atomic(folder / COVERAGE_FILE, orjson.dumps(payload))
