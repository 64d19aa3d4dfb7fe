"""Pure reducers: one object per live data kind, fed the ``data`` objects of the stream.

A reducer keeps the wire objects of one format exactly as orjson decoded them (no per-message
conversion) and knows how to turn a snapshot of them into the DataFrame of its kind, the same
one the HTTP call returns. Contract, used by :mod:`live`:

* ``apply(data) -> changed`` mutates the state (a falsy result: nothing changed);
* ``snapshot()`` returns an object that later ``apply`` calls never mutate (taken under the
  LiveFrame's lock, so it must be cheap);
* ``frame(snapshot)`` builds the DataFrame (outside the lock).

Stored objects are never mutated in place: an update builds a new dict, so a snapshot that
holds references stays consistent. No I/O, no locks, no threads here.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..cache import COLUMNS as CANDLE_COLUMNS
from ..cache import Columns, concat_columns, empty_columns, sort_unique
from ..errors import InvalidArgument
from ..frames import STR_DTYPE, to_frame
from ..history import candle_frame
from ..schema import (
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
from ..times import iso_time

Wire = dict[str, Any]
DEFAULT_BARS_MAXLEN = 100_000


def _first_key(schema: Schema, name: str, fmt: str) -> tuple[str, ...]:
    keys = schema.field(name).keys(fmt)
    if not keys:
        raise InvalidArgument(f"{schema.name}.{name} does not exist in format {fmt}")
    return keys


def _get(obj: Wire, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return None


class BookState:
    """Order book: every message is a complete top-``depth`` book that replaces the last.
    ``attrs`` holds what the HTTP order book carries: ``symbol``, ``exchange``, ``depth``."""

    kind = "orderbook"

    def __init__(self, fmt: str, attrs: dict[str, Any] | None = None) -> None:
        self.fmt = fmt
        self.attrs = dict(attrs or {})
        self.book: Wire | None = None
        self._bids = _first_key(ORDERBOOK, "bids", fmt)
        self._asks = _first_key(ORDERBOOK, "asks", fmt)
        self._time = _first_key(ORDERBOOK, "time", fmt)
        self._price = _first_key(BOOK_LEVEL, "price", fmt)
        self._volume = _first_key(BOOK_LEVEL, "volume", fmt)
        self._yield = BOOK_LEVEL.field("yield").keys(fmt)

    def apply(self, data: Wire) -> bool:
        if type(data) is not dict:
            raise TypeError("order book data is not an object")
        self.book = data
        return True

    def snapshot(self) -> Wire | None:
        return self.book

    def frame(self, book: Wire | None) -> pd.DataFrame:
        frame = book_frame(book if book is not None else {}, self.fmt)
        frame.attrs.update(self.attrs)
        return frame


def book_frame(book: Wire, fmt: str) -> pd.DataFrame:
    """A wire order book -> long form: ``side``, ``level`` (0 = best), ``price``, ``volume``,
    ``yield``; ``attrs["time"]`` is the exchange timestamp (ISO string, UTC) and ``attrs["existing"]``."""
    bids = _get(book, ORDERBOOK.field("bids").keys(fmt)) or []
    asks = _get(book, ORDERBOOK.field("asks").keys(fmt)) or []
    levels = bids + asks
    price_key = BOOK_LEVEL.field("price").key(fmt)
    volume_key = BOOK_LEVEL.field("volume").key(fmt)
    yield_key = BOOK_LEVEL.field("yield").key(fmt)
    n_bids = len(bids)
    n_asks = len(asks)
    sides = np.empty(n_bids + n_asks, dtype=object)
    sides[:n_bids] = "bid"
    sides[n_bids:] = "ask"
    level = np.concatenate([np.arange(n_bids, dtype="int64"), np.arange(n_asks, dtype="int64")])
    frame = pd.DataFrame({
        "side": pd.array(sides, dtype=STR_DTYPE),
        "level": level,
        "price": np.array([lv.get(price_key) for lv in levels], dtype="float64"),
        "volume": pd.array([lv.get(volume_key) for lv in levels], dtype="Int64"),
        "yield": np.array([lv.get(yield_key) for lv in levels] if yield_key
                          else np.full(len(levels), np.nan), dtype="float64"),
    }, copy=False)
    stamp = _get(book, ORDERBOOK.field("time").keys(fmt))
    frame.attrs["time"] = (iso_time(pd.Timestamp(int(stamp), unit="ms", tz="UTC"))
                           if isinstance(stamp, (int, float)) and stamp else None)
    frame.attrs["existing"] = _get(book, ORDERBOOK.field("existing").keys(fmt))
    return frame


class RowState:
    """One row merged field by field: summary, risk, FORTS risk, instrument state (whose later
    messages carry only the fields that changed)."""

    def __init__(self, kind: str, schema: Schema, fmt: str) -> None:
        self.kind = kind
        self.schema = schema
        self.fmt = fmt
        self.row: Wire | None = None

    def apply(self, data: Wire) -> bool:
        if type(data) is not dict:
            raise TypeError(f"{self.kind} data is not an object")
        self.row = data if self.row is None else {**self.row, **data}
        return True

    def snapshot(self) -> Wire | None:
        return self.row

    def frame(self, row: Wire | None) -> pd.DataFrame:
        return to_frame(self.schema, [row] if row is not None else [], self.fmt)


class KeyedState:
    """Records keyed by some fields, updated in place: positions (symbol + exchange), orders,
    stop orders, own trades (id), quotes (symbol + exchange). Updates merge into the record."""

    def __init__(self, kind: str, schema: Schema, key: tuple[str, ...], fmt: str) -> None:
        self.kind = kind
        self.schema = schema
        self.fmt = fmt
        self.rows: dict[tuple[Any, ...], Wire] = {}
        self._key = tuple(_first_key(schema, name, fmt) for name in key)

    def key_of(self, data: Wire) -> tuple[Any, ...]:
        return tuple(_get(data, keys) for keys in self._key)

    def apply(self, data: Wire) -> tuple[Any, ...] | None:
        if type(data) is not dict:
            raise TypeError(f"{self.kind} data is not an object")
        key = self.key_of(data)
        old = self.rows.get(key)
        self.rows[key] = data if old is None else {**old, **data}
        return key

    def snapshot(self) -> list[Wire]:
        return list(self.rows.values())

    def frame(self, rows: list[Wire]) -> pd.DataFrame:
        return to_frame(self.schema, rows, self.fmt)


class IncrementalFrame:
    """The DataFrame of an append-mostly sequence of rows (trades, candles), built once per row.

    Rows are numbered by a sequence number that only grows within an ``epoch`` (the owner
    bumps the epoch whenever a row other than the newest changes or rows are reordered).
    Rows sealed in whole chunks are kept as one DataFrame and extended as chunks fill; a read
    builds only the unsealed tail (at most ``chunk`` rows) and concatenates. The newest row is
    never sealed, so it may change in place (the open candle). Readers may call concurrently:
    the cache is one tuple swapped atomically, and every result is built from its own rows.
    """

    def __init__(self, build: Any, chunk: int = 1024) -> None:
        self._build = build
        self._chunk = chunk
        self._cache: tuple[int, int, int, pd.DataFrame] | None = None

    def frame(self, epoch: int, first: int, rows: list[Wire]) -> pd.DataFrame:
        end = first + len(rows)
        if not rows:
            return self._build([])
        sealed_end = max(first, min(end - 1, end // self._chunk * self._chunk))
        cache = self._cache
        if cache is not None and cache[0] == epoch and cache[1] <= first <= cache[2] <= sealed_end:
            _, start, stop, cached = cache
            body = cached.iloc[first - start:]
            if sealed_end > stop:
                body = pd.concat([body, self._build(rows[stop - first:sealed_end - first])])
        else:
            body = self._build(rows[:sealed_end - first])
        self._cache = (epoch, first, sealed_end, body)
        tail = rows[sealed_end - first:]
        if not tail:
            return body
        return pd.concat([body, self._build(tail)]) if len(body) else self._build(tail)


class TradesState:
    """All trades of an instrument: a ring buffer of at most ``maxlen`` trades, ascending id,
    each id once (a replay, a resubscription or an HTTP backfill may repeat trades). The
    buffer is kept in id order, so a trade at or below the newest is found by bisection (no
    set of ids to keep up on the hot path, where ids only grow)."""

    kind = "all_trades"

    def __init__(self, fmt: str, maxlen: int = 100_000) -> None:
        if not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen < 1:
            raise InvalidArgument(f"maxlen must be a positive integer, got {maxlen!r}")
        self.fmt = fmt
        self.maxlen = maxlen
        self.trades: deque[Wire] = deque(maxlen=maxlen)  # the oldest drop out on append
        self._time = _first_key(TRADE, "time", fmt)
        self._epoch = 0
        self._first_seq = 0  # sequence number of trades[0]
        self._frames = IncrementalFrame(self._build)

    @property
    def ids(self) -> set[Any]:
        return {t["id"] for t in self.trades}

    def _held(self, trade_id: int) -> bool:
        trades = self.trades
        if not trades or trade_id > trades[-1]["id"] or trade_id < trades[0]["id"]:
            return False
        i = bisect.bisect_left(trades, trade_id, key=_trade_id)
        return i < len(trades) and trades[i]["id"] == trade_id

    def apply(self, data: Wire) -> int:
        if type(data) is not dict:
            raise TypeError("trade data is not an object")
        trade_id = data.get("id")
        if type(trade_id) is not int:  # the id orders and deduplicates: it must be there
            raise TypeError(f"trade without an integer id: {trade_id!r}")
        trades = self.trades
        if trades and trade_id <= trades[-1]["id"]:
            return 0 if self._held(trade_id) else self.merge([data])
        if len(trades) == self.maxlen:
            self._first_seq += 1
        trades.append(data)
        return 1

    def extend(self, batch: list[Wire]) -> int:
        """The fast path of a batch of live trades: when every message is a trade with an
        integer id, ascending and above every id held, append them all at once and return
        how many; otherwise change nothing and return 0 (the caller applies one by one)."""
        try:
            ids = [data["id"] for data in batch]
        except (TypeError, KeyError, IndexError):
            return 0
        # whole-batch checks in C: objects, integer ids, each above the one before
        if set(map(type, batch)) != _DICT or set(map(type, ids)) != _INT:
            return 0
        trades = self.trades
        if trades and ids[0] <= trades[-1]["id"]:
            return 0
        if not all(map(operator.lt, ids, itertools.islice(ids, 1, None))):
            return 0
        excess = len(trades) + len(batch) - self.maxlen
        trades.extend(batch)
        if excess > 0:
            self._first_seq += excess
        return len(batch)

    def merge(self, objs: Iterable[Wire]) -> int:
        """Insert trades in id order, skipping known ids; returns how many were new."""
        held = self.ids
        fresh = {}
        for obj in objs:
            trade_id = obj.get("id") if type(obj) is dict else None
            if type(trade_id) is int and trade_id not in held:
                fresh[trade_id] = obj
        if not fresh:
            return 0
        merged = sorted([*self.trades, *fresh.values()], key=_trade_id)
        self.trades = deque(merged[-self.maxlen:], maxlen=self.maxlen)
        self._epoch += 1
        self._first_seq = 0
        return len(fresh)

    def last(self) -> Wire | None:
        return self.trades[-1] if self.trades else None

    def last_time_ms(self) -> float | None:
        last = self.last()
        value = _get(last, self._time) if last else None
        return float(value) if isinstance(value, (int, float)) else None

    def cursor(self) -> int | None:
        """Where an HTTP backfill starts: the id of the newest trade held."""
        last = self.last()
        return None if last is None else last["id"]

    def snapshot(self) -> tuple[int, int, list[Wire]]:
        return self._epoch, self._first_seq, list(self.trades)

    def frame(self, snapshot: tuple[int, int, list[Wire]]) -> pd.DataFrame:
        return self._frames.frame(*snapshot)

    def _build(self, trades: list[Wire]) -> pd.DataFrame:
        return to_frame(TRADE, trades, self.fmt, index="time")


class BarsState:
    """Candles by start time, held as columns (time int64, open/high/low/close float64,
    volume int64: 48 bytes a candle) of at most ``maxlen`` candles, the oldest dropped first.
    The server first replays candles from ``from``, then resends the open candle whenever it
    changes; a candle is final once a later one has started.

    Writes in place touch only the row after the last (an append) and the last row (the open
    candle); any other change builds new arrays. A snapshot therefore shares every row but
    the last with the state, and copies that one."""

    kind = "bars"

    def __init__(self, fmt: str, maxlen: int = DEFAULT_BARS_MAXLEN, tf: int | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        if not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen < 1:
            raise InvalidArgument(f"maxlen must be a positive integer, got {maxlen!r}")
        self.fmt = fmt
        self.maxlen = maxlen
        # with the server's clock, the newest candle is closed once its interval is over (an
        # hours-old candle replayed first is not "open" because no later one arrived yet)
        self.tf = tf
        self.clock = clock
        self._keys = [_first_key(CANDLE, name, fmt) for name in CANDLE_COLUMNS]
        self._time = self._keys[0]
        self._alloc(empty_columns(), 16)

    # storage: rows [_lo, _hi) of the arrays are the candles, ascending by time
    def _alloc(self, columns: Columns, capacity: int) -> None:
        n = len(columns["time"])
        capacity = max(capacity, n + 1, 16)
        self._t = np.zeros(capacity, dtype="int64")
        self._px = np.zeros((capacity, 4), dtype="float64")
        self._vol = np.zeros(capacity, dtype="int64")
        self._t[:n] = columns["time"]
        for i, name in enumerate(CANDLE_COLUMNS[1:5]):
            self._px[:n, i] = columns[name]
        self._vol[:n] = columns["volume"]
        self._lo, self._hi = 0, n

    def __len__(self) -> int:
        return self._hi - self._lo

    def _row(self, data: Wire) -> tuple[int, tuple[float, float, float, float], int]:
        if type(data) is not dict:
            raise TypeError("candle data is not an object")
        start = _get(data, self._time)
        if not isinstance(start, (int, float)) or isinstance(start, bool):
            raise TypeError("candle without a time")
        values = [_get(data, keys) for keys in self._keys[1:]]
        try:
            prices = tuple(np.nan if v is None else float(v) for v in values[:4])
            volume = 0 if values[4] is None else int(round(float(values[4])))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"candle with a non-numeric field: {exc}") from None
        return int(start), prices, volume  # type: ignore[return-value]

    def apply(self, data: Wire) -> int:
        """2 when a new candle started, 1 when a known candle changed."""
        start, prices, volume = self._row(data)
        lo, hi = self._lo, self._hi
        last = self._t[hi - 1] if hi > lo else None
        if last is not None and start == last:
            self._px[hi - 1] = prices
            self._vol[hi - 1] = volume
            return 1
        if last is None or start > last:
            if hi == len(self._t):
                self._alloc(self.columns(), 2 * (hi - lo))
                hi = self._hi
            self._t[hi] = start
            self._px[hi] = prices
            self._vol[hi] = volume
            self._hi = hi + 1
            if self._hi - self._lo > self.maxlen:
                self._lo += 1
            return 2
        known = self._index(start) is not None
        self._replace([(start, prices, volume)], keep_last=False)
        return 1 if known else 2

    def merge(self, objs: Iterable[Wire]) -> int:
        """Candles fetched over HTTP: add missing ones and refresh closed ones; the open candle
        (the latest one held) keeps its streamed version, which is never older."""
        rows = []
        for obj in objs:
            try:
                rows.append(self._row(obj))
            except TypeError:
                continue
        return self._replace(rows, keep_last=True)

    def merge_columns(self, columns: Columns) -> int:
        """As :meth:`merge`, for candle columns (an HTTP history fetch)."""
        times = columns["time"]
        rows = [(int(times[i]), (float(columns["open"][i]), float(columns["high"][i]),
                                 float(columns["low"][i]), float(columns["close"][i])),
                 int(columns["volume"][i])) for i in range(len(times))]
        return self._replace(rows, keep_last=True)

    def _index(self, start: int) -> int | None:
        t = self._t[self._lo:self._hi]
        i = int(np.searchsorted(t, start))
        return i if i < len(t) and t[i] == start else None

    def _replace(self, rows: list[Any], keep_last: bool) -> int:
        """Put ``rows`` (time, prices, volume) into new arrays; with ``keep_last`` the latest
        candle held is not replaced."""
        latest = int(self._t[self._hi - 1]) if self._hi > self._lo else None
        if keep_last and latest is not None:
            rows = [r for r in rows if r[0] != latest]
        if not rows:
            return 0
        new = {"time": np.array([r[0] for r in rows], dtype="int64"),
               "volume": np.array([r[2] for r in rows], dtype="int64")}
        prices = np.array([r[1] for r in rows], dtype="float64").reshape(len(rows), 4)
        for i, name in enumerate(CANDLE_COLUMNS[1:5]):
            new[name] = prices[:, i]
        merged = sort_unique(concat_columns([self.columns(), new]))
        n = len(merged["time"])
        if n > self.maxlen:
            merged = {name: values[n - self.maxlen:] for name, values in merged.items()}
        self._alloc(merged, 2 * min(n, self.maxlen))
        return len(rows)

    def columns(self) -> Columns:
        """A copy of the candles as columns."""
        lo, hi = self._lo, self._hi
        out: Columns = {"time": self._t[lo:hi].copy(), "volume": self._vol[lo:hi].copy()}
        for i, name in enumerate(CANDLE_COLUMNS[1:5]):
            out[name] = self._px[lo:hi, i].copy()
        return out

    def last_time(self) -> int | None:
        return int(self._t[self._hi - 1]) if self._hi > self._lo else None

    def cursor(self) -> int | None:
        """Where an HTTP backfill starts: the newest candle held (it may have closed since)."""
        return self.last_time()

    def snapshot(self) -> tuple[Any, ...]:
        lo, hi = self._lo, self._hi
        if hi == lo:
            return (self._t[:0], self._px[:0], self._vol[:0])
        return (self._t[lo:hi - 1], self._px[lo:hi - 1], self._vol[lo:hi - 1],
                int(self._t[hi - 1]), self._px[hi - 1].copy(), int(self._vol[hi - 1]))

    def frame(self, snapshot: tuple[Any, ...]) -> pd.DataFrame:
        times, prices, volumes = snapshot[:3]
        if len(snapshot) > 3:
            times = np.append(times, snapshot[3])
            prices = np.vstack([prices, snapshot[4][None, :]])
            volumes = np.append(volumes, snapshot[5])
        columns: Columns = {"time": times, "volume": volumes}
        for i, name in enumerate(CANDLE_COLUMNS[1:5]):
            columns[name] = np.ascontiguousarray(prices[:, i])
        frame = candle_frame(columns)
        closed = np.ones(len(frame), dtype=bool)
        if len(closed):
            closed[-1] = self._interval_over(int(times[-1]))
        return frame.assign(is_closed=closed)

    def _interval_over(self, start: int) -> bool:
        if self.clock is None or not self.tf:
            return False
        return start + self.tf <= self.clock()


_DICT = {dict}
_INT = {int}


def _trade_id(trade: Wire) -> Any:
    return trade["id"]


def make_state(kind: str, fmt: str, **options: Any) -> Any:
    """The reducer of a LiveFrame kind."""
    if kind == "orderbook":
        return BookState(fmt, options.get("attrs"))
    if kind == "all_trades":
        return TradesState(fmt, options.get("maxlen", 100_000))
    if kind == "bars":
        return BarsState(fmt, options.get("maxlen", DEFAULT_BARS_MAXLEN), options.get("tf"),
                         options.get("clock"))
    if kind in _ROWS:
        return RowState(kind, _ROWS[kind], fmt)
    if kind in _KEYED:
        schema, key = _KEYED[kind]
        return KeyedState(kind, schema, key, fmt)
    raise InvalidArgument(f"unknown live data kind {kind!r}")


_ROWS = {"summary": SUMMARY, "risk": RISK, "forts_risk": FORTS_RISK,
         "instrument_state": INSTRUMENT_STATE}
_KEYED = {
    "quotes": (QUOTE, ("symbol", "exchange")),
    "positions": (POSITION, ("symbol", "exchange")),
    "orders": (ORDER, ("id",)),
    "stop_orders": (STOP_ORDER, ("id",)),
    "own_trades": (OWN_TRADE, ("id",)),
}

__all__ = ["BookState", "RowState", "KeyedState", "TradesState", "BarsState", "book_frame",
           "make_state"]
