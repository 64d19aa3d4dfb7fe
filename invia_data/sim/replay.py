"""The simulator's market replaying a recording (``invia-data sim --replay data/``).

:class:`ReplayMarket` is the synthetic :class:`Market` with its clock at the first receive
time of the recording. The clock stands there until the first request for market data (a
``/cws`` subscription to an instrument, or an HTTP book, trades, quotes or candles call:
:meth:`ReplayMarket.begin`), so a client that connects late still sees the recording from its
start; from then on it runs ``speed`` times as fast as real time, one session shared by every
client (a client that comes later joins it where it is). Listings, security info, the server
time and the portfolios do not begin it. For every recorded instrument its order book,
quote, trades and the candles of the recorded day are the recorded ones, as received by the
market's time (a candle over before the recording began is known from its first message, as
the server's history then); a quote holds recorded values only (merged as :func:`invia_data.replay` merges
them; a field no message carried is null).
Market data the recording does not hold (an instrument it lacks, or a kind it lacks for an
instrument, such as the book of an instrument whose quotes alone were recorded) is refused
(:meth:`ReplayMarket.data_refusal`: HTTP 404, a refused ``/cws`` subscription), never made up;
instrument listings hold the recorded instruments only. Once the clock reaches the recording's
end it stops there (as :func:`invia_data.replay`'s clock does): the last state stays served at
that time, the recorded instruments' trading status reads closed (18) and one INFO line says
so. Portfolios stay the simulator's demo accounts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from ..replay import RowsReplay, _recording_root, inner_recordings, load, recording_bounds
from ..schema import QUOTE
from .calendar import CLOSED, STATUS_INFO
from .market import Key, Market

log = logging.getLogger("invia_data.sim")

INSTRUMENT_KINDS = ("orderbook", "all_trades", "bars", "quotes")
KIND_NAMES = {"orderbook": "order book", "all_trades": "trades", "bars": "candles",
              "quotes": "quotes"}


def _us(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype="datetime64[us]").astype("int64")


def _moscow(t: float) -> str:
    return pd.Timestamp(t, unit="s", tz="UTC").tz_convert("Europe/Moscow").strftime(
        "%Y-%m-%d %H:%M:%S MSK")


# a quote's fields and their wire kinds (the legacy one is the same figure as accrued_interest)
QUOTE_FIELDS = {field.name: field.kind for field in QUOTE.fields if not field.legacy}
QUOTE_FIELDS_LEGACY = [field.name for field in QUOTE.fields if field.legacy]


def _quote_value(value: Any, kind: str) -> Any:
    """A merged quote's value -> its wire value (unix seconds or ms for times; None for null)."""
    if isinstance(value, pd.Timestamp) and value is not pd.NaT:
        return int(value.value // (1_000_000_000 if kind == "ts_s" else 1_000_000))
    return _wire(value)


def _wire(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


class _Recorded:
    """The recorded data of one instrument, as arrays ordered by receive time."""

    def __init__(self) -> None:
        self.book: dict[str, Any] | None = None
        self.trades: pd.DataFrame | None = None
        self.trade_us: np.ndarray | None = None
        self.bars: pd.DataFrame | None = None
        self.bar_us: np.ndarray | None = None
        self.quotes: RowsReplay | None = None


class ReplayMarket(Market):
    """A Market whose recorded instruments answer from the recording at ``path``."""

    def __init__(self, path: str | Path, seed: int = 1, speed: float = 1.0, *,
                 clock: Callable[[], float] | None = None) -> None:
        path = _recording_root(path)
        first, last = recording_bounds(path)
        if first is None or last is None:
            raise InvalidArgument(f"{str(path)!r} holds no recorded data"
                                  + inner_recordings(path))
        self._recorded: dict[Key, _Recorded] = {}
        self._replay_lock = threading.Lock()
        self._book_cache_rec: dict[tuple[Key, int, int], dict] = {}
        self._quote_cache_rec: dict[tuple[Key, int], dict] = {}
        self.began = False     # the session's clock runs from the first request for market data
        self._start_us = int(first)
        super().__init__(seed=seed, speed=speed, clock=clock, start=first / 1e6)
        self.recording = path
        self.recording_start = first / 1e6
        self.recording_end = last / 1e6
        self.ended = False
        for kind in INSTRUMENT_KINDS:
            for folder in sorted((path / f"kind={kind}").glob("symbol=*")):
                symbol = folder.name.split("=", 1)[1]
                key = self.resolve("MOEX", symbol) or self.resolve("ITS", symbol)
                if key is None:
                    log.warning("replay: %s is not an instrument of the simulator; skipped", symbol)
                    continue
                self._load(self._recorded.setdefault(key, _Recorded()), kind, path, symbol)

    @property
    def recorded(self) -> list[Key]:
        return sorted(self._recorded)

    def _kinds(self, key: Key) -> list[str]:
        """The kinds of market data served for a recorded instrument (candles and quotes are
        also made from its recorded trades and book)."""
        rec = self._recorded[key]
        served = {"orderbook": rec.book is not None, "all_trades": rec.trades is not None,
                  "bars": rec.bars is not None or rec.trades is not None,
                  "quotes": True}
        return [kind for kind in INSTRUMENT_KINDS if served[kind]]

    def holdings(self) -> str:
        """What the recording holds, e.g. ``MOEX:SBER (orderbook, all_trades, bars, quotes)``."""
        return ", ".join(f"{exchange}:{symbol} ({', '.join(self._kinds((exchange, symbol)))})"
                         for exchange, symbol in self.recorded) or "no instrument"

    def describe(self) -> str:
        """The folder, instruments and time range replayed, for the start log line."""
        when = ("begun" if self.began else "begins at the first request for market data: a /cws "
                "subscription to an instrument or an HTTP book, trades, quotes or candles call")
        return (f"replaying {self.recording}: {self.holdings()}; from {_moscow(self.recording_start)}"
                f" to {_moscow(self.recording_end)}; the session {when}")

    def data_refusal(self, key: Key, kind: str | None = None) -> str | None:
        if key in self._recorded and (kind is None or kind in self._kinds(key)):
            return None
        what = "data" if kind is None else KIND_NAMES.get(kind, kind)
        return (f"the recording {self.recording} holds no {what} for {key[0]}:{key[1]}; "
                f"it holds {self.holdings()}")

    def securities(self) -> list[dict]:
        return [record for record in super().securities()
                if (record["exchange"], record["symbol"]) in self._recorded]

    def trading_status(self, key: Key) -> dict:
        if key in self._recorded and self.now() >= self.recording_end:
            return {"trading_status": CLOSED, "trading_status_info": STATUS_INFO[CLOSED]}
        return super().trading_status(key)

    # --- the session's clock ----------------------------------------------------------------

    def now(self) -> float:
        """The market clock: the recording's first receive time until the session begins, then
        running ``speed`` times as fast as real time from there, up to the recording's last
        receive time, where it stops."""
        if not self.began:
            return self.start
        return min(super().now(), self.recording_end)

    def begin(self) -> bool:
        """Begin the replayed session now: the clock starts running from the recording's first
        message. The first request for market data calls it (:meth:`market_data_requested`);
        later calls do nothing. True when this call began it."""
        with self._replay_lock:
            if self.began:
                return False
            self._real_start = float(self._clock())
            self.began = True
        log.info("replay of %s began with the first request for market data; it plays %s .. %s "
                 "at speed %g (%.1f s)", self.recording, _moscow(self.recording_start),
                 _moscow(self.recording_end), self.speed,
                 (self.recording_end - self.recording_start) / self.speed)
        return True

    def market_data_requested(self) -> None:
        self.begin()

    def advance(self) -> None:
        super().advance()
        if not self.ended and self.began and self.now() >= self.recording_end:
            self.ended = True
            log.info("replay of %s ended at %s; serving its last state", self.recording,
                     _moscow(self.recording_end))

    def _load(self, rec: _Recorded, kind: str, path: Path, symbol: str) -> None:
        rows = load(path, kind, symbol)
        if kind == "orderbook":
            ids = rows["snapshot_id"].to_numpy()
            starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
            rec.book = {
                "us": _us(rows["receive_time"])[starts],
                "offsets": np.append(starts, len(rows)),
                "bid": (rows["side"] == "bid").to_numpy(),
                "empty": (rows["level"] < 0).to_numpy(),     # the row of an empty book
                "price": rows["price"].to_numpy(dtype="float64"),
                "volume": rows["volume"].to_numpy(dtype="int64", na_value=0),
                "time_ms": (_us(rows["exchange_time"])[starts] // 1000),
            }
        elif kind == "all_trades":
            rows = rows.drop_duplicates("id").reset_index(drop=True)
            rec.trades = rows
            rec.trade_us = self._trade_known_us(rows)
        elif kind == "bars":
            if "timeframe" in rows.columns and rows["timeframe"].notna().any():
                # the minutes serve every timeframe; without them, the trades make them
                rows = rows[rows["timeframe"] == 60].reset_index(drop=True)
            if len(rows):
                received = self._bar_known_us(rows)
                order = np.argsort(received, kind="stable")
                rec.bars = rows.iloc[order].reset_index(drop=True)
                rec.bar_us = received[order]
        else:
            rec.quotes = RowsReplay(rows.assign(symbol=symbol), "quotes", {})

    def _bar_known_us(self, rows: pd.DataFrame) -> np.ndarray:
        """When each recorded minute is known to the replayed server: as received, except a
        candle over before the recording began, which was the server's history then and is
        known from the recording's first message (the recorder's history batch may arrive a
        moment after that message)."""
        received = _us(rows["receive_time"])
        over_before_start = _us(rows["time"]) + 60_000_000 <= self._start_us
        return np.where(over_before_start, self._start_us, received)

    def _trade_known_us(self, rows: pd.DataFrame) -> np.ndarray:
        """When each recorded trade is known to the replayed server: as received, except a
        trade made before the recording began (the recent ones sent on subscription), which
        was on the server's tape then and is known from the recording's first message (the
        trades may arrive a moment after a book subscribed first). Never decreasing, in the
        rows' (receive) order."""
        received = _us(rows["receive_time"])
        known = np.where(_us(rows["time"]) < self._start_us, self._start_us, received)
        return np.minimum.accumulate(known[::-1])[::-1]

    def _position(self, times: np.ndarray | None, delay: float = 0) -> int:
        if times is None:  # nothing of that kind was recorded
            return 0
        now_us = int((self.now() - delay) * 1_000_000)
        return int(np.searchsorted(times, now_us, side="right"))

    # --- order books -----------------------------------------------------------------------

    def book_version(self, key: Key) -> int:
        rec = self._recorded.get(key)
        if rec is None or rec.book is None:
            return super().book_version(key)
        return self._position(rec.book["us"])

    def book(self, key: Key, depth: int = 20, delay: float = 0) -> dict:
        rec = self._recorded.get(key)
        if rec is None or rec.book is None:
            return super().book(key, depth, delay)
        depth = max(1, min(50, int(depth)))
        position = self._position(rec.book["us"], delay)
        cached = self._book_cache_rec.get((key, position, depth))
        if cached is not None:
            return cached
        book = rec.book
        bids: list[dict] = []
        asks: list[dict] = []
        stamp = 0
        if position:
            lo, hi = book["offsets"][position - 1], book["offsets"][position]
            for i in range(lo, hi):
                if book["empty"][i]:
                    continue
                side = bids if book["bid"][i] else asks
                if len(side) < depth:
                    side.append({"price": float(book["price"][i]),
                                 "volume": int(book["volume"][i])})
            stamp = int(book["time_ms"][position - 1])
        record = {"bids": bids, "asks": asks, "time": stamp, "existing": delay <= 0,
                  "snapshot": True, "timestamp_s": stamp / 1000}
        with self._replay_lock:
            if len(self._book_cache_rec) > 1000:
                self._book_cache_rec.clear()
            self._book_cache_rec[(key, position, depth)] = record
        return record

    # --- trades ----------------------------------------------------------------------------

    def _trade_rows(self, key: Key) -> pd.DataFrame | None:
        rec = self._recorded.get(key)
        if rec is None or rec.trades is None:
            return None
        return rec.trades.iloc[:self._position(rec.trade_us)]

    def trades(self, key: Key, start: float | None = None, end: float | None = None, *,
               last: int | None = None) -> list[dict]:
        rows = self._trade_rows(key)
        if rows is None:
            return super().trades(key, start, end, last=last)
        ms = _us(rows["time"]) // 1000
        keep = np.ones(len(rows), dtype=bool)
        if start is not None:
            keep &= ms >= start * 1000
        if end is not None:
            keep &= ms < end * 1000
        rows = rows[keep]
        if last is not None:
            rows = rows.iloc[-last:] if last > 0 else rows.iloc[:0]
        return self._recorded_trade_records(key, rows)

    def trades_since(self, key: Key, after_id: int) -> list[dict]:
        rows = self._trade_rows(key)
        if rows is None:
            return super().trades_since(key, after_id)
        return self._recorded_trade_records(
            key, rows[rows["id"].to_numpy(dtype="int64") > after_id])

    def last_trade_id(self, key: Key) -> int:
        rows = self._trade_rows(key)
        if rows is None:
            return super().last_trade_id(key)
        return int(rows["id"].iloc[-1]) if len(rows) else -1

    def past_trades(self, key: Key, start: float, end: float, *, offset: int = 0,
                    limit: int | None = None) -> list[dict]:
        if self._trade_rows(key) is None:
            return super().past_trades(key, start, end, offset=offset, limit=limit)
        trades = self.trades(key, start, end)[offset:]
        return trades if limit is None else trades[:limit]

    def past_trade_count(self, key: Key, start: float, end: float) -> int:
        if self._trade_rows(key) is None:
            return super().past_trade_count(key, start, end)
        return len(self.trades(key, start, end))

    def _recorded_trade_records(self, key: Key, rows: pd.DataFrame) -> list[dict]:
        ms = (_us(rows["time"]) // 1000).tolist()
        records = []
        tuples: Iterable[Any] = rows.itertuples(index=False)
        for i, row in enumerate(tuples):
            stamp = pd.Timestamp(ms[i], unit="ms", tz="UTC")
            records.append({
                "time": ms[i], "id": int(row.id), "symbol": key[1], "board": _wire(row.board),
                "side": _wire(row.side), "price": float(row.price), "qty": _wire(row.qty),
                "oi": _wire(row.oi), "existing": False,
                "time_iso": stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "0000Z",
                "order_no": "0"})
        return records

    # --- quotes ----------------------------------------------------------------------------

    def quote(self, key: Key, delay: float = 0) -> dict:
        """A recorded instrument's quote holds recorded values only: its recorded quotes
        merged field by field as a live frame merges them (``invia_data.replay`` shows the
        same row), else the best levels of its recorded book and its last recorded trade.
        A field no message carried is null, as the API sends missing data."""
        rec = self._recorded.get(key)
        if rec is None:
            return super().quote(key, delay)
        if rec.quotes is not None:
            position = self._position(rec.quotes.times, delay)
            if position:
                return dict(self._recorded_quote(key, rec.quotes, position))
        record = dict.fromkeys([*QUOTE_FIELDS, *QUOTE_FIELDS_LEGACY])
        record.update(symbol=key[1], exchange=key[0])
        book = self.book(key, 1, delay) if rec.book is not None else None
        if book and book["time"]:
            best_bid = book["bids"][0] if book["bids"] else {}
            best_ask = book["asks"][0] if book["asks"] else {}
            record.update(bid=best_bid.get("price"), bid_vol=best_bid.get("volume"),
                          ask=best_ask.get("price"), ask_vol=best_ask.get("volume"),
                          ob_time=book["time"])
        trades = self.trades(key, last=1) if rec.trades is not None else []
        if trades:
            record.update(last_price=trades[-1]["price"],
                          last_price_time=trades[-1]["time"] // 1000)
        return record

    def _recorded_quote(self, key: Key, quotes: RowsReplay, position: int) -> dict:
        """The recorded quotes received before ``position``, merged, as a wire-valued record."""
        cached = self._quote_cache_rec.get((key, position))
        if cached is not None:
            return cached
        frame = quotes.frame(position)
        mine = frame.index[frame["exchange"].eq(key[0]).fillna(False).to_numpy(dtype=bool)]
        row = frame.loc[mine[-1] if len(mine) else frame.index[-1]]
        record = {name: _quote_value(row[name], kind) for name, kind in QUOTE_FIELDS.items()}
        # the legacy key of the same figure (Simple's ``accrued_interest``)
        record["accrued_interest_legacy"] = record["accrued_interest"]
        with self._replay_lock:
            if len(self._quote_cache_rec) > 1000:
                self._quote_cache_rec.clear()
            self._quote_cache_rec[(key, position)] = record
        return record

    # --- candles ---------------------------------------------------------------------------

    def candles(self, key: Key, tf_seconds: int, start: float, end: float,
                limit: int | None = None) -> dict[str, np.ndarray]:
        """A recorded instrument's candles are those of its recorded minutes only (none
        before the recording, none of a timeframe under a minute or over a day)."""
        if key not in self._recorded:
            return super().candles(key, tf_seconds, start, end, limit)
        empty = {name: np.asarray(values)[:0]
                 for name, values in super().candles(key, 60, start, start).items()}
        frame = self._minutes(key)
        if frame is None or tf_seconds % 60 or tf_seconds > 86400 or not len(frame):
            return empty
        if tf_seconds > 60:
            bucket = pd.DatetimeIndex(frame.index).floor(f"{tf_seconds}s")
            frame = frame.groupby(bucket).agg({"open": "first", "high": "max", "low": "min",
                                               "close": "last", "volume": "sum"})
        times = pd.DatetimeIndex(frame.index).asi8 // 1_000_000_000
        keep = (times >= start) & (times < end)
        ours = {"time": times[keep].astype("int64"),
                **{c: frame[c].to_numpy(dtype="float64")[keep]
                   for c in ("open", "high", "low", "close")},
                "volume": frame["volume"].to_numpy(dtype="int64")[keep]}
        merged = {name: ours[name].astype(empty[name].dtype) for name in empty}
        if limit is not None:
            merged = {name: values[:limit] for name, values in merged.items()}
        return merged

    def _minutes(self, key: Key) -> pd.DataFrame | None:
        """The recorded day's one-minute candles as received by now: the last version of each
        recorded bar, else candles made from the recorded trades."""
        rec = self._recorded.get(key)
        if rec is None:
            return None
        if rec.bars is not None:
            rows = rec.bars.iloc[:self._position(rec.bar_us)]
            rows = rows.drop_duplicates("time", keep="last").sort_values("time")
            index = pd.DatetimeIndex(rows["time"]).as_unit("ns")
            return pd.DataFrame({c: rows[c].to_numpy() for c in
                                 ("open", "high", "low", "close", "volume")}, index=index)
        trades = self._trade_rows(key)
        if trades is None or not len(trades):
            return None
        minutes = pd.DatetimeIndex(trades["time"]).as_unit("ns")
        series = pd.DataFrame({"price": trades["price"].to_numpy(),
                               "qty": trades["qty"].to_numpy(dtype="int64")}, index=minutes)
        grouped = series.groupby(minutes.floor("60s"))
        return pd.DataFrame({"open": grouped["price"].first(), "high": grouped["price"].max(),
                             "low": grouped["price"].min(), "close": grouped["price"].last(),
                             "volume": grouped["qty"].sum()})


__all__ = ["ReplayMarket"]
