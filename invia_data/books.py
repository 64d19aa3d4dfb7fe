"""Figures of a long-form order book (``side``, ``level``, ``price``, ``volume``): the sides
best level first, best bid/ask, spread, mid, imbalance. Pure functions shared by the ladder
widget and the depth plot."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidArgument

__all__ = ["book_sides", "book_stats", "check_levels", "price_decimals"]


def check_levels(levels: Any, name: str = "levels") -> int:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise InvalidArgument(f"{name} must be a positive integer, got {levels!r}")
    return int(levels)


def book_sides(df: pd.DataFrame, levels: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A long-form book -> (bids, asks), each with ``price`` and ``volume``, best level first,
    at most ``levels`` rows. Rows without a price are dropped; a missing volume counts as 0."""
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgument(f"expected an order-book DataFrame, got {type(df).__name__}")
    missing = [c for c in ("side", "price", "volume") if c not in df.columns]
    if missing:
        raise InvalidArgument(f"order-book frame lacks column(s) {', '.join(missing)}")
    side = df["side"].astype("string").str.lower()
    out = []
    for name, best_first_desc in (("bid", True), ("ask", False)):
        part = df.loc[(side == name).fillna(False).to_numpy()]
        part = part[part["price"].notna()]
        if "level" in part.columns and part["level"].notna().all():
            part = part.sort_values("level", kind="stable")
        else:
            part = part.sort_values("price", ascending=not best_first_desc, kind="stable")
        if levels is not None:
            part = part.head(levels)
        out.append(pd.DataFrame({
            "price": part["price"].astype("float64").to_numpy(),
            "volume": pd.to_numeric(part["volume"]).astype("Float64").fillna(0)
                        .to_numpy(dtype="float64"),
        }))
    return out[0], out[1]


def book_stats(df: pd.DataFrame, levels: int | None = None) -> dict[str, float]:
    """Best bid/ask, spread (absolute and in basis points of mid), mid and the volume
    imbalance ``(bid volume - ask volume) / (bid volume + ask volume)`` over the first
    ``levels`` levels of each side (all levels when None). Undefined figures are NaN."""
    if levels is not None:
        levels = check_levels(levels)
    bids, asks = book_sides(df, levels)
    best_bid = float(bids["price"].iloc[0]) if len(bids) else math.nan
    best_ask = float(asks["price"].iloc[0]) if len(asks) else math.nan
    spread = best_ask - best_bid
    mid = (best_ask + best_bid) / 2
    bid_volume = float(bids["volume"].sum())
    ask_volume = float(asks["volume"].sum())
    total = bid_volume + ask_volume
    return {
        "best_bid": best_bid,
        "best_ask": best_ask,
        "spread": spread,
        "spread_bps": spread / mid * 10_000 if mid else math.nan,
        "mid": mid,
        "bid_volume": bid_volume,
        "ask_volume": ask_volume,
        "imbalance": (bid_volume - ask_volume) / total if total > 0 else math.nan,
    }


def price_decimals(prices: Any, most: int = 8) -> int:
    """The fewest decimals that show every price exactly (so a ladder column lines up)."""
    values = np.asarray(prices, dtype="float64")
    values = values[np.isfinite(values)]
    for decimals in range(most + 1):
        scaled = values * 10 ** decimals
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return decimals
    return most


