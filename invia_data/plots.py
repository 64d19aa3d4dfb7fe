"""matplotlib charts of invia-data frames: candles, order-book depth, spread, trade tape, volume
profile, unrealised P&L.

Every function takes ``ax=`` (draws into it, or into a new figure when None) and returns the
axes it drew the main series in; none calls ``plt.show()``. Times are shown in the zone of the
frame (UTC, as the calls return it, or what their ``tz=`` asked for); ``tz=`` converts the axes
as it converts a call's frame (``tz="Europe/Moscow"`` for the exchange's wall clock), and the
axis label names the zone.
Prices are labelled "price, RUB" when the frame's ``attrs["currency"]`` is known. An empty
frame gives an empty, labelled axes with a "no data" note. A ``LiveFrame`` is drawn as its
snapshot ``.df`` of the moment. Wrong input raises
:class:`~invia_data.errors.InvalidArgument` before anything is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection

from . import timeframes
from .books import book_sides, book_stats, check_depth
from .errors import InvalidArgument
from .stream.live import LiveFrame
from .times import check_tz

__all__ = [
    "candles",
    "depth",
    "live_candles",
    "pnl",
    "spread",
    "trade_tape",
    "volume_profile",
]

EXCHANGE_TZ = "Europe/Moscow"
UP = "#1e8e3e"
DOWN = "#d93025"
NEUTRAL = "#80868b"
MID = "#5f6368"
TIME_COLUMNS = ("time", "ob_time", "last_price_time")


# --- shared pieces -------------------------------------------------------------------------------


def _check_frame(df: Any, what: str, required: Sequence[str] = ()) -> pd.DataFrame:
    if isinstance(df, LiveFrame):
        df = df.df  # the snapshot of now
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgument(f"{what} must be a DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InvalidArgument(f"{what} frame lacks column(s) {', '.join(missing)}")
    return df


def _check_ax(ax: Any) -> None:
    if ax is not None and not isinstance(ax, Axes):
        raise InvalidArgument(f"ax must be a matplotlib Axes, got {type(ax).__name__}")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (10, 5)) -> Axes:
    _check_ax(ax)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _times(df: pd.DataFrame, what: str) -> pd.DatetimeIndex:
    """The time of each row: a DatetimeIndex, else the first time column present."""
    if isinstance(df.index, pd.DatetimeIndex):
        values = df.index
    else:
        name = next((c for c in TIME_COLUMNS if c in df.columns), None)
        if name is None:
            raise InvalidArgument(f"{what} frame needs a DatetimeIndex or a 'time' column")
        values = pd.DatetimeIndex(pd.to_datetime(df[name]))
    if values.tz is None:  # the library's frames are UTC; a naive index is read as UTC
        values = values.tz_localize("UTC")
    return values


def _zone(df: pd.DataFrame, tz: Any, what: str) -> Any:
    """``tz`` when given (checked), else the zone of the frame's own times, so the axes show
    what the frame holds."""
    if tz is not None:
        return check_tz(tz)
    try:
        return _times(df, what).tz
    except InvalidArgument:
        return "UTC"


def _local(times: pd.DatetimeIndex, tz: Any) -> np.ndarray:
    """UTC times -> matplotlib date numbers of the wall-clock time in ``tz``."""
    wall = times.tz_convert(tz).tz_localize(None)
    return mdates.date2num(wall.to_numpy())


def _tz_name(tz: Any) -> str:
    return str(getattr(tz, "key", tz))


def _time_axis(ax: Axes, tz: Any) -> None:
    ax.xaxis_date()
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(f"time ({_tz_name(tz)})")


def _plain_numbers(ax: Axes, axis: Literal["both", "x", "y"] = "y") -> None:
    """Prices as they are (250.12), not as an offset from 2.5e2."""
    try:
        ax.ticklabel_format(axis=axis, useOffset=False, style="plain")
    except AttributeError:  # a non-scalar formatter set by the caller
        pass


def _tick(prices: np.ndarray) -> float:
    """The price step seen in the data (0 when fewer than two distinct prices)."""
    levels = np.unique(np.round(prices, 9))
    return float(np.min(np.diff(levels))) if len(levels) > 1 else 0.0


def _price_label(df: pd.DataFrame, what: str = "price") -> str:
    currency = df.attrs.get("currency")
    return f"{what}, {currency}" if currency else what


def _symbol(df: pd.DataFrame) -> str:
    symbol = df.attrs.get("symbol")
    if not symbol and "symbol" in df.columns and len(df):
        values = df["symbol"].dropna().unique()
        symbol = values[0] if len(values) == 1 else ""
    return str(symbol or "")


def _title(ax: Axes, title: str | None, default: str) -> None:
    ax.set_title(title if title is not None else default.strip(" ·"))


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
            color=NEUTRAL, fontsize=12)


def _boxes(x: np.ndarray, bottom: np.ndarray, top: np.ndarray, width: float,
           colors: Sequence[str] | np.ndarray, faces: Sequence[str] | np.ndarray | None = None,
           **kwargs: Any) -> PolyCollection:
    """One collection of rectangles: far faster to draw than one patch per bar."""
    left, right = x - width / 2, x + width / 2
    verts = np.stack([np.column_stack([left, bottom]), np.column_stack([left, top]),
                      np.column_stack([right, top]), np.column_stack([right, bottom])], axis=1)
    return PolyCollection(list(verts), facecolors=colors if faces is None else faces,
                          edgecolors=colors, **kwargs)


def _interval_seconds(df: pd.DataFrame, times: pd.DatetimeIndex) -> float:
    """The candle interval the data shows: the median step of the times. ``attrs["tf"]`` is
    used when it agrees (within half) or when there is one candle: pandas carries ``attrs``
    through ``resample``, so a frame resampled to 15 minutes may still say ``"1min"``."""
    tf = _attrs_seconds(df)
    step = _median_step(times)
    if step is None:
        return tf or 60.0
    return tf if tf and abs(step - tf) <= tf / 2 else step


def _interval_label(df: pd.DataFrame) -> str:
    tf = _attrs_seconds(df)
    try:
        step = _median_step(_times(df, "candle"))
    except InvalidArgument:
        step = None
    seconds = tf if step is None or (tf and abs(step - tf) <= tf / 2) else step
    return timeframes.label(int(round(seconds))) if seconds else ""


def _attrs_seconds(df: pd.DataFrame) -> float | None:
    tf = df.attrs.get("tf")
    if tf is None:
        return None
    try:
        return float(timeframes.to_seconds(tf))
    except InvalidArgument:
        return None


def _median_step(times: pd.DatetimeIndex) -> float | None:
    if len(times) < 2:
        return None
    steps = np.diff(times.as_unit("ns").asi8) / 1e9  # whatever unit the index holds
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else None


# --- candles -----------------------------------------------------------------------------------


def candles(df: pd.DataFrame, ax: Axes | None = None, volume: bool = True,
            tz: Any = None, title: str | None = None) -> Axes:
    """Candlesticks (wicks as one ``vlines`` collection, bodies as one ``PolyCollection``, width
    70 % of the candle interval) with the volume under them.

    ``df``: a candle frame (``inv.history(...)``): a DatetimeIndex (or a ``time`` column) and
    ``open``/``high``/``low``/``close`` (and ``volume``). The interval comes from
    ``df.attrs["tf"]`` when present, else from the smallest time step. A candle whose
    ``is_closed`` is False (the open candle of a live bars frame) is drawn hollow.

    With ``ax=None`` a new figure is made with two rows: prices on top (the axes returned) and
    volume below, sharing the time axis (``ax.figure.axes[1]``). With ``ax`` given, the volume
    bars go on a twin axis of ``ax`` (``ax.figure.axes[-1]``), scaled to its lower fifth.
    """
    df = _one_symbol(_check_frame(df, "candle", ("open", "high", "low", "close")))
    tz = _zone(df, tz, "candle")
    _check_ax(ax)
    with_volume = bool(volume) and "volume" in df.columns
    if ax is None:
        if with_volume:
            _, (ax, vax) = plt.subplots(2, 1, sharex=True, figsize=(11, 6),
                                        gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
        else:
            _, ax = plt.subplots(figsize=(11, 5))
            vax = None
        below = True
    else:
        vax = ax.twinx() if with_volume else None
        below = False
    draw_candles(ax, df, vax=vax, volume_below=below, tz=tz, title=title)
    return ax


def _one_symbol(df: pd.DataFrame) -> pd.DataFrame:
    """A (symbol, time) frame of ``history([...])`` holding one symbol -> its time-indexed
    frame with ``attrs["symbol"]``; several symbols are refused (which one to draw?)."""
    if not isinstance(df.index, pd.MultiIndex) or "symbol" not in df.index.names:
        return df
    symbols = df.index.get_level_values("symbol").unique()
    if len(symbols) > 1:
        raise InvalidArgument(f"candles draws one symbol; the frame holds {len(symbols)}: "
                              f"pass df.loc[{str(symbols[0])!r}]")
    attrs = dict(df.attrs)
    out = df.droplevel("symbol")
    out.attrs = {**attrs, "symbol": attrs.get("symbol") or (str(symbols[0]) if len(symbols)
                                                             else None)}
    return out


def draw_candles(ax: Axes, df: pd.DataFrame, *, vax: Axes | None = None,
                 volume_below: bool = True, tz: Any = None,
                 title: str | None = None) -> None:
    """Draw candles into ``ax`` (and volume into ``vax``), both assumed empty."""
    tz = _zone(df, tz, "candle")
    symbol, tf = _symbol(df), _interval_label(df)
    default_title = " · ".join(p for p in (symbol, tf) if p)
    _title(ax, title, default_title or "candles")
    ax.set_ylabel(_price_label(df))
    _plain_numbers(ax)
    clean = df.dropna(subset=["open", "high", "low", "close"])
    time_ax = vax if (vax is not None and volume_below) else ax
    _time_axis(time_ax, tz)
    if time_ax is not ax:
        ax.set_xlabel("")
    if vax is not None:
        vax.set_ylabel("volume, lots")
        if not volume_below:  # a twin that was cleared for a redraw forgets its side
            vax.yaxis.tick_right()
            vax.yaxis.set_label_position("right")
    if clean.empty:
        _no_data(ax)
        return
    times = _times(clean, "candle")
    x = _local(times, tz)
    width = 0.7 * _interval_seconds(df, times) / 86_400
    o, h, low, c = (clean[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close"))
    colors = np.where(c >= o, UP, DOWN)
    ax.vlines(x, low, h, colors=list(colors), linewidth=0.8, zorder=2)
    faces = colors
    if "is_closed" in clean.columns:  # a live frame's open candle is drawn hollow
        still_open = ~clean["is_closed"].astype("boolean").fillna(True).to_numpy(dtype=bool)
        faces = np.where(still_open, "white", colors)
    bodies = _boxes(x, np.minimum(o, c), np.maximum(o, c), width, colors, faces,
                    linewidths=0.8, zorder=3)
    ax.add_collection(bodies)
    ax.autoscale_view()
    if vax is not None:
        vol = pd.to_numeric(clean["volume"]).to_numpy(dtype="float64", na_value=0.0)
        vax.add_collection(_boxes(x, np.zeros_like(vol), vol, width, colors, alpha=0.5,
                                  linewidths=0))
        vax.autoscale_view()
        top = float(np.nanmax(vol)) if len(vol) else 0.0
        if not volume_below and top > 0:
            vax.set_ylim(0, top * 5)  # bars in the lower fifth, under the candles
            vax.set_zorder(ax.get_zorder() - 1)
            ax.patch.set_visible(False)
        elif top > 0:
            vax.set_ylim(0, top * 1.05)


# --- order book ----------------------------------------------------------------------------------


def depth(book_df: pd.DataFrame, ax: Axes | None = None, depth: int | None = None,
          tz: Any = None, title: str | None = None) -> Axes:
    """Order-book depth: cumulative volume from the best level outwards as steps (bids green to
    the left, asks red to the right) with a dashed line at mid. ``book_df`` is the long-form
    book (``inv.orderbook()``, ``book.df``); ``depth`` limits the levels of each side."""
    book_df = _check_frame(book_df, "order-book", ("side", "price", "volume"))
    if depth is not None:
        depth = check_depth(depth)
    tz = check_tz(tz)
    ax = _axes(ax)
    bids, asks = book_sides(book_df, depth)
    when = book_df.attrs.get("time")
    stamp = ""
    if when is not None and not pd.isna(when):
        when = pd.Timestamp(when)  # an ISO string with its offset, as the calls write it
        when = when.tz_localize("UTC") if when.tzinfo is None else when
        stamp = (when if tz is None else when.tz_convert(tz)).strftime("%Y-%m-%d %H:%M:%S")
    symbol = _symbol(book_df)
    _title(ax, title, " · ".join(p for p in (f"{symbol} order book".strip(), stamp) if p))
    ax.set_xlabel(_price_label(book_df))
    ax.set_ylabel("cumulative volume, lots")
    _plain_numbers(ax, "x")
    if bids.empty and asks.empty:
        _no_data(ax)
        return ax
    if len(bids):
        x = bids["price"].to_numpy()[::-1]  # ascending prices, farthest bid first
        y = bids["volume"].cumsum().to_numpy()[::-1]
        ax.step(x, y, where="pre", color=UP, label="bids")
        ax.fill_between(x, y, step="pre", color=UP, alpha=0.25)
    if len(asks):
        x = asks["price"].to_numpy()
        y = asks["volume"].cumsum().to_numpy()
        ax.step(x, y, where="post", color=DOWN, label="asks")
        ax.fill_between(x, y, step="post", color=DOWN, alpha=0.25)
    mid = book_stats(book_df, depth)["mid"]
    if math.isfinite(mid):
        ax.axvline(mid, color=MID, linestyle="--", linewidth=1, label=f"mid {mid:g}")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper center")
    return ax


def _best_quotes(df: pd.DataFrame) -> pd.DataFrame:
    """A frame of quotes (bid/ask columns) or of stacked long-form books (side, price and a
    time per row) -> bid, ask indexed by UTC time, sorted. A book's ``sample()`` (``best_bid``,
    ``best_ask``) reads as quotes."""
    if not {"bid", "ask"} & set(df.columns) and {"best_bid", "best_ask"} <= set(df.columns):
        df = df.rename(columns={"best_bid": "bid", "best_ask": "ask"})
    if {"bid", "ask"} <= set(df.columns):
        times = _times(df, "quote")
        out = pd.DataFrame({"bid": pd.to_numeric(df["bid"]).to_numpy(dtype="float64",
                                                                        na_value=np.nan),
                            "ask": pd.to_numeric(df["ask"]).to_numpy(dtype="float64",
                                                                        na_value=np.nan)},
                           index=times)
    elif {"side", "price"} <= set(df.columns):
        times = _times(df, "order-book")
        side = df["side"].astype("string").str.lower().to_numpy()
        price = pd.to_numeric(df["price"]).to_numpy(dtype="float64", na_value=np.nan)
        long = pd.DataFrame({"side": side, "price": price}, index=times)
        bid = long[long["side"] == "bid"].groupby(level=0)["price"].max()
        ask = long[long["side"] == "ask"].groupby(level=0)["price"].min()
        out = pd.DataFrame({"bid": bid, "ask": ask})
    else:
        raise InvalidArgument("spread needs a frame with bid and ask columns (quotes, or a "
                              "book's sample()), or stacked order books (side, price and a "
                              "time per row)")
    return out[out["bid"].notna() | out["ask"].notna()].sort_index()


def spread(quotes_or_books_df: pd.DataFrame, ax: Axes | None = None, tz: Any = None,
           title: str | None = None) -> Axes:
    """Mid and the bid-ask band over time on ``ax`` (returned), the spread on a twin axis
    (``ax.figure.axes[-1]``). Input: quotes with ``bid``/``ask`` and a time (DatetimeIndex,
    ``time`` or ``ob_time`` column), a book's ``sample()`` (``best_bid``/``best_ask``), or
    stacked long-form books with a ``time`` column."""
    df = _check_frame(quotes_or_books_df, "quote")
    check_tz(tz)
    ax = _axes(ax)
    quotes = _best_quotes(df)
    tz = _zone(quotes, tz, "quote")
    symbol = _symbol(df)
    _title(ax, title, f"{symbol} spread and mid".strip())
    _time_axis(ax, tz)
    ax.set_ylabel(_price_label(df, "mid"))
    _plain_numbers(ax)
    sax = ax.twinx()
    sax.set_ylabel(_price_label(df, "spread"))
    if quotes.empty:
        _no_data(ax)
        return ax
    x = _local(pd.DatetimeIndex(quotes.index), tz)
    bid, ask = quotes["bid"].to_numpy(), quotes["ask"].to_numpy()
    mid = (bid + ask) / 2
    ax.fill_between(x, bid, ask, step="post", color=NEUTRAL, alpha=0.25, label="bid-ask")
    ax.step(x, mid, where="post", color="#1a73e8", linewidth=1.2, label="mid")
    sax.step(x, ask - bid, where="post", color="#e37400", linewidth=0.9, alpha=0.8,
             label="spread")
    widest = float(np.nanmax(ask - bid)) if np.isfinite(ask - bid).any() else 0.0
    if widest > 0:
        sax.set_ylim(0, widest * 2.5)  # the spread in the lower part, under the prices
    else:
        sax.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = sax.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left")
    return ax


# --- trades ------------------------------------------------------------------------------------


SIDE_COLORS = {"buy": UP, "sell": DOWN}


def trade_tape(trades_df: pd.DataFrame, ax: Axes | None = None, tz: Any = None,
               title: str | None = None, max_size: float = 200.0) -> Axes:
    """Trades as dots over time: y the price, area proportional to the quantity (the largest
    trade gets ``max_size`` points^2), green buys, red sells, grey when the side is unknown.
    One scatter collection per side, in the legend."""
    df = _check_frame(trades_df, "trade", ("price", "qty"))
    tz = _zone(df, tz, "trade")
    ax = _axes(ax)
    symbol = _symbol(df)
    clean = df[df["price"].notna()]
    count = f"{len(clean):,} trades"
    _title(ax, title, f"{symbol} · {count}" if symbol else count)
    _time_axis(ax, tz)
    ax.set_ylabel(_price_label(df))
    _plain_numbers(ax)
    if clean.empty:
        _no_data(ax)
        return ax
    x = _local(_times(clean, "trade"), tz)
    qty = pd.to_numeric(clean["qty"]).to_numpy(dtype="float64", na_value=0.0)
    sizes = 4 + max_size * qty / qty.max() if qty.max() > 0 else np.full(len(qty), 8.0)
    sides = (clean["side"].astype("string").str.lower().fillna("").to_numpy()
             if "side" in clean.columns else np.full(len(clean), ""))
    price = clean["price"].to_numpy(dtype="float64")
    for side in ("buy", "sell", ""):
        mask = sides == side if side else ~np.isin(sides, ("buy", "sell"))
        if mask.any():
            ax.scatter(x[mask], price[mask], s=sizes[mask], color=SIDE_COLORS.get(side, NEUTRAL),
                       alpha=0.6, linewidths=0, label=side or "unknown")
    ax.legend(loc="upper left", markerscale=0.6)
    return ax


def _histogram_edges(low: float, high: float, bins: Any, tick: float = 0.0) -> np.ndarray:
    """Bin edges; with a price ``tick`` known, bins are whole numbers of ticks centred on
    prices, so no bin straddles a tick and none falls between two."""
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise InvalidArgument(f"bins must be positive, got {bins!r}")
        if tick > 0:
            width = tick * math.ceil(round((high - low) / tick + 1, 6) / bins)
            count = math.ceil(round((high - low + tick) / width, 6))
            return low - tick / 2 + width * np.arange(count + 1)
        if high <= low:
            low, high = low - 0.5, high + 0.5
        return np.linspace(low, high, int(bins) + 1)
    edges = np.asarray(bins, dtype="float64")
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise InvalidArgument("bins must be a positive integer or increasing bin edges")
    return edges


def _spread_over_bins(low: np.ndarray, high: np.ndarray, volume: np.ndarray,
                      edges: np.ndarray) -> np.ndarray:
    """Each candle's volume spread evenly over its low-high range; a candle with no range
    puts it all in the bin of its price."""
    total = np.zeros(len(edges) - 1)
    flat = high <= low
    if flat.any():
        total += np.histogram(low[flat], bins=edges, weights=volume[flat])[0]
    lo, hi, vol = low[~flat], high[~flat], volume[~flat]
    if len(lo):
        overlap = (np.minimum(hi[:, None], edges[None, 1:])
                   - np.maximum(lo[:, None], edges[None, :-1])).clip(min=0)
        total += (overlap / (hi - lo)[:, None] * vol[:, None]).sum(axis=0)
    return total


def volume_profile(trades_or_candles: pd.DataFrame, ax: Axes | None = None, bins: Any = 40,
                   title: str | None = None) -> Axes:
    """Volume by price as horizontal bars, with a line at the busiest price (point of control).

    From trades (``price``, ``qty``; stacked buys and sells when ``side`` is known) or from
    candles (``high``, ``low``, ``volume``: each candle's volume spread evenly over its range).
    ``bins``: a number of equal bins or the bin edges.
    """
    df = _check_frame(trades_or_candles, "trade or candle")
    ax = _axes(ax, figsize=(6, 6))
    is_trades = {"price", "qty"} <= set(df.columns)
    if not is_trades and not {"high", "low", "volume"} <= set(df.columns):
        raise InvalidArgument("volume_profile needs trades (price, qty) or candles "
                              "(high, low, volume)")
    symbol = _symbol(df)
    _title(ax, title, f"{symbol} volume profile".strip())
    ax.set_ylabel(_price_label(df))
    ax.set_xlabel("volume, lots")
    _plain_numbers(ax)
    if is_trades:
        clean = df[df["price"].notna()]
        price = clean["price"].to_numpy(dtype="float64")
        low, high = (price.min(), price.max()) if len(price) else (0.0, 0.0)
        tick = _tick(price)
    else:
        clean = df.dropna(subset=["high", "low"])
        low = float(clean["low"].min()) if len(clean) else 0.0
        high = float(clean["high"].max()) if len(clean) else 0.0
        tick = 0.0
    edges = _histogram_edges(low, high, bins, tick)
    if clean.empty:
        _no_data(ax)
        return ax
    centers, height = (edges[:-1] + edges[1:]) / 2, np.diff(edges) * 0.9
    if is_trades:
        qty = pd.to_numeric(clean["qty"]).to_numpy(dtype="float64", na_value=0.0)
        sides = (clean["side"].astype("string").str.lower().fillna("").to_numpy()
                 if "side" in clean.columns else np.full(len(clean), ""))
        left = np.zeros(len(centers))
        parts = [("buy", sides == "buy"), ("sell", sides == "sell"),
                 ("unknown", ~np.isin(sides, ("buy", "sell")))]
        for name, mask in parts:
            if mask.any():
                vol = np.histogram(price[mask], bins=edges, weights=qty[mask])[0]
                ax.barh(centers, vol, height=height, left=left,
                        color=SIDE_COLORS.get(name, NEUTRAL), alpha=0.7, label=name)
                left = left + vol
        totals = left
        ax.legend(loc="lower right")
    else:
        volume = pd.to_numeric(clean["volume"]).to_numpy(dtype="float64", na_value=0.0)
        totals = _spread_over_bins(clean["low"].to_numpy(dtype="float64"),
                                   clean["high"].to_numpy(dtype="float64"), volume, edges)
        ax.barh(centers, totals, height=height, color="#1a73e8", alpha=0.7)
    if totals.max() > 0:
        poc = centers[int(np.argmax(totals))]
        ax.axhline(poc, color=MID, linestyle="--", linewidth=1)
        ax.annotate(f"POC {poc:g}", xy=(1, poc), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", color=MID, fontsize=9,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8,
                          "linewidth": 0})
    return ax


# --- portfolio ---------------------------------------------------------------------------------


def pnl(positions_df: pd.DataFrame, ax: Axes | None = None, title: str | None = None,
        column: str = "unrealised_pl") -> Axes:
    """Unrealised P&L per position as bars (green gains, red losses) with the values on them.
    Money positions (``is_currency``) are left out; with several portfolios in the frame the
    bars are labelled ``symbol (portfolio)``. ``column="daily_unrealised_pl"`` for today's."""
    df = _check_frame(positions_df, "position", ("symbol", column))
    ax = _axes(ax, figsize=(8, 4))
    if "is_currency" in df.columns:
        df = df[~df["is_currency"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    df = df[df[column].notna()]
    portfolios = list(df["portfolio"].dropna().unique()) if "portfolio" in df.columns else []
    what = "daily unrealised P&L" if column.startswith("daily") else "unrealised P&L"
    default = f"{what} · {portfolios[0]}" if len(portfolios) == 1 else what
    _title(ax, title, default)
    ax.set_ylabel(_price_label(df, what))
    ax.axhline(0, color=MID, linewidth=0.8)
    if df.empty:
        _no_data(ax)
        ax.set_xticks([])
        return ax
    labels = df["symbol"].astype("string").fillna("?")
    if len(portfolios) > 1:
        labels = labels + " (" + df["portfolio"].astype("string").fillna("?") + ")"
    values = df[column].to_numpy(dtype="float64")
    bars = ax.bar(labels.to_numpy(dtype=object), values,
                  color=np.where(values >= 0, UP, DOWN))
    ax.bar_label(bars, fmt="{:,.2f}", fontsize=8, padding=2)
    ax.tick_params(axis="x", labelrotation=45 if len(values) > 6 else 0)
    ax.margins(y=0.15)
    return ax


# --- live ----------------------------------------------------------------------------------------


def live_candles(bars_liveframe: Any, ax: Axes | None = None, max_rate: float = 1.0,
                 last: int = 120, tz: Any = None, *, refresher: Any = None) -> Any:
    """A widget showing the last ``last`` candles of a bars LiveFrame, redrawn at most
    ``max_rate`` times a second when the frame changes (see
    :func:`invia_data.widgets.candles_widget`)."""
    from .widgets import candles_widget

    return candles_widget(bars_liveframe, ax=ax, max_rate=max_rate, last=last, tz=tz,
                          refresher=refresher)
