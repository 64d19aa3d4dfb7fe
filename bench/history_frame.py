"""One million one-minute candles into a DataFrame, three ways, in one run against the simulator.

* ``history()``: ``invia_data.history.history(..., cache=False)`` (Slim, pyarrow parsing, a pool
  of ``--workers`` requests in flight, through ``Http`` and its rate limiter).
* naive: ``requests.get`` page after page over the same ranges, ``format=Simple``,
  ``pd.DataFrame(resp.json()["history"])`` per page, then ``pd.concat``.
* floor: the same Slim transfers with the same pool size, plus ``orjson.loads`` alone (no frame
  at all): what any client pays.

Two servers, both reported:

* simulator process: ``invia-data sim`` in a process of its own, as a server is: its candle
  encoding runs beside the client on the other core.
* live: ``invia_data.sim.run(port=0)`` in this process. Its candle encoding runs in the same
  interpreter and competes with the client for the GIL and the two cores, and it is the
  slowest part of every variant, so these figures mostly measure the simulator.
* replay: the simulator's own response bodies for exactly these requests, recorded once, then
  served as bytes by a small threaded HTTP server, so that the figures measure the client (as
  against a remote server that is not CPU-bound).

Each variant runs ``--repeat`` times per server; the best time counts. Then ``history()`` with
the Parquet cache: once filling an empty cache, then served by it.

    python bench/history_frame.py [--candles 1000000] [--repeat 2] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from invia_data import sim  # noqa: E402
from invia_data.history import history, split_range  # noqa: E402
from invia_data.http import Http  # noqa: E402

END = 1_735_689_600  # 2025-01-01 00:00 UTC: long closed, so every variant sees the same candles
SYMBOL = "SBER"
PATH = "/md/v2/history"
Piece = tuple[int, int]


def params(start: int, end: int, fmt: str) -> dict:
    """The query ``history()`` sends for a piece (``to`` = the piece end)."""
    return {"symbol": SYMBOL, "exchange": "MOEX", "tf": "60", "from": start, "to": end,
            "format": fmt}


def get_json(session: requests.Session, url: str, start: int, end: int, fmt: str) -> bytes:
    response = session.get(url, params=params(start, end, fmt), timeout=120)
    response.raise_for_status()
    return response.content


# --- the three variants ---

def run_ours(base_url: str, start: int, workers: int, cache_dir: str | None = None
             ) -> pd.DataFrame:
    http = Http(base_url, None)
    try:
        return history(http, SYMBOL, "1min", start, END, cache=cache_dir is not None,
                       cache_dir=cache_dir, progress=False, max_workers=workers)
    finally:
        http.close()


def run_naive(base_url: str, pieces: list[Piece]) -> pd.DataFrame:
    url = base_url + PATH
    frames = []
    with requests.Session() as session:
        for a, b in pieces:
            resp = session.get(url, params=params(a, b, "Simple"), timeout=120)
            resp.raise_for_status()
            payload = resp.json()
            assert payload["next"] is None or payload["next"] >= b, "a capped page"
            frames.append(pd.DataFrame(payload["history"]))
    frame = pd.concat(frames, ignore_index=True)
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    frame = frame.drop_duplicates("time", keep="last").set_index("time")
    return frame[frame.index < pd.Timestamp(END, unit="s", tz="UTC")]  # `to` is inclusive


def run_floor(base_url: str, pieces: list[Piece], workers: int) -> int:
    url = base_url + PATH
    with requests.Session() as session, ThreadPoolExecutor(workers) as pool:
        def one(piece: Piece) -> int:
            payload = orjson.loads(get_json(session, url, *piece, "Slim"))
            return len(payload["h"])

        return sum(pool.map(one, pieces))


# --- the replay server ---

class Replay(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bodies: dict[tuple[str, int, int], bytes]) -> None:
        super().__init__(("127.0.0.1", 0), ReplayHandler)
        self.bodies = bodies

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ReplayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        parts = urlsplit(self.path)
        query = {k.lower(): v[0] for k, v in parse_qs(parts.query).items()}
        key = (query.get("format", ""), int(query.get("from", -1)), int(query.get("to", -1)))
        body = self.server.bodies.get(key) if parts.path == PATH else None  # type: ignore[attr-defined]
        if body is None:
            self.send_response(404)
            body = orjson.dumps({"message": f"not recorded: {parts.path} {key}"})
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def record(base_url: str, pieces: list[Piece]) -> dict[tuple[str, int, int], bytes]:
    bodies = {}
    with requests.Session() as session:
        for a, b in pieces:
            for fmt in ("Slim", "Simple"):
                bodies[(fmt, a, b)] = get_json(session, base_url + PATH, a, b, fmt)
    return bodies


# --- measuring ---

def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def interleaved(repeat: int, variants: dict[str, Callable[[], object]]
                ) -> dict[str, tuple[float, object]]:
    """Best time of each variant, the variants taking turns (so a burst of load on this shared
    machine does not fall on one variant only)."""
    best: dict[str, tuple[float, object]] = {}
    for _ in range(repeat):
        for name, fn in variants.items():
            elapsed, result = best_of(1, fn)
            if name not in best or elapsed < best[name][0]:
                best[name] = (elapsed, result)
    return best


def measure(name: str, url: str, start: int, pieces: list[Piece], args: argparse.Namespace
            ) -> None:
    runs = interleaved(args.repeat, {
        "floor": lambda: run_floor(url, pieces, args.workers),
        "naive": lambda: run_naive(url, pieces),
        "ours": lambda: run_ours(url, start, args.workers),
    })
    (t_floor, count), (t_naive, naive), (t_ours, ours) = (runs[k] for k in ("floor", "naive", "ours"))
    assert len(ours) == len(naive) == args.candles, (len(ours), len(naive))
    assert count >= args.candles
    assert (ours["close"].to_numpy() == naive["close"].to_numpy()).all()
    assert (ours.index == naive.index).all()
    print(f"{name}:")
    print(f"  history() (cache off)       {t_ours:6.2f} s")
    print(f"  naive requests + DataFrame  {t_naive:6.2f} s")
    print(f"  floor: transfers + orjson   {t_floor:6.2f} s")
    print(f"  naive / history()           {t_naive / t_ours:6.2f} x   (goal >= 3)")
    print(f"  history() / floor           {t_ours / t_floor:6.2f} x   (goal <= 1.5)")
    with tempfile.TemporaryDirectory() as cache_dir:
        t_fill, _ = best_of(1, lambda: run_ours(url, start, args.workers, cache_dir))
        t_hit, hit = best_of(args.repeat, lambda: run_ours(url, start, args.workers, cache_dir))
    assert hit.equals(ours)
    print(f"  history() filling the cache {t_fill:6.2f} s")
    print(f"  history() from the cache    {t_hit:6.2f} s")


class simulator_process:
    """``invia-data sim --port 0`` as a child process; the context value is its URL."""

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invia_data.cli", "sim", "--port", "0", "--log-level", "ERROR"],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())["url"]

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    start = END - 60 * args.candles
    pieces = split_range(start, END, 60)
    print(f"{args.candles:,} one-minute candles, {len(pieces)} requests of <= "
          f"{(pieces[0][1] - pieces[0][0]) // 60:,} candles, {args.workers} workers, "
          f"best of {args.repeat}")
    with simulator_process() as url:
        measure("simulator in its own process", url, start, pieces, args)
    with sim.run(port=0) as server:
        measure("live simulator (in process)", server.url, start, pieces, args)
        bodies = record(server.url, pieces)
    size = sum(len(v) for (fmt, _, _), v in bodies.items() if fmt == "Slim")
    print(f"recorded {len(bodies)} bodies; Slim {size / 1e6:.0f} MB, Simple "
          f"{(sum(len(v) for v in bodies.values()) - size) / 1e6:.0f} MB")
    replay = Replay(bodies)
    thread = threading.Thread(target=replay.serve_forever, name="replay", daemon=True)
    thread.start()
    try:
        measure("replayed simulator responses", replay.url, start, pieces, args)
    finally:
        replay.shutdown()
        replay.server_close()
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
