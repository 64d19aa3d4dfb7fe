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
Buffers are bounded (``max_pending_rows``): past it the stream thread writes itself.

A restart on the same path appends: trades resume above the highest id already written,
candles skip versions identical to the last one written.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
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
GAP_COLUMNS = ("data_kind", "start", "end", "backfilled", "error")
TIME_TYPE = pa.timestamp("us", tz="UTC")
DEDUP_MEMORY = 4096
CANDLE_VALUES = ("open", "high", "low", "close", "volume")    # candle versions remembered per instrument


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

def _receive_column(times: Sequence[float], counts: Sequence[int] | None = None) -> np.ndarray:
    us = np.fromiter((receive_us(t) for t in times), dtype="int64", count=len(times))
    return us if counts is None else np.repeat(us, counts)


def _utc(us: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(us.astype("datetime64[us]")).tz_localize("UTC")


BOOK_SCHEMA = pa.schema([
    ("snapshot_id", pa.int64()), ("side", pa.string()), ("level", pa.int64()),
    ("price", pa.float64()), ("volume", pa.int64()), ("yield", pa.float64()),
    ("exchange_time", TIME_TYPE), ("receive_time", TIME_TYPE)])
DAY_US = 86_400_000_000
SIDES = pa.array(["ask", "bid"])


def book_table(books: Sequence[dict[str, Any]], times: Sequence[float], fmt: str) -> pa.Table:
    """Order-book messages -> long form (an Arrow table of ``BOOK_SCHEMA``): one row per level,
    bids then asks, best first; ``snapshot_id`` = receive time in microseconds x 1000 + the
    message's place among the messages of its read (unique and increasing)."""
    bids_key = ORDERBOOK.field("bids").keys(fmt)[0]
    asks_key = ORDERBOOK.field("asks").keys(fmt)[0]
    time_key = ORDERBOOK.field("time").keys(fmt)[0]
    price_key = BOOK_LEVEL.field("price").key(fmt)
    volume_key = BOOK_LEVEL.field("volume").key(fmt)
    yield_key = BOOK_LEVEL.field("yield").key(fmt)
    n = len(books)
    bids = [book.get(bids_key) or () for book in books]
    asks = [book.get(asks_key) or () for book in books]
    counts = np.empty(2 * n, dtype="int64")          # bids of book 0, asks of book 0, ...
    counts[0::2] = np.fromiter(map(len, bids), dtype="int64", count=n)
    counts[1::2] = np.fromiter(map(len, asks), dtype="int64", count=n)
    levels = [level for pair in zip(bids, asks, strict=True) for side in pair for level in side]
    total = len(levels)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    is_bid = np.repeat(np.tile(np.array([True, False]), n), counts)
    per_book = counts[0::2] + counts[1::2]
    received = _receive_column(times)
    # messages of one read share a receive time: number them within it
    run = np.arange(n, dtype="int64")
    if n:
        new_time = np.concatenate([[True], received[1:] != received[:-1]])
        run -= np.maximum.accumulate(np.where(new_time, run, 0))
    stamps = np.array([book.get(time_key) or 0 for book in books], dtype="float64")
    exchange = np.repeat(np.round(stamps * 1000).astype("int64"), per_book)
    sides = pa.DictionaryArray.from_arrays(pa.array(is_bid.astype("int8")), SIDES)
    return pa.table([
        pa.array(np.repeat(received * 1000 + run, per_book)),
        sides.cast(pa.string()),
        pa.array(np.arange(total, dtype="int64") - starts),
        pa.array(_level_values(levels, price_key, "float64")),
        pa.array(_level_values(levels, volume_key, "int64")),
        pa.array(_level_values(levels, yield_key, "float64")),
        pa.array(exchange, TIME_TYPE, mask=exchange == 0),
        pa.array(np.repeat(received, per_book), TIME_TYPE),
    ], schema=BOOK_SCHEMA)


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


def _ms_to_utc(ms: np.ndarray) -> pd.DatetimeIndex:
    valid = np.isfinite(ms) & (ms > 0)
    us = np.where(valid, np.round(ms * 1000), 0).astype("int64").astype("datetime64[us]")
    index = pd.DatetimeIndex(us).tz_localize("UTC")
    return index.where(valid, pd.NaT)


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
    return frame


# --- frames' bytes -> Arrow, parsed by Arrow's JSON reader off the interpreter lock ---------------

RAW_KINDS = frozenset({"orderbook", "all_trades"})   # the firehose kinds: parsed from bytes
_WIRE_TYPES = {"float": pa.float64(), "int": pa.int64(), "i8": pa.int64(), "str": pa.string(),
               "bool": pa.bool_(), "ts_ms": pa.float64(), "ts_s": pa.float64(),
               "iso": pa.string()}


def _read_frames(payloads: Sequence[bytes], data: pa.DataType) -> pa.StructArray:
    """WebSocket data frames (``{"data": {...}, "guid": ...}``) -> their ``data`` objects."""
    options = pa_json.ParseOptions(explicit_schema=pa.schema([("data", data)]),
                                   unexpected_field_behavior="ignore")
    table = pa_json.read_json(io.BytesIO(b"\n".join(payloads)), parse_options=options,
                              read_options=pa_json.ReadOptions(block_size=1 << 24))
    return table.column("data").combine_chunks()


def _numpy(array: pa.Array, dtype: str, missing: Any) -> np.ndarray:
    return array.fill_null(missing).to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def raw_book_table(payloads: Sequence[bytes], times: Sequence[float], fmt: str) -> pa.Table:
    """Order-book frames' bytes -> the same table as :func:`book_table`."""
    bids_key = ORDERBOOK.field("bids").keys(fmt)[0]
    asks_key = ORDERBOOK.field("asks").keys(fmt)[0]
    time_key = ORDERBOOK.field("time").keys(fmt)[0]
    level_fields = [(BOOK_LEVEL.field(name).key(fmt), kind) for name, kind in
                    (("price", pa.float64()), ("volume", pa.int64()), ("yield", pa.float64()))]
    level = pa.struct([(key, kind) for key, kind in level_fields if key])
    data = _read_frames(payloads, pa.struct([(bids_key, pa.list_(level)),
                                             (asks_key, pa.list_(level)),
                                             (time_key, pa.float64())]))
    n = len(data)
    received = _receive_column(times)
    run = np.arange(n, dtype="int64")
    if n:
        new_time = np.concatenate([[True], received[1:] != received[:-1]])
        run -= np.maximum.accumulate(np.where(new_time, run, 0))
    sides = [data.field(bids_key), data.field(asks_key)]
    lengths = [_numpy(pc.list_value_length(side), "int64", 0) for side in sides]
    per_book = lengths[0] + lengths[1]
    first = np.cumsum(per_book) - per_book             # each book's first row
    total = int(per_book.sum())
    columns = {"price": np.full(total, np.nan), "volume": np.zeros(total, dtype="int64"),
               "yield": np.full(total, np.nan)}
    is_bid = np.zeros(total, dtype=bool)
    level_no = np.zeros(total, dtype="int64")
    for index, side in enumerate(sides):
        flat = pc.list_flatten(side)
        parent = _numpy(pc.list_parent_indices(side), "int64", 0)
        starts = np.cumsum(lengths[index]) - lengths[index]
        within = np.arange(len(parent), dtype="int64") - starts[parent]
        rows = first[parent] + within + (lengths[0][parent] if index else 0)
        level_no[rows] = within
        is_bid[rows] = index == 0
        for (key, _), name in zip(level_fields, ("price", "volume", "yield"), strict=True):
            if key:
                columns[name][rows] = _numpy(flat.field(key), columns[name].dtype.name,
                                             0 if name == "volume" else np.nan)
    stamps = _numpy(data.field(time_key), "float64", 0.0)
    exchange = np.repeat(np.round(stamps * 1000).astype("int64"), per_book)
    return pa.table([
        pa.array(np.repeat(received * 1000 + run, per_book)),
        pa.DictionaryArray.from_arrays(pa.array(is_bid.astype("int8")), SIDES).cast(pa.string()),
        pa.array(level_no), pa.array(columns["price"]), pa.array(columns["volume"]),
        pa.array(columns["yield"]),
        pa.array(exchange, TIME_TYPE, mask=exchange == 0),
        pa.array(np.repeat(received, per_book), TIME_TYPE),
    ], schema=BOOK_SCHEMA)


_SCHEMA_CACHE: dict[str, pa.Schema] = {}


def kind_schema(kind: str) -> pa.Schema:
    """The Arrow schema of a non-book kind's files (partition column left out)."""
    if kind not in _SCHEMA_CACHE:
        empty = record_table(kind, [], [], "Simple").drop(columns=[partition_key(kind)],
                                                          errors="ignore")
        _SCHEMA_CACHE[kind] = _cast_times(pa.Table.from_pandas(empty, preserve_index=False)
                                          ).schema
    return _SCHEMA_CACHE[kind]


def raw_record_table(kind: str, payloads: Sequence[bytes], times: Sequence[float],
                     fmt: str) -> pa.Table:
    """Frames' bytes of a non-book kind -> the Arrow table of ``kind_schema(kind)``."""
    schema = SCHEMAS[kind]
    fields = [f for f in schema.fields if not f.legacy]
    wire = {f.name: f.key(fmt) for f in fields}
    data = _read_frames(payloads, pa.struct([(key, _WIRE_TYPES.get(f.kind, pa.string()))
                                             for f in fields if (key := wire[f.name])]))
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
        self.payloads: list[bytes] = []      # frames' bytes (RAW_KINDS), parsed by Arrow
        self.payload_times: list[float] = []
        self.weight = 2 * int(frame.params.get("depth") or 10) if kind == "orderbook" else 1
        self.messages = 0
        self.rows = 0
        self.files = 0
        self.oldest: float | None = None   # receive time of the oldest message not written
        self.initial: pd.DataFrame | None = None   # what the frame held when recording began
        self.resume_from: int | None = None   # last receive time (us) an earlier run wrote
        self.sink: Callable[[Sequence[Any], float], None] | None = None


class Recorder:
    """Writes every message of some LiveFrames into a Parquet dataset at ``path``.

    ``batch_rows``/``batch_seconds``: a buffer is written once it holds that many messages or
    its oldest message is that old. ``max_pending_rows``: beyond it the stream thread writes
    the batch itself (memory stays bounded however slow the disk). ``stream``: the Stream whose
    ``gaps()`` are copied into the dataset. ``clock`` gives unix seconds (tests inject one).
    """

    def __init__(self, path: str | os.PathLike[str], frames: Iterable[Any] = (), *,
                 stream: Any = None, batch_rows: int = 20_000, batch_seconds: float = 5.0,
                 max_pending_rows: int = 200_000, clock: Callable[[], float] = time.time
                 ) -> None:
        if not isinstance(batch_rows, int) or batch_rows < 1:
            raise InvalidArgument(f"batch_rows must be a positive integer, got {batch_rows!r}")
        if not batch_seconds > 0:
            raise InvalidArgument(f"batch_seconds must be positive, got {batch_seconds!r}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.batch_rows = batch_rows
        self.batch_seconds = float(batch_seconds)
        self.max_pending_rows = max(int(max_pending_rows), batch_rows)
        self.stream = stream
        self._clock = clock
        self._lock = threading.Lock()         # buffers and counters
        self._write_lock = threading.Lock()   # one writer at a time, files in order
        self._sources: list[_Source] = []
        self._pending = 0
        self._seq = 0
        self._files = 0
        self._rows = 0
        self._gaps_written = 0
        self._gap_keys: set[tuple[Any, ...]] = set()
        self._last_id: dict[str, int] = {}
        self._candles: dict[str, OrderedDict[int, tuple[Any, ...]]] = {}
        self._errors = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._remove_temporary_files()
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
        """Write everything buffered now."""
        self._write_all(force=True)
        self._write_gaps()

    def close(self) -> None:
        """Stop recording: detach from the frames, write what is buffered (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            sources = list(self._sources)
        for source in sources:
            source.frame._remove_sink(source.sink)
        self._stop.set()
        self._wake.set()
        self._thread.join(30.0)
        self.flush()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> pd.DataFrame:
        """One row per recorded frame: ``kind``, ``symbol``, ``messages`` (received),
        ``rows`` and ``files`` (written), ``pending`` (messages buffered), ``lag`` (seconds
        since the oldest buffered message arrived; 0 when nothing waits)."""
        now = self._clock()
        with self._lock:
            rows = [{"kind": s.kind, "symbol": s.symbol, "status": s.frame.status,
                     "messages": s.messages, "rows": s.rows, "files": s.files,
                     "pending": len(s.items) + len(s.payloads),
                     "lag": 0.0 if s.oldest is None else max(0.0, now - s.oldest)}
                    for s in self._sources]
        table = pd.DataFrame(rows, columns=["kind", "symbol", "status", "messages", "rows",
                                            "files", "pending", "lag"])
        table.attrs.update(gaps=self._gaps_written, errors=self._errors, path=str(self.path))
        return table.astype({"messages": "int64", "rows": "int64", "files": "int64",
                             "pending": "int64", "lag": "float64"})

    def status_line(self) -> str:
        """``messages, rows, files, gaps, lag`` in one line, for a terminal."""
        table = self.health()
        lag = float(table["lag"].max()) if len(table) else 0.0
        line = (f"recording {len(table)} frame(s): {int(table['messages'].sum())} messages, "
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
        rows = len(items) * source.weight
        with self._lock:
            if source.oldest is None:
                source.oldest = now
            if raw is not None and source.kind in RAW_KINDS and len(raw) == len(items):
                source.payloads.extend(raw)
                source.payload_times.extend([now] * len(raw))
            else:
                source.items.extend(items)
                source.times.extend([now] * len(items))
            source.messages += len(items)
            self._pending += rows
            pending = self._pending
        if pending >= self.max_pending_rows:
            self._write_all(force=True)   # the writer is behind: keep memory bounded
        elif pending >= self.batch_rows:
            self._wake.set()

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
            except Exception as exc:  # keep recording; the status line shows the error
                self._errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("recorder: writing failed")

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
                                    source.payloads, source.payload_times))
                    self._pending -= (len(source.items) + len(source.payloads)) * source.weight
                    source.items, source.times, source.oldest = [], [], None
                    source.payloads, source.payload_times = [], []
                    source.initial = None
            for batch in batches:
                self._write_source(*batch)

    def _write_source(self, source: _Source, initial: Any, items: list[Any],
                      times: list[float], payloads: list[bytes],
                      payload_times: list[float]) -> None:
        key = partition_key(source.kind)
        if source.kind == "orderbook":
            tables = [] if initial is None else [initial]
            if items:
                tables.append(book_table(items, times, source.fmt))
            if payloads:
                tables.append(raw_book_table(payloads, payload_times, source.fmt))
            table = _in_receive_order(tables)
            values = np.full(table.num_rows, _plain(source.symbol), dtype=object)
        else:
            frames = [] if initial is None else [initial]
            if items:
                frames.append(record_table(source.kind, items, times, source.fmt))
            frame = (None if not frames else frames[0] if len(frames) == 1
                     else pd.concat(frames, ignore_index=True))
            if frame is not None and source.kind == "bars":
                frame = self._fresh_bars(source, frame)
            tables, values = [], np.empty(0, dtype=object)
            if frame is not None:
                values = self._partition_values(source, frame).to_numpy(dtype=object)
                frame = frame.drop(columns=[key], errors="ignore")
                table = _cast_times(pa.Table.from_pandas(frame, preserve_index=False))
                if source.kind in RAW_KINDS:   # the same schema as the parsed frames
                    table = table.cast(kind_schema(source.kind))
                tables.append(table)
            if payloads:
                tables.append(raw_record_table(source.kind, payloads, payload_times,
                                               source.fmt))
                values = np.concatenate([values, np.full(len(payloads), _plain(source.symbol),
                                                         dtype=object)])
            if len(tables) > 1 and source.kind != "all_trades":
                raise InvalidArgument(f"{source.kind} has no raw path")   # pragma: no cover
            table = _in_receive_order(tables)
            if source.kind == "all_trades":
                received_first = table
                table = self._fresh_trades(source, table)
                values = np.full(table.num_rows, _plain(source.symbol), dtype=object)
        if source.resume_from is not None and (source.kind == "all_trades"
                                               and received_first.num_rows or table.num_rows):
            self._downtime_gap(source, received_first if source.kind == "all_trades"
                               else table, table)
        if not table.num_rows:
            return
        received = table.column("receive_time").to_numpy().astype("datetime64[us]")
        days = received.astype("int64") // DAY_US
        written = 0
        uniform = values[0] == values[-1] and (len(values) < 3 or (values == values[0]).all())
        for value in ([values[0]] if uniform else list(dict.fromkeys(values))):
            rows = None if uniform else np.flatnonzero(values == value)
            part = table if rows is None else table.take(rows)
            part_days = days if rows is None else days[rows]
            # receive order: the rows of one day are one run
            edges = np.flatnonzero(np.diff(part_days)) + 1
            for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(part_days)], strict=True):
                day = np.datetime64(int(part_days[lo]), "D").astype(str)
                self._write_file(source.kind, key, str(value), day, part.slice(lo, hi - lo))
                written += int(hi - lo)
                with self._lock:
                    source.files += 1
        with self._lock:
            source.rows += written

    def _partition_values(self, source: _Source, table: pd.DataFrame) -> pd.Series:
        key = partition_key(source.kind)
        if source.kind != "orderbook" and key in table.columns and table[key].notna().all():
            return table[key].astype(object)
        value = (source.frame.params.get("portfolio") if key == "portfolio"
                 else _plain(source.symbol))
        return pd.Series(value, index=table.index)

    def _write_file(self, kind: str, key: str, value: str, day: str, part: pa.Table) -> None:
        folder = self.path / f"kind={kind}" / f"{key}={_safe(value)}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        first = part.column("receive_time")[0].value
        with self._lock:
            self._seq += 1
            seq = self._seq
        name = f"part-{first}-{os.getpid()}-{seq:06d}.parquet"
        temporary = folder / f".{name}.tmp"
        pq.write_table(part, temporary, compression="zstd")
        os.replace(temporary, folder / name)
        with self._lock:
            self._files += 1
            if kind != "gaps":
                self._rows += part.num_rows

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
        memory = self._candles.setdefault(_plain(source.symbol), OrderedDict())
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
        time (the start of the gap while the recorder was not running)."""
        if source.kind == "quotes":
            return
        key = partition_key(source.kind)
        value = (source.frame.params.get("portfolio") if key == "portfolio"
                 else _plain(source.symbol))
        if not value:
            return
        symbol = _plain(source.symbol)
        folder = self.path / f"kind={source.kind}" / f"{key}={_safe(str(value))}"
        days = sorted(folder.glob("date=*"))[-2:]
        files = [f for day in days for f in sorted(day.glob("*.parquet"))]
        if not files:
            return
        source.resume_from = max(_max_statistic(f, "receive_time") for f in files)
        if source.kind not in ("all_trades", "bars"):
            return
        if source.kind == "all_trades":
            last = max((_max_statistic(f, "id") for f in files), default=-1)
            self._last_id[symbol] = max(self._last_id.get(symbol, -1), last)
            return
        self._fresh_bars(source, pq.read_table(files[-1]).to_pandas())

    def _write_gaps(self) -> None:
        """Copy the stream's reconnect gaps of the recorded frames into ``kind=gaps``."""
        stream = self.stream
        if stream is None:
            return
        gaps = stream.gaps()
        with self._lock:
            labels = {s.symbol for s in self._sources}
        fresh = []
        for row in gaps.itertuples(index=False):
            key = (row.kind, row.symbol, row.start, row.end)
            if row.symbol not in labels or key in self._gap_keys:
                continue
            self._gap_keys.add(key)
            fresh.append(row)
        for row in fresh:
            for symbol in str(row.symbol).split(","):
                self._write_gap(row.kind, _plain(symbol), row.start, row.end,
                                int(row.backfilled), row.error)
            self._gaps_written += 1

    def _write_gap(self, kind: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp,
                   backfilled: int, error: str | None) -> None:
        part = pd.DataFrame({
            "data_kind": pd.array([kind], dtype=STR_DTYPE),
            "start": pd.DatetimeIndex([start]).as_unit("us"),
            "end": pd.DatetimeIndex([end]).as_unit("us"),
            "backfilled": np.array([backfilled], dtype="int64"),
            "error": pd.array([error], dtype=STR_DTYPE),
        })
        part["receive_time"] = part["end"]
        table = _cast_times(pa.Table.from_pandas(part, preserve_index=False))
        self._write_file("gaps", "symbol", symbol, start.strftime("%Y-%m-%d"), table)

    def _downtime_gap(self, source: _Source, received: pa.Table, written: pa.Table) -> None:
        """The first batch after a restart: the time the recorder was not running, up to the
        first message ``received``, is a gap (for trades, ``backfilled`` counts the trades of
        that time among those ``written``, the recent ones resent on subscription)."""
        resumed = source.resume_from
        source.resume_from = None
        if resumed is None:  # the caller checks; this keeps the check next to its use
            return
        first = pc.min(received.column("receive_time")).as_py()
        start = pd.Timestamp(resumed, unit="us", tz="UTC")
        if first is None or pd.Timestamp(first) <= start:
            return
        end = pd.Timestamp(first)
        backfilled = 0
        if source.kind == "all_trades":
            times = written.column("time").to_numpy().astype("datetime64[us]").astype("int64")
            backfilled = int(((times > resumed) & (times <= end.value // 1000)).sum())
        key = partition_key(source.kind)
        value = (source.frame.params.get("portfolio") if key == "portfolio"
                 else _plain(source.symbol))
        self._write_gap(source.kind, str(value), start, end, backfilled,
                        "the recorder was not running")
        self._gaps_written += 1

    def _remove_temporary_files(self) -> None:
        """Files a killed recorder left half written (their batch is the one lost)."""
        for temporary in self.path.glob("kind=*/*/date=*/.*.tmp"):
            try:
                temporary.unlink()
            except OSError:
                pass


def _in_receive_order(tables: list[pa.Table]) -> pa.Table:
    """One table from batches that may interleave (parsed frames and Python objects)."""
    if len(tables) == 1:
        return tables[0]
    table = pa.concat_tables(tables)
    order = np.argsort(table.column("receive_time").to_numpy().astype("datetime64[us]"),
                       kind="stable")
    return table.take(pa.array(order))


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
