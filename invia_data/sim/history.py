"""Deterministic synthetic history: one-minute candles and past trades generated on demand.

Nothing large is stored. Per instrument a daily-close path is computed once (a mean-reverting,
fat-tailed random walk in log price from ``ANCHOR_DAY`` on, bent to close at the instrument's
reference price on ``PIN_DAY``); day ``d`` opens at the close of day ``d - 1``. A day's path
of 1440 minutes is a Brownian bridge from that open to that close, reached at the day's last
traded minute. Days are drawn in blocks
of ``BLOCK_DAYS`` from a generator seeded with ``(seed, instrument, block)``, so any block can be
produced alone and always comes out the same. The path runs through every minute, but only the
minutes inside the exchange's sessions (:mod:`.calendar`) become candles: nights, weekends and
holidays leave gaps in time and an overnight gap in price. Volume and volatility follow the
session (a U-shape over each session, quieter morning, evening and weekend sessions), and each
auction prints one uncrossing trade in its last minute. A future follows its underlying (contract size x
spot x carry x a small basis), daily and intraday. Recent blocks stay in a bounded LRU cache;
per-day summaries (the early part and the evening part of each day, which may belong to
different trading days) are kept in small arrays so daily, weekly and monthly candles over
years are cheap after the first request.

All prices are integer ticks (multiples of the instrument's ``min_step``); volumes are lots.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import calendar
from .bonds import YIELD_LOG_VOL, day_of
from .calendar import EVENING_FROM_MIN, DayShapes
from .factors import Factors
from .instruments import INSTRUMENTS, Spec

DAY = 86_400
MINUTES = 1440
ANCHOR_DAY = 17_528  # 2017-12-28: history starts here (well over 5 years back)
BLOCK_DAYS = 8  # days generated together (ANCHOR_DAY is a multiple)
PIN_DAY = 20_777  # 2026-11-20: the daily path closes at each instrument's ref_price that day
WALK_DAYS = 40 * 366  # the daily path reaches 40 years past the anchor
TRADES_PER_MINUTE = 6
_REVERSION = 1.0 / 400.0  # daily mean reversion of the log price toward log(ref_price)
CLOSED_DAY_SCALE = 0.35  # daily move of a day without trading, relative to a trading day
_CACHE_BLOCKS = 24
_CACHE_TRADE_DAYS = 24

WEEK_OFFSET = 4 * DAY  # 1970-01-01 is a Thursday; weeks start on Monday 1970-01-05
MONTH = 2_592_000
YEAR = 31_536_000
WEEK = 604_800


def iso(seconds: float) -> str:
    """Unix seconds -> ``"2023-12-11T07:02:48.1230000Z"`` (the API's 7-digit ISO form)."""
    ms = int(round(seconds * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}0000Z"


def iso_array(ms: np.ndarray) -> list[str]:
    """Unix milliseconds -> ISO strings in the API's form."""
    text = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")
    return [t + "0000Z" for t in text.tolist()]


_MINUTE_NUMBERS = np.arange(1, MINUTES + 1, dtype=float)
_MINUTE_OFFSETS = np.arange(MINUTES, dtype=np.int64) * 60


@dataclass(frozen=True)
class Bars:
    """Candles as columns: time (unix s), open/high/low/close (ticks), volume (lots)."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def slice(self, lo: int, hi: int) -> Bars:
        return Bars(self.time[lo:hi], self.open[lo:hi], self.high[lo:hi], self.low[lo:hi],
                    self.close[lo:hi], self.volume[lo:hi])

    def between(self, t0: int, t1: int) -> Bars:
        """Candles with t0 <= time < t1 (time must be sorted)."""
        lo, hi = np.searchsorted(self.time, [t0, t1])
        return self.slice(int(lo), int(hi))


EMPTY_I8 = np.zeros(0, dtype=np.int64)
EMPTY_BARS = Bars(EMPTY_I8, EMPTY_I8, EMPTY_I8, EMPTY_I8, EMPTY_I8, EMPTY_I8)


def concat(parts: list[Bars]) -> Bars:
    parts = [p for p in parts if len(p)]
    if not parts:
        return EMPTY_BARS
    if len(parts) == 1:
        return parts[0]
    return Bars(*(np.concatenate([getattr(p, name) for p in parts])
                  for name in ("time", "open", "high", "low", "close", "volume")))


def bucket_start(times: np.ndarray, tf: int) -> np.ndarray:
    """The start (unix s) of the candle of length ``tf`` that contains each time. ``M`` and ``Y``
    are calendar months and years, ``W`` weeks start on Monday; everything else is aligned to the
    epoch (so days start at 00:00 UTC)."""
    if tf == MONTH or tf == YEAR:
        unit = "M" if tf == MONTH else "Y"
        return (times.astype("datetime64[s]").astype(f"datetime64[{unit}]")
                .astype("datetime64[s]").astype(np.int64))
    if tf % WEEK == 0:
        return (times - WEEK_OFFSET) // tf * tf + WEEK_OFFSET
    return times // tf * tf


def next_bucket(start: int, tf: int) -> int:
    """The start of the candle after the one starting at ``start``."""
    if tf == MONTH or tf == YEAR:
        unit = "M" if tf == MONTH else "Y"
        value = np.array([start], dtype="datetime64[s]").astype(f"datetime64[{unit}]") + 1
        return int(value.astype("datetime64[s]").astype(np.int64)[0])
    return start + tf


def aggregate(bars: Bars, tf: int, shapes: DayShapes | None = None) -> Bars:
    """Group time-sorted candles (or trades as one-price candles) into candles of length ``tf``.
    With ``shapes`` (a market's calendar), candles of whole days, weeks, months and years group
    by trading day: a weekend session counts in the next trading day."""
    if not len(bars):
        return EMPTY_BARS
    times = bars.time
    if shapes is not None and tf % DAY == 0:
        times = calendar.trading_day_starts(shapes, times)
    keys = bucket_start(times, tf)
    starts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate(([0], starts))
    ends = np.concatenate((starts[1:], [len(keys)]))
    return Bars(keys[starts], bars.open[starts],
                np.maximum.reduceat(bars.high, starts), np.minimum.reduceat(bars.low, starts),
                bars.close[ends - 1], np.add.reduceat(bars.volume, starts))


@dataclass(frozen=True)
class _Block:
    """Generated days: their session candles and the price path of every minute (ticks,
    shape (BLOCK_DAYS, 1440))."""

    bars: Bars
    dense_close: np.ndarray


@dataclass(frozen=True)
class PastTrades:
    """Trades as columns: time (unix ms), id, price (ticks), qty (lots), side (1 buy, -1 sell)."""

    time: np.ndarray
    id: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    side: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def between_ms(self, t0: int, t1: int) -> PastTrades:
        lo, hi = np.searchsorted(self.time, [t0, t1])
        return PastTrades(self.time[lo:hi], self.id[lo:hi], self.price[lo:hi], self.qty[lo:hi],
                          self.side[lo:hi])


EMPTY_TRADES = PastTrades(EMPTY_I8, EMPTY_I8, EMPTY_I8, EMPTY_I8, EMPTY_I8)


def concat_trades(parts: list[PastTrades]) -> PastTrades:
    parts = [p for p in parts if len(p)]
    if not parts:
        return EMPTY_TRADES
    if len(parts) == 1:
        return parts[0]
    return PastTrades(*(np.concatenate([getattr(p, name) for p in parts])
                        for name in ("time", "id", "price", "qty", "side")))


class History:
    """Generated candles and trades of every instrument for one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._walks: dict[str, np.ndarray] = {}
        self._days: OrderedDict[tuple[str, int], _Block] = OrderedDict()
        self._trades: OrderedDict[tuple[str, int], PastTrades] = OrderedDict()
        self.factors = Factors(self.seed, WALK_DAYS, (BLOCK_DAYS, MINUTES))
        # symbol -> (WALK_DAYS, 2, 6): per day and part (before / from 19:00 MSK) the time of
        # the first candle (-1 not generated yet, -2 no candle), open, high, low, close, volume
        self._summary: dict[str, np.ndarray] = {}

    @staticmethod
    def shapes(spec: Spec) -> DayShapes:
        """The calendar tables of the instrument's market over the whole generated range."""
        return calendar.day_shapes(calendar.market_of(spec.market, spec.exchange), ANCHOR_DAY,
                                   WALK_DAYS)

    # --- the daily path -------------------------------------------------------------------

    def closes(self, spec: Spec) -> np.ndarray:
        """Daily closes in ticks for days ``ANCHOR_DAY ...`` (index = day - ANCHOR_DAY)."""
        walk = self._walks.get(spec.symbol)
        if walk is None:
            walk = self._make_walk(spec)
            self._walks[spec.symbol] = walk
        return walk

    def _make_walk(self, spec: Spec) -> np.ndarray:
        underlying = futures_underlying(spec)
        if underlying is not None:
            return self._futures_walk(spec, underlying)
        if spec.bond is not None:
            return self._bond_walk(spec)
        rng = np.random.default_rng([self.seed, spec.code, 0xDA11])
        own = rng.standard_t(5, WALK_DAYS) / math.sqrt(5 / 3)
        # The market, sector (or FX) factors and the instrument's own part; volatility
        # clusters in a market-wide regime.
        shocks = self.factors.daily_shocks(spec, own)
        # A day without a session (weekend, holiday) moves less: news still comes, trading does
        # not (so a Monday opens with a gap, not with two days of moves).
        traded = self.shapes(spec).traded_days()
        shocks = shocks * np.where(traded[:WALK_DAYS], 1.0, CLOSED_DAY_SCALE)
        centre = math.log(spec.ref_price / spec.min_step)
        keep = 1.0 - _REVERSION
        out = mean_reverting(shocks, keep)
        # Bend the path so that it closes at ref_price on PIN_DAY: prices near "now" are the
        # realistic levels of the instrument table (a drift of a few basis points a day).
        pin = PIN_DAY - ANCHOR_DAY
        out -= np.minimum(np.arange(1, WALK_DAYS + 1) / (pin + 1), 1.0) * out[pin]
        ticks = np.rint(np.exp(out + centre)).astype(np.int64)
        return np.maximum(ticks, 20)

    def _bond_walk(self, spec: Spec) -> np.ndarray:
        """A bond's daily closes: its yield walks (mean-reverting in log, driven by the rates
        factor, pinned to the yield of ``ref_price`` on PIN_DAY) and the price follows from the
        yield and the coupon schedule, so it is pulled to par as maturity nears."""
        terms = spec.bond
        assert terms is not None
        rng = np.random.default_rng([self.seed, spec.code, 0xB0D])
        own = rng.standard_t(5, WALK_DAYS) / math.sqrt(5 / 3)
        # The factor mix is in price terms: a price shock up is a yield shock down.
        shocks = -self.factors.daily_shocks(spec, own, vol=YIELD_LOG_VOL)
        out = mean_reverting(shocks, 1.0 - _REVERSION)
        pin = PIN_DAY - ANCHOR_DAY
        out -= np.minimum(np.arange(1, WALK_DAYS + 1) / (pin + 1), 1.0) * out[pin]
        ref_yield = float(terms.yields(np.array([spec.ref_price]), day_of(PIN_DAY * DAY))[0])
        days = ANCHOR_DAY + np.arange(WALK_DAYS)
        clean = terms.clean_path(ref_yield * np.exp(out), days)
        return np.maximum(np.rint(clean / spec.min_step).astype(np.int64), 20)

    def _futures_walk(self, spec: Spec, underlying: Spec) -> np.ndarray:
        """A future's daily closes follow its underlying: contract size x spot x carry (15% a
        year over at most the last quarter before expiry) x a small seeded basis noise."""
        rng = np.random.default_rng([self.seed, spec.code, 0xF07])
        spot = self.closes(underlying) * underlying.min_step
        days = ANCHOR_DAY + np.arange(WALK_DAYS)
        noise = 1.0 + rng.normal(0.0, 0.0015, WALK_DAYS)
        ticks = np.rint(spot * spec.face_value * carry(spec, days * DAY) * noise / spec.min_step)
        return np.maximum(ticks.astype(np.int64), 20)

    def day_open_close(self, spec: Spec, day: int) -> tuple[int, int]:
        walk = self.closes(spec)
        i = day - ANCHOR_DAY
        prev = int(walk[i - 1]) if i > 0 else int(round(spec.ref_price / spec.min_step))
        return prev, int(walk[i])

    # --- one day of minutes ---------------------------------------------------------------

    def day(self, spec: Spec, day: int) -> Bars:
        """The one-minute candles of ``day`` (days since the epoch, UTC): its session minutes."""
        return self.minutes(spec, day * DAY, (day + 1) * DAY)

    def _block(self, spec: Spec, block: int) -> _Block:
        key = (spec.symbol, block)
        found = self._days.get(key)
        if found is not None:
            self._days.move_to_end(key)
            return found
        found = self._make_block(spec, block)
        self._days[key] = found
        if len(self._days) > _CACHE_BLOCKS:
            self._days.popitem(last=False)
        return found

    def price_at(self, spec: Spec, t: float) -> int:
        """The price path (ticks) at unix time ``t``, traded or not: where a market opening
        then would start."""
        minute = int(t // 60)
        block = self._block(spec, minute // (MINUTES * BLOCK_DAYS))
        return int(block.dense_close.ravel()[minute % (MINUTES * BLOCK_DAYS)])

    def last_close(self, spec: Spec, t: float) -> int | None:
        """The close of the last generated candle before unix time ``t`` (None when there is
        none within 60 days)."""
        end = int(t)
        for span in (DAY, 7 * DAY, 60 * DAY):
            bars = self.minutes(spec, end - span, end)
            if len(bars):
                return int(bars.close[-1])
        return None

    def _make_block(self, spec: Spec, block: int) -> _Block:
        """``BLOCK_DAYS`` consecutive days in one vectorised pass; one generator per
        (seed, instrument, block) so any block is reproducible on its own."""
        days = block * BLOCK_DAYS + np.arange(BLOCK_DAYS)
        shapes = self.shapes(spec)
        kinds = shapes.kinds(days)
        vol_profile, in_session = shapes.vol[kinds], shapes.mask[kinds]
        auction = shapes.auction[kinds]
        walk = self.closes(spec)
        index = np.clip(days - ANCHOR_DAY, 0, WALK_DAYS - 1)
        start_ticks = round(spec.ref_price / spec.min_step)
        close_ticks = walk[index]
        open_ticks = np.where(index > 0, walk[np.maximum(index - 1, 0)], start_ticks)
        rng = np.random.default_rng([self.seed, spec.code, block])
        sigma = spec.daily_vol / math.sqrt(MINUTES)
        steps = self.factors.minute_steps(spec, block, rng.standard_normal((BLOCK_DAYS, MINUTES)))
        path = np.cumsum(steps * (sigma * vol_profile), axis=1)
        log_open = np.log(open_ticks)[:, None]
        # The day's close is its last traded minute (the path goes on, unseen, after it).
        rows = np.arange(BLOCK_DAYS)
        last = np.where(in_session.any(axis=1),
                        MINUTES - 1 - in_session[:, ::-1].argmax(axis=1), MINUTES - 1)
        fraction = np.minimum(_MINUTE_NUMBERS / (last[:, None] + 1.0), 1.0)
        gap = (np.log(close_ticks) - log_open[:, 0]) - path[rows, last]
        bridge = path + fraction * gap[:, None]
        underlying = futures_underlying(spec)
        if underlying is not None:
            log_close = self._futures_minutes(spec, underlying, block, days, log_open,
                                              np.log(close_ticks)[:, None], steps, fraction,
                                              last)
        else:
            log_close = log_open + bridge
        dense = np.rint(np.exp(log_close)).astype(np.int64)
        dense[rows, last] = close_ticks
        np.maximum(dense, 1, out=dense)
        previous = np.empty_like(dense)
        previous[:, 0] = open_ticks
        previous[:, 1:] = dense[:, :-1]
        # From here on only the minutes with a candle (row-major: day by day, in time order).
        flat = np.flatnonzero(in_session)
        row, minute = np.divmod(flat, MINUTES)
        close, open_ = dense.ravel()[flat], previous.ravel()[flat]
        single = auction.ravel()[flat]
        np.copyto(open_, close, where=single)  # an auction minute is its one trade
        # Uniform draws are four times cheaper than normal ones: used where shape matters less.
        noise = rng.random((3, len(close)), dtype=np.float32)
        top = np.maximum(open_, close)
        bottom = np.minimum(open_, close)
        wick = (sigma * vol_profile.ravel()[flat]) * ~single
        high = top + np.rint(top * (noise[0] * wick)).astype(np.int64)
        low = bottom - np.rint(bottom * (noise[1] * wick)).astype(np.int64)
        np.maximum(low, 1, out=low)
        moved = np.abs(close - open_) / (open_ * sigma)
        day_moved = np.abs(np.log(close_ticks / open_ticks)) / spec.daily_vol
        busy = np.exp(0.4 * rng.standard_normal(BLOCK_DAYS) - 0.08) * (0.8 + 0.2 * day_moved)
        size = ((0.3 + 2.1 * noise[2] ** 2) * shapes.volume[kinds[row], minute]
                * (0.75 + 0.25 * moved) * busy[row])
        volume = np.maximum(np.rint(spec.minute_volume * size), TRADES_PER_MINUTE).astype(np.int64)
        time = days[row] * DAY + minute * 60
        bars = Bars(time, open_, high, low, close, volume)
        self._remember_summary(spec, days, row, bars)
        return _Block(bars, dense)

    def _futures_minutes(self, spec: Spec, underlying: Spec, block: int, days: np.ndarray,
                         log_open: np.ndarray, log_close: np.ndarray,
                         steps: np.ndarray, fraction: np.ndarray,
                         last: np.ndarray) -> np.ndarray:
        """A future's minute closes (log ticks): the underlying's price path x contract size x
        carry, times a basis bridged from the day's opening basis to its closing one."""
        spot = self._block(underlying, block).dense_close
        time = days[:, None] * DAY + _MINUTE_OFFSETS
        scale = spec.face_value * underlying.min_step / spec.min_step
        implied = np.log(spot * scale * carry(spec, time))
        spot_open = self.closes(underlying)[np.clip(days - 1 - ANCHOR_DAY, 0, WALK_DAYS - 1)]
        implied_open = np.log(spot_open[:, None] * scale * carry(spec, time[:, :1]))
        rows = np.arange(BLOCK_DAYS)
        basis_open = log_open - implied_open
        basis_close = log_close - implied[rows, last][:, None]
        wobble = np.cumsum(steps * 0.0001, axis=1)
        wobble -= fraction * wobble[rows, last][:, None]
        return implied + basis_open + fraction * (basis_close - basis_open) + wobble

    def _remember_summary(self, spec: Spec, days: np.ndarray, row: np.ndarray,
                          bars: Bars) -> None:
        """Keep the open, high, low, close and volume of each day's early part and evening
        part (``row``: the day of each candle of ``bars``)."""
        table = self._summary.get(spec.symbol)
        if table is None:
            table = np.full((WALK_DAYS, 2, 6), -1, dtype=np.int64)
            self._summary[spec.symbol] = table
        values = np.full((len(days) * 2, 6), -2, dtype=np.int64)
        if len(bars):
            late = (bars.time - days[row] * DAY) >= EVENING_FROM_MIN * 60
            group = row * 2 + late
            starts = np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1))
            ends = np.concatenate((starts[1:], [len(group)]))
            values[group[starts]] = np.stack([
                bars.time[starts], bars.open[starts],
                np.maximum.reduceat(bars.high, starts), np.minimum.reduceat(bars.low, starts),
                bars.close[ends - 1], np.add.reduceat(bars.volume, starts)], axis=1)
        inside = (days >= ANCHOR_DAY) & (days < ANCHOR_DAY + WALK_DAYS)
        table[days[inside] - ANCHOR_DAY] = values.reshape(len(days), 2, 6)[inside]

    def minutes(self, spec: Spec, t0: int, t1: int) -> Bars:
        """Generated one-minute candles with t0 <= time < t1 (session minutes only)."""
        t0 = max(t0, ANCHOR_DAY * DAY)
        t1 = min(t1, (ANCHOR_DAY + WALK_DAYS) * DAY)
        if t1 <= t0:
            return EMPTY_BARS
        first = int(t0 // (DAY * BLOCK_DAYS))
        last = int((t1 - 1) // (DAY * BLOCK_DAYS))
        parts = [self._block(spec, block).bars for block in range(first, last + 1)]
        parts[0] = parts[0].between(t0, t1)
        if last > first:
            parts[-1] = parts[-1].between(t0, t1)
        return concat(parts)

    def daily(self, spec: Spec, first_day: int, end_day: int) -> Bars:
        """Daily candles (one per trading day, timed at its 00:00 UTC) of the sessions held on
        days first_day <= day < end_day: a weekend session or, before the Unified Trading
        Session, a futures evening counts in the next trading day, so the first and the last
        candle may hold only part of their trading day. From cached summaries of each day's
        early and evening part; a day not seen yet is generated once."""
        first_day = max(first_day, ANCHOR_DAY)
        end_day = min(end_day, ANCHOR_DAY + WALK_DAYS)
        if end_day <= first_day:
            return EMPTY_BARS
        lo, hi = first_day - ANCHOR_DAY, end_day - ANCHOR_DAY
        table = self._summary.get(spec.symbol)
        missing = range(lo, hi) if table is None else (
            np.flatnonzero(table[lo:hi, 0, 0] == -1) + lo)
        for block in sorted({(int(i) + ANCHOR_DAY) // BLOCK_DAYS for i in missing}):
            self._block(spec, block)
        rows = self._summary[spec.symbol][lo:hi].reshape(-1, 6)
        rows = rows[rows[:, 0] >= 0]
        parts = Bars(*(rows[:, column].copy() for column in range(6)))
        return aggregate(parts, DAY, self.shapes(spec))

    # --- past trades ----------------------------------------------------------------------

    def trades(self, spec: Spec, t0_ms: int, t1_ms: int) -> PastTrades:
        """Generated trades with t0_ms <= time < t1_ms, a few per minute, matching the minute
        candles exactly (first trade at the open, last at the close, the high and the low hit,
        quantities summing to the volume)."""
        t0_ms = max(t0_ms, ANCHOR_DAY * DAY * 1000)
        if t1_ms <= t0_ms:
            return EMPTY_TRADES
        first, last = t0_ms // (DAY * 1000), (t1_ms - 1) // (DAY * 1000)
        parts = [self.day_trades(spec, day) for day in range(first, last + 1)]
        return concat_trades(parts).between_ms(t0_ms, t1_ms)

    def day_trades(self, spec: Spec, day: int) -> PastTrades:
        key = (spec.symbol, day)
        found = self._trades.get(key)
        if found is not None:
            self._trades.move_to_end(key)
            return found
        bars = self.day(spec, day)
        shapes = self.shapes(spec)
        auction = shapes.auction[shapes.kinds(bars.time // DAY), (bars.time % DAY) // 60]
        counts = np.where(auction, 1, TRADES_PER_MINUTE)
        found = trades_from_bars(bars, [self.seed, spec.code, day, 1], counts=counts,
                                 first_ids=(bars.time // 60) * 100)
        self._trades[key] = found
        if len(self._trades) > _CACHE_TRADE_DAYS:
            self._trades.popitem(last=False)
        return found


def mean_reverting(shocks: np.ndarray, keep: float, chunk: int = 512) -> np.ndarray:
    """``level[i] = keep * level[i - 1] + shocks[i]`` from ``level[-1] = 0``, vectorised over
    chunks: inside one, ``level[i] = keep ** (i + 1) * before + sum_j keep ** (i - j) *
    shocks[j]`` (the powers stay within a few units of 1 over a chunk)."""
    out = np.empty(len(shocks))
    powers = keep ** np.arange(chunk, dtype=float)
    level = 0.0
    for lo in range(0, len(shocks), chunk):
        part = shocks[lo:lo + chunk]
        n = len(part)
        out[lo:lo + n] = np.cumsum(part / powers[:n]) * powers[:n] + level * keep * powers[:n]
        level = out[lo + n - 1]
    return out


def carry(spec: Spec, t: Any) -> Any:
    """Futures price / (contract size x spot) at unix time(s) ``t``: 15% a year over at most
    the last quarter before expiry."""
    assert spec.cancellation is not None  # a future's last trading day
    expiry = int(np.datetime64(spec.cancellation[:10], "D").astype(np.int64)) * DAY
    return 1.0 + 0.15 * np.clip((expiry - np.asarray(t)) / DAY, 0, 91) / 365.0


def futures_underlying(spec: Spec) -> Spec | None:
    """The instrument a future is written on, when the universe has it (share or FX pair)."""
    if spec.key not in _UNDERLYING:
        _UNDERLYING[spec.key] = _find_underlying(spec)
    return _UNDERLYING[spec.key]


_UNDERLYING: dict[tuple[str, str], Spec | None] = {}


def _find_underlying(spec: Spec) -> Spec | None:
    if not spec.is_future or not spec.cancellation:
        return None
    for other in INSTRUMENTS:
        if other.exchange == "MOEX" and not other.is_future and (
                other.symbol == spec.underlying
                or (other.market == "CURR" and other.underlying == spec.underlying
                    and other.symbol.endswith("TOM") and other.symbol.startswith(
                        spec.underlying or "?"))):
            return other
    return None


def trades_from_bars(bars: Bars, seed: list[int], counts: np.ndarray | None = None,
                     first_ids: np.ndarray | None = None) -> PastTrades:
    """Trades inside each one-minute candle of ``bars``, consistent with its open, high, low,
    close and volume: the first trade at the open, the last at the close, the high and the low
    hit, quantities summing to the volume. ``TRADES_PER_MINUTE`` per minute and ids
    ``minute * 100 + k``; or, for minutes that really traded (``counts`` trades from id
    ``first_ids``), at most that many trades with ids taken from that range."""
    n, k = len(bars), TRADES_PER_MINUTE
    if n == 0:
        return EMPTY_TRADES
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, 60_000, (n, k)), axis=1)
    time = bars.time[:, None] * 1000 + offsets
    price = rng.integers(bars.low[:, None], bars.high[:, None] + 1, (n, k))
    rows = np.arange(n)
    high_at = rng.integers(1, k - 1, n)
    low_at = high_at % (k - 2) + 1
    price[rows, high_at] = bars.high
    price[rows, low_at] = bars.low
    price[:, 0] = bars.open
    price[:, -1] = bars.close
    qty = 1 + rng.multinomial(np.maximum(bars.volume - k, 0), np.full(k, 1.0 / k))
    if first_ids is None:
        ids = (bars.time // 60)[:, None] * 100 + np.arange(k)
        keep = np.ones((n, k), dtype=bool)
    else:
        ids = first_ids[:, None] + np.arange(k)
        per_row = np.minimum(counts if counts is not None else k, k)
        keep = np.arange(k) < per_row[:, None]
        for row in np.flatnonzero(per_row < k).tolist():
            _few_trades(bars, row, int(per_row[row]), price[row], qty[row], rng)
    flat = price[keep]
    moves = np.sign(np.diff(flat, prepend=flat[0]))
    coin = np.where(rng.random(len(flat)) < 0.5, 1, -1)
    side = np.where(moves == 0, coin, moves).astype(np.int64)
    return PastTrades(time[keep], ids[keep], flat, qty[keep], side)


def _few_trades(bars: Bars, row: int, count: int, price: np.ndarray, qty: np.ndarray,
                rng: np.random.Generator) -> None:
    """Rewrite one minute as ``count`` (< TRADES_PER_MINUTE) trades: a minute that had that
    few trades has its high and low among the open, the close and at most two others."""
    o, h, lo, c, v = (int(bars.open[row]), int(bars.high[row]), int(bars.low[row]),
                      int(bars.close[row]), int(bars.volume[row]))
    middle = [x for x in (h, lo) if x not in (o, c)]
    middle += [h] * (count - 2 - len(middle))
    sequence = ([o] + middle[:max(0, count - 2)] + [c])[:count] if count > 1 else [c]
    price[:count] = sequence
    split = 1 + rng.multinomial(max(v - count, 0), np.full(count, 1.0 / count))
    qty[:count] = split
