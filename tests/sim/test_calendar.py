"""The simulator keeps the exchange's calendar: sessions per date as the exchange published
them, no candle or trade outside them in generated history or live, auctions in
instrument_state with one uncrossing trade each."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pytest

from invia_data.sim import calendar
from invia_data.sim.calendar import (
    BREAK,
    CLOSED,
    CLOSING_AUCTION,
    FUTURES,
    FX,
    OPENING_AUCTION,
    SHARES,
    SPBX,
    TRADING,
)
from invia_data.sim.history import DAY, History
from invia_data.sim.instruments import INSTRUMENTS
from invia_data.sim.market import Market

SBER = ("MOEX", "SBER")


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def msk(text: str) -> float:
    """'2026-11-18 18:35' Moscow time -> unix seconds."""
    naive = datetime.fromisoformat(text)
    return naive.replace(tzinfo=timezone.utc).timestamp() - 3 * 3600


def hhmm(segments: tuple) -> list[tuple[str, str, int]]:
    """Segments as Moscow 'HH:MM' strings."""
    def text(minute: int) -> str:
        minute += 180
        return f"{minute // 60:02d}:{minute % 60:02d}"
    return [(text(s.start), text(s.end), s.status) for s in segments]


# --- the published schedule --------------------------------------------------------------------

def test_shares_on_a_weekday_of_2026_follow_the_exchange_schedule() -> None:
    assert hhmm(calendar.sessions(SHARES, date(2026, 12, 4))) == [
        ("06:50", "07:00", OPENING_AUCTION), ("07:00", "18:40", TRADING),
        ("18:40", "18:50", CLOSING_AUCTION), ("19:00", "19:05", OPENING_AUCTION),
        ("19:05", "23:50", TRADING)]


@pytest.mark.parametrize(("day", "expected"), [
    ("2019-12-04", [("09:50", "10:00", OPENING_AUCTION), ("10:00", "18:40", TRADING),
                    ("18:40", "18:50", CLOSING_AUCTION)]),  # before the evening session
    ("2024-12-04", [("09:50", "10:00", OPENING_AUCTION), ("10:00", "18:40", TRADING),
                    ("18:40", "18:50", CLOSING_AUCTION), ("19:00", "19:05", OPENING_AUCTION),
                    ("19:05", "23:50", TRADING)]),  # evening, no morning session yet
    ("2022-03-10", []),  # the exchange closed from 28 February to 23 March 2022
    ("2024-03-02", []),  # a Saturday before weekend sessions existed
    ("2025-03-02", [("09:50", "10:00", OPENING_AUCTION), ("10:00", "19:00", TRADING)]),
    ("2026-12-05", []),  # a weekend the exchange left without a session
    ("2026-02-23", [("09:50", "10:00", OPENING_AUCTION), ("10:00", "19:00", TRADING)]),
    ("2026-01-07", []),  # Orthodox Christmas
    ("2019-06-12", []),  # Russia Day
    ("2021-02-20", [("09:50", "10:00", OPENING_AUCTION), ("10:00", "18:40", TRADING),
                    ("18:40", "18:50", CLOSING_AUCTION), ("19:00", "19:05", OPENING_AUCTION),
                    ("19:05", "23:50", TRADING)]),  # a Saturday made a working day
])
def test_shares_schedule_by_date(day: str, expected: list) -> None:
    assert hhmm(calendar.sessions(SHARES, date.fromisoformat(day))) == expected


def test_futures_have_clearing_breaks_until_the_unified_session() -> None:
    before = calendar.sessions(FUTURES, date(2026, 3, 20))
    assert hhmm(before) == [("08:50", "14:00", TRADING), ("14:05", "18:45", TRADING),
                            ("19:05", "23:50", TRADING)]
    assert hhmm(calendar.sessions(FUTURES, date(2026, 3, 23))) == [("08:50", "23:50", TRADING)]
    clearing = msk("2026-03-20 14:02")
    assert calendar.status_at(FUTURES, clearing)[0] == BREAK
    assert hhmm(calendar.sessions(FUTURES, date(2022, 2, 23))) != []  # futures traded then
    assert calendar.sessions(SHARES, date(2022, 2, 23)) == ()


def test_fx_and_spb_hours() -> None:
    assert hhmm(calendar.sessions(FX, date(2026, 12, 4))) == [
        ("06:50", "07:00", OPENING_AUCTION), ("07:00", "19:00", TRADING)]
    assert calendar.sessions(FX, date(2026, 2, 23)) == ()  # weekend format: shares, futures
    assert hhmm(calendar.sessions(SPBX, date(2026, 12, 4))) == [("07:00", "26:00", TRADING)]


def test_weekend_sessions_belong_to_the_next_trading_day() -> None:
    shapes = calendar.day_shapes(SHARES, 20_000, 800)
    saturday = np.array([int(msk("2026-11-28 12:00"))])
    monday = calendar.day_number(date(2026, 11, 30))
    assert calendar.trading_day_starts(shapes, saturday)[0] == monday * DAY
    futures = calendar.day_shapes(FUTURES, 20_000, 800)
    evening = np.array([int(msk("2026-03-19 20:00")), int(msk("2026-03-24 20:00"))])
    assert (calendar.trading_day_starts(futures, evening) // DAY).tolist() == [
        calendar.day_number(date(2026, 3, 20)), calendar.day_number(date(2026, 3, 24))]


def test_status_before_after_and_between_sessions() -> None:
    assert calendar.status_at(SHARES, msk("2026-12-04 05:00"))[0] == CLOSED
    assert calendar.status_at(SHARES, msk("2026-12-04 06:55"))[0] == OPENING_AUCTION
    assert calendar.status_at(SHARES, msk("2026-12-04 18:45"))[0] == CLOSING_AUCTION
    status, since, until = calendar.status_at(SHARES, msk("2026-12-04 18:55"))
    assert (status, since, until) == (BREAK, msk("2026-12-04 18:50"), msk("2026-12-04 19:00"))
    status, since, until = calendar.status_at(SHARES, msk("2026-12-05 12:00"))
    assert (status, since, until) == (CLOSED, msk("2026-12-04 23:50"), msk("2026-12-07 06:50"))


# --- generated history ----------------------------------------------------------------------------

def _one_per_market() -> list:
    seen: dict[str, object] = {}
    for spec in INSTRUMENTS:
        seen.setdefault(calendar.market_of(spec.market, spec.exchange), spec)
    return list(seen.values())


def _inside(market: str, times: np.ndarray, auction_only_at_end: bool = True) -> np.ndarray:
    """Whether each unix time lies in a phase with trading: continuous trading, or the last
    minute of an auction (its uncrossing print)."""
    out = np.zeros(len(times), dtype=bool)
    for i, t in enumerate(times.tolist()):
        status, _, until = calendar.status_at(market, t)
        out[i] = status == TRADING or (status in (OPENING_AUCTION, CLOSING_AUCTION)
                                       and until - t <= 60)
    return out


@pytest.mark.parametrize("spec", _one_per_market(), ids=lambda s: s.symbol)
def test_no_candle_outside_the_sessions_over_two_years(spec) -> None:
    market = calendar.market_of(spec.market, spec.exchange)
    history = History(3)
    start, end = calendar.day_number(date(2024, 11, 1)), calendar.day_number(date(2026, 11, 1))
    bars = history.minutes(spec, start * DAY, end * DAY)
    minutes = np.unique(bars.time)
    assert len(minutes) == len(bars.time) > 250_000
    # every minute of every day that has a session, and nothing else
    expected = []
    for day in range(start, end):
        for segment in calendar.sessions(market, calendar.day_date(day)):
            if segment.status in (OPENING_AUCTION, CLOSING_AUCTION):
                expected.append(day * DAY + (segment.end - 1) * 60)
            else:
                expected.extend(day * DAY + np.arange(segment.start, segment.end) * 60)
    assert bars.time.tolist() == sorted(expected)
    weekdays = ((bars.time // DAY) + 3) % 7  # Monday 0
    weekend = bars.time[weekdays >= 5]
    first_weekend = {SHARES: date(2025, 3, 1), FUTURES: date(2025, 8, 16)}.get(market)
    if first_weekend is None:
        assert len(weekend) == 0
    else:
        assert weekend.min() >= calendar.day_number(first_weekend) * DAY
    sample = bars.time[:: max(1, len(bars.time) // 3000)]
    assert _inside(market, sample).all()


def test_no_generated_trade_outside_the_sessions() -> None:
    history = History(4)
    for spec in _one_per_market():
        market = calendar.market_of(spec.market, spec.exchange)
        first = calendar.day_number(date(2024, 11, 1))
        for day in range(first, first + 730, 5):
            trades = history.day_trades(spec, day)
            if not calendar.sessions(market, calendar.day_date(day)):
                assert len(trades) == 0
                continue
            minutes = np.unique(trades.time // 60_000 * 60)
            assert _inside(market, minutes).all()


def test_an_auction_is_one_trade_and_days_start_with_a_gap() -> None:
    history = History(5)
    spec = INSTRUMENTS[0]  # SBER
    day = calendar.day_number(date(2026, 11, 18))
    trades = history.day_trades(spec, day)
    opening = int(msk("2026-11-18 06:59")) * 1000
    in_auction = trades.time[(trades.time >= opening) & (trades.time < opening + 60_000)]
    assert len(in_auction) == 1
    assert not np.any((trades.time >= opening - 9 * 60_000) & (trades.time < opening))
    daily = Market(seed=5, clock=FakeClock(msk("2026-11-25 12:00"))).candles(
        SBER, DAY, msk("2026-06-01 00:00"), msk("2026-11-01 00:00"))
    gaps = daily["open"][1:] / daily["close"][:-1] - 1
    assert 0.001 < np.median(np.abs(gaps)) < 0.02  # an overnight gap, not a continuation


def test_volume_is_higher_at_the_open_and_the_close() -> None:
    history = History(6)
    spec = INSTRUMENTS[1]  # GAZP
    first = calendar.day_number(date(2024, 10, 1))
    bars = history.minutes(spec, first * DAY, (first + 60) * DAY)
    minute = (bars.time % DAY) // 60 + 180  # Moscow minute of the day
    def mean(a: str, b: str) -> float:
        lo, hi = (int(x[:2]) * 60 + int(x[3:]) for x in (a, b))
        return float(bars.volume[(minute >= lo) & (minute < hi)].mean())
    first_half_hour, midday, last_half_hour = (mean("10:00", "10:30"), mean("13:00", "15:00"),
                                               mean("18:10", "18:40"))
    assert first_half_hour > 1.5 * midday and last_half_hour > 1.2 * midday
    assert mean("19:05", "23:50") < 0.5 * midday  # the evening session is quieter


# --- the live market -----------------------------------------------------------------------------

def _run(market: Market, clock: FakeClock, seconds: float, step: float = 0.05) -> list[tuple]:
    """Advance the fake clock; returns (market time, status) whenever the status changes."""
    changes = []
    for _ in range(int(round(seconds / step))):
        clock.t += step
        market.advance()
        status = market.instrument_state(SBER)["trading_status"]
        if not changes or changes[-1][1] != status:
            changes.append((market.now(), status))
    return changes


def test_live_closing_and_evening_auctions_print_one_trade_each() -> None:
    clock = FakeClock(msk("2026-11-18 18:35"))
    market = Market(seed=2, speed=60.0, clock=clock)
    changes = _run(market, clock, 40.0)  # 40 market minutes
    assert [status for _, status in changes] == [TRADING, CLOSING_AUCTION, BREAK,
                                                 OPENING_AUCTION, TRADING]
    assert market.instrument_state(SBER)["trading_status_info"] == "нормальный период торгов"
    trades = market.trades_since(SBER, 0)
    times = np.array([t["time"] for t in trades]) / 1000
    quiet = (times >= msk("2026-11-18 18:40")) & (times < msk("2026-11-18 19:05"))
    prints = [t for t, q in zip(trades, quiet, strict=True) if q]
    assert [p["time"] / 1000 for p in prints] == [msk("2026-11-18 18:50") - 0.05,
                                                  msk("2026-11-18 19:05") - 0.05]
    assert all(p["qty"] > 10 * market.spec(SBER).minute_volume for p in prints)
    assert np.any(times >= msk("2026-11-18 19:05"))  # the evening session trades
    minutes = market.candles(SBER, 60, msk("2026-11-18 18:30"), market.now())
    expected = {msk("2026-11-18 18:49"), msk("2026-11-18 19:04")}
    in_auctions = {t for t in minutes["time"].tolist()
                   if msk("2026-11-18 18:40") <= t < msk("2026-11-18 19:05")}
    assert in_auctions == expected


def test_a_closed_market_is_quiet_with_an_empty_book_and_opens_with_a_gap() -> None:
    clock = FakeClock(msk("2026-11-18 23:45"))
    market = Market(seed=3, speed=1200.0, clock=clock)
    _run(market, clock, 20.0, step=0.1)  # until 06:25 next day
    assert market.instrument_state(SBER)["trading_status"] == CLOSED
    book = market.book(SBER)
    assert book["bids"] == [] and book["asks"] == []
    last = market.trades_since(SBER, 0)[-1]
    assert last["time"] / 1000 < msk("2026-11-18 23:50")
    assert market.candles(SBER, 60, msk("2026-11-18 23:50"), market.now())["time"].size == 0
    _run(market, clock, 4.0, step=0.1)  # through the opening auction at 06:50-07:00
    assert market.instrument_state(SBER)["trading_status"] == TRADING
    book = market.book(SBER)
    assert book["bids"] and book["asks"] and book["bids"][0]["price"] < book["asks"][0]["price"]
    after = [t for t in market.trades_since(SBER, last["id"])]
    assert after[0]["time"] / 1000 == msk("2026-11-19 07:00") - 0.05  # the auction's print


def test_futures_expire_on_a_trading_day() -> None:
    from invia_data.sim.instruments import front_expiry

    assert front_expiry(date(2026, 11, 18)) == date(2026, 12, 17)  # the third Thursday
    for year in range(2018, 2027):
        for quarter_end in (3, 6, 9, 12):
            expiry = front_expiry(date(year, quarter_end, 1))
            assert expiry.month == quarter_end
            assert calendar.is_trading_day(FUTURES, expiry)


# --- the clock ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "expected"), [
    ("2026-11-18 11:30", "2026-11-18 11:30"),  # a main session: the real clock
    ("2026-11-18 07:30", "2026-11-18 07:30"),  # the morning session trades too
    ("2026-11-18 03:00", "2026-11-17 12:00"),  # night: the last main session, at midday
    ("2026-11-18 23:55", "2026-11-18 12:00"),  # after the evening session: that day's
    ("2026-12-05 15:00", "2026-12-04 15:00"),  # a weekend without a session: Friday, same time
    ("2026-11-21 15:00", "2026-11-21 15:00"),  # a weekend session is a live market
    ("2026-01-07 11:00", "2026-01-06 11:00"),  # Christmas: 5 and 6 January traded in 2026
])
def test_a_demo_started_when_the_exchange_is_closed_runs_in_the_last_main_session(
        now: str, expected: str) -> None:
    from invia_data.sim import market_start

    assert market_start(None, now=msk(now)) == msk(expected)
    assert market_start("now", now=msk(now)) == msk(now)
    assert market_start("2025-03-14 09:55") == msk("2025-03-14 09:55")  # naive = Moscow time
    assert market_start("2025-03-14T06:55Z") == msk("2025-03-14 09:55")


def test_bad_starts_name_the_fix() -> None:
    from invia_data.errors import InvalidArgument
    from invia_data.sim import Simulator, market_start

    for bad in ("tomorrow", True, float("nan"), [2025]):
        with pytest.raises(InvalidArgument, match="start"):
            market_start(bad)
    with pytest.raises(InvalidArgument, match="from 2018 on"):
        Simulator(port=0, start="2001-01-01 12:00")
    simulator = Simulator(port=0, start="2026-11-18 12:00", speed=60)
    assert "market time 2026-11-18 12:0" in repr(simulator) and "speed=60" in repr(simulator)
