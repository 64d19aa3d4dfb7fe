"""The simulator's synthetic market: determinism, book invariants, trades at book prices,
candles and history, portfolio consistency, the clock. A fake clock drives every market here,
so nothing sleeps and every run sees the same events."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from invia_data.schema import SCHEMAS
from invia_data.sim import calendar
from invia_data.sim.book import BUY, SELL, LiveFlow
from invia_data.sim.history import ANCHOR_DAY, DAY, History, aggregate, iso
from invia_data.sim.instruments import FRONT_EXPIRY, INSTRUMENTS, front_expiry
from invia_data.sim.market import Market

# The futures listed are the front quarterly contracts of today (e.g. SBRF-12.26, short SRZ6).
SBRF = f"SBRF-{FRONT_EXPIRY.month}.{FRONT_EXPIRY.year % 100:02d}"
SI = f"Si-{FRONT_EXPIRY.month}.{FRONT_EXPIRY.year % 100:02d}"
SBRF_SHORT = "SR" + "HMUZ"[FRONT_EXPIRY.month // 3 - 1] + str(FRONT_EXPIRY.year % 10)

START = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC, inside the MOEX main session
SBER = ("MOEX", "SBER")
BONDS_ONLY = {("book_level", "yield")}  # the level yield exists for bonds only
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z?$")


class FakeClock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(market: Market, clock: FakeClock, seconds: float, step: float = 0.05) -> None:
    """Move the fake clock forward, calling advance() like the server's ticker does."""
    for _ in range(int(round(seconds / step))):
        clock.t += step
        market.advance()


@pytest.fixture(scope="module")
def live() -> tuple[Market, FakeClock]:
    clock = FakeClock()
    market = Market(seed=7, clock=clock)
    run(market, clock, 90.0)
    return market, clock


def _tick_aligned(price: float, step: float) -> bool:
    return abs(price / step - round(price / step)) < 1e-6


# --- determinism ------------------------------------------------------------------------------


def _fingerprint(market: Market) -> tuple:
    return (
        [market.book(k, 50) for k in market.keys()],
        [market.trades_since(k, 0)[-20:] for k in market.keys()],
        market.candles(SBER, 300, START - 86_400, START + 60)["close"].tolist(),
        market.positions("D39004"),
        market.own_trades("7500GHC"),
    )


def test_same_seed_same_market_and_other_seed_differs() -> None:
    prints = []
    for seed in (3, 3, 4):
        clock = FakeClock()
        market = Market(seed=seed, clock=clock)
        run(market, clock, 8.0, step=0.02)
        prints.append(_fingerprint(market))
    assert prints[0] == prints[1]
    assert prints[0][0] != prints[2][0]
    assert prints[0][2] != prints[2][2]


def test_the_market_does_not_depend_on_how_often_advance_is_called() -> None:
    prints = []
    for step in (0.01, 0.7):
        clock = FakeClock()
        market = Market(seed=8, clock=clock)
        run(market, clock, 14.0, step=step)
        prints.append(_fingerprint(market))
    assert prints[0] == prints[1]


def test_history_is_the_same_whatever_order_days_are_generated_in() -> None:
    spec = INSTRUMENTS[0]
    first, second = History(11), History(11)
    day = 20_300
    late = first.minutes(spec, day * DAY, (day + 2) * DAY)
    second.minutes(spec, (day - 40) * DAY, (day - 39) * DAY)
    early = second.minutes(spec, day * DAY, (day + 2) * DAY)
    for name in ("time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(late, name), getattr(early, name))
    other = History(12).minutes(spec, day * DAY, (day + 2) * DAY)
    assert not np.array_equal(late.close, other.close)


# --- reference data ---------------------------------------------------------------------------


def test_resolve_is_case_insensitive_and_its_finds_any_exchange(live) -> None:
    market, _ = live
    assert market.resolve("moex", "sber") == SBER
    assert market.resolve("ITS", "SOGN") == ("ITS", "SOGN")
    assert market.resolve("ITS", "SOGN", "TQBR") == ("ITS", "SOGN")
    assert market.resolve("ITS", "sber") == SBER
    assert market.resolve("MOEX", SBRF_SHORT) == ("MOEX", SBRF)
    assert market.resolve("SPBX", "AAPL") == ("SPBX", "AAPL")
    assert market.resolve("MOEX", "AAPL") is None
    assert market.resolve("MOEX", "NOPE") is None
    assert market.resolve("MOEX", "SBER", "RFUD") is None


def test_securities_cover_the_required_universe(live) -> None:
    market, _ = live
    records = market.securities()
    assert len(records) >= 10
    ratings = [r["rating"] for r in records]
    assert ratings == sorted(ratings, reverse=True)
    by_symbol = {r["symbol"]: r for r in records}
    sber = by_symbol["SBER"]
    assert (sber["board"], sber["lot_size"], sber["currency"], sber["type"]) == \
        ("TQBR", 10.0, "RUB", "CS")
    assert sber["isin"] == "RU0009029540"
    assert {"GAZP", "LKOH", "GMKN", "VTBR", "YDEX"} <= set(by_symbol)
    future = by_symbol[SBRF]
    assert (future["market"], future["board"], future["short_name"]) == ("FORTS", "RFUD", SBRF_SHORT)
    assert future["margin_buy"] > 0 and future["initial_margin_standard_risk_long"] > 0
    assert by_symbol["USD000UTSTOM"]["market"] == "CURR"
    assert by_symbol["AAPL"]["currency"] == "USD"
    sogn = by_symbol["SOGN"]
    assert (sogn["exchange"], sogn["board"]) == ("ITS", "TQBR")
    assert 200 < market.last_price(("ITS", "SOGN")) < 400
    for record in records:
        assert record["price_min"] < record["price_max"]
        assert record["trading_status"] == 17
    assert {p["symbol_tom"] for p in market.currency_pairs()} >= {"USD000UTSTOM", "CNYRUB_TOM"}
    rates = market.risk_rates(2, exchange="MOEX", ticker="SBER")
    assert len(rates) == 1 and rates[0]["rate_down"] > 0
    assert market.risk_rates(2, search="GA")[0]["instrument"] == "GAZP"
    assert market.instrument_state(SBER)["trading_status_info"] == "нормальный период торгов"


def _check_kinds(kind: str, record: dict) -> None:
    schema = SCHEMAS[kind]
    missing = [f.name for f in schema.fields
               if not f.legacy and f.name not in record and (kind, f.name) not in BONDS_ONLY]
    assert not missing, f"{kind} lacks {missing}"
    for name, value in record.items():
        field = schema.by_name[name]
        if value is None:
            continue
        if field.kind == "float":
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (kind, name)
        elif field.kind in ("int", "i8", "ts_s", "ts_ms"):
            assert isinstance(value, int) and not isinstance(value, bool), (kind, name, value)
        elif field.kind == "bool":
            assert isinstance(value, bool), (kind, name)
        elif field.kind == "str":
            assert isinstance(value, str), (kind, name)
        elif field.kind == "iso":
            assert ISO.match(value), (kind, name, value)
        elif field.sub:
            for item in value if isinstance(value, list) else [value]:
                _check_kinds(field.sub, item)


def test_records_have_every_field_with_the_schema_kind(live) -> None:
    market, clock = live
    _check_kinds("security", market.security(SBER))
    _check_kinds("quote", market.quote(SBER))
    _check_kinds("orderbook", market.book(SBER, 5))
    _check_kinds("instrument_state", market.instrument_state(SBER))
    _check_kinds("trade", market.trades(SBER)[-1])
    _check_kinds("trade", market.past_trades(SBER, START - 2 * DAY, START - DAY)[0])
    _check_kinds("risk_rate", market.risk_rates(1)[0])
    _check_kinds("currency_pair", market.currency_pairs()[0])
    for portfolio in market.portfolios:
        _check_kinds("summary", market.summary(portfolio))
        _check_kinds("risk", market.risk(portfolio))
        _check_kinds("money", market.money(portfolio))
        for position in market.positions(portfolio):
            _check_kinds("position", position)
        for order in market.orders(portfolio):
            _check_kinds("order", order)
        for stop in market.stop_orders(portfolio):
            _check_kinds("stop_order", stop)
        for trade in market.own_trades(portfolio) + market.own_trades_history(portfolio):
            _check_kinds("own_trade", trade)
    _check_kinds("forts_risk", market.forts_risk("7500GHC"))


# --- books, trades, quotes --------------------------------------------------------------------


def test_books_are_sorted_deep_positive_and_on_the_tick_grid(live) -> None:
    market, _ = live
    for key in market.keys():
        step = market.spec(key).min_step
        book = market.book(key, 50)
        bids = [level["price"] for level in book["bids"]]
        asks = [level["price"] for level in book["asks"]]
        assert len(bids) == 50 and len(asks) == 50, key
        assert bids == sorted(bids, reverse=True) and len(set(bids)) == 50
        assert asks == sorted(asks) and len(set(asks)) == 50
        assert bids[0] < asks[0]
        for level in book["bids"] + book["asks"]:
            assert isinstance(level["volume"], int) and level["volume"] > 0
            assert _tick_aligned(level["price"], step), (key, level)
        assert market.book(key, 5)["bids"] == book["bids"][:5]


def test_book_version_moves_and_delayed_book_is_an_older_snapshot(live) -> None:
    market, clock = live
    version = market.book_version(SBER)
    book = market.book(SBER, 10)
    run(market, clock, 1.0)
    assert market.book_version(SBER) > version
    assert market.book(SBER, 10) != book
    delayed = market.book(SBER, 10, delay=60)
    assert delayed["time"] <= int((market.now() - 60) * 1000)


def test_every_trade_takes_resting_volume_at_book_prices() -> None:
    spec = INSTRUMENTS[0]
    flow = LiveFlow(spec, seed=5, start=START, start_ticks=30_000, speed=1.0,
                    first_trade_id=1000)
    trades_seen = 0
    for _ in range(3000):
        before = {side: dict(flow.book.volume[side]) for side in (BUY, SELL)}
        count = flow.trade_count
        flow.step(flow.next_time)
        new = flow.trade_columns(count, flow.trade_count)
        taken: dict[tuple[int, int], int] = {}
        for price, qty, side in zip(new["price"].tolist(), new["qty"].tolist(),
                                    new["side"].tolist(), strict=True):
            resting = SELL if side == BUY else BUY
            assert price in before[resting], "a trade at a price with no resting order"
            taken[(resting, price)] = taken.get((resting, price), 0) + qty
            best = max(before[BUY]) if resting == BUY else min(before[SELL])
            assert (price <= best) if resting == BUY else (price >= best)
        for (side, price), qty in taken.items():
            assert qty <= before[side][price]
        trades_seen += len(new["price"])
        assert flow.book.best(BUY) < flow.book.best(SELL)
    assert trades_seen > 100
    ids = flow.trade_columns(0, flow.trade_count)["id"]
    assert np.all(np.diff(ids) == 1) and ids[0] == 1000


def test_trades_and_quote_follow_the_book(live) -> None:
    market, _ = live
    for key in (SBER, ("MOEX", SBRF), ("MOEX", "USD000UTSTOM")):
        spec = market.spec(key)
        trades = market.trades(key)
        ids = [t["id"] for t in trades]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        live_trades = [t for t in trades if t["time"] >= START * 1000]
        assert len(live_trades) > 20, key
        for trade in live_trades:
            assert _tick_aligned(trade["price"], spec.min_step)
            assert trade["qty"] >= 1 and trade["side"] in ("buy", "sell")
        quote = market.quote(key)
        book = market.book(key, 50)
        assert quote["bid"] == book["bids"][0]["price"] and quote["ask"] == book["asks"][0]["price"]
        assert quote["bid_vol"] == book["bids"][0]["volume"]
        assert quote["total_bid_vol"] == sum(level["volume"] for level in book["bids"])
        assert quote["last_price"] == trades[-1]["price"]
        assert quote["last_price_time"] == trades[-1]["time"] // 1000
        assert quote["low_price"] <= quote["last_price"] <= quote["high_price"]
        assert quote["change"] == pytest.approx(quote["last_price"] - quote["prev_close_price"])
    assert market.trades(SBER, last=5) == market.trades(SBER)[-5:]
    assert market.trades(SBER, last=0) == []
    after = market.trades_since(SBER, market.trades(SBER)[-10]["id"])
    assert [t["id"] for t in after] == [t["id"] for t in market.trades(SBER)[-9:]]


def test_live_prices_stay_near_the_fair_value_and_move_like_history(live) -> None:
    market, _ = live
    for key in market.keys():
        flow = market.flow(key)
        assert abs(flow.mid() / math.exp(flow.log_fair) - 1) < 0.005, key
        live_minutes = market.candles(key, 60, START // 60 * 60, market.now())
        moves = np.abs(np.diff(np.log(live_minutes["close"])))
        assert len(moves) and moves.max() < 0.01, key


def test_trades_window_and_past_sessions(live) -> None:
    market, _ = live
    window = market.trades(SBER, START + 10, START + 20)
    assert window and all(START + 10 <= t["time"] / 1000 <= START + 20 for t in window)
    day_start = START // DAY * DAY
    past = market.past_trades(SBER, day_start - DAY, day_start)
    assert past and all(day_start - DAY <= t["time"] / 1000 < day_start for t in past)
    assert market.past_trades(SBER, day_start, day_start + DAY) == []
    assert market.past_trade_count(SBER, day_start - DAY, day_start) == len(past)
    assert market.past_trades(SBER, day_start - DAY, day_start, offset=10, limit=5) == past[10:15]


def test_past_trades_reproduce_their_minute_candles(live) -> None:
    market, _ = live
    day_start = START // DAY * DAY
    t0, t1 = day_start - DAY + 36_000, day_start - DAY + 36_000 + 600
    minutes = market.candles(SBER, 60, t0, t1)
    trades = market.past_trades(SBER, t0, t1)
    for i, minute in enumerate(minutes["time"].tolist()):
        inside = [t for t in trades if minute * 1000 <= t["time"] < (minute + 60) * 1000]
        prices = [t["price"] for t in inside]
        assert prices[0] == minutes["open"][i] and prices[-1] == minutes["close"][i]
        assert max(prices) == minutes["high"][i] and min(prices) == minutes["low"][i]
        assert sum(t["qty"] for t in inside) == minutes["volume"][i]
    seconds = market.candles(SBER, 15, t0, t1)
    assert seconds["volume"].sum() == minutes["volume"].sum()
    assert set((seconds["time"] % 15).tolist()) == {0}


# --- candles ------------------------------------------------------------------------------------


def _assert_ohlc(c: dict) -> None:
    assert np.all(c["high"] >= np.maximum(c["open"], c["close"]))
    assert np.all(c["low"] <= np.minimum(c["open"], c["close"]))
    assert np.all(c["volume"] > 0) and c["volume"].dtype == np.int64
    assert np.all(np.diff(c["time"]) > 0)


def test_hourly_candles_equal_the_aggregated_minutes(live) -> None:
    market, clock = live
    start, end = START - 3 * DAY + 1234, market.now()
    hours = market.candles(SBER, 3600, start, end)
    minutes = market.candles(SBER, 60, start // 3600 * 3600, end)
    _assert_ohlc(hours)
    _assert_ohlc(minutes)
    assert hours["time"][0] >= start and hours["time"][0] % 3600 == 0
    for i, hour in enumerate(hours["time"].tolist()):
        inside = (minutes["time"] >= hour) & (minutes["time"] < hour + 3600)
        assert hours["open"][i] == minutes["open"][inside][0]
        assert hours["close"][i] == minutes["close"][inside][-1]
        assert hours["high"][i] == minutes["high"][inside].max()
        assert hours["low"][i] == minutes["low"][inside].min()
        assert hours["volume"][i] == minutes["volume"][inside].sum()
    assert hours["time"][-1] + 3600 > market.now()  # the last candle is still open


def test_days_join_and_history_reaches_back_five_years(live) -> None:
    market, _ = live
    now = market.now()
    days = market.candles(SBER, 86_400, now - 6 * 365 * DAY, now)
    _assert_ohlc(days)
    first = int(days["time"][0] // DAY)
    trading_days = [d for d in range(first, int(now // DAY) + 1)
                    if calendar.is_trading_day(calendar.SHARES, calendar.day_date(d))]
    assert len(days["time"]) >= 5 * 240  # the exchange's trading days, none on weekends
    assert days["time"].tolist() == [d * DAY for d in trading_days]
    gaps = days["open"][1:] / days["close"][:-1] - 1  # overnight: the path moved while closed
    assert np.count_nonzero(gaps) > 0.9 * len(gaps) and np.abs(gaps).max() < 0.2
    wednesday = int((now - 5 * 366 * DAY) // (7 * DAY) * 7 * DAY) + 6 * DAY  # a Wednesday
    old = market.candles(SBER, 60, wednesday + 8 * 3600, wednesday + 9 * 3600)  # 11-12 MSK
    assert len(old["time"]) == 60
    before_anchor = market.candles(SBER, 60, ANCHOR_DAY * DAY - 7200, ANCHOR_DAY * DAY)
    assert len(before_anchor["time"]) == 0
    for spec in INSTRUMENTS:
        close = market.candles(spec.key, 86_400, now - 365 * DAY, now)["close"]
        assert 0.3 * spec.ref_price < close.min() and close.max() < 3 * spec.ref_price


def test_today_joins_history_and_live_candles(live) -> None:
    market, _ = live
    now = market.now()
    minutes = market.candles(SBER, 60, START - 600, now)
    before = minutes["time"] < START // 60 * 60
    jump = abs(minutes["open"][~before][0] - minutes["close"][before][-1])
    assert jump <= 10 * market.spec(SBER).min_step
    today = market.candles(SBER, 86_400, now // DAY * DAY, now)
    day_minutes = market.candles(SBER, 60, now // DAY * DAY, now)
    assert today["volume"][0] == day_minutes["volume"].sum()
    assert today["high"][0] == day_minutes["high"].max()
    assert today["open"][0] == day_minutes["open"][0]
    quote = market.quote(SBER)
    assert today["close"][0] == quote["last_price"]
    assert (quote["open_price"], quote["high_price"], quote["low_price"], quote["volume"]) == \
        (today["open"][0], today["high"][0], today["low"][0], today["volume"][0])


def test_calendar_timeframes_start_on_their_period(live) -> None:
    market, _ = live
    now = market.now()
    weeks = market.candles(SBER, 604_800, now - 400 * DAY, now)
    months = market.candles(SBER, 2_592_000, now - 800 * DAY, now)
    days = market.candles(SBER, 86_400, now - 800 * DAY, now)
    week_days = (weeks["time"] // DAY + 3) % 7  # 0 = Monday
    assert set(week_days.tolist()) == {0}
    starts = months["time"].astype("datetime64[s]")
    assert np.all(starts == starts.astype("datetime64[M]").astype("datetime64[s]"))
    month_of_day = days["time"].astype("datetime64[s]").astype("datetime64[M]")
    for i, start in enumerate(months["time"].tolist()):
        inside = month_of_day == np.datetime64(start, "s").astype("datetime64[M]")
        assert months["volume"][i] == days["volume"][inside].sum()
        assert months["high"][i] == days["high"][inside].max()


@pytest.mark.parametrize("tf", [60, 3600, 86_400, 2_592_000])
def test_limit_returns_the_first_candles_of_a_huge_range(live, tf) -> None:
    market, _ = live
    now = market.now()
    start = now - 60 * DAY + 17
    full = market.candles(SBER, tf, start, now + 1)
    for limit in (1, 7, 500):
        first = market.candles(SBER, tf, start, now + 1, limit=limit)
        for name in full:
            assert np.array_equal(first[name], full[name][:limit]), (tf, limit, name)
    everything = market.candles(SBER, tf, 0, 32_536_799_999, limit=3)
    assert everything["time"][0] >= ANCHOR_DAY * DAY - 31 * DAY
    assert len(everything["time"]) == 3


def test_aggregate_groups_arbitrary_candles() -> None:
    spec = INSTRUMENTS[1]
    bars = History(2).minutes(spec, 20_000 * DAY, 20_001 * DAY)
    quarter = aggregate(bars, 900)
    # Friday 2024-10-04: the opening auction's print at 09:59 MSK, 10:00-18:40 in 35 quarters,
    # the closing auction's print at 18:49, the evening session 19:05-23:50 in 20 quarters
    assert len(quarter) == 57
    assert int(quarter.volume.sum()) == int(bars.volume.sum())
    inside = np.flatnonzero(bars.time // 900 == quarter.time[1] // 900)
    assert quarter.open[1] == bars.open[inside[0]] and quarter.close[1] == bars.close[inside[-1]]
    assert quarter.close[0] == bars.close[0] == bars.open[0]  # the auction: one price


# --- portfolios ---------------------------------------------------------------------------------


def _assert_positions_follow_own_trades(market: Market) -> None:
    for portfolio in market.portfolios:
        trades = market.own_trades(portfolio)
        positions = {p["symbol"]: p for p in market.positions(portfolio)}
        assert positions["RUB"]["is_currency"]
        net: dict[str, float] = {}
        cash = 0.0
        for trade in trades:
            sign = 1 if trade["side"] == "buy" else -1
            if portfolio == "G39004":
                currency = market.spec(("MOEX", trade["symbol"])).underlying
                net[currency] = net.get(currency, 0.0) + sign * trade["qty_units"]
            else:
                net[trade["symbol"]] = net.get(trade["symbol"], 0.0) + sign * trade["qty_units"]
            if portfolio != "7500GHC":
                cash -= sign * trade["volume"] + trade["commission"]
        for symbol, position in positions.items():
            if symbol == "RUB":
                continue
            assert position["qty_units"] == pytest.approx(
                position["open_units"] + net.get(symbol, 0.0), abs=0.02), (portfolio, symbol)
        rub = positions["RUB"]
        assert rub["qty_units"] == pytest.approx(rub["open_units"] + cash, abs=0.02)


def test_positions_are_opening_plus_own_trades(live) -> None:
    market, _ = live
    for portfolio in market.portfolios:
        assert market.own_trades(portfolio), portfolio
    _assert_positions_follow_own_trades(market)


def test_orders_agree_with_own_trades(live) -> None:
    market, _ = live
    statuses = set()
    for portfolio in market.portfolios:
        trades = market.own_trades(portfolio)
        for order in market.orders(portfolio):
            statuses.add(order["status"])
            filled = sum(t["qty_batch"] for t in trades if t["order_no"] == order["id"])
            assert order["filled_qty_batch"] == filled
            if order["status"] == "filled":
                assert filled == order["qty_batch"]
        assert market.stop_orders(portfolio)
    assert {"working", "filled", "canceled"} <= statuses


def test_summary_and_risk_are_computed_from_positions(live) -> None:
    market, _ = live
    stock = market.summary("D39004")
    positions = market.positions("D39004")
    assert stock["portfolio_evaluation"] == pytest.approx(
        sum(p["current_volume"] for p in positions), abs=1.0)
    risk = market.risk("D39004")
    assert risk["portfolio_evaluation"] == stock["portfolio_evaluation"]
    assert risk["risk_coverage_ratio_one"] == pytest.approx(
        risk["portfolio_evaluation"] - risk["initial_margin"], abs=0.02)
    assert stock["buying_power"] == pytest.approx(
        stock["portfolio_evaluation"] - stock["initial_margin"], abs=0.02)
    forts = market.forts_risk("7500GHC")
    futures = [p for p in market.positions("7500GHC") if not p["is_currency"]]
    assert forts["vm_current_positions"] == pytest.approx(
        sum(p["unrealised_pl"] for p in futures), abs=1.0)
    assert forts["money_amount"] == pytest.approx(
        forts["money_old"] + forts["vm_current_positions"] - forts["fee"], abs=0.02)
    money = market.money("D39004")
    assert money["cash"] == next(p["qty_units"] for p in positions if p["symbol"] == "RUB")
    with pytest.raises(KeyError):
        market.forts_risk("D39004")
    with pytest.raises(KeyError):
        market.positions("X1")


def test_history_trades_lead_to_the_opening_positions(live) -> None:
    market, _ = live
    history = market.own_trades_history("D39004")
    assert len(history) > 20
    assert all(t["date"] < market.trades(SBER)[0]["time_iso"] for t in history)
    assert market.own_trades_history("D39004", symbol="SBER")
    recent = market.own_trades_history("D39004", date_from=START - 5 * DAY)
    assert 0 < len(recent) < len(history)


def test_portfolios_change_as_market_time_passes() -> None:
    clock = FakeClock()
    market = Market(seed=9, clock=clock)
    seqs = {p: market.portfolio_seq(p) for p in market.portfolios}
    trades = {p: len(market.own_trades(p)) for p in market.portfolios}
    run(market, clock, 240.0, step=0.1)
    kinds = set()
    for portfolio in market.portfolios:
        assert market.portfolio_seq(portfolio) > seqs[portfolio]
        changes = market.portfolio_changes(portfolio, seqs[portfolio])
        numbers = [seq for seq, _, _ in changes]
        assert numbers == list(range(seqs[portfolio] + 1, market.portfolio_seq(portfolio) + 1))
        kinds |= {kind for _, kind, _ in changes}
        own = {t["id"] for t in market.own_trades(portfolio)}
        for _, kind, record in changes:
            if kind == "own_trade":
                assert record["id"] in own
        assert market.portfolio_changes(portfolio, market.portfolio_seq(portfolio)) == []
    assert {"position", "order", "summary", "risk"} <= kinds
    assert sum(len(market.own_trades(p)) for p in market.portfolios) > sum(trades.values())


# --- the clock ------------------------------------------------------------------------------------


def test_speed_runs_the_market_clock_faster() -> None:
    clock = FakeClock()
    market = Market(seed=1, speed=20.0, clock=clock)
    assert market.now() == pytest.approx(START)
    clock.t += 3.0
    assert market.now() == pytest.approx(START + 60.0)
    market.advance()
    trades = market.trades_since(SBER, 0)
    assert trades and trades[-1]["time"] <= (START + 60.0) * 1000
    assert trades[-1]["time"] > (START + 50.0) * 1000
    with pytest.raises(ValueError):
        Market(speed=0)
    with pytest.raises(ValueError):
        Market(clock=FakeClock(), start=0)


def test_a_stalled_host_jumps_instead_of_replaying_everything() -> None:
    clock = FakeClock()
    market = Market(seed=1, clock=clock)
    clock.t += 6 * 3600
    market.advance()
    trades = market.trades_since(SBER, 0)
    assert trades
    later = [t for t in trades if t["time"] > START * 1000]  # after the opening moves
    skipped = [t for t in later if t["time"] < (clock.t - 300) * 1000]
    # the stall (14:06-20:06 MSK) skipped the flow; only the two auctions that ended in it,
    # the main session's closing one and the evening's opening one, printed their trade
    assert [t["time"] % 60_000 for t in skipped] == [59_950, 59_950]
    assert later and len(later) > 10
    assert trades[-1]["time"] <= clock.t * 1000


def test_a_stop_order_triggers_when_the_price_crosses_it() -> None:
    clock = FakeClock()
    market = Market(seed=4, clock=clock)
    stops = market.portfolio.accounts["D39004"].stop_orders
    stop = next(s for s in stops.values() if s["status"] == "working" and s["side"] == "sell")
    stop["stop_price"] = market.last_price(("MOEX", stop["symbol"])) * 2  # already crossed
    run(market, clock, 6.0, step=0.1)
    record = next(s for s in market.stop_orders("D39004") if s["id"] == stop["id"])
    assert record["status"] == "filled"
    order = next(o for o in market.orders("D39004") if o["id"] == record["exchange_order_id"])
    assert order["side"] == "sell" and order["filled_qty_batch"] == record["filled_qty_batch"] > 0
    fills = [t for t in market.own_trades("D39004") if t["order_no"] == order["id"]]
    assert record["avg_price"] == pytest.approx(
        sum(t["price"] * t["qty_units"] for t in fills) / sum(t["qty_units"] for t in fills))


def test_old_tape_is_let_go_and_its_trades_rederived_from_the_candles() -> None:
    clock = FakeClock()
    market = Market(seed=6, speed=20_000.0, clock=clock)
    run(market, clock, 12.0, step=0.05)  # 2.8 market days
    flow = market.flow(SBER)
    assert flow.dropped > 0
    day_start = market.now() // DAY * DAY
    first_day = START // DAY * DAY
    rederived = market.past_trades(SBER, START, day_start - DAY)
    again = market.past_trades(SBER, START + 3600, START + 7200)
    assert again == [t for t in rederived if START + 3600 <= t["time"] / 1000 < START + 7200]
    raw = market.past_trades(SBER, day_start - DAY, day_start)
    ids = [t["id"] for t in market.past_trades(SBER, first_day, day_start)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert rederived and raw and rederived[-1]["id"] < raw[0]["id"]
    _assert_positions_follow_own_trades(market)
    for portfolio in market.portfolios:  # orders are today's; older trades became history
        assert all(o["trans_time"] >= iso(day_start) for o in market.orders(portfolio))
        assert all(t["date"] >= iso(day_start) for t in market.own_trades(portfolio))
        # trades of the next day became history too (each market trades in its own hours)
        assert any(t["date"] >= iso(first_day + DAY) for t in market.own_trades_history(portfolio))
    minutes = market.candles(SBER, 60, START + 60, day_start - DAY)
    for i in range(0, len(minutes["time"]), 97):
        minute = minutes["time"][i]
        inside = [t for t in rederived if minute * 1000 <= t["time"] < (minute + 60) * 1000]
        prices = [t["price"] for t in inside]
        assert prices[0] == minutes["open"][i] and prices[-1] == minutes["close"][i]
        assert max(prices) == minutes["high"][i] and min(prices) == minutes["low"][i]
        assert sum(t["qty"] for t in inside) == minutes["volume"][i]


def test_futures_history_follows_the_underlying() -> None:
    history = History(3)
    specs = {s.symbol: s for s in INSTRUMENTS}
    for future, spot, size in ((SBRF, "SBER", 100), (SI, "USD000UTSTOM", 1000)):
        f, u = specs[future], specs[spot]
        futures = f.prices(history.closes(f)[:3000])
        underlying = u.prices(history.closes(u)[:3000])
        ratio = futures / (underlying * size)
        assert 0.99 < ratio.min() and ratio.max() < 1.05, future


def test_a_live_future_tracks_its_underlying() -> None:
    specs = {s.symbol: s for s in INSTRUMENTS}
    share, future = specs["SBER"], specs[SBRF]
    spot = LiveFlow(share, seed=2, start=START, start_ticks=30_000, speed=1.0, first_trade_id=1)
    futures = LiveFlow(future, seed=2, start=START, start_ticks=30_400, speed=1.0,
                       first_trade_id=1)
    factor = 100 * 0.01 * 1.008
    futures.follow(spot, factor)

    def gap() -> float:
        return futures.mid() / (spot.mid() * factor) - 1

    first_gap, first_spot = gap(), spot.mid()
    assert first_gap > 0.005  # rich at the start, and it stays so: the basis drifts slowly
    spot.log_fair += 0.01  # news: the share is worth 1% more
    flows = [spot, futures]
    while min(f.next_time for f in flows) < START + 600:
        flow = min(flows, key=lambda f: f.next_time)
        flow.step(flow.next_time)
    assert spot.mid() / first_spot - 1 > 0.005  # the share repriced ...
    assert abs(gap() - first_gap) < 0.002  # ... and the future moved with it


@pytest.mark.parametrize(("today", "expiry"), [
    ("2026-11-26", "2026-12-17"), ("2026-12-17", "2027-03-18"), ("2027-01-05", "2027-03-18"),
    ("2027-03-18", "2027-06-17"), ("2027-09-30", "2027-12-16"),
])
def test_futures_are_the_front_quarterly_contract(today, expiry) -> None:
    from datetime import date

    assert front_expiry(date.fromisoformat(today)) == date.fromisoformat(expiry)


def test_the_listed_futures_have_not_expired() -> None:
    from datetime import datetime, timezone

    today = datetime.now(timezone.utc).date()
    futures = [s for s in INSTRUMENTS if s.is_future]
    assert len(futures) == 9 and FRONT_EXPIRY > today
    assert all(s.cancellation.startswith(FRONT_EXPIRY.isoformat()) for s in futures)


def test_a_simulator_started_later_numbers_its_live_trades_above_an_earlier_ones():
    """A recording appended to by a second simulator process (the first stopped): its live
    trades must have higher ids than those written (the recorder keeps ids above the highest
    written), and within one market history ids stay below live ones."""
    keys = [SBER, ("MOEX", "GAZP"), ("MOEX", "Si-12.26")]
    clock = FakeClock()
    first = Market(seed=1, clock=clock)
    for key in keys:
        first.last_trade_id(key)                      # starts its flow now
    run(first, clock, 10.0)
    highest = {key: first.last_trade_id(key) for key in keys}
    assert all(first.trades_since(key, 0) for key in keys)   # it traded
    later = FakeClock(clock.t + 1.0)
    second = Market(seed=1, clock=later)
    for key in keys:
        second.last_trade_id(key)
    run(second, later, 10.0)
    for key in keys:
        live = second.trades_since(key, 0)
        assert live and min(trade["id"] for trade in live) > highest[key]
        history = second.trades(key, START - 3600, later.t - 60)
        assert history and max(trade["id"] for trade in history) < min(t["id"] for t in live)
