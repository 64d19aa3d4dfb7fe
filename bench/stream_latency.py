"""Many order books on one connection: latency from the server's send to visible in ``.df``,
and the client's CPU share.

The simulator runs in its own process with ``book_rate`` (each order-book subscription sends
that many distinct books a second, each carrying ``"st"``, its send time in unix ns). The
client subscribes ``--books`` instruments on one ``Stream`` and, for every book the stream
applies, takes ``time.time_ns() - st`` at the moment the book is visible in ``.df`` (a sink
on the LiveFrame runs right after the batch is applied, on the stream thread). CPU share is
this process's CPU time over wall time while measuring (100 % = one core).

    python bench/stream_latency.py [--books 100] [--rate 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time

import requests

SIM_SCRIPT = """
import sys
import invia_data.sim as sim
server = sim.start(port=0, book_rate=float(sys.argv[1]))
print(server.ws_url, server.auth_url, server.refresh_token, flush=True)
sys.stdin.read()
server.stop()
"""


def start_sim(rate: float) -> tuple[subprocess.Popen, str, str, str]:
    proc = subprocess.Popen([sys.executable, "-c", SIM_SCRIPT, str(rate)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ws_url, auth_url, refresh = proc.stdout.readline().split()
    return proc, ws_url, auth_url, refresh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    proc, ws_url, auth_url, refresh = start_sim(args.rate)
    try:
        import invia_data
        from invia_data.stream import Stream

        token = requests.post(auth_url + "/refresh", params={"token": refresh},
                              timeout=10).json()["AccessToken"]
        base_url = ws_url.replace("ws://", "http://").rsplit("/", 1)[0]
        with invia_data.connect(refresh, base_url=base_url, auth_url=auth_url,
                                ws_url=ws_url) as inv:
            table = inv.instruments("MOEX")
        names = [s for s in table["symbol"].tolist()
                 if isinstance(s, str) and s.isalpha() and s.isupper()]  # shares
        # two subscriptions (of 10 and 20 levels) per share when there are fewer shares
        wanted = [(name, depth) for depth in (10, 20) for name in names][:args.books]
        latencies: list[int] = []
        client_side: list[int] = []  # from the read that brought a batch to visible
        lock = threading.Lock()
        measuring = threading.Event()

        def sink(items, now, raw=None):
            if not measuring.is_set():
                return
            seen = time.time_ns()
            with lock:
                latencies.extend(seen - item["st"] for item in items if "st" in item)
                client_side.append(seen - int(now * 1e9))

        with Stream(ws_url, lambda: token, frequency=0, stale_after=None) as stream:
            frames = []
            for name, depth in wanted:
                frame = stream.orderbook(name, depth=depth, timeout=10)
                frame._add_sink(sink)
                frames.append(frame)
            for frame in frames:
                frame.wait(2, timeout=20)
            time.sleep(1.0)
            measuring.set()
            wall, cpu = time.perf_counter(), time.process_time()
            time.sleep(args.seconds)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            measuring.clear()
            versions = sum(frame.version for frame in frames)
    finally:
        proc.stdin.close()
        proc.wait(10)
    with lock:
        ms = sorted(v / 1e6 for v in latencies)
    p50 = statistics.median(ms)
    p99 = ms[int(0.99 * (len(ms) - 1))]
    ours = sorted(v / 1e6 for v in client_side)
    print(f"{len(wanted)} order books x {args.rate:.0f} updates/s on one connection, "
          f"{args.seconds:.0f} s: {len(ms)} books measured ({len(ms) / wall:.0f}/s), "
          f"{versions} versions in all")
    print(f"  send -> visible in .df: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms")
    print(f"  of which read -> visible (the client's part): p50 {statistics.median(ours):.3f} ms, "
          f"p99 {ours[int(0.99 * (len(ours) - 1))]:.3f} ms")
    print(f"  client CPU: {100 * cpu / wall:.1f} % of one core")


if __name__ == "__main__":
    main()
