"""LiveFrame: a DataFrame that the stream keeps current.

The stream writes through a :class:`FrameWriter` (its whole internal API: apply a batch of
messages, merge a backfill, read the reducer, set the status, publish). Messages are applied
to the reducer under the frame's lock and bump ``version``; readers take a snapshot under the
same lock and build the DataFrame outside it, once per version (cached).

Callbacks never run on the thread that writes: :meth:`FrameWriter.publish` wakes waiters and
hands the frame to a :class:`Dispatcher`, whose worker threads call each frame's callbacks
with the latest version (updates that arrived while a callback ran are delivered once, and
counted in ``callbacks_skipped``). The callbacks of one frame never overlap; a slow callback
delays only its own frame's callbacks, never ingest.
"""

from __future__ import annotations

import html
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pandas as pd

from .. import validate
from ..errors import InvalidArgument, InviaError, StreamClosed, StreamTimeout

SINK_WAIT = 5.0   # seconds close() waits for a batch to reach the frame's sinks

log = logging.getLogger("invia_data.stream")

STATUSES = ("connecting", "live", "reconnecting", "stale", "error", "closed")
CALLBACK_WORKERS = 4


class Dispatcher:
    """Daemon worker threads that run LiveFrame callbacks. A frame is queued at most once at
    a time; its worker delivers until no newer update is pending, so one frame's callbacks
    never overlap and a slow one holds up a single worker, never the stream thread."""

    def __init__(self, workers: int = CALLBACK_WORKERS) -> None:
        self._workers = workers
        self._queue: queue.SimpleQueue[LiveFrame] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def schedule(self, frame: LiveFrame) -> None:
        if len(self._threads) < self._workers:
            self._start_worker()
        self._queue.put(frame)

    def _start_worker(self) -> None:
        with self._lock:
            if len(self._threads) >= self._workers:
                return
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"invia-data-callbacks-{len(self._threads) + 1}")
            self._threads.append(thread)
            thread.start()

    def on_worker(self) -> bool:
        return threading.current_thread() in self._threads

    def _work(self) -> None:
        while True:
            self._queue.get()._deliver()


DISPATCHER = Dispatcher()


SHOWN_ROWS = 10


def _is_column(frame: LiveFrame, name: str) -> bool:
    try:
        return name in frame.df.columns
    except Exception:  # a frame not built yet (or closed) has no columns to offer
        return False


class LiveFrame:
    """A live view of one subscription (or a group, e.g. several quotes).

    ``.df`` is a consistent snapshot with the same columns and dtypes as the HTTP call of the
    same kind; ``.version`` counts applied updates; ``.status`` is one of ``connecting``,
    ``live``, ``reconnecting``, ``stale``, ``error``, ``closed``.

    ``clock`` (unix seconds, default the wall clock) is what ``age`` and staleness count from;
    a replay gives its simulated clock, so a replayed frame ages in simulated time.
    """

    def __init__(self, kind: str, symbol: str | None, params: dict[str, Any], state: Any,
                 closer: Callable[[LiveFrame], None] | None = None, *,
                 stale_after: float | None = None,
                 dispatcher: Dispatcher | None = None,
                 clock: Callable[[], float] | None = None) -> None:
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
        self.callbacks_skipped = 0  # updates superseded before their callbacks ran
        self._failed_callbacks: set[int] = set()
        self._sinks: tuple[Callable[..., Any], ...] = ()
        self._applying = 0   # batches applied whose sinks are still being called
        self._stale_after = stale_after
        self._clock = clock or time.time   # unix seconds: "now" for age and staleness
        self._dispatcher = dispatcher or DISPATCHER
        self._delivering = False     # a worker holds this frame
        self._calling: tuple[int, int] | None = None   # (handle, thread) of the running call
        self._pending_since: float | None = None  # monotonic: oldest undelivered publish
        self._delivered_version = 0

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
        # (to the microsecond: a float of unix seconds holds no more)
        return None if updated is None else pd.Timestamp(round(updated * 1_000_000), unit="us",
                                                          tz="UTC")

    @property
    def age(self) -> float | None:
        """Seconds since the last update (None before the first one)."""
        updated = self._updated
        return None if updated is None else max(0.0, self._clock() - updated)

    @property
    def status(self) -> str:
        """``live`` only while the data is fresh: a live frame with no update for more than
        the stream's ``stale_after`` reads ``stale``."""
        status = self._status
        if status == "live" and self._stale_after is not None:
            updated = self._updated
            if updated is not None and self._clock() - updated > self._stale_after:
                return "stale"
        return status

    @property
    def callback_lag(self) -> float:
        """Seconds the oldest update not yet handed to the callbacks has waited (0.0: none)."""
        since = self._pending_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    @property
    def error(self) -> BaseException | None:
        """The exception that put this frame in status ``error`` (a rejected subscription)."""
        return self._error

    # --- callbacks and waiting -----------------------------------------------------------------

    def on_update(self, fn: Callable[[LiveFrame], Any]) -> int:
        """Call ``fn(live_frame)`` after updates and on status changes, on a callback worker
        thread (never the stream thread). Calls for one frame never overlap; updates that
        arrive while a call runs are handed over together in the next one (the frame shows
        the latest version; ``callbacks_skipped`` counts the versions no call saw). Returns a
        handle for :meth:`remove_callback`. Exceptions raised by ``fn`` are counted
        (``callback_errors``), never propagated, and logged: the first with its traceback at
        ERROR, the later ones of the same ``fn`` at DEBUG."""
        if not callable(fn):
            raise InvalidArgument(f"on_update needs a callable, got {fn!r}")
        handle = next(self._handles)
        with self._cond:
            self._callbacks[handle] = fn
        return handle

    def remove_callback(self, handle: int) -> None:
        """Stop calling the callback of ``handle``; when a call of it is running on another
        thread, returns once that call has ended (what it collects is then complete)."""
        with self._cond:
            self._callbacks.pop(handle, None)
            while (self._calling is not None and self._calling[0] == handle
                   and self._calling[1] != threading.get_ident()):
                self._cond.wait()

    def wait(self, updates: int = 1, timeout: float | None = 10.0) -> LiveFrame:
        """Block until ``updates`` more updates have been applied since the call
        (``updates=0``: until the frame holds any data). Returns self.

        Raises the subscription's error if it is rejected, :class:`StreamClosed` if the frame
        is closed, :class:`StreamTimeout` (a ``TimeoutError``) on timeout."""
        if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0:
            raise InvalidArgument(f"updates must be a non-negative integer, got {updates!r}")
        deadline = None if timeout is None else time.monotonic() + validate.seconds(timeout)
        with self._cond:
            target = max(self._version + updates, 1)
            while self._version < target:
                self._raise_if_dead()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise StreamTimeout(
                        f"{self._label()}: {updates} update(s) did not arrive within "
                        f"{timeout} s (status {self._status}){self._holds_data_note()}")
                self._cond.wait(remaining)
        return self

    def _holds_data_note(self) -> str:
        """For a timeout of a frame that has data: wait() counts updates after the call, and
        some kinds (instrument state, a finished replay) may not change for a long time."""
        if self._version < 1:
            return ""
        return ("; it holds data already (version " + str(self._version) + "): read .df, "
                "or wait(0) returns at once when there is data")

    def _raise_if_dead(self) -> None:
        if self._status == "error" and self._error is not None:
            raise self._error
        if self._status == "closed":
            raise StreamClosed(f"{self._label()} is closed")

    def close(self) -> None:
        """Unsubscribe and stop updating (idempotent). A recorder of the frame has what the
        frame received on disk when this returns."""
        if self._status == "closed":
            return
        closer, self._closer = self._closer, None
        self._set_status("closed")   # no batch is applied from now on
        with self._cond:   # the batches applied before have reached the sinks (a recorder)
            self._cond.wait_for(lambda: not self._applying, SINK_WAIT)
        if closer is not None:
            try:
                closer(self)
            except InviaError as exc:
                log.warning("closing %s: %s", self._label(), exc)

    def __enter__(self) -> LiveFrame:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- delivery (see FrameWriter) -------------------------------------------------------------

    def _add_sink(self, sink: Callable[..., Any]) -> tuple[pd.DataFrame, float | None]:
        """From now on ``sink(items, now, raw)`` receives every batch of wire objects the stream
        applies, with the bytes of every message when the route keeps them (``Route.raw``; a
        conflated book's items are then only the latest, the bytes all of them) or None (a
        recorder); it runs on the stream thread, so it must only hand the batch over.
        Returns what the frame held when the sink was attached (its ``.df`` and the time of its
        last update), so that nothing is missed or counted twice."""
        with self._lock:
            self._sinks = (*self._sinks, sink)
            snapshot = self._state.snapshot()
            updated = self._updated
        return self._state.frame(snapshot), updated

    def _remove_sink(self, sink: Callable[..., Any]) -> None:
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def _publish(self) -> None:
        with self._cond:
            self._cond.notify_all()
            if not self._callbacks:
                return
            if self._pending_since is None:
                self._pending_since = time.monotonic()
            if self._delivering:
                return  # the worker holding this frame delivers it again when its call ends
            self._delivering = True
        self._dispatcher.schedule(self)

    def _deliver(self) -> None:
        """Run on a dispatcher worker: call the callbacks until no update is pending."""
        while True:
            with self._cond:
                if self._pending_since is None or not self._callbacks:
                    self._delivering = False
                    self._pending_since = None
                    return
                self._pending_since = None
                version = self._version
                skipped = version - self._delivered_version - 1
                self._delivered_version = version
                callbacks = list(self._callbacks.items())
            if skipped > 0:
                self.callbacks_skipped += skipped
            for handle, fn in callbacks:
                with self._cond:
                    if handle not in self._callbacks:   # removed meanwhile
                        continue
                    self._calling = (handle, threading.get_ident())
                try:
                    self._call(handle, fn)
                finally:
                    with self._cond:
                        self._calling = None
                        self._cond.notify_all()

    def _call(self, handle: int, fn: Callable[[LiveFrame], Any]) -> None:
        try:
            fn(self)
        except Exception:
            self.callback_errors += 1
            if handle in self._failed_callbacks:  # a traceback per update would flood
                log.debug("callback %r of %s raised again", fn, self._label(), exc_info=True)
                return
            self._failed_callbacks.add(handle)
            log.exception("callback %r of %s raised (its later errors are logged at DEBUG "
                          "and counted in callback_errors)", fn, self._label())

    def _set_status(self, status: str, error: BaseException | None = None) -> None:
        with self._cond:
            if self._status == "closed" or self._status == status and error is None:
                return
            if self._status == "error" and status != "closed":
                return
            self._status = status
            if error is not None:
                self._error = error
        self._publish()

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

    def __str__(self) -> str:
        """The status line and the head of the frame, like the notebook's HTML view."""
        frame = self.df
        more = f"\n... {len(frame) - SHOWN_ROWS} more rows" if len(frame) > SHOWN_ROWS else ""
        return f"{self.status_line()}\n{frame.head(SHOWN_ROWS).to_string()}{more}"

    def __getattr__(self, name: str) -> Any:
        # only reached for names a LiveFrame lacks: a DataFrame's (live.tail(), live.side)
        if not name.startswith("_") and (hasattr(pd.DataFrame, name) or _is_column(self, name)):
            raise AttributeError(
                f"'LiveFrame' object has no attribute {name!r}: a LiveFrame holds a frame that "
                f"changes; take the current one with .df, e.g. live.df.{name}")
        raise AttributeError(f"'LiveFrame' object has no attribute {name!r}")

    def __getitem__(self, key: Any) -> Any:
        raise TypeError(f"a LiveFrame is not subscriptable: index the current frame, "
                        f"live.df[{key!r}]")

    def __len__(self) -> int:
        raise TypeError("a LiveFrame has no len(): its rows change as the stream writes; "
                        "count the current frame's, len(live.df)")

    def __bool__(self) -> bool:   # (not through __len__: a LiveFrame is always an object)
        return True

    def sample(self, every: Any = "1s", duration: Any = "30s", depth: int | None = None
               ) -> pd.DataFrame:
        """For an order book: mid, spread, weighted mid, microprice, imbalance... (see
        :func:`invia_data.book_stats`) every ``every`` for ``duration``, as a time-indexed
        frame. Blocks for ``duration``: ``book.sample("250ms", "10s")``. A replayed book
        counts both in simulated time (at ``speed=10``, ``"10s"`` takes one second; a paused
        replay waits for ``resume()``; a replay that ends first gives the samples up to its
        end, with a warning)."""
        if self.kind != "orderbook":
            from ..errors import InvalidArgument

            raise InvalidArgument(f"sample() reads order books; this frame is {self.kind}: "
                                  "use on_update(fn) to collect its changes")
        from ..books import sample_book

        if self._clock is time.time:
            return sample_book(self, every, duration, depth)
        # a replayed book: the samples are paced and dated by its simulated clock
        return sample_book(self, every, duration, depth, clock=self._clock, dated=self._clock,
                           sleep=self._clock_sleep(), ended=lambda: self._status == "ended")

    def _clock_sleep(self, poll: float = 0.02, stall: float = 10.0) -> Callable[[float], None]:
        """A sleep for waits in this frame's own (simulated) time: polls, and raises once the
        clock has not moved for ``stall`` real seconds (a paused or finished replay)."""
        moved = [self._clock(), time.monotonic()]

        def sleep(seconds: float) -> None:
            time.sleep(min(seconds, poll))
            now = self._clock()
            if now != moved[0]:
                moved[:] = [now, time.monotonic()]
            elif time.monotonic() - moved[1] > stall:
                raise StreamTimeout(f"{self._label()}: its clock has not moved for {stall:g} s "
                                    "(a paused replay, or one at its end): resume() the replay, "
                                    "or sample a shorter duration")
        return sleep

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
        body = cast(Any, self.df)._repr_html_() or ""
        return (f'<div><div style="font-family:monospace;color:{colour}">'
                f"&#9679; {status}</div>{body}</div>")


class FrameWriter:
    """The stream's side of one :class:`LiveFrame`: everything that changes it goes through
    here (a replay or a test drives a LiveFrame the same way).

    ``apply(items, now, messages)`` applies a batch of wire messages under one lock;
    ``merge(change)`` runs ``change(reducer)`` under the lock (an HTTP backfill);
    ``read(fn)`` reads the reducer under the lock; ``set_status(status, error)``;
    ``publish()`` wakes waiters and schedules the callbacks (call it after the writes of
    one batch, with no lock held)."""

    __slots__ = ("frame",)

    def __init__(self, frame: LiveFrame) -> None:
        self.frame = frame

    def apply(self, items: Any, now: float | None, messages: int | None = None,
              raw: list[bytes] | None = None) -> tuple[int, Exception | None]:
        """Apply a batch of messages (one socket read). Returns how many changed the state
        and the last error of a message the reducer refused (the others of the batch are
        still applied). ``messages``: how many messages ``items`` stand for when superseded
        ones were dropped (a conflated order book); the version counts them. ``now``: unix
        time the messages were received. ``raw``: the bytes of every message of the batch
        (``messages`` of them, also the superseded ones), for the sinks (when the route was
        asked for them)."""
        frame = self.frame
        failure = None
        count = 0
        with frame._lock:
            if frame._status == "closed":
                return 0, None
            extend = getattr(frame._state, "extend", None)
            count = extend(items) if extend is not None and len(items) > 1 else 0
            if not count:  # no fast path, or the batch is not a plain run of new rows
                apply = frame._state.apply
                for data in items:
                    try:
                        if apply(data):
                            count += 1
                    except Exception as exc:  # bad data in one message must not stop the batch
                        failure = exc
            if count:
                if messages is not None and messages > len(items):
                    count += messages - len(items)
                frame._version += count
                frame._updated = now
                if frame._status != "live" and frame._status != "error":
                    frame._status = "live"
            sinks = frame._sinks
            if sinks:
                frame._applying += 1
        if not sinks:
            return count, failure
        try:
            for sink in sinks:
                try:
                    sink(items, now, raw)
                except Exception:  # a broken sink must not take the connection down
                    log.exception("a sink of %s failed", frame._label())
        finally:
            with frame._cond:
                frame._applying -= 1
                if not frame._applying:
                    frame._cond.notify_all()
        return count, failure

    def apply_one(self, data: Any, now: float | None = None) -> bool:
        """Apply one message and publish; raises what the reducer raised."""
        applied, failure = self.apply((data,), self.frame._clock() if now is None else now)
        if failure is not None:
            raise failure
        if applied:
            self.publish()
        return applied == 1

    def merge(self, change: Callable[[Any], Any]) -> Any:
        """``change(reducer)`` under the lock; bumps the version when it reports a change."""
        frame = self.frame
        now = frame._clock()   # (read before the lock: a replay's clock takes the replay's)
        with frame._cond:
            if frame._status == "closed":
                return 0
            result = change(frame._state)
            if result:
                frame._version += 1
                frame._updated = now
            return result

    def read(self, fn: Callable[[Any], Any]) -> Any:
        with self.frame._cond:
            return fn(self.frame._state)

    def set_status(self, status: str, error: BaseException | None = None) -> None:
        self.frame._set_status(status, error)

    def publish(self) -> None:
        self.frame._publish()
