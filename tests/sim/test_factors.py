"""The simulator's universe and its factor model: instruments listed like the exchange lists
them, returns that co-move by market and sector, futures that track their underlying, and
instruments whose live flow starts on first use."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from invia_data.sim.factors import loadings, own_weight
from invia_data.sim.history import DAY, PIN_DAY, carry
from invia_data.sim.instruments import INSTRUMENTS
from invia_data.sim.market import Market

START = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
SPECS = {s.symbol: s for s in INSTRUMENTS}


class FakeClock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _isin_check_digit_ok(isin: str) -> bool:
    """ISO 6166: letters become 10..35, then the Luhn check over the digits."""
    digits = "".join(str(int(c, 36)) for c in isin)
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# --- the instrument table ------------------------------------------------------------------------


def test_the_share_table_looks_like_the_exchange_lists_it() -> None:
    shares = [s for s in INSTRUMENTS if s.board == "TQBR" and s.exchange == "MOEX"]
    assert len(shares) >= 40
    assert len({s.symbol for s in INSTRUMENTS}) == len(INSTRUMENTS)
    sectors = Counter(s.sector for s in shares)
    assert len(sectors) >= 10 and all(n >= 2 for name, n in sectors.items()
                                       if name in ("banks", "oil_gas", "metals", "tech",
                                                   "telecom", "retail", "utilities"))
    for spec in shares:
        assert re.fullmatch(r"RU[0-9A-Z]{9}[0-9]", spec.isin or ""), spec.symbol
        assert _isin_check_digit_ok(spec.isin), spec.symbol  # a typo in an ISIN fails here
        ticks = spec.ref_price / spec.min_step
        assert abs(ticks - round(ticks)) < 1e-6, spec.symbol  # the price is on the step
        step_text = format(spec.min_step, "f").rstrip("0").rstrip(".")
        assert spec.decimals == len(step_text.partition(".")[2]), spec.symbol
        assert spec.lot_size in (1, 10, 100, 1000, 10000), spec.symbol
        assert spec.type == ("PS" if spec.cfi_code.startswith("EP") else "CS")
    assert {s.type for s in shares} == {"CS", "PS"}


def test_every_future_has_its_underlying_in_the_universe() -> None:
    futures = [s for s in INSTRUMENTS if s.is_future]
    assert len({f.underlying for f in futures}) >= 8
    market = Market(seed=3, clock=FakeClock())
    for future in futures:
        assert market.resolve("MOEX", future.short_name) == future.key
        underlying = market.history.closes(future)  # the future's own path exists
        assert len(underlying) and (underlying > 0).all()


# --- correlation ---------------------------------------------------------------------------------


def _daily_returns(market: Market, symbols: list[str], days: int) -> dict[str, np.ndarray]:
    end = PIN_DAY * DAY
    out = {}
    for symbol in symbols:
        key = market.resolve("MOEX", symbol)
        assert key is not None
        close = market.candles(key, DAY, end - days * DAY, end)["close"]
        out[symbol] = np.diff(np.log(close))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_two_years_of_daily_closes_co_move_by_market_and_sector(seed: int) -> None:
    market = Market(seed=seed, clock=FakeClock())
    returns = _daily_returns(market, ["SBER", "GAZP", "VTBR", "LKOH", "ROSN", "USD000UTSTOM",
                                      "CNYRUB_TOM", "MTSS"], 730)

    def rho(a: str, b: str) -> float:
        return float(np.corrcoef(returns[a], returns[b])[0, 1])

    assert 0.4 <= rho("SBER", "GAZP") <= 0.7  # index heavyweights of different sectors
    assert rho("SBER", "VTBR") > rho("SBER", "GAZP") + 0.05  # banks with banks
    assert rho("LKOH", "ROSN") > rho("LKOH", "SBER") + 0.05  # oil with oil
    assert 0.15 < rho("MTSS", "SBER") < rho("SBER", "GAZP")  # a second-tier name, less
    assert rho("USD000UTSTOM", "CNYRUB_TOM") > 0.4  # FX has a factor of its own
    assert abs(rho("USD000UTSTOM", "SBER")) < 0.15


def test_the_weights_of_every_instrument_sum_to_its_variance() -> None:
    for spec in INSTRUMENTS:
        total = sum(w * w for _, w in loadings(spec)) + own_weight(spec) ** 2
        assert total == pytest.approx(1.0), spec.symbol


def test_minutes_co_move_too() -> None:
    market = Market(seed=4, clock=FakeClock())
    start = START - 20 * DAY
    candles = {s: market.candles(market.resolve("MOEX", s), 3600, start, start + 15 * DAY)
               for s in ("SBER", "VTBR", "USD000UTSTOM")}
    # the hours every market traded (FX keeps its own, shorter hours)
    common = set.intersection(*(set(c["time"].tolist()) for c in candles.values()))
    closes = {s: c["close"][np.isin(c["time"], sorted(common))] for s, c in candles.items()}
    returns = {s: np.diff(np.log(c)) for s, c in closes.items()}
    assert np.corrcoef(returns["SBER"], returns["VTBR"])[0, 1] > 0.4
    assert abs(np.corrcoef(returns["SBER"], returns["USD000UTSTOM"])[0, 1]) < 0.25


def test_a_future_tracks_its_underlying_with_a_basis() -> None:
    market = Market(seed=5, clock=FakeClock())
    end = START // DAY * DAY
    gazp = market.candles(("MOEX", "GAZP"), DAY, end - 200 * DAY, end)
    future = SPECS[next(s.symbol for s in INSTRUMENTS if s.is_future and s.underlying == "GAZP")]
    gazr = market.candles(future.key, DAY, end - 200 * DAY, end)
    implied = gazp["close"] * future.face_value * carry(future, gazp["time"])
    basis = gazr["close"] / implied - 1
    assert np.abs(basis).max() < 0.01 and np.abs(basis).std() > 0  # close, not equal
    r_spot, r_future = np.diff(np.log(gazp["close"])), np.diff(np.log(gazr["close"]))
    assert np.corrcoef(r_spot, r_future)[0, 1] > 0.95


# --- instruments started on first use ------------------------------------------------------------


def test_the_market_starts_only_the_core_flows_and_others_on_first_use() -> None:
    clock = FakeClock()
    market = Market(seed=9, clock=clock)
    core = {s.key for s in INSTRUMENTS if s.live_from_start}
    assert set(market._flows) == core and len(market.keys()) == len(INSTRUMENTS)
    ozon = ("MOEX", "OZON")
    history = market.candles(ozon, 60, START - 3600, START - 60)  # before the start: generated
    assert len(history["time"]) == 59 and ozon not in market._flows
    market.securities()  # the listing needs no live flow either
    assert ozon not in market._flows
    for _ in range(200):
        clock.t += 0.05
        market.advance()
    quote = market.quote(ozon)  # first use: the flow starts now, at the generated price
    flow = market._flows[ozon]
    assert flow.live_minute == int(START + 10) // 60 * 60
    generated = market.history.minutes(SPECS["OZON"], flow.live_minute, flow.live_minute + 60)
    assert abs(quote["last_price"] / SPECS["OZON"].price(int(generated.open[0])) - 1) < 0.01
    for _ in range(400):
        clock.t += 0.05
        market.advance()
    candles = market.candles(ozon, 60, START - 600, clock.t + 1)
    assert np.all(np.diff(candles["time"]) == 60)  # generated minutes join the live ones
    assert market.trades(ozon) and market.book(ozon, 5)["bids"]
    future = next(s for s in INSTRUMENTS if s.is_future and s.underlying == "LKOH")
    market.book(future.key, 5)  # a future starts its underlying, and follows it
    assert ("MOEX", "LKOH") in market._flows


def test_live_factors_are_brownian_and_a_function_of_seed_start_and_time() -> None:
    from invia_data.sim.factors import FactorMoves, LiveFactors

    factors = LiveFactors(seed=3, start=START)
    values = np.array([factors.at_second("market", s) for s in range(0, 20_001, 10)])
    assert values[0] == 0.0
    assert np.var(np.diff(values)) / 10 == pytest.approx(1.0, rel=0.15)  # variance 1 a second
    later = LiveFactors(seed=3, start=START)  # asked in another order: the same values
    assert later.at_second("market", 15_000) == factors.at_second("market", 15_000)
    assert LiveFactors(seed=4, start=START).at_second("market", 15_000) != values[1500]
    sber, vtbr, usd = (FactorMoves(factors, SPECS[s], START) for s in
                       ("SBER", "VTBR", "USD000UTSTOM"))
    moves = np.array([[m.move(START + t) for m in (sber, vtbr, usd)]
                      for t in np.arange(0.5, 20_000, 7.3)])
    sber.move(START + 20_000.2)
    assert sber.move(START + 20_000.7) == 0.0  # within one second nothing more
    rho = np.corrcoef(moves.T)
    assert rho[0, 1] > 0.5 and abs(rho[0, 2]) < 0.1
    assert np.var(moves[:, 0]) / 7.3 == pytest.approx(1 - own_weight(SPECS["SBER"]) ** 2,
                                                      rel=0.15)


def test_live_fair_values_co_move_by_market_and_sector() -> None:
    clock = FakeClock()
    market = Market(seed=6, clock=clock)
    keys = [("MOEX", s) for s in ("SBER", "VTBR", "GAZP", "USD000UTSTOM")]
    fair = []
    for _ in range(400):
        clock.t += 1.0
        market.advance()
        fair.append([market.flow(k).log_fair for k in keys])
    rho = np.corrcoef(np.diff(np.array(fair), axis=0).T)
    assert rho[0, 1] > 0.5  # banks with banks
    assert 0.25 < rho[0, 2] < rho[0, 1]  # across sectors, less
    assert abs(rho[0, 3]) < 0.2  # the rouble on its own
