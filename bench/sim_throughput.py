"""Order-book messages per second that a plain websocket-client recv loop gets from the simulator
(10-level Slim books, firehose) next to a bare aiohttp server sending pre-encoded frames.

    python bench/sim_throughput.py [--seconds 2] [--rounds 5]

Each server runs in its own process (so the client loop has a core of its own), both are
measured in this one run, alternately, and the ratio simulator / bare server is printed (best
round of each, and the median of paired rounds, which resists the load of a shared machine).
Last, each server's capacity: books per second into a socket read without frame parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import orjson
import websocket

ROOT = Path(__file__).resolve().parent.parent


# --- the bare server (runs in a child process) ---------------------------------------------------

def _bare_books(count: int = 256) -> list[bytes]:
    """Distinct 10-level Slim books, encoded once."""
    frames = []
    for i in range(count):
        bids = [{"p": round(300.0 - 0.01 * k, 2), "v": 10 + (i * 7 + k * 13) % 90} for k in range(10)]
        asks = [{"p": round(300.01 + 0.01 * k, 2), "v": 10 + (i * 11 + k * 5) % 90} for k in range(10)]
        data = orjson.dumps({"b": bids, "a": asks, "t": 1_795_000_000_000 + i, "h": False})
        frames.append(b'{"data":' + data + b',"guid":"bench"}')
    return frames


def serve_bare() -> None:
    from aiohttp import WSMsgType, web

    frames = _bare_books()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        await ws.receive()  # the subscribe request
        await ws.send_str('{"message":"Handled successfully","httpCode":200,"requestGuid":"bench"}')
        try:
            while not ws.closed:
                for frame in frames:
                    await ws.send_frame(frame, WSMsgType.TEXT)
                await asyncio.sleep(0)
        except ConnectionError:
            pass
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/cws", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(orjson.dumps({"ws_url": f"ws://127.0.0.1:{port}/cws"}).decode(), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the measurement ------------------------------------------------------------------------------

def start(command: list[str]) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=ROOT)
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        process.kill()
        raise SystemExit(f"server did not start: {' '.join(command)}")
    return process, orjson.loads(line)


def token_for(info: dict) -> str:
    import requests

    response = requests.post(f"{info['auth_url']}/refresh", params={"token": info["refresh_token"]},
                             timeout=10)
    response.raise_for_status()
    return response.json()["AccessToken"]


def books_per_second(ws_url: str, token: str, seconds: float) -> float:
    ws = websocket.create_connection(ws_url, timeout=10, skip_utf8_validation=True)
    try:
        ws.send(orjson.dumps({"opcode": "OrderBookGetAndSubscribe", "guid": "bench", "token": token,
                              "code": "SBER", "exchange": "MOEX", "depth": 10, "format": "Slim",
                              "frequency": 0}).decode())
        ws.recv()  # the 200 result
        for _ in range(1000):  # warm-up
            ws.recv()
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            ws.recv()
            count += 1
            if count % 1000 == 0 and time.perf_counter() > deadline:
                break
        return count / (time.perf_counter() - started)
    finally:
        ws.close()


def server_capacity(ws_url: str, token: str, seconds: float) -> float:
    """Books per second a server pushes into a socket drained in C (no frame parsing): how
    far the server is from being the bottleneck."""
    ws = websocket.create_connection(ws_url, timeout=10, skip_utf8_validation=True)
    try:
        ws.send(orjson.dumps({"opcode": "OrderBookGetAndSubscribe", "guid": "bench", "token": token,
                              "code": "SBER", "exchange": "MOEX", "depth": 10, "format": "Slim",
                              "frequency": 0}).decode())
        ws.recv()
        frame_size = len(ws.recv()) + 4  # payload plus the frame header
        received = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            received += len(ws.sock.recv(1 << 20))
        return received / frame_size / (time.perf_counter() - started)
    finally:
        ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per server")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        serve_bare()
        return

    sim_process, sim_info = start([sys.executable, "-m", "invia_data.cli", "sim", "--port", "0",
                                   "--firehose", "--log-level", "WARNING",
                                   "--start", "2026-11-18 12:00"])  # inside a main session
    bare_process, bare_info = start([sys.executable, __file__, "--bare-server"])
    try:
        token = token_for(sim_info)
        sim_rates, bare_rates = [], []
        for _ in range(args.rounds):
            bare_rates.append(books_per_second(bare_info["ws_url"], "", args.seconds))
            sim_rates.append(books_per_second(sim_info["ws_url"], token, args.seconds))
        bare, sim = max(bare_rates), max(sim_rates)
        paired = sorted(s / b for s, b in zip(sim_rates, bare_rates, strict=True))
        print(f"bare aiohttp server : {bare:10,.0f} books/s  (rounds: {', '.join(f'{r:,.0f}' for r in bare_rates)})")
        print(f"simulator (firehose): {sim:10,.0f} books/s  (rounds: {', '.join(f'{r:,.0f}' for r in sim_rates)})")
        print(f"ratio simulator/bare: {sim / bare:.2f} (best of each); "
              f"median of paired rounds {paired[len(paired) // 2]:.2f}")
        bare_cap = server_capacity(bare_info["ws_url"], "", args.seconds)
        sim_cap = server_capacity(sim_info["ws_url"], token, args.seconds)
        print(f"server capacity into a raw socket: bare {bare_cap:,.0f} books/s, "
              f"simulator {sim_cap:,.0f} books/s (ratio {sim_cap / bare_cap:.1f})")
    finally:
        for process in (sim_process, bare_process):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
