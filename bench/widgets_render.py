"""What the display layer costs, measured in one run (no simulator, no network).

* ladder: ``render_ladder`` of a 50-level book vs ``DataFrame.to_html`` of the same book (a
  plain table without bars or cumulative volume), and the CPU share of one ladder at 4 Hz.
* refresher: one pass over N idle widgets (frames whose version does not change), and the CPU
  share of the refresher thread at its 20 passes a second.
* candles: drawing and rendering N candles with one ``PolyCollection`` + one ``vlines`` (what
  ``plots.candles`` does) vs one ``ax.bar`` patch per body.

    python bench/widgets_render.py [--depth 50] [--widgets 100] [--candles 5000]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from invia_data import plots, widgets  # noqa: E402


def best_of(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Seconds per call, the best of ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def book(depth: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = [("bid", i, round(250.10 - 0.01 * i, 2), int(rng.integers(1, 500)))
            for i in range(depth)]
    rows += [("ask", i, round(250.12 + 0.01 * i, 2), int(rng.integers(1, 500)))
             for i in range(depth)]
    return pd.DataFrame(rows, columns=["side", "level", "price", "volume"])


class Idle:
    kind, symbol, params, error, age, status, version = "orderbook", "X", {}, None, 0.1, "live", 1

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df


def candles(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    close = 250 + np.cumsum(rng.normal(0, 0.1, n))
    open_ = np.r_[250.0, close[:-1]]
    index = pd.date_range("2025-01-06 07:00", periods=n, freq="1min", tz="UTC", name="time")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + 0.05,
                         "low": np.minimum(open_, close) - 0.05, "close": close,
                         "volume": rng.integers(1, 100, n)}, index=index)


def draw_collections(df: pd.DataFrame) -> None:
    fig = Figure(figsize=(10, 5))
    plots.candles(df, ax=fig.add_subplot(), volume=False)
    fig.savefig(io.BytesIO(), format="png")


def draw_patches(df: pd.DataFrame) -> None:
    fig = Figure(figsize=(10, 5))
    ax = fig.add_subplot()
    x = plots.mdates.date2num(df.index.tz_localize(None).to_numpy())
    o, c = df["open"].to_numpy(), df["close"].to_numpy()
    colors = np.where(c >= o, plots.UP, plots.DOWN)
    ax.vlines(x, df["low"], df["high"], colors=colors)
    ax.bar(x, np.abs(c - o), bottom=np.minimum(o, c), width=0.7 / 1440, color=colors)
    fig.savefig(io.BytesIO(), format="png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--widgets", type=int, default=100)
    parser.add_argument("--candles", type=int, default=5000)
    args = parser.parse_args(argv)
    out = sys.stdout.write

    frame = book(args.depth)
    ladder = best_of(lambda: widgets.render_ladder(frame, args.depth), 3, 50)
    table = best_of(lambda: frame.to_html(), 3, 50)
    out(f"ladder, {args.depth} levels a side: render_ladder {ladder * 1e3:.2f} ms, "
        f"to_html {table * 1e3:.2f} ms (ratio {ladder / table:.2f}); "
        f"one ladder at 4 Hz uses {ladder * 4 * 100:.2f} % of a core\n")

    refresher = widgets.Refresher(autostart=False)
    made = [widgets.orderbook_widget(Idle(frame), depth=10, refresher=refresher)
            for _ in range(args.widgets)]
    refresher.tick(0.0)  # first renders
    clock = iter(np.arange(1.0, 1e6, 0.05))
    idle = best_of(lambda: refresher.tick(float(next(clock))), 3, 100)
    out(f"refresher, {args.widgets} idle widgets: {idle * 1e6:.0f} us a pass, "
        f"{idle * 20 * 100:.2f} % of a core at 20 passes a second\n")
    for w in made:
        w.close()

    data = candles(args.candles)
    fast = best_of(lambda: draw_collections(data), 2, 1)
    slow = best_of(lambda: draw_patches(data), 2, 1)
    out(f"candles, {args.candles} drawn to PNG: collections {fast:.3f} s, one patch per bar "
        f"{slow:.3f} s (ratio {slow / fast:.1f}x)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
