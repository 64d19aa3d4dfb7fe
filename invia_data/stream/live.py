"""LiveFrame: a DataFrame that the stream keeps current.

The stream thread applies messages to the reducer under the frame's lock and bumps
``version``; readers take a snapshot under the same lock and build the DataFrame outside it,
once per version (cached). Callbacks and waiters are notified after the lock is released, so
a callback may subscribe, unsubscribe or read ``.df`` without deadlocking.
"""

from __future__ import annotations

import html
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..errors import InvalidArgument, InviaError, StreamClosed, StreamTimeout

log = logging.getLogger("invia_data.stream")

STATUSES = ("connecting", "live", "reconnecting", "stale", "error", "closed")


class LiveFrame:
    """A live view of one subscription (or a group, e.g. several quotes).

    ``.df`` is a consistent snapshot with the same columns and dtypes as the HTTP call of the
    same kind; ``.version`` counts applied updates; ``.status`` is one of ``connecting``,
    ``live``, ``reconnecting``, ``stale``, ``error``, ``closed``.
    """

    def __init__(self, kind: str, symbol: str | None, params: dict[str, Any], state: Any,
                 closer: Callable[[LiveFrame], None] | None = None) -> None:
        self.kind = kind
        self.symbol = symbol
        self.params = dict(params)
        self._state = state
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._version = 0
        self._updated: float | None = None
        self._status = "connecting"
        self._error: BaseException | None = None
        self._callbacks: dict[int, Callable[[LiveFrame], Any]] = {}
        self._handles = itertools.count(1)
        self._cache: tuple[int, pd.DataFrame] | None = None
        self._closer = closer
        self.callback_errors = 0
        self._failed_callbacks: set[int] = set()
        self._sinks: tuple[Callable[[Any, float], Any], ...] = ()

    # --- reading -----------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        """The current snapshot (built at most once per version; a shallow copy each read)."""
        with self._lock:
            version = self._version
            cached = self._cache
            if cached is not None and cached[0] == version:
                return cached[1].copy(deep=False)
            snapshot = self._state.snapshot()
        frame = self._state.frame(snapshot)
        with self._cond:
            if self._cache is None or self._cache[0] < version:
                self._cache = (version, frame)
        return frame.copy(deep=False)

    @property
    def version(self) -> int:
        return self._version

    @property
    def updated_at(self) -> pd.Timestamp | None:
        updated = self._updated
        return None if updated is None else pd.Timestamp(updated, unit="s", tz="UTC")

    @property
    def age(self) -> float | None:
        """Seconds since the last update (None before the first one)."""
        updated = self._updated
        return None if updated is None else max(0.0, time.time() - updated)

    @property
    def status(self) -> str:
        return self._status

    @property
    def error(self) -> BaseException | None:
        """The exception that put this frame in status ``error`` (a rejected subscription)."""
        return self._error

    # --- callbacks and waiting -----------------------------------------------------------------

    def on_update(self, fn: Callable[[LiveFrame], Any]) -> int:
        """Call ``fn(live_frame)`` on the stream thread after each batch of updates and on
        status changes. Returns a handle for :meth:`remove_callback`. Exceptions raised by
        ``fn`` are counted (``callback_errors``), never propagated, and logged: the first
        with its traceback at ERROR, the later ones of the same ``fn`` at DEBUG."""
        if not callable(fn):
            raise InvalidArgument(f"on_update needs a callable, got {fn!r}")
        handle = next(self._handles)
        with self._cond:
            self._callbacks[handle] = fn
        return handle

    def remove_callback(self, handle: int) -> None:
        with self._cond:
            self._callbacks.pop(handle, None)

    def wait(self, updates: int = 1, timeout: float | None = 10.0) -> LiveFrame:
        """Block until ``updates`` more updates have been applied since the call
        (``updates=0``: until the frame holds any data). Returns self.

        Raises the subscription's error if it is rejected, :class:`StreamClosed` if the frame
        is closed, :class:`StreamTimeout` (a ``TimeoutError``) on timeout."""
        if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0:
            raise InvalidArgument(f"updates must be a non-negative integer, got {updates!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = max(self._version + updates, 1)
            while self._version < target:
                self._raise_if_dead()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise StreamTimeout(
                        f"{self._label()}: {updates} update(s) did not arrive within "
                        f"{timeout} s (status {self._status})")
                self._cond.wait(remaining)
        return self

    def _raise_if_dead(self) -> None:
        if self._status == "error" and self._error is not None:
            raise self._error
        if self._status == "closed":
            raise StreamClosed(f"{self._label()} is closed")

    def close(self) -> None:
        """Unsubscribe and stop updating (idempotent)."""
        if self._status == "closed":
            return
        closer, self._closer = self._closer, None
        if closer is not None:
            try:
                closer(self)
            except InviaError as exc:
                log.warning("closing %s: %s", self._label(), exc)
        self._set_status("closed")

    def __enter__(self) -> LiveFrame:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- used by the stream thread -------------------------------------------------------------

    def _apply(self, data: Any) -> bool:
        applied, failure = self._apply_many((data,), time.time())
        if failure is not None:
            raise failure
        return applied == 1

    def _apply_many(self, items: Any, now: float,
                    messages: int | None = None) -> tuple[int, Exception | None]:
        """Apply a batch of messages (one socket read) under one lock. Returns how many
        changed the state and the last error of a message the reducer refused (the others
        of the batch are still applied). ``messages``: how many messages ``items`` stand for
        when superseded ones were dropped (a conflated order book); the version counts them."""
        failure = None
        count = 0
        with self._lock:
            if self._status == "closed":
                return 0, None
            apply = self._state.apply
            for data in items:
                try:
                    if apply(data):
                        count += 1
                except Exception as exc:  # bad data in one message must not stop the batch
                    failure = exc
            if count:
                if messages is not None and messages > len(items):
                    count += messages - len(items)
                self._version += count
                self._updated = now
                if self._status != "live" and self._status != "error":
                    self._status = "live"
        for sink in self._sinks:
            sink(items, now)
        return count, failure

    def _add_sink(self, sink: Callable[[Any, float], Any]) -> tuple[pd.DataFrame, float | None]:
        """From now on ``sink(items, now)`` receives every batch of wire objects the stream
        applies (a recorder); it runs on the stream thread, so it must only hand the batch over.
        Returns what the frame held when the sink was attached (its ``.df`` and the time of its
        last update), so that nothing is missed or counted twice."""
        with self._lock:
            self._sinks = (*self._sinks, sink)
            snapshot = self._state.snapshot()
            updated = self._updated
        return self._state.frame(snapshot), updated

    def _remove_sink(self, sink: Callable[[Any, float], Any]) -> None:
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def _modify(self, change: Callable[[Any], Any]) -> Any:
        """Apply ``change(state)`` under the lock (an HTTP backfill merge); bumps the version
        when it reports a change."""
        with self._cond:
            if self._status == "closed":
                return 0
            result = change(self._state)
            if result:
                self._version += 1
                self._updated = time.time()
            return result

    def _read_state(self, read: Callable[[Any], Any]) -> Any:
        with self._cond:
            return read(self._state)

    def _set_status(self, status: str, error: BaseException | None = None) -> None:
        with self._cond:
            if self._status == "closed" or self._status == status and error is None:
                return
            if self._status == "error" and status != "closed":
                return
            self._status = status
            if error is not None:
                self._error = error
        self._notify()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()
            callbacks = list(self._callbacks.items()) if self._callbacks else ()
        for handle, fn in callbacks:
            try:
                fn(self)
            except Exception:
                self.callback_errors += 1
                if handle in self._failed_callbacks:  # a traceback per update would flood
                    log.debug("callback %r of %s raised again", fn, self._label(), exc_info=True)
                    continue
                self._failed_callbacks.add(handle)
                log.exception("callback %r of %s raised (its later errors are logged at DEBUG "
                              "and counted in callback_errors)", fn, self._label())

    # --- display --------------------------------------------------------------------------------

    def _label(self) -> str:
        return f"{self.kind} {self.symbol}" if self.symbol else self.kind

    def status_line(self) -> str:
        age = self.age
        when = "no data yet" if age is None else f"updated {age:.1f} s ago"
        line = f"{self._label()}: {self._status}, version {self._version}, {when}"
        if self._error is not None:
            line += f" ({self._error})"
        return line

    def __repr__(self) -> str:
        return f"<LiveFrame {self.status_line()}>"

    def widget(self, **options: Any) -> Any:
        """An ipywidgets view that refreshes itself at a capped rate (default 4 Hz): a price
        ladder for an order book (``depth=``), a table otherwise (``max_rows=``)."""
        from .. import widgets

        if self.kind == "orderbook":
            return widgets.orderbook_widget(self, **options)
        return widgets.table_widget(self, **options)

    def _repr_html_(self) -> str:
        status = html.escape(self.status_line())
        colour = {"live": "#2a7", "error": "#c33", "stale": "#c80",
                  "reconnecting": "#c80"}.get(self._status, "#888")
        body = self.df._repr_html_() or ""
        return (f'<div><div style="font-family:monospace;color:{colour}">'
                f"&#9679; {status}</div>{body}</div>")
