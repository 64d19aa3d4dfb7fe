"""Candle datasets on disk: the layout that ``download_universe`` and ``history_to_dataset``
write, and :func:`open`, which reads one back with pandas, Dask or DuckDB.

Layout (Hive-partitioned Parquet, the same as the candle cache below its environment folder)::

    <path>/exchange=MOEX/symbol=SBER/board=primary/tf=1min/year=2024/part.parquet
    <path>/exchange=MOEX/symbol=SBER/board=primary/tf=1min/_coverage.json

One folder per series (exchange, symbol, board, timeframe); ``board=primary`` is the
instrument's primary board (no board asked). Each ``part.parquet`` holds one calendar year (UTC)
of closed candles, ascending and unique by ``time``: ``time`` (timestamp[us, UTC]), ``open``,
``high``, ``low``, ``close`` (float64), ``volume`` (int64). ``_coverage.json`` is the manifest of
the series: the half-open ranges ``[start, end)`` of unix seconds downloaded completely, nights
and holidays included, so a second download asks only for what is missing. Files are written to
a temporary name and renamed, so an interrupted download leaves no half-written file; the
manifest is written after the data it describes.

Readers that know nothing of invia-data read the folder as it is (``pd.read_parquet(path)``,
``duckdb.read_parquet(f"{path}/**/*.parquet", hive_partitioning=True)``,
``dask.dataframe.read_parquet(path)``, Spark); the partition values come back as columns.
:func:`open` adds pruning by symbol, board, timeframe and year before any file is opened, and
returns the frame of ``history()``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .cache import (
    COLUMNS,
    PARQUET_SCHEMA,
    PART_FILE,
    PRIMARY_BOARD,
    CacheKey,
    CandleCache,
    years_of,
)
from .errors import InvalidArgument
from .timeframes import label, to_seconds
from .times import TimeLike, check_tz, to_epoch_seconds

__all__ = [
    "ENGINES",
    "DatasetStore",
    "Location",
    "SeriesFile",
    "files",
    "location",
    "open",
    "series_key",
    "symbols_in",
    "timeframes",
]

ENGINES = ("pandas", "dask", "duckdb")
SCALE_HINT = "pip install 'invia-data[scale]'"
_FAR_FUTURE = 2**40
CANDLE_COLUMNS = COLUMNS[1:]  # open, high, low, close, volume


class DatasetStore(CandleCache):
    """A candle dataset written like the cache (merge, coverage manifest, atomic files), with
    the series folders directly below ``root`` (no environment folder)."""

    def series_dir(self, key: CacheKey) -> Path:
        return self.root / key.partition()


def series_key(exchange: str, symbol: str, board: str | None, tf: str) -> CacheKey:
    """The key of one series of a dataset (the environment is not part of a dataset's path)."""
    return CacheKey("", exchange, symbol, board, tf)


@dataclass(frozen=True)
class Location:
    """Where a dataset is: a local folder (``fs`` None), or a URL (``s3://bucket/candles``,
    ``gs://…``, ``memory://…``) read through an fsspec filesystem, whose paths are ``root``
    and below without the protocol."""

    root: str
    fs: Any = None

    def join(self, folder: str, *names: str) -> str:
        if self.fs is None:
            return os.path.join(folder, *names)
        return "/".join([folder.rstrip("/"), *names])

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path) if self.fs is None else bool(self.fs.isdir(path))

    def is_file(self, path: str) -> bool:
        return os.path.isfile(path) if self.fs is None else bool(self.fs.isfile(path))

    def folders(self, folder: str, name: str) -> list[tuple[str, str]]:
        """The ``name=value`` sub-folders of ``folder`` as (value, path), sorted by value."""
        prefix = f"{name}="
        if not self.is_dir(folder):
            return []
        if self.fs is None:
            found = [(entry.name[len(prefix):], entry.path) for entry in os.scandir(folder)
                     if entry.is_dir() and entry.name.startswith(prefix)]
        else:
            found = []
            for entry in self.fs.ls(folder, detail=True):
                base = entry["name"].rstrip("/").rsplit("/", 1)[-1]
                if entry["type"] == "directory" and base.startswith(prefix):
                    found.append((base[len(prefix):], entry["name"].rstrip("/")))
        return sorted(found)

    def url(self, path: str) -> str:
        """``path`` as other readers name it (with the protocol for a remote file)."""
        return path if self.fs is None else self.fs.unstrip_protocol(path)


def location(path: str | os.PathLike[str] | Location,
             storage_options: dict[str, Any] | None = None) -> Location:
    """The :class:`Location` of a dataset path or URL (a URL needs fsspec, which comes with
    the ``scale`` extra, and the package of its protocol, e.g. s3fs for ``s3://``)."""
    if isinstance(path, Location):
        return path
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InvalidArgument(f"path: expected the folder of a dataset, got {path!r}")
    text = os.fspath(path)
    if "://" not in text:
        return Location(str(Path(text).expanduser()))
    try:
        from fsspec.core import url_to_fs
    except ImportError as exc:
        raise InvalidArgument(f"path: a URL ({text!r}) is read through fsspec, which is not "
                              f"installed: {SCALE_HINT}") from exc
    try:
        fs, root = url_to_fs(text, **(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise InvalidArgument(f"path: cannot open {text!r} ({exc})") from exc
    return Location(root.rstrip("/") or "/", fs)


@dataclass(frozen=True)
class SeriesFile:
    """One ``part.parquet`` of a dataset and the partition values of its path."""

    path: str
    exchange: str
    symbol: str
    board: str
    tf: str
    year: int


# --- finding the files ----------------------------------------------------------------------------

def timeframes(path: str | os.PathLike[str] | Location) -> list[str]:
    """The timeframe labels present in the dataset at ``path``."""
    where = _root(path)
    return sorted({tf for _, ex in where.folders(where.root, "exchange")
                   for _, sym in where.folders(ex, "symbol")
                   for _, bd in where.folders(sym, "board")
                   for tf, _ in where.folders(bd, "tf")})


def files(path: str | os.PathLike[str] | Location, *, symbols: str | Sequence[str] | None = None,
          start: TimeLike | None = None, end: TimeLike | None = None, tf: str | int | None = None,
          exchange: str | None = None, board: str | None = None) -> list[SeriesFile]:
    """The files of the dataset at ``path`` that :func:`open` reads for these arguments: only
    the folders of the symbols, boards, timeframe and years asked for are listed (partition
    pruning), in the order symbol, exchange, board, year."""
    where = _root(path)
    tf_label = _timeframe(where, tf)
    wanted = _wanted_symbols(symbols, exchange)
    lo, hi = _range(start, end)
    first, last = _years(lo, hi)
    board_name = None if board is None else _board_dir(board)
    found: list[SeriesFile] = []
    for ex, ex_dir in where.folders(where.root, "exchange"):
        if exchange is not None and ex != exchange.strip().upper():
            continue
        for sym, sym_dir in where.folders(ex_dir, "symbol"):
            if wanted is not None and (ex, sym) not in wanted and (None, sym) not in wanted:
                continue
            for bd, bd_dir in where.folders(sym_dir, "board"):
                if board_name is not None and bd != board_name:
                    continue
                for year, year_dir in where.folders(where.join(bd_dir, f"tf={tf_label}"),
                                                    "year"):
                    if year.isdigit() and first <= int(year) <= last:
                        part = where.join(year_dir, PART_FILE)
                        if where.is_file(part):
                            found.append(SeriesFile(part, ex, sym, bd, tf_label, int(year)))
    order = {name: i for i, name in enumerate(wanted or ())}
    found.sort(key=lambda f: (order.get((f.exchange, f.symbol), order.get((None, f.symbol), 0)),
                              f.symbol, f.exchange, f.board, f.year))
    return found


def _root(path: str | os.PathLike[str] | Location) -> Location:
    where = location(path)
    if not where.is_dir(where.root):
        raise InvalidArgument(f"path: {where.url(where.root)!r} is not a folder; write a "
                              "dataset there first with inv.download_universe() or "
                              "inv.history_to_dataset()")
    return where


def _timeframe(where: Location, tf: str | int | None) -> str:
    present = timeframes(where)
    if tf is not None:
        return label(to_seconds(tf))
    if len(present) == 1:
        return present[0]
    if not present:
        raise InvalidArgument(f"path: {where.url(where.root)!r} holds no candle series "
                              "(no tf=… folder)")
    raise InvalidArgument(f"tf: the dataset holds several timeframes ({', '.join(present)}); "
                          "pass tf= to pick one")


def _wanted_symbols(symbols: str | Sequence[str] | None, exchange: str | None
                    ) -> list[tuple[str | None, str]] | None:
    """``[(exchange or None, SYMBOL), ...]`` in the order given; None for every symbol."""
    if symbols is None:
        return None
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    if not names:
        raise InvalidArgument("symbols: the list is empty (pass None for every symbol)")
    wanted: list[tuple[str | None, str]] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument(f"symbols: expected tickers like 'SBER' or 'ITS:SOGN', got {name!r}")
        ex, _, sym = name.strip().rpartition(":")
        pair = ((ex or exchange or None), sym.upper())
        if pair[0] is not None:
            pair = (pair[0].upper(), pair[1])
        if pair not in wanted:
            wanted.append(pair)
    return wanted


def _board_dir(board: str) -> str:
    if not isinstance(board, str) or not board.strip():
        raise InvalidArgument(f"board: expected a board like 'TQBR' or 'primary', got {board!r}")
    text = board.strip()
    return PRIMARY_BOARD if text.lower() == PRIMARY_BOARD else text.upper()


def _range(start: TimeLike | None, end: TimeLike | None) -> tuple[int, int]:
    lo = 0 if start is None else to_epoch_seconds(start, name="start")
    hi = _FAR_FUTURE if end is None else to_epoch_seconds(end, name="end")
    if lo > hi:
        raise InvalidArgument(f"start ({start!r}) is after end ({end!r})")
    return lo, hi


def _years(lo: int, hi: int) -> tuple[int, int]:
    if hi <= lo:
        return 1, 0  # an empty range: no year
    first = int(years_of(np.array([lo], dtype="int64"))[0]) if lo > 0 else 0
    last = int(years_of(np.array([min(hi, _FAR_FUTURE) - 1], dtype="int64"))[0])
    return first, last


# --- reading --------------------------------------------------------------------------------------

def read_table(path: str, fs: Any = None) -> pa.Table:
    """One file of a dataset as an Arrow table of the candle schema (``fs``: its fsspec
    filesystem)."""
    return pq.read_table(path, schema=PARQUET_SCHEMA, filesystem=fs)


def table_frame(table: pa.Table, lo: int = 0, hi: int = _FAR_FUTURE) -> pd.DataFrame:
    """Candle table(s) -> the frame of one symbol's ``history()`` (``time`` index, tz-aware UTC
    in ns), the rows with ``lo <= time < hi``; columns stay zero-copy where Arrow allows."""
    micros = table.column("time").cast(pa.int64()).to_numpy()
    keep = None
    if len(micros) and (micros[0] < lo * 1_000_000 or micros[-1] >= hi * 1_000_000):
        keep = (micros >= lo * 1_000_000) & (micros < hi * 1_000_000)
        micros = micros[keep]
    index = pd.DatetimeIndex((micros * 1000).view("datetime64[ns]"), name="time").tz_localize("UTC")
    data = {}
    for name in CANDLE_COLUMNS:
        values = table.column(name).to_numpy()
        data[name] = values[keep] if keep is not None else values
    return pd.DataFrame(data, index=index, copy=False)


def _empty_frame() -> pd.DataFrame:
    return table_frame(PARQUET_SCHEMA.empty_table())


def open(path: str | os.PathLike[str], engine: str = "pandas", *,
         symbols: str | Sequence[str] | None = None, start: TimeLike | None = None,
         end: TimeLike | None = None, tf: str | int | None = None, exchange: str | None = None,
         board: str | None = None, tz: str | None = None, connection: Any = None,
         storage_options: dict[str, Any] | None = None) -> Any:
    """Read the candle dataset at ``path``, opening only the files of the symbols, timeframe and
    years asked for (:func:`files` lists them).

    ``symbols``: a ticker (``"SBER"``, ``"ITS:SOGN"``), a list, or None for all. ``start``
    (inclusive) / ``end`` (exclusive): any time ``history()`` takes, naive = UTC. ``tf``: the
    timeframe (needed only when the dataset holds several). ``exchange``/``board``: narrow
    further (``board="primary"`` for the primary board).

    ``engine``:

    * ``"pandas"``: the DataFrame of ``history()`` for the same arguments: index ``time``
      (tz-aware UTC) for one ticker given as a string, else (``symbol``, ``time``); ``open``,
      ``high``, ``low``, ``close`` float64, ``volume`` int64.
    * ``"dask"``: a lazy ``dask.dataframe`` with one partition per file, index ``time``,
      columns ``symbol`` (unless one ticker was given as a string) and the candle columns, the
      same dtypes. Its divisions are known when the files do not overlap in time (one symbol,
      its years in order); the files of several symbols overlap, so there they are unknown.
    * ``"duckdb"``: a lazy ``duckdb`` relation with columns ``symbol``, ``time``
      (TIMESTAMPTZ, on a connection whose TimeZone is UTC), ``open``, ``high``, ``low``,
      ``close`` (DOUBLE), ``volume`` (BIGINT). Rows come in file order (symbols as listed,
      then time), which DuckDB keeps without sorting (``preserve_insertion_order``), so
      ``.df().set_index(["symbol", "time"])`` is the pandas form (time in microseconds). ``connection``: the DuckDB
      connection to use (default a new in-memory one).

    ``path`` may be a URL of object storage (``"s3://bucket/candles"``, ``"gs://…"``), read
    through fsspec with ``storage_options`` (credentials, endpoint), so the same call works on
    every machine of a Dask cluster (DuckDB is given the same filesystem).

    Dask and DuckDB come with the optional extra: ``pip install 'invia-data[scale]'``.
    Raises InvalidArgument for an unknown engine, a missing extra, a path that is not a
    dataset, a symbol not in it, or a bare symbol that the dataset holds on two boards or
    exchanges (pass ``board=``/``exchange=``).
    """
    if engine not in ENGINES:
        raise InvalidArgument(f"engine: expected one of {', '.join(map(repr, ENGINES))}, "
                              f"got {engine!r}")
    check_tz(tz)
    single = isinstance(symbols, str)
    where = location(path, storage_options)
    parts = files(where, symbols=symbols, start=start, end=end, tf=tf, exchange=exchange,
                  board=board)
    series = _series(parts, symbols, exchange, board, where)
    lo, hi = _range(start, end)
    if engine == "pandas":
        return _pandas(series, parts, single, lo, hi, tz, _timeframe(where, tf), where.fs)
    if engine == "dask":
        return _dask(parts, single, lo, hi, tz, where.fs)
    return _duckdb([where.url(part.path) for part in parts], lo, hi, connection, where.fs)


def _series(parts: list[SeriesFile], symbols: str | Sequence[str] | None, exchange: str | None,
            board: str | None, where: Location) -> list[str]:
    """The symbols read, in order; refuses a symbol asked that has no file and a bare symbol
    present on two boards or exchanges."""
    places: dict[str, set[tuple[str, str]]] = {}
    for part in parts:
        places.setdefault(part.symbol, set()).add((part.exchange, part.board))
    twice = {s: p for s, p in places.items() if len(p) > 1}
    if twice:
        symbol, places_of_symbol = next(iter(sorted(twice.items())))
        spots = ", ".join(f"{ex} board {bd}" for ex, bd in sorted(places_of_symbol))
        raise InvalidArgument(f"symbols: {symbol} is in the dataset on {spots}; pass board= or "
                              "exchange= to pick one")
    if symbols is None:
        return list(places)
    wanted = [sym for _, sym in _wanted_symbols(symbols, exchange) or []]
    missing = [s for s in wanted
               if s not in places and not _has_series(where, s, exchange, board)]
    if missing:
        raise InvalidArgument(f"symbols: {', '.join(missing)} not in the dataset at "
                              f"{where.url(where.root)!r} for this timeframe; download it first")
    return list(dict.fromkeys(wanted))


def _has_series(where: Location, symbol: str, exchange: str | None, board: str | None) -> bool:
    """Whether some series folder of ``symbol`` exists (it may hold no year in the range)."""
    for ex, ex_dir in where.folders(where.root, "exchange"):
        if exchange is not None and ex != exchange.strip().upper():
            continue
        for bd, _ in where.folders(where.join(ex_dir, f"symbol={symbol}"), "board"):
            if board is None or bd == _board_dir(board):
                return True
    return False


def _pandas(series: list[str], parts: list[SeriesFile], single: bool, lo: int, hi: int,
            tz: str | None, tf_label: str, fs: Any) -> pd.DataFrame:
    by_symbol: dict[str, list[pa.Table]] = {s: [] for s in series}
    for part in parts:
        by_symbol[part.symbol].append(read_table(part.path, fs))
    frames = [table_frame(pa.concat_tables(by_symbol[s]), lo, hi) if by_symbol[s]
              else _empty_frame() for s in series]
    if single:
        frame, opened = frames[0], None
    else:
        frame = pd.concat(frames, keys=series, names=["symbol", "time"]) if frames else \
            _empty_multi()
        opened = dict.fromkeys(series)
    if tz is not None:
        from .history import _to_zone

        frame = _to_zone(frame, tz)
    frame.attrs = {"open_candle": opened, "tf": tf_label}
    if single and series:
        frame.attrs["symbol"] = series[0]
    return frame


def _empty_multi() -> pd.DataFrame:
    frame = _empty_frame()
    index = pd.MultiIndex.from_arrays([pd.Index([], dtype=_symbol_dtype()), frame.index],
                                      names=["symbol", "time"])
    return frame.set_axis(index)


# --- dask ---------------------------------------------------------------------------------------

def _dask(parts: list[SeriesFile], single: bool, lo: int, hi: int, tz: str | None,
          fs: Any) -> Any:
    dd = _import_engine("dask")
    reader = _DaskReader(single, lo, hi, tz, fs)
    meta = reader(None)
    if not parts:
        return dd.from_pandas(meta, npartitions=1)
    divisions = _divisions(parts, lo, hi, tz, fs)
    specs = [(part.path, part.symbol) for part in parts]
    import dask

    # keep the symbol column's dtype that of history() (dask would turn it into string[pyarrow])
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_map(reader, specs, meta=meta,
                           divisions=divisions, label="invia-candles", enforce_metadata=False)


@dataclass(frozen=True)
class _DaskReader:
    """Reads one file into a partition (a picklable callable, so a distributed worker runs it)."""

    single: bool
    lo: int
    hi: int
    tz: str | None
    fs: Any = None

    def __call__(self, spec: tuple[str, str] | None) -> pd.DataFrame:
        """The partition of ``spec`` (path, symbol); None: the empty frame (dask's meta)."""
        if spec is None:
            frame = _empty_frame()
        else:
            frame = table_frame(read_table(spec[0], self.fs), self.lo, self.hi)
        if not self.single:
            symbol = "" if spec is None else spec[1]
            repeated = pa.array([symbol]).take(pa.array(np.zeros(len(frame), dtype="int32")))
            frame.insert(0, "symbol", pd.array(repeated, dtype=_symbol_dtype()))
        if self.tz is not None:
            frame.index = pd.DatetimeIndex(frame.index).tz_convert(self.tz)
        return frame


def _symbol_dtype() -> Any:
    """The dtype of the ``symbol`` level of a multi-symbol ``history()`` frame."""
    return pd.Index(["SBER"]).dtype


def _divisions(parts: list[SeriesFile], lo: int, hi: int, tz: str | None, fs: Any
               ) -> tuple | None:
    """Known divisions when the files' time ranges follow each other without overlap, else
    None (dask's "unknown")."""
    if len({part.symbol for part in parts}) > 1:
        return None  # several symbols' files overlap in time (no need to read their footers)
    bounds = [_time_bounds(part.path, fs) for part in parts]
    if any(b is None for b in bounds):
        return None
    ranges = [(max(a, lo), min(b, hi - 1)) for a, b in bounds]  # type: ignore[misc]
    for (_, prev_hi), (next_lo, _) in zip(ranges, ranges[1:], strict=False):
        if next_lo <= prev_hi:
            return None
    edges = [a for a, _ in ranges] + [ranges[-1][1]]
    if any(b < a for a, b in zip(edges, edges[1:], strict=False)):
        return None
    times = pd.to_datetime(np.array(edges, dtype="int64"), unit="s", utc=True).as_unit("ns")
    if tz is not None:
        times = times.tz_convert(tz)
    return tuple(times)


def _time_bounds(path: str, fs: Any = None) -> tuple[int, int] | None:
    """(first, last) candle time of a file in unix seconds, from the Parquet statistics."""
    meta = pq.read_metadata(path, filesystem=fs)
    lows, highs = [], []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(0).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(pd.Timestamp(stats.min))
        highs.append(pd.Timestamp(stats.max))
    if not lows:
        return None
    first, last = min(lows), max(highs)
    first = first.tz_localize("UTC") if first.tzinfo is None else first
    last = last.tz_localize("UTC") if last.tzinfo is None else last
    return int(first.timestamp()), int(last.timestamp())


# --- duckdb -------------------------------------------------------------------------------------

def _duckdb(names: list[str], lo: int, hi: int, connection: Any, fs: Any) -> Any:
    duckdb = _import_engine("duckdb")
    con = connection if connection is not None else duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if fs is not None:  # DuckDB reads the URLs through the same fsspec filesystem
        con.register_filesystem(fs)
    if not names:
        return con.sql("SELECT NULL::VARCHAR AS symbol, NULL::TIMESTAMPTZ AS time, "
                       "NULL::DOUBLE AS open, NULL::DOUBLE AS high, NULL::DOUBLE AS low, "
                       "NULL::DOUBLE AS close, NULL::BIGINT AS volume WHERE false")
    relation = con.read_parquet(names, hive_partitioning=True)
    if lo > 0:
        start = pd.Timestamp(lo, unit="s", tz="UTC").isoformat()
        relation = relation.filter(f"time >= TIMESTAMPTZ '{start}'")
    if hi < _FAR_FUTURE:
        end = pd.Timestamp(hi, unit="s", tz="UTC").isoformat()
        relation = relation.filter(f"time < TIMESTAMPTZ '{end}'")
    return relation.project("symbol, time, open, high, low, close, volume")


def _import_engine(engine: str) -> Any:
    try:
        return importlib.import_module("dask.dataframe" if engine == "dask" else "duckdb")
    except ImportError as exc:
        raise InvalidArgument(f"engine={engine!r} needs {engine}, which is not installed: "
                              f"{SCALE_HINT}") from exc


def symbols_in(path: str | os.PathLike[str] | Location, tf: str | int | None = None) -> list[str]:
    """The symbols of the dataset at ``path`` (for ``tf``, needed when it holds several)."""
    return sorted({part.symbol for part in files(path, tf=tf)})
