"""Recorder and replay: does recording keep up with the stream, and how fast does a replay play?

Recording (a firehose in a separate process, so the CPU measured is the client's alone):

  books:  the simulator's firehose of 10-level Slim order books
  trades: a bare aiohttp server sending all-trades messages (ids increasing) as fast as the
          socket takes them

For each, alternating for ``--rounds`` rounds of ``--seconds``: (a) the stream alone into a
LiveFrame, messages/s; (b) the same with ``inv.stream.record`` writing every message, rows
(trades) or snapshots (books) written per second, counted once the last batch is on disk. The
ratio (b)/(a) is the figure. Then one longer recording run (``--soak`` s) samples the RSS.

Replay: a synthetic recording of ``--trades`` trades played with ``speed=None`` into an
all-trades LiveFrame (load, then play), against the naive baseline of applying the same trades
one by one to the live reducer; and ``.df`` of a 100,000-row frame, replayed vs live.

    python bench/record_replay.py [--seconds 20] [--rounds 3] [--soak 60] [--trades 2000000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import requests

SIM_SCRIPT = """
import sys
import invia_data.sim as sim
server = sim.start(port=0, firehose=True)
print(server.ws_url, server.auth_url, server.refresh_token, flush=True)
sys.stdin.read()
server.stop()
"""

TRADES_SERVER = r"""
import asyncio, sys, orjson
from aiohttp import web

async def cws(request):
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    msg = await ws.receive()
    guid = orjson.loads(msg.data)["guid"]
    await ws.send_str(orjson.dumps({"message": "Handled successfully", "httpCode": 200,
                                    "requestGuid": guid}).decode())
    transport = request.transport
    # the frames are filled into one template (id and time: same digit counts, so one length)
    # rather than encoded one by one: the server stands for an exchange on another machine,
    # and should leave this machine's second core to the client as far as it can
    template = orjson.dumps({"data": {"id": 10**12, "t": 1_700_000_000_000, "px": 100.0,
                                      "q": 1, "s": "buy", "sym": "SBER", "bd": "TQBR", "oi": 0,
                                      "h": False}, "guid": guid})
    template = template.replace(b"1000000000000", b"%d", 1).replace(b"1700000000000", b"%d", 1)
    header = bytes((0x81, 126)) + (len(template) + 22).to_bytes(2, "big")
    frame = header + template
    next_id, ms = 10**12, 1_700_000_000_000
    while not ws.closed and not transport.is_closing():
        ids = range(next_id, next_id + 512)
        transport.write(b"".join([frame % (i, i - next_id + ms) for i in ids]))
        next_id += 512
        ms += 512
        while transport.get_write_buffer_size() > 256 * 1024 and not transport.is_closing():
            await asyncio.sleep(0.0005)
        await asyncio.sleep(0)
    return ws

async def main():
    app = web.Application()
    app.router.add_get("/cws", cws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"ws://127.0.0.1:{port}/cws", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()

asyncio.run(main())
"""


def start(script: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().split()


@contextlib.contextmanager
def cpu_share(process: psutil.Process):
    """The share of a core ``process`` used during the block, in ``share[0]`` afterwards."""
    share = [0.0]
    before, t0 = sum(process.cpu_times()[:2]), time.perf_counter()
    yield share
    share[0] = (sum(process.cpu_times()[:2]) - before) / (time.perf_counter() - t0)


def _open(stream, kind: str):
    if kind == "books":
        return stream.orderbook("SBER", depth=10)
    return stream.all_trades("SBER", maxlen=10_000)


def run_stream(ws_url: str, token: str, kind: str, seconds: float) -> float:
    from invia_data.stream import Stream

    with Stream(ws_url, lambda: token, frequency=0, stale_after=None) as stream:
        frame = _open(stream, kind)
        frame.wait(100, timeout=10)
        sub = stream._frames[frame][0]
        start, t0 = sub.messages, time.perf_counter()
        time.sleep(seconds)
        return (sub.messages - start) / (time.perf_counter() - t0)


def run_recording(ws_url: str, token: str, kind: str, seconds: float, out: Path,
                  rss: list[float] | None = None) -> tuple[float, float]:
    """(messages/s the stream took, rows or snapshots written/s)."""
    from invia_data.stream import Stream

    shutil.rmtree(out, ignore_errors=True)
    process = psutil.Process()
    with Stream(ws_url, lambda: token, frequency=0, stale_after=None) as stream:
        frame = _open(stream, kind)
        frame.wait(100, timeout=10)
        recorder = stream.record(out, [frame])
        sub = stream._frames[frame][0]
        time.sleep(0.5)
        start, t0 = sub.messages, time.perf_counter()
        recorder.flush()           # rows0 then holds at least every message counted above
        rows0 = recorder.rows
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            time.sleep(min(1.0, deadline - time.perf_counter()))
            if rss is not None:
                rss.append(process.memory_info().rss / 2**20)
        taken = sub.messages - start
        frame._remove_sink(recorder._sources[0].sink)   # stop feeding, then write the rest
        recorder.flush()
        elapsed = time.perf_counter() - t0
        rows = recorder.rows - rows0
        recorder.close()
    per_message = 20 if kind == "books" else 1     # a 10-level book is 20 rows
    return taken / elapsed, rows / per_message / elapsed


PLAIN_SIM = """
import sys
import invia_data.sim as sim
server = sim.start(port=0, speed=10)
print(server.url, server.refresh_token, flush=True)
sys.stdin.read()
server.stop()
"""


def run_many_books(count: int, seconds: float, out: Path) -> tuple[int, float, float, float]:
    """``count`` 10-level books of the plain simulator (market clock 10x): the books it sent
    per second, the snapshots written per second, the ratio, the process's CPU share."""
    import invia_data

    sim, (url, refresh) = start(PLAIN_SIM)
    try:
        with invia_data.connect(refresh, env=url) as inv:
            listed = inv.instruments("MOEX")
            symbols = listed.loc[listed["board"] == "TQBR", "symbol"].head(count).tolist()
            frames = [inv.stream.orderbook(symbol, depth=10) for symbol in symbols]
            recorder = inv.stream.record(out, frames, batch_seconds=1.0)
            time.sleep(1.0)
            subs = [inv.stream._frames[f][0] for f in frames]
            start_messages = sum(s.messages for s in subs)
            recorder.flush()           # rows0 then holds at least every message counted above
            rows0 = recorder.rows
            t0, cpu0 = time.perf_counter(), time.process_time()
            time.sleep(seconds)
            messages = sum(s.messages for s in subs) - start_messages
            for frame, source in zip(frames, recorder._sources, strict=True):
                frame._remove_sink(source.sink)
            recorder.flush()
            elapsed = time.perf_counter() - t0
            cpu = (time.process_time() - cpu0) / elapsed
            written = (recorder.rows - rows0) / 20
            recorder.close()
    finally:
        sim.stdin.close()
        sim.wait(10)
    return len(symbols), messages / elapsed, written / elapsed, cpu


# --- replay ----------------------------------------------------------------------------------

def synthetic_recording(path: Path, n: int) -> None:
    """``n`` trades in the recorder's all_trades schema, 1000 a second."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = path / "kind=all_trades" / "symbol=SBER" / "date=2024-03-01"
    folder.mkdir(parents=True)
    t = pd.Timestamp("2024-03-01 07:00", tz="UTC").as_unit("us") + pd.to_timedelta(
        np.arange(n), unit="ms")
    step = 500_000
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        frame = pd.DataFrame({
            "time": t[lo:hi], "id": pd.array(np.arange(lo + 1, hi + 1), dtype="Int64"),
            "board": pd.array(["TQBR"] * (hi - lo), dtype="string"),
            "side": pd.array(np.where(np.arange(lo, hi) % 2, "buy", "sell"), dtype="string"),
            "price": 100.0 + (np.arange(lo, hi) % 100) * 0.01,
            "qty": pd.array(np.ones(hi - lo, dtype="int64"), dtype="Int64"),
            "oi": pd.array(np.zeros(hi - lo, dtype="int64"), dtype="Int64"),
            "existing": pd.array(np.zeros(hi - lo, dtype=bool), dtype="boolean"),
            "exchange_time": t[lo:hi], "receive_time": t[lo:hi] + pd.Timedelta("5ms")})
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                       folder / f"part-{lo:09d}.parquet")


def bench_replay(n: int) -> dict[str, float]:
    import invia_data
    from invia_data.stream.live import FrameWriter, LiveFrame
    from invia_data.stream.state import make_state

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        synthetic_recording(path, n)
        rp = invia_data.replay(path, speed=None, paused=True)
        t0 = time.perf_counter()
        trades = rp.all_trades("SBER", maxlen=100_000)
        out["load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rp.resume()
        assert rp.wait(600)
        out["play_s"] = time.perf_counter() - t0
        assert trades.df["id"].iloc[-1] == n
        out["play_rate"] = n / out["play_s"]
        out["rate_with_load"] = n / (out["play_s"] + out["load_s"])
        times = []
        for _ in range(20):
            rp.seek(rp.start + (rp.end - rp.start) * np.random.random())
            t0 = time.perf_counter()
            frame = trades.df
            times.append(time.perf_counter() - t0)
        out["df_replay_ms"] = statistics.median(times) * 1000
        rp.close()
    # naive: the live reducer, one trade at a time
    count = min(n, 200_000)
    state = make_state("all_trades", "Slim", maxlen=100_000)
    live = LiveFrame("all_trades", "SBER", {}, state)
    writer = FrameWriter(live)
    items = [{"id": i, "t": 1_700_000_000_000 + i, "px": 100.0, "q": 1, "s": "buy",
              "sym": "SBER", "bd": "TQBR", "oi": 0, "h": False} for i in range(1, count + 1)]
    t0 = time.perf_counter()
    for item in items:
        writer.apply([item], 0.0)
    out["naive_rate"] = count / (time.perf_counter() - t0)
    assert len(live.df) == 100_000
    times = []
    for i in range(20):
        writer.apply([{**items[-1], "id": count + i + 1}], 0.0)
        t0 = time.perf_counter()
        frame = live.df
        times.append(time.perf_counter() - t0)
    assert len(frame) == 100_000
    out["df_live_ms"] = statistics.median(times) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the written rate counts the last batch once it is on disk: a short window is weighed down
    # by that one flush (5 s windows gave ~0.74 where 20 s gave 0.78-0.87)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--trades", type=int, default=2_000_000)
    parser.add_argument("--parts", default="books,trades,many,soak,replay",
                        help="which measurements to run (comma-separated)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    tmp = Path(tempfile.mkdtemp())
    sim, (ws_url, auth_url, refresh) = start(SIM_SCRIPT)
    trades_server, (trades_url,) = start(TRADES_SERVER)
    try:
        token = requests.post(auth_url + "/refresh", params={"token": refresh},
                              timeout=10).json()["AccessToken"]
        urls = {"books": ws_url, "trades": trades_url}
        for kind, url in urls.items():
            if kind not in parts:
                continue
            alone, taken, written, served = [], [], [], []
            server = psutil.Process((sim if kind == "books" else trades_server).pid)
            for _ in range(args.rounds):
                with cpu_share(server) as share:
                    alone.append(run_stream(url, token, kind, args.seconds))
                served.append(share[0])
                rate, rows = run_recording(url, token, kind, args.seconds, tmp / kind)
                taken.append(rate)
                written.append(rows)
            a, t, w = (statistics.median(x) for x in (alone, taken, written))
            # each round's ratio is against the round alone just before it: the machine's speed
            # drifts over minutes, and a pair sees the same phase of it
            paired = sorted(w_ / a_ for a_, w_ in zip(alone, written, strict=True))
            unit = "snapshots" if kind == "books" else "trades"
            print(f"{kind}: stream alone {a / 1e3:.1f} k msg/s (the firehose server took "
                  f"{statistics.median(served) * 100:.0f} % of a core); recording: stream "
                  f"{t / 1e3:.1f} k msg/s, written {w / 1e3:.1f} k {unit}/s: ratio {w / a:.2f}; "
                  f"paired rounds: median {statistics.median(paired):.2f} "
                  f"({', '.join(f'{r:.2f}' for r in paired)})")
        if "many" in parts:
            count, sent, written, cpu = run_many_books(40, args.seconds * 3, tmp / "many")
            print(
                f"{count} books of the plain simulator: stream {sent:.0f} msg/s, written "
                f"{written:.0f} snapshots/s: ratio {written / sent:.2f}; client CPU "
                f"{cpu * 100:.0f} % of a core")
        if args.soak > 0 and "soak" in parts:
            rss: list[float] = []
            rate, rows = run_recording(urls["books"], token, "books", args.soak, tmp / "soak",
                                       rss)
            quarter = max(1, len(rss) // 4)
            print(f"soak {args.soak:.0f} s of books at {rows / 1e3:.1f} k snapshots/s: RSS "
                  f"first {statistics.median(rss[:quarter]):.0f} MB, last "
                  f"{statistics.median(rss[-quarter:]):.0f} MB, max {max(rss):.0f} MB")
    finally:
        for proc in (sim, trades_server):
            proc.stdin.close()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    if "replay" not in parts:
        return
    result = bench_replay(args.trades)
    print(f"replay of {args.trades:,} trades (speed=None): load {result['load_s']:.2f} s, play "
          f"{result['play_s']:.3f} s = {result['play_rate'] / 1e6:.1f} M trades/s "
          f"({result['rate_with_load'] / 1e6:.2f} M/s with the load); naive one-by-one into "
          f"the live reducer {result['naive_rate'] / 1e3:.0f} k trades/s; .df of 100k rows: "
          f"replay {result['df_replay_ms']:.2f} ms, live {result['df_live_ms']:.2f} ms")


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
