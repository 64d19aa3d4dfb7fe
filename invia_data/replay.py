"""Replay a recording (see :mod:`invia_data.record`) into LiveFrames on one simulated clock.

``invia_data.replay(path, start=, end=, speed=10)`` returns a :class:`Replay` with the
subscription methods of ``inv.stream`` (``orderbook``, ``quotes``, ``all_trades``, ``bars``,
``instrument_state``, ``positions``, ...). Each returns a :class:`LiveFrame` (the same ``.df``,
``on_update``, ``wait``, ``widget()``) whose state is the recorded rows received up to the
simulated time: a frame at time *t* shows what the live frame showed when the recorder got the
last message before *t*.

The recorded table of a frame is loaded and put in its frame's column form once; advancing the
clock moves a row position (``searchsorted`` on the receive times), so any number of rows
enters a state in one step, and ``.df`` slices the prepared table. A driver thread moves the
clock (``speed`` x real time, or with ``speed=None`` as fast as the frames take it, in steps
of at most ``batch`` rows per frame); ``pause()``, ``resume()`` and ``seek()`` act at once.
The frames' own clock is the simulated one: ``updated_at`` is when the row shown was received,
``age`` and ``stale`` count simulated seconds.

:func:`read_recording` reads one recorded kind back as a DataFrame with the library's dtypes.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import validate
from .errors import InvalidArgument, InviaWarning, StreamClosed
from .frames import STR_DTYPE, UTC_DTYPE, dtypes, empty_frame
from .history import candle_frame
from .market import check_count, parse_symbol
from .record import (
    ABSENT,
    KINDS,
    PORTFOLIO_KINDS,
    SCHEMAS,
    TIME_TYPE,
    holds_recording,
    partition_key,
    receive_us,
    record_table,
    recording_top,
)
from .stream.live import FrameWriter, LiveFrame
from .stream.policy import WATCHED_KINDS
from .stream.state import book_frame
from .stream.stream import HEALTH_COLUMNS, Stream
from .timeframes import to_seconds
from .times import iso_time, to_utc

RATE_WINDOW_US = 5_000_000   # messages_per_s in health(): over the last 5 simulated seconds
BATCH = 1 << 16     # rows a frame takes per step when the clock runs as fast as possible
TICK = 0.02         # seconds between clock steps at a finite speed
KEYS = {"quotes": ("symbol", "exchange"), "positions": ("symbol", "exchange"),
        "orders": ("id",), "stop_orders": ("id",), "own_trades": ("id",)}


# --- loading ------------------------------------------------------------------------------------

def _recording_root(path: Any) -> Path:
    """The recording's folder, checked: a ``kind=...`` folder inside it names its parent."""
    root = Path(validate.local_path(path, "path"))
    if not root.is_dir():
        raise InvalidArgument(f"no recording at {str(path)[:200]!r}: give the folder that "
                              "invia-data record --out (or inv.stream.record) wrote")
    top = recording_top(root)
    if top is not None:
        raise InvalidArgument(f"{str(path)[:200]!r} is inside a recording: give its "
                              f"folder, {str(top)[:200]!r}")
    return root


def inner_recordings(path: Path) -> str:
    """For a folder that holds no recorded data: the recordings inside it, named for a
    message ("; it holds the recordings 'a', 'b': give one of them"), else ''."""
    try:
        inner = sorted(f"{str(folder)[:200]!r}" for folder in path.glob("*/")
                       if folder.is_dir() and holds_recording(folder))
    except OSError:
        return ""
    if not inner:
        return ""
    listed = ", ".join(inner[:5]) + (", ..." if len(inner) > 5 else "")
    return f"; it holds the recordings {listed}: give one of them"


def _when(us: int) -> str:
    return str(pd.Timestamp(us, unit="us", tz="UTC"))


def load(path: Path, kind: str, value: str) -> pd.DataFrame:
    """Every recorded row of ``kind`` for one symbol (or portfolio), in receive order."""
    folder = path / f"kind={kind}" / f"{partition_key(kind)}={value}"
    files = sorted(folder.glob("date=*/*.parquet"))
    if not files:
        have = sorted(p.name.split("=", 1)[1] for p in (path / f"kind={kind}").glob("*=*"))
        raise InvalidArgument(f"the recording at {path} has no {kind} of {value!r}"
                       + (f"; it has {', '.join(have)}" if have else f"; it has no {kind}"))
    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables, promote_options="default")
    frame = table.to_pandas()
    order = np.argsort(frame["receive_time"].to_numpy(dtype="datetime64[us]"), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _times(frame: pd.DataFrame, column: str = "receive_time") -> np.ndarray:
    return frame[column].to_numpy(dtype="datetime64[us]").astype("int64")


def recording_bounds(path: Path) -> tuple[int | None, int | None]:
    """First and last receive time (us) of a recording, from the files' statistics."""
    first = last = None
    for file in path.glob("kind=*/*/date=*/*.parquet"):
        if file.parts[-4] == "kind=gaps":
            continue
        meta = pq.read_metadata(file)
        index = meta.schema.to_arrow_schema().get_field_index("receive_time")
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is None or not stats.has_min_max:
                continue
            low, high = _us(stats.min), _us(stats.max)
            first = low if first is None else min(first, low)
            last = high if last is None else max(last, high)
    return first, last


def _us(value: Any) -> int:
    return int(pd.Timestamp(value).value // 1000)


# --- reading a recording back as frames ----------------------------------------------------------

# (timeframe: of bars gaps, in seconds; null for other kinds and in recordings made before it)
GAP_TYPES: dict[str, Any] = {"data_kind": STR_DTYPE, "timeframe": "Int64", "start": UTC_DTYPE,
                             "end": UTC_DTYPE, "backfilled": "int64", "error": STR_DTYPE}


def recording_dtypes(kind: str) -> dict[str, Any]:
    """The columns and dtypes :func:`read_recording` gives a kind: the library frame's (the
    HTTP call's columns, its ``time`` index as the first column for trades and bars; an order
    book's long form after its ``snapshot_id``), ``exchange_time``, ``receive_time``,
    ``absent_fields`` where the kind has it, and the partition column (in its place when the
    frame has that column)."""
    types: dict[str, Any]
    if kind == "orderbook":
        book = {str(name): dtype for name, dtype in book_frame({}, "Simple").dtypes.items()}
        types = {"snapshot_id": "int64", **book, "exchange_time": UTC_DTYPE,
                 "receive_time": UTC_DTYPE}
    elif kind == "gaps":
        types = {**GAP_TYPES, "receive_time": UTC_DTYPE}
    else:
        types = {str(name): UTC_DTYPE if isinstance(dtype, pd.DatetimeTZDtype) else dtype
                 for name, dtype in record_table(kind, [], [], "Simple").dtypes.items()}
        if kind == "bars":   # each candle's timeframe in seconds, before the times
            at = list(types).index("exchange_time")
            items = list(types.items())
            types = dict([*items[:at], ("timeframe", "Int64"), *items[at:]])
    key = "symbol" if kind in ("orderbook", "gaps") else partition_key(kind)
    return {**types, key: STR_DTYPE} if key not in types else types


@validate.checked_keywords
def read_recording(path: str | os.PathLike[str], kind: str, *,
                   symbols: str | Iterable[str] | None = None, portfolio: str | None = None,
                   start: Any = None, end: Any = None,
                   timeframe: str | int | None = None) -> pd.DataFrame:
    """The recorded rows of one ``kind`` (``orderbook``, ``all_trades``, ``bars``, ``quotes``,
    ``instrument_state``, ``positions``, ... or ``gaps``) of the recording at ``path``, in
    receive order, with the columns and dtypes of the library's frame of that kind (times
    ``datetime64[ns, UTC]``, nullable ``Int64`` and ``boolean``, text ``str``: pandas'
    string dtype with NaN for a missing value; see :func:`recording_dtypes`) plus
    ``exchange_time`` and ``receive_time``.

    ``symbols``: one or more instruments (default: all recorded); for portfolio kinds they
    filter the rows' ``symbol`` column, and ``portfolio=`` picks the portfolio (default: all).
    ``start``/``end``: receive times, ``start`` included, ``end`` not. Only the files and row
    groups that can hold matching rows are read. The rows are the dataset's as recorded: an
    order book's levels per ``snapshot_id`` (an empty book: one row with ``level`` -1), every
    candle version, and for merged kinds one row per message with ``absent_fields``.

    ``timeframe`` (bars only): the candles of one recorded timeframe (``"1min"``, ``"5min"``,
    ``"D"``, seconds; the ``timeframe`` column holds seconds). Bars of several timeframes of
    one instrument share its folder: without it every timeframe's rows come back.
    ``.groupby(["symbol", "timeframe", "time"]).last()`` keeps each candle's last version."""
    import pyarrow.dataset as ds

    if timeframe is not None and kind != "bars":
        raise InvalidArgument(f"timeframe= picks the candles of recorded bars; {kind!r} has no "
                              "timeframe"[:200])
    tf_seconds = None if timeframe is None else to_seconds(timeframe)
    root, folder = _recording_folder(path, kind)
    key = "symbol" if kind in ("orderbook", "gaps") else partition_key(kind)
    where = _receive_filter(ds, start, end)
    wanted = _wanted_symbols(symbols)
    if portfolio is not None and (not isinstance(portfolio, str) or not portfolio.strip()):
        raise InvalidArgument(f"portfolio must be a portfolio id such as 'D00013', "
                              f"got {portfolio!r}"[:200])
    if portfolio is not None and key != "portfolio":
        raise InvalidArgument(f"portfolio= picks the portfolio of portfolio kinds "
                              f"({', '.join(sorted(PORTFOLIO_KINDS))}); {kind} is recorded by "
                              "symbol: give symbols=")
    chosen = ([portfolio] if portfolio is not None and key == "portfolio"
              else wanted if wanted is not None and key == "symbol" else None)
    if chosen is not None:
        _check_recorded(root, folder, kind, key, chosen)
        where = where & ds.field(key).isin(chosen)
    if wanted is not None and key == "portfolio":
        where = where & ds.field("symbol").isin(wanted)
    partitioning = ds.partitioning(pa.schema([(key, pa.string()), ("date", pa.string())]),
                                   flavor="hive")
    types = recording_dtypes(kind)
    if not folder.is_dir():
        return _typed(pd.DataFrame(), types)
    found = ds.dataset(folder, format="parquet", partitioning=partitioning)
    paths = [f.path for f in found.get_fragments(filter=where)]
    if not paths:
        return _typed(pd.DataFrame(), types)
    # one schema over the files (a column null in one batch, a column added later)
    schema = pa.unify_schemas([pq.read_schema(p) for p in paths]
                              + [pa.schema([(key, pa.string()), ("date", pa.string())])],
                              promote_options="permissive")
    if timeframe is not None and "timeframe" not in schema.names:
        raise InvalidArgument(f"the bars at {str(root)!r} were recorded without their "
                              "timeframe (an earlier version): leave timeframe= out")
    if timeframe is not None:   # (a column of the files: after the files are chosen)
        where = where & (ds.field("timeframe") == tf_seconds)
    dataset = ds.dataset(paths, schema=schema, format="parquet", partitioning=partitioning,
                         partition_base_dir=str(folder))
    table = dataset.to_table(filter=where)
    if tf_seconds is not None and not table.num_rows:
        have = sorted(int(t) for t in pc.unique(dataset.to_table(columns=["timeframe"])
                                                .column(0)).to_pylist() if t is not None)
        if tf_seconds not in have:
            raise InvalidArgument(f"the recording at {str(root)[:200]!r} has no candles of "
                                  f"{tf_seconds} s; it has {', '.join(f'{t} s' for t in have)}"
                                  " (timeframe= takes one of those)")
    if not table.num_rows and (start is not None or end is not None):
        _check_overlap(root, start, end)
    order = pc.sort_indices(table, sort_keys=[("receive_time", "ascending")])   # stable
    frame = table.take(order).to_pandas(ignore_metadata=True)
    return _typed(frame, types)


def _check_overlap(root: Path, start: Any, end: Any) -> None:
    """Warn that ``start``/``end`` miss the whole recording (a Moscow time written as a
    string is read as UTC: three hours off), naming the times it covers."""
    first, last = recording_bounds(root)
    if first is None or last is None:
        return
    lo = None if start is None else _us(to_utc(start, name="start"))
    hi = None if end is None else _us(to_utc(end, name="end"))
    if (lo is not None and lo > last) or (hi is not None and hi <= first):
        warnings.warn(f"no rows: the recording covers {_when(first)} to {_when(last)} (UTC; "
                      "times without a zone are read as UTC): choose start= and end= that "
                      "overlap it", InviaWarning, stacklevel=4)


def _recording_folder(path: str | os.PathLike[str], kind: str) -> tuple[Path, Path]:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgument(f"path must be the recording's folder (a str or Path), "
                              f"got {path!r}"[:200])
    root = _recording_root(path)
    recorded = _recorded_kinds(root)
    kinds = (*KINDS, "gaps")
    if not isinstance(kind, str) or kind not in kinds:
        raise InvalidArgument(f"kind must be one of {', '.join(kinds)}, got {kind!r}"
                              + (f" (this recording has {', '.join(recorded)})" if recorded
                                 else ""))
    folder = root / f"kind={kind}"
    if not folder.is_dir() and kind != "gaps":   # (no gaps recorded: none happened)
        raise InvalidArgument(f"the recording at {str(path)!r} has no {kind}"
                       + (f"; it has {', '.join(recorded)}" if recorded
                          else f"; it holds no recorded data{inner_recordings(root)}"))
    return root, folder


def _recorded_kinds(root: Path) -> list[str]:
    """The kinds a recording holds (``gaps`` among them when a gap was recorded)."""
    return sorted(p.name.split("=", 1)[1] for p in root.glob("kind=*") if p.is_dir())


def _wanted_symbols(symbols: str | Iterable[str] | None) -> list[str] | None:
    if symbols is None:
        return None
    if not isinstance(symbols, (str, list, tuple, set, frozenset, pd.Index, pd.Series)):
        raise InvalidArgument(f"symbols must be a symbol, a comma-separated text or a list of "
                              f"symbols, got {symbols!r}"[:200])
    items = ([s for s in symbols.split(",") if s.strip()] if isinstance(symbols, str)
             else list(symbols))
    if not items:
        raise InvalidArgument("symbols is empty: give one or more, e.g. symbols=\"SBER\", or "
                              "leave it out for every recorded instrument")
    return list(dict.fromkeys(parse_symbol(s, "MOEX")[1] for s in items))


def _check_recorded(root: Path, folder: Path, kind: str, key: str, values: list[str]) -> None:
    have = sorted(p.name.split("=", 1)[1] for p in folder.glob(f"{key}=*"))
    missing = [v for v in values if v not in have]
    if missing:
        raise InvalidArgument(f"the recording at {str(root)!r} has no {kind} of "
                       f"{', '.join(missing)}; it has {', '.join(have) or 'none'}")


def _receive_filter(ds: Any, start: Any, end: Any) -> Any:
    where = pc.scalar(True)
    lo = None if start is None else _us(to_utc(start, name="start"))
    hi = None if end is None else _us(to_utc(end, name="end"))
    if lo is not None and hi is not None and hi < lo:
        raise InvalidArgument(f"end ({end!r}) is before start ({start!r})")
    if lo is not None:
        where = where & (ds.field("receive_time") >= pa.scalar(lo, TIME_TYPE))
    if hi is not None:
        where = where & (ds.field("receive_time") < pa.scalar(hi, TIME_TYPE))
    return where


def _typed(frame: pd.DataFrame, types: dict[str, Any]) -> pd.DataFrame:
    """``frame`` with exactly the columns and dtypes of ``types`` (a column missing from older
    files is null)."""
    columns = {}
    for name, dtype in types.items():
        column = (frame[name] if name in frame.columns
                  else pd.Series([None] * len(frame), index=frame.index, dtype=object))
        if dtype == "int64" and column.isna().any():
            dtype = "Int64"   # as the library's frames hold an integer column with a null
        if isinstance(dtype, pd.DatetimeTZDtype):
            column = pd.to_datetime(column, utc=True)
        columns[name] = column.astype(dtype) if column.dtype != dtype else column
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))


# --- the states: a row position in a prepared table ---------------------------------------------

class _Replayed:
    """Reducer contract of :mod:`invia_data.stream.state`; ``apply(position)`` moves to a row
    position (forward or back), ``snapshot()`` is that position."""

    def __init__(self, times: np.ndarray) -> None:
        self.times = times
        self.position = 0

    def apply(self, position: int) -> bool:
        changed = position != self.position
        self.position = position
        return changed

    def snapshot(self) -> int:
        return self.position

    def position_at(self, t_us: int) -> int:
        return int(np.searchsorted(self.times, t_us, side="right"))

    def received_at(self, position: int) -> float | None:
        """Unix seconds the last row before ``position`` was received (None: no row)."""
        return int(self.times[position - 1]) / 1_000_000 if position > 0 else None


class TradesReplay(_Replayed):
    def __init__(self, rows: pd.DataFrame, symbol: str, maxlen: int) -> None:
        super().__init__(_times(rows))
        from .schema import TRADE

        types = dtypes(TRADE)
        rows = rows.assign(symbol=symbol)
        rows["time"] = pd.DatetimeIndex(rows["time"]).as_unit("ns")
        self.table = rows[list(types)].astype(types).set_index("time")
        self.maxlen = maxlen

    def frame(self, position: int) -> pd.DataFrame:
        return self.table.iloc[max(0, position - self.maxlen):position]


class BookReplay(_Replayed):
    """Snapshots of one book: ``position`` counts the snapshots received."""

    def __init__(self, rows: pd.DataFrame, depth: int, attrs: dict[str, Any]) -> None:
        rows = rows[rows["level"] < depth].reset_index(drop=True)
        ids = rows["snapshot_id"].to_numpy()
        starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]])) if len(ids) \
            else np.zeros(0, dtype="int64")
        super().__init__(_times(rows)[starts] if len(ids) else np.zeros(0, dtype="int64"))
        self.offsets = np.append(starts, len(rows))
        self.stamps = list(rows["exchange_time"].iloc[starts]) if len(ids) else []
        types = book_frame({}, "Simple").dtypes.to_dict()    # the live book's columns
        self.table = rows[list(types)].astype(types)
        self.attrs = attrs

    def frame(self, position: int) -> pd.DataFrame:
        if position == 0:
            frame = self.table.iloc[:0].reset_index(drop=True)
            stamp = None
        else:
            lo, hi = self.offsets[position - 1], self.offsets[position]
            frame = self.table.iloc[lo:hi]
            frame = frame[frame["level"] >= 0].reset_index(drop=True)   # -1: an empty book
            stamp = self.stamps[position - 1]
        frame.attrs.update(self.attrs)
        frame.attrs["time"] = (None if stamp is None or pd.isna(stamp)
                               else iso_time(pd.Timestamp(stamp)))
        frame.attrs["existing"] = None
        return frame


class BarsReplay(_Replayed):
    """Candle versions: the frame holds the last version of each candle received. As live,
    the newest candle is closed once its interval is over by the server's clock: here the
    simulated clock, moved by the server's offset while recording where the data show one
    (no candle version arrives before its candle starts, so the offset is at least
    ``low`` = the largest start - receive time, and the open candle at the start of the
    recording puts it below ``low + tf``: when 0 is in that range the clocks agreed, else the
    offset is ``low``, as with a simulator on its own market time)."""

    def __init__(self, rows: pd.DataFrame, maxlen: int, tf: int = 0,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(_times(rows))
        self.start = rows["time"].to_numpy(dtype="datetime64[s]").astype("int64")
        self.values = {name: rows[name].to_numpy(dtype="float64")
                       for name in ("open", "high", "low", "close")}
        self.volume = rows["volume"].to_numpy(dtype="int64")
        self.maxlen = maxlen
        self.tf = tf
        self.clock = clock
        low = float((self.start - self.times / 1_000_000).max()) if len(self.start) else 0.0
        self.offset = 0.0 if low <= 0.0 <= low + tf else low

    def _interval_over(self, start: int) -> bool:
        if self.clock is None or not self.tf:
            return False
        return start + self.tf <= self.clock() + self.offset

    def frame(self, position: int) -> pd.DataFrame:
        start = self.start[:position]
        # the last version of each candle: reverse, keep the first of each time, sort by time
        times, first = np.unique(start[::-1], return_index=True)
        pick = position - 1 - first
        pick = pick[-self.maxlen:]
        columns = {"time": times[-self.maxlen:], "volume": self.volume[pick]}
        for name, values in self.values.items():
            columns[name] = values[pick]
        frame = candle_frame(columns)
        closed = np.ones(len(frame), dtype=bool)
        if len(closed):
            closed[-1] = self._interval_over(int(columns["time"][-1]))
        return frame.assign(is_closed=closed)


class RowsReplay(_Replayed):
    """Rows merged field by field as the live frame merges its messages: per key (quotes,
    positions, orders...) or into one row (summary, risk, instrument state). A field that a
    message carried replaces the value, also with a null; a field it left out (listed in the
    recorded ``absent_fields``) keeps the value before. A recording without that column
    counts every null as left out."""

    def __init__(self, rows: pd.DataFrame, kind: str, fill: dict[str, str]) -> None:
        super().__init__(_times(rows))
        schema = SCHEMAS[kind]
        types = dtypes(schema)
        self.table = rows.assign(**fill)[list(types)].astype(types)
        carried = _carried(rows, self.table, set(fill))
        # the columns some message left out; every other one is the key's last row's
        self.partial = np.flatnonzero(~carried.all(axis=0))
        self.carried = carried[:, self.partial]
        key = list(KEYS.get(kind, ()))
        self.groups = (self.table.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
                       if key else np.zeros(len(self.table), dtype="int64"))
        self.empty = empty_frame(schema)
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def frame(self, position: int) -> pd.DataFrame:
        if position == 0:
            return self.empty
        last, carried = self._last_rows(position)
        frame = self.table.take(last).reset_index(drop=True)   # (one take per dtype block)
        for i, j in enumerate(self.partial):
            name = self.table.columns[j]
            frame[name] = _pick(self.table[name], carried[:, i])
        return frame

    def _last_rows(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Per key (numbered by first appearance, the order of a live frame's rows): its last
        row before ``position``, and for each column some message left out the last row that
        carried it (-1: none). Moving forward extends the previous answer by the new rows only
        (the cache is one tuple, swapped whole: readers may call at once)."""
        cached = self._cache
        if cached is not None and cached[0] <= position:
            lo, last, carried = cached
        else:
            lo, last = 0, np.zeros(0, dtype="int64")
            carried = np.zeros((0, len(self.partial)), dtype="int64")
        if lo < position:
            groups = self.groups[lo:position]
            size = int(groups.max()) + 1
            index = np.arange(lo, position)
            last = _grown(last, size)
            seen = pd.Series(index).groupby(groups, sort=True).max()
            last[seen.index.to_numpy()] = seen.to_numpy()
            if len(self.partial):
                rows = np.where(self.carried[lo:position], index[:, None], -1)
                step = pd.DataFrame(rows).groupby(groups, sort=True).max()
                carried = _grown(carried, size)
                keys = step.index.to_numpy()
                carried[keys] = np.maximum(carried[keys], step.to_numpy())
            self._cache = (position, last, carried)
        return last, carried


def _grown(values: np.ndarray, size: int) -> np.ndarray:
    """A copy of ``values`` with at least ``size`` rows, the new ones -1."""
    shape = (max(size, len(values)), *values.shape[1:])
    out = np.full(shape, -1, dtype="int64")
    out[:len(values)] = values
    return out


def _carried(rows: pd.DataFrame, table: pd.DataFrame, always: set[str]) -> np.ndarray:
    """(rows x columns) True where the row's message carried the column's field."""
    if ABSENT not in rows.columns:
        carried = table.notna().to_numpy()
    else:
        carried = np.ones(table.shape, dtype=bool)
        index = {name: j for j, name in enumerate(table.columns)}
        codes, lists = pd.factorize(rows[ABSENT].to_numpy(dtype=object))   # null: -1
        for code, names in enumerate(lists):
            left_out = [index[n] for n in str(names).split(",") if n in index]
            if left_out:
                carried[np.ix_(codes == code, left_out)] = False
    for name in always:
        carried[:, table.columns.get_loc(name)] = True
    return carried


def _pick(column: pd.Series, rows: np.ndarray) -> pd.Series:
    """``column`` at ``rows``; null where the row is -1 (a field no message carried)."""
    picked = column.take(np.maximum(rows, 0)).reset_index(drop=True)
    missing = rows < 0
    if not missing.any():
        return picked
    if picked.dtype == "int64":   # as the live frame builds it: an integer column with a null
        picked = picked.astype("Int64")
    keep = pd.Series(~missing)
    return picked.where(keep, None) if picked.dtype == object else picked.where(keep)


def _drive(ref: weakref.ref[Replay], wake: threading.Event) -> None:
    """The replay's thread: steps the clock while the replay is alive and open."""
    while True:
        replay = ref()
        if replay is None or replay._closed:
            return
        pause = replay._step()
        del replay
        if pause:
            wake.wait(pause)
            wake.clear()


def _as_live(method: Callable[..., LiveFrame]) -> Callable[..., LiveFrame]:
    """A replay call takes the keywords of the ``inv.stream`` call of the same name, so that a
    notebook written against live data runs unchanged; those with no meaning in a replay
    (``timeout``, ``frequency``, ``format``, ``board``...) are accepted and left unused. A
    keyword the live call does not take, or ``record=`` (a replay writes nothing), is refused."""
    own = set(validate.parameter_names(method))
    live = set(validate.parameter_names(getattr(Stream, method.__name__)))
    taken = (own | live) - {"record"}   # (record=None passes, as a live call without it)

    @functools.wraps(method)
    def call(self: Any, *args: Any, **options: Any) -> LiveFrame:
        if options.get("record") is not None:
            raise InvalidArgument("a replay does not record: record the live stream "
                                  "(record=) or copy the recording's folder")
        validate.keywords(method.__name__, (name for name in options if name != "record"),
                          taken)
        return method(self, *args, **options)

    return call


# --- the clock and the subscriptions --------------------------------------------------------------

class Replay:
    """A recording played on one simulated clock. See :func:`replay`."""

    def __init__(self, path: str | os.PathLike[str], start: Any = None, end: Any = None,
                 speed: float | None = 10.0, *, exchange: str = "MOEX",
                 portfolio: str | None = None, paused: bool = False, batch: int = BATCH,
                 stale_after: float | None = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = _recording_root(path)
        first, last = recording_bounds(self.path)
        if first is None or last is None:
            raise InvalidArgument(f"{str(path)!r} holds no recorded data (kind=*/.../*.parquet)"
                                  + inner_recordings(self.path))
        self.start_us = first if start is None else _us(to_utc(start, name="start"))
        self.end_us = last if end is None else _us(to_utc(end, name="end"))
        if self.end_us < self.start_us:
            raise InvalidArgument("end is before start")
        if self.start_us > last or self.end_us < first:
            raise InvalidArgument(f"the recording covers {_when(first)} to {_when(last)}: "
                                  f"choose start= and end= that overlap it")
        self.exchange = exchange
        self.portfolio = portfolio
        self.batch = check_count(batch, "batch")
        if stale_after is not None and (isinstance(stale_after, bool)
                                        or not isinstance(stale_after, (int, float))
                                        or not stale_after > 0):
            raise InvalidArgument(f"stale_after must be a positive number of seconds or None, "
                                  f"got {stale_after!r}")
        self.stale_after = stale_after
        self._speed = _check_speed(speed)
        self._clock = clock
        self._lock = threading.RLock()
        self._frames: list[LiveFrame] = []
        self._sim_us = self.start_us
        self._anchor = clock()
        self._running = not paused
        self._wake = threading.Event()
        self._done = threading.Event()
        self._closed = False
        self._gaps: pd.DataFrame | None = None
        # the thread holds the replay weakly: a replay nobody holds (with its frames) is
        # collected and its thread ends, so a notebook cell run again leaves no thread behind
        self._thread = threading.Thread(target=_drive, args=(weakref.ref(self), self._wake),
                                        name="invia-data-replay", daemon=True)
        self._thread.start()

    # --- the clock ----------------------------------------------------------------------------

    @property
    def now(self) -> pd.Timestamp:
        """The simulated time."""
        return pd.Timestamp(self._current_us(), unit="us", tz="UTC")

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.start_us, unit="us", tz="UTC")

    @property
    def end(self) -> pd.Timestamp:
        return pd.Timestamp(self.end_us, unit="us", tz="UTC")

    @property
    def speed(self) -> float | None:
        return self._speed

    @speed.setter
    def speed(self, value: float | None) -> None:
        with self._lock:
            self._sim_us = self._current_us()
            self._anchor = self._clock()
            self._speed = _check_speed(value)
        self._wake.set()

    @property
    def paused(self) -> bool:
        return not self._running

    @property
    def done(self) -> bool:
        """True once the clock reached the end of the recording (or ``end=``)."""
        return self._done.is_set()

    def pause(self) -> None:
        with self._lock:
            self._sim_us = self._current_us()
            self._running = False
            self._show_status()

    def resume(self) -> None:
        with self._lock:
            self._anchor = self._clock()
            self._running = True
            self._show_status()
        self._wake.set()

    def _show_status(self) -> None:
        """The frames' status says the clock's: ``paused``, ``ended`` (at the end), or
        ``live`` while it runs (``stale`` when a frame has had nothing for ``stale_after``)."""
        status = "ended" if self._done.is_set() else "live" if self._running else "paused"
        for frame in self._frames:
            FrameWriter(frame).set_status(status)

    def seek(self, when: Any) -> None:
        """Move the clock to ``when`` (a time, or seconds since the start as a number); every
        frame shows that moment when this returns."""
        if self._closed:
            raise StreamClosed("the replay is closed")
        if isinstance(when, (int, float)) and not isinstance(when, bool):
            target = self.start_us + int(round(when * 1_000_000))
        else:
            target = int(round(to_utc(when, name="when").value / 1000))
        if not self.start_us <= target <= self.end_us:
            raise InvalidArgument(f"seek to a time the replay covers, {self.start} to "
                                  f"{self.end} (or 0 to {self.duration:.1f} seconds), got "
                                  f"{when!r}"[:300])
        with self._lock:
            self._sim_us = target
            self._anchor = self._clock()
            self._advance(self._sim_us)
            if self._sim_us < self.end_us:
                self._done.clear()
            else:
                self._done.set()
            self._show_status()
        self._wake.set()

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return (self.end_us - self.start_us) / 1_000_000

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the clock reaches the end; False on timeout."""
        return self._done.wait(timeout)

    def _seconds(self) -> float:
        """The simulated time as unix seconds: the clock of the replayed frames."""
        return self._current_us() / 1_000_000

    def _current_us(self) -> int:
        with self._lock:
            if not self._running or self._speed is None:
                return self._sim_us
            moved = (self._clock() - self._anchor) * self._speed * 1_000_000
            return min(self.end_us, self._sim_us + int(moved))

    def _step(self) -> float:
        """Move the clock one step; the seconds to wait before the next (0: at once)."""
        if not self._running or self._done.is_set():
            return 0.25
        with self._lock:
            if self._speed is None:
                target = self._next_step()
                self._sim_us = target
            else:
                target = self._current_us()
            self._advance(target)
            if target >= self.end_us:
                self._sim_us = self.end_us
                self._done.set()
                self._show_status()
        return 0.0 if self._speed is None else TICK

    def _next_step(self) -> int:
        """Speed None: the time by which no frame takes more than ``batch`` rows."""
        target = self.end_us
        for frame in self._frames:
            state = FrameWriter(frame).read(lambda s: s)
            times = state.times
            if state.position < len(times):
                step = times[min(state.position + self.batch, len(times)) - 1]
                if step > self._sim_us:
                    target = min(target, int(step))
                else:
                    target = min(target, int(times[state.position]))
        return max(target, self._sim_us)

    def _advance(self, t_us: int) -> None:
        for frame in list(self._frames):
            state = FrameWriter(frame).read(lambda s: s)
            position = state.position_at(t_us)
            if position != state.position:
                FrameWriter(frame).apply([position], state.received_at(position),
                                         abs(position - state.position))
                FrameWriter(frame).publish()

    # --- subscriptions (the methods of inv.stream) --------------------------------------------

    @_as_live
    def orderbook(self, symbol: str, depth: int | None = None, *, exchange: str | None = None,
                  **ignored: Any) -> LiveFrame:
        """The recorded order book, long form, as ``inv.stream.orderbook`` shows it; ``depth``:
        levels a side, at most the recorded depth (default: the recorded depth)."""
        ex, sym = parse_symbol(symbol, exchange or self.exchange)
        rows = load(self.path, "orderbook", sym)
        recorded = int(rows["level"].max()) + 1 if len(rows) else 0
        depth = max(recorded, 1) if depth is None else check_count(depth, "depth")
        if depth > recorded:
            raise InvalidArgument(f"the recording holds {recorded} levels of {sym}; "
                                  f"ask for depth={recorded} or less")
        state = BookReplay(rows, depth, {"symbol": sym, "exchange": ex, "depth": depth})
        return self._open("orderbook", f"{ex}:{sym}", {"depth": depth}, state)

    @_as_live
    def all_trades(self, symbol: str, *, recent: int | None = None, maxlen: int = 100_000,
                   exchange: str | None = None, **ignored: Any) -> LiveFrame:
        """The recorded trades, the last ``maxlen`` received by the simulated time."""
        maxlen = check_count(maxlen, "maxlen")
        ex, sym = parse_symbol(symbol, exchange or self.exchange)
        state = TradesReplay(load(self.path, "all_trades", sym), sym, maxlen)
        return self._open("all_trades", f"{ex}:{sym}", {"recent": recent, "maxlen": maxlen},
                          state)

    @_as_live
    def bars(self, symbol: str, tf: str | int = "1min", *, start: Any = None,
             maxlen: int = 100_000, exchange: str | None = None, **ignored: Any) -> LiveFrame:
        """The recorded candles (of the timeframe that was recorded)."""
        tf_seconds = to_seconds(tf)
        maxlen = check_count(maxlen, "maxlen")
        ex, sym = parse_symbol(symbol, exchange or self.exchange)
        rows = load(self.path, "bars", sym)
        if "timeframe" in rows.columns and rows["timeframe"].notna().any():
            recorded = rows["timeframe"].dropna().astype("int64").unique().tolist()
            if tf_seconds not in recorded:
                raise InvalidArgument(
                    f"the recording has {sym}'s candles of "
                    f"{', '.join(f'{t} s' for t in sorted(recorded))}, not {tf_seconds} s: "
                    "ask for one of those")
            rows = rows[rows["timeframe"] == tf_seconds].reset_index(drop=True)
        elif len(rows) > 1:   # (recorded before each row said its timeframe)
            step = np.diff(np.unique(rows["time"].to_numpy(dtype="datetime64[s]")
                                     .astype("int64")))
            if len(step) and int(step.min()) % tf_seconds:
                raise InvalidArgument(f"the recorded candles of {sym} are {int(step.min())} s "
                                      f"apart, not {tf_seconds} s: ask for that timeframe")
        return self._open("bars", f"{ex}:{sym}", {"tf": tf_seconds, "maxlen": maxlen},
                          BarsReplay(rows, maxlen, tf_seconds, self._seconds))

    @_as_live
    def quotes(self, symbols: str | Iterable[str], *, exchange: str | None = None,
               **ignored: Any) -> LiveFrame:
        """The recorded quotes of one or more instruments, one row each."""
        items = ([s for s in symbols.split(",") if s.strip()] if isinstance(symbols, str)
                 else list(symbols))
        if not items:
            raise InvalidArgument("symbols is empty")
        pairs = list(dict.fromkeys(parse_symbol(s, exchange or self.exchange) for s in items))
        parts = [load(self.path, "quotes", sym).assign(symbol=sym) for _, sym in pairs]
        rows = pd.concat(parts, ignore_index=True)
        order = np.argsort(_times(rows), kind="stable")
        rows = rows.iloc[order].reset_index(drop=True)
        label = ",".join(f"{ex}:{sym}" for ex, sym in pairs)
        return self._open("quotes", label, {"symbols": label.split(",")},
                          RowsReplay(rows, "quotes", {}))

    @_as_live
    def instrument_state(self, symbol: str, *, exchange: str | None = None,
                         **ignored: Any) -> LiveFrame:
        ex, sym = parse_symbol(symbol, exchange or self.exchange)
        rows = load(self.path, "instrument_state", sym)
        return self._open("instrument_state", f"{ex}:{sym}", {},
                          RowsReplay(rows, "instrument_state", {"symbol": sym}))

    @_as_live
    def positions(self, portfolio: str | None = None, **ignored: Any) -> LiveFrame:
        return self._portfolio("positions", portfolio)

    @_as_live
    def summary(self, portfolio: str | None = None, **ignored: Any) -> LiveFrame:
        return self._portfolio("summary", portfolio)

    @_as_live
    def risk(self, portfolio: str | None = None, **ignored: Any) -> LiveFrame:
        return self._portfolio("risk", portfolio)

    @_as_live
    def forts_risk(self, portfolio: str | None = None, **ignored: Any) -> LiveFrame:
        return self._portfolio("forts_risk", portfolio)

    @_as_live
    def orders(self, portfolio: str | None = None, **ignored: Any) -> LiveFrame:
        return self._portfolio("orders", portfolio)

    @_as_live
    def stop_orders(self, portfolio: str | None = None, **ignored: Any) -> LiveFrame:
        return self._portfolio("stop_orders", portfolio)

    @_as_live
    def own_trades(self, portfolio: str | None = None, **ignored: Any) -> LiveFrame:
        return self._portfolio("own_trades", portfolio)

    def _portfolio(self, kind: str, portfolio: str | None) -> LiveFrame:
        assert kind in PORTFOLIO_KINDS
        portfolio = portfolio or self.portfolio
        if portfolio is None:
            found = sorted(p.name.split("=", 1)[1]
                           for p in (self.path / f"kind={kind}").glob("portfolio=*"))
            if not found:
                raise InvalidArgument(f"the recording at {str(self.path)[:200]!r} has no {kind}"
                                      f"; it has {', '.join(k for k in _recorded_kinds(self.path) if k != 'gaps') or 'nothing'}")
            if len(found) != 1:
                raise InvalidArgument(f"{kind} needs portfolio= (recorded: "
                                      f"{', '.join(found)})")
            portfolio = found[0]
        rows = load(self.path, kind, portfolio)
        fill = {"portfolio": portfolio} if "portfolio" in dtypes(SCHEMAS[kind]) else {}
        return self._open(kind, portfolio, {"portfolio": portfolio},
                          RowsReplay(rows, kind, fill))

    def _open(self, kind: str, label: str, params: dict[str, Any], state: Any) -> LiveFrame:
        if self._closed:
            raise StreamClosed("the replay is closed")
        frame = LiveFrame(kind, label, {**params, "replay": str(self.path)}, state,
                          closer=self._forget, clock=self._seconds,
                          stale_after=self.stale_after if kind in WATCHED_KINDS else None)
        with self._lock:
            self._frames.append(frame)
            now = self._current_us()
            position = state.position_at(now)
            FrameWriter(frame).apply([position], state.received_at(position), max(position, 1))
            self._show_status()
        self._wake.set()
        return frame

    def _forget(self, frame: LiveFrame) -> None:
        with self._lock:
            if frame in self._frames:
                self._frames.remove(frame)

    # --- health and lifetime ------------------------------------------------------------------

    @property
    def frames(self) -> list[LiveFrame]:
        with self._lock:
            return list(self._frames)

    def health(self) -> pd.DataFrame:
        """One row per replayed frame with the columns of ``inv.stream.health()``, counted on
        the simulated clock: ``status`` (``stale`` as live: no recorded message for
        ``stale_after`` simulated seconds), ``messages`` (rows or snapshots applied so far),
        ``messages_per_s`` (over the last 5 simulated seconds), ``last_message_age`` and
        ``data_age`` (simulated seconds since the row shown was received), ``callback_lag``,
        ``callbacks_skipped``, ``reconnects`` (0), ``errors`` (callback errors), ``gaps``
        (recorded gaps over by now: live counts a gap once it is over) and ``unfilled_gaps``
        (those recorded with an error);
        then ``total`` (rows recorded) and ``now`` (the simulated time)."""
        rows = []
        now = self.now
        now_us = self._current_us()
        gaps = self._recorded_gaps()
        for frame in self.frames:
            state = FrameWriter(frame).read(lambda s: s)
            age = frame.age
            age = float("nan") if age is None else age
            recent = state.position - state.position_at(now_us - RATE_WINDOW_US)
            mine = gaps[(gaps["data_kind"] == frame.kind) & (gaps["end"] <= now)
                        & gaps["symbol"].isin(_plain_symbols(frame))]
            if frame.kind == "bars":   # its timeframe's (a gap recorded without one: every)
                mine = mine[mine["timeframe"].isna() | (mine["timeframe"] == frame.params["tf"])]
            rows.append({"kind": frame.kind, "symbol": frame.symbol,
                         "timeframe": frame.params["tf"] if frame.kind == "bars" else None,
                         "status": frame.status,
                         "messages": state.position,
                         "messages_per_s": max(recent, 0) / (RATE_WINDOW_US / 1_000_000),
                         "last_message_age": age, "data_age": age,
                         "callback_lag": frame.callback_lag,
                         "callbacks_skipped": frame.callbacks_skipped, "reconnects": 0,
                         "errors": frame.callback_errors, "gaps": len(mine),
                         "unfilled_gaps": int(mine["error"].notna().sum()),
                         "total": len(state.times), "now": now})
        table = pd.DataFrame(rows, columns=[*HEALTH_COLUMNS, "total", "now"])
        return table.astype({"kind": STR_DTYPE, "symbol": STR_DTYPE, "timeframe": "Int64",
                             "status": STR_DTYPE, "messages": "int64", "messages_per_s": "float64",
                             "last_message_age": "float64", "data_age": "float64",
                             "callback_lag": "float64", "callbacks_skipped": "int64",
                             "reconnects": "int64", "errors": "int64", "gaps": "int64",
                             "unfilled_gaps": "int64", "total": "int64"})

    def _recorded_gaps(self) -> pd.DataFrame:
        if self._gaps is None:
            self._gaps = read_recording(self.path, "gaps")
        return self._gaps

    def gaps(self) -> pd.DataFrame:
        """The recorded reconnect gaps (``kind=gaps``; see :func:`read_recording`)."""
        return read_recording(self.path, "gaps")

    def close(self) -> None:
        """Stop the clock and close every frame (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        for frame in self.frames:
            frame.close()
        self._thread.join(5.0)

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "paused" if self.paused else f"playing at {self._speed or 'full'} speed"
        return (f"<Replay {self.path} {self.now.isoformat()} ({self.start.isoformat()} .. "
                f"{self.end.isoformat()}), {state}, {len(self._frames)} frame(s)>")


def _plain_symbols(frame: LiveFrame) -> list[str]:
    """``"MOEX:SBER,MOEX:GAZP"`` -> ``["SBER", "GAZP"]`` (a portfolio stays as it is)."""
    return [part.split(":", 1)[-1] for part in str(frame.symbol or "").split(",")]


def _check_speed(speed: float | None) -> float | None:
    if speed is None:
        return None
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0:
        raise InvalidArgument(f"speed must be a positive number or None (as fast as possible), "
                              f"got {speed!r}")
    return float(speed)


def replay(path: str | os.PathLike[str], start: Any = None, end: Any = None,
           speed: float | None = 10.0, **options: Any) -> Replay:
    """Play the recording at ``path`` (``invia-data record --out``) from ``start`` to ``end``
    (default: all of it) at ``speed`` x real time (None: as fast as possible). The result has
    the subscription methods of ``inv.stream``; its LiveFrames advance together on one clock
    (``pause()``, ``resume()``, ``seek(t)``, ``now``, ``wait()``). ``paused=True`` starts
    paused."""
    allowed = [name for name in inspect.signature(Replay).parameters
               if name not in ("path", "start", "end", "speed")]
    if "record" in options:
        raise InvalidArgument("replay() takes no 'record': a replay plays a recording, it "
                              "records nothing (record the live stream with record=)")
    validate.keywords("replay", options, ["start", "end", "speed", *allowed])
    return Replay(path, start, end, speed, **options)


__all__ = ["Replay", "replay", "read_recording", "recording_dtypes", "receive_us"]
