"""The simulator's WebSocket interface (``/cws`` and ``/ws``): REFERENCE §4.

Every message carries its token and is checked on its own. A subscription answers with the
200 result first, then data frames ``{"data": {...}, "guid": g}``; a guid reused on the same
connection replaces the old subscription (or, with ``guid_reuse="reject"``, is answered 400
while the old one keeps streaming). Order books are encoded once per (instrument, depth,
format, book version) and the bytes are shared by every subscriber.

Outgoing frames of a connection go through one ordered path: written straight to the socket
while it keeps up, queued behind it otherwise. A connection with more than ``MAX_UNSENT``
queued messages is dropped, as the real server does with slow consumers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, overload

import orjson
from aiohttp import WSMsgType, web

from ..schema import SCHEMAS
from . import encode
from .auth import TokenRejected
from .routes import MAX_CANDLES
from .routing import (
    EXCHANGES,
    INT64_MAX,
    INT64_MIN,
    Problem,
    check_range,
    parse_format,
    parse_tf,
    pick,
)
from .server import SimServer

log = logging.getLogger("invia_data.sim")

MAX_UNSENT = 5000
MIN_FREQUENCY_MS = {"Simple": 25, "Slim": 10, "Heavy": 500}
DEFAULT_FREQUENCY_MS = 175
POLL_SECONDS = 0.02            # how often trade and portfolio streams look for news
INSTRUMENT_POLL_SECONDS = 0.25
BULK_HIGH_WATER = 1000         # history senders wait while this many frames are queued
FIREHOSE_CYCLE = 256           # distinct pre-encoded books a firehose subscription cycles through
FIREHOSE_REFRESH_SECONDS = 1.0
FIREHOSE_BATCH = 32            # frames per transport write
FIREHOSE_HIGH_WATER = 256 * 1024  # bytes buffered in the transport before the firehose waits
_TEXT = WSMsgType.TEXT


async def serve_websocket(server: SimServer, request: web.Request) -> web.StreamResponse:
    if server.faults.refusing:
        log.info("refusing WebSocket connection (fault injection)")
        return web.Response(status=503, text="connections are refused for a while",
                            headers={"Retry-After": "1"})
    ws = web.WebSocketResponse(compress=False, heartbeat=None, max_msg_size=1024 * 1024)
    await ws.prepare(request)
    conn = Connection(server, ws, request)
    server.connections.add(conn)
    log.info("WebSocket %s connected (%d open)", request.path, len(server.connections))
    try:
        await conn.serve()
    finally:
        server.connections.discard(conn)
        conn.close_subscriptions()
        log.info("WebSocket %s closed (%d open)", request.path, len(server.connections))
    return ws


class Connection:
    """One client socket: its subscriptions by guid and its ordered outgoing frames."""

    def __init__(self, server: SimServer, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.server = server
        self.ws = ws
        self.transport = request.transport
        self.path = request.path.rstrip("/")
        self.subscriptions: dict[str, Subscription] = {}
        self.queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.closed = False
        self._writer = asyncio.create_task(self._write_queued(), name="sim-ws-writer")

    # outgoing

    def push(self, frame: bytes) -> None:
        """Queue a frame (live updates); too many unsent frames drop the connection."""
        if self.closed:
            return
        self.queue.append(frame)
        self._drained.clear()
        if len(self.queue) > MAX_UNSENT:
            self.abort(f"more than {MAX_UNSENT} unsent messages")
            return
        self._wake.set()

    async def send(self, frame: bytes) -> None:
        """Send in order, waiting while the socket is behind (history replays, firehose)."""
        if self.closed:
            raise ConnectionResetError("connection closed")
        if self.queue:
            while len(self.queue) >= BULK_HIGH_WATER and not self.closed:
                await self._drained.wait()
            self.push(frame)
            return
        await self.ws.send_frame(frame, _TEXT)

    async def _write_queued(self) -> None:
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                while self.queue and not self.closed:
                    await self.ws.send_frame(self.queue.popleft(), _TEXT)
                    if len(self.queue) < BULK_HIGH_WATER:
                        self._drained.set()
                self._drained.set()
        except (ConnectionError, RuntimeError) as exc:
            log.debug("WebSocket writer stopped: %s", exc)
            self.abort("socket write failed")
        except Exception:
            log.exception("WebSocket writer failed")
            self.abort("socket writer failed")

    def abort(self, reason: str) -> None:
        """Cut the connection abruptly (drops, overflow, shutdown)."""
        if self.closed:
            return
        log.info("WebSocket connection dropped: %s", reason)
        self.closed = True
        self.queue.clear()
        self._drained.set()
        self._wake.set()
        self.close_subscriptions()
        if self.transport is not None:
            self.transport.abort()

    def close_subscriptions(self) -> None:
        for sub in self.subscriptions.values():
            sub.cancel()
        self.subscriptions.clear()
        if not self._writer.done():
            self._writer.cancel()

    def reply(self, guid: Any, status: int, message: str) -> None:
        self.push(encode.result_frame(guid, status, message))

    # incoming

    async def serve(self) -> None:
        async for msg in self.ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if self.server.faults.latency > 0:
                    await asyncio.sleep(self.server.faults.latency)
                self.handle(msg.data)
            elif msg.type == WSMsgType.ERROR:
                log.debug("WebSocket error: %s", self.ws.exception())
                break
            if self.closed:
                break

    def handle(self, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.reply("", 400, "Malformed JSON")
            return
        if not isinstance(message, dict):
            self.reply("", 400, "A request must be a JSON object")
            return
        guid = message.get("guid")
        try:
            self._handle(message, guid)
        except Problem as problem:
            self.reply(guid, problem.status, problem.message)
        except Exception:
            log.exception("WebSocket request %r failed", message.get("opcode"))
            self.reply(guid, 500, "internal simulator error")

    def _handle(self, message: dict[str, Any], guid: Any) -> None:
        opcode = message.get("opcode")
        if not isinstance(opcode, str) or not opcode:
            raise Problem(400, "field 'opcode' is required")
        kind = OPCODES.get(opcode.lower())
        if opcode.lower() in REFUSED_OPCODES:
            raise Problem(400, REFUSED_OPCODES[opcode.lower()])
        if kind is None and opcode.lower() not in CONTROL_OPCODES:
            raise Problem(400, f"Unknown opcode {opcode!r}")
        if kind is not None and self.path == "/cws" and self.server.faults.refuse_data_on_cws:
            # a server that keeps /cws for order commands (as ALOR's spec has it)
            raise Problem(400, f"Unknown opcode {opcode!r}")
        try:
            claims = self.server.claims_for(message.get("token"))
        except TokenRejected:
            raise Problem(401, "Invalid JWT token!") from None
        if not isinstance(guid, str) or not guid:
            raise Problem(400, "field 'guid' is required")
        lowered = opcode.lower()
        if lowered == "unsubscribe":
            old = self.subscriptions.pop(guid, None)
            if old is not None:
                old.cancel()
            self.reply(guid, 200, "Handled successfully")
        elif lowered == "ping":
            self.reply(guid, 200, "Handled successfully")
        elif lowered == "authorize":
            self.reply(guid, 200, "The connection has been initialized.")
        else:
            assert kind is not None  # not a control opcode, so a known one
            self.subscribe(kind, message, guid, claims)

    def subscribe(self, kind: tuple, message: dict[str, Any], guid: str,
                  claims: Mapping[str, Any]) -> None:
        cls, *extra = kind
        if self.server.guid_reuse == "reject" and guid in self.subscriptions:
            raise Problem(400, f"A subscription with guid {guid!r} is already active")
        sub = cls(self, guid, message, claims, *extra)   # validates: raises Problem before 200
        old = self.subscriptions.pop(guid, None)
        if old is not None:
            old.cancel()
        self.subscriptions[guid] = sub
        self.reply(guid, 200, "Handled successfully")
        sub.start()


# --- subscriptions -------------------------------------------------------------------------------

class Subscription:
    """One guid's stream. Subclasses validate in ``__init__`` and produce in ``produce()``."""

    def __init__(self, conn: Connection, guid: str, message: Mapping[str, Any],
                 claims: Mapping[str, Any]) -> None:
        self.conn = conn
        self.server = conn.server
        self.market = conn.server.market
        self.guid = guid
        self.guid_json = orjson.dumps(guid)
        self.message = {k.lower(): v for k, v in message.items()}
        self.claims = claims
        self.fmt = parse_format(self.message.get("format"))
        self._task: asyncio.Task | None = None

    # request fields

    def field(self, name: str, default: Any = None) -> Any:
        value = self.message.get(name.lower())
        return default if value is None else value

    @overload
    def integer(self, name: str, default: int, lo: int | None = None,
                hi: int | None = None) -> int: ...

    @overload
    def integer(self, name: str, default: None, lo: int | None = None,
                hi: int | None = None) -> int | None: ...

    def integer(self, name: str, default: int | None, lo: int | None = None,
                hi: int | None = None) -> int | None:
        value = self.field(name)
        if value is None:
            return default
        text = value.strip().lstrip("-") if isinstance(value, str) else ""
        if text.isascii() and text.isdigit() and len(text) <= 19:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Problem(400, f"field '{name}' must be an integer, got {value!r}")
        return check_range(name, value, INT64_MIN if lo is None else lo,
                           INT64_MAX if hi is None else hi)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.field(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise Problem(400, f"field '{name}' must be true or false, got {value!r}")

    def instrument(self, kind: str | None = None) -> Any:
        """The key of the request's instrument whose market data of ``kind`` is served (any
        subscription to an instrument counts as a request for its market data)."""
        code = self.field("code")
        if not isinstance(code, str) or not code:
            raise Problem(400, "field 'code' is required")
        board = self.field("instrumentGroup")
        key = self.server.resolve(self.field("exchange", "MOEX"), code,
                                  board if isinstance(board, str) else None, kind)
        self.market.market_data_requested()
        return key

    def interval(self) -> float:
        """The conflation interval: ``frequency`` clamped up to the format's minimum."""
        frequency = self.integer("frequency", DEFAULT_FREQUENCY_MS, lo=0)
        return max(frequency, MIN_FREQUENCY_MS[self.fmt]) / 1000

    # running

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sim-sub-{type(self).__name__}")

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _run(self) -> None:
        try:
            await self.produce()
        except asyncio.CancelledError:
            raise
        except ConnectionError:
            pass  # the socket went away; the connection cleans up
        except Exception:
            log.exception("subscription %s (%s) failed", self.guid, type(self).__name__)
            self.conn.reply(self.guid, 500, "internal simulator error; subscription stopped")
            self.conn.subscriptions.pop(self.guid, None)

    async def produce(self) -> None:
        raise NotImplementedError

    def frame(self, data: bytes) -> bytes:
        return self.server.faults.corrupt(encode.data_frame(data, self.guid_json))

    def emit(self, data: bytes) -> None:
        self.conn.push(self.frame(data))

    async def emit_bulk(self, data: bytes) -> None:
        await self.conn.send(self.frame(data))

    def encoded(self, kind: str, record: Mapping[str, Any]) -> bytes:
        return orjson.dumps(SCHEMAS[kind].encode(record, self.fmt))

    @property
    def stalled(self) -> bool:
        return self.server.faults.stalled

    async def _write_batches(self, batches: list[bytes]) -> None:
        transport = self.conn.transport
        for batch in batches:
            if self.conn.closed or transport is None or transport.is_closing():
                raise ConnectionResetError("connection closed")
            transport.write(batch)
            while transport.get_write_buffer_size() > FIREHOSE_HIGH_WATER:
                await asyncio.sleep(0.001)
                if self.conn.closed or transport.is_closing():
                    raise ConnectionResetError("connection closed")
        await asyncio.sleep(0)  # let the loop read requests and serve other clients


class BookSubscription(Subscription):
    """OrderBookGetAndSubscribe: full books, the first with existing=true."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.key = self.instrument("orderbook")
        self.depth = self.integer("depth", 20, lo=1, hi=50)
        self.every = self.interval()

    async def produce(self) -> None:
        if self.server.firehose:
            await self._firehose()
            return
        if self.server.book_rate:
            await self._paced()
            return
        self.emit(self.server.book_data(self.key, self.depth, self.fmt, existing=True))
        sent_version = self.market.book_version(self.key)
        while True:
            await asyncio.sleep(self.every)
            version = self.market.book_version(self.key)
            if version != sent_version and not self.stalled:
                self.emit(self.server.book_data(self.key, self.depth, self.fmt, existing=False))
                sent_version = version

    async def _firehose(self) -> None:
        """As fast as the socket takes them, cycling through distinct pre-encoded books.

        The cycle is kept as ready-made WebSocket frames joined into batches and written
        straight to the transport, so a frame costs the server almost nothing; the transport's
        write buffer provides the flow control (the socket is never over-filled)."""
        await self.emit_bulk(self.server.book_data(self.key, self.depth, self.fmt, existing=True))
        while True:
            frames = [encode.data_frame(d, self.guid_json) for d in self._firehose_books()]
            batches = [b"".join(encode.ws_text_frame(f) for f in frames[i:i + FIREHOSE_BATCH])
                       for i in range(0, len(frames), FIREHOSE_BATCH)]
            refresh_at = time.monotonic() + FIREHOSE_REFRESH_SECONDS
            while time.monotonic() < refresh_at:
                if self.stalled:
                    await asyncio.sleep(0.05)
                elif self.server.faults.malformed_rate or self.conn.queue:
                    for frame in frames:  # the ordered, per-frame path
                        await self.conn.send(self.server.faults.corrupt(frame))
                else:
                    await self._write_batches(batches)

    async def _paced(self) -> None:
        """``book_rate`` books a second (a benchmark mode): distinct books, each carrying
        ``"st"``, the server's send time in unix nanoseconds, so a client can measure the
        time from send to visible."""
        period = 1.0 / (self.server.book_rate or 1.0)  # only started when a rate is set
        books = self._firehose_books()
        due = time.monotonic() + random.random() * period  # subscriptions out of step
        n = 0
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += period
            if self.stalled:
                continue
            book = books[n % len(books)]
            n += 1
            self.emit(book[:-1] + b',"st":%d}' % time.time_ns())

    def _firehose_books(self) -> list[bytes]:
        """Distinct books around the live one (volumes varied, time 1 ms apart), shared."""
        cache_key = (self.key, self.depth, self.fmt)
        cached = self.server.firehose_cache.get(cache_key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < FIREHOSE_REFRESH_SECONDS:
            return cached[1]
        book = self.market.book(self.key, self.depth)
        rng = random.Random(hash(cache_key) & 0xFFFF_FFFF)
        out = []
        for i in range(FIREHOSE_CYCLE):
            varied = dict(book)
            varied["time"] = int(book["time"]) + i
            for side in ("bids", "asks"):
                varied[side] = [{**lvl, "volume": max(1, int(lvl["volume"] * rng.uniform(0.5, 1.5)))}
                                for lvl in book[side]]
            out.append(encode.book_bytes(varied, self.fmt, existing=False))
        self.server.firehose_cache[cache_key] = (now, out)
        return out


class QuoteSubscription(Subscription):
    """QuotesSubscribe: the full quote whenever it changed, at most once per interval."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.key = self.instrument("quotes")
        self.every = self.interval()

    async def produce(self) -> None:
        last = self.market.quote(self.key)
        self.emit(self.encoded("quote", last))
        while True:
            await asyncio.sleep(self.every)
            if self.stalled:
                continue
            quote = self.market.quote(self.key)
            if quote != last:
                self.emit(self.encoded("quote", quote))
                last = quote


class TradeSubscription(Subscription):
    """AllTradesGetAndSubscribe: the last ``depth`` trades (existing=true), then live ones."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.key = self.instrument("all_trades")
        self.depth = self.integer("depth", 0, lo=0, hi=5000)
        self.boolean("includeVirtualTrades")

    async def produce(self) -> None:
        if self.server.firehose:
            await self._firehose()
            return
        # only the replayed tail is built: a whole session can hold a million trades
        trades = self.market.trades(self.key, last=max(self.depth, 1))
        last_id = trades[-1]["id"] if trades else -1
        if self.depth:
            for trade in trades[-self.depth:]:
                await self.emit_bulk(self.encoded("trade", encode.trade_record(trade, True)))
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if self.stalled:
                continue
            for trade in self.market.trades_since(self.key, last_id):
                self.emit(self.encoded("trade", encode.trade_record(trade, False)))
                last_id = trade["id"]


    async def _firehose(self) -> None:
        """Trades as fast as the socket takes them, each with the next id (every one must be
        applied: nothing to conflate). Written in batches under the transport's flow control."""
        trades = self.market.trades(self.key, last=1)
        template = orjson.loads(self.encoded("trade", encode.trade_record(trades[-1], False)))
        time_key = next((k for k in ("t", "timestamp") if k in template), None)
        next_id = int(template["id"]) + 1
        while True:
            if self.stalled:
                await asyncio.sleep(0.05)
                continue
            stamp = time.time_ns() // 1_000_000
            frames = []
            for n in range(next_id, next_id + FIREHOSE_BATCH * 8):
                template["id"] = n
                if time_key is not None:
                    template[time_key] = stamp
                frames.append(encode.ws_text_frame(encode.data_frame(orjson.dumps(template),
                                                                     self.guid_json)))
            next_id += FIREHOSE_BATCH * 8
            batches = [b"".join(frames[i:i + FIREHOSE_BATCH])
                       for i in range(0, len(frames), FIREHOSE_BATCH)]
            await self._write_batches(batches)


class BarSubscription(Subscription):
    """BarsGetAndSubscribe: candles from ``from``, then the open candle as it changes."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.key = self.instrument("bars")
        tf = self.field("tf")
        if tf is None:
            raise Problem(400, "field 'tf' is required")
        self.tf = parse_tf(str(tf) if not isinstance(tf, str) else tf)
        self.start_time = self.integer("from", None, lo=0)
        self.skip_history = self.boolean("skipHistory")
        self.boolean("splitAdjust", True)
        self.every = self.interval()

    async def produce(self) -> None:
        now = int(self.market.now())
        current = now - now % self.tf if self.tf < 86_400 * 7 else now
        start = current if self.start_time is None else self.start_time
        last: tuple | None = None
        if not self.skip_history:
            last = await self._history(start, now + 1)
        else:
            latest = self._rows(self.market.candles(self.key, self.tf, max(0, now - self.tf * 3), now + 1))
            last = latest[-1] if latest else None
        while True:
            await asyncio.sleep(self.every)
            if self.stalled:
                continue
            now = int(self.market.now())
            since = last[0] if last else now - self.tf
            for row in self._rows(self.market.candles(self.key, self.tf, since, now + 1)):
                if last is None or row[0] > last[0] or (row[0] == last[0] and row != last):
                    self.emit(self._encode(row))
                    last = row

    async def _history(self, start: int, end: int) -> tuple | None:
        """The candles from ``start``: at most the last ``MAX_CANDLES`` (one HTTP page), built
        on a worker thread so a long replay does not hold up the other connections."""
        last = None
        window = self.tf * MAX_CANDLES
        start = max(start, end - window)
        while start < end:
            stop = min(end, start + window)
            candles = await self.server.in_worker(self.market.candles, self.key, self.tf,
                                                  start, stop)
            for row in self._rows(candles):
                await self.emit_bulk(self._encode(row))
                last = row
            start = stop
        return last

    def _rows(self, columns: Mapping[str, Any]) -> list[tuple]:
        cols = [columns[name].tolist() for name in encode.CANDLE_COLUMNS]
        return [(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in zip(*cols, strict=False)]

    def _encode(self, row: tuple) -> bytes:
        return orjson.dumps(dict(zip(self._keys, row, strict=False)))

    @property
    def _keys(self) -> list[str]:
        return [SCHEMAS["candle"].required_key(n, self.fmt) for n in encode.CANDLE_COLUMNS]


class InstrumentSubscription(Subscription):
    """InstrumentsGetAndSubscribeV2: the full state first, then only changed fields (+ symbol)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.key = self.instrument()

    async def produce(self) -> None:
        last = dict(self.market.instrument_state(self.key))
        self.emit(self.encoded("instrument_state", last))
        while True:
            await asyncio.sleep(INSTRUMENT_POLL_SECONDS)
            if self.stalled:
                continue
            state = dict(self.market.instrument_state(self.key))
            changed = {k: v for k, v in state.items() if last.get(k) != v}
            if changed:
                changed["symbol"] = state.get("symbol")
                self.emit(self.encoded("instrument_state", changed))
                last = state


_ORDER_STATUSES = ("working", "filled", "canceled", "rejected")


class PortfolioSubscription(Subscription):
    """The portfolio streams: current records (unless skipHistory), then one frame per change."""

    def __init__(self, conn: Connection, guid: str, message: Mapping[str, Any],
                 claims: Mapping[str, Any], kind: str) -> None:
        super().__init__(conn, guid, message, claims)
        self.kind = kind
        pick("exchange", self.field("exchange", "MOEX"), EXCHANGES)
        portfolio = self.field("portfolio")
        if not isinstance(portfolio, str) or not portfolio:
            raise Problem(400, "field 'portfolio' is required")
        self.portfolio = self.server.allowed_portfolio(claims, portfolio)
        if kind == "forts_risk" and not self.portfolio.startswith("75"):
            raise Problem(400, f"portfolio {self.portfolio!r} is not a derivatives (FORTS) portfolio")
        self.skip_history = self.boolean("skipHistory")
        self.statuses = self._statuses()
        self.has_existing = "existing" in SCHEMAS[kind].by_name

    def _statuses(self) -> set[str] | None:
        value = self.field("orderStatuses")
        if value is None:
            return None
        if not isinstance(value, list):
            raise Problem(400, "field 'orderStatuses' must be an array")
        return {pick("orderStatuses", v, _ORDER_STATUSES) for v in value}

    def _current(self) -> list[Mapping[str, Any]]:
        m, p = self.market, self.portfolio
        records = {
            "position": lambda: m.positions(p),
            "summary": lambda: [m.summary(p)],
            "risk": lambda: [m.risk(p)],
            "forts_risk": lambda: [m.forts_risk(p)],
            "own_trade": lambda: m.own_trades(p),
            "order": lambda: m.orders(p),
            "stop_order": lambda: m.stop_orders(p),
        }[self.kind]()
        if self.statuses is not None:
            records = [r for r in records if r.get("status") in self.statuses]
        return records

    def _record(self, record: Mapping[str, Any], existing: bool) -> bytes:
        omitted = STREAM_OMITS.get(self.kind, ())
        record = {k: v for k, v in record.items() if k not in omitted}
        if self.has_existing:
            record["existing"] = existing
        return self.encoded(self.kind, record)

    async def produce(self) -> None:
        seq = self.market.portfolio_seq(self.portfolio)
        if not self.skip_history:
            for record in self._current():
                await self.emit_bulk(self._record(record, True))
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if self.stalled:
                continue
            for change_seq, kind, record in self.market.portfolio_changes(self.portfolio, seq):
                if kind == self.kind:
                    self.emit(self._record(record, False))
                seq = max(seq, change_seq)


# REFERENCE §4.5: own trades on the stream lack Heavy's shortName and currency
STREAM_OMITS = {"own_trade": ("short_name", "currency")}

OPCODES: dict[str, tuple] = {
    "orderbookgetandsubscribe": (BookSubscription,),
    "quotessubscribe": (QuoteSubscription,),
    "alltradesgetandsubscribe": (TradeSubscription,),
    "barsgetandsubscribe": (BarSubscription,),
    "instrumentsgetandsubscribev2": (InstrumentSubscription,),
    "positionsgetandsubscribev2": (PortfolioSubscription, "position"),
    "summariesgetandsubscribev2": (PortfolioSubscription, "summary"),
    "risksgetandsubscribe": (PortfolioSubscription, "risk"),
    "spectrarisksgetandsubscribe": (PortfolioSubscription, "forts_risk"),
    "tradesgetandsubscribev2": (PortfolioSubscription, "own_trade"),
    "ordersgetandsubscribev2": (PortfolioSubscription, "order"),
    "stopordersgetandsubscribev2": (PortfolioSubscription, "stop_order"),
}
# The deprecated StopOrdersGetAndSubscribe streams an older stop-order shape (Slim `exp`/`e`,
# integer lots in `qty`) that the simulator does not produce: it is refused, not answered
# with the V2 shape.
REFUSED_OPCODES = {
    "stopordersgetandsubscribe": "StopOrdersGetAndSubscribe is deprecated and not simulated: "
                                 "use StopOrdersGetAndSubscribeV2",
}
CONTROL_OPCODES = ("unsubscribe", "ping", "authorize")
