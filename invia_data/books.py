"""Figures of a long-form order book (``side``, ``level``, ``price``, ``volume``): the sides
best level first, best bid/ask, spread, mid, imbalance. Pure functions shared by the ladder
widget and the depth plot; the work is done on numpy arrays (a ladder re-renders several
times a second, and per-row pandas access would cost more than the HTML)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .errors import InvalidArgument, InviaWarning

__all__ = ["Sides", "book_sides", "book_stats", "sample_book", "check_depth", "price_decimals", "side_arrays",
           "sides_stats"]


def check_depth(depth: Any, name: str = "depth") -> int:
    """A positive count (order-book levels per side unless ``name`` says otherwise)."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise InvalidArgument(f"{name} must be a positive integer, got {depth!r}")
    return int(depth)


class Sides(NamedTuple):
    """Prices and volumes of each side, best level first (float64 arrays)."""

    bid_price: np.ndarray
    bid_volume: np.ndarray
    ask_price: np.ndarray
    ask_volume: np.ndarray


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    try:
        return pd.to_numeric(df[name]).to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"order-book column {name!r} is not numeric") from exc


def side_arrays(df: pd.DataFrame, depth: int | None = None) -> Sides:
    """A long-form book -> :class:`Sides`, at most ``depth`` levels per side. Sorted by ``level``
    when the column is complete, else by price. Rows without a price are dropped; a missing
    volume counts as 0."""
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgument(f"expected an order-book DataFrame, got {type(df).__name__}")
    missing = [c for c in ("side", "price", "volume") if c not in df.columns]
    if missing:
        raise InvalidArgument(f"order-book frame lacks column(s) {', '.join(missing)}")
    side = np.array([s.lower() if isinstance(s, str) else ""
                     for s in df["side"].to_numpy(dtype=object)], dtype=object)
    price = _column(df, "price")
    volume = np.nan_to_num(_column(df, "volume"), nan=0.0)
    level = _column(df, "level") if "level" in df.columns else None
    has_price = ~np.isnan(price)
    out = []
    for name, descending in (("bid", True), ("ask", False)):
        rows = np.flatnonzero((side == name) & has_price)
        if level is not None and not np.isnan(level[rows]).any():
            key = level[rows]
        else:
            key = -price[rows] if descending else price[rows]
        rows = rows[np.argsort(key, kind="stable")][:depth]
        out += [price[rows], volume[rows]]
    return Sides(*out)


def book_sides(df: pd.DataFrame, depth: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(bids, asks) frames with ``price`` and ``volume``, best level first (see
    :func:`side_arrays`)."""
    s = side_arrays(df, depth)
    return (pd.DataFrame({"price": s.bid_price, "volume": s.bid_volume}),
            pd.DataFrame({"price": s.ask_price, "volume": s.ask_volume}))


def sides_stats(s: Sides) -> dict[str, float]:
    best_bid = float(s.bid_price[0]) if len(s.bid_price) else math.nan
    best_ask = float(s.ask_price[0]) if len(s.ask_price) else math.nan
    spread = best_ask - best_bid
    mid = (best_ask + best_bid) / 2
    bid_volume = float(s.bid_volume.sum())
    ask_volume = float(s.ask_volume.sum())
    total = bid_volume + ask_volume
    return {
        "best_bid": best_bid,
        "best_ask": best_ask,
        "spread": spread,
        "spread_bps": spread / mid * 10_000 if mid else math.nan,
        "mid": mid,
        "weighted_mid": (_vwap(s.bid_price, s.bid_volume) + _vwap(s.ask_price, s.ask_volume)) / 2,
        "microprice": _microprice(s),
        "bid_volume": bid_volume,
        "ask_volume": ask_volume,
        "imbalance": (bid_volume - ask_volume) / total if total > 0 else math.nan,
    }


def _vwap(price: np.ndarray, volume: np.ndarray) -> float:
    total = float(volume.sum())
    return float((price * volume).sum() / total) if total > 0 else math.nan


def _microprice(s: Sides) -> float:
    """The best prices weighted by the opposite side's volume at them: a large bid queue
    pulls the fair price towards the ask (Stoikov's micro-price, first-order form)."""
    if not len(s.bid_price) or not len(s.ask_price):
        return math.nan
    bid_size, ask_size = float(s.bid_volume[0]), float(s.ask_volume[0])
    if bid_size + ask_size <= 0:
        return math.nan
    return (float(s.bid_price[0]) * ask_size + float(s.ask_price[0]) * bid_size) / (
        bid_size + ask_size)


def book_stats(df: pd.DataFrame, depth: int | None = None) -> dict[str, float]:
    """Figures of a long-form order book (``inv.orderbook(...)`` or ``live.df``), over the
    first ``depth`` levels of each side (all levels when None). Undefined figures are NaN.

    * ``best_bid``, ``best_ask``, ``spread`` (and ``spread_bps``, in basis points of ``mid``),
      ``mid`` = (best bid + best ask) / 2;
    * ``weighted_mid``: the mean of the two sides' volume-weighted average prices;
    * ``microprice`` = (best bid x best ask size + best ask x best bid size) / (both sizes):
      the best prices weighted by the opposite queue;
    * ``bid_volume``, ``ask_volume`` and ``imbalance`` = (bid - ask) / (bid + ask) volume.

    Over time, on a live book: :meth:`invia_data.LiveFrame.sample`."""
    if depth is not None:
        depth = check_depth(depth)
    return sides_stats(side_arrays(df, depth))


def price_decimals(prices: Any, most: int = 8) -> int:
    """The fewest decimals that show every price exactly (so a ladder column lines up)."""
    values = np.asarray(prices, dtype="float64")
    values = values[np.isfinite(values)]
    for decimals in range(most + 1):
        scaled = values * 10 ** decimals
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return decimals
    return most


def sample_book(live: Any, every: Any = "1s", duration: Any = "30s", depth: int | None = None,
                *, first_data: float = 10.0, clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep,
                dated: Callable[[], float] = time.time,
                ended: Callable[[], bool] | None = None) -> pd.DataFrame:
    """:func:`book_stats` of a live order book every ``every`` for ``duration`` (anything
    ``pd.Timedelta`` reads: ``"250ms"``, ``"1s"``, ``"2min"``, or seconds), as a frame indexed
    by the UTC time of each sample, with ``book_time`` (the exchange's time of the book shown)
    and the figures as columns. A frame subscribed a moment ago is first given up to
    ``first_data`` seconds to receive its first book; then the sampling blocks for ``duration``,
    not longer. ``clock`` paces the samples, ``dated`` (unix seconds) dates them; a replayed
    book gives its simulated clock for both (``sleep`` then only polls), and ``ended`` (True
    once the replay reached its end): the samples taken by then are returned, with an
    :class:`InviaWarning` saying so."""
    step, span = _seconds(every, "every"), _seconds(duration, "duration")
    if step > span:
        raise InvalidArgument(f"every ({every!r}) is longer than duration ({duration!r})")
    depth = check_depth(depth) if depth is not None else None
    if hasattr(live, "wait"):
        live.wait(0, timeout=first_data)
    start = clock()
    rows: list[dict[str, Any]] = []
    times: list[pd.Timestamp] = []
    count = math.floor(span / step + 1e-9) + 1
    for k in range(count):
        while (wait := start + k * step - clock()) > 0:
            if ended is not None and ended():
                warnings.warn(f"{getattr(live, 'symbol', 'the book')}: the replay ended after "
                              f"{k} of {count} samples ({(k - 1) * step:g} of {span:g} s): "
                              "these are the samples up to its end", InviaWarning, stacklevel=3)
                return _samples_frame(live, rows, times, depth)
            sleep(wait)
        book = live.df
        times.append(pd.Timestamp(round(dated() * 1_000_000), unit="us", tz="UTC"))
        stamp = book.attrs.get("time")
        rows.append({"book_time": pd.Timestamp(stamp) if stamp else pd.NaT,
                     **book_stats(book, depth)})
    return _samples_frame(live, rows, times, depth)


def _samples_frame(live: Any, rows: list[dict[str, Any]], times: list[pd.Timestamp],
                   depth: int | None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, index=pd.DatetimeIndex(times, name="time").as_unit("ns"))
    frame["book_time"] = pd.to_datetime(frame["book_time"], utc=True).astype(
        "datetime64[ns, UTC]")
    frame.attrs = {"symbol": getattr(live, "symbol", None), "depth": depth}
    return frame


def _seconds(value: Any, name: str) -> float:
    try:
        seconds = (float(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                   else pd.Timedelta(value).total_seconds())
    except (ValueError, TypeError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(f"{name} must be a positive duration such as '1s' or 0.5, "
                              f"got {value!r}")
    return seconds
