"""A bounded soak: the simulator's firehose (in its own process, so only the client's memory
is measured) into several LiveFrames for ~30 s, with readers; the resident set must level off."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest
import requests

from invia_data.stream import Stream

SIM_SCRIPT = """
import sys
import invia_data.sim as sim
server = sim.start(port=0, firehose=True)
print(server.ws_url, server.auth_url, server.refresh_token, flush=True)
sys.stdin.read()
server.stop()
"""
WARMUP_S = 5.0
SOAK_S = 25.0
GROWTH_CEILING_MB = 25.0


@pytest.mark.slow
def test_memory_stays_bounded_under_the_firehose():
    proc = subprocess.Popen([sys.executable, "-c", SIM_SCRIPT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        ws_url, auth_url, refresh = proc.stdout.readline().split()
        token = requests.post(f"{auth_url}/refresh", params={"token": refresh},
                              timeout=10).json()["AccessToken"]
        me = psutil.Process()
        with Stream(ws_url, lambda: token, frequency=0) as stream:
            book = stream.orderbook("SBER", depth=10)
            deep = stream.orderbook("GAZP", depth=50)
            trades = stream.all_trades("SBER", recent=500, maxlen=2_000)
            quotes = stream.quotes(["SBER", "GAZP", "LKOH"])
            bars = stream.bars("SBER", "1min")
            for frame in (book, deep, trades, quotes, bars):
                frame.wait(0, timeout=15)
            start = time.monotonic()
            baseline = None
            samples = []
            while time.monotonic() - start < WARMUP_S + SOAK_S:
                for frame in (book, deep, trades, quotes):  # readers, as a notebook would
                    assert not frame.df.empty
                time.sleep(0.2)
                if baseline is None and time.monotonic() - start >= WARMUP_S:
                    baseline = me.memory_info().rss
                    messages_at_baseline = int(stream.health()["messages"].sum())
                if baseline is not None:
                    samples.append(me.memory_info().rss)
            health = stream.health()
            messages = int(health["messages"].sum()) - messages_at_baseline
            growth_mb = (max(samples) - baseline) / 2**20
            print(f"soak: {messages} messages in {SOAK_S:.0f} s after warm-up, RSS "
                  f"{baseline / 2**20:.0f} MB -> peak {max(samples) / 2**20:.0f} MB "
                  f"(+{growth_mb:.1f} MB)")
            assert messages > 100_000  # the firehose really ran
            assert len(trades.df) <= 2_000
            assert (health["status"] == "live").all() and (health["errors"] == 0).all()
            assert growth_mb < GROWTH_CEILING_MB
    finally:
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()
