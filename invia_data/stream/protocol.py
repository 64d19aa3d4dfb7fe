"""The WebSocket data protocol without I/O: subscription frames out, events in.

A :class:`Session` is driven with plain strings (or bytes): ``subscribe()`` and
``unsubscribe()`` return the text frame to send; ``receive(payload)`` turns one incoming
frame into one event tuple ``(EVENT_KIND, route, payload)``, and ``receive_many(payloads)``
does a whole socket read at once (data grouped by route, the other events in order). It owns
no socket, no thread and no lock: the driver serialises mutations (subscribe/unsubscribe/
reset) and may receive on its reader thread, where a dict lookup by guid is the only shared
read.

Incoming frames (REFERENCE.md §4.3) are told apart by their keys:

* data ``{"data": {...}, "guid": g}``                          -> ``(DATA, route, data)``
* result ``{"requestGuid": g, "httpCode": 200, "message"}``  -> ``(CONFIRMED, route, message)``
* error  ``{"requestGuid": g, "httpCode": >=400, "message"}``-> ``(REJECTED, route, (status, message))``
  (``route`` is None when the guid is empty or unknown)
* anything else                                                -> ``(MALFORMED, route, reason)``
  (``route`` set when the frame still names a known guid: its ``data`` is not an object, or
  the text is cut or broken after the guid)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvalidArgument
from ..schema import normalize_format

DATA = 0
CONFIRMED = 1
REJECTED = 2
UNKNOWN = 3  # data or a result for a guid this session does not know
LATE = 4  # data for a subscription being cancelled: expected, ignored
UNSUBSCRIBED = 5  # the result of an unsubscribe
MALFORMED = 6

Event = tuple[int, Any, Any]

# Minimum conflation interval (ms) per format; the server clamps anything lower.
MIN_FREQUENCY = {"Simple": 25, "Slim": 10, "Heavy": 500}

OPCODES = {
    "orderbook": "OrderBookGetAndSubscribe",
    "quotes": "QuotesSubscribe",
    "all_trades": "AllTradesGetAndSubscribe",
    "bars": "BarsGetAndSubscribe",
    "instrument_state": "InstrumentsGetAndSubscribeV2",
    "positions": "PositionsGetAndSubscribeV2",
    "summary": "SummariesGetAndSubscribeV2",
    "risk": "RisksGetAndSubscribe",
    "forts_risk": "SpectraRisksGetAndSubscribe",
    "own_trades": "TradesGetAndSubscribeV2",
    "orders": "OrdersGetAndSubscribeV2",
    "stop_orders": "StopOrdersGetAndSubscribeV2",
}
_loads = orjson.loads
_GUID_IN_FRAME = re.compile(rb'"guid"\s*:\s*"([^"\\]{1,100})"')
_JSONDecodeError = orjson.JSONDecodeError


@dataclass(frozen=True)
class Request:
    """One subscription as the server sees it, minus ``guid`` and ``token``."""

    kind: str
    fields: dict[str, Any]

    @property
    def opcode(self) -> str:
        return OPCODES[self.kind]

    @property
    def format(self) -> str:
        return self.fields["format"]

    def with_fields(self, **changes: Any) -> Request:
        return Request(self.kind, {**self.fields, **changes})

    def check(self) -> None:
        """Raise :class:`InvalidArgument` unless every field can be encoded as JSON (an
        integer beyond 64 bits cannot), so a bad parameter fails its own call, never the
        connection that would carry it."""
        for name, value in self.fields.items():
            try:
                orjson.dumps(value)
            except (orjson.JSONEncodeError, TypeError) as exc:
                raise InvalidArgument(
                    f"{self.opcode}: parameter {name}={value!r} cannot be sent ({exc}); "
                    "pass a value that fits the API's type (integers within 64 bits)") from None


def instrument_request(kind: str, symbol: str, exchange: str, *, board: str | None = None,
                       format: str | None = "Slim", **extra: Any) -> Request:
    """A market-data subscription (``code`` carries the ticker, not ``symbol``)."""
    fmt = normalize_format(format)
    fields: dict[str, Any] = {"code": symbol, "exchange": exchange, "format": fmt}
    if board:
        fields["instrumentGroup"] = board
    fields.update({k: v for k, v in extra.items() if v is not None})
    return Request(kind, fields)


def portfolio_request(kind: str, portfolio: str, exchange: str, *,
                      format: str | None = "Slim", **extra: Any) -> Request:
    fmt = normalize_format(format)
    fields: dict[str, Any] = {"portfolio": portfolio, "exchange": exchange, "format": fmt,
                              "skipHistory": False}
    fields.update({k: v for k, v in extra.items() if v is not None})
    return Request(kind, fields)


@dataclass(eq=False)
class Route:
    """A subscription on the current connection: its guid, its request and its consumer."""

    request: Request
    target: Any
    guid: str = ""
    confirmed: bool = False
    conflate: bool = False  # each data message supersedes the previous one (order books)
    raw: bool = False       # also hand over each data frame's bytes (a recorder parses them)


def _subscribe_frame(request: Request, guid: str, token: str) -> str:
    """The subscribe frame; :class:`InvalidArgument` when a field cannot be encoded."""
    body = {"opcode": request.opcode, **request.fields, "guid": guid, "token": token}
    try:
        return orjson.dumps(body).decode()
    except (orjson.JSONEncodeError, TypeError):
        request.check()  # names the field
        raise


def _frame_end(guid: str) -> bytes:
    """How a data frame of ``guid`` ends in the server's compact JSON."""
    return b'"guid":' + orjson.dumps(guid) + b"}"


def _new_guid() -> str:
    return str(uuid.uuid4())


class Session:
    """Guid bookkeeping and frame encoding/decoding for one WebSocket connection."""

    def __init__(self, new_guid: Callable[[], str] = _new_guid) -> None:
        self._new_guid = new_guid
        self.routes: dict[str, Route] = {}
        self._cancelling: dict[str, Route] = {}

    def subscribe(self, route: Route, token: str) -> str:
        """Give ``route`` a fresh guid on this session; return the subscribe frame."""
        guid = self._new_guid()
        while guid in self.routes or guid in self._cancelling:
            guid = self._new_guid()
        frame = _subscribe_frame(route.request, guid, token)  # may raise: nothing registered
        route.guid = guid
        route.confirmed = False
        self.routes[guid] = route
        return frame

    def encode(self, route: Route, token: str) -> str:
        """The subscribe frame of an already registered route (re-sent after a 401)."""
        return _subscribe_frame(route.request, route.guid, token)

    def unsubscribe(self, route: Route, token: str) -> str | None:
        """Stop routing ``route``; the frame to send, or None if it was not subscribed."""
        if self.routes.get(route.guid) is not route:
            return None
        del self.routes[route.guid]
        self._cancelling[route.guid] = route
        return orjson.dumps({"opcode": "unsubscribe", "guid": route.guid,
                             "token": token}).decode()

    def forget(self, route: Route) -> None:
        """Drop ``route`` without a frame (rejected by the server)."""
        if self.routes.get(route.guid) is route:
            del self.routes[route.guid]

    def reset(self) -> list[Route]:
        """The connection is gone: every guid dies with it. Returns the routes that were live."""
        live = list(self.routes.values())
        self.routes = {}
        self._cancelling = {}
        return live

    def receive(self, payload: str | bytes) -> Event:
        """One incoming frame -> one event."""
        try:
            obj = _loads(payload)
        except _JSONDecodeError:
            return (MALFORMED, self._named(payload), "invalid JSON")
        return self._classify(obj)

    def _named(self, payload: str | bytes) -> Route | None:
        """The route whose guid a broken frame still carries (it may have lost it)."""
        raw = payload.encode() if isinstance(payload, str) else payload
        found = _GUID_IN_FRAME.search(raw)
        if found is None:
            return None
        return self.routes.get(found.group(1).decode("utf-8", "replace"))

    def receive_many(self, payloads: list[bytes]) -> tuple[dict[Route, list[Any]], list[Event]]:
        """Many frames at once (one socket read). Returns the data grouped by route as
        ``route -> [message count, [data, ...]]`` (arrival order; a ``conflate`` route keeps
        only its latest data; a ``raw`` route has a third list, the bytes of every frame, even
        the superseded ones of a ``conflate`` route) and every
        other event in order. The stream thread's hot path: one call per read."""
        groups: dict[Route, list[Any]] = {}
        events: list[Event] = []
        routes_get: Callable[[Any], Route | None] = self.routes.get
        loads = _loads
        # a run of messages of one plain route (the usual read) skips the lookups
        run_guid: Any = None
        run: list[Any] | None = None
        run_extra = 0
        raw_guid: Any = None   # a run of recorded trades: data and bytes appended, counted
        raw_run: list[Any] | None = None
        raw_extra = 0
        placeholder: list[Any] = []
        raw_data = raw_bytes = placeholder.append   # (bound to the run's lists below)
        # recorded order books: every frame's bytes go to the recorder, which parses them all
        # off the interpreter lock; here a frame is routed by its end, ``"guid":"<guid>"}`` (the
        # server's compact JSON, guid last; any other frame is parsed), one slice and lookup
        # per length of those ends (one length: the guids are uuid4 strings), and only the
        # latest of the read is parsed (for the LiveFrame)
        by_tail = {_frame_end(route.guid): route for route in self.routes.values()
                   if route.raw and route.conflate}
        tail_get = by_tail.get
        tail_lengths = sorted({len(end) for end in by_tail})
        tail_length = tail_lengths[0] if len(tail_lengths) == 1 else 0
        for payload in payloads:
            if by_tail:
                if tail_length:
                    tail_route = tail_get(payload[-tail_length:])
                else:
                    tail_route = next(filter(None, (tail_get(payload[-length:])
                                                    for length in tail_lengths)), None)
                if tail_route is not None:
                    found = groups.get(tail_route)
                    if found is None:
                        groups[tail_route] = [1, [], [payload]]
                    else:
                        found[0] += 1
                        found[2].append(payload)
                        found[1].clear()   # the latest is parsed at the end
                    continue
            try:
                obj = loads(payload)
            except _JSONDecodeError:
                events.append((MALFORMED, self._named(payload), "invalid JSON"))
                continue
            if type(obj) is dict:
                data = obj.get("data")
                if type(data) is dict:
                    guid = obj.get("guid")
                    if run is not None and guid == run_guid:
                        run[1].append(data)
                        run_extra += 1
                        continue
                    if raw_run is not None and guid == raw_guid:
                        raw_extra += 1
                        raw_data(data)
                        raw_bytes(payload)
                        continue
                    route = routes_get(guid)
                    if route is not None:
                        if run is not None:
                            run[0] += run_extra
                            run, run_extra = None, 0
                        if raw_run is not None:
                            raw_run[0] += raw_extra
                            raw_run, raw_extra = None, 0
                        found = groups.get(route)
                        if route.raw:
                            if found is None:
                                groups[route] = [1, [data], [payload]]
                            else:
                                found[0] += 1
                                if route.conflate:
                                    found[1][:] = [data]
                                else:
                                    found[1].append(data)
                                if len(found) > 2:   # (raw may be switched on mid-read)
                                    found[2].append(payload)
                            found = groups[route]
                            if not route.conflate and len(found) > 2:   # recorded trades
                                raw_guid, raw_run = guid, found
                                raw_data, raw_bytes = found[1].append, found[2].append
                            continue
                        if found is None:
                            found = groups[route] = [1, [data]]
                        elif route.conflate:
                            found[0] += 1
                            found[1][0] = data  # the superseded message is freed at once
                        else:
                            found[0] += 1
                            found[1].append(data)
                        if not route.conflate:
                            run_guid, run = guid, found
                        continue
            events.append(self._classify(obj))
        if run is not None:
            run[0] += run_extra
        if raw_run is not None:
            raw_run[0] += raw_extra
        if by_tail:
            self._parse_latest(groups, by_tail, events)
        return groups, events

    def _parse_latest(self, groups: dict[Route, list[Any]], by_tail: dict[bytes, Route],
                      events: list[Event]) -> None:
        """The latest frame of each tail-routed group, parsed for its LiveFrame."""
        for route in by_tail.values():
            found = groups.get(route)
            if found is None or found[1] or len(found) < 3:
                continue
            event = self.receive(found[2][-1])
            if event[0] == DATA and event[1] is route:
                found[1].append(event[2])
            else:   # the recorder still gets (and parses) the bytes
                events.append((MALFORMED, route, "the latest order book is not a data frame"))

    def _classify(self, obj: Any) -> Event:
        if type(obj) is not dict:
            return (MALFORMED, None, "not a JSON object")
        data = obj.get("data")
        if data is not None:
            route = self.routes.get(str(obj.get("guid")))
            if route is not None:
                if type(data) is not dict:  # `data` is always one object (REFERENCE §4.3)
                    return (MALFORMED, route, "data is not an object")
                return (DATA, route, data)
            if obj.get("guid") in self._cancelling:
                return (LATE, None, obj.get("guid"))
            return (UNKNOWN, None, obj.get("guid"))
        return self._result(obj)

    def _result(self, obj: dict[str, Any]) -> Event:
        status = obj.get("httpCode")
        if not isinstance(status, int) or isinstance(status, bool):
            return (MALFORMED, None, "neither data nor a result")
        guid = obj.get("requestGuid")
        message = obj.get("message")
        message = message if isinstance(message, str) else ""
        route = self.routes.get(guid) if isinstance(guid, str) else None
        if status < 400:
            if route is not None:
                route.confirmed = True
                return (CONFIRMED, route, message)
            cancelled = self._cancelling.pop(guid, None) if isinstance(guid, str) else None
            if cancelled is not None:
                return (UNSUBSCRIBED, cancelled, message)
            return (UNKNOWN, None, guid)
        if route is None and isinstance(guid, str):
            # an error for an unsubscribe still ends that guid
            self._cancelling.pop(guid, None)
        return (REJECTED, route, (status, message))
