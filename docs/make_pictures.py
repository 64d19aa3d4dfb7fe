"""Save a PNG of each chart of ``invia_data.plots`` into ``docs/pictures/``, drawn from live data
of the embedded simulator (no account, no network)::

    python docs/make_pictures.py                 # docs/pictures/*.png for SBER
    python docs/make_pictures.py --out /tmp/pics --symbol GAZP

``make_pictures(client, out, symbol)`` does the same with any client (``invia-data demo`` calls
it); it returns the paths written.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import invia_data  # noqa: E402
import invia_data.sim  # noqa: E402
from invia_data import plots  # noqa: E402


def _save(out: Path, name: str, draw: Callable[[Any], Any],
          figsize: tuple[float, float] = (10, 5)) -> Path:
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    try:
        draw(ax)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=96)
        return path
    finally:
        plt.close(fig)


def _book_series(client: Any, symbol: str, samples: int, pause: float) -> pd.DataFrame:
    """Best bid and ask sampled from successive order books, for the spread chart."""
    rows = []
    for _ in range(samples):
        book = client.orderbook(symbol, depth=1)
        bids, asks = book[book["side"] == "bid"], book[book["side"] == "ask"]
        if len(bids) and len(asks):
            rows.append({"time": book.attrs.get("time"), "bid": bids["price"].iat[0],
                         "ask": asks["price"].iat[0]})
        time.sleep(pause)
    frame = pd.DataFrame(rows, columns=["time", "bid", "ask"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame.attrs["symbol"] = symbol
    return frame.drop_duplicates("time")


def make_pictures(client: Any, out: str | Path = HERE / "pictures",
                  symbol: str = "SBER") -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    now = pd.Timestamp.now(tz="UTC")
    candles = client.history(symbol, tf="5min", start=now - pd.Timedelta(days=1), cache=False)
    candles = candles.tail(120)
    candles.attrs["symbol"] = symbol
    book = client.orderbook(symbol, depth=20)
    trades = client.all_trades(symbol)
    positions = client.positions()
    quotes = _book_series(client, symbol, samples=60, pause=0.05)
    written = [
        _save(out, "candles", lambda ax: plots.candles(candles, ax=ax), (11, 5)),
        _save(out, "depth", lambda ax: plots.depth(book, ax=ax)),
        _save(out, "spread", lambda ax: plots.spread(quotes, ax=ax)),
        _save(out, "trade_tape", lambda ax: plots.trade_tape(trades.tail(500), ax=ax)),
        _save(out, "volume_profile", lambda ax: plots.volume_profile(trades, ax=ax), (6, 6)),
        _save(out, "volume_profile_candles",
              lambda ax: plots.volume_profile(candles, ax=ax), (6, 6)),
        _save(out, "pnl", lambda ax: plots.pnl(positions, ax=ax), (8, 4)),
    ]
    ax = plots.candles(candles)  # the two-row layout of a new figure
    try:
        ax.figure.savefig(out / "candles_with_volume.png", dpi=96)
        written.append(out / "candles_with_volume.png")
    finally:
        plt.close(ax.figure)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "pictures"))
    parser.add_argument("--symbol", default="SBER")
    args = parser.parse_args(argv)
    # a market clock 30x faster than real time gives the spread chart minutes of quotes
    with invia_data.sim.run(port=0, seed=1, speed=30.0) as server, \
            invia_data.connect(server.refresh_token, base_url=server.url,
                               auth_url=server.auth_url, ws_url=server.ws_url) as client:
        for path in make_pictures(client, args.out, args.symbol):
            sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
