"""Stream ingest: our stream vs a careful websocket-client loop vs the raw-socket floor.

One run starts the simulator's firehose (10-level Slim order books, as fast as the socket
takes them) in a separate process, so the CPU time measured here is the client's alone, then
measures, alternating, for ``--seconds`` each and ``--rounds`` rounds:

  (a) invia_data.stream into one LiveFrame (order book, depth 10)
  (b) websocket-client ``recv()`` + ``orjson.loads`` (``skip_utf8_validation=True``)
  (c) the floor: the raw socket read in large chunks, frames split inline, ``orjson.loads``

and then a trades firehose (every trade a new id: each message must be applied, nothing can be
conflated):

  (d) invia_data.stream into one all-trades LiveFrame (ring buffer of 100,000)
  (e) the floor: raw socket + frame split + ``orjson.loads``

and prints medians of messages/s and CPU microseconds per message, the ratios (a)/(b),
(a)/(c) and (d)/(e), and the median time of ``LiveFrame.df`` for a 50-level book.

    python bench/stream_ingest.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid

import orjson
import requests
import websocket

SIM_SCRIPT = """
import sys
import invia_data.sim as sim
server = sim.start(port=0, firehose=True)
print(server.ws_url, server.auth_url, server.refresh_token, flush=True)
sys.stdin.read()
server.stop()
"""


def start_sim() -> tuple[subprocess.Popen, str, str, str]:
    proc = subprocess.Popen([sys.executable, "-c", SIM_SCRIPT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    ws_url, auth_url, refresh = proc.stdout.readline().split()
    return proc, ws_url, auth_url, refresh


def subscribe_frame(token: str, guid: str, trades: bool = False) -> str:
    if trades:
        return json.dumps({"opcode": "AllTradesGetAndSubscribe", "code": "SBER",
                           "exchange": "MOEX", "depth": 0, "format": "Slim", "guid": guid,
                           "token": token})
    return json.dumps({"opcode": "OrderBookGetAndSubscribe", "code": "SBER", "exchange": "MOEX",
                       "depth": 10, "format": "Slim", "frequency": 0, "guid": guid,
                       "token": token})


class Meter:
    """CPU time of this process and wall time over a counted window."""

    def __enter__(self) -> Meter:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def result(self, messages: int) -> tuple[float, float]:
        return messages / self.wall, self.cpu / max(messages, 1) * 1e6


def run_ours(ws_url: str, token: str, seconds: float, trades: bool = False
             ) -> tuple[float, float]:
    from invia_data.stream import Stream

    with Stream(ws_url, lambda: token, frequency=0, stale_after=None) as stream:
        if trades:
            book = stream.all_trades("SBER", maxlen=100_000)
        else:
            book = stream.orderbook("SBER", depth=10)
        book.wait(100, timeout=10)
        sub = stream._frames[book][0]
        start = sub.messages
        with Meter() as meter:
            time.sleep(seconds)
            count = sub.messages - start
    return meter.result(count)


def run_websocket_client(ws_url: str, token: str, seconds: float) -> tuple[float, float]:
    ws = websocket.create_connection(ws_url, skip_utf8_validation=True)
    ws.send(subscribe_frame(token, str(uuid.uuid4())))
    loads = orjson.loads
    for _ in range(100):
        loads(ws.recv())
    count = 0
    with Meter() as meter:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in range(256):
                loads(ws.recv())
            count += 256
    ws.close()
    return meter.result(count)


def run_floor(ws_url: str, token: str, seconds: float, trades: bool = False
              ) -> tuple[float, float]:
    ws = websocket.create_connection(ws_url, skip_utf8_validation=True)
    ws.send(subscribe_frame(token, str(uuid.uuid4()), trades))
    sock = ws.sock
    loads = orjson.loads
    buf = b""
    count = 0
    with Meter() as meter:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            buf += sock.recv(1 << 18)
            pos, n = 0, len(buf)
            while n - pos >= 2:
                length = buf[pos + 1] & 0x7F
                start = pos + 2
                if length == 126:
                    if n - pos < 4:
                        break
                    length = int.from_bytes(buf[start:start + 2], "big")
                    start += 2
                elif length == 127:
                    if n - pos < 10:
                        break
                    length = int.from_bytes(buf[start:start + 8], "big")
                    start += 8
                if start + length > n:
                    break
                if buf[pos] & 0x0F == 1:
                    loads(buf[start:start + length])
                    count += 1
                pos = start + length
            buf = buf[pos:]
    ws.close()
    return meter.result(count)


def df_time(levels: int = 50, reads: int = 300) -> float:
    """Median seconds of ``LiveFrame.df`` right after an update (no cached frame)."""
    from invia_data.stream.live import FrameWriter, LiveFrame
    from invia_data.stream.state import BookState

    live = LiveFrame("orderbook", "SBER", {}, BookState("Slim"))
    writer = FrameWriter(live)
    times = []
    for n in range(reads):
        book = {"b": [{"p": 100.0 - i * 0.01, "v": n + i} for i in range(levels)],
                "a": [{"p": 100.01 + i * 0.01, "v": n + i} for i in range(levels)],
                "t": 1_700_000_000_000 + n, "h": False}
        writer.apply_one(book)
        start = time.perf_counter()
        frame = live.df
        times.append(time.perf_counter() - start)
        assert len(frame) == 2 * levels
    return statistics.median(times)


def trades_df_time(rows: int = 100_000, new: int = 200, reads: int = 20) -> tuple[float, float]:
    """Seconds of ``LiveFrame.df`` for a full trades ring buffer: the first read, and the
    median read after ``new`` more trades (only the new rows are built)."""
    from invia_data.stream.live import FrameWriter, LiveFrame
    from invia_data.stream.state import TradesState

    live = LiveFrame("all_trades", "SBER", {}, TradesState("Slim", maxlen=rows))
    writer = FrameWriter(live)
    next_id = 0

    def add(count: int) -> None:
        nonlocal next_id
        for _ in range(count):
            next_id += 1
            writer.apply_one({"id": next_id, "t": 1_700_000_000_000 + next_id, "px": 100.0,
                              "q": 1, "s": "buy", "sym": "SBER", "bd": "TQBR", "oi": 0, "h": False})

    add(rows)
    start = time.perf_counter()
    assert len(live.df) == rows
    first = time.perf_counter() - start
    times = []
    for _ in range(reads):
        add(new)
        start = time.perf_counter()
        frame = live.df
        times.append(time.perf_counter() - start)
        assert len(frame) == rows
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    proc, ws_url, auth_url, refresh = start_sim()
    try:
        token = requests.post(auth_url + "/refresh", params={"token": refresh},
                              timeout=10).json()["AccessToken"]
        runs = {"a": run_ours, "b": run_websocket_client, "c": run_floor,
                "d": lambda *a: run_ours(*a, trades=True),
                "e": lambda *a: run_floor(*a, trades=True)}
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
        for _ in range(args.rounds):
            for key, run in runs.items():
                results[key].append(run(ws_url, token, args.seconds))
                time.sleep(0.3)
    finally:
        proc.stdin.close()
        proc.wait(10)
    names = {"a": "(a) invia_data.stream -> LiveFrame",
             "b": "(b) websocket-client recv() + orjson",
             "c": "(c) raw socket + frame split + orjson",
             "d": "(d) invia_data.stream -> all-trades LiveFrame",
             "e": "(e) raw socket + frame split + orjson, trades"}
    medians = {}
    print(f"firehose of 10-level Slim books, {args.rounds} rounds x {args.seconds:.0f} s, medians")
    for key, rows in results.items():
        rate = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        medians[key] = (rate, cpu)
        print(f"  {names[key]:<40} {rate / 1000:8.1f} thousand msg/s {cpu:8.2f} us CPU/msg")
    (ra, ca), (rb, cb), (rc, cc) = medians["a"], medians["b"], medians["c"]
    (rd, cd), (re_, ce) = medians["d"], medians["e"]
    print(f"  throughput (a)/(b) = {ra / rb:.2f}x   (a)/(c) = {ra / rc:.2f}x   "
          f"trades (d)/(e) = {rd / re_:.2f}x")
    print(f"  CPU per message: (b)/(a) = {cb / ca:.2f}x  (c)/(a) = {cc / ca:.2f}x "
          f"(e)/(d) = {ce / cd:.2f}x (above 1 means ours is cheaper)")
    print(f"  LiveFrame.df of a 50-level book: median {df_time() * 1e3:.3f} ms")
    first, steady = trades_df_time()
    print(f"  LiveFrame.df of 100,000 trades: first read {first * 1e3:.0f} ms, "
          f"then median {steady * 1e3:.1f} ms after each 200 new trades")


if __name__ == "__main__":
    main()
