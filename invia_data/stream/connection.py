"""The one thread that owns the WebSocket: connect, read, route, reconnect, watch.

websocket-client performs the handshake (and TLS); afterwards the thread reads the raw socket
in large chunks, splits frames with :class:`wire.FrameReader`, turns each into an event with
:class:`protocol.Session` and applies data to LiveFrames, then notifies the touched frames
once per read (after their locks are released). User threads send subscribe/unsubscribe
frames directly under ``Connection._lock``; the same lock guards the session and the
registry, so every subscription is sent exactly once per connection.

Reliability: reconnect with exponential backoff and jitter, resubscribe everything with fresh
guids and a fresh token, a staleness watchdog per market-data subscription, WebSocket pings
when the socket goes quiet, re-sending with a fresh token after a 401 frame.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import websocket

from ..errors import InvalidArgument, InviaError, StreamError, error_for_status
from .live import LiveFrame
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

WATCHED_KINDS = frozenset({"orderbook", "quotes", "bars", "all_trades"})
CONFLATED_KINDS = frozenset({"orderbook"})  # every message is a complete book
AUTH_RETRIES = 3
TRANSIENT_RETRIES = 5
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


class Sub:
    """One server subscription feeding a LiveFrame, with its health counters."""

    def __init__(self, frame: LiveFrame, request: Request, symbol: str | None,
                 exchange: str | None,
                 refresh: Callable[[Sub], Request] | None = None) -> None:
        self.frame = frame
        self.kind = request.kind
        self.symbol = symbol
        self.exchange = exchange
        self.route = Route(request, target=self, conflate=request.kind in CONFLATED_KINDS)
        self.refresh = refresh
        self.settled = threading.Event()
        self.awaited = False  # a subscribing call is waiting and will raise a rejection itself
        self.rejection: BaseException | None = None
        self.messages = 0
        self.errors = 0
        self.reconnects = 0
        self.gaps = 0
        self.auth_retries = 0
        self.transient_retries = 0
        self.retry_at: float | None = None  # monotonic time of a re-send after a 429/5xx
        self.sent_at = 0.0
        self.last_message: float | None = None
        self.meter = RateMeter(time.monotonic())

    @property
    def request(self) -> Request:
        return self.route.request

    def __repr__(self) -> str:
        return f"<Sub {self.kind} {self.symbol} guid={self.route.guid}>"


class Connection:
    """A WebSocket connection with every subscription of one :class:`Stream`."""

    def __init__(self, url: str, token_provider: Callable[[], str], *,
                 stale_after: float | None = 60.0, ping_interval: float = 10.0,
                 reconnect_delay: float = 0.5, max_reconnect_delay: float = 15.0,
                 connect_timeout: float = 5.0, sslopt: dict[str, Any] | None = None,
                 on_reconnect: Callable[[list[Sub], float], None] | None = None) -> None:
        self.url = url
        self._token_provider = token_provider
        self._invalidate = getattr(getattr(token_provider, "__self__", None), "invalidate", None)
        self.stale_after = stale_after
        self.ping_interval = ping_interval
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.connect_timeout = connect_timeout
        self._sslopt = sslopt
        self._on_reconnect = on_reconnect
        self._lock = threading.RLock()
        self._session = Session()
        self._subs: list[Sub] = []
        self._ws: websocket.WebSocket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._reconnect_now = False
        self._last_token: str | None = None
        self.connected = threading.Event()
        self.stats = {"connects": 0, "reconnects": 0, "malformed": 0, "unknown_guid": 0,
                      "error_frames": 0, "protocol_errors": 0, "stale": 0, "pings": 0}
        self.last_error: str | None = None

    # --- user-thread side ----------------------------------------------------------------------

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def add(self, sub: Sub) -> None:
        if self._closing.is_set():
            raise StreamError("the stream is closed")
        sub.request.check()  # a field that cannot be encoded fails this call only
        with self._lock:
            if self._ws is not None:
                self._send_subscribe(sub)
            self._subs.append(sub)
            self._start()

    def remove(self, sub: Sub) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            if self._ws is None or self._session.routes.get(sub.route.guid) is not sub.route:
                self._session.forget(sub.route)
                return
            try:
                token = self._token()
            except InviaError as exc:  # no token, no frame: stop routing it all the same
                log.warning("unsubscribing %s %s without a token: %s", sub.kind, sub.symbol, exc)
                self._session.forget(sub.route)
                return
            frame = self._session.unsubscribe(sub.route, token)
            if frame is not None:
                self._send(frame)

    def subs(self) -> list[Sub]:
        with self._lock:
            return list(self._subs)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the socket (idempotent)."""
        self._closing.set()
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

    # --- sending (caller holds the lock) ------------------------------------------------------

    def _token(self) -> str:
        token = self._token_provider()
        self._last_token = token
        return token

    def _send_subscribe(self, sub: Sub) -> None:
        if sub.refresh is not None and sub.route.guid:
            sub.route.request = sub.refresh(sub)
        frame = self._session.subscribe(sub.route, self._token())
        sub.sent_at = time.monotonic()
        self._send(frame)

    def _resubscribe(self, sub: Sub) -> None:
        """Send ``sub`` again on the thread's behalf; a request that can no longer be encoded
        fails that subscription alone."""
        try:
            self._send_subscribe(sub)
        except InvalidArgument as exc:
            log.warning("%s %s cannot be resubscribed: %s", sub.kind, sub.symbol, exc)
            if sub in self._subs:
                self._subs.remove(sub)
            sub.errors += 1
            sub.rejection = exc
            sub.settled.set()
            sub.frame._set_status("error", exc)

    def _send(self, frame: str) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            ws.send(frame)
        except (OSError, websocket.WebSocketException) as exc:
            # the reader sees the broken socket and reconnects; the frame is re-sent then
            log.debug("send failed: %s", exc)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="invia-data-stream",
                                            daemon=True)
            self._thread.start()

    # --- the thread ---------------------------------------------------------------------------

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
                self._sleep_backoff(attempt)
                continue
            healthy = False
            try:
                healthy = self._serve(ws, lost_at)
            except InviaError as exc:  # e.g. the token provider cannot renew the token
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("stream: %s; reconnecting", self.last_error)
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
            self._sleep_backoff(attempt)
        self.connected.clear()

    def _sleep_backoff(self, attempt: int) -> None:
        if attempt <= 0:
            delay = self.reconnect_delay * random.uniform(0.2, 0.6)
        else:
            delay = min(self.max_reconnect_delay, self.reconnect_delay * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)
        self._closing.wait(delay)

    def _connect(self) -> websocket.WebSocket:
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True,
                                 sslopt=self._sslopt)
        ws.connect(self.url, timeout=self.connect_timeout)
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
                if lost_at is not None:
                    sub.reconnects += 1
                sub.retry_at = None
                self._resubscribe(sub)
        self.stats["connects"] += 1
        self.connected.set()
        if lost_at is not None and self._on_reconnect is not None:
            self._on_reconnect(subs, lost_at)
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
            sub.frame._set_status("reconnecting")

    def _read_loop(self, ws: websocket.WebSocket) -> bool:
        sock = ws.sock
        sock.settimeout(TICK)
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
                if now - last_recv > 2 * self.ping_interval:
                    log.warning("no bytes for %.0f s, reconnecting", now - last_recv)
                    return got_data
                if not pinged and now - last_recv > self.ping_interval:
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
        touched: dict[LiveFrame, None] = {}
        if groups:
            wall = time.time()
            for route, (count, items) in groups.items():
                sub = route.target
                sub.messages += count
                sub.meter.add(now, count)
                sub.last_message = now
                if not sub.settled.is_set():
                    sub.settled.set()
                applied, failure = sub.frame._apply_many(items, wall, count)
                if applied:
                    touched[sub.frame] = None
                if failure is not None:
                    sub.errors += 1
                    self.stats["malformed"] += 1
                    _log_counted(self.stats["malformed"], "bad %s data: %s", sub.kind, failure)
        for kind, route, value in events:
            self._event(kind, route, value, now)
        for frame in touched:
            frame._notify()
        return bool(groups)

    def _event(self, kind: int, route: Route | None, value: Any, now: float) -> None:
        if kind == CONFIRMED:
            sub = route.target
            sub.auth_retries = 0
            sub.transient_retries = 0
            sub.settled.set()
            if sub.frame.status in ("connecting", "reconnecting", "stale"):
                sub.frame._set_status("live")
        elif kind == REJECTED:
            status, message = value
            if route is None:
                self._orphan_error(status, message)
            else:
                self._rejected(route.target, status, message)
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

    def _rejected(self, sub: Sub, status: int, message: str) -> None:
        sub.errors += 1
        self.stats["error_frames"] += 1
        if status == 401 and sub.auth_retries < AUTH_RETRIES:
            sub.auth_retries += 1
            log.info("%s %s: token rejected (%s); re-sending with a fresh token",
                     sub.kind, sub.symbol, message)
            self._refresh_token()
            with self._lock:
                if sub in self._subs and self._ws is not None:
                    self._session.forget(sub.route)
                    self._resubscribe(sub)
            return
        if (status == 429 or status >= 500) and sub.transient_retries < TRANSIENT_RETRIES:
            # the server is busy or failing, not refusing this request: try it again later
            sub.transient_retries += 1
            delay = min(30.0, self.reconnect_delay * 2 ** sub.transient_retries)
            sub.retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
            log.info("%s %s: server error %s (%s); retrying in %.1f s", sub.kind, sub.symbol,
                     status, message, sub.retry_at - time.monotonic())
            with self._lock:
                self._session.forget(sub.route)
            return
        error = error_for_status(status, message or "subscription rejected",
                                 request=sub.request.opcode)
        # the caller still waiting gets the exception; a later rejection has only this log
        log.log(logging.INFO if sub.awaited else logging.WARNING, "%s %s rejected: %s",
                sub.kind, sub.symbol, error)
        with self._lock:
            self._session.forget(sub.route)
            if sub in self._subs:
                self._subs.remove(sub)
        sub.rejection = error
        sub.settled.set()
        sub.frame._set_status("error", error)

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
            if self._ws is None:
                return
            for sub in list(self._subs):
                if not sub.route.confirmed and sub.auth_retries < AUTH_RETRIES:
                    sub.auth_retries += 1
                    self._session.forget(sub.route)
                    self._resubscribe(sub)

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
            for sub in subs:
                if sub.retry_at is not None and now >= sub.retry_at and self._ws is not None:
                    sub.retry_at = None
                    self._resubscribe(sub)
        stale = []
        for sub in subs:
            if self.stale_after is None or sub.kind not in WATCHED_KINDS:
                continue
            if sub.frame.status in ("closed", "error"):
                continue
            last = max(sub.last_message or 0.0, sub.sent_at)
            if now - last > self.stale_after:
                stale.append(sub)
        if not stale:
            return True
        self.stats["stale"] += 1
        for sub in stale:
            log.warning("%s %s: no message for %.1f s, reconnecting", sub.kind, sub.symbol,
                        now - max(sub.last_message or 0.0, sub.sent_at))
            sub.frame._set_status("stale")
        return False


def _shutdown(ws: websocket.WebSocket) -> None:
    sock = ws.sock
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


__all__ = ["Connection", "Sub"]
