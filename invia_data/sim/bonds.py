"""Bond arithmetic for the simulator's OFZ: coupon schedule, accrued interest, price <-> yield.

An OFZ-PD (a fixed-coupon federal loan bond) pays a coupon every 182 days, counted back from
its maturity, of ``face x rate x 182 / 365`` rounded to the kopeck (OFZ 26221: 1000 x 7.7% ->
38.39 RUB), and its face at maturity. The exchange quotes the clean price in percent of face;
the buyer also pays the accrued interest (НКД): the current coupon times the share of its
period elapsed, rounded to the kopeck. The yield shown beside a price is the effective annual
yield to maturity (MOEX's convention): the rate ``y`` at which the cash flows still to come,
discounted by ``(1 + y) ** (days / 365)``, are worth the dirty price. Dates here are trade dates
(the exchange computes on the settlement date, one business day later: a difference of one
day's accrual).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property

import numpy as np

PERIOD_DAYS = 182
YIELD_LOG_VOL = 0.006  # daily volatility of log(yield): about 8 bp a day at 14%
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class BondTerms:
    """A fixed-coupon bond: face value (RUB), annual coupon rate, issue and maturity dates."""

    face: float
    rate: float
    issue: date
    maturity: date

    @cached_property
    def coupon(self) -> float:
        """The coupon of every period, rounded to the kopeck."""
        return round(self.face * self.rate * PERIOD_DAYS / 365 + 1e-9, 2)

    @cached_property
    def coupon_dates(self) -> tuple[date, ...]:
        """Coupon dates from the first after the issue to the maturity (the last pays the
        face too)."""
        dates = []
        day = self.maturity
        while day > self.issue:
            dates.append(day)
            day -= timedelta(days=PERIOD_DAYS)
        return tuple(reversed(dates))

    @cached_property
    def _coupon_days(self) -> np.ndarray:
        return np.array([(d - _EPOCH).days for d in self.coupon_dates], dtype=np.int64)

    def schedule(self) -> list[tuple[date, float]]:
        """(date, amount in RUB) of every payment: the coupons, the last with the face."""
        out = [(d, self.coupon) for d in self.coupon_dates]
        out[-1] = (out[-1][0], self.coupon + self.face)
        return out

    def period(self, day: date) -> tuple[date, date]:
        """The coupon period containing ``day``: (its start, its coupon date)."""
        if not self.issue <= day < self.maturity:
            raise ValueError(f"{day} is outside the bond's life ({self.issue} .. {self.maturity})")
        for coupon_date in self.coupon_dates:
            if coupon_date > day:
                return max(self.issue, coupon_date - timedelta(days=PERIOD_DAYS)), coupon_date
        raise AssertionError("unreachable: day < maturity")

    def accrued(self, day: date) -> float:
        """Accrued interest (НКД) in RUB on ``day``, rounded to the kopeck."""
        start, end = self.period(day)
        return round(self.coupon * (day - start).days / (end - start).days + 1e-9, 2)

    def dirty_value(self, yields: np.ndarray, day: date) -> np.ndarray:
        """The value in RUB of the payments after ``day`` at effective annual ``yields``."""
        today = (day - _EPOCH).days
        days = self._coupon_days[self._coupon_days > today] - today
        amounts = np.full(len(days), self.coupon)
        amounts[-1] += self.face
        discount = (1.0 + np.asarray(yields, dtype=float)[..., None]) ** (-days / 365.0)
        return (amounts * discount).sum(axis=-1)

    def clean_price(self, yields: np.ndarray, day: date) -> np.ndarray:
        """Clean price, percent of face, at effective annual ``yields`` (fractions)."""
        dirty = self.dirty_value(yields, day)
        return (dirty - self.accrued(day)) / self.face * 100.0

    def yields(self, clean_prices: np.ndarray, day: date) -> np.ndarray:
        """Effective annual yields (fractions) at clean prices in percent of face: Newton's
        method from 0, which climbs monotonically to the root of this convex, decreasing
        function."""
        target = np.asarray(clean_prices, dtype=float) / 100.0 * self.face + self.accrued(day)
        today = (day - _EPOCH).days
        years = (self._coupon_days[self._coupon_days > today] - today) / 365.0
        amounts = np.full(len(years), self.coupon)
        amounts[-1] += self.face
        y = np.zeros_like(target)
        for _ in range(60):
            discount = (1.0 + y[..., None]) ** (-years)
            value = (amounts * discount).sum(axis=-1)
            slope = -(amounts * years * discount / (1.0 + y[..., None])).sum(axis=-1)
            step = (value - target) / slope
            y = y - step
            if np.all(np.abs(step) < 1e-12):
                break
        return y

    def clean_path(self, yields: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Clean prices (percent of face) for a path: ``yields[i]`` on day ``days[i]`` (days
        since the epoch). Before the issue the bond is priced as if already issued; from the
        maturity on it is worth its face (100)."""
        days = np.asarray(days, dtype=np.int64)
        coupon_days = self._coupon_days
        ahead = coupon_days[None, :] - days[:, None]
        discount = np.where(ahead > 0, (1.0 + yields[:, None]) ** (-np.maximum(ahead, 0) / 365.0),
                            0.0)
        amounts = np.full(len(coupon_days), self.coupon)
        amounts[-1] += self.face
        dirty = discount @ amounts
        following = np.searchsorted(coupon_days, days, side="right")
        alive = following < len(coupon_days)
        next_day = coupon_days[np.minimum(following, len(coupon_days) - 1)]
        issue_day = (self.issue - _EPOCH).days
        start = np.maximum(next_day - PERIOD_DAYS, np.minimum(issue_day, days))
        accrued = np.round(self.coupon * (days - start) / (next_day - start) + 1e-9, 2)
        return np.where(alive, (dirty - accrued) / self.face * 100.0, 100.0)


def day_of(unix_seconds: float) -> date:
    """The UTC date of a unix time."""
    return _EPOCH + timedelta(days=int(unix_seconds // 86_400))
