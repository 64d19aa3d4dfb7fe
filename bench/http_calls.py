"""HTTP client costs against the simulator, as ratios measured in one run.

    python bench/http_calls.py

* the rate limiter: measured pace of 200 calls at rate_limit=100 over the target pace;
* the client's own cost: one ``inv.time()`` (seam, limiter, token, orjson, log) over a bare
  ``requests`` GET of the same route on the same session;
* frames from all trades: 50 000 past-session trades in Slim and in Heavy (transfer and
  conversion), and the conversion alone over the whole call.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
import pandas as pd  # noqa: E402

import invia_data  # noqa: E402
from invia_data import sim  # noqa: E402
from invia_data.frames import to_frame  # noqa: E402
from invia_data.schema import TRADE  # noqa: E402


def timed(fn, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def interleaved(first, second, repeat: int) -> tuple[float, float]:
    """Median seconds of two functions sampled alternately (a shared machine drifts)."""
    a, b = [], []
    for _ in range(repeat):
        for fn, samples in ((first, a), (second, b)):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
    return statistics.median(a), statistics.median(b)


def main() -> None:
    with sim.run(port=0, seed=1) as server:
        kwargs = dict(base_url=server.url, auth_url=server.auth_url, ws_url=server.ws_url)
        with invia_data.connect(server.refresh_token, rate_limit=100.0, **kwargs) as paced:
            paced.time()
            started = time.perf_counter()
            for _ in range(200):
                paced.time()
            pace = 200 / (time.perf_counter() - started)
            print(f"rate limiter: {pace:.1f} calls/s at rate_limit=100 "
                  f"(ratio to target {pace / 100:.3f}; limiter slept {paced.http.limiter.waited:.2f} s)")

        with invia_data.connect(server.refresh_token, rate_limit=None, **kwargs) as inv:
            session = inv.http.session
            headers = {"Authorization": f"Bearer {inv.tokens.token()}"}
            url = f"{server.url}/md/v2/time"
            bare, ours = interleaved(
                lambda: orjson.loads(session.get(url, headers=headers, timeout=30).content),
                inv.time, 300)
            print(f"client call vs bare requests GET: {ours * 1e6:.0f} us vs {bare * 1e6:.0f} us "
                  f"(ratio {ours / bare:.2f})")

            end = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=3)
            start = end - pd.Timedelta(days=7)
            results = {}
            for fmt in ("Slim", "Heavy"):
                call = timed(lambda f=fmt: inv.all_trades("SBER", start, end, history=True,
                                                          limit=50_000, format=f), 3)
                body = inv.http.get("/md/v2/Securities/MOEX/SBER/alltrades/history",
                                    {"from": int(start.timestamp()), "to": int(end.timestamp()),
                                     "limit": 50_000, "format": fmt})
                convert = timed(lambda b=body, f=fmt: to_frame(TRADE, b["list"], f,
                                                               index="time"), 3)
                results[fmt] = call
                print(f"all_trades 50k {fmt}: {call * 1000:.0f} ms per call, "
                      f"of which frame conversion {convert * 1000:.0f} ms "
                      f"({convert / call:.2f} of the call)")
            print(f"Heavy over Slim for 50k trades: {results['Heavy'] / results['Slim']:.2f}")


if __name__ == "__main__":
    main()
