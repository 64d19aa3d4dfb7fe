"""The threads that move the WebSocket's bytes; every rule lives in :class:`policy.Policy`.

* The **reader** thread connects (websocket-client does the handshake and TLS), reads the raw
  socket in large chunks, splits frames with :class:`wire.FrameReader`, turns them into events
  with :class:`protocol.Session`, applies data through each LiveFrame's writer and asks the
  policy what to do on each answer, tick and reconnect. It never waits for a token.
* The **sender** thread sends what the connection itself decides to send (everything again
  after a reconnect, a re-send after a 401 or a 429): it fetches the token, so a slow token
  server delays those frames, never the reading.
* A user thread subscribing fetches its token and sends its frame itself.

``Connection._lock`` guards the session and the registry only, never I/O: tokens are fetched
and frames sent with it released. A frame that fails to send leaves the socket in an unknown
state, so the connection is dropped and everything is subscribed again on the next one.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websocket

from ..errors import InvalidArgument, InviaError, StreamError, error_for_status
from .live import FrameWriter, LiveFrame
from .policy import (
    BACKFILLED_KINDS,
    FAIL,
    PING,
    RECONNECT,
    RESEND,
    RETRY,
    SWITCH_TO_WS,
    Policy,
    Retry,
)
from .protocol import (
    CONFIRMED,
    DATA,
    MALFORMED,
    REJECTED,
    UNKNOWN,
    Request,
    Route,
    Session,
)
from .wire import OP_CLOSE, OP_PING, FrameReader, ProtocolViolation, close_code

log = logging.getLogger("invia_data.stream")

CONFLATED_KINDS = frozenset({"orderbook"})  # every message is a complete book
TICK = 0.25
READ_SIZE = 1 << 18
RATE_WINDOW = 5.0    # seconds of recent messages behind health()'s messages_per_s
RATE_BUCKET = 0.1    # arrivals are counted in buckets this wide, so memory stays bounded


class RateMeter:
    """Messages per second over a sliding window of recent arrivals. The window spans the
    meter's age until it is full, so a young subscription is not under-reported, and a
    reconnect does not reset it: the rate dips only as much as messages actually stopped.
    Written by the stream thread, read by any thread."""

    def __init__(self, now: float) -> None:
        self._born = now
        self._buckets: deque[list[int]] = deque()   # [bucket number, count], oldest first
        self._lock = threading.Lock()

    def add(self, now: float, count: int) -> None:
        bucket = int(now // RATE_BUCKET)
        with self._lock:
            if self._buckets and self._buckets[-1][0] == bucket:
                self._buckets[-1][1] += count
            else:
                self._buckets.append([bucket, count])
            self._forget(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._forget(now)
            recent = sum(count for _, count in self._buckets)
        return recent / min(RATE_WINDOW, max(now - self._born, RATE_BUCKET))

    def _forget(self, now: float) -> None:
        while self._buckets and (self._buckets[0][0] + 1) * RATE_BUCKET <= now - RATE_WINDOW:
            self._buckets.popleft()


class _NoFrame:
    """The writer of a subscription whose frame was collected: data for it goes nowhere."""

    def apply(self, *args: Any, **kwargs: Any) -> tuple[int, Exception | None]:
        return 0, None

    def merge(self, change: Callable[[Any], Any]) -> int:
        return 0

    def read(self, fn: Callable[[Any], Any]) -> Any:
        return None

    def set_status(self, status: str, error: BaseException | None = None) -> None:
        pass

    def publish(self) -> None:
        pass


NO_FRAME = _NoFrame()


class Sub:
    """One server subscription feeding a LiveFrame, with its health counters."""

    def __init__(self, frame: LiveFrame, request: Request, symbol: str | None,
                 exchange: str | None,
                 refresh: Callable[[Sub], Request] | None = None) -> None:
        # weakly: a frame nobody holds any more is collected, and the stream unsubscribes it
        self._frame = weakref.ref(frame)
        self.kind = request.kind
        self.symbol = symbol
        self.exchange = exchange
        self.route = Route(request, target=self, conflate=request.kind in CONFLATED_KINDS)
        self.refresh = refresh
        self.settled = threading.Event()
        # set while the server serves this subscription on the current connection: a backfill
        # waits for it, so that what it fetches meets what the new subscription sends
        self.resumed = threading.Event()
        self.awaited = False  # a subscribing call is waiting and will raise a rejection itself
        self.rejection: BaseException | None = None
        self.retry = Retry()
        self.sent_on: Any = None  # the socket this subscription was last sent on
        self.messages = 0
        self.errors = 0
        self.reconnects = 0
        self.gaps = 0
        self.unfilled = 0  # gaps that the HTTP backfill could not fill completely
        self.meter = RateMeter(time.monotonic())

    @property
    def frame(self) -> LiveFrame | None:
        """The frame fed, or None once it was collected (its unsubscribe is on its way)."""
        return self._frame()

    @property
    def writer(self) -> FrameWriter | _NoFrame:
        frame = self._frame()
        return FrameWriter(frame) if frame is not None else NO_FRAME

    @property
    def request(self) -> Request:
        return self.route.request

    @property
    def last_message(self) -> float | None:
        return self.retry.last_message

    def cursor(self) -> Any:
        """Where the data held ends (None for kinds that are not backfilled)."""
        if self.kind not in BACKFILLED_KINDS:
            return None
        return self.writer.read(lambda state: state.cursor())

    def __repr__(self) -> str:
        return f"<Sub {self.kind} {self.symbol} guid={self.route.guid}>"


class Sender:
    """A daemon thread running send jobs in order (a job fetches a token and sends)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="invia-data-send",
                                                 daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def stop(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("stream send job failed")


class Connection:
    """A WebSocket connection with every subscription of one :class:`Stream`.

    ``on_gap(sub, cursor, lost_at)`` is called on the reader thread whenever a subscription
    may have missed data: after a reconnect (for every subscription) and after a malformed
    frame (for the subscription it names, or every backfilled one when it names none).
    ``fallback_to_ws``: when the server refuses a data subscription on ``/cws`` as an
    unknown operation, switch to ``/ws`` once."""

    def __init__(self, url: str, token_provider: Callable[[], str], *,
                 stale_after: float | None = 60.0, ping_interval: float = 10.0,
                 reconnect_delay: float = 0.5, max_reconnect_delay: float = 15.0,
                 connect_timeout: float = 5.0, sslopt: dict[str, Any] | None = None,
                 on_gap: Callable[[Sub, Any, float], None] | None = None,
                 fallback_to_ws: bool = False, policy: Policy | None = None,
                 sender: Any = None) -> None:
        self.url = url
        self._token_provider = token_provider
        self._invalidate = getattr(getattr(token_provider, "__self__", None), "invalidate", None)
        self.policy = policy or Policy(stale_after=stale_after, ping_interval=ping_interval,
                                       reconnect_delay=reconnect_delay,
                                       max_reconnect_delay=max_reconnect_delay)
        self.connect_timeout = connect_timeout
        self._sslopt = sslopt
        self._on_gap = on_gap
        self._fallback_to_ws = fallback_to_ws and urlsplit(url).path.rstrip("/") == "/cws"
        self._lock = threading.RLock()
        self._session = Session()
        self._subs: list[Sub] = []
        self._ws: websocket.WebSocket | None = None
        self._thread: threading.Thread | None = None
        self._sender = sender or Sender()
        self._closing = threading.Event()
        self._reconnect_now = False
        self._last_token: str | None = None
        self.connected = threading.Event()
        self.stats = {"connects": 0, "reconnects": 0, "malformed": 0, "unknown_guid": 0,
                      "error_frames": 0, "protocol_errors": 0, "stale": 0, "pings": 0,
                      "send_failures": 0}
        self.last_error: str | None = None

    @property
    def stale_after(self) -> float | None:
        return self.policy.stale_after

    # --- user-thread side ----------------------------------------------------------------------

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def add(self, sub: Sub) -> None:
        """Register ``sub`` and send it now if connected (from the calling thread)."""
        if self._closing.is_set():
            raise StreamError("the stream is closed")
        sub.request.check()  # a field that cannot be encoded fails this call only
        with self._lock:
            self._subs.append(sub)
            ws = self._ws
            self._start()
        if ws is not None:
            try:
                self._subscribe(sub, ws, force=False)
            except InvalidArgument:
                with self._lock:
                    if sub in self._subs:
                        self._subs.remove(sub)
                raise

    def remove(self, sub: Sub) -> None:
        """Stop routing ``sub``; the unsubscribe frame carries the last token used (fetching
        a new one could wait for the token server, and the server ends the guid anyway when
        the connection goes)."""
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            ws = self._ws
            if ws is None or self._session.routes.get(sub.route.guid) is not sub.route:
                self._session.forget(sub.route)
                return
            frame = self._session.unsubscribe(sub.route, self._last_token or "")
        if frame is not None:
            self._send(ws, frame)

    def subs(self) -> list[Sub]:
        with self._lock:
            return list(self._subs)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads and close the socket (idempotent)."""
        self._closing.set()
        self._sender.stop()
        with self._lock:
            ws = self._ws
        if ws is not None:
            try:  # a polite close frame first; the server then ends its side at once
                ws.send_close()
            except (OSError, websocket.WebSocketException):
                pass
            _shutdown(ws)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("stream thread did not stop within %.1f s", timeout)

    def request_reconnect(self) -> None:
        """Drop the connection now; the thread reconnects and resubscribes everything."""
        self._reconnect_now = True
        with self._lock:
            ws = self._ws
        if ws is not None:
            _shutdown(ws)

    # --- sending (never under the lock) -------------------------------------------------------

    def _token(self) -> str:
        token = self._token_provider()
        self._last_token = token
        return token

    def _subscribe(self, sub: Sub, ws: Any, *, force: bool) -> bool:
        """Send ``sub`` on ``ws`` unless the connection changed or it was sent there already
        (``force``: send again, with a new guid). Raises InvalidArgument when a field cannot
        be encoded."""
        token = self._token()
        with self._lock:
            if self._ws is not ws or sub not in self._subs or self._closing.is_set():
                return False
            if sub.sent_on is ws and not force:
                return False
            if sub.refresh is not None and sub.route.guid and not force:  # a new connection
                sub.route.request = sub.refresh(sub)
            self._session.forget(sub.route)
            frame = self._session.subscribe(sub.route, token)
            sub.sent_on = ws
            self.policy.sent(sub.retry, time.monotonic())
        return self._send(ws, frame)

    def _queue_subscribe(self, sub: Sub, ws: Any, *, force: bool) -> None:
        """Have the sender thread (re)send ``sub``."""
        def job() -> None:
            try:
                self._subscribe(sub, ws, force=force)
            except InvalidArgument as exc:
                self._fail(sub, exc, f"{sub.kind} {sub.symbol} cannot be resubscribed")
            except InviaError as exc:  # no token: the connection is useless, start over
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("stream: %s; reconnecting", self.last_error)
                self._drop(ws)
        self._sender.submit(job)

    def _send(self, ws: Any, frame: str) -> bool:
        try:
            ws.send(frame)
            return True
        except (OSError, websocket.WebSocketException) as exc:
            # a frame may be half written: start over on a new connection, which sends
            # every subscription again
            self.stats["send_failures"] += 1
            log.info("send failed (%s); reconnecting", type(exc).__name__)
            self._drop(ws)
            return False

    def _drop(self, ws: Any) -> None:
        with self._lock:
            if self._ws is not ws:
                return
        self._reconnect_now = True
        _shutdown(ws)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="invia-data-stream",
                                            daemon=True)
            self._thread.start()

    # --- the reader thread --------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        lost_at: float | None = None
        while not self._closing.is_set():
            try:
                ws = self._connect()
            except Exception as exc:  # refused, timed out, handshake rejected, TLS
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("connect to %s failed: %s", self.url, self.last_error)
                attempt += 1
                self._closing.wait(self.policy.backoff(attempt))
                continue
            healthy = False
            try:
                healthy = self._serve(ws, lost_at)
            except Exception:
                log.exception("stream thread: unexpected error; reconnecting")
            finally:
                self._disconnected(ws)
            if self._closing.is_set():
                break
            if healthy or lost_at is not None:  # a connection that never delivered has no gap
                lost_at = time.time()
            attempt = 0 if healthy else attempt + 1
            self.stats["reconnects"] += 1
            self._closing.wait(self.policy.backoff(attempt))
        self.connected.clear()

    def _connect(self) -> websocket.WebSocket:
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True,
                                 sslopt=self._sslopt)
        ws.connect(self.url, timeout=self.connect_timeout)
        if ws.sock is not None:
            ws.sock.settimeout(TICK)
        return ws

    def _serve(self, ws: websocket.WebSocket, lost_at: float | None) -> bool:
        """Subscribe everything, then read until the connection ends. True when the connection
        delivered data (the backoff starts over)."""
        with self._lock:
            if self._closing.is_set():
                return False
            self._ws = ws
            self._session.reset()
            self._reconnect_now = False
            subs = list(self._subs)
            for sub in subs:
                sub.sent_on = None
                if lost_at is not None:
                    sub.reconnects += 1
                sub.retry.retry_at = None
        self.stats["connects"] += 1
        self.connected.set()
        if lost_at is not None:
            # cursors are read before anything is subscribed again, so the first new message
            # cannot hide the outage from the backfill
            for sub in subs:
                self._gap(sub, sub.cursor(), lost_at)
        for sub in subs:
            self._queue_subscribe(sub, ws, force=False)
        return self._read_loop(ws)

    def _disconnected(self, ws: websocket.WebSocket) -> None:
        self.connected.clear()
        with self._lock:
            self._ws = None
            self._session.reset()
            subs = list(self._subs)
        _shutdown(ws)
        if self._closing.is_set():
            return
        for sub in subs:
            sub.resumed.clear()
            sub.writer.set_status("reconnecting")

    def _read_loop(self, ws: websocket.WebSocket) -> bool:
        sock = ws.sock
        assert sock is not None  # a connected socket
        reader = FrameReader()
        got_data = False
        last_recv = last_tick = time.monotonic()
        pinged = False
        while not self._closing.is_set() and not self._reconnect_now:
            try:
                chunk = sock.recv(READ_SIZE)
            except TimeoutError:
                chunk = None
            except OSError as exc:
                if not self._closing.is_set() and not self._reconnect_now:
                    log.info("connection lost: %s", exc)
                return got_data
            now = time.monotonic()
            if chunk is not None:
                if not chunk:
                    log.info("connection closed by the server")
                    return got_data
                last_recv = now
                pinged = False
                try:
                    payloads = reader.feed(chunk)
                except ProtocolViolation as exc:
                    self.stats["protocol_errors"] += 1
                    log.warning("protocol violation, reconnecting: %s", exc)
                    return got_data
                if payloads:
                    got_data = self._process(payloads, now) or got_data
                if reader.control and not self._control(ws, reader):
                    return got_data
            if now - last_tick >= TICK:
                last_tick = now
                if not self._tick(now):
                    return got_data
                action = self.policy.keepalive(now, last_recv, pinged)
                if action == RECONNECT:
                    log.warning("no bytes for %.0f s, reconnecting", now - last_recv)
                    return got_data
                if action == PING:
                    pinged = True
                    self.stats["pings"] += 1
                    try:
                        ws.ping()
                    except (OSError, websocket.WebSocketException):
                        return got_data
        return got_data

    def _control(self, ws: websocket.WebSocket, reader: FrameReader) -> bool:
        """Answer pings; False on a close frame."""
        frames, reader.control = reader.control, []
        for opcode, payload in frames:
            try:
                if opcode == OP_PING:
                    ws.pong(payload)
                elif opcode == OP_CLOSE:
                    code, reason = close_code(payload)
                    log.info("server closed the connection: %s %s", code, reason)
                    try:
                        ws.send_close()
                    except (OSError, websocket.WebSocketException):
                        pass
                    return False
            except (OSError, websocket.WebSocketException):
                return False
        return True

    def _process(self, payloads: list[bytes], now: float) -> bool:
        groups, events = self._session.receive_many(payloads)
        if events:
            self._malformed_gaps(events)
        touched: dict[FrameWriter, None] = {}
        if groups:
            wall = time.time()
            policy = self.policy
            for route, (count, items, *raw) in groups.items():
                sub = route.target
                sub.messages += count
                sub.meter.add(now, count)
                policy.message(sub.retry, now)
                if not sub.settled.is_set():
                    sub.settled.set()
                if not sub.resumed.is_set():
                    sub.resumed.set()
                cursor = sub.cursor() if sub.kind in BACKFILLED_KINDS else None
                applied, failure = sub.writer.apply(items, wall, count, raw[0] if raw else None)
                if applied:
                    touched[sub.writer] = None
                if failure is not None:
                    sub.errors += 1
                    self.stats["malformed"] += 1
                    _log_counted(self.stats["malformed"], "bad %s data: %s", sub.kind, failure)
                    self._gap(sub, cursor, wall)
        for kind, route, value in events:
            self._event(kind, route, value, now)
        for writer in touched:
            writer.publish()
        return bool(groups)

    def _malformed_gaps(self, events: list[Any]) -> None:
        """A malformed frame may have carried data: open a gap on the subscription it names,
        or on every backfilled subscription when it names none (read before this batch's data
        is applied, so the gap starts before the lost message)."""
        named = [route.target for kind, route, _ in events if kind == MALFORMED and route]
        anonymous = any(kind == MALFORMED and route is None for kind, route, _ in events)
        if not named and not anonymous:
            return
        targets = dict.fromkeys(named)
        if anonymous:
            with self._lock:
                targets.update(dict.fromkeys(s for s in self._subs if s.kind in BACKFILLED_KINDS))
        wall = time.time()
        for sub in targets:
            self._gap(sub, sub.cursor(), wall)

    def _gap(self, sub: Sub, cursor: Any, lost_at: float) -> None:
        sub.gaps += 1
        if self._on_gap is not None:
            self._on_gap(sub, cursor, lost_at)

    def _event(self, kind: int, route: Route | None, value: Any, now: float) -> None:
        if kind == CONFIRMED:
            assert route is not None  # the protocol names the route of every result
            sub = route.target
            self.policy.confirmed(sub.retry)
            sub.settled.set()
            sub.resumed.set()
            frame = sub.frame
            if frame is not None and frame._status in ("connecting", "reconnecting", "stale"):
                sub.writer.set_status("live")
        elif kind == REJECTED:
            status, message = value
            if route is None:
                self._orphan_error(status, message)
            else:
                self._rejected(route.target, status, message, now)
        elif kind == UNKNOWN:
            self.stats["unknown_guid"] += 1
            _log_counted(self.stats["unknown_guid"], "frame for unknown guid %r", value)
        elif kind == MALFORMED:
            self.stats["malformed"] += 1
            if route is not None:
                route.target.errors += 1
            _log_counted(self.stats["malformed"], "malformed frame: %s", value)
        elif kind == DATA:  # only from Session.receive(); receive_many groups data
            raise StreamError("data events are applied in batches")

    def _rejected(self, sub: Sub, status: int, message: str, now: float) -> None:
        sub.errors += 1
        self.stats["error_frames"] += 1
        decision = self.policy.rejected(sub.retry, status, message, now,
                                        on_cws=self._fallback_to_ws)
        with self._lock:
            ws = self._ws
            self._session.forget(sub.route)
        if decision == SWITCH_TO_WS:
            self._switch_to_ws(sub, status, message)
        elif decision == RESEND:
            log.info("%s %s: token rejected (%s); re-sending with a fresh token",
                     sub.kind, sub.symbol, message)
            self._refresh_token()
            if ws is not None:
                self._queue_subscribe(sub, ws, force=True)
        elif decision == RETRY:
            log.info("%s %s: server error %s (%s); retrying in %.1f s", sub.kind, sub.symbol,
                     status, message, (sub.retry.retry_at or now) - now)
        else:
            assert decision == FAIL
            error = error_for_status(status, message or "subscription rejected",
                                     request=sub.request.opcode)
            self._fail(sub, error, f"{sub.kind} {sub.symbol} rejected",
                       level=logging.INFO if sub.awaited else logging.WARNING)

    def _fail(self, sub: Sub, error: BaseException, what: str,
              level: int = logging.WARNING) -> None:
        """``sub`` is refused for good: the caller still waiting gets the exception; a later
        failure has only this log line and the frame's error status."""
        log.log(level, "%s: %s", what, error)
        with self._lock:
            self._session.forget(sub.route)
            if sub in self._subs:
                self._subs.remove(sub)
        sub.rejection = error
        sub.settled.set()
        sub.writer.set_status("error", error)

    def _switch_to_ws(self, sub: Sub, status: int, message: str) -> None:
        parts = urlsplit(self.url)
        self.url = urlunsplit((parts.scheme, parts.netloc, "/ws", "", ""))
        self._fallback_to_ws = False
        log.info("%s %s refused on /cws (%s %s): data subscriptions move to %s",
                 sub.kind, sub.symbol, status, message, self.url)
        sub.errors -= 1  # an expected answer, not an error of the subscription
        self.stats["error_frames"] -= 1
        self._reconnect_now = True

    def _orphan_error(self, status: int, message: str) -> None:
        """An error frame with an empty or unknown guid: count it; after a 401, re-send the
        subscriptions still waiting for their confirmation with a fresh token."""
        self.stats["error_frames"] += 1
        _log_counted(self.stats["error_frames"], "error frame without a known guid: %s %s",
                     status, message)
        if status != 401:
            return
        self._refresh_token()
        with self._lock:
            ws = self._ws
            if ws is None:
                return
            resend = self.policy.orphan_401((sub, sub.retry, sub.route.confirmed)
                                            for sub in self._subs)
        for sub in resend:
            self._queue_subscribe(sub, ws, force=True)

    def _refresh_token(self) -> None:
        if self._invalidate is not None and self._last_token is not None:
            try:
                self._invalidate(self._last_token)
            except Exception as exc:
                log.warning("token invalidation failed: %s", type(exc).__name__)

    def _tick(self, now: float) -> bool:
        """Due re-sends and the staleness watchdog; False asks for a reconnect."""
        with self._lock:
            subs = list(self._subs)
            ws = self._ws
        if ws is not None:
            for sub in self.policy.due(((s, s.retry) for s in subs), now):
                sub.retry.retry_at = None
                self._queue_subscribe(sub, ws, force=True)
        live = [(s, s.kind, s.retry) for s in subs
                if (frame := s.frame) is not None and frame._status not in ("closed", "error")]
        stale = self.policy.stale(live, now)
        if not stale:
            return True
        self.stats["stale"] += 1
        for sub in stale:
            log.warning("%s %s: no message for %.1f s, reconnecting", sub.kind, sub.symbol,
                        self.policy.silence(sub.retry, now))
            sub.writer.set_status("stale")
        return False


def _shutdown(ws: websocket.WebSocket | None) -> None:
    sock = ws.sock if ws is not None else None
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _log_counted(count: int, message: str, *args: Any) -> None:
    """Log the first occurrences at WARNING, later ones only every 1000th (a flood of bad
    frames must not become a flood of log lines)."""
    if count <= 10 or count % 1000 == 0:
        log.warning(message + " (%d so far)", *args, count)
    else:
        log.debug(message, *args)


__all__ = ["Connection", "Sub", "Sender"]
