"""The stream's reliability figures, measured against the embedded simulator.

1. Forced outages (a short one, one longer than a backfill page, drops every 2 s, malformed
   frames): trades and closed candles held vs the server's own (by trade id, by candle
   time): lost and duplicated.
2. Tokens that live 2 s while streaming and calling HTTP: failed calls.
3. A token server that takes 10 s while a renewal is in flight: latency of
   ``stream.orderbook()`` and of ``LiveFrame.close()`` / ``Stream.close()``.
4. A callback that takes 1 s on one frame: the other frames' data age, and what ``health()``
   shows for the slow one.
5. Bars memory per candle held.

    python bench/stream_reliability.py [--drops-seconds 60] [--token-seconds 60]
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import pandas as pd
import requests

import invia_data
import invia_data.sim
from invia_data.auth import TokenManager
from invia_data.stream import Stream


def until(predicate, timeout: float = 30.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def trade_losses(inv, frame) -> tuple[int, int, int]:
    held = frame.df["id"].tolist()
    server = set(inv.all_trades("SBER", from_id=held[0], to_id=held[-1])["id"].tolist())
    return len(server - set(held)), len(held) - len(set(held)), len(held)


def candle_losses(inv, bars) -> tuple[int, int, int]:
    candles = bars.df
    closed = candles[candles["is_closed"]].drop(columns="is_closed")
    reference = inv.history("SBER", "1min", start=closed.index[0],
                            end=closed.index[-1] + pd.Timedelta("1min"), cache=False)
    missing = len(reference.index.difference(closed.index))
    dup = int(closed.index.duplicated().sum())
    return missing, dup, len(closed)


def outages(drops_seconds: float) -> None:
    sim = invia_data.sim.start(port=0, speed=20)
    try:
        with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
            stream = inv.stream
            stream.backfill_page = 50
            trades = stream.all_trades("SBER", maxlen=10_000_000)
            bars = stream.bars("SBER", "1min", start=time.time() - 600)
            until(lambda: len(trades.df) > 2 and len(bars.df) > 2)
            phases = [("short outage (0.5 s)", lambda: (sim.faults.refuse_connections(0.5),
                                                        sim.faults.drop_connections())),
                      ("outage of many pages (5 s)", lambda: (sim.faults.refuse_connections(5),
                                                              sim.faults.drop_connections()))]
            for name, act in phases:
                gaps = len(stream.gaps())
                act()
                until(lambda: len(stream.gaps()) >= gaps + 2)  # noqa: B023
                print(f"  {name}: backfilled {stream.gaps()['backfilled'].iloc[-2:].tolist()} "
                      f"rows (trades, candles)")
            sim.faults.drop_every = 2.0
            time.sleep(drops_seconds)
            sim.faults.drop_every = 0.0
            print(f"  drops every 2 s for {drops_seconds:.0f} s: "
                  f"{int(stream.health()['reconnects'].max())} reconnects")
            sim.faults.malformed_rate = 0.1
            time.sleep(drops_seconds / 4)
            sim.faults.malformed_kind = "garbage"
            time.sleep(drops_seconds / 4)
            sim.faults.malformed_rate = 0.0
            print(f"  malformed frames (10 % for {drops_seconds / 2:.0f} s): "
                  f"{stream.health().attrs['connection']['malformed']} counted")
            time.sleep(3.0)
            until(lambda: trade_losses(inv, trades)[0] == 0, timeout=20, step=0.5)
            lost, dup, held = trade_losses(inv, trades)
            print(f"  trades: {held} held, lost {lost}, duplicated {dup} (vs the server's ids)")
            lost, dup, held = candle_losses(inv, bars)
            print(f"  closed candles: {held} held, lost {lost}, duplicated {dup} "
                  "(vs the server's history)")
            health = stream.health()
            print(f"  gaps {health['gaps'].tolist()}, unfilled {health['unfilled_gaps'].tolist()}")
    finally:
        sim.stop()


def short_tokens(seconds: float) -> None:
    sim = invia_data.sim.start(port=0, faults={"token_lifetime": 2.0})
    failures = calls = 0
    try:
        with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
            book = inv.stream.orderbook("SBER", depth=5)
            trades = inv.stream.all_trades("GAZP")
            deadline = time.monotonic() + seconds
            n = 0
            while time.monotonic() < deadline:
                n += 1
                calls += 1
                try:
                    if n % 10 == 0:
                        inv.stream.quotes("LKOH", timeout=5).wait(0, timeout=5).close()
                    else:
                        inv.orderbook("SBER", depth=5)
                except invia_data.InviaError as exc:
                    failures += 1
                    print(f"    failed: {type(exc).__name__}: {exc}")
                time.sleep(0.2)
            statuses = {book.status, trades.status}
            refreshes = inv.tokens.refresh_count
    finally:
        sim.stop()
    print(f"  {calls} calls over {seconds:.0f} s with 2 s tokens ({refreshes} renewals): "
          f"failed {failures}; frames {statuses}")


def slow_token_server() -> None:
    sim = invia_data.sim.start(port=0)
    released = threading.Event()
    now = [time.time()]

    class SlowSession(requests.Session):
        slow = False

        def post(self, *args, **kwargs):
            if self.slow:
                released.wait(10)
            return super().post(*args, **kwargs)

    session = SlowSession()
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url,
                          session=session, clock=lambda: now[0])
    stream = Stream(sim.ws_url, tokens.token)
    try:
        book = stream.orderbook("SBER", depth=3).wait(0, timeout=10)
        session.slow = True
        now[0] = tokens.claims["exp"] - 5  # a renewal is due; the token server takes 10 s
        renewing = threading.Thread(target=tokens.token, daemon=True)
        renewing.start()
        until(lambda: tokens._refresh_lock.locked())
        start = time.perf_counter()
        other = stream.orderbook("GAZP", depth=3)
        opened = time.perf_counter() - start
        status = other.status
        start = time.perf_counter()
        book.close()
        other.close()
        closed = time.perf_counter() - start
        start = time.perf_counter()
        stream.close()
        stream_closed = time.perf_counter() - start
        print(f"  token server taking 10 s: stream.orderbook() {opened * 1e3:.1f} ms "
              f"(status {status!r}), two LiveFrame.close() {closed * 1e3:.1f} ms, "
              f"Stream.close() {stream_closed * 1e3:.1f} ms; renewal still waiting: "
              f"{not released.is_set()}")
    finally:
        released.set()
        stream.close()
        if "renewing" in locals():
            renewing.join(15)  # the renewal ends before the simulator stops
        sim.stop()


def slow_callback() -> None:
    sim = invia_data.sim.start(port=0)
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    try:
        with Stream(sim.ws_url, tokens.token, frequency=10) as stream:
            slow = stream.orderbook("SBER", depth=5)
            others = [stream.orderbook(s, depth=5) for s in ("GAZP", "LKOH", "VTBR")]
            slow.on_update(lambda frame: time.sleep(1.0))
            for frame in others:
                frame.on_update(lambda frame: None)
            ages, lags = [], []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                health = stream.health().set_index("symbol")
                ages.append(health.drop(index="MOEX:SBER")["data_age"].max())
                lags.append(health.loc["MOEX:SBER", "callback_lag"])
                time.sleep(0.1)
            health = stream.health().set_index("symbol")
            print(f"  1 s callback on SBER for 10 s: other books' data age max "
                  f"{max(ages):.3f} s (median {np.median(ages):.3f} s); SBER's own data age "
                  f"{health.loc['MOEX:SBER', 'data_age']:.3f} s, callback lag up to "
                  f"{max(lags):.2f} s, callbacks skipped "
                  f"{health.loc['MOEX:SBER', 'callbacks_skipped']}")
    finally:
        sim.stop()


def bars_memory() -> None:
    import tracemalloc

    from invia_data.stream.live import FrameWriter, LiveFrame
    from invia_data.stream.state import BarsState

    tracemalloc.start()
    live = LiveFrame("bars", "SBER", {}, BarsState("Slim", maxlen=2_000_000))
    writer = FrameWriter(live)
    batch = []
    for minute in range(1_000_000):
        batch.append({"t": 60 * minute, "o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 10})
        if len(batch) == 10_000:
            writer.apply(batch, time.time())
            batch = []
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  bars: 1,000,000 candles held in {held / 1e6:.1f} MB: "
          f"{held / 1_000_000:.0f} bytes a candle (48 in the columns; capacity doubles)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops-seconds", type=float, default=60.0)
    parser.add_argument("--token-seconds", type=float, default=60.0)
    args = parser.parse_args()
    print("forced outages:")
    outages(args.drops_seconds)
    print("short-lived tokens:")
    short_tokens(args.token_seconds)
    print("slow token server:")
    slow_token_server()
    print("slow callback:")
    slow_callback()
    print("memory:")
    bars_memory()


if __name__ == "__main__":
    main()
