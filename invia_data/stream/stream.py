"""``inv.stream``: live subscriptions as LiveFrames over one WebSocket connection.

Each call validates its arguments (raising :class:`InvalidArgument` before anything is sent),
registers one or more subscriptions with the :class:`Connection` (which opens the socket on
first use) and waits up to ``timeout`` seconds for the server's answer: a rejection raises
the matching error (``NotFound``, ``BadRequest``, ``AuthError``, ``Forbidden``); silence
returns the LiveFrame, which goes live when the server answers.

After a reconnect, candles and trades missed during the outage are fetched over HTTP (when an
``http`` is given) and merged without duplicates; every outage is recorded as a gap.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pandas as pd

from .. import validate
from ..auth import decode_claims
from ..errors import InvalidArgument, InviaError, StreamClosed
from ..history import server_now
from ..market import check_board, check_count, check_exchange, parse_symbol
from ..schema import normalize_format
from ..timeframes import to_seconds, to_wire
from ..times import to_epoch_seconds
from .connection import Connection, Sub
from .live import LiveFrame
from .protocol import (
    MIN_FREQUENCY,
    Request,
    instrument_request,
    portfolio_request,
)
from .state import DEFAULT_BARS_MAXLEN, make_state

log = logging.getLogger("invia_data.stream")

MAX_BOOK_DEPTH = 50
MAX_RECENT_TRADES = 5000
DEFAULT_BAR_COUNT = 500
HEALTH_COLUMNS = ("kind", "symbol", "status", "messages", "messages_per_s",
                  "last_message_age", "reconnects", "errors", "gaps")


def _with_path(url: str, path: str | None) -> str:
    if path is None:
        return url
    if path not in ("/cws", "/ws", "cws", "ws"):
        raise InvalidArgument(f"path must be '/cws' or '/ws', got {path!r}")
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + path.lstrip("/"), "", ""))


# Without a pinned format, each kind takes the fastest format (lowest minimum frequency) that
# carries all its columns, so a live frame holds what the HTTP call of the same kind holds:
# Slim lacks the quote's change and previous close, the position's lots, the own trade's
# settlement date; Simple lacks the quote's currency and the own trade's settlement date.
DEFAULT_FORMATS = {
    "orderbook": "Slim", "all_trades": "Slim", "bars": "Slim", "instrument_state": "Slim",
    "summary": "Slim", "risk": "Slim", "orders": "Slim", "stop_orders": "Slim",
    "positions": "Simple", "forts_risk": "Simple", "quotes": "Heavy", "own_trades": "Heavy",
}


class Stream:
    """Live data of one client: one WebSocket connection (``/cws`` by default, ``path="/ws"``
    selectable), opened on first use. Use as a context manager or call :meth:`close`.

    ``token_provider()`` returns a valid JWT; it is called for every outgoing message (when
    it is a bound method of an object with ``invalidate(token)``, e.g. a TokenManager, a 401
    frame invalidates the token before the subscription is re-sent). ``http`` (``.get(path,
    params)``) fetches trades and candles missed during an outage. ``format`` (default: per
    kind, ``DEFAULT_FORMATS``) and ``frequency`` (ms; default: the format's minimum) apply to
    calls that do not pin their own. ``stale_after``: seconds without a message on a market-data subscription before the
    watchdog reconnects (None: off). ``subscribe_timeout``: how long a call waits for the
    server's answer. ``reconnect_delay``/``max_reconnect_delay``: the exponential backoff
    (with jitter). ``ping_interval``: quiet seconds before a WebSocket ping; twice that with
    no byte received reconnects. ``sslopt``: websocket-client TLS options for ``wss://``.
    ``portfolio``: the default portfolio, or a callable ``(kind, portfolio) -> id`` that
    resolves it as the HTTP calls do (the client passes its own).
    """

    def __init__(self, ws_url: str, token_provider: Callable[[], str], *, http: Any = None,
                 exchange: str = "MOEX",
                 portfolio: str | Callable[[str, str | None], str] | None = None,
                 format: str | None = None,
                 path: str | None = None, frequency: int | None = None,
                 stale_after: float | None = 60.0, subscribe_timeout: float = 5.0,
                 reconnect_delay: float = 0.5, max_reconnect_delay: float = 15.0,
                 ping_interval: float = 10.0, sslopt: dict[str, Any] | None = None) -> None:
        if not isinstance(ws_url, str) or not ws_url.startswith(("ws://", "wss://")):
            raise InvalidArgument(f"ws_url must be a ws:// or wss:// URL, got {ws_url!r}")
        if not callable(token_provider):
            raise InvalidArgument("token_provider must be a callable returning a JWT")
        if stale_after is not None and not stale_after > 0:
            raise InvalidArgument(f"stale_after must be positive or None, got {stale_after!r}")
        self.exchange = check_exchange(exchange)
        self.portfolio = portfolio
        self._token_provider = token_provider
        self.format = None if format is None else normalize_format(format)
        self.frequency = None if frequency is None else check_count(frequency, "frequency", low=0)
        self.subscribe_timeout = subscribe_timeout
        self.http = http
        self.url = _with_path(ws_url, path)
        self._conn = Connection(self.url, token_provider, stale_after=stale_after,
                                ping_interval=ping_interval, reconnect_delay=reconnect_delay,
                                max_reconnect_delay=max_reconnect_delay, sslopt=sslopt,
                                on_reconnect=self._after_reconnect)
        self._lock = threading.Lock()
        self._frames: dict[LiveFrame, list[Sub]] = {}
        self._gaps: deque[dict[str, Any]] = deque(maxlen=1000)
        self._backfills: queue.Queue[tuple[Sub, float, float, Any] | None] = queue.Queue()
        self._backfill_thread: threading.Thread | None = None
        self._closed = False

    # --- market data ---------------------------------------------------------------------------

    def orderbook(self, symbol: str, depth: int = 20, *, exchange: str | None = None,
                  board: str | None = None, format: str | None = None,
                  frequency: int | None = None, timeout: float | None = None) -> LiveFrame:
        """The order book, long form (``side``, ``level``, ``price``, ``volume``, ``yield``),
        replaced by each message; ``df.attrs["time"]`` is the exchange timestamp."""
        depth = check_count(depth, "depth", high=MAX_BOOK_DEPTH)
        ex, sym = parse_symbol(symbol, exchange or self.exchange)
        fmt = self._format(format, "orderbook")
        request = instrument_request("orderbook", sym, ex, board=check_board(board),
                                     format=fmt, depth=depth,
                                     frequency=self._frequency(frequency, fmt))
        state = make_state("orderbook", fmt, attrs={"symbol": sym, "exchange": ex,
                                                    "depth": depth})
        return self._open("orderbook", f"{ex}:{sym}", [(request, sym, ex)], state,
                          {"depth": depth, "board": board, "format": fmt}, timeout)

    def quotes(self, symbols: str | Iterable[str], *, exchange: str | None = None,
               board: str | None = None, format: str | None = None,
               frequency: int | None = None, timeout: float | None = None) -> LiveFrame:
        """Quotes of one or more instruments: one row per instrument, merged field by field."""
        if isinstance(symbols, str):
            items = [s for s in symbols.split(",") if s.strip()]
        elif isinstance(symbols, Iterable):
            items = list(symbols)
        else:
            raise InvalidArgument(f"symbols must be a string or a list, got {symbols!r}")
        if not items:
            raise InvalidArgument("symbols is empty")
        pairs = list(dict.fromkeys(parse_symbol(s, exchange or self.exchange) for s in items))
        fmt = self._format(format, "quotes")
        freq = self._frequency(frequency, fmt)
        board = check_board(board)
        requests = [(instrument_request("quotes", sym, ex, board=board, format=fmt,
                                        frequency=freq), sym, ex) for ex, sym in pairs]
        label = ",".join(f"{ex}:{sym}" for ex, sym in pairs)
        return self._open("quotes", label, requests, make_state("quotes", fmt),
                          {"symbols": [f"{ex}:{sym}" for ex, sym in pairs], "format": fmt},
                          timeout)

    def all_trades(self, symbol: str, *, recent: int = 0, maxlen: int = 100_000,
                   exchange: str | None = None, board: str | None = None,
                   format: str | None = None, timeout: float | None = None) -> LiveFrame:
        """All trades of an instrument (time and sales) in a ring buffer of ``maxlen`` rows,
        deduplicated by id; ``recent`` sends that many earlier trades first (0..5000; the
        wire's ``depth``)."""
        recent = check_count(recent, "recent", low=0, high=MAX_RECENT_TRADES)
        maxlen = check_count(maxlen, "maxlen")
        ex, sym = parse_symbol(symbol, exchange or self.exchange)
        fmt = self._format(format, "all_trades")
        board = check_board(board)
        request = instrument_request("all_trades", sym, ex, board=board, format=fmt,
                                     depth=recent, includeVirtualTrades=False)
        return self._open("all_trades", f"{ex}:{sym}", [(request, sym, ex)],
                          make_state("all_trades", fmt, maxlen=maxlen),
                          {"recent": recent, "maxlen": maxlen, "board": board, "format": fmt},
                          timeout)

    def bars(self, symbol: str, tf: str | int = "1min", *, start: Any = None,
             maxlen: int = DEFAULT_BARS_MAXLEN, exchange: str | None = None,
             board: str | None = None, format: str | None = None,
             frequency: int | None = None, timeout: float | None = None) -> LiveFrame:
        """Candles from ``start`` (default: the last 500 candles) and then live: the open
        candle is updated in place and flagged ``is_closed=False``; a candle is final once a
        later one starts. Same columns as ``Client.history`` plus ``is_closed``. At most
        ``maxlen`` candles are held (48 bytes each), the oldest dropped first."""
        maxlen = check_count(maxlen, "maxlen")
        tf_seconds = to_seconds(tf)
        ex, sym = parse_symbol(symbol, exchange or self.exchange)
        fmt = self._format(format, "bars")
        board = check_board(board)
        if start is None:
            begin = int(time.time()) - DEFAULT_BAR_COUNT * tf_seconds
        else:
            begin = to_epoch_seconds(start, name="start")
        request = instrument_request("bars", sym, ex, board=board, format=fmt,
                                     tf=to_wire(tf), skipHistory=False, splitAdjust=True,
                                     frequency=self._frequency(frequency, fmt))
        request = request.with_fields(**{"from": begin})
        return self._open("bars", f"{ex}:{sym}", [(request, sym, ex)],
                          make_state("bars", fmt, maxlen=maxlen),
                          {"tf": tf_seconds, "start": begin, "maxlen": maxlen, "board": board,
                           "format": fmt},
                          timeout, refresh=_bars_from_last_candle)

    def instrument_state(self, symbol: str, *, exchange: str | None = None,
                         board: str | None = None, format: str | None = None,
                         timeout: float | None = None) -> LiveFrame:
        """Trading status and limits of an instrument: one row, later messages update the
        fields that changed."""
        ex, sym = parse_symbol(symbol, exchange or self.exchange)
        fmt = self._format(format, "instrument_state")
        board = check_board(board)
        request = instrument_request("instrument_state", sym, ex, board=board, format=fmt)
        return self._open("instrument_state", f"{ex}:{sym}", [(request, sym, ex)],
                          make_state("instrument_state", fmt), {"board": board, "format": fmt},
                          timeout)

    # --- portfolio data ------------------------------------------------------------------------

    def positions(self, portfolio: str | None = None, *, exchange: str | None = None,
                 format: str | None = None, timeout: float | None = None) -> LiveFrame:
        """Positions keyed by symbol + exchange, updated in place."""
        return self._portfolio("positions", portfolio, exchange, format, timeout)

    def summary(self, portfolio: str | None = None, *, exchange: str | None = None,
               format: str | None = None, timeout: float | None = None) -> LiveFrame:
        """The portfolio summary: one row."""
        return self._portfolio("summary", portfolio, exchange, format, timeout)

    def risk(self, portfolio: str | None = None, *, exchange: str | None = None,
            format: str | None = None, timeout: float | None = None) -> LiveFrame:
        """Portfolio risk: one row."""
        return self._portfolio("risk", portfolio, exchange, format, timeout)

    def forts_risk(self, portfolio: str | None = None, *, exchange: str | None = None,
                  format: str | None = None, timeout: float | None = None) -> LiveFrame:
        """Derivatives (FORTS) risk of a portfolio: one row."""
        return self._portfolio("forts_risk", portfolio, exchange, format, timeout)

    def orders(self, portfolio: str | None = None, *, exchange: str | None = None,
              format: str | None = None, timeout: float | None = None) -> LiveFrame:
        """Orders keyed by id, updated in place."""
        return self._portfolio("orders", portfolio, exchange, format, timeout)

    def stop_orders(self, portfolio: str | None = None, *, exchange: str | None = None,
                   format: str | None = None, timeout: float | None = None) -> LiveFrame:
        """Stop orders keyed by id, updated in place."""
        return self._portfolio("stop_orders", portfolio, exchange, format, timeout)

    def own_trades(self, portfolio: str | None = None, *, exchange: str | None = None,
                  format: str | None = None, timeout: float | None = None) -> LiveFrame:
        """The portfolio's own trades keyed by id."""
        return self._portfolio("own_trades", portfolio, exchange, format, timeout)

    def _portfolio(self, kind: str, portfolio: str | None, exchange: str | None,
                   format: str | None, timeout: float | None) -> LiveFrame:
        portfolio = self._resolve_portfolio(kind, portfolio)
        ex = check_exchange(exchange or self.exchange)
        fmt = self._format(format, kind)
        request = portfolio_request(kind, portfolio, ex, format=fmt)
        return self._open(kind, portfolio, [(request, portfolio, ex)], make_state(kind, fmt),
                          {"portfolio": portfolio, "exchange": ex, "format": fmt}, timeout)

    def _resolve_portfolio(self, kind: str, portfolio: str | None) -> str:
        """The HTTP calls' rule (:func:`invia_data.validate.resolve_portfolio`): the client's
        resolution when ``portfolio=`` was given a callable, else the token's portfolios."""
        if callable(self.portfolio):
            return self.portfolio(kind, portfolio)
        claims = decode_claims(self._token_provider())
        known = str(claims.get("portfolios") or "").split()
        return validate.resolve_portfolio(portfolio, known, self.portfolio,
                                          "75" if kind == "forts_risk" else "D")

    # --- health and lifetime -------------------------------------------------------------------

    def health(self) -> pd.DataFrame:
        """One row per subscription: ``kind``, ``symbol``, ``status``, ``messages``,
        ``messages_per_s`` (over the last 5 s, kept across reconnects), ``last_message_age``
        (s), ``reconnects``, ``errors``, ``gaps``. ``attrs["connection"]`` holds the connection counters (malformed frames, unknown
        guids, error frames, reconnects, stale events)."""
        now = time.monotonic()
        with self._lock:
            items = [(frame, list(subs)) for frame, subs in self._frames.items()]
        rows = []
        for frame, subs in items:
            for sub in subs:
                rows.append({
                    "kind": sub.kind,
                    "symbol": (f"{sub.exchange}:{sub.symbol}" if sub.kind == "quotes"
                               else frame.symbol),
                    "status": frame.status,
                    "messages": sub.messages,
                    "messages_per_s": sub.meter.rate(now),
                    "last_message_age": (now - sub.last_message
                                         if sub.last_message is not None else float("nan")),
                    "reconnects": sub.reconnects,
                    "errors": sub.errors + frame.callback_errors,
                    "gaps": sub.gaps,
                })
        table = pd.DataFrame(rows, columns=list(HEALTH_COLUMNS))
        table = table.astype({"messages": "int64", "messages_per_s": "float64",
                              "last_message_age": "float64", "reconnects": "int64",
                              "errors": "int64", "gaps": "int64"})
        table.attrs["connection"] = dict(self._conn.stats)
        table.attrs["connected"] = self._conn.connected.is_set()
        return table

    def gaps(self) -> pd.DataFrame:
        """Outages seen by each subscription: ``kind``, ``symbol``, ``start``, ``end`` (UTC),
        ``backfilled`` (rows fetched over HTTP and merged), ``error`` (why a backfill failed)."""
        table = pd.DataFrame(list(self._gaps), columns=["kind", "symbol", "start", "end",
                                                       "backfilled", "error"])
        for column in ("start", "end"):
            table[column] = pd.to_datetime(table[column].astype("float64"), unit="s", utc=True)
        return table.astype({"backfilled": "int64"})

    def record(self, path: Any, frames: Iterable[LiveFrame] | None = None,
               **options: Any) -> Any:
        """Write every message of ``frames`` (default: every frame of this stream) to a
        Hive-partitioned Parquet dataset at ``path`` (``kind=/symbol=/date=``), with this
        stream's reconnect gaps; returns the running :class:`invia_data.record.Recorder`
        (``health()``, ``status_line()``, ``flush()``, ``close()``). ``options``: the
        Recorder's (``batch_rows``, ``batch_seconds``, ``max_pending_rows``)."""
        from ..record import Recorder

        frames = self.frames if frames is None else list(frames)
        for frame in frames:
            if not isinstance(frame, LiveFrame):
                raise InvalidArgument(f"record() takes LiveFrames, got {frame!r}")
            with self._lock:
                subs = list(self._frames.get(frame, ()))
            for sub in subs:  # a recording keeps every book, not only the latest of a read
                sub.route.conflate = False
        return Recorder(path, frames, stream=self, **options)

    @property
    def connection(self) -> Connection:
        return self._conn

    @property
    def frames(self) -> list[LiveFrame]:
        with self._lock:
            return list(self._frames)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Unsubscribe everything, stop the threads (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for frame in self.frames:
            frame.close()
        self._conn.close()
        self._backfills.put(None)
        thread = self._backfill_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else (
            "connected" if self._conn.connected.is_set() else "not connected")
        return f"<Stream {self.url} {state}, {len(self._frames)} live frame(s)>"

    # --- internals -----------------------------------------------------------------------------

    def _format(self, fmt: str | None, kind: str) -> str:
        if fmt is not None:
            return normalize_format(fmt)
        return self.format or DEFAULT_FORMATS[kind]

    def _frequency(self, frequency: int | None, fmt: str) -> int:
        if frequency is not None:
            return check_count(frequency, "frequency", low=0)
        return self.frequency if self.frequency is not None else MIN_FREQUENCY[fmt]

    def _open(self, kind: str, label: str, requests: list[tuple[Request, str, str]],
              state: Any, params: dict[str, Any], timeout: float | None,
              refresh: Callable[[Sub], Request] | None = None) -> LiveFrame:
        wait = self.subscribe_timeout if timeout is None else validate.seconds(timeout)
        if self._closed:
            raise StreamClosed("the stream is closed")
        frame = LiveFrame(kind, label, params, state, closer=self._close_frame)
        subs = [Sub(frame, request, sym, ex, refresh) for request, sym, ex in requests]
        for sub in subs:
            sub.awaited = not self._conn.on_thread()  # see _await
        with self._lock:
            self._frames[frame] = subs
        try:
            for sub in subs:
                self._conn.add(sub)
        except BaseException:
            self._close_frame(frame)
            raise
        self._await(frame, subs, wait)
        return frame

    def _await(self, frame: LiveFrame, subs: list[Sub], timeout: float) -> None:
        """Wait for the server's answer; a callback on the stream thread cannot wait for the
        thread that would deliver it, so there the frame is returned at once."""
        if self._conn.on_thread():
            return
        deadline = time.monotonic() + timeout
        try:
            for sub in subs:
                sub.settled.wait(max(0.0, deadline - time.monotonic()))
                if sub.rejection is not None:
                    self._close_frame(frame)
                    raise sub.rejection
        finally:
            for sub in subs:
                sub.awaited = False

    def _close_frame(self, frame: LiveFrame) -> None:
        with self._lock:
            subs = self._frames.pop(frame, [])
        for sub in subs:
            self._conn.remove(sub)

    # --- backfill after a reconnect ------------------------------------------------------------

    def _after_reconnect(self, subs: list[Sub], lost_at: float) -> None:
        """Runs on the stream thread: record the gap; queue an HTTP backfill where possible."""
        now = time.time()
        for sub in subs:
            sub.gaps += 1
            if sub.kind in ("all_trades", "bars") and self.http is not None:
                # the cursor is read before the new connection delivers anything, so the
                # first live message cannot hide the outage from the backfill
                cursor = sub.frame._read_state(lambda state: state.cursor())
                self._start_backfill()
                self._backfills.put((sub, lost_at, now, cursor))
            else:
                self._gaps.append({"kind": sub.kind, "symbol": sub.frame.symbol,
                                   "start": lost_at, "end": now, "backfilled": 0,
                                   "error": None if sub.kind not in ("all_trades", "bars")
                                   else "no HTTP client to backfill with"})

    def _start_backfill(self) -> None:
        if self._backfill_thread is None:
            self._backfill_thread = threading.Thread(target=self._backfill_loop,
                                                     name="invia-data-backfill", daemon=True)
            self._backfill_thread.start()

    def _backfill_loop(self) -> None:
        while True:
            job = self._backfills.get()
            if job is None or self._closed:
                return
            sub, lost_at, now, cursor = job
            error = None
            added = 0
            try:
                added = self._backfill(sub, lost_at, cursor)
            except InviaError as exc:
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never let the worker die on one bad response
                error = f"{type(exc).__name__}: {exc}"
                log.exception("backfill of %s %s failed", sub.kind, sub.symbol)
            if error is not None:
                sub.errors += 1
                log.warning("backfill of %s %s failed: %s", sub.kind, sub.symbol, error)
            self._gaps.append({"kind": sub.kind, "symbol": sub.frame.symbol, "start": lost_at,
                               "end": now, "backfilled": added, "error": error})

    def _backfill(self, sub: Sub, lost_at: float, cursor: Any) -> int:
        """Fetch what the outage missed, from ``cursor`` (the last trade time in ms or the
        last candle time in s held when the connection came back) or from ``lost_at``."""
        frame = sub.frame
        if frame.status in ("closed", "error"):
            return 0
        fields = sub.request.fields
        fmt = fields["format"]
        board = {"instrumentGroup": fields["instrumentGroup"]} \
            if "instrumentGroup" in fields else {}
        if sub.kind == "all_trades":
            since = int(cursor // 1000) if cursor is not None else int(lost_at)
            path = (f"/md/v2/Securities/{quote(sub.exchange, safe='')}/"
                    f"{quote(sub.symbol, safe='')}/alltrades")
            # no `to`: everything up to the server's now (its clock may differ from ours)
            payload = self.http.get(path, {"from": since, "format": fmt, **board})
            trades = payload.get("list", []) if isinstance(payload, dict) else payload or []
            added = frame._modify(lambda s: s.merge(trades))
        else:
            since = int(cursor) if cursor is not None else int(lost_at)
            now = server_now(self.http)
            payload = self.http.get("/md/v2/history", {
                "symbol": sub.symbol, "exchange": sub.exchange, "tf": fields["tf"],
                "from": since, "to": now + int(frame.params["tf"]), "format": fmt, **board})
            candles = []
            if isinstance(payload, dict):
                candles = payload.get("h") or payload.get("history") or []
            added = frame._modify(lambda s: s.merge(candles))
        if added:
            frame._notify()
        return int(added)


def _bars_from_last_candle(sub: Sub) -> Request:
    """On resubscription, bars restart from the last candle held (the open one is resent)."""
    last = sub.frame._read_state(lambda s: s.last_time())
    if last is None:
        return sub.request
    return sub.request.with_fields(**{"from": int(last)})
