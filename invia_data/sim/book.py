"""A limit order book with price-time priority and the seeded order flow that drives it.

Prices are integer ticks. Each side maps price -> FIFO of resting orders ``[qty, order_id,
owner]`` (``owner`` is a portfolio id for the demo trader's orders, None for the anonymous
crowd) plus a running volume per level, and keeps its prices in one sorted list, so the top of
the book is a slice.

The flow (:class:`LiveFlow`) is a zero-intelligence market: Poisson events in market time, each a
limit order placed a geometric number of ticks behind the opposite best price (or behind the
fair value when that has left the spread, so the order trades), a cancel of a random resting
order, or a marketable order whose side leans toward a latent fair value (a random walk with the
instrument's volatility; for a future, its underlying's fair value times the contract size and
carry, plus a basis that drifts back over hours). Marketable orders trade at book prices, one trade per resting
order they meet, so trades, last price, quotes and candles all follow the book.

The flow keeps the exchange's calendar (:mod:`.calendar`): no events while its market is closed
or in a break; at the end of a day the crowd's orders expire (the book is empty until the next
session); a session opens with a book seeded around a fair value that moved while the market
was closed (the overnight gap); during an auction orders rest without trading and its end
prints one uncrossing trade at the fair value, which also fills the orders it crosses.
Random numbers come in batches from one generator per (seed, instrument): the flow is a pure
function of the seed, the start state and the event times.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from . import calendar
from .factors import FactorMoves
from .history import ANCHOR_DAY, WALK_DAYS
from .instruments import Spec

BUY, SELL = 1, -1
MIN_LEVELS = 60  # per side, always (the API serves up to 50)
MAX_LEVELS = 160
MAX_REAL_EVENTS = 200.0  # per instrument per real second; beyond it events get larger instead
P_MARKET = 0.12
P_CANCEL = 0.36
STALE_TICKS = 2.0  # fair value this far past the mid makes quotes on that side stale
P_INFORMED = 0.25  # share of limit orders priced off the fair value when it left the spread
TARGET_ORDERS = 320
BASIS_KEEP = 0.99999  # per event: a future's basis to its underlying decays over hours
BASIS_NOISE = 0.000003
_BATCH = 4096
CLOSED_VOL = 0.5  # the fair value's volatility while the market is closed, per sqrt(second)
AUCTION_VOLUME = {calendar.OPENING_AUCTION: 12.0, calendar.CLOSING_AUCTION: 35.0}  # minutes
QUIET = (calendar.CLOSED, calendar.BREAK)

Fill = tuple[int, int, list]  # price ticks, qty, the resting order [qty, id, owner]


class OrderBook:
    """Both sides of one instrument's book."""

    def __init__(self) -> None:
        self.levels: dict[int, dict[int, deque[list]]] = {BUY: {}, SELL: {}}
        self.volume: dict[int, dict[int, int]] = {BUY: {}, SELL: {}}
        self.prices: dict[int, list[int]] = {BUY: [], SELL: []}  # ascending on both sides
        self.owned: dict[int, tuple[int, int]] = {}  # order id -> (side, price)
        self.orders = 0
        self.version = 0

    # --- queries -----------------------------------------------------------------------

    def best(self, side: int) -> int | None:
        prices = self.prices[side]
        if not prices:
            return None
        return prices[-1] if side == BUY else prices[0]

    def depth(self, side: int) -> int:
        return len(self.prices[side])

    def top(self, side: int, depth: int) -> list[tuple[int, int]]:
        """(price, volume) of the best ``depth`` levels, best first."""
        prices = self.prices[side]
        chosen = prices[:-depth - 1:-1] if side == BUY else prices[:depth]
        volume = self.volume[side]
        return [(p, volume[p]) for p in chosen]

    def total(self, side: int) -> int:
        return sum(self.volume[side].values())

    def price_at(self, side: int, index: int) -> int:
        """The price ``index`` levels behind the best one."""
        prices = self.prices[side]
        return prices[-1 - index] if side == BUY else prices[index]

    # --- changes -----------------------------------------------------------------------

    def add(self, side: int, price: int, qty: int, order_id: int, owner: str | None = None) -> None:
        """Rest an order (the caller has matched any marketable part first)."""
        levels = self.levels[side]
        queue = levels.get(price)
        if queue is None:
            queue = levels[price] = deque()
            self.volume[side][price] = 0
            insort(self.prices[side], price)
        queue.append([qty, order_id, owner])
        self.volume[side][price] += qty
        self.orders += 1
        if owner is not None:
            self.owned[order_id] = (side, price)
        self.version += 1

    def match(self, side: int, qty: int, limit: int | None = None) -> list[Fill]:
        """An order of ``side`` for ``qty`` lots takes liquidity from the other side, best price
        first, oldest order first, up to ``limit`` (None = any price). Returns the fills."""
        other = -side
        prices = self.prices[other]
        levels = self.levels[other]
        volume = self.volume[other]
        fills: list[Fill] = []
        while qty > 0 and prices:
            price = prices[0] if other == SELL else prices[-1]
            if limit is not None and (price > limit if side == BUY else price < limit):
                break
            queue = levels[price]
            while qty > 0 and queue:
                resting = queue[0]
                take = min(qty, resting[0])
                resting[0] -= take
                qty -= take
                volume[price] -= take
                fills.append((price, take, resting))
                if resting[0] == 0:
                    queue.popleft()
                    self.orders -= 1
                    if resting[2] is not None:
                        self.owned.pop(resting[1], None)
            if not queue:
                self._drop_level(other, price)
        if fills:
            self.version += 1
        return fills

    def cancel_random(self, side: int, index: int) -> bool:
        """Cancel the newest anonymous order at the level ``index`` behind the best price."""
        prices = self.prices[side]
        if not prices:
            return False
        price = prices[-1 - index] if side == BUY else prices[index]
        queue = self.levels[side][price]
        for position in range(len(queue) - 1, -1, -1):
            order = queue[position]
            if order[2] is None:
                del queue[position]
                self._removed(side, price, order)
                return True
        return False

    def cancel(self, order_id: int) -> list | None:
        """Cancel an owned order by id; returns it (with its remaining qty) or None."""
        where = self.owned.pop(order_id, None)
        if where is None:
            return None
        side, price = where
        queue = self.levels[side][price]
        for position, order in enumerate(queue):
            if order[1] == order_id:
                del queue[position]
                self._removed(side, price, order)
                return order
        return None

    def drop_deepest(self, side: int) -> bool:
        """Remove the deepest level unless an owned order rests there."""
        prices = self.prices[side]
        price = prices[0] if side == BUY else prices[-1]
        queue = self.levels[side][price]
        if any(order[2] is not None for order in queue):
            return False
        self.orders -= len(queue)
        self._drop_level(side, price)
        self.version += 1
        return True

    def _removed(self, side: int, price: int, order: list) -> None:
        self.orders -= 1
        self.volume[side][price] -= order[0]
        if not self.levels[side][price]:
            self._drop_level(side, price)
        self.version += 1

    def _drop_level(self, side: int, price: int) -> None:
        del self.levels[side][price]
        del self.volume[side][price]
        prices = self.prices[side]
        del prices[bisect_left(prices, price)]


class LiveFlow:
    """The seeded order flow, the book, the trade tape and the live one-minute candles of one
    instrument, from ``start`` (market unix seconds) on."""

    def __init__(self, spec: Spec, seed: int, start: float, start_ticks: int, speed: float,
                 first_trade_id: int,
                 on_fill: Callable[[str, int, int, int, float, int], None] | None = None) -> None:
        self.spec = spec
        self.on_fill = on_fill
        self._rng = np.random.default_rng([seed, spec.code, 0x11FE])
        self._uniform: list[float] = []
        self._normal: list[float] = []
        nominal = min(60.0, max(10.0, spec.minute_volume / 60.0))
        self.rate = min(nominal, MAX_REAL_EVENTS / max(speed, 1e-9))
        scale = nominal / self.rate  # fewer but larger events when the clock runs fast
        self.market_qty = max(1.0, spec.minute_volume / (60.0 * P_MARKET * nominal) * scale)
        self.limit_qty = 2.0 * self.market_qty  # resting orders outsize takers, as on MOEX
        self.sigma = spec.daily_vol / math.sqrt(86_400.0)
        shapes = calendar.day_shapes(calendar.market_of(spec.market, spec.exchange), ANCHOR_DAY,
                                     WALK_DAYS)
        self._kinds = shapes.day_kind
        self._vol, self._volume = shapes.vol, shapes.volume
        self.log_fair = math.log(start_ticks)
        self.anchor: tuple[LiveFlow, float] | None = None
        self.factors: FactorMoves | None = None  # market and sector moves shared with others
        self.activity = 1.0
        self._activity_minute = -1
        self.basis = 0.0
        self.last_time = start
        self.live_minute = int(start // 60 * 60)  # candles and trades from here on are live
        self.next_time = start + self._exponential() / self.rate
        self.book = OrderBook()
        self.changed_at = start
        self._next_order_id = 1
        # The tape: columns; trade id = first_trade_id + global index; the oldest ``dropped``
        # trades were let go (:meth:`drop_before`), their minutes keep their candles.
        self.first_trade_id = first_trade_id
        self.dropped = 0
        self.kept_from_ms = 0  # no trade before this was let go
        self.t_ms = array("q")
        self.t_price = array("q")
        self.t_qty = array("q")
        self.t_side = array("b")
        self.t_oi = array("q")
        self.open_interest = opening_interest(spec)
        # Live one-minute candles (ticks / lots) and the global index of each one's first trade.
        self.m_time = array("q")
        self.m_open = array("q")
        self.m_high = array("q")
        self.m_low = array("q")
        self.m_close = array("q")
        self.m_volume = array("q")
        self.m_first = array("q")
        self.day_stats: list[int] = [-1, 0, 0, 0, 0]  # UTC day, open, high, low, volume (live)
        self._seed_book(start_ticks)
        self.market = calendar.market_of(spec.market, spec.exchange)
        self.status, since, self.status_until = calendar.status_at(self.market, start)
        self._closed_since = since
        if self.status == calendar.CLOSED:
            self._clear_book()

    # --- random numbers in batches ------------------------------------------------------

    def _u(self) -> float:
        if not self._uniform:
            self._uniform = self._rng.random(_BATCH).tolist()
        return self._uniform.pop()

    def _n(self) -> float:
        if not self._normal:
            self._normal = self._rng.standard_normal(_BATCH).tolist()
        return self._normal.pop()

    def _exponential(self) -> float:
        return -math.log(1.0 - self._u())

    def _new_id(self) -> int:
        self._next_order_id += 1
        return self._next_order_id

    # --- the flow --------------------------------------------------------------------------

    def _seed_book(self, mid: int) -> None:
        best_bid, best_ask = self.book.best(BUY), self.book.best(SELL)
        for index in range(MIN_LEVELS + 10):
            for side, price in ((BUY, mid - index), (SELL, mid + 1 + index)):
                if price <= 0 or (side == BUY and best_ask is not None and price >= best_ask) \
                        or (side == SELL and best_bid is not None and price <= best_bid):
                    continue
                for _ in range(1 + int(self._u() * 4)):
                    self.book.add(side, price, self._limit_size(index), self._new_id())

    def _limit_size(self, depth_index: int) -> int:
        return 1 + int(self.limit_qty * (1.0 + depth_index / 30.0) * self._exponential())

    def step(self, t: float) -> float:
        """Run the event due at ``t``; returns the time of the next one."""
        if t >= self.status_until:
            self._change_status(t)
        if self.status in QUIET:
            self.last_time = t
            self.next_time = self.status_until
            return self.next_time
        dt = t - self.last_time
        self.last_time = t
        day = int(t // 86_400)
        minute = int(t - day * 86_400) // 60
        kind = self._kinds[min(max(day - ANCHOR_DAY, 0), len(self._kinds) - 1)]
        if int(t // 60) != self._activity_minute:  # bursts: taker size varies minute to minute
            self._activity_minute = int(t // 60)
            self.activity = math.exp(0.7 * self._n() - 0.245)
        if self.anchor is not None:
            other, log_factor = self.anchor
            self.basis = self.basis * BASIS_KEEP + BASIS_NOISE * self._n()
            self.log_fair = other.log_fair + log_factor + self.basis
        elif dt > 0:
            noise = math.sqrt(dt) * self._n()
            if self.factors is not None:  # the share of the move common to its factors
                noise = noise * self.factors.own + self.factors.move(t)
            self.log_fair += self.sigma * self._vol[kind, minute] * noise
        book = self.book
        u = self._u()
        p_cancel = min(0.8, P_CANCEL * book.orders / TARGET_ORDERS)
        if u < P_MARKET and self.status == calendar.TRADING:
            self._market_order(t, max(float(self._volume[kind, minute]), 0.2))
        elif u < P_MARKET + p_cancel:
            self._cancel()
        else:
            self._limit_order(t)
        self._keep_depth()
        self.changed_at = t
        self.next_time = t + self._exponential() / self.rate
        return self.next_time

    def _cancel(self) -> None:
        """Cancel a resting order: when the fair value has moved past the best price on one
        side, the makers there pull their stale quotes first; otherwise any level."""
        book = self.book
        stale = math.exp(self.log_fair) - self.mid()
        if abs(stale) > STALE_TICKS and self._u() < 0.8:
            book.cancel_random(SELL if stale > 0 else BUY, int(self._u() * 3))
            return
        side = BUY if self._u() < 0.5 else SELL
        if book.depth(side) > MIN_LEVELS:
            book.cancel_random(side, int(self._u() * book.depth(side)))
        else:
            book.cancel_random(side, int(self._u() * 5))

    # --- the calendar ----------------------------------------------------------------------

    def _change_status(self, t: float) -> None:
        """Go through every phase change up to ``t``: an auction that ended prints its trade,
        a closed market drops the crowd's orders, an opening market gets a fresh book."""
        while t >= self.status_until:
            ended, end = self.status, self.status_until
            if ended in AUCTION_VOLUME:
                self._uncross(end - 0.05, AUCTION_VOLUME[ended])
            self.status, _, self.status_until = calendar.status_at(self.market, end)
            if self.status == calendar.CLOSED:
                self._clear_book()
                self._closed_since = end
                self.changed_at = end
            elif ended == calendar.CLOSED:
                if self.anchor is None:  # the overnight gap, its common part shared by the market
                    gap = max(0.0, end - self._closed_since)
                    noise = math.sqrt(gap) * self._n()
                    if self.factors is not None:
                        noise = noise * self.factors.own + self.factors.move(end)
                    self.log_fair += self.sigma * CLOSED_VOL * noise
                else:
                    other, log_factor = self.anchor
                    self.log_fair = other.log_fair + log_factor + self.basis
                self._seed_book(max(1, int(math.exp(self.log_fair))))
                self.changed_at = end
            if ended == calendar.BREAK and self.factors is not None:
                self.factors.move(end)  # a break does not move the fair value
            self.last_time = end

    def _uncross(self, t: float, minutes: float) -> None:
        """The end of an auction: one trade at the fair value for the auction's volume plus
        every resting order the price crosses (those orders are filled by it)."""
        price = max(1, int(round(math.exp(self.log_fair))))
        fills = (self.book.match(BUY, 1 << 40, limit=price - 1)
                 + self.book.match(SELL, 1 << 40, limit=price + 1))
        crossed = sum(f[1] for f in fills)
        base = max(1, round(self.spec.minute_volume * minutes * (0.5 + self._u())))
        side = BUY if self._u() < 0.5 else SELL
        trade_id = self.first_trade_id + self.trade_count
        self._record([(price, base + crossed, [0, 0, None])], side, t)
        for _, qty, resting in fills:
            if resting[2] is not None and self.on_fill is not None:
                self.on_fill(resting[2], resting[1], price, qty, t, trade_id)
        self.changed_at = t

    def _clear_book(self) -> None:
        """The trading day is over: the crowd's orders expire (owned ones stay)."""
        old = self.book
        book = OrderBook()
        for side in (BUY, SELL):
            for price in old.prices[side]:
                for order in old.levels[side][price]:
                    if order[2] is not None:
                        book.add(side, price, order[0], order[1], order[2])
        book.version = old.version + 1
        self.book = book

    @property
    def trading(self) -> bool:
        """Continuous trading now (orders match)."""
        return self.status == calendar.TRADING

    def skip_to(self, t: float) -> None:
        """Jump over a stall (the caller could not keep up): no events before ``t``."""
        if self.next_time < t:
            self.next_time = t + self._exponential() / self.rate

    def follow(self, other: LiveFlow, factor: float) -> None:
        """Make the fair value track ``other``'s (a future on its underlying): fair ticks =
        other's fair ticks x ``factor`` x a basis that starts where the books are and decays."""
        log_factor = math.log(factor)
        self.basis = self.log_fair - (other.log_fair + log_factor)
        self.anchor = (other, log_factor)

    def mid(self) -> float:
        bid, ask = self.book.best(BUY), self.book.best(SELL)
        if bid is None or ask is None:
            return math.exp(self.log_fair)
        return (bid + ask) / 2.0

    def _market_order(self, t: float, busy: float) -> None:
        lean = (math.exp(self.log_fair) - self.mid()) / 3.0
        side = BUY if self._u() < 0.5 + 0.42 * math.tanh(lean) else SELL
        size = self.market_qty * busy * self.activity
        qty = max(1, round(size * self._exponential()))
        fills = self.book.match(side, qty)
        self._record(fills, side, t)

    def _limit_order(self, t: float) -> None:
        """A limit order a geometric number of ticks behind the opposite best price. Some
        traders are informed: when the fair value has left the spread by more than their
        distance, they price behind the fair value instead, so the order trades."""
        side = BUY if self._u() < 0.5 else SELL
        fair = math.exp(self.log_fair)
        opposite = self.book.best(-side)
        if opposite is None:
            opposite = int(fair) + (1 if side == BUY else -1)
        behind = 1 + int(7.0 * self._exponential())
        price = opposite - behind if side == BUY else opposite + behind
        crosses = False
        if self._u() < P_INFORMED and self.status == calendar.TRADING:
            target = int(fair) - behind if side == BUY else int(math.ceil(fair)) + behind
            crosses = target >= opposite if side == BUY else target <= opposite
            if crosses:
                price = target
        if price <= 0:
            return
        if crosses:
            qty = max(1, round(self.market_qty * self._exponential()))
            fills = self.book.match(side, qty, limit=price)
            self._record(fills, side, t)
            qty -= sum(f[1] for f in fills)
            if qty <= 0:
                return
        else:
            qty = self._limit_size(behind // 4)
        self.book.add(side, price, qty, self._new_id())

    def _keep_depth(self) -> None:
        """At least ``MIN_LEVELS`` levels a side, refilled at the first empty price behind the
        best one (so the ladder near the top stays dense and a thin book cannot open gaps the
        price would fall through); at most ``MAX_LEVELS``, trimmed at the far end."""
        book = self.book
        for side in (BUY, SELL):
            while book.depth(side) < MIN_LEVELS:
                price = self._first_hole(side)
                if price <= 0:
                    break
                index = abs(price - (book.best(side) or price))
                book.add(side, price, self._limit_size(index), self._new_id())
            if book.depth(side) > MAX_LEVELS:
                book.drop_deepest(side)

    def _first_hole(self, side: int) -> int:
        """The price nearest the best one (on its side) where no order rests."""
        prices = self.book.prices[side]
        if not prices:
            fair = math.exp(self.log_fair)
            return int(fair) if side == BUY else int(fair) + 1
        if side == BUY:
            expected = prices[-1]
            for price in reversed(prices):
                if price != expected:
                    return expected
                expected -= 1
            return expected
        expected = prices[0]
        for price in prices:
            if price != expected:
                return expected
            expected += 1
        return expected

    # --- the demo trader's orders -------------------------------------------------------------

    def place(self, owner: str, order_id: int, side: int, price: int, qty: int,
              t: float) -> tuple[list[Fill], int]:
        """A limit order of ``owner``: the marketable part trades now (returned fills, the
        owner is the aggressor), the rest rests in the book. Returns (fills, resting qty)."""
        fills = self.book.match(side, qty, limit=price) if self.trading else []
        self._record(fills, side, t)
        left = qty - sum(f[1] for f in fills)
        if left > 0:
            self.book.add(side, price, left, order_id, owner)
        self.changed_at = t
        return fills, left

    def cancel(self, order_id: int, t: float) -> list | None:
        order = self.book.cancel(order_id)
        if order is not None:
            self.changed_at = t
        return order

    # --- the tape and candles -------------------------------------------------------------------

    def _record(self, fills: list[Fill], side: int, t: float) -> None:
        ms = int(t * 1000)
        for price, qty, resting in fills:
            trade_id = self.first_trade_id + self.dropped + len(self.t_ms)
            if self.spec.is_future:
                self.open_interest += qty if self._u() < 0.5 else -qty
                self.open_interest = max(self.open_interest, qty)
            self.t_ms.append(ms)
            self.t_price.append(price)
            self.t_qty.append(qty)
            self.t_side.append(side)
            self.t_oi.append(self.open_interest)
            self._candle(ms // 60_000 * 60, price, qty, trade_id - self.first_trade_id)
            owner = resting[2]
            if owner is not None and self.on_fill is not None:
                self.on_fill(owner, resting[1], price, qty, t, trade_id)

    def _candle(self, minute: int, price: int, qty: int, index: int) -> None:
        day = minute // 86_400
        stats = self.day_stats
        if stats[0] != day:
            self.day_stats = [day, price, price, price, qty]
        else:
            stats[2] = max(stats[2], price)
            stats[3] = min(stats[3], price)
            stats[4] += qty
        if self.m_time and self.m_time[-1] == minute:
            if price > self.m_high[-1]:
                self.m_high[-1] = price
            elif price < self.m_low[-1]:
                self.m_low[-1] = price
            self.m_close[-1] = price
            self.m_volume[-1] += qty
            return
        self.m_time.append(minute)
        self.m_open.append(price)
        self.m_high.append(price)
        self.m_low.append(price)
        self.m_close.append(price)
        self.m_volume.append(qty)
        self.m_first.append(index)

    @property
    def trade_count(self) -> int:
        """Trades so far, including dropped ones (global indices run 0 .. trade_count - 1)."""
        return self.dropped + len(self.t_ms)

    def trade_at(self, index: int) -> tuple[int, int]:
        """(time ms, price ticks) of the trade with global ``index`` (not dropped)."""
        local = index - self.dropped
        return self.t_ms[local], self.t_price[local]

    def drop_before(self, ms: int) -> None:
        """Let go of the trades before ``ms`` (the minute candles stay): memory stays bounded
        however long the market runs."""
        local = bisect_left(self.t_ms, ms)
        if local:
            for column in (self.t_ms, self.t_price, self.t_qty, self.t_side, self.t_oi):
                del column[:local]
            self.dropped += local
        self.kept_from_ms = max(self.kept_from_ms, ms)

    def trade_columns(self, lo: int, hi: int) -> dict[str, Any]:
        """Tape rows with global indices lo..hi (dropped ones excluded) as numpy columns:
        time ms, id, price ticks, qty, side, oi."""
        lo, hi = max(0, lo - self.dropped), max(0, hi - self.dropped)
        hi = max(lo, hi)
        first = self.dropped + lo
        return {
            "time": _column(self.t_ms[lo:hi], np.int64),
            "id": np.arange(self.first_trade_id + first, self.first_trade_id + first + hi - lo,
                            dtype=np.int64),
            "price": _column(self.t_price[lo:hi], np.int64),
            "qty": _column(self.t_qty[lo:hi], np.int64),
            "side": _column(self.t_side[lo:hi], np.int8).astype(np.int64),
            "oi": _column(self.t_oi[lo:hi], np.int64),
        }

    def index_at_ms(self, ms: int) -> int:
        """The global index of the first kept trade at or after ``ms``."""
        return self.dropped + bisect_left(self.t_ms, ms)


def opening_interest(spec: Spec) -> int:
    """A future's open interest when its flow starts (0 for anything else)."""
    return int(spec.minute_volume * 400) if spec.is_future else 0


def _column(values: array, dtype: Any) -> np.ndarray:
    """A numpy copy of an ``array`` slice (the slice is already a copy: the tape stays
    appendable because no view of it is kept)."""
    if not values:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(values, dtype=dtype)
