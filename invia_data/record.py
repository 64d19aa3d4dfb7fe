"""Record live subscriptions into a Hive-partitioned Parquet dataset.

Layout: ``<path>/kind=<kind>/symbol=<symbol>/date=<YYYY-MM-DD>/part-*.parquet`` (portfolio kinds
use ``portfolio=<id>`` instead of ``symbol=``), one schema per kind: the columns of the HTTP
call of that kind, plus ``exchange_time`` (the message's own timestamp where the kind carries
one) and ``receive_time`` (when the stream thread read the message). The partition column is
not repeated inside the files; every Hive reader (pandas, pyarrow, DuckDB, polars, Dask) adds
it back. Order books are long form, one row per level, the rows of one message sharing a
``snapshot_id``. Reconnect gaps go to ``kind=gaps``.

Messages reach the recorder through a sink on each LiveFrame (called by the stream thread with
the raw wire objects of each read): the sink only appends to a buffer. A writer thread turns
the buffers into Arrow tables and writes them when a batch is full (``batch_rows``) or old
(``batch_seconds``), each file first under a hidden temporary name and then renamed, so a
reader never sees half a file and a ``kill -9`` loses at most the batches not yet written.
Buffers are bounded (``max_pending_rows``): past it the stream thread waits for the writer (and
writes itself if the writer is stuck).

A restart on the same path appends: trades resume above the highest id already written,
candles skip versions identical to the last one written.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from .errors import InvalidArgument
from .frames import STR_DTYPE, to_frame
from .schema import (
    BOOK_LEVEL,
    CANDLE,
    FORTS_RISK,
    INSTRUMENT_STATE,
    ORDER,
    ORDERBOOK,
    OWN_TRADE,
    POSITION,
    QUOTE,
    RISK,
    STOP_ORDER,
    SUMMARY,
    TRADE,
    Schema,
)

log = logging.getLogger("invia_data.record")

SCHEMAS: dict[str, Schema] = {
    "all_trades": TRADE, "bars": CANDLE, "quotes": QUOTE, "instrument_state": INSTRUMENT_STATE,
    "positions": POSITION, "summary": SUMMARY, "risk": RISK, "forts_risk": FORTS_RISK,
    "orders": ORDER, "stop_orders": STOP_ORDER, "own_trades": OWN_TRADE,
}
KINDS = ("orderbook", *SCHEMAS)
PORTFOLIO_KINDS = frozenset({"positions", "summary", "risk", "forts_risk", "orders",
                             "stop_orders", "own_trades"})
# the column that holds the message's own exchange timestamp, where the kind has one
EXCHANGE_TIME = {"all_trades": "time", "quotes": "last_price_time", "risk": "calculation_time",
                 "orders": "update_time", "stop_orders": "update_time", "own_trades": "date"}
INDEXED = {"all_trades": "time", "bars": "time"}   # the HTTP frame's index, kept as a column
BOOK_COLUMNS = ("snapshot_id", "side", "level", "price", "volume", "yield")
GAP_COLUMNS = ("data_kind", "timeframe", "start", "end", "backfilled", "error")
TIME_TYPE = pa.timestamp("us", tz="UTC")
# kinds whose live frame merges each message into a row (per key): their rows say which
# fields each message left out (``absent_fields``), so a replay merges as live did
MERGED_KINDS = frozenset({"quotes", "instrument_state", "positions", "summary", "risk",
                          "forts_risk", "orders", "stop_orders", "own_trades"})
ABSENT = "absent_fields"
DEDUP_MEMORY = 4096
PARTITION_PREFIXES = ("kind=", "symbol=", "portfolio=", "date=")
COMPACT_AFTER = 60.0   # seconds after midnight UTC the recorder merges the day that ended
CANDLE_VALUES = ("open", "high", "low", "close", "volume")    # candle versions remembered per instrument


def recording_top(path: Path) -> Path | None:
    """The recording folder that holds ``path`` when ``path`` is inside one (a ``kind=``,
    ``symbol=``, ``portfolio=`` or ``date=`` folder, at any depth), else None."""
    top = None
    for folder in (path, *path.parents):
        if folder.name.startswith(PARTITION_PREFIXES):
            top = folder.parent
    return top


def holds_recording(path: Path) -> bool:
    """Whether ``path`` is a recording's folder (it has ``kind=`` folders)."""
    return any(folder.is_dir() for folder in path.glob("kind=*"))


def foreign_entries(path: Path) -> str:
    """What a folder that is not a recording holds, named for a message ('notes.txt,
    rec/, ...'); '' when it is missing, empty (hidden entries aside) or a recording."""
    if not path.is_dir() or holds_recording(path):
        return ""
    names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in path.iterdir()
                   if not entry.name.startswith("."))
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def dataset_kind(kind: str) -> str:
    """A LiveFrame kind -> the name of its partition (the same name)."""
    if kind not in KINDS:
        raise InvalidArgument(f"cannot record {kind!r}: recordable kinds are {', '.join(KINDS)}")
    return kind


def partition_key(kind: str) -> str:
    """The partition column under ``kind=``: ``portfolio`` for portfolio kinds, else ``symbol``."""
    return "portfolio" if kind in PORTFOLIO_KINDS else "symbol"


def receive_us(now: float) -> int:
    """Receive time (unix seconds, float) -> the microseconds stored in ``receive_time``."""
    return int(round(now * 1_000_000))


# --- converting buffered messages into tables --------------------------------------------------

def _receive_column(times: Sequence[float] | np.ndarray, counts: Sequence[int] | None = None) -> np.ndarray:
    """Receive times -> microseconds, rounded as :func:`receive_us` rounds (half to even)."""
    us = np.round(np.asarray(times, dtype="float64") * 1_000_000).astype("int64")
    return us if counts is None else np.repeat(us, counts)


def _utc(us: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(us.astype("datetime64[us]")).tz_localize("UTC")


# The book files' columns. ``side`` is dictionary-encoded in memory and in the file (cheaper
# to write); book files are written without the Arrow schema, so every reader sees a plain
# string column.
BOOK_SCHEMA = pa.schema([
    ("snapshot_id", pa.int64()), ("side", pa.dictionary(pa.int8(), pa.string())),
    ("level", pa.int64()),
    ("price", pa.float64()), ("volume", pa.int64()), ("yield", pa.float64()),
    ("exchange_time", TIME_TYPE), ("receive_time", TIME_TYPE)])
# A batch in memory holds each book's snapshot id and times once, and the levels' numbers once:
# dictionary columns indexed by each row's book (or level). Laying them out row by row took a
# third of the writer's time with a firehose recorded (memory traffic shared with the stream),
# and Parquet writes dictionary columns without hashing their values. The files hold plain
# columns (``BOOK_SCHEMA``).
BOOK_TABLE_SCHEMA = pa.schema([
    ("snapshot_id", pa.dictionary(pa.int32(), pa.int64())),
    ("side", pa.dictionary(pa.int8(), pa.string())),
    ("level", pa.dictionary(pa.int8(), pa.int64())),
    ("price", pa.float64()), ("volume", pa.int64()), ("yield", pa.float64()),
    ("exchange_time", pa.dictionary(pa.int32(), TIME_TYPE)),
    ("receive_time", pa.dictionary(pa.int32(), TIME_TYPE))])
DAY_US = 86_400_000_000
SIDES = pa.array(["bid", "ask"])


def book_table(books: Sequence[dict[str, Any]], times: Sequence[float], fmt: str) -> pa.Table:
    """Order-book messages -> long form (an Arrow table of ``BOOK_TABLE_SCHEMA``): one row per level,
    bids then asks, best first; ``snapshot_id`` = receive time in microseconds x 1000 + the
    message's place among the messages of its read (unique and increasing). An empty book (the
    close, a halt) is one row with ``level`` -1 and no side, price or volume."""
    bids_key = ORDERBOOK.field("bids").keys(fmt)[0]
    asks_key = ORDERBOOK.field("asks").keys(fmt)[0]
    time_key = ORDERBOOK.field("time").keys(fmt)[0]
    keys = [BOOK_LEVEL.field(name).key(fmt) for name in ("price", "volume", "yield")]
    n = len(books)
    sides = [[book.get(bids_key) or () for book in books],
             [book.get(asks_key) or () for book in books]]
    counts = [np.fromiter(map(len, side), dtype="int64", count=n) for side in sides]
    values = []
    for side in sides:
        levels = [level for book in side for level in book]
        values.append([_level_values(levels, key, dtype)
                       for key, dtype in zip(keys, LEVEL_DTYPES, strict=True)])
    stamps = np.array([book.get(time_key) or 0 for book in books], dtype="float64")
    return _long_form(counts[0], counts[1], values[0], values[1], _receive_column(times), stamps)


LEVEL_DTYPES = ("float64", "int64", "float64")   # price, volume, yield
LEVEL_MISSING = (np.nan, 0, np.nan)


def _long_form(nb: np.ndarray, na: np.ndarray, bids: Sequence[np.ndarray | None],
               asks: Sequence[np.ndarray | None], received: np.ndarray,
               stamps: np.ndarray) -> pa.Table:
    """Books given as their level counts and flattened level values (price, volume, yield of
    every bid level, book by book, None for a field no level has; the same for asks) -> the
    ``BOOK_TABLE_SCHEMA`` table, rows book by book (its bids, then its asks), gathered with
    one take per column."""
    depth = int(nb[0]) if len(nb) else 0
    if depth and nb.min() == nb.max() == na.min() == na.max() == depth:
        return _full_books_long(depth, bids, asks, received, stamps)
    levels = nb + na
    rows = np.maximum(levels, 1)                     # an empty book keeps one marker row
    total, total_bids = int(rows.sum()), int(nb.sum())
    book_start = np.repeat(np.cumsum(rows) - rows, rows)
    within = np.arange(total, dtype="int64") - book_start
    bids_here = np.repeat(nb, rows)
    is_ask = within >= bids_here
    marker = np.repeat(levels == 0, rows)
    source = np.where(is_ask, total_bids + np.repeat(np.cumsum(na) - na, rows) - bids_here,
                      np.repeat(np.cumsum(nb) - nb, rows)) + within
    source[marker] = 0
    columns = []
    for bid_values, ask_values, missing in zip(bids, asks, LEVEL_MISSING, strict=True):
        if bid_values is None and ask_values is None:
            columns.append(_missing_everywhere(missing, total))
            continue
        values = np.concatenate([_present(bid_values, missing, total_bids),
                                 _present(ask_values, missing, int(na.sum())), [missing]])
        columns.append(values[np.where(marker, len(values) - 1, source)])
    level = np.where(marker, -1, np.where(is_ask, within - bids_here, within))
    top = int(levels.max()) if len(levels) else 0
    book = np.repeat(np.arange(len(rows), dtype="int32"), rows)
    return _book_rows(received, stamps, book, pa.array(is_ask.astype("int8"), mask=marker),
                      pa.DictionaryArray.from_arrays((level + 1).astype(_level_code(top)),
                                                     np.arange(-1, top, dtype="int64")),
                      columns)


def _full_books_long(depth: int, bids: Sequence[np.ndarray | None],
                     asks: Sequence[np.ndarray | None],
                     received: np.ndarray, stamps: np.ndarray) -> pa.Table:
    """:func:`_long_form` of books that all hold ``depth`` levels a side (the usual batch):
    each book's bids and asks side by side, no gather."""
    count = len(received)
    book, side, level = _full_book_pattern(depth, count)
    columns = [_missing_everywhere(missing, 2 * depth * count) if b is None and a is None else
               np.concatenate([_present(b, missing, depth * count).reshape(count, depth),
                               _present(a, missing, depth * count).reshape(count, depth)],
                              axis=1).ravel()
               for b, a, missing in zip(bids, asks, LEVEL_MISSING, strict=True)]
    return _book_rows(received, stamps, book, pa.array(side),
                      pa.DictionaryArray.from_arrays(level, np.arange(depth, dtype="int64")),
                      columns)


def _level_field(levels: pa.Array, key: str | None, dtype: str,
                 missing: float) -> np.ndarray | None:
    """One field of every parsed level; None when no level has it (a share's yield)."""
    if not key:
        return None
    field = pc.struct_field(levels, key)
    if len(field) and field.null_count == len(field):
        return None
    return _numpy(field, dtype, missing)


def _present(values: np.ndarray | None, missing: float, count: int) -> np.ndarray:
    """Level values, or ``count`` missing ones for a field no level had."""
    return values if values is not None else _missing_everywhere(missing, count)


# (missing value, dtype) -> the longest column of it made yet (read-only: columns are slices)
_MISSING_COLUMNS: dict[str, np.ndarray] = {}


def _missing_everywhere(missing: float, count: int) -> np.ndarray:
    """A column of ``count`` missing values (NaN for prices and yields, 0 for volumes), sliced
    from one made once: a share's yield column costs nothing."""
    dtype = "float64" if isinstance(missing, float) else "int64"
    column = _MISSING_COLUMNS.get(dtype)
    if column is None or len(column) < count:
        column = np.full(max(count, 1 << 16), missing, dtype=dtype)
        column.flags.writeable = False
        _MISSING_COLUMNS[dtype] = column
    return column[:count]


def _level_code(top: int) -> str:
    return "int8" if top < 127 else "int16"


# depth -> each row's book, side and level code for the most books laid out yet (read-only:
# a batch takes the leading slice, not a copy)
_FULL_BOOK_PATTERNS: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _full_book_pattern(depth: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = 2 * depth * count
    pattern = _FULL_BOOK_PATTERNS.get(depth)
    if pattern is None or len(pattern[0]) < rows:
        books = max(count, 4096)
        pattern = (np.repeat(np.arange(books, dtype="int32"), 2 * depth),
                   np.tile(np.repeat(np.array([0, 1], dtype="int8"), depth), books),
                   np.tile(np.arange(depth, dtype=_level_code(depth)), 2 * books))
        for array in pattern:
            array.flags.writeable = False
        _FULL_BOOK_PATTERNS[depth] = pattern
    return pattern[0][:rows], pattern[1][:rows], pattern[2][:rows]


def _book_rows(received: np.ndarray, stamps: np.ndarray, book: np.ndarray,
               side: pa.Array, level: pa.DictionaryArray, columns: list[np.ndarray]) -> pa.Table:
    """The ``BOOK_TABLE_SCHEMA`` table of books laid out long (``book``: every row's book, an
    index into ``received`` and ``stamps``): each book's snapshot id and times stored once."""
    exchange = np.round(stamps * 1000).astype("int64")
    unstamped = exchange == 0
    return pa.table([
        pa.DictionaryArray.from_arrays(book, received * 1000 + _place_in_read(received)),
        pa.DictionaryArray.from_arrays(side, SIDES), level,
        pa.array(columns[0]), pa.array(columns[1]), pa.array(columns[2]),
        pa.DictionaryArray.from_arrays(
            pa.array(book, mask=unstamped[book]) if unstamped.any() else book,
            pa.array(exchange, TIME_TYPE)),
        pa.DictionaryArray.from_arrays(book, pa.array(received, TIME_TYPE)),
    ], schema=BOOK_TABLE_SCHEMA)


def plain_books(table: pa.Table) -> pa.Table:
    """A book table in memory (``BOOK_TABLE_SCHEMA``) -> the columns of its file (``BOOK_SCHEMA``)."""
    return table.cast(BOOK_SCHEMA)


def _level_values(levels: list[dict[str, Any]], key: str | None, dtype: str) -> np.ndarray:
    """One field of every level (NaN or 0 where a level lacks it)."""
    missing = np.nan if dtype == "float64" else 0
    if key is None or not levels or key not in levels[0]:
        if key is None or all(key not in level for level in levels[:64]):
            return np.full(len(levels), missing, dtype=dtype)
    try:
        return np.fromiter(map(itemgetter(key), levels), dtype=dtype, count=len(levels))
    except (KeyError, TypeError):   # a level without the field, or null: the slow way
        return np.array([missing if level.get(key) is None else level[key] for level in levels],
                        dtype=dtype)


def record_table(kind: str, items: Sequence[dict[str, Any]], times: Sequence[float],
                 fmt: str) -> pd.DataFrame:
    """Messages of a non-book kind -> the HTTP frame's columns (its index as a column) plus
    ``exchange_time`` and ``receive_time``."""
    schema = SCHEMAS[kind]
    frame = to_frame(schema, list(items), fmt)
    if kind in INDEXED:
        frame = frame[[INDEXED[kind], *[c for c in frame.columns if c != INDEXED[kind]]]]
    stamp = EXCHANGE_TIME.get(kind)
    exchange = (frame[stamp] if stamp is not None
                else pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]"))
    frame["exchange_time"] = pd.DatetimeIndex(exchange).as_unit("us")
    frame["receive_time"] = _utc(_receive_column(times))
    if kind in MERGED_KINDS:
        frame[ABSENT] = pd.array(absent_fields(schema, items, fmt), dtype=STR_DTYPE)
    return frame


def absent_fields(schema: Schema, items: Sequence[dict[str, Any]], fmt: str) -> list[str | None]:
    """Per message: the columns whose field it did not carry, comma-separated (None: it
    carried all). A live frame merges a message into the row of its key field by field: a
    field sent as null blanks the value, a field left out keeps it; both are null in the
    message's row, this tells them apart."""
    fields = [(f.name, keys) for f in schema.fields if not f.legacy and (keys := f.keys(fmt))]
    every = {keys[0] for _, keys in fields}
    out: list[str | None] = []
    for data in items:
        if every <= data.keys():
            out.append(None)
            continue
        missing = [name for name, keys in fields
                   if keys[0] not in data and (len(keys) == 1 or not any(map(data.__contains__,
                                                                                keys)))]
        out.append(",".join(missing) or None)
    return out


# --- frames' bytes -> Arrow, parsed off the interpreter lock ---------------------------------------
#
# Parsing the recorded messages in Python would hold the interpreter lock and slow the stream
# itself. So the recorder keeps the frames' bytes (recorded books reach it unparsed, routed by
# their guid) and parses whole batches in native code that releases the lock: DuckDB when it
# is installed (``pip install "invia-data[record]"``; a 10-level book parsed and put in long
# form in one query, about 5 us of CPU over its threads), else Arrow's JSON reader (about 8 us
# to parse). Either way the stream thread only appends bytes to a list.

RAW_KINDS = frozenset({"orderbook", "all_trades"})   # the firehose kinds: parsed from bytes
_WIRE_TYPES = {"float": pa.float64(), "int": pa.int64(), "i8": pa.int64(), "str": pa.string(),
               "bool": pa.bool_(), "ts_ms": pa.float64(), "ts_s": pa.float64(),
               "iso": pa.string()}
_DUCKDB_TYPES = {pa.float64(): "DOUBLE", pa.int64(): "BIGINT", pa.string(): "VARCHAR",
                 pa.bool_(): "BOOLEAN"}
# order books (~2.6 us a book in DuckDB) are parsed on several threads; flat kinds (~0.5 us a
# trade) on one, which leaves the stream thread its core (measured: 0.78 vs 0.74 of its rate)
BOOK_THREADS = min(4, os.cpu_count() or 1)
_duckdb_connections = threading.local()   # a DuckDB connection is used by one thread at a time


@functools.cache
def parse_engine() -> str:
    """The JSON parser recorded frames go through: ``"duckdb"`` when installed, else ``"arrow"``."""
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return "arrow"
    return "duckdb"


def _duckdb_spec(kind: pa.DataType) -> Any:
    """An Arrow type -> the structure ``json_transform`` takes (keys are the wire's own)."""
    if pa.types.is_struct(kind):
        return {kind.field(i).name: _duckdb_spec(kind.field(i).type)
                for i in range(kind.num_fields)}
    if pa.types.is_list(kind):
        return [_duckdb_spec(kind.value_type)]
    return _DUCKDB_TYPES[kind]


class FrameBytes(Sequence[bytes]):
    """The bytes of recorded frames: each socket read's frames joined, the lengths beside.

    The stream thread joins a read's frames while they are in its cache and copies the result
    into a segment of memory used before (a fresh allocation for every read faults its pages
    in: ~0.1 us a frame on the stream thread, the copy ~0.02); the parser reads the segments in
    place, one Arrow string array each, instead of touching every frame's bytes object again
    under the interpreter lock (cold by then: it held the stream back by ~0.4 us a frame).
    :meth:`release` gives the segments back to ``pool`` once the batch is parsed.
    """

    SEGMENT = 4 << 20
    POOLED = 64   # segments kept for reuse at most (256 MB: a batch of trades is ~75 MB)

    def __init__(self, pool: list[bytearray] | None = None) -> None:
        self._pool = [] if pool is None else pool
        # (memory, bytes used, its reads: the range of _lengths/_times)
        self._segments: list[tuple[bytearray | bytes, int, int, int]] = []
        self._segment: bytearray | None = None
        self._view: memoryview | None = None
        self._used = 0
        self._first_read = 0
        self._lengths: list[np.ndarray] = []
        self._times: list[float] = []
        self._count = 0

    def add(self, frames: Sequence[bytes], now: float) -> None:
        """Keep ``frames`` (the bytes of one read's messages) received at ``now``."""
        chunk = b"".join(frames)
        size = len(chunk)
        if self._segment is None or self._used + size > self.SEGMENT:
            self._end_segment()
            if size > self.SEGMENT:   # a segment of its own
                self._segments.append((chunk, size, len(self._lengths), len(self._lengths) + 1))
                self._first_read += 1
            else:
                try:
                    self._segment = self._pool.pop()
                except IndexError:
                    self._segment = bytearray(self.SEGMENT)
                self._view = memoryview(self._segment)
        if self._view is not None:
            self._view[self._used:self._used + size] = chunk
            self._used += size
        self._lengths.append(np.fromiter(map(len, frames), np.int64, len(frames)))
        self._times.append(now)
        self._count += len(frames)

    def _end_segment(self) -> None:
        if self._segment is not None:
            if self._used:
                self._segments.append((self._segment, self._used, self._first_read,
                                       len(self._lengths)))
            else:
                self._pool.append(self._segment)
        if self._view is not None:
            self._view.release()
        self._segment, self._view, self._used = None, None, 0
        self._first_read = len(self._lengths)

    def _chunks(self) -> Iterator[tuple[memoryview, np.ndarray]]:
        """Each segment's bytes and where its frames start in them (and the end)."""
        self._end_segment()
        for memory, used, first, last in self._segments:
            sizes = (np.concatenate(self._lengths[first:last]) if last > first
                     else np.empty(0, dtype=np.int64))
            offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
            np.cumsum(sizes, out=offsets[1:])
            yield memoryview(memory)[:used], offsets

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        for data, offsets in self._chunks():
            for start, stop in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
                yield bytes(data[start:stop])

    def __getitem__(self, index: Any) -> Any:   # (rarely: the objects path iterates)
        return list(self)[index]

    def times(self) -> np.ndarray:
        """Each frame's receive time (unix seconds)."""
        counts = [len(lengths) for lengths in self._lengths]
        return np.repeat(np.asarray(self._times, dtype="float64"), counts)

    def strings(self) -> pa.ChunkedArray:
        """Every frame as Arrow strings over the segments, not copied (the text is checked by
        the JSON parser)."""
        return pa.chunked_array(
            [pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets),
                                              pa.py_buffer(data))
             for data, offsets in self._chunks()], type=pa.large_string())

    def release(self) -> None:
        """The batch is parsed: its segments go back to the pool (none may be read after)."""
        self._end_segment()
        for memory, *_ in self._segments:
            if type(memory) is bytearray and len(self._pool) < self.POOLED:
                self._pool.append(memory)
        self._segments = []


def _payload_strings(payloads: Sequence[bytes]) -> pa.Array | pa.ChunkedArray:
    """The frames' bytes as one Arrow string array, without a Python string per frame (one
    copy in Arrow's C++, about half the time of joining them in Python; the text is checked
    by the JSON parser, not here)."""
    if isinstance(payloads, FrameBytes):
        return payloads.strings()
    return pa.array(payloads, type=pa.large_binary()).view(pa.large_string())


def _duckdb_select(payloads: Sequence[bytes], columns: dict[str, np.ndarray],
                   *selects: str, threads: int = 1) -> pa.Table:
    """Run ``selects`` (one after another) over the frames (column ``j``) and ``columns``,
    on ``threads`` DuckDB threads."""
    import duckdb

    con = getattr(_duckdb_connections, "con", None)
    if con is None:
        con = _duckdb_connections.con = duckdb.connect()
        _duckdb_connections.threads = 0
    if _duckdb_connections.threads != threads:
        con.execute(f"SET threads = {threads}")
        _duckdb_connections.threads = threads
    strings = _payload_strings(payloads)
    # in chunks: DuckDB parses the chunks of one batch in parallel (and keeps their order)
    step = max(2048, len(strings) // (4 * threads) + 1)
    names = ["j", *columns]
    batches, done = [], 0
    for piece in (strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]):
        for lo in range(0, len(piece), step):
            part = piece.slice(lo, step)
            at = done + lo
            batches.append(pa.record_batch(
                [part, *(pa.array(v[at:at + len(part)]) for v in columns.values())],
                names=names))
        done += len(piece)
    relation = con.from_arrow(pa.Table.from_batches(batches) if batches else
                              pa.table({"j": strings, **columns}))
    for select in selects:
        relation = relation.select(select)
    # (to_arrow_table since DuckDB 1.4; fetch_arrow_table before, deprecated after)
    fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    table: pa.Table = fetch()
    return table


def _json_transform(data: pa.DataType) -> str:
    spec = orjson.dumps({"data": _duckdb_spec(data)}).decode().replace("'", "''")
    return f"json_transform(j, '{spec}').data"


def _read_frames_duckdb(payloads: Sequence[bytes], data: pa.DataType,
                        threads: int = 1) -> pa.StructArray:
    table = _duckdb_select(payloads, {}, f"{_json_transform(data)} AS data", threads=threads)
    return table.column("data").combine_chunks().cast(data)


def _read_frames_arrow(payloads: Sequence[bytes], data: pa.DataType) -> pa.StructArray:
    options = pa_json.ParseOptions(explicit_schema=pa.schema([("data", data)]),
                                   unexpected_field_behavior="ignore")
    table = pa_json.read_json(io.BytesIO(b"\n".join(payloads)), parse_options=options,
                              read_options=pa_json.ReadOptions(block_size=1 << 24))
    return table.column("data").combine_chunks()


def _read_frames(payloads: Sequence[bytes], data: pa.DataType,
                 engine: str | None = None, threads: int = 1) -> pa.StructArray:
    """WebSocket data frames (``{"data": {...}, "guid": ...}``) -> their ``data`` objects.
    A field of another type than the schema's is null with DuckDB; Arrow refuses the batch
    (the caller then takes the objects path)."""
    if (engine or parse_engine()) == "duckdb":
        return _read_frames_duckdb(payloads, data, threads)
    return _read_frames_arrow(payloads, data)


def _numpy(array: pa.Array, dtype: str, missing: Any) -> np.ndarray:
    if array.null_count:
        array = array.fill_null(missing)
    return array.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def raw_book_table(payloads: Sequence[bytes], times: Sequence[float] | np.ndarray, fmt: str,
                   engine: str | None = None) -> pa.Table:
    """Order-book frames' bytes -> the same table as :func:`book_table`."""
    bids_key = ORDERBOOK.field("bids").keys(fmt)[0]
    asks_key = ORDERBOOK.field("asks").keys(fmt)[0]
    time_key = ORDERBOOK.field("time").keys(fmt)[0]
    level_fields = [(BOOK_LEVEL.field(name).key(fmt), kind) for name, kind in
                    (("price", pa.float64()), ("volume", pa.int64()), ("yield", pa.float64()))]
    level = pa.struct([(key, kind) for key, kind in level_fields if key])
    wire = pa.struct([(bids_key, pa.list_(level)), (asks_key, pa.list_(level)),
                      (time_key, pa.float64())])
    # parsed off the interpreter lock (DuckDB: in parallel), laid out long here: unnesting in
    # DuckDB cost as much as the parsing, the layout of full books ~0.1 us a book
    data = _read_frames(payloads, wire, engine, threads=BOOK_THREADS)
    bids, asks = pc.struct_field(data, bids_key), pc.struct_field(data, asks_key)
    flat = [pc.list_flatten(bids), pc.list_flatten(asks)]
    values = [[_level_field(side, key, dtype, missing)
               for (key, _), dtype, missing in zip(level_fields, LEVEL_DTYPES, LEVEL_MISSING,
                                                   strict=True)] for side in flat]
    return _long_form(_numpy(pc.list_value_length(bids), "int64", 0),
                      _numpy(pc.list_value_length(asks), "int64", 0), values[0], values[1],
                      _receive_column(times),
                      _numpy(pc.struct_field(data, time_key), "float64", 0.0))


def _place_in_read(received: np.ndarray) -> np.ndarray:
    """Messages of one read share a receive time: their places 0, 1, ... among them."""
    run = np.arange(len(received), dtype="int64")
    if len(received):
        new_time = np.concatenate([[True], received[1:] != received[:-1]])
        run -= np.maximum.accumulate(np.where(new_time, run, 0))
    return run


_SCHEMA_CACHE: dict[str, pa.Schema] = {}


def kind_schema(kind: str) -> pa.Schema:
    """The Arrow schema of a non-book kind's files (partition column left out)."""
    if kind not in _SCHEMA_CACHE:
        empty = record_table(kind, [], [], "Simple").drop(columns=[partition_key(kind)],
                                                          errors="ignore")
        _SCHEMA_CACHE[kind] = _cast_times(pa.Table.from_pandas(empty, preserve_index=False)
                                          ).schema
    return _SCHEMA_CACHE[kind]


def raw_record_table(kind: str, payloads: Sequence[bytes], times: Sequence[float] | np.ndarray,
                     fmt: str, engine: str | None = None) -> pa.Table:
    """Frames' bytes of a non-book kind -> the Arrow table of ``kind_schema(kind)``."""
    schema = SCHEMAS[kind]
    fields = [f for f in schema.fields if not f.legacy]
    wire = {f.name: f.key(fmt) for f in fields}
    data = _read_frames(payloads, pa.struct([(key, _WIRE_TYPES.get(f.kind, pa.string()))
                                             for f in fields if (key := wire[f.name])]),
                        engine)
    target = kind_schema(kind)
    columns: dict[str, pa.Array] = {}
    for f in fields:
        if f.name not in target.names:
            continue
        key = wire[f.name]
        kind_type = target.field(f.name).type
        if key is None:
            columns[f.name] = pa.nulls(len(data), kind_type)
            continue
        values = data.field(key)
        if f.kind in ("ts_ms", "ts_s"):
            scale = 1000 if f.kind == "ts_ms" else 1_000_000
            number = _numpy(values, "float64", 0.0)
            us = np.round(number * scale).astype("int64")
            columns[f.name] = pa.array(us, TIME_TYPE, mask=number == 0)
        elif f.kind == "iso":
            parsed = pd.to_datetime(values.to_pandas(), utc=True, format="ISO8601")
            columns[f.name] = pa.array(pd.DatetimeIndex(parsed).as_unit("us"), TIME_TYPE)
        else:
            columns[f.name] = values.cast(kind_type)
    stamp = EXCHANGE_TIME.get(kind)
    columns["exchange_time"] = (columns[stamp] if stamp in columns
                                else pa.nulls(len(data), TIME_TYPE))
    columns["receive_time"] = pa.array(_receive_column(times), TIME_TYPE)
    return pa.table([columns[name] for name in target.names], schema=target)


def _data_of(payload: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(payload).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return data if type(data) is dict else None


_SLOW_PATH_SAID: set[str] = set()   # kinds whose slow path was logged as a warning once


def payload_table(kind: str, payloads: Sequence[bytes], times: Sequence[float] | np.ndarray,
                  fmt: str, engine: str | None = None) -> pa.Table:
    """Frames' bytes of a RAW_KINDS kind -> its table; a batch the native parser refuses (a
    field of an unexpected type) goes through the objects path instead, so nothing is lost."""
    try:
        if kind == "orderbook":
            return raw_book_table(payloads, times, fmt, engine)
        return raw_record_table(kind, payloads, times, fmt, engine)
    except Exception as exc:  # noqa: BLE001 (pyarrow.ArrowInvalid, duckdb.Error, ...)
        level = logging.DEBUG if kind in _SLOW_PATH_SAID else logging.WARNING
        _SLOW_PATH_SAID.add(kind)
        log.log(level, "recorder: %d %s frames through the slow path: %s", len(payloads), kind,
                str(exc)[:200])
    items, kept = [], []
    for payload, received in zip(payloads, times, strict=True):
        data = _data_of(payload)
        if data is not None:
            items.append(data)
            kept.append(received)
    if len(items) < len(payloads):   # (recorded books are routed unparsed by the stream)
        log.warning("recorder: %d %s frames were not JSON data frames, left out",
                    len(payloads) - len(items), kind)
    times = kept
    if kind == "orderbook":
        return book_table(items, times, fmt)
    frame = record_table(kind, items, times, fmt).drop(columns=[partition_key(kind)],
                                                       errors="ignore")
    return _cast_times(pa.Table.from_pandas(frame, preserve_index=False)).cast(
        kind_schema(kind))


def frame_table(kind: str, frame: pd.DataFrame, now: float) -> pd.DataFrame | pa.Table:
    """What a LiveFrame held (its ``.df``) -> the rows of the dataset, received at ``now``."""
    received = _utc(np.full(len(frame), receive_us(now), dtype="int64"))
    if kind == "orderbook":
        stamp = frame.attrs.get("time")
        table = pd.DataFrame({"snapshot_id": np.full(len(frame), receive_us(now) * 1000)})
        table = pd.concat([table, frame.reset_index(drop=True)], axis=1)
        table["exchange_time"] = pd.DatetimeIndex(
            [stamp if stamp is not None else pd.NaT] * len(frame), tz="UTC").as_unit("us")
        table["receive_time"] = received
        return _cast_times(pa.Table.from_pandas(table, preserve_index=False)
                           ).replace_schema_metadata(None).cast(BOOK_SCHEMA)
    table = frame.reset_index() if kind in INDEXED else frame.reset_index(drop=True)
    table = table.drop(columns=["is_closed"], errors="ignore")
    stamp = EXCHANGE_TIME.get(kind)
    table["exchange_time"] = (pd.DatetimeIndex(table[stamp]).as_unit("us") if stamp
                              else pd.DatetimeIndex([pd.NaT] * len(table), tz="UTC").as_unit("us"))
    table["receive_time"] = received
    if kind in MERGED_KINDS:   # the frame's rows as they stood: every field is set
        table[ABSENT] = pd.array([None] * len(table), dtype=STR_DTYPE)
    return table


# --- the recorder -----------------------------------------------------------------------------

class _Source:
    """One recorded LiveFrame: its buffer and counters."""

    def __init__(self, frame: Any, kind: str, fmt: str) -> None:
        self.frame = frame
        self.kind = kind
        self.fmt = fmt
        self.symbol = frame.symbol
        self.items: list[Any] = []
        self.times: list[float] = []
        self.pool: list[bytearray] = []    # memory for the frames' bytes, reused
        self.payloads = FrameBytes(self.pool)   # frames' bytes (RAW_KINDS), parsed natively
        self.weight = 2 * int(frame.params.get("depth") or 10) if kind == "orderbook" else 1
        self.messages = 0
        self.rows = 0
        self.files = 0
        self.oldest: float | None = None   # receive time of the oldest message not written
        self.initial: pd.DataFrame | None = None   # what the frame held when recording began
        # the last receive time (us) an earlier run wrote, by partition (a quotes frame has
        # several): the start of the gap while the recorder was not running
        self.resumed: dict[str, int] = {}
        self.sink: Callable[[Sequence[Any], float], None] | None = None


class Recorder:
    """Writes every message of some LiveFrames into a Parquet dataset at ``path``.

    ``batch_rows``/``batch_seconds``: the buffers are written once they hold that many rows
    (an order book counts 2 x depth) or the oldest message is that old; each write is one file
    per frame and day. ``max_pending_rows``: beyond it the stream thread waits for the writer
    (so the socket waits too) and, after ``max_pending_wait`` seconds, writes the batch itself:
    memory stays bounded however slow the disk. ``stream``: the Stream whose ``gaps()`` are
    copied into the dataset. ``compact``: at the start and a minute after each UTC midnight,
    merge the files of the days before into a few large ones, on a thread of its own (see
    :func:`invia_data.compact_recording`). ``clock`` gives unix seconds (tests inject one).
    """

    def __init__(self, path: str | os.PathLike[str], frames: Iterable[Any] = (), *,
                 stream: Any = None, batch_rows: int = 500_000, batch_seconds: float = 5.0,
                 max_pending_rows: int = 1_000_000, compact: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        if not isinstance(batch_rows, int) or batch_rows < 1:
            raise InvalidArgument(f"batch_rows must be a positive integer, got {batch_rows!r}")
        if not batch_seconds > 0:
            raise InvalidArgument(f"batch_seconds must be positive, got {batch_seconds!r}")
        if not isinstance(compact, bool):
            raise InvalidArgument(f"compact must be True or False, got {compact!r}"[:200])
        self.compact = compact
        self._compacted_day: int | None = None
        self._compacting: threading.Thread | None = None
        self.path = Path(path)
        top = recording_top(self.path.absolute())
        if top is not None:   # a recording inside a recording: every reader would mix them
            raise InvalidArgument(f"{str(path)[:200]!r} is inside the recording at "
                                  f"{str(top)[:200]!r}: record into that folder (or another "
                                  "outside it)")
        others = foreign_entries(self.path)
        if others:   # a recording beside them would be mixed into every reader of the folder
            raise InvalidArgument(f"{str(path)[:200]!r} holds {others} and no recording: "
                                  "record into a new or empty folder (or into a recording)")
        self.path.mkdir(parents=True, exist_ok=True)
        self.batch_rows = batch_rows
        self.batch_seconds = float(batch_seconds)
        self.max_pending_rows = max(int(max_pending_rows), batch_rows)
        self.stream = stream
        self._clock = clock
        self._lock = threading.Lock()         # buffers and counters
        self._room = threading.Condition(self._lock)   # the buffers were taken by the writer
        self.max_pending_wait = 5.0   # seconds the stream waits for the writer before writing
        self._write_lock = threading.Lock()   # one writer at a time, files in order
        self._sources: list[_Source] = []
        self._pending = 0
        self._seq = 0
        self._files = 0
        self._rows = 0
        self._gaps_written = 0
        self._gaps_seen: tuple[int | None, int] = (None, 0)
        self._gap_keys: set[tuple[Any, ...]] = set()
        self._last_id: dict[str, int] = {}
        # (symbol, timeframe) -> candle start -> the last version written
        self._candles: dict[tuple[str, int], OrderedDict[int, tuple[Any, ...]]] = {}
        self._errors = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._remove_temporary_files()
        self._files_queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._file_thread = threading.Thread(target=self._write_files, daemon=True,
                                             name="invia-data-recorder-files")
        self._file_thread.start()
        self._thread = threading.Thread(target=self._run, name="invia-data-recorder",
                                        daemon=True)
        self._thread.start()
        for frame in frames:
            self.add(frame)

    # --- public -------------------------------------------------------------------------------

    def add(self, frame: Any) -> None:
        """Record a LiveFrame from now on (each of its messages, as the stream reads them)."""
        if self._closed:
            raise InvalidArgument("the recorder is closed")
        with self._lock:
            if any(source.frame is frame for source in self._sources):
                return   # recorded already (a notebook cell run again)
        kind = dataset_kind(getattr(frame, "kind", None) or "")
        fmt = frame.params.get("format")
        if fmt is None:
            raise InvalidArgument(f"{frame!r} does not say its wire format")
        source = _Source(frame, kind, fmt)
        self._seed(source)

        def sink(items: Sequence[Any], now: float, raw: Sequence[bytes] | None = None,
                 source: _Source = source) -> None:
            self._receive(source, items, now, raw)

        source.sink = sink
        with self._lock:
            self._sources.append(source)
            held, updated = frame._add_sink(sink)
            if len(held):
                source.initial = frame_table(kind, held, updated or self._clock())
                source.oldest = updated or self._clock()

    def flush(self) -> None:
        """Write everything buffered now (returns when it is on disk)."""
        self._write_all(force=True)
        self._write_gaps()
        self._files_queue.join()

    def close(self) -> None:
        """Stop recording: detach from the frames, write what is buffered (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            sources = list(self._sources)
            self._room.notify_all()
        for source in sources:
            source.frame._remove_sink(source.sink)
        self._stop.set()
        self._wake.set()
        self._thread.join(30.0)
        if self._compacting is not None:   # (it stops between partitions)
            self._compacting.join(30.0)
        self.flush()
        self._files_queue.put(None)
        self._file_thread.join(30.0)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> pd.DataFrame:
        """One row per recorded frame: ``kind``, ``symbol``, ``timeframe`` (of bars: the
        candles' seconds, as the files' ``timeframe`` column; null for other kinds),
        ``status``, ``messages`` (received), ``rows`` and ``files`` (written), ``pending``
        (messages buffered), ``lag`` (seconds since the oldest buffered message arrived; 0
        when nothing waits)."""
        now = self._clock()
        with self._lock:
            rows = [{"kind": s.kind, "symbol": s.symbol,
                     "timeframe": _timeframe(s) if s.kind == "bars" else None,
                     "status": s.frame.status,
                     "messages": s.messages, "rows": s.rows, "files": s.files,
                     "pending": len(s.items) + len(s.payloads),
                     "lag": 0.0 if s.oldest is None else max(0.0, now - s.oldest)}
                    for s in self._sources]
        table = pd.DataFrame(rows, columns=["kind", "symbol", "timeframe", "status", "messages",
                                            "rows", "files", "pending", "lag"])
        table.attrs.update(gaps=self._gaps_written, errors=self._errors, path=str(self.path))
        return table.astype({"timeframe": "Int64", "messages": "int64", "rows": "int64",
                             "files": "int64", "pending": "int64", "lag": "float64"})

    def status_line(self) -> str:
        """``messages, rows, files, gaps, lag`` in one line, for a terminal."""
        table = self.health()
        lag = float(table["lag"].max()) if len(table) else 0.0
        live = int((table["status"] != "closed").sum())
        state = (f"closed after {len(table)} frame(s)" if self._closed else
                 f"recording {live} frame(s)" + (f" ({len(table) - live} closed)"
                                                 if live < len(table) else ""))
        line = (f"{state}: {int(table['messages'].sum())} messages, "
                f"{self._rows} rows, {self._files} files, {self._gaps_written} gaps, "
                f"lag {lag:.1f} s")
        if self._errors:
            line += f", {self._errors} write errors (last: {self.last_error})"
        return line

    def __repr__(self) -> str:
        return f"<Recorder {self.path}: {self.status_line()}>"

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def files(self) -> int:
        return self._files

    # --- the stream thread's side -------------------------------------------------------------

    def _receive(self, source: _Source, items: Sequence[Any], now: float,
                 raw: Sequence[bytes] | None = None) -> None:
        # raw: every message's bytes (a conflated book's items hold only the latest)
        count = len(raw) if raw is not None and source.kind in RAW_KINDS else len(items)
        with self._lock:
            if source.oldest is None:
                source.oldest = now
            if count and raw is not None and source.kind in RAW_KINDS:
                source.payloads.add(raw, now)
            else:
                source.items.extend(items)
                source.times.extend([now] * count)
            source.messages += count
            self._pending += count * source.weight
            pending = self._pending
        if pending >= self.batch_rows:
            self._wake.set()
        if pending >= self.max_pending_rows:
            self._make_room()

    def _make_room(self) -> None:
        """The writer is behind: wait (the socket then waits too) until it takes the buffers,
        which leaves it the interpreter lock; if it is stuck, write here. Memory stays bounded
        either way."""
        with self._room:
            drained = self._room.wait_for(lambda: self._pending < self.max_pending_rows
                                          or self._closed, self.max_pending_wait)
        if not drained:
            self._write_all(force=True)

    # --- the writer ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(min(1.0, self.batch_seconds / 2))
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._write_all(force=False)
                if self.stream is not None:
                    self._write_gaps()
                self._compact_closed_days()
            except Exception as exc:  # keep recording; the status line shows the error
                self._errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("recorder: writing failed")

    def _compact_closed_days(self) -> None:
        """At the start and once a UTC day has ended (and its last batches are written: a
        minute later), merge the files of the days before it, on a thread of its own."""
        day = int((self._clock() - COMPACT_AFTER) // 86_400)
        busy = self._compacting is not None and self._compacting.is_alive()
        if not self.compact or day == self._compacted_day or busy:
            return
        self._compacted_day = day
        self._compacting = threading.Thread(target=self._compact, args=(day * 86_400.0,),
                                            name="invia-data-recorder-compact", daemon=True)
        self._compacting.start()

    def _compact(self, before: float) -> None:
        from .compact import compact_days

        try:
            summary = compact_days(self.path, before, self._stop.is_set)
        except Exception as exc:  # the files stay as they were; the status line says so
            self._errors += 1
            self.last_error = f"compacting: {type(exc).__name__}: {exc}"
            log.exception("recorder: compacting the closed days failed")
            return
        if len(summary):
            log.info("recorder: %d files of %d closed-day partitions merged into %d",
                     summary["files"].sum(), len(summary), summary["merged_into"].sum())

    def _write_all(self, force: bool) -> None:
        with self._write_lock:
            now = self._clock()
            with self._lock:
                due = [s for s in self._sources
                       if (s.items or s.payloads or s.initial is not None)
                       and (force or self._pending >= self.batch_rows
                            or now - (s.oldest or now) >= self.batch_seconds)]
                batches = []
                for source in due:
                    batches.append((source, source.initial, source.items, source.times,
                                    source.payloads))
                    self._pending -= (len(source.items) + len(source.payloads)) * source.weight
                    source.items, source.times, source.oldest = [], [], None
                    source.payloads = FrameBytes(source.pool)
                    source.initial = None
                self._room.notify_all()
            for batch in batches:
                try:
                    self._write_source(*batch)
                finally:
                    batch[-1].release()   # the frames' bytes are parsed

    def _write_source(self, source: _Source, initial: Any, items: list[Any],
                      times: list[float], payloads: FrameBytes) -> None:
        key = partition_key(source.kind)
        if source.kind == "orderbook":
            tables = [] if initial is None else [initial]
            if items:
                tables.append(book_table(items, times, source.fmt))
            if payloads:
                tables.append(payload_table(source.kind, payloads, payloads.times(), source.fmt))
            table = _in_receive_order(tables if len(tables) == 1 else
                                      [plain_books(t) for t in tables])
            values: np.ndarray | str = _plain(source.symbol)   # one partition
        else:
            frames = [] if initial is None else [initial]
            if items:
                frames.append(record_table(source.kind, items, times, source.fmt))
            frame = (None if not frames else frames[0] if len(frames) == 1
                     else pd.concat(frames, ignore_index=True))
            if frame is not None and source.kind == "bars":
                frame = self._fresh_bars(source, frame)
                # two timeframes of one instrument share its partition: each row says its own
                at = list(frame.columns).index("exchange_time")
                frame.insert(at, "timeframe", pd.Series(_timeframe(source), index=frame.index,
                                                        dtype="Int64"))
            tables, values = [], np.empty(0, dtype=object)
            if frame is not None:
                values = self._partition_values(source, frame).to_numpy(dtype=object)
                frame = frame.drop(columns=[key], errors="ignore")
                table = _cast_times(pa.Table.from_pandas(frame, preserve_index=False))
                if source.kind in RAW_KINDS:   # the same schema as the parsed frames
                    table = table.cast(kind_schema(source.kind))
                tables.append(table)
            if payloads:   # (all_trades only: one partition, below)
                tables.append(payload_table(source.kind, payloads, payloads.times(),
                                            source.fmt))
            if len(tables) > 1 and source.kind != "all_trades":
                raise InvalidArgument(f"{source.kind} has no raw path")   # pragma: no cover
            table = _in_receive_order(tables)
            if source.kind == "all_trades":
                received_first = table
                table = self._fresh_trades(source, table)
                values = _plain(source.symbol)
        if source.resumed and (source.kind == "all_trades"
                                               and received_first.num_rows or table.num_rows):
            self._downtime_gap(source, received_first if source.kind == "all_trades"
                               else table, table)
        if not table.num_rows:
            return
        first, last = (_receive_us_at(table, i) // DAY_US for i in (0, -1))
        # receive order: one day when the first and last row share it (the usual batch)
        days = (np.full(1, first, dtype="int64") if first == last
                else _receive_us(table) // DAY_US)
        if not isinstance(values, str) and (values == values[0]).all():
            values = str(values[0])
        for value in ([values] if isinstance(values, str) else list(dict.fromkeys(values))):
            rows = None if isinstance(values, str) else np.flatnonzero(values == value)
            part = table if rows is None else table.take(rows)
            part_days = (np.full(part.num_rows, first, dtype="int64") if first == last
                         else days if rows is None else days[rows])
            # receive order: the rows of one day are one run
            edges = (np.empty(0, dtype="int64") if first == last
                     else np.flatnonzero(np.diff(part_days)) + 1)
            for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(part_days)], strict=True):
                day = np.datetime64(int(part_days[lo]), "D").astype(str)
                self._write_file(source.kind, key, str(value), day, part.slice(lo, hi - lo),
                                 source)

    def _partition_values(self, source: _Source, table: pd.DataFrame) -> pd.Series:
        key = partition_key(source.kind)
        if source.kind != "orderbook" and key in table.columns and table[key].notna().all():
            return table[key].astype(object)
        value = (source.frame.params.get("portfolio") if key == "portfolio"
                 else _plain(source.symbol))
        return pd.Series(value, index=table.index)

    def _write_file(self, kind: str, key: str, value: str, day: str, part: pa.Table,
                    source: _Source | None = None) -> None:
        """Hand a file to the file thread (it encodes Parquet while the next batch is parsed);
        waits while two are queued."""
        folder = self.path / f"kind={kind}" / f"{key}={_safe(value)}" / f"date={day}"
        first = _receive_us_at(part, 0)
        with self._lock:
            self._seq += 1
            seq = self._seq
        name = f"part-{first}-{os.getpid()}-{seq:06d}.parquet"
        self._files_queue.put((folder, name, kind, part, source))

    def _write_files(self) -> None:
        """The file thread: each file first under a hidden name, then renamed."""
        while True:
            job = self._files_queue.get()
            try:
                if job is None:
                    return
                folder, name, kind, part, source = job
                folder.mkdir(parents=True, exist_ok=True)
                temporary = folder / f".{name}.tmp"
                pq.write_table(part, temporary, compression="zstd",
                               **file_options(kind, part.schema))
                os.replace(temporary, folder / name)
                with self._lock:
                    self._files += 1
                    if kind != "gaps":
                        self._rows += part.num_rows
                    if source is not None:
                        source.files += 1
                        source.rows += part.num_rows
            except Exception as exc:  # keep recording; the status line shows the error
                self._errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("recorder: writing a file failed")
            finally:
                self._files_queue.task_done()

    # --- deduplication across reconnects and restarts ----------------------------------------

    def _fresh_trades(self, source: _Source, table: pa.Table) -> pa.Table:
        """Trades above the highest id written (ids increase per instrument)."""
        symbol = _plain(source.symbol)
        last = self._last_id.get(symbol, -1)
        ids = _numpy(table.column("id").combine_chunks(), "int64", -1)
        if not len(ids):
            return table
        before = np.maximum.accumulate(np.concatenate([[last], ids[:-1]]))
        self._last_id[symbol] = int(max(last, ids.max()))
        keep = ids > before
        return table if keep.all() else table.filter(pa.array(keep))

    def _fresh_bars(self, source: _Source, table: pd.DataFrame) -> pd.DataFrame:
        """Candle versions that differ from the last one written for the same candle."""
        memory = self._candles.setdefault((_plain(source.symbol), _timeframe(source)),
                                          OrderedDict())
        keep = np.zeros(len(table), dtype=bool)
        rows = zip(table["time"].to_numpy(dtype="datetime64[us]").astype("int64").tolist(),
                   *(table[c].tolist() for c in CANDLE_VALUES), strict=True)
        for i, (start, *values) in enumerate(rows):
            version = tuple(values)
            if memory.get(start) == version:
                continue
            memory[start] = version
            memory.move_to_end(start)
            keep[i] = True
        while len(memory) > DEDUP_MEMORY:
            memory.popitem(last=False)
        return table[keep].reset_index(drop=True)

    def _seed(self, source: _Source) -> None:
        """Read what an earlier run wrote for this instrument, so a restart appends without
        repeating: the highest trade id, the last version of recent candles, the last receive
        time of each partition (the start of the gap while the recorder was not running)."""
        key = partition_key(source.kind)
        values = ([source.frame.params.get("portfolio")] if key == "portfolio"
                  else list(dict.fromkeys(_plain(s) for s in str(source.symbol).split(","))))
        if not all(values):
            return
        folders = {str(v): self.path / f"kind={source.kind}" / f"{key}={_safe(str(v))}"
                   for v in values}
        received = {value: _last_received(folder) for value, folder in folders.items()}
        source.resumed = {value: us for value, us in received.items() if us is not None}
        if source.kind not in ("all_trades", "bars"):
            return
        symbol = _plain(source.symbol)
        days = sorted(folders[symbol].glob("date=*"))[-2:]
        files = [f for day in days for f in sorted(day.glob("*.parquet"))]
        if not files:
            return
        if source.kind == "all_trades":
            last = max((_max_statistic(f, "id") for f in files), default=-1)
            self._last_id[symbol] = max(self._last_id.get(symbol, -1), last)
            return
        # every candle of the last two days (a notebook's bars cell run again on a new
        # connection brings its hundreds of history candles again: they are known)
        wanted = ["time", *CANDLE_VALUES, "timeframe"]
        written = pa.concat_tables(
            [pq.read_table(f, columns=[c for c in wanted if c in pq.read_schema(f).names])
             for f in files], promote_options="default").to_pandas()
        if "timeframe" in written.columns:   # (recordings before it held one timeframe)
            written = written[written["timeframe"] == _timeframe(source)]
        self._fresh_bars(source, written.reset_index(drop=True))

    def _write_gaps(self) -> None:
        """Copy the stream's reconnect gaps of the recorded frames into ``kind=gaps``."""
        stream = self.stream
        if stream is None:
            return
        with self._lock:
            labels = {s.symbol for s in self._sources}
        seen = (getattr(stream, "gap_count", None), len(labels))
        if seen[0] is not None and seen == self._gaps_seen:
            return   # nothing new (building the stream's gaps table each batch cost ~7 %)
        self._gaps_seen = seen
        gaps = stream.gaps()
        fresh = []
        for row in gaps.itertuples(index=False):
            key = (row.kind, row.symbol, row.timeframe, row.start, row.end)
            if row.symbol not in labels or key in self._gap_keys:
                continue
            self._gap_keys.add(key)
            fresh.append(row)
        for row in fresh:
            for symbol in str(row.symbol).split(","):
                self._write_gap(row.kind, _plain(symbol), row.start, row.end,
                                int(row.backfilled), row.error,
                                None if pd.isna(row.timeframe) else int(row.timeframe))
            self._gaps_written += 1

    def _write_gap(self, kind: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp,
                   backfilled: int, error: str | None, timeframe: int | None = None) -> None:
        """One row of ``kind=gaps``; ``timeframe``: a bars frame's, in seconds."""
        part = pd.DataFrame({
            "data_kind": pd.array([kind], dtype=STR_DTYPE),
            "timeframe": pd.array([timeframe], dtype="Int64"),
            "start": pd.DatetimeIndex([start]).as_unit("us"),
            "end": pd.DatetimeIndex([end]).as_unit("us"),
            "backfilled": np.array([backfilled], dtype="int64"),
            "error": pd.array([error], dtype=STR_DTYPE),
        })
        part["receive_time"] = part["end"]
        table = _cast_times(pa.Table.from_pandas(part, preserve_index=False))
        self._write_file("gaps", "symbol", symbol, start.strftime("%Y-%m-%d"), table)

    def _downtime_gap(self, source: _Source, received: pa.Table, written: pa.Table) -> None:
        """The first batch after a restart: the time the recorder was not running, from the
        last receive time an earlier run wrote of each partition (each instrument of a quotes
        frame) up to the first message ``received``, is a gap (for trades, ``backfilled``
        counts the trades of that time among those ``written``, the recent ones resent on
        subscription)."""
        resumed, source.resumed = source.resumed, {}
        first = pc.min(_decoded(received.column("receive_time"))).as_py()
        if first is None:
            return
        end = pd.Timestamp(first)
        wrote = False
        for value, last in resumed.items():
            start = pd.Timestamp(last, unit="us", tz="UTC")
            if end <= start:
                continue
            backfilled = 0
            if source.kind == "all_trades":
                times = written.column("time").to_numpy().astype("datetime64[us]").astype("int64")
                backfilled = int(((times > last) & (times <= end.value // 1000)).sum())
            self._write_gap(source.kind, value, start, end, backfilled,
                            "the recorder was not running",
                            _timeframe(source) if source.kind == "bars" else None)
            wrote = True
        self._gaps_written += int(wrote)

    def _remove_temporary_files(self) -> None:
        """Files a killed recorder left half written (their batch is the one lost), and the
        sources of a compaction that was stopped after its merged file was in place."""
        from .compact import finish_compactions

        for temporary in self.path.glob("kind=*/*/date=*/.*.tmp"):
            try:
                temporary.unlink()
            except OSError:
                pass
        finish_compactions(self.path)


def _timeframe(source: _Source) -> int:
    """A recorded bars frame's timeframe in seconds (the ``timeframe`` column)."""
    return int(source.frame.params["tf"])


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column of a book table in memory as its plain values."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _receive_us_at(table: pa.Table, row: int) -> int:
    """The receive time of one row, in microseconds."""
    scalar = table.column("receive_time")[row]
    if isinstance(scalar, pa.DictionaryScalar):
        scalar = scalar.value
    return int(scalar.value)


def _receive_us(table: pa.Table) -> np.ndarray:
    """Every row's receive time, in microseconds."""
    times = _decoded(table.column("receive_time")).to_numpy()
    return times.astype("datetime64[us]").astype("int64")


def _in_receive_order(tables: list[pa.Table]) -> pa.Table:
    """One table from batches that may interleave (parsed frames and Python objects)."""
    if len(tables) == 1:
        return tables[0]
    table = pa.concat_tables(tables)
    order = np.argsort(_receive_us(table), kind="stable")
    return table.take(pa.array(order))


# columns that grow row by row (ids, times): delta-encoded
GROWING_COLUMNS = ("snapshot_id", "id", "time", "exchange_time", "receive_time")
BOOK_STATISTICS = ["snapshot_id", "exchange_time", "receive_time"]


def file_options(kind: str, schema: pa.Schema) -> dict[str, Any]:
    """How a recorded kind is encoded. Integer ids and times that grow row by row are
    delta-encoded (~15 % smaller files and less encoding than dictionaries or plain values).
    Order books: dictionaries for the level columns (prices and levels repeat); statistics
    only where filters and resumption read them (the others cost ~10 % of the encoding); no
    Arrow schema (``side`` reads back as plain strings). Other kinds: dictionaries for text
    only (ids and times never repeat: trying cost ~12 %)."""
    values = {f.name: f.type.value_type if pa.types.is_dictionary(f.type) else f.type
              for f in schema}   # (a book batch in memory holds dictionary columns)
    growing = [name for name, kind in values.items() if name in GROWING_COLUMNS
               and (pa.types.is_integer(kind) or pa.types.is_timestamp(kind))]
    options: dict[str, Any] = {"column_encoding": dict.fromkeys(growing, "DELTA_BINARY_PACKED")}
    if kind == "orderbook":
        return {**options, "store_schema": False, "write_statistics": BOOK_STATISTICS,
                "use_dictionary": [f.name for f in schema if f.name not in growing]}
    return {**options, "use_dictionary": [f.name for f in schema if f.name not in growing and (
        pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        or pa.types.is_dictionary(f.type))]}


def _last_received(folder: Path) -> int | None:
    """The last receive time (us) written in a partition's folder, from the statistics of its
    newest day's files (days are of the receive time), or None when it holds none."""
    for day in sorted(folder.glob("date=*"), reverse=True):
        files = list(day.glob("*.parquet"))
        if files:
            last = max(_max_statistic(f, "receive_time") for f in files)
            return last if last >= 0 else None
    return None


def _max_statistic(file: Path, column: str) -> int:
    """The largest value of an integer or timestamp (as microseconds) column of a file."""
    meta = pq.ParquetFile(file).metadata
    index = meta.schema.to_arrow_schema().get_field_index(column)
    best = -1
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(index).statistics
        if stats is not None and stats.has_min_max:
            value = stats.max
            if not isinstance(value, int):   # a timestamp
                value = pd.Timestamp(value).value // 1000
            best = max(best, int(value))
    return best


def _cast_times(table: pa.Table) -> pa.Table:
    """Every timestamp column as microseconds UTC: one schema per kind whatever pandas held."""
    fields = [pa.field(f.name, TIME_TYPE) if pa.types.is_timestamp(f.type) else f
              for f in table.schema]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _plain(symbol: str | None) -> str:
    """``"MOEX:SBER"`` -> ``"SBER"`` (the partition value; the exchange is a column)."""
    text = str(symbol or "")
    return text.split(":", 1)[1] if ":" in text else text


def _safe(value: str) -> str:
    """A partition value that is also a safe folder name."""
    if not value or value in (".", "..") or any(c in value for c in "/\\=\0"):
        raise InvalidArgument(f"cannot use {value!r} as a partition value")
    return value


__all__ = ["Recorder", "KINDS", "book_table", "record_table", "dataset_kind", "partition_key"]
