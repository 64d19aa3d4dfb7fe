"""A PNG of each chart of :mod:`invia_data.plots`, drawn from any client's live data.

``invia-data demo`` draws them from the embedded simulator into its output folder; with
``--pictures docs/pictures`` it refreshes the pictures of the README.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import plots

MSK = "Europe/Moscow"  # the exchange's wall clock on the charts


def _save(out: Path, name: str, draw: Callable[[Any], Any],
          figsize: tuple[float, float] = (10, 5)) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    try:
        draw(ax)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=96)
        return path
    finally:
        plt.close(fig)


def book_series(client: Any, symbol: str, samples: int = 60, pause: float = 0.05) -> pd.DataFrame:
    """Best bid and ask sampled from successive order books (time, bid, ask), for the spread
    chart."""
    rows = []
    for _ in range(samples):
        book = client.orderbook(symbol, depth=1)
        bids, asks = book[book["side"] == "bid"], book[book["side"] == "ask"]
        if len(bids) and len(asks):
            rows.append({"time": book.attrs.get("time"), "bid": bids["price"].iat[0],
                         "ask": asks["price"].iat[0]})
        time.sleep(pause)
    frame = pd.DataFrame(rows, columns=["time", "bid", "ask"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    frame.attrs["symbol"] = symbol
    return frame.drop_duplicates("time")


def make_pictures(client: Any, out: str | Path, symbol: str = "SBER") -> list[Path]:
    """Draw every chart for ``symbol`` (and the portfolio's P&L) into ``out``; the paths."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    now = client.time()  # the server's clock (a simulator runs on its own market time)
    candles = client.history(symbol, tf="5min", start=now - pd.Timedelta(days=1), cache=False)
    candles = candles.tail(120)
    candles.attrs["symbol"] = symbol
    book = client.orderbook(symbol, depth=20)
    trades = client.all_trades(symbol)
    positions = client.positions()
    quotes = book_series(client, symbol)
    written = [
        _save(out, "candles", lambda ax: plots.candles(candles, ax=ax, tz=MSK), (11, 5)),
        _save(out, "depth", lambda ax: plots.depth(book, ax=ax, tz=MSK)),
        _save(out, "spread", lambda ax: plots.spread(quotes, ax=ax, tz=MSK)),
        _save(out, "trade_tape", lambda ax: plots.trade_tape(trades.tail(500), ax=ax, tz=MSK)),
        _save(out, "volume_profile", lambda ax: plots.volume_profile(trades, ax=ax), (6, 6)),
        _save(out, "volume_profile_candles",
              lambda ax: plots.volume_profile(candles, ax=ax), (6, 6)),
        _save(out, "pnl", lambda ax: plots.pnl(positions, ax=ax), (8, 4)),
    ]
    ax = plots.candles(candles, tz=MSK)  # the two-row layout of a new figure
    figure = ax.get_figure(root=True)
    assert figure is not None
    try:
        figure.savefig(out / "candles_with_volume.png", dpi=96)
        written.append(out / "candles_with_volume.png")
    finally:
        plt.close(figure)
    return written
