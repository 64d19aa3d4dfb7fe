"""How much the simulated market costs: advance() per server tick, book()/quote() per call, and
generating one million one-minute candles. Prints figures measured in this run and the ratios
that matter (CPU share of one core at a given speed; candles per second).

    python bench/sim_market.py
"""

from __future__ import annotations

import time

from invia_data.sim.history import DAY
from invia_data.sim.market import Market

START = 1_795_000_000.0
TICK = 0.01  # the server ticker calls advance() about every 10 ms


class FakeClock:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


def advance_cost(speed: float, seconds: float) -> None:
    clock = FakeClock()
    market = Market(seed=1, speed=speed, clock=clock)
    calls = int(seconds / TICK)
    began = time.perf_counter()
    for _ in range(calls):
        clock.t += TICK
        market.advance()
    spent = time.perf_counter() - began
    trades = sum(market.last_trade_id(k) - market.trades_since(k, 0)[0]["id"] + 1
                 for k in market.keys() if market.trades_since(k, 0))
    print(f"speed {speed:>5g}: advance() {spent / calls * 1e6:7.1f} us per call, "
          f"{spent / seconds:6.1%} of one core, {trades / seconds:7.0f} live trades per real s")


def per_call(market: Market, clock: FakeClock) -> None:
    """Each call after a 10 ms tick, so caches keyed by the book version are mostly cold."""
    key = ("MOEX", "SBER")
    calls = (("book(depth=20)", lambda: market.book(key, 20)),
             ("quote()", lambda: market.quote(key)),
             ("book(delay=900)", lambda: market.book(key, 20, delay=900)),
             ("last 3 candles", lambda: market.candles(key, 60, clock.t - 180, clock.t + 1)),
             ("trades(last=50)", lambda: market.trades(key, last=50)))
    for name, call in calls:
        n = 1000
        spent = 0.0
        for _ in range(n):
            clock.t += TICK
            market.advance()
            began = time.perf_counter()
            call()
            spent += time.perf_counter() - began
        print(f"{name:>16}: {spent / n * 1e6:7.1f} us per call")


def candle_generation() -> None:
    market = Market(seed=5, clock=FakeClock())
    key = ("MOEX", "GAZP")
    # Candles exist only in the exchange's sessions (about 1,000 minutes a weekday since 2025,
    # 540 before the evening session): one million of them span some four years.
    start = START - 1500 * DAY
    market.candles(key, DAY, start - DAY, start)  # the calendar tables and the daily path
    began, cpu = time.perf_counter(), time.process_time()
    candles = market.candles(key, 60, start, START)
    spent, cpu = time.perf_counter() - began, time.process_time() - cpu
    n = len(candles["time"])
    print(f"{n} one-minute candles generated in {spent:.3f} s wall, {cpu:.3f} s CPU "
          f"({spent * 1e6 / n:.2f} s wall per million)")
    began = time.perf_counter()
    pages = 0
    cursor = start
    while True:
        page = market.candles(key, 60, cursor, START, limit=50_001)
        pages += 1
        if len(page["time"]) < 50_001:
            break
        cursor = int(page["time"][-1])
    print(f"the same range in {pages} pages of 50k (limit=): {time.perf_counter() - began:.3f} s")
    began = time.perf_counter()
    days = market.candles(key, 86_400, START - 3000 * DAY, START)
    print(f"{len(days['time'])} daily candles (first request) in "
          f"{time.perf_counter() - began:.3f} s")


if __name__ == "__main__":
    advance_cost(1.0, 60.0)
    advance_cost(10.0, 20.0)
    advance_cost(100.0, 10.0)
    clock = FakeClock()
    live = Market(seed=1, clock=clock)
    for _ in range(3000):
        clock.t += 0.1
        live.advance()
    per_call(live, clock)
    candle_generation()
