"""The simulator's OFZ: coupons, accrued interest and yields consistent with the price and the
schedule, computed here independently (cash flows summed by hand, yield by bisection)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import orjson
import pytest

from invia_data.sim import encode
from invia_data.sim.book import BUY, SELL
from invia_data.sim.history import DAY, History
from invia_data.sim.instruments import INSTRUMENTS
from invia_data.sim.market import Market

START = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
BONDS = [s for s in INSTRUMENTS if s.bond is not None]
OFZ_26221 = next(s for s in BONDS if s.symbol == "SU26221RMFS0")


class FakeClock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _accrued(schedule: list[tuple[date, float]], issue: date, day: date) -> float:
    """НКД by the exchange's rule: the running coupon times the share of its period elapsed."""
    previous = issue
    for when, amount in schedule:
        if when > day:
            coupon = amount - 1000.0 if when == schedule[-1][0] else amount  # less the face
            return round(coupon * (day - previous).days / (when - previous).days, 2)
        previous = when
    raise AssertionError("matured")


def _yield_by_bisection(schedule: list[tuple[date, float]], day: date, dirty: float) -> float:
    """The effective annual rate at which the payments after ``day`` are worth ``dirty``."""
    flows = [(amount, (when - day).days / 365) for when, amount in schedule if when > day]

    def value(rate: float) -> float:
        return sum(amount / (1 + rate) ** years for amount, years in flows)

    low, high = -0.5, 5.0
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if value(middle) > dirty else (low, middle)
    return (low + high) / 2


def test_coupons_are_the_published_ones_and_fall_every_182_days() -> None:
    # OFZ 26212 pays 35.15, 26218 42.38, 26221 38.39 RUB a coupon (MOEX, Minfin).
    published = {"SU26212RMFS9": 35.15, "SU26218RMFS6": 42.38, "SU26221RMFS0": 38.39}
    for spec in BONDS:
        terms = spec.bond
        assert terms is not None and spec.board == "TQOB" and spec.face_value == 1000.0
        schedule = terms.schedule()
        assert schedule[-1] == (terms.maturity, published[spec.symbol] + 1000.0)
        assert {amount for _, amount in schedule[:-1]} == {published[spec.symbol]}
        gaps = {(b[0] - a[0]).days for a, b in zip(schedule, schedule[1:], strict=False)}
        assert gaps == {182}
        assert schedule[0][0] - timedelta(days=182) < terms.issue < schedule[0][0]


@pytest.fixture(scope="module")
def live() -> tuple[Market, FakeClock]:
    clock = FakeClock()
    market = Market(seed=2, clock=clock)
    for _ in range(400):
        clock.t += 0.05
        market.advance()
    for spec in BONDS:
        market.book(spec.key, 5)  # first use: the bond's flow starts
    for _ in range(1200):
        clock.t += 0.05
        market.advance()
    return market, clock


@pytest.mark.parametrize("spec", BONDS, ids=[s.symbol for s in BONDS])
def test_quote_yield_and_accrued_interest_follow_the_price_and_the_schedule(live, spec) -> None:
    market, clock = live
    terms = spec.bond
    quote = market.quote(spec.key)
    day = date(1970, 1, 1) + timedelta(days=int(clock.t // DAY))
    schedule = terms.schedule()
    accrued = _accrued(schedule, terms.issue, day)
    assert quote["accrued_interest"] == accrued and 0 < accrued < schedule[0][1]
    dirty = quote["last_price"] / 100 * 1000 + accrued
    expected = _yield_by_bisection(schedule, day, dirty) * 100
    assert quote["yield"] == pytest.approx(expected, abs=0.006)
    assert 5 < quote["yield"] < 30 and 40 < quote["last_price"] < 110
    assert quote["lot_value"] == pytest.approx(quote["last_price"] * 10, abs=1e-6)
    assert quote["type"] == "EUSOV" and quote["face_value"] == 1000.0


def test_every_book_level_carries_the_yield_of_its_price(live) -> None:
    market, clock = live
    terms = OFZ_26221.bond
    day = date(1970, 1, 1) + timedelta(days=int(clock.t // DAY))
    book = market.book(OFZ_26221.key, 20)
    accrued = _accrued(terms.schedule(), terms.issue, day)
    levels = book["bids"] + book["asks"]
    for level in levels[::7]:
        dirty = level["price"] / 100 * 1000 + accrued
        expected = _yield_by_bisection(terms.schedule(), day, dirty) * 100
        assert level["yield"] == pytest.approx(expected, abs=0.006)
    prices = [lv["price"] for lv in levels]
    yields = [lv["yield"] for lv in levels]
    order = np.argsort(prices)
    assert np.all(np.diff(np.array(yields)[order]) <= 0)  # dearer means lower yield
    slim = orjson.loads(encode.book_bytes(book, "Slim", True))
    assert all("y" in level for level in slim["b"] + slim["a"])
    simple = orjson.loads(encode.book_bytes(book, "Simple", True))
    assert all("yield" not in level for level in simple["bids"])
    share_book = orjson.loads(encode.book_bytes(market.book(("MOEX", "SBER"), 3), "Slim", True))
    assert all("y" not in level for level in share_book["b"])  # bonds only


def test_the_security_resolves_by_isin_and_lists_its_yield(live) -> None:
    market, _ = live
    assert market.resolve("MOEX", OFZ_26221.isin) == OFZ_26221.key
    record = market.security(OFZ_26221.key)
    assert record["type"] == "EUSOV" and record["board"] == "TQOB" and record["min_step"] == 0.001
    assert 5 < record["yield"] < 30
    rates = market.risk_rates(1, ticker=OFZ_26221.symbol)
    assert rates and rates[0]["asset_type"] == "bond"


def test_the_price_is_pulled_to_par_at_maturity_and_bonds_move_with_rates() -> None:
    history = History(3)
    short = next(s for s in BONDS if s.symbol == "SU26212RMFS9")
    maturity_day = (short.bond.maturity - date(1970, 1, 1)).days
    closes = history.daily(short, maturity_day - 10, maturity_day + 2).close * short.min_step
    assert np.all(np.abs(closes[-4:-2] - 100) < 0.1) and closes[-1] == pytest.approx(100.0)
    end = int(START // DAY)
    returns = {s.symbol: np.diff(np.log(history.daily(s, end - 500, end).close.astype(float)))
               for s in BONDS}
    assert np.corrcoef(returns["SU26218RMFS6"], returns["SU26221RMFS0"])[0, 1] > 0.5
    sber = next(s for s in INSTRUMENTS if s.symbol == "SBER")
    r_sber = np.diff(np.log(history.daily(sber, end - 500, end).close.astype(float)))
    assert np.corrcoef(returns["SU26221RMFS0"], r_sber)[0, 1] > 0.05  # yields fall as shares rise


def test_a_bond_bought_costs_its_price_in_percent_of_face_plus_accrued_interest(live) -> None:
    market, clock = live
    portfolio = market.portfolio
    account = portfolio.account("D39004")
    key = OFZ_26221.key
    rub_before = account.money["RUB"]
    ask = market.flow(key).book.best(SELL)
    portfolio._place(account, key, BUY, ask + 50, 3, clock.t)  # marketable: fills now
    trade = [t for t in market.own_trades("D39004") if t["symbol"] == OFZ_26221.symbol][-1]
    accrued = market.accrued_interest(key, clock.t)
    assert trade["volume"] == pytest.approx(trade["price"] * 10 * trade["qty_units"], abs=0.01)
    assert trade["accrued_interest"] == pytest.approx(accrued * trade["qty_units"], abs=0.01)
    paid = rub_before - account.money["RUB"]
    assert paid == pytest.approx(trade["volume"] + trade["accrued_interest"]
                                 + trade["commission"], abs=0.01)
    position = next(p for p in market.positions("D39004") if p["symbol"] == OFZ_26221.symbol)
    assert position["current_volume"] == pytest.approx(
        position["qty_units"] * market.last_price(key) * 10, rel=1e-6)
    assert 500 < position["current_volume"] / position["qty_units"] < 1100  # RUB, not percent
