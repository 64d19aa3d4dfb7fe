"""ipywidgets views of live frames: an order-book ladder, a live table, stream health.

Every view is refreshed by ONE daemon thread, the :class:`Refresher`, never per message. The
refresher holds weak references to the views and asks each, about every 50 ms, whether it has
something new to show; a view writes its widget traits only when its frame's ``.version`` or
status changed, or when the text of its age badge changed, and never more often than its
``max_rate``. The thread never prints (output from a thread lands in whatever cell runs at that
moment) and survives any exception: a failure is counted, shown in the widget's badge and
logged on ``invia_data.widgets`` when logging has a handler configured.
A view stops refreshing when it is closed or when its frame is closed.

The ladder HTML is a pure function of a book DataFrame (:func:`render_ladder`), and the figures
the ladder header shows come from :func:`book_stats`; both are usable without a widget.
"""

from __future__ import annotations

import html
import io
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .books import (
    Sides,
    book_sides,
    book_stats,
    check_depth,
    price_decimals,
    side_arrays,
    sides_stats,
)
from .errors import InvalidArgument
from .timeframes import label
from .times import check_tz

__all__ = [
    "CandlesWidget",
    "HealthWidget",
    "LiveWidget",
    "OrderBookWidget",
    "Refresher",
    "TableWidget",
    "book_sides",
    "book_stats",
    "candles_widget",
    "default_refresher",
    "health_widget",
    "orderbook_widget",
    "price_decimals",
    "render_book",
    "render_ladder",
    "render_stats",
    "table_widget",
]

logger = logging.getLogger("invia_data.widgets")

TICK_SECONDS = 0.05
DEPTH_CHOICES = (5, 10, 20, 50)
STATUS_COLORS = {
    "live": "#1e8e3e",
    "connecting": "#80868b",
    "reconnecting": "#e37400",
    "stale": "#e37400",
    "error": "#d93025",
    "closed": "#5f6368",
    "paused": "#1a73e8",
}
BID_BAR = "rgba(30,142,62,0.30)"
ASK_BAR = "rgba(217,48,37,0.30)"
BID_TEXT = "#1e8e3e"
ASK_TEXT = "#d93025"
LADDER_LINE_HEIGHT = 1.35


def _report(message: str, *args: Any) -> None:
    """Log the exception being handled, but only to handlers someone configured: with none,
    logging's last resort writes to stderr from this thread, and a notebook shows that in
    whichever cell happens to run (ipywidgets #2358, ipykernel #1289). Widgets show their
    own failures in their badge, so nothing is lost."""
    if logger.hasHandlers():
        logger.error(message, *args, exc_info=True)


def _should_log(count: int) -> bool:
    """Log the 1st, 10th, 100th... occurrence: a broken view refreshing at 4 Hz must not
    flood the log, yet every kind of failure is seen at least once."""
    return count > 0 and 10 ** int(math.log10(count)) == count


# --- the refresher -----------------------------------------------------------------------------


class Refresher:
    """One thread that refreshes every registered view at its capped rate.

    A view is any object with ``refresh(now: float) -> bool`` (False: unregister me). The
    refresher keeps only weak references, so a view that is garbage-collected drops out. The
    thread starts on the first registration and ends when no view is left. ``tick(now)`` runs
    one pass synchronously: with ``autostart=False`` no thread is started and the caller drives
    the passes (with a fake clock, say).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 tick_seconds: float = TICK_SECONDS, *, autostart: bool = True) -> None:
        self.clock = clock
        self.autostart = autostart
        self.tick_seconds = tick_seconds
        self.errors = 0
        self.ticks = 0
        self._views: list[weakref.ref[Any]] = []
        # reentrant: a widget collected (and so closed) while this thread holds the lock
        # unregisters itself from inside it
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return (f"Refresher(views={len(self.views())}, running={self.running}, "
                f"errors={self.errors})")

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def views(self) -> list[Any]:
        with self._lock:
            return [v for v in (ref() for ref in self._views) if v is not None]

    def register(self, view: Any, *, start: bool | None = None) -> None:
        """Add ``view``; start the thread unless ``start`` (default: ``autostart``) is False."""
        start = self.autostart if start is None else start
        with self._lock:
            if not any(ref() is view for ref in self._views):
                self._views.append(weakref.ref(view))
            if start and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="invia-data-widgets",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def unregister(self, view: Any) -> None:
        with self._lock:
            self._views = [ref for ref in self._views if ref() is not None and ref() is not view]

    def tick(self, now: float | None = None) -> None:
        """One pass over the views; an exception from a view is logged and counted."""
        now = self.clock() if now is None else now
        self.ticks += 1
        finished = []
        for view in self.views():
            try:
                keep = view.refresh(now)
            except Exception:
                self.errors += 1
                if _should_log(self.errors):
                    _report("widget refresh failed (%d errors so far)", self.errors)
                keep = True
            if not keep:
                finished.append(view)
        for view in finished:
            self.unregister(view)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._views = [ref for ref in self._views if ref() is not None]
                if not self._views:
                    self._thread = None
                    return
            try:
                self.tick()
            except Exception:  # the thread must outlive any bug in a pass
                self.errors += 1
                _report("widget refresher pass failed")
            self._wake.wait(self.tick_seconds)
            self._wake.clear()

    def join(self, timeout: float) -> bool:
        """Wait until the thread has ended (no views left); True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running


_DEFAULT_REFRESHER = Refresher()


def default_refresher() -> Refresher:
    """The refresher shared by all widgets unless one is passed explicitly."""
    return _DEFAULT_REFRESHER


# --- order-book figures and the ladder HTML -----------------------------------------------------


def _check_rate(max_rate: Any) -> float:
    if isinstance(max_rate, bool) or not isinstance(max_rate, (int, float)) \
            or not math.isfinite(max_rate) or max_rate <= 0:
        raise InvalidArgument(f"max_rate must be a positive number of refreshes per second, "
                              f"got {max_rate!r}")
    return float(max_rate)


def _mid_decimals(mid: float, decimals: int) -> int:
    """A mid between two ticks needs one more decimal than the prices, otherwise not."""
    return max(decimals, price_decimals([mid], decimals + 1))


def _fmt_price(value: float, decimals: int) -> str:
    return "—" if not math.isfinite(value) else f"{value:,.{decimals}f}"


def _fmt_volume(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"


def _bar_cell(volume: float, scale: float, color: str, text_color: str, toward: str) -> str:
    pct = 0.0 if scale <= 0 else min(100.0, 100.0 * volume / scale)
    style = (f"background:linear-gradient(to {toward},{color} {pct:.1f}%,transparent {pct:.1f}%);"
             f"color:{text_color};text-align:right;padding:1px 6px;min-width:70px")
    return f'<td style="{style}">{_fmt_volume(volume)}</td>'


_CELL = "padding:1px 6px;text-align:right"
_DIM = "padding:1px 6px;text-align:right;color:#80868b"


def _ladder_row(side: str, level: int, price: str, volume: float, cum: float,
                scale: float) -> str:
    empty = f'<td style="{_CELL}"></td>'
    price_cell = f'<td style="{_CELL};font-weight:bold;text-align:center">{price}</td>'
    if side == "ask":
        cells = (empty + empty + price_cell
                 + _bar_cell(volume, scale, ASK_BAR, ASK_TEXT, "right")
                 + f'<td style="{_DIM}">{_fmt_volume(cum)}</td>')
    else:
        cells = (f'<td style="{_DIM}">{_fmt_volume(cum)}</td>'
                 + _bar_cell(volume, scale, BID_BAR, BID_TEXT, "left")
                 + price_cell + empty + empty)
    return f'<tr class="{side}" data-side="{side}" data-level="{level}">{cells}</tr>'


def render_ladder(df: pd.DataFrame, depth: int = 10, *, decimals: int | None = None) -> str:
    """The price ladder of a long-form order book as an HTML table (inline CSS, no scripts).

    Asks on top (the farthest first, the best ask just above the spread row), then a row with
    the spread and mid, then bids (best first). Each volume cell carries a depth bar scaled to
    the largest shown volume; the outer columns hold the cumulative volume from the best level.
    ``decimals`` fixes the price precision (default: the fewest that show every price exactly).
    """
    sides = side_arrays(df, check_depth(depth))
    return _ladder_html(sides, sides_stats(sides), _decimals(sides, decimals))


def render_stats(df: pd.DataFrame, depth: int, decimals: int | None = None) -> str:
    """One line of HTML: bid x ask, spread (bp), mid, imbalance over the shown levels."""
    sides = side_arrays(df, check_depth(depth))
    return _stats_html(sides_stats(sides), _decimals(sides, decimals))


def render_book(df: pd.DataFrame, depth: int) -> tuple[str, str]:
    """(stats line, ladder) of one book, reading the frame once."""
    sides = side_arrays(df, check_depth(depth))
    stats, decimals = sides_stats(sides), _decimals(sides, None)
    return _stats_html(stats, decimals), _ladder_html(sides, stats, decimals)


def _decimals(sides: Sides, decimals: int | None) -> int:
    if decimals is not None:
        return int(decimals)
    return price_decimals(np.concatenate([sides.bid_price, sides.ask_price]))


def _ladder_html(sides: Sides, stats: dict[str, float], decimals: int) -> str:
    scale = float(max(sides.bid_volume.max(initial=0.0), sides.ask_volume.max(initial=0.0)))
    rows = []
    ask_cum = np.cumsum(sides.ask_volume)
    for i in reversed(range(len(sides.ask_price))):
        rows.append(_ladder_row("ask", i, _fmt_price(sides.ask_price[i], decimals),
                                float(sides.ask_volume[i]), float(ask_cum[i]), scale))
    if len(sides.bid_price) or len(sides.ask_price):
        middle = (f"spread {_fmt_price(stats['spread'], decimals)} · "
                  f"mid {_fmt_price(stats['mid'], _mid_decimals(stats['mid'], decimals))}")
    else:
        middle = "empty book"
    rows.append(f'<tr class="spread" data-side="spread"><td colspan="5" style="text-align:center;'
                f'color:#5f6368;border-top:1px solid #dadce0;border-bottom:1px solid #dadce0;'
                f'padding:2px 6px">{middle}</td></tr>')
    bid_cum = np.cumsum(sides.bid_volume)
    for i in range(len(sides.bid_price)):
        rows.append(_ladder_row("bid", i, _fmt_price(sides.bid_price[i], decimals),
                                float(sides.bid_volume[i]), float(bid_cum[i]), scale))
    # line-height: ipywidgets gives an HTML widget's content the 28 px line of its buttons,
    # which would make each ladder row twice as tall as its text
    return ('<table class="invia-ladder" style="border-collapse:collapse;font-family:monospace;'
            f'font-size:12px;line-height:{LADDER_LINE_HEIGHT}"><thead><tr>{_LADDER_HEAD}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


_LADDER_HEAD = "".join(f'<th style="{_CELL};color:#5f6368">{h}</th>'
                       for h in ("cum", "bid", "price", "ask", "cum"))


def _stats_html(stats: dict[str, float], decimals: int) -> str:
    imbalance = stats["imbalance"]
    bps = stats["spread_bps"]
    parts = [
        f'<span style="color:{BID_TEXT}">{_fmt_price(stats["best_bid"], decimals)}</span> × '
        f'<span style="color:{ASK_TEXT}">{_fmt_price(stats["best_ask"], decimals)}</span>',
        f"spread {_fmt_price(stats['spread'], decimals)}"
        + (f" ({bps:.1f} bp)" if math.isfinite(bps) else ""),
        f"mid {_fmt_price(stats['mid'], _mid_decimals(stats['mid'], decimals))}",
        f"imbalance {imbalance:+.2f}" if math.isfinite(imbalance) else "imbalance —",
    ]
    return ('<div style="font-family:monospace;font-size:12px">'
            + " &nbsp;·&nbsp; ".join(parts) + "</div>")


# --- badges --------------------------------------------------------------------------------------


def format_age(age: float | None) -> str:
    """Whole units only, so the text (and the widget trait) changes at most once a second."""
    if age is None or not math.isfinite(age):
        return "no data yet"
    if age < 1:
        return "updated <1 s ago"
    if age < 120:
        return f"updated {int(age)} s ago"
    if age < 7200:
        return f"updated {int(age // 60)} min ago"
    return f"updated {int(age // 3600)} h ago"


def render_badge(status: str, age: float | None, *, paused: bool = False,
                 error: Any = None, show_age: bool = True) -> str:
    """A coloured status pill plus the age of the last update (and the error, if any)."""
    label = "paused" if paused else str(status)
    color = STATUS_COLORS.get(label, "#80868b")
    text = (f'<span style="background:{color};color:white;border-radius:8px;padding:1px 8px;'
            f'font-size:11px">{html.escape(label)}</span>')
    if show_age:
        text += f' <span style="color:#5f6368;font-size:11px">{format_age(age)}</span>'
    if error is not None and status == "error":
        text += f' <span style="color:{ASK_TEXT};font-size:11px">{html.escape(str(error))}</span>'
    return text


# --- the widgets ---------------------------------------------------------------------------------


class LiveWidget(widgets.VBox):
    """A VBox that re-renders itself from a source at most ``max_rate`` times a second.

    Subclasses define ``_state_key()`` (what, when changed, needs a new render), ``_snapshot()``
    and ``_render(snapshot) -> None`` (writes the content traits), and ``_finished()``.
    ``refresh(now)`` is called by the :class:`Refresher`; it returns False once the widget or
    its source is closed. ``refresh_count`` counts content renders, ``error_count`` failures,
    ``shown_version`` is the source version of the content shown (at least; see ``refresh``).
    """

    def __init__(self, source: Any, *, max_rate: float, refresher: Refresher | None,
                 header: list[widgets.Widget], body: list[widgets.Widget]) -> None:
        self._min_interval = 1.0 / _check_rate(max_rate)
        self._live_source = source
        self._last_write = -math.inf
        self._shown_key: Any = object()
        self._dirty = True
        self._paused = False
        self._is_closed = False
        self._held: Any = None
        self._held_age: tuple[float | None, float] = (None, 0.0)  # (source age, clock) at read
        self.refresh_count = 0
        self.shown_version: int | None = None
        self.badge_count = 0
        self.error_count = 0
        self.last_error: BaseException | None = None
        self._failing = False
        self.badge = widgets.HTML()
        self.pause_button = widgets.ToggleButton(value=False, description="pause",
                                                 tooltip="freeze the display", icon="pause",
                                                 layout=widgets.Layout(width="90px"))
        self.pause_button.observe(self._on_pause, names="value")
        self._refresher = refresher or default_refresher()
        row = widgets.HBox([*header, self.badge, self.pause_button],
                           layout=widgets.Layout(align_items="center", grid_gap="8px"))
        super().__init__(children=[row, *body])
        self._refresher.register(self)

    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self.pause_button.value = bool(value)

    def _on_pause(self, change: dict[str, Any]) -> None:
        self._paused = bool(change["new"])
        self._dirty = True
        # a pressed "pause" reads as either state; the button names what a click will do
        self.pause_button.description = "resume" if self._paused else "pause"
        self.pause_button.icon = "play" if self._paused else "pause"

    def _controls(self) -> list[widgets.DOMWidget]:
        """The inputs that act through refreshes, disabled once the source is closed."""
        return [self.pause_button]

    def _status(self) -> str:
        return str(getattr(self._live_source, "status", "live"))

    def _finished(self) -> bool:
        return self._status() == "closed"

    def _state_key(self) -> Any:
        src = self._live_source
        return (getattr(src, "version", None), self._status())

    def _snapshot(self) -> Any:
        return self._live_source.df

    def _badge_html(self, now: float) -> str:
        src = self._live_source
        return render_badge(self._status(), self._shown_age(now), paused=self._paused,
                            error=getattr(src, "error", None))

    def _shown_age(self, now: float) -> float | None:
        """The age of the data on screen: while paused, that of the held snapshot, growing."""
        if not self._paused:
            return getattr(self._live_source, "age", None)
        age, read_at = self._held_age
        return None if age is None else age + (now - read_at)

    def _render(self, snapshot: Any) -> None:
        raise NotImplementedError

    def refresh(self, now: float) -> bool:
        """Write what changed since the last call, if at least 1/max_rate s have passed."""
        if self._is_closed:
            return False
        if now - self._last_write < self._min_interval:
            return True
        finished = self._finished()
        if finished and self._paused:
            self.paused = False  # the last render shows the final frame and the closed badge
        # The key is read before the snapshot: a newer snapshot under an older key costs one
        # extra render later, never a missed update.
        key = self._state_key()
        wrote = False
        if self._dirty or (key != self._shown_key and not self._paused):
            self._shown_key = key
            self._dirty = False
            self._render_safely(key, now)
            wrote = True  # a failed attempt also waits 1/max_rate before the next one
        badge = self._badge_html(now) + self._failure_note()
        if badge != self.badge.value:
            self.badge.value = badge
            self.badge_count += 1
            wrote = True
        if wrote:
            self._last_write = now
        if finished:
            for control in self._controls():
                control.disabled = True
        return not finished

    def _render_safely(self, key: Any, now: float) -> bool:
        """Read the snapshot (unless paused) and render it; a failure is counted, reported and
        shown in the badge, never raised."""
        try:
            if not self._paused or self._held is None:
                self._held = self._snapshot()
                self._held_age = (getattr(self._live_source, "age", None), now)
            self._render(self._held)
        except Exception as exc:
            self.error_count += 1
            self.last_error = exc
            self._failing = True
            if _should_log(self.error_count):
                _report("%s failed to render (%d errors so far)", type(self).__name__,
                        self.error_count)
            return False
        self._failing = False
        self.refresh_count += 1
        if isinstance(key, tuple):
            self.shown_version = key[0]
        return True

    def _failure_note(self) -> str:
        if not self._failing or self.last_error is None:
            return ""
        text = f"render failed: {type(self.last_error).__name__}: {self.last_error}"
        return f' <span style="color:{ASK_TEXT};font-size:11px">{html.escape(text)}</span>'

    def close(self) -> None:
        """Stop refreshing and close the child widgets (idempotent)."""
        if getattr(self, "_is_closed", False):
            return
        self._is_closed = True
        refresher = getattr(self, "_refresher", None)
        if refresher is not None:
            refresher.unregister(self)
        for child in list(self.children):
            child.close()
        super().close()

    @property
    def closed(self) -> bool:
        return self._is_closed


def _title(source: Any) -> str:
    kind = getattr(source, "kind", None) or ""
    symbol = getattr(source, "symbol", None) or ""
    text = " ".join(str(p) for p in (symbol, kind) if p)
    return f"<b>{html.escape(text)}</b>" if text else ""


class OrderBookWidget(LiveWidget):
    """The price ladder of an order-book LiveFrame with spread, mid, imbalance and controls."""

    def __init__(self, live_book: Any, depth: int = 10, max_rate: float = 4.0, *,
                 refresher: Refresher | None = None) -> None:
        _check_rate(max_rate)  # before any child widget exists
        self._depth = check_depth(depth)
        self.title = widgets.HTML(_title(live_book))
        choices = sorted({*DEPTH_CHOICES, self._depth})
        self.depth_selector = widgets.Dropdown(options=choices, value=self._depth,
                                               description="depth",
                                               layout=widgets.Layout(width="140px"))
        self.depth_selector.observe(self._on_depth, names="value")
        self.stats = widgets.HTML()
        self.ladder = widgets.HTML()
        super().__init__(live_book, max_rate=max_rate, refresher=refresher,
                         header=[self.title, self.depth_selector],
                         body=[self.stats, self.ladder])

    @property
    def depth(self) -> int:
        """Order-book levels shown per side."""
        return self._depth

    @depth.setter
    def depth(self, value: int) -> None:
        value = check_depth(value)
        if value not in self.depth_selector.options:
            self.depth_selector.options = sorted({*self.depth_selector.options, value})
        self.depth_selector.value = value

    def _on_depth(self, change: dict[str, Any]) -> None:
        self._depth = int(change["new"])
        self._dirty = True

    def _controls(self) -> list[widgets.DOMWidget]:
        return [self.pause_button, self.depth_selector]

    def _render(self, snapshot: pd.DataFrame) -> None:
        stats, ladder = render_book(snapshot, self._depth)
        self.stats.value = stats
        self.ladder.value = ladder


class TableWidget(LiveWidget):
    """Any LiveFrame as an HTML table: the last ``max_rows`` rows of a time-indexed (growing)
    frame, the first ``max_rows`` of a keyed table (positions, orders...)."""

    def __init__(self, live_frame: Any, max_rows: int = 20, max_rate: float = 4.0, *,
                 refresher: Refresher | None = None) -> None:
        _check_rate(max_rate)
        self.max_rows = check_depth(max_rows, "max_rows")
        self.title = widgets.HTML(_title(live_frame))
        self.table = widgets.HTML()
        super().__init__(live_frame, max_rate=max_rate, refresher=refresher,
                         header=[self.title], body=[self.table])

    def _render(self, snapshot: pd.DataFrame) -> None:
        self.table.value = render_table(snapshot, self.max_rows)


def render_table(df: pd.DataFrame, max_rows: int = 20) -> str:
    """The tail of a time-indexed frame (or a frame with a ``time`` column), else the head,
    as an HTML table with a row count."""
    if not isinstance(df, pd.DataFrame):
        raise InvalidArgument(f"expected a DataFrame, got {type(df).__name__}")
    growing = isinstance(df.index, pd.DatetimeIndex) or "time" in df.columns
    part = df.tail(max_rows) if growing else df.head(max_rows)
    which = "last" if growing else "first"
    note = (f"{len(df):,} rows" if len(df) <= max_rows
            else f"{which} {len(part)} of {len(df):,} rows")
    body = part.to_html(border=0, na_rep="", max_cols=30)
    return (f'<div class="invia-table" style="font-size:12px">{_TABLE_STYLE}{body}'
            f'<div style="color:#5f6368;font-size:11px">{note}</div></div>')


# An HTML widget's content gets none of JupyterLab's styles for DataFrames (so the cells would
# touch) and the 28 px line of the widgets' buttons; the selectors reach only these tables.
_TABLE_STYLE = ("<style>.invia-table table{border-collapse:collapse;line-height:1.35}"
                ".invia-table th,.invia-table td{padding:1px 8px;text-align:right;"
                "white-space:nowrap}.invia-table tbody tr:nth-child(odd){"
                "background:rgba(128,128,128,0.08)}</style>")


class HealthWidget(LiveWidget):
    """``stream.health()`` (a DataFrame, one row per subscription) as an HTML table with the
    connection counters of ``attrs["connection"]``, re-read about once a second. The badge
    says ``live`` or ``reconnecting`` from ``attrs["connected"]``, ``closed`` once the stream's
    ``closed`` is true."""

    def __init__(self, stream: Any, max_rate: float = 1.0, *,
                 refresher: Refresher | None = None) -> None:
        self.table = widgets.HTML()
        self._connected: bool | None = None
        super().__init__(stream, max_rate=max_rate, refresher=refresher,
                         header=[widgets.HTML("<b>stream health</b>")], body=[self.table])

    def _status(self) -> str:
        if getattr(self._live_source, "closed", False) is True:
            return "closed"
        if self._connected is None:
            return "connecting"
        return "live" if self._connected else "reconnecting"

    def _state_key(self) -> Any:
        return object()  # health counters have no version: re-read on every due tick

    def _snapshot(self) -> Any:
        return self._live_source.health()

    def _badge_html(self, now: float) -> str:
        return render_badge(self._status(), None, paused=self._paused, show_age=False)

    def _render(self, snapshot: pd.DataFrame) -> None:
        self._connected = bool(snapshot.attrs.get("connected", True))
        value = render_table(snapshot, max_rows=50)
        counters = snapshot.attrs.get("connection")
        if counters:
            text = " · ".join(f"{html.escape(str(k))} {html.escape(str(v))}"
                              for k, v in counters.items())
            value += f'<div style="color:#5f6368;font-size:11px">connection: {text}</div>'
        if value != self.table.value:
            self.table.value = value


class CandlesWidget(LiveWidget):
    """The last candles of a bars LiveFrame as a PNG image, redrawn when the frame changes.

    Drawing happens in the refresher thread with the Agg renderer on a figure the widget owns
    (not a pyplot figure, so nothing is shown twice and nothing is left open). With ``ax``
    given, it draws into that axes and renders its whole figure: do not draw into that figure
    from other threads meanwhile.
    """

    def __init__(self, live_bars: Any, ax: Any = None, max_rate: float = 1.0, last: int = 120,
                 tz: Any = None, *, refresher: Refresher | None = None) -> None:
        from matplotlib.axes import Axes
        from matplotlib.figure import Figure

        _check_rate(max_rate)
        self.last = check_depth(last, "last")
        self.tz = check_tz(tz)
        if ax is None:
            ax = Figure(figsize=(10, 4.5), dpi=96, layout="tight").add_subplot()
        elif not isinstance(ax, Axes):
            raise InvalidArgument(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
        self.ax = ax
        self.volume_ax = ax.twinx()
        self.image = widgets.Image(format="png")
        super().__init__(live_bars, max_rate=max_rate, refresher=refresher,
                         header=[widgets.HTML(_title(live_bars))], body=[self.image])

    def _chart_title(self) -> str:
        src = self._live_source
        tf = (getattr(src, "params", None) or {}).get("tf")
        parts = [str(getattr(src, "symbol", "") or "")]
        if tf:
            try:
                parts.append(label(tf))
            except InvalidArgument:
                parts.append(str(tf))
        return " · ".join(p for p in parts if p) or "candles"

    def _render(self, snapshot: pd.DataFrame) -> None:
        from .plots import draw_candles

        self.ax.cla()
        self.volume_ax.cla()
        draw_candles(self.ax, snapshot.tail(self.last), vax=self.volume_ax, volume_below=False,
                     tz=self.tz, title=self._chart_title())
        buffer = io.BytesIO()
        self.ax.figure.savefig(buffer, format="png")
        self.image.value = buffer.getvalue()


def orderbook_widget(live_book: Any, depth: int = 10, max_rate: float = 4.0, *,
                     refresher: Refresher | None = None) -> OrderBookWidget:
    """A self-refreshing price ladder of an order-book LiveFrame (``book.widget()``).

    Shows asks above and bids below the spread with depth bars and cumulative volume, the best
    bid x ask, spread, mid and imbalance, a live/stale/reconnecting badge with the age of the
    last update, a pause toggle and a depth selector (levels per side). Refreshes at most
    ``max_rate`` times a second, only when the book changed.
    """
    return OrderBookWidget(live_book, depth=depth, max_rate=max_rate, refresher=refresher)


def table_widget(live_frame: Any, max_rows: int = 20, max_rate: float = 4.0, *,
                 refresher: Refresher | None = None) -> TableWidget:
    """A self-refreshing HTML table of any LiveFrame (``LiveFrame.widget()``)."""
    return TableWidget(live_frame, max_rows=max_rows, max_rate=max_rate, refresher=refresher)


def health_widget(stream: Any, *, refresher: Refresher | None = None) -> HealthWidget:
    """``stream.health()`` refreshing once a second until the stream or the widget is closed."""
    return HealthWidget(stream, max_rate=1.0, refresher=refresher)


def candles_widget(live_bars: Any, ax: Any = None, max_rate: float = 1.0, last: int = 120,
                   tz: Any = None, *,
                   refresher: Refresher | None = None) -> CandlesWidget:
    """A live candle chart of a bars LiveFrame: the last ``last`` candles with volume, redrawn
    at most ``max_rate`` times a second, only when the frame changed."""
    return CandlesWidget(live_bars, ax=ax, max_rate=max_rate, last=last, tz=tz,
                         refresher=refresher)
