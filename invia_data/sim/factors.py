"""Common factors behind the simulated returns: why SBER and GAZP move together.

Each instrument's return (daily and minute by minute) is a mix of independent, unit-variance
parts: the market factor (the Russian equity market as a whole), its sector's factor (banks,
oil & gas, metals, ...), and its own noise. FX pairs share an FX factor (the rouble) instead
of the market; an SPB share its own market; federal bonds a rates factor (and a little of the
market: when shares rise, yields tend to fall). The weights are shares of variance:

    return = vol x (sqrt(m) x market + sqrt(s) x sector + sqrt(1 - m - s) x own)

so the correlation of two shares of different sectors is sqrt(m1 x m2) and of the same sector
sqrt(m1 x m2) + sqrt(s1 x s2). Index heavyweights load more on the market (m = 0.5) than the
rest (m = 0.3), which puts the daily correlation of SBER and GAZP near 0.5 and of two banks
or two oil companies near 0.7, the levels seen on the Moscow Exchange. A future inherits its
correlation from its underlying (see :mod:`.history`).

Every factor series is a pure function of ``(seed, factor)``: the daily shocks over the whole
generated history at once (small), the minute steps per block of days (cached, shared by
every instrument that loads on the factor).
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict

import numpy as np

from .instruments import Spec

HEAVYWEIGHTS = frozenset({
    "SBER", "SBERP", "GAZP", "LKOH", "ROSN", "NVTK", "GMKN", "YDEX", "T", "TATN", "PLZL",
    "MGNT", "X5", "CHMF", "VTBR", "MOEX", "SNGSP",
})
MARKET_SHARE = {"heavy": 0.5, "rest": 0.3}  # share of variance explained by the market
SECTOR_SHARE = 0.2  # share of variance explained by the sector
FX_SHARE = 0.6  # FX pairs: share explained by the FX factor (no equity market)
RATES_SHARE = 0.7  # federal bonds: share explained by the rates factor
_TAIL = 5  # Student-t degrees of freedom of the daily shocks (fat tails)
_CACHE_BLOCKS = 48


def loadings(spec: Spec) -> list[tuple[str, float]]:
    """(factor name, weight) pairs of an instrument; the weights are standard deviations, so
    their squares plus the own noise's sum to 1. A future has none: it follows its
    underlying."""
    if spec.is_future or not spec.sector:
        return []
    if spec.sector == "fx":
        return [("fx", math.sqrt(FX_SHARE))]
    if spec.bond is not None:  # in price terms: rates down (prices up) with the market up
        return [("sector:ofz", math.sqrt(RATES_SHARE)), ("market", math.sqrt(0.1))]
    if spec.exchange == "SPBX":
        return [(f"market:{spec.exchange}", math.sqrt(MARKET_SHARE["heavy"]))]
    market = MARKET_SHARE["heavy" if spec.symbol in HEAVYWEIGHTS else "rest"]
    pairs = [("market", math.sqrt(market))]
    if spec.sector not in ("other", "holdings"):
        pairs.append((f"sector:{spec.sector}", math.sqrt(SECTOR_SHARE)))
    return pairs


def own_weight(spec: Spec) -> float:
    """The weight (standard deviation) of the instrument's own noise."""
    return math.sqrt(max(0.0, 1.0 - sum(w * w for _, w in loadings(spec))))


class Factors:
    """The factor series of one seed: daily shocks and blocks of minute steps."""

    def __init__(self, seed: int, days: int, block_shape: tuple[int, int]) -> None:
        self.seed = int(seed)
        self.days = int(days)
        self.block_shape = block_shape
        self._daily: dict[str, np.ndarray] = {}
        self._minutes: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._regime: np.ndarray | None = None

    @staticmethod
    def _code(name: str) -> int:
        return zlib.crc32(name.encode())

    def regime(self) -> np.ndarray:
        """A slow market-wide volatility multiplier around 1 (calm and stormy years), shared by
        every instrument so that volatility clusters across the market."""
        if self._regime is None:
            rng = np.random.default_rng([self.seed, 0x5EA5])
            phase = rng.uniform(0, 6.3)
            regime = np.exp(0.35 * np.sin(np.arange(self.days) / 97.0 + phase))
            self._regime = regime / math.sqrt(float(np.mean(regime ** 2)))
        return self._regime

    def daily(self, name: str) -> np.ndarray:
        """Unit-variance, fat-tailed daily shocks of a factor, one per day of the history."""
        found = self._daily.get(name)
        if found is None:
            rng = np.random.default_rng([self.seed, self._code(name), 0xDA11])
            found = rng.standard_t(_TAIL, self.days) / math.sqrt(_TAIL / (_TAIL - 2))
            self._daily[name] = found
        return found

    def daily_shocks(self, spec: Spec, own: np.ndarray, vol: float | None = None) -> np.ndarray:
        """An instrument's daily log-return shocks (before mean reversion): its factors'
        shocks and its ``own`` unit-variance ones, mixed, scaled by its volatility (or
        ``vol``) and by the market's volatility regime."""
        mixed = own * own_weight(spec)
        for name, weight in loadings(spec):
            mixed = mixed + weight * self.daily(name)
        return mixed * ((spec.daily_vol if vol is None else vol) * self.regime())

    def minute_block(self, name: str, block: int) -> np.ndarray:
        """Standard normal minute steps of a factor for one block of days (cached)."""
        key = (name, block)
        found = self._minutes.get(key)
        if found is not None:
            self._minutes.move_to_end(key)
            return found
        rng = np.random.default_rng([self.seed, self._code(name), block, 0x3117])
        found = rng.standard_normal(self.block_shape)
        self._minutes[key] = found
        if len(self._minutes) > _CACHE_BLOCKS:
            self._minutes.popitem(last=False)
        return found

    def minute_steps(self, spec: Spec, block: int, own: np.ndarray) -> np.ndarray:
        """An instrument's standard normal minute steps for a block: its factors' steps and
        its ``own``, mixed (unit variance, correlated like the daily returns)."""
        pairs = loadings(spec)
        if not pairs:
            return own
        mixed = own * own_weight(spec)
        for name, weight in pairs:
            mixed += weight * self.minute_block(name, block)
        return mixed


class LiveFactors:
    """The same factors in live market time, so live books co-move as history does.

    Each factor is a standard Brownian motion (variance 1 per second) sampled on a one-second
    grid from the market's start (value 0 there) and read at whole seconds; it is made
    in chunks of ``CHUNK`` seconds, each from a generator seeded with ``(seed, factor, chunk)``,
    so its values are a pure function of the seed, the start and the time asked. A flow adds
    ``weight x (F(t) - F(its previous event))`` for each of its factors to its own noise
    (:class:`FactorMoves`).
    """

    CHUNK = 3600
    KEEP = 16  # chunks kept per factor (older ones are made again when asked)

    def __init__(self, seed: int, start: float) -> None:
        self.seed = int(seed)
        self.start = float(start)
        self._levels: dict[str, list[float]] = {}  # per factor: its value at each chunk start
        self._chunks: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    def _chunk(self, name: str, index: int) -> np.ndarray:
        """Values at seconds ``index * CHUNK ... (index + 1) * CHUNK`` after the start."""
        key = (name, index)
        found = self._chunks.get(key)
        if found is not None:
            self._chunks.move_to_end(key)
            return found
        levels = self._levels.setdefault(name, [0.0])
        while len(levels) <= index:  # the starting values of the chunks before it
            levels.append(float(self._chunk(name, len(levels) - 1)[-1]))
        rng = np.random.default_rng([self.seed, Factors._code(name), index, 0x11FE])
        found = np.empty(self.CHUNK + 1)
        found[0] = levels[index]
        np.cumsum(rng.standard_normal(self.CHUNK), out=found[1:])
        found[1:] += levels[index]
        self._chunks[key] = found
        if len(self._chunks) > self.KEEP * max(1, len(self._levels)):
            self._chunks.popitem(last=False)
        return found

    def at_second(self, name: str, second: int) -> float:
        """The factor's value ``second`` whole seconds after the start (0 before it)."""
        if second <= 0:
            return 0.0
        index, offset = divmod(second, self.CHUNK)
        return float(self._chunk(name, index)[offset])


class FactorMoves:
    """What an instrument's live fair value takes from the factors: for each whole second of
    market time passed since its previous event, ``sum(weight x factor increment)``; the
    increments of one second are shared by every instrument loading on that factor."""

    def __init__(self, factors: LiveFactors, spec: Spec, t: float) -> None:
        self.factors = factors
        self.pairs = loadings(spec)
        self.own = own_weight(spec)
        self.second = self._second(t)
        self.marks = [factors.at_second(name, self.second) for name, _ in self.pairs]

    def _second(self, t: float) -> int:
        return int(t - self.factors.start) if t > self.factors.start else 0

    def move(self, t: float) -> float:
        """The common move (in units of one second's standard deviation) since the last call."""
        second = self._second(t)
        if second == self.second:
            return 0.0
        self.second = second
        total = 0.0
        for i, (name, weight) in enumerate(self.pairs):
            value = self.factors.at_second(name, second)
            total += weight * (value - self.marks[i])
            self.marks[i] = value
        return total
