"""The simulator's deterministic synthetic market: what the server asks for.

One :class:`Market` holds every instrument of :mod:`.instruments`: a limit order book driven by a
seeded order flow (:mod:`.book`), the tape of its trades, live one-minute candles, and behind them
years of generated history (:mod:`.history`); plus the demo login's portfolios
(:mod:`.portfolio`). Everything is a pure function of ``seed`` and the market clock: two markets
with the same seed and the same clock readings produce the same books, trades and candles.

Simplifications, on purpose:

* Trading runs around the clock every day (status 17, "нормальный период торгов"), so a demo
  works at any hour; activity is higher during the MOEX main session (07:00-15:40 UTC).
* The clock is ``start + (real - real_start) * speed``; ``speed`` > 1 runs the market faster
  than real time (event counts are capped per real second; events then get larger).
* History before the simulator started is generated; from the start minute on, candles are
  aggregated from the live trades, and the live book opens at the generated price of that
  minute, so the two join without a gap. Futures follow their underlying (share or FX pair).
* The raw tape is kept for the current and the previous UTC day; older live trades are
  re-derived from their minute candles, so memory stays bounded however long it runs.

The server calls :meth:`Market.advance` every few milliseconds; records are canonical dicts of
``invia_data.schema`` (canonical names, wire-value types). Thread-safe: one lock around state.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time as _time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from . import calendar
from .bonds import day_of
from .book import BUY, SELL, LiveFlow, opening_interest
from .factors import FactorMoves, LiveFactors
from .history import (
    ANCHOR_DAY,
    DAY,
    EMPTY_BARS,
    EMPTY_TRADES,
    WALK_DAYS,
    Bars,
    History,
    PastTrades,
    aggregate,
    bucket_start,
    carry,
    concat,
    concat_trades,
    futures_underlying,
    iso_array,
    next_bucket,
    trades_from_bars,
)
from .instruments import (
    INSTRUMENTS,
    Spec,
    currency_pair_records,
    risk_rate_records,
    round_to_step,
    security_record,
)
from .portfolio import Portfolios

log = logging.getLogger("invia_data.sim")

Key = tuple[str, str]
MAX_LAG = 120.0  # market seconds (or 2 real ones) the flow may fall behind before it jumps
SNAPSHOT_HISTORY = 960.0  # market seconds of book snapshots kept for delayed (anonymous) data
TRIM_EVERY = 3600.0  # market seconds between let-go passes over old tape


def live_trade_base(t: float) -> int:
    """The id of the first live trade of a flow started at market time ``t``: its millisecond.

    Ids keep growing as the exchange's do, across simulators started one after another (a
    recorder appending to a recording drops a trade whose id it wrote already): a flow makes
    far fewer than 1000 trades a second, so a later start numbers its trades above an earlier
    one's. The generated history's ids (``minute * 100 + k``) stay below every live one."""
    return int(t * 1000)


class Market:
    """Books, trades, candles, reference data and the demo portfolios (see the module doc)."""

    def __init__(self, seed: int = 1, speed: float = 1.0, *,
                 clock: Callable[[], float] | None = None, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        self.seed = int(seed)
        self.speed = float(speed)
        self._clock = clock or _time.time
        self._real_start = float(self._clock())
        self.start = float(start) if start is not None else self._real_start
        if not (ANCHOR_DAY + 1) * DAY <= self.start < (ANCHOR_DAY + WALK_DAYS - 1) * DAY:
            raise ValueError(f"start {self.start!r} is outside the generated history "
                             f"(2017-12-29 .. 2057)")
        self.live_minute = int(self.start // 60 * 60)
        self.history = History(self.seed)
        self.live_factors = LiveFactors(self.seed, self.start)
        self._lock = threading.RLock()
        self._specs: dict[Key, Spec] = {s.key: s for s in INSTRUMENTS}
        self._markets: dict[Key, str] = {s.key: calendar.market_of(s.market, s.exchange)
                                         for s in INSTRUMENTS}
        self._flows: dict[Key, LiveFlow] = {}
        self._heap: list[tuple[float, int]] = []
        self._streams: list[Any] = []
        self._book_cache: dict[Key, tuple[int, dict[int, dict]]] = {}
        self._snapshots: dict[Key, deque] = {}
        self._snapshot_every = max(1.0, self.speed * 0.05)
        self._quote_cache: dict[tuple[Key, int], tuple[tuple, dict]] = {}
        self._next_trim = self.start + TRIM_EVERY
        self._max_lag = max(MAX_LAG, 2.0 * self.speed)
        self._prev_close_cache: dict[tuple[Key, int], int] = {}
        self._volume_cache: dict[tuple[Key, int], int] = {}  # yesterday's volume, for ratings
        self._generated_day: dict[tuple[Key, int], Bars] = {}  # today before the start
        self._yield_cache: dict[tuple[str, Any], dict[int, float | None]] = {}
        for spec in INSTRUMENTS:
            if spec.live_from_start:
                self._activate(spec.key, self.start)
        self.portfolio = Portfolios(self)
        self._add_stream(self.portfolio, self.portfolio.next_time)
        self.login = self.portfolio.login
        self.agreements = list(self.portfolio.agreements)
        self.portfolios = list(self.portfolio.ids)

    def _activate(self, key: Key, t: float) -> LiveFlow:
        """Start the order flow of an instrument at market time ``t``: its book opens at the
        generated price path of the minute before (traded or not) (a future's underlying starts first, and the future
        follows it). Before that minute its candles and trades are generated history."""
        spec = self._specs[key]
        underlying = futures_underlying(spec)
        if underlying is not None and underlying.key not in self._flows:
            self._activate(underlying.key, t)
        minute = int(t // 60 * 60)
        opening = self.history.price_at(spec, minute - 60)  # the path at the minute before
        flow = LiveFlow(spec, self.seed, t, opening, self.speed,
                        first_trade_id=live_trade_base(t), on_fill=self._on_fill)
        self._flows[key] = flow
        self._snapshots[key] = deque()
        self._snapshot(key, flow, force=True)
        flow.factors = FactorMoves(self.live_factors, spec, t)
        if underlying is not None:
            factor = spec.face_value * carry(spec, t) * underlying.min_step / spec.min_step
            flow.follow(self._flows[underlying.key], factor)
        now = self.now()
        while flow.next_time <= now:  # started a moment ago: its events up to now
            flow.step(flow.next_time)
        self._snapshot(key, flow)
        self._add_stream(flow, flow.next_time)
        return flow

    def _flow(self, key: Key) -> LiveFlow:
        """The live flow of an instrument, started now if this is its first use."""
        flow = self._flows.get(key)
        if flow is None:
            with self._lock:
                # On the whole second: the flow does not depend on how often the clock is read.
                start = max(self.start, math.floor(self.now() + 1e-3))
                flow = self._flows.get(key) or self._activate(key, start)
        return flow

    def _live_from(self, key: Key, until: float) -> int:
        """The minute (unix s) from which an instrument's candles and trades are live rather
        than generated. A range ending by the market's start needs no live flow; one reaching
        past it starts the flow of an instrument not used yet."""
        flow = self._flows.get(key)
        if flow is None:
            if until <= self.live_minute:
                return self.live_minute
            flow = self._flow(key)
        return flow.live_minute

    def _add_stream(self, stream: Any, next_time: float) -> None:
        heapq.heappush(self._heap, (next_time, len(self._streams)))
        self._streams.append(stream)

    def __repr__(self) -> str:
        return (f"Market(seed={self.seed}, speed={self.speed}, instruments={len(self._specs)}, "
                f"start={self.start:.0f})")

    # --- the clock --------------------------------------------------------------------------

    def now(self) -> float:
        """The market clock, unix seconds."""
        return self.start + (float(self._clock()) - self._real_start) * self.speed

    def advance(self) -> None:
        """Run every due event of the order flows and the demo trader up to :meth:`now`."""
        with self._lock:
            now = self.now()
            heap = self._heap
            if not heap or heap[0][0] > now:
                return
            if heap[0][0] < now - self._max_lag:
                log.warning("market flow fell %.0f s behind; jumping ahead", now - heap[0][0])
                self._jump(now - self._max_lag / 2)
                heap = self._heap
            streams = self._streams
            while heap[0][0] <= now:
                t, index = heap[0]
                heapq.heapreplace(heap, (streams[index].step(t), index))
            for key, flow in self._flows.items():
                self._snapshot(key, flow)
            if now >= self._next_trim:
                self._trim(now)

    def _trim(self, now: float) -> None:
        """Keep the raw tape of the current and the previous UTC day only."""
        keep_from = (int(now // DAY) - 1) * DAY * 1000
        for flow in self._flows.values():
            flow.drop_before(keep_from)
        self._next_trim = now + TRIM_EVERY

    def _jump(self, t: float) -> None:
        for stream in self._streams:
            stream.skip_to(t)
        self._heap = [(s.next_time, i) for i, s in enumerate(self._streams)]
        heapq.heapify(self._heap)

    def _snapshot(self, key: Key, flow: LiveFlow, force: bool = False) -> None:
        ring = self._snapshots[key]
        if not force and (flow.changed_at - ring[-1][0] < self._snapshot_every):
            return
        book = flow.book
        ring.append((flow.changed_at, book.top(BUY, 50), book.top(SELL, 50)))
        while len(ring) > 2 and ring[1][0] < flow.changed_at - SNAPSHOT_HISTORY:
            ring.popleft()

    # --- reference data ----------------------------------------------------------------------

    def resolve(self, exchange: str, symbol: str, board: str | None = None) -> Key | None:
        """``(exchange, symbol)`` of an instrument, case-insensitive; ``ITS`` finds any exchange.
        The futures short name (``SRZ6``) also resolves. None when unknown."""
        if not isinstance(exchange, str) or not isinstance(symbol, str):
            return None
        exchange, wanted = exchange.upper(), symbol.upper()
        candidates = [s for s in INSTRUMENTS
                      if (wanted in (s.symbol.upper(), s.short_name.upper())
                          or (s.bond is not None and wanted == s.isin))
                      and (exchange == "ITS" or s.exchange == exchange)]
        if not candidates:
            return None
        candidates.sort(key=lambda s: (s.exchange != exchange, s.symbol.upper() != wanted))
        spec = candidates[0]
        if board is not None and board.upper() not in (*spec.boards, "ITS"):
            return None
        return spec.key

    def data_refusal(self, key: Key, kind: str | None = None) -> str | None:
        """Why no market data of ``kind`` (any kind when None) is served for ``key``; None when
        it is. The synthetic market serves every kind of every instrument."""
        return None

    def market_data_requested(self) -> None:
        """A client asked for an instrument's market data (the replay's session begins at the
        first such request); the synthetic market's clock runs from its start, so nothing."""

    def spec(self, key: Key) -> Spec:
        return self._specs[key]

    def flow(self, key: Key) -> LiveFlow:
        """The live order flow, book and tape of an instrument (the demo trader uses it)."""
        return self._flow(key)

    def prev_close_ticks(self, key: Key) -> int:
        """The close of the previous UTC day, in ticks."""
        return self._prev_close_ticks(key)

    def keys(self) -> list[Key]:
        return list(self._specs)

    def securities(self) -> list[dict]:
        """SECURITY records of every instrument, most traded (rating) first."""
        records = [self.security(key) for key in self._specs]
        records.sort(key=lambda r: -r["rating"])
        return records

    def security(self, key: Key) -> dict:
        spec = self._specs[key]
        with self._lock:
            prev = self._prev_close_ticks(key)
            yesterday = (int(self.now() // DAY) - 1) * DAY
            volume = self._volume_cache.get((key, yesterday))
            if volume is None:
                daily = self._bars(key, DAY, yesterday, yesterday + DAY)
                volume = int(daily.volume[0]) if len(daily) else 0
                self._volume_cache[(key, yesterday)] = volume
        rating = volume * spec.lot_size * spec.price(prev) * (1 if spec.currency == "RUB" else 80)
        bond_yield = self._bond_figures(spec, prev, self.now())[1] if spec.bond else None
        return {**security_record(spec, spec.price(prev), rating, bond_yield),
                **self.trading_status(key)}

    def boards(self, key: Key) -> list[str]:
        return list(self._specs[key].boards)

    def currency_pairs(self) -> list[dict]:
        return currency_pair_records()

    def risk_rates(self, risk_category_id: int, exchange: str | None = None,
                   ticker: str | None = None, search: str | None = None) -> list[dict]:
        records = risk_rate_records(int(risk_category_id))
        if exchange:
            records = [r for r in records if r["exchange"] == exchange.upper()
                       or exchange.upper() == "ITS"]
        if ticker:
            records = [r for r in records if r["instrument"].upper() == ticker.upper()]
        if search:
            prefix = search.upper()
            records = [r for r in records if r["instrument"].upper().startswith(prefix)
                       or (r["isin"] or "").upper().startswith(prefix)]
        return records

    def trading_status(self, key: Key) -> dict:
        """The instrument's phase now by the exchange's calendar: ``trading_status`` (17
        normal trading, 119 opening auction, 102 closing auction, 2 break, 18 closed) and its
        text."""
        status = calendar.status_at(self._markets[key], self.now())[0]
        return {"trading_status": status, "trading_status_info": calendar.STATUS_INFO[status]}

    def instrument_state(self, key: Key) -> dict:
        spec = self._specs[key]
        with self._lock:
            prev = spec.price(self._prev_close_ticks(key))
        limit = 0.1 if spec.is_future else 0.2
        margin = round(prev * 0.14, 2) if spec.is_future else 0.0
        return {
            "symbol": spec.symbol, "exchange": spec.exchange, "board": spec.board,
            **self.trading_status(key),
            "price_min": round_to_step(spec, prev * (1 - limit)),
            "price_max": round_to_step(spec, prev * (1 + limit)),
            "margin_buy": margin, "margin_sell": round(margin * 1.02, 2),
            "margin_synthetic": 0.0, "theor_price": 0.0, "theor_price_limit": 0.0,
            "volatility": 0.0,
        }

    # --- order book and quote ------------------------------------------------------------------

    def book_version(self, key: Key) -> int:
        return self._flow(key).book.version

    def book(self, key: Key, depth: int = 20, delay: float = 0) -> dict:
        """ORDERBOOK record, best levels first; ``delay`` seconds ago when delay > 0. Records
        are cached per book version and depth."""
        depth = max(1, min(50, int(depth)))
        spec = self._specs[key]
        with self._lock:
            flow = self._flow(key)
            if delay > 0:
                at, bids, asks = self._snapshot_at(key, self.now() - delay)
                return self._book_record(spec, at, bids[:depth], asks[:depth])
            version = flow.book.version
            cached = self._book_cache.get(key)
            if cached is None or cached[0] != version:
                cached = (version, {})
                self._book_cache[key] = cached
            record = cached[1].get(depth)
            if record is None:
                record = self._book_record(spec, flow.changed_at, flow.book.top(BUY, depth),
                                           flow.book.top(SELL, depth))
                cached[1][depth] = record
        return dict(record)

    def _book_record(self, spec: Spec, at: float, bids: list, asks: list) -> dict:
        price = spec.price
        if spec.bond is not None:  # each level's yield (Slim "y")
            yields = self._yields(spec, [p for p, _ in bids] + [p for p, _ in asks], at)
            return {
                "bids": [{"price": price(p), "volume": v, "yield": yields[p]} for p, v in bids],
                "asks": [{"price": price(p), "volume": v, "yield": yields[p]} for p, v in asks],
                "time": int(at * 1000), "existing": True, "snapshot": True,
                "timestamp_s": round(at, 3),
            }
        return {
            "bids": [{"price": price(p), "volume": v} for p, v in bids],
            "asks": [{"price": price(p), "volume": v} for p, v in asks],
            "time": int(at * 1000),
            "existing": True,
            "snapshot": True,
            "timestamp_s": round(at, 3),
        }

    def _yields(self, spec: Spec, ticks: list[int], at: float) -> dict[int, float | None]:
        """Yields to maturity (percent, 2 decimals) of a bond at prices in ticks on the day of
        ``at``; remembered per day and price, so a moving book costs only its new levels."""
        terms = spec.bond
        assert terms is not None
        day = day_of(at)
        if not terms.issue <= day < terms.maturity:
            return dict.fromkeys(ticks)
        cache = self._yield_cache.setdefault((spec.symbol, day), {})
        if len(self._yield_cache) > 64:
            self._yield_cache.clear()
            cache = self._yield_cache.setdefault((spec.symbol, day), {})
        missing = sorted({t for t in ticks if t not in cache})
        if missing:
            values = terms.yields(spec.prices(np.array(missing, dtype=np.int64)), day)
            cache.update(zip(missing, np.round(values * 100.0, 2).tolist(), strict=True))
        return {t: cache[t] for t in ticks}

    def _bond_figures(self, spec: Spec, last_ticks: int, at: float) -> tuple[float, float | None]:
        """(accrued interest in RUB, yield in percent at the last price) of a bond on the day
        of ``at``; (0.0, None) for anything else or outside the bond's life."""
        if spec.bond is None or not spec.bond.issue <= day_of(at) < spec.bond.maturity:
            return 0.0, None
        return self.accrued_interest(spec.key, at), self._yields(spec, [last_ticks], at)[last_ticks]

    def accrued_interest(self, key: Key, at: float) -> float:
        """A bond's accrued interest per unit (RUB) on the day of ``at``; 0 for the rest."""
        terms = self._specs[key].bond
        if terms is None or not terms.issue <= day_of(at) < terms.maturity:
            return 0.0
        return terms.accrued(day_of(at))

    def _snapshot_at(self, key: Key, t: float) -> tuple[float, list, list]:
        ring = self._snapshots[key]
        index = bisect_right(ring, t, key=_snapshot_time)
        return ring[max(0, index - 1)]

    def quote(self, key: Key, delay: float = 0) -> dict:
        """QUOTE record consistent with the book and the trades (``delay`` seconds ago)."""
        spec = self._specs[key]
        with self._lock:
            flow = self._flow(key)
            now = self.now()
            state = (flow.book.version, flow.trade_count, int(now // 60), delay > 0)
            cached = self._quote_cache.get((key, int(delay)))
            if cached is not None and cached[0] == state:
                return dict(cached[1])
            at = now - delay if delay > 0 else now
            if delay > 0:
                book_time, bids, asks = self._snapshot_at(key, at)
            else:
                book_time, bids, asks = flow.changed_at, flow.book.top(BUY, 50), \
                    flow.book.top(SELL, 50)
            record = self._quote_record(spec, key, at, book_time, bids, asks)
            self._quote_cache[(key, int(delay))] = (state, record)
        return dict(record)

    def _quote_record(self, spec: Spec, key: Key, at: float, book_time: float, bids: list,
                      asks: list) -> dict:
        day_start = int(at // DAY * DAY)
        if at >= self.now() - 1e-6:
            today = self._today(key, day_start)
        else:
            today = self._bars(key, DAY, day_start, day_start + DAY, until=at)
        prev_close = self._prev_close_ticks(key, at)
        last_ms, last_ticks = self._last_trade(key, at)
        price = spec.price
        last = price(last_ticks)
        prev = price(prev_close)
        flow = self._flow(key)
        accrued, bond_yield = self._bond_figures(spec, last_ticks, at)
        lot_value = last * spec.lot_size
        if spec.bond is not None:  # a bond's price is percent of its face
            lot_value = last / 100.0 * spec.face_value * spec.lot_size
        return {
            "symbol": spec.symbol, "exchange": spec.exchange, "description": spec.description,
            "last_price": last, "last_price_time": last_ms // 1000,
            "bid": price(bids[0][0]) if bids else None,
            "ask": price(asks[0][0]) if asks else None,
            "bid_vol": bids[0][1] if bids else 0, "ask_vol": asks[0][1] if asks else 0,
            "total_bid_vol": sum(v for _, v in bids), "total_ask_vol": sum(v for _, v in asks),
            "ob_time": int(book_time * 1000),
            "open_price": price(int(today.open[0])) if len(today) else last,
            "high_price": price(int(today.high[0])) if len(today) else last,
            "low_price": price(int(today.low[0])) if len(today) else last,
            "prev_close_price": prev,
            "change": round(last - prev, max(spec.decimals, 2)),
            "change_percent": round((last - prev) / prev * 100, 2) if prev else 0.0,
            "volume": float(today.volume[0]) if len(today) else 0.0,
            "open_interest": flow.open_interest if spec.is_future else None,
            "accrued_interest": accrued, "accrued_interest_legacy": accrued,
            "yield": bond_yield,
            "lot_size": float(spec.lot_size),
            "lot_value": round(lot_value, 4),
            "face_value": spec.face_value,
            "type": spec.type,
            "currency": spec.currency,
        }

    def _today(self, key: Key, day_start: int) -> Bars:
        """Today's candle so far: the generated part before the simulator started (cached)
        joined with the live running day statistics (no aggregation per call)."""
        generated = self._generated_day.get((key, day_start))
        if generated is None:
            live_from = self._flow(key).live_minute
            generated = self.history.minutes(self._specs[key], day_start,
                                             min(live_from, day_start + DAY))
            generated = aggregate(generated, DAY) if len(generated) else EMPTY_BARS
            self._generated_day[(key, day_start)] = generated
        flow = self._flow(key)
        day, open_, high, low, volume = flow.day_stats
        if day != day_start // DAY:
            return generated
        if not len(generated):
            return Bars(*(np.array([v], dtype=np.int64)
                          for v in (day_start, open_, high, low, flow.m_close[-1], volume)))
        return Bars(generated.time, generated.open,
                    np.maximum(generated.high, high), np.minimum(generated.low, low),
                    np.array([flow.m_close[-1]], dtype=np.int64), generated.volume + volume)

    def last_price(self, key: Key) -> float:
        spec = self._specs[key]
        with self._lock:
            return spec.price(self._last_trade(key, self.now())[1])

    def _last_trade(self, key: Key, at: float) -> tuple[int, int]:
        """(ms, price ticks) of the last trade at or before ``at``."""
        flow = self._flow(key)
        ms = int(at * 1000)
        index = flow.index_at_ms(ms + 1)
        if index > flow.dropped:
            return flow.trade_at(index - 1)
        candle = bisect_right(flow.m_time, int(at // 60 * 60)) - 1
        if candle >= 0:  # that trade was let go: its minute's close
            return min(ms, (flow.m_time[candle] + 60) * 1000 - 1), flow.m_close[candle]
        minute = min(flow.live_minute, int(at // 60 * 60))
        spec = self._specs[key]
        bars = self.history.minutes(spec, minute - 60, minute)
        if len(bars):
            return int(bars.time[-1] + 59) * 1000, int(bars.close[-1])
        close = self.history.last_close(spec, minute)
        if close is not None:
            return (minute - 1) * 1000, close
        return int(at * 1000), round(spec.ref_price / spec.min_step)

    def _prev_close_ticks(self, key: Key, at: float | None = None) -> int:
        """The last close before the UTC day of ``at`` (final once that day has begun)."""
        at = self.now() if at is None else at
        day_start = int(at // DAY * DAY)
        found = self._prev_close_cache.get((key, day_start))
        if found is None:
            bars = self._bars(key, DAY, day_start - 20 * DAY, day_start)
            spec = self._specs[key]
            found = int(bars.close[-1]) if len(bars) else round(spec.ref_price / spec.min_step)
            if len(self._prev_close_cache) > 4096:
                self._prev_close_cache.clear()
            self._prev_close_cache[(key, day_start)] = found
        return found

    # --- trades ------------------------------------------------------------------------------------

    def trades(self, key: Key, start: float | None = None, end: float | None = None, *,
               last: int | None = None) -> list[dict]:
        """TRADE records of the current session (the UTC day), ascending id; start/end unix s.
        ``last``: only the latest ``last`` of them (records are built only for those)."""
        with self._lock:
            now = self.now()
            day_start = int(now // DAY * DAY)
            t0 = day_start if start is None else max(day_start, start)
            t1 = now if end is None else min(now, end)
            t0_ms, t1_ms = int(t0 * 1000), int(t1 * 1000) + 1
            flow = self._flow(key)
            kept = max(flow.live_minute * 1000, flow.kept_from_ms, t0_ms)
            hi = flow.index_at_ms(t1_ms)
            if last is not None and hi - flow.index_at_ms(kept) >= last:  # the live tail has them
                columns = flow.trade_columns(hi - int(last), hi)
            else:
                columns = self._trade_columns(key, t0_ms, t1_ms)
        if last is not None:
            columns = {name: values[max(0, len(values) - int(last)):]
                       for name, values in columns.items()}
        return self._trade_records(key, columns, existing=False)

    def trades_since(self, key: Key, after_id: int) -> list[dict]:
        """Live TRADE records with id > after_id."""
        with self._lock:
            flow = self._flow(key)
            lo = max(0, int(after_id) - flow.first_trade_id + 1)
            columns = flow.trade_columns(lo, flow.trade_count)
        return self._trade_records(key, columns, existing=False)

    def last_trade_id(self, key: Key) -> int:
        flow = self._flow(key)
        return flow.first_trade_id + flow.trade_count - 1

    def past_trades(self, key: Key, start: float, end: float, *, offset: int = 0,
                    limit: int | None = None) -> list[dict]:
        """TRADE records of earlier sessions with start <= time < end (unix s); ``offset`` and
        ``limit`` page them (records are built only for the page)."""
        with self._lock:
            columns = self._past_columns(key, start, end)
        stop = None if limit is None else offset + int(limit)
        columns = {name: values[offset:stop] for name, values in columns.items()}
        return self._trade_records(key, columns, existing=True)

    def past_trade_count(self, key: Key, start: float, end: float) -> int:
        """How many trades :meth:`past_trades` has for the window (the history route's total)."""
        with self._lock:
            return len(self._past_columns(key, start, end)["time"])

    def _past_columns(self, key: Key, start: float, end: float) -> dict[str, np.ndarray]:
        day_start = int(self.now() // DAY * DAY)
        return self._trade_columns(key, int(start * 1000), int(min(end, day_start) * 1000))

    def _trade_columns(self, key: Key, t0_ms: int, t1_ms: int) -> dict[str, np.ndarray]:
        """Trades with t0_ms <= time < t1_ms: generated before the simulator started, re-derived
        from the live minute candles where the tape was let go, the live tape after that."""
        spec = self._specs[key]
        split = self._live_from(key, t1_ms / 1000) * 1000
        flow = self._flows.get(key)
        if flow is None:  # nothing live asked: all generated
            p = self.history.trades(spec, t0_ms, t1_ms)
            oi = np.full(len(p), opening_interest(spec), dtype=np.int64)
            return {"time": p.time, "id": p.id, "price": p.price, "qty": p.qty, "side": p.side,
                    "oi": oi}
        kept = max(split, flow.kept_from_ms)
        interest = flow.open_interest if spec.is_future else 0
        parts = [self.history.trades(spec, t0_ms, min(t1_ms, split)),
                 self._rederived_trades(key, max(t0_ms, split), min(t1_ms, kept), kept)]
        columns = [{"time": p.time, "id": p.id, "price": p.price, "qty": p.qty, "side": p.side,
                    "oi": np.full(len(p), interest, dtype=np.int64)} for p in parts]
        lo = flow.index_at_ms(max(t0_ms, kept))
        hi = flow.index_at_ms(t1_ms) if t1_ms > kept else lo
        columns.append(flow.trade_columns(lo, hi))
        return {name: np.concatenate([c[name] for c in columns])
                for name in ("time", "id", "price", "qty", "side", "oi")}

    def _rederived_trades(self, key: Key, t0_ms: int, t1_ms: int, kept_ms: int) -> PastTrades:
        """Trades of live minutes whose tape was let go (before ``kept_ms``), from their candles:
        one generator per day over all of that day's such minutes, whatever the window asked,
        and ids inside each minute's original id range."""
        if t1_ms <= t0_ms:
            return EMPTY_TRADES
        spec, flow = self._specs[key], self._flow(key)
        parts = []
        for day in range(t0_ms // 86_400_000, (t1_ms - 1) // 86_400_000 + 1):
            lo = bisect_left(flow.m_time, day * DAY)
            hi = bisect_left(flow.m_time, min((day + 1) * DAY, kept_ms // 1000))
            if hi <= lo:
                continue
            bars = self._live_slice(flow, lo, hi)
            first = np.frombuffer(flow.m_first[lo:hi + 1], dtype=np.int64)
            ends = first[1:] if len(first) > hi - lo else np.append(first[1:], flow.trade_count)
            first = first[:hi - lo]
            trades = trades_from_bars(bars, [self.seed, spec.code, day, 2], counts=ends - first,
                                      first_ids=first + flow.first_trade_id)
            parts.append(trades.between_ms(t0_ms, t1_ms))
        return concat_trades(parts)

    @staticmethod
    def _live_slice(flow: LiveFlow, lo: int, hi: int) -> Bars:
        return Bars(*(np.frombuffer(column[lo:hi], dtype=np.int64)
                      for column in (flow.m_time, flow.m_open, flow.m_high, flow.m_low,
                                     flow.m_close, flow.m_volume)))

    def _trade_records(self, key: Key, columns: dict[str, np.ndarray],
                       existing: bool) -> list[dict]:
        spec = self._specs[key]
        if not len(columns["time"]):
            return []
        prices = spec.prices(columns["price"]).tolist()
        isos = iso_array(columns["time"])
        sides = ["buy" if s > 0 else "sell" for s in columns["side"].tolist()]
        oi_values = columns["oi"].tolist()
        symbol, board = spec.symbol, spec.board
        return [
            {"time": t, "id": i, "symbol": symbol, "board": board, "side": s, "price": p,
             "qty": q, "oi": oi, "existing": existing, "time_iso": text, "order_no": "0"}
            for t, i, p, q, s, oi, text in zip(columns["time"].tolist(), columns["id"].tolist(),
                                               prices, columns["qty"].tolist(), sides, oi_values,
                                               isos, strict=True)
        ]

    # --- candles ------------------------------------------------------------------------------------

    def candles(self, key: Key, tf_seconds: int, start: float, end: float,
                limit: int | None = None) -> dict[str, np.ndarray]:
        """Candles with start <= time < end: time (unix s), open, high, low, close (prices),
        volume (lots). ``tf_seconds`` 86400 / 604800 (Monday weeks) / 2592000 (calendar
        months) / 31536000 (calendar years) or any number of seconds. The last candle may be
        open. ``limit``: only the first ``limit`` candles, and only they are generated (a page
        of a huge range costs the page, not the range)."""
        spec = self._specs[key]
        start_s, end_s = int(math.floor(start)), int(math.ceil(end))
        with self._lock:
            if limit is None:
                bars = self._bars(key, int(tf_seconds), start_s, end_s)
            else:
                bars = self._first_bars(key, int(tf_seconds), start_s, end_s, int(limit))
        return {
            "time": _read_only(bars.time),
            "open": spec.prices(bars.open), "high": spec.prices(bars.high),
            "low": spec.prices(bars.low), "close": spec.prices(bars.close),
            "volume": _read_only(bars.volume),
        }

    def _first_bars(self, key: Key, tf: int, start: int, end: int, limit: int) -> Bars:
        """The first ``limit`` candles of [start, end), built in chunks of about ``limit``
        candles whose edges fall on candle boundaries."""
        parts: list[Bars] = []
        count = 0
        history_start = int(bucket_start(np.array([ANCHOR_DAY * DAY], dtype=np.int64), tf)[0])
        chunk_start = max(start, history_start)  # nothing exists before the history starts
        now = self.now()
        while count < limit and chunk_start < end and chunk_start <= now:
            span = max(tf, (limit - count) * tf)
            chunk_end = int(bucket_start(np.array([chunk_start + span], dtype=np.int64), tf)[0])
            if chunk_end <= chunk_start:
                chunk_end = next_bucket(chunk_start, tf)
            bars = self._bars(key, tf, chunk_start, min(chunk_end, end))
            parts.append(bars)
            count += len(bars)
            chunk_start = chunk_end
        bars = concat(parts)
        return bars.slice(0, limit) if len(bars) > limit else bars

    def _bars(self, key: Key, tf: int, start: int, end: int, until: float | None = None) -> Bars:
        if tf <= 0:
            raise ValueError(f"timeframe must be positive, got {tf}")
        if end <= start:
            return EMPTY_BARS
        if tf == 60 and until is None and start >= self._live_from(key, end):  # the live tail
            return self._live_minutes(key, -(-start // 60) * 60, end, None)
        t0 = int(bucket_start(np.array([start], dtype=np.int64), tf)[0])
        last = int(bucket_start(np.array([end - 1], dtype=np.int64), tf)[0])
        t1 = next_bucket(last, tf)
        if until is not None:
            t1 = min(t1, int(until // 60 * 60) + 60)
        daily = tf % DAY == 0
        shapes = self.history.shapes(self._specs[key]) if daily else None
        if daily:  # a trading day also holds the weekend or evening sessions before it
            t0 = calendar.previous_trading_day(self._markets[key], t0 // DAY) * DAY
        if tf % 60 == 0:
            base = self._minute_base(key, t0, t1, daily=daily, until=until)
            if tf == 60:  # minutes are already one-minute candles
                return base.between(start, end)
        else:
            base = self._trade_base(key, t0, t1, until)
        return aggregate(base, tf, shapes).between(start, end)

    def _minute_base(self, key: Key, t0: int, t1: int, daily: bool, until: float | None) -> Bars:
        spec = self._specs[key]
        split = self._live_from(key, t1)
        generated_end = min(t1, split)
        parts = []
        minutes_from = t0
        if daily and generated_end > t0:
            full_days_end = generated_end // DAY
            parts.append(self.history.daily(spec, t0 // DAY, full_days_end))
            minutes_from = max(t0, full_days_end * DAY)
        parts.append(self.history.minutes(spec, minutes_from, generated_end))
        parts.append(self._live_minutes(key, max(t0, split), t1, until))
        return concat(parts)

    def _live_minutes(self, key: Key, t0: int, t1: int, until: float | None) -> Bars:
        if t1 <= t0:
            return EMPTY_BARS
        flow = self._flow(key)
        times = flow.m_time
        if not times:
            return EMPTY_BARS
        lo, hi = bisect_left(times, t0), bisect_left(times, t1)
        if until is not None:
            hi = min(hi, bisect_left(times, int(until // 60 * 60) + 1))
        if hi <= lo:
            return EMPTY_BARS
        return self._live_slice(flow, lo, hi)

    def _trade_base(self, key: Key, t0: int, t1: int, until: float | None) -> Bars:
        end_ms = t1 * 1000 if until is None else min(t1 * 1000, int(until * 1000) + 1)
        columns = self._trade_columns(key, t0 * 1000, end_ms)
        price = columns["price"]
        return Bars(columns["time"] // 1000, price, price, price, price, columns["qty"])

    # --- the demo portfolios ---------------------------------------------------------------------

    def _on_fill(self, owner: str, order_id: int, price: int, qty: int, t: float,
                 trade_id: int) -> None:
        self.portfolio.on_fill(owner, order_id, price, qty, t, trade_id)

    def portfolio_exchange(self, portfolio: str) -> str:
        return "MOEX"

    def summary(self, p: str) -> dict:
        with self._lock:
            return self.portfolio.summary(p)

    def risk(self, p: str) -> dict:
        with self._lock:
            return self.portfolio.risk(p)

    def forts_risk(self, p: str) -> dict:
        with self._lock:
            return self.portfolio.forts_risk(p)

    def money(self, p: str) -> dict:
        with self._lock:
            return self.portfolio.money(p)

    def positions(self, p: str) -> list[dict]:
        with self._lock:
            return self.portfolio.positions(p)

    def orders(self, p: str) -> list[dict]:
        with self._lock:
            return self.portfolio.orders(p)

    def stop_orders(self, p: str) -> list[dict]:
        with self._lock:
            return self.portfolio.stop_orders(p)

    def own_trades(self, p: str, symbol: str | None = None) -> list[dict]:
        with self._lock:
            return self.portfolio.own_trades(p, symbol)

    def own_trades_history(self, p: str, symbol: str | None = None,
                           date_from: float | str | None = None) -> list[dict]:
        with self._lock:
            return self.portfolio.own_trades_history(p, symbol, date_from)

    def portfolio_seq(self, p: str) -> int:
        with self._lock:
            return self.portfolio.seq(p)

    def portfolio_changes(self, p: str, after_seq: int) -> list[tuple[int, str, dict]]:
        with self._lock:
            return self.portfolio.changes(p, after_seq)


def _snapshot_time(item: tuple) -> float:
    return item[0]


def _read_only(values: np.ndarray) -> np.ndarray:
    """A read-only view: returned columns may share memory with cached history."""
    view = values.view()
    view.flags.writeable = False
    return view


__all__ = ["Market"]
