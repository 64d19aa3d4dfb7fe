"""``inv.stream``: live subscriptions as LiveFrames over one WebSocket connection.

Each call validates its arguments (raising :class:`InvalidArgument` before anything is sent),
registers one or more subscriptions with the :class:`Connection` (which opens the socket on
first use) and waits up to ``timeout`` seconds for the server's answer: a rejection raises
the matching error (``NotFound``, ``BadRequest``, ``AuthError``, ``Forbidden``); silence
returns the LiveFrame, which goes live when the server answers.

After a reconnect, or a malformed frame that may have carried data, candles and trades missed
are fetched over HTTP (when an ``http`` is given, following every page) and merged without
duplicates; every such gap is recorded in :meth:`Stream.gaps`, with whether it was filled.
"""

from __future__ import annotations

import inspect
import logging
import os
import queue
import textwrap
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from .. import validate
from ..auth import decode_claims
from ..errors import InvalidArgument, InviaError, StreamClosed
from ..frames import STR_DTYPE
from ..history import Query, fetch_range, server_now, server_seconds
from ..market import (
    MAX_PAGES,
    TRADES_PAGE,
    all_trades_after,
    check_board,
    check_count,
    check_exchange,
    parse_symbol,
)
from ..schema import normalize_format
from ..suggest import suggests_symbols
from ..timeframes import to_seconds, to_wire
from ..times import to_epoch_seconds
from .connection import Connection, Sub
from .live import LiveFrame
from .policy import WATCHED_KINDS, Backfill, Policy
from .protocol import (
    MIN_FREQUENCY,
    Request,
    instrument_request,
    portfolio_request,
)
from .state import DEFAULT_BARS_MAXLEN, make_state

if TYPE_CHECKING:
    from ..record import Recorder

log = logging.getLogger("invia_data.stream")

MAX_BOOK_DEPTH = 50
MAX_RECENT_TRADES = 5000
# earlier trades a recorded all-trades subscription asks for first (record=, invia-data record):
# a recording starts with the trades the server resends, deduplicated by id across reconnects
RECORDED_RECENT = 1000
DEFAULT_BAR_COUNT = 500
HEALTH_COLUMNS = ("kind", "symbol", "timeframe", "status", "messages", "messages_per_s",
                  "last_message_age", "data_age", "callback_lag", "callbacks_skipped",
                  "reconnects", "errors", "gaps", "unfilled_gaps")
GAP_COLUMNS = ["kind", "symbol", "timeframe", "start", "end", "backfilled", "filled", "error"]


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


# what help() says of the parameters the subscription calls share
PARAMETER_HELP = {
    "symbol": "``symbol``: the ticker, ``\"SBER\"``, or with its exchange, ``\"SPBX:AAPL\"``.",
    "portfolio": "``portfolio``: the portfolio id, e.g. ``\"D39004\"`` (default: the client's; "
                 "for ``forts_risk`` the token's derivatives one); one the token lacks is "
                 "refused before anything is sent.",
    "exchange": "``exchange``: for symbols that name none; "
                "default: the stream's, ``\"MOEX\"``.",
    "portfolio exchange": "``exchange``: the exchange of the portfolio's data; default: the "
                          "stream's, ``\"MOEX\"``.",
    "board": "``board``: the board (the wire's ``instrumentGroup``), e.g. ``\"TQBR\"``; "
             "default: none sent, the server picks.",
    "format": "``format``: the wire format, ``\"Simple\"``, ``\"Slim\"`` or ``\"Heavy\"`` "
              "(default: the stream's, else the fastest one carrying every column of the "
              "kind; a slimmer one may lack columns).",
    "frequency": "``frequency``: milliseconds the server waits between two messages, sending "
                 "the latest state of each interval (default: the stream's, else the format's "
                 "minimum: Slim 10, Simple 25, Heavy 500; the server raises a smaller value to "
                 "it).",
    "timeout": "``timeout``: seconds to wait for the server to accept or refuse the "
               "subscription (default: the stream's ``subscribe_timeout``, 5). A refusal "
               "raises ``NotFound``, ``BadRequest``, ``AuthError`` or ``Forbidden``; no answer "
               "in time raises nothing: the frame comes back ``connecting`` and goes live with "
               "the first data (``frame.wait()`` waits for it, or raises ``StreamTimeout``).",
    "record": "``record``: a folder: also write every message of this frame to the Parquet "
              "dataset there, as :meth:`record` does. Calls naming one folder share one "
              "Recorder (:attr:`recorders`), which keeps the frame streaming until the frame "
              "or the stream is closed and is flushed when the stream closes. Default None: "
              "no recording.",
}


def _explained(method: Callable[..., LiveFrame]) -> Callable[..., LiveFrame]:
    """Append to the docstring the help of each shared parameter the call takes."""
    names = list(inspect.signature(method).parameters)
    keys = [f"portfolio {name}" if "portfolio" in names and f"portfolio {name}" in PARAMETER_HELP
            else name for name in names]
    lines = [textwrap.fill(PARAMETER_HELP[key], 88, initial_indent="        ",
                           subsequent_indent="          ") for key in keys if key in PARAMETER_HELP]
    method.__doc__ = (method.__doc__ or "").rstrip() + "\n\n" + "\n".join(lines) + "\n        "
    return method


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

    Asking for a subscription that is already open (the same kind, instruments and
    parameters: a notebook cell run again) returns the LiveFrame already streaming it, so a
    re-run adds nothing on the wire; closing that frame closes it for every holder.

    ``record="folder/"`` on a subscription also writes its messages to a Parquet dataset there
    (see :meth:`record`); one Recorder per folder (:attr:`recorders`), closed with the stream.
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
        self.stale_after = stale_after
        self.policy = Policy(stale_after=stale_after, ping_interval=ping_interval,
                             reconnect_delay=reconnect_delay,
                             max_reconnect_delay=max_reconnect_delay)
        self._conn = Connection(self.url, token_provider, policy=self.policy, sslopt=sslopt,
                                on_gap=self._on_gap, fallback_to_ws=path is None)
        self._lock = threading.Lock()
        # frames weakly: a frame nobody holds any more is collected, and its finalizer hands
        # its subscriptions to the reaper thread, which unsubscribes them
        self._frames: weakref.WeakKeyDictionary[LiveFrame, list[Sub]] = weakref.WeakKeyDictionary()
        self._by_identity: weakref.WeakValueDictionary[tuple[Any, ...], LiveFrame] = (
            weakref.WeakValueDictionary())
        self._dropped: queue.SimpleQueue[list[Sub] | None] = queue.SimpleQueue()
        self._reaper: threading.Thread | None = None
        self._gaps: deque[dict[str, Any]] = deque(maxlen=1000)
        self.gap_count = 0   # gaps recorded so far (a recorder copies them when it grows)
        self._backfills: queue.Queue[Sub | None] = queue.Queue()
        self._pending: dict[Sub, tuple[Backfill, float]] = {}  # queued, not yet fetched
        self._backfill_thread: threading.Thread | None = None
        self.backfill_page = TRADES_PAGE
        self.backfill_max_pages = MAX_PAGES
        self._recorders: dict[Path, Recorder] = {}   # by folder; closed ones are replaced
        self._recorded: weakref.WeakKeyDictionary[LiveFrame, list[Recorder]] = (
            weakref.WeakKeyDictionary())
        self._closed = False

    # --- market data ---------------------------------------------------------------------------

    @suggests_symbols
    @validate.checked_keywords
    @_explained
    def orderbook(self, symbol: str, depth: int = 20, *, exchange: str | None = None,
                  board: str | None = None, format: str | None = None,
                  frequency: int | None = None, timeout: float | None = None,
                  record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """The order book, long form (``side``, ``level``, ``price``, ``volume``, ``yield``),
        replaced by each message; ``df.attrs["time"]`` is the exchange timestamp.
        ``depth``: levels per side, 1..50."""
        folder = self._recording_folder(record)
        depth = check_count(depth, "depth", high=MAX_BOOK_DEPTH)
        ex, sym = parse_symbol(symbol, self.exchange if exchange is None else exchange)
        fmt = self._format(format, "orderbook")
        request = instrument_request("orderbook", sym, ex, board=check_board(board),
                                     format=fmt, depth=depth,
                                     frequency=self._frequency(frequency, fmt))
        state = make_state("orderbook", fmt, attrs={"symbol": sym, "exchange": ex,
                                                    "depth": depth})
        return self._open("orderbook", f"{ex}:{sym}", [(request, sym, ex)], state,
                          {"depth": depth, "board": board, "format": fmt}, timeout,
                          record=folder)

    @suggests_symbols
    @validate.checked_keywords
    @_explained
    def quotes(self, symbols: str | Iterable[str], *, exchange: str | None = None,
               board: str | None = None, format: str | None = None,
               frequency: int | None = None, timeout: float | None = None,
               record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """Quotes of one or more instruments: one row per instrument, merged field by field.
        ``symbols``: a list, or one string with commas (``"SBER,MOEX:GAZP"``)."""
        folder = self._recording_folder(record)
        if isinstance(symbols, str):
            items = [s for s in symbols.split(",") if s.strip()]
        elif isinstance(symbols, Iterable):
            items = list(symbols)
        else:
            raise InvalidArgument(f"symbols must be a string or a list, got {symbols!r}")
        if not items:
            raise InvalidArgument("symbols is empty")
        default = self.exchange if exchange is None else exchange
        pairs = list(dict.fromkeys(parse_symbol(s, default) for s in items))
        fmt = self._format(format, "quotes")
        freq = self._frequency(frequency, fmt)
        board = check_board(board)
        requests = [(instrument_request("quotes", sym, ex, board=board, format=fmt,
                                        frequency=freq), sym, ex) for ex, sym in pairs]
        label = ",".join(f"{ex}:{sym}" for ex, sym in pairs)
        return self._open("quotes", label, requests, make_state("quotes", fmt),
                          {"symbols": [f"{ex}:{sym}" for ex, sym in pairs], "format": fmt},
                          timeout, record=folder)

    @suggests_symbols
    @validate.checked_keywords
    @_explained
    def all_trades(self, symbol: str, *, recent: int | None = None, maxlen: int = 100_000,
                   exchange: str | None = None, board: str | None = None,
                   format: str | None = None, timeout: float | None = None,
                   record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """All trades of an instrument (time and sales) in a ring buffer of ``maxlen`` rows,
        deduplicated by id; ``recent`` sends that many earlier trades first (0..5000; the
        wire's ``depth``). Default: none, or 1000 with ``record=``, as ``invia-data record
        --all-trades`` does: the recording starts with the trades the server resends (their
        ``exchange_time`` before the subscription), each once by id, also across reconnects
        and restarts; ``recent=0`` records only the trades made from now."""
        folder = self._recording_folder(record)
        if recent is None:
            recent = RECORDED_RECENT if folder is not None else 0
        recent = check_count(recent, "recent", low=0, high=MAX_RECENT_TRADES)
        maxlen = check_count(maxlen, "maxlen")
        ex, sym = parse_symbol(symbol, self.exchange if exchange is None else exchange)
        fmt = self._format(format, "all_trades")
        board = check_board(board)
        request = instrument_request("all_trades", sym, ex, board=board, format=fmt,
                                     depth=recent, includeVirtualTrades=False)
        return self._open("all_trades", f"{ex}:{sym}", [(request, sym, ex)],
                          make_state("all_trades", fmt, maxlen=maxlen),
                          {"recent": recent, "maxlen": maxlen, "board": board, "format": fmt},
                          timeout, refresh=_trades_with_recent, record=folder)

    @suggests_symbols
    @validate.checked_keywords
    @_explained
    def bars(self, symbol: str, tf: str | int = "1min", *, start: Any = None,
             maxlen: int = DEFAULT_BARS_MAXLEN, exchange: str | None = None,
             board: str | None = None, format: str | None = None,
             frequency: int | None = None, timeout: float | None = None,
             record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """Candles from ``start`` (default: the last 500 candles) and then live: the open
        candle is updated in place and flagged ``is_closed=False``; a candle is final once a
        later one starts or its interval is over by the server's clock. Same columns as
        ``Client.history`` plus ``is_closed``. At most ``maxlen`` candles are held (48 bytes
        each), the oldest dropped first. ``tf``: the timeframe (``"1min"``, ``"M5"``,
        ``"1h"``, ``"D"``, seconds as an int, ...)."""
        folder = self._recording_folder(record)
        maxlen = check_count(maxlen, "maxlen")
        tf_seconds = to_seconds(tf)
        ex, sym = parse_symbol(symbol, self.exchange if exchange is None else exchange)
        fmt = self._format(format, "bars")
        board = check_board(board)
        begin = None if start is None else to_epoch_seconds(start, name="start")
        clock = self._server_clock(required=begin is None)
        if begin is None:  # the server's clock: a simulator may run on its own market time
            begin = int((clock or time.time)()) - DEFAULT_BAR_COUNT * tf_seconds
        request = instrument_request("bars", sym, ex, board=board, format=fmt,
                                     tf=to_wire(tf), skipHistory=False, splitAdjust=True,
                                     frequency=self._frequency(frequency, fmt))
        request = request.with_fields(**{"from": begin})
        return self._open("bars", f"{ex}:{sym}", [(request, sym, ex)],
                          make_state("bars", fmt, maxlen=maxlen, tf=tf_seconds, clock=clock),
                          {"tf": tf_seconds, "start": begin, "default_start": start is None,
                           "maxlen": maxlen, "board": board,
                           "format": fmt},
                          timeout, refresh=_bars_from_last_candle, record=folder)

    @suggests_symbols
    @validate.checked_keywords
    @_explained
    def instrument_state(self, symbol: str, *, exchange: str | None = None,
                         board: str | None = None, format: str | None = None,
                         timeout: float | None = None,
                         record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """Trading status and limits of an instrument: one row, later messages update the
        fields that changed."""
        folder = self._recording_folder(record)
        ex, sym = parse_symbol(symbol, self.exchange if exchange is None else exchange)
        fmt = self._format(format, "instrument_state")
        board = check_board(board)
        request = instrument_request("instrument_state", sym, ex, board=board, format=fmt)
        return self._open("instrument_state", f"{ex}:{sym}", [(request, sym, ex)],
                          make_state("instrument_state", fmt), {"board": board, "format": fmt},
                          timeout, record=folder)

    # --- portfolio data ------------------------------------------------------------------------

    @validate.checked_keywords
    @_explained
    def positions(self, portfolio: str | None = None, *, exchange: str | None = None,
                 format: str | None = None, timeout: float | None = None,
                 record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """Positions keyed by symbol + exchange, updated in place."""
        return self._portfolio("positions", portfolio, exchange, format, timeout, record)

    @validate.checked_keywords
    @_explained
    def summary(self, portfolio: str | None = None, *, exchange: str | None = None,
               format: str | None = None, timeout: float | None = None,
               record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """The portfolio summary: one row."""
        return self._portfolio("summary", portfolio, exchange, format, timeout, record)

    @validate.checked_keywords
    @_explained
    def risk(self, portfolio: str | None = None, *, exchange: str | None = None,
            format: str | None = None, timeout: float | None = None,
            record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """Portfolio risk: one row."""
        return self._portfolio("risk", portfolio, exchange, format, timeout, record)

    @validate.checked_keywords
    @_explained
    def forts_risk(self, portfolio: str | None = None, *, exchange: str | None = None,
                  format: str | None = None, timeout: float | None = None,
                  record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """Derivatives (FORTS) risk of a portfolio: one row."""
        return self._portfolio("forts_risk", portfolio, exchange, format, timeout, record)

    @validate.checked_keywords
    @_explained
    def orders(self, portfolio: str | None = None, *, exchange: str | None = None,
              format: str | None = None, timeout: float | None = None,
              record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """Orders keyed by id, updated in place."""
        return self._portfolio("orders", portfolio, exchange, format, timeout, record)

    @validate.checked_keywords
    @_explained
    def stop_orders(self, portfolio: str | None = None, *, exchange: str | None = None,
                   format: str | None = None, timeout: float | None = None,
                   record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """Stop orders keyed by id, updated in place."""
        return self._portfolio("stop_orders", portfolio, exchange, format, timeout, record)

    @validate.checked_keywords
    @_explained
    def own_trades(self, portfolio: str | None = None, *, exchange: str | None = None,
                  format: str | None = None, timeout: float | None = None,
                  record: str | os.PathLike[str] | None = None) -> LiveFrame:
        """The portfolio's own trades keyed by id."""
        return self._portfolio("own_trades", portfolio, exchange, format, timeout, record)

    def _portfolio(self, kind: str, portfolio: str | None, exchange: str | None,
                   format: str | None, timeout: float | None,
                   record: str | os.PathLike[str] | None) -> LiveFrame:
        folder = self._recording_folder(record)
        portfolio = self._resolve_portfolio(kind, portfolio)
        ex = check_exchange(self.exchange if exchange is None else exchange)
        fmt = self._format(format, kind)
        request = portfolio_request(kind, portfolio, ex, format=fmt)
        return self._open(kind, portfolio, [(request, portfolio, ex)], make_state(kind, fmt),
                          {"portfolio": portfolio, "exchange": ex, "format": fmt}, timeout,
                          record=folder)

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
        """One row per subscription: ``kind``, ``symbol``, ``timeframe`` (of bars: the
        candles' seconds; null for other kinds), ``status`` (``stale`` when live but
        silent for more than ``stale_after``), ``messages``, ``messages_per_s`` (over the last
        5 s, kept across reconnects), ``last_message_age`` (s since the last message
        arrived), ``data_age`` (s since what ``.df`` shows was last updated),
        ``callback_lag`` (s the oldest update not yet handed to the callbacks has waited),
        ``callbacks_skipped`` (versions superseded before a callback saw them),
        ``reconnects``, ``errors`` (bad frames and data of this subscription, failed
        backfills, callback errors), ``gaps`` (outages and possible losses) and
        ``unfilled_gaps`` (gaps the HTTP backfill could not fill completely; see
        :meth:`gaps`). ``attrs["connection"]`` holds the connection counters (malformed
        frames, unknown guids, error frames, reconnects, stale events, failed sends)."""
        now = time.monotonic()
        with self._lock:
            items = [(frame, list(subs)) for frame, subs in self._frames.items()]
        rows = []
        for frame, subs in items:
            for sub in subs:
                last = sub.last_message
                age = frame.age
                rows.append({
                    "kind": sub.kind,
                    "symbol": (f"{sub.exchange}:{sub.symbol}" if sub.kind == "quotes"
                               else frame.symbol),
                    "timeframe": frame.params.get("tf") if sub.kind == "bars" else None,
                    "status": frame.status,
                    "messages": sub.messages,
                    "messages_per_s": sub.meter.rate(now),
                    "last_message_age": now - last if last is not None else float("nan"),
                    "data_age": age if age is not None else float("nan"),
                    "callback_lag": frame.callback_lag,
                    "callbacks_skipped": frame.callbacks_skipped,
                    "reconnects": sub.reconnects,
                    "errors": sub.errors + frame.callback_errors,
                    "gaps": sub.gaps,
                    "unfilled_gaps": sub.unfilled,
                })
        table = pd.DataFrame(rows, columns=list(HEALTH_COLUMNS))
        table = table.astype({"kind": STR_DTYPE, "symbol": STR_DTYPE, "timeframe": "Int64",
                              "status": STR_DTYPE, "messages": "int64", "messages_per_s": "float64",
                              "last_message_age": "float64", "data_age": "float64",
                              "callback_lag": "float64", "callbacks_skipped": "int64",
                              "reconnects": "int64", "errors": "int64", "gaps": "int64",
                              "unfilled_gaps": "int64"})
        table.attrs["connection"] = dict(self._conn.stats)
        table.attrs["connected"] = self._conn.connected.is_set()
        table.attrs["url"] = self._conn.url
        return table

    def gaps(self) -> pd.DataFrame:
        """Gaps seen by each subscription (an outage, or a malformed frame that may have
        carried data): ``kind``, ``symbol``, ``timeframe`` (of bars: the candles' seconds;
        null for other kinds), ``start``, ``end`` (UTC), ``backfilled`` (rows
        fetched over HTTP and merged), ``filled`` (False: the gap may still miss data: the
        backfill failed, was cut short, or the kind cannot be backfilled), ``error`` (why)."""
        table = pd.DataFrame(list(self._gaps), columns=GAP_COLUMNS)
        for column in ("start", "end"):
            table[column] = pd.to_datetime(table[column].astype("float64"), unit="s", utc=True)
        return table.astype({"kind": STR_DTYPE, "symbol": STR_DTYPE, "timeframe": "Int64",
                             "backfilled": "int64", "filled": "bool", "error": STR_DTYPE})

    def record(self, path: Any, frames: Iterable[LiveFrame] | None = None,
               **options: Any) -> Recorder:
        """Write every message of ``frames`` (default: every frame this stream has open now;
        later subscriptions take ``record=``) to a
        Hive-partitioned Parquet dataset at ``path`` (``kind=/symbol=/date=``), with this
        stream's reconnect gaps; returns the running :class:`invia_data.record.Recorder`
        (``health()``, ``status_line()``, ``flush()``, ``close()``). ``options``: the
        Recorder's (``batch_rows``, ``batch_seconds``, ``max_pending_rows``, ``compact``).

        One folder has one Recorder: when one already writes there (a ``record=`` option of a
        subscription, an earlier call), the frames are added to it and it is returned
        (``record(path, [], batch_seconds=1)`` opens it with options before ``record=`` uses
        it). Every Recorder is closed (flushed) with the stream; :attr:`recorders` lists them."""
        folder = self._recording_folder(path, "path")
        assert folder is not None
        validate.keywords("record", options, RECORDER_OPTIONS)
        if frames is not None and not isinstance(frames, (list, tuple, set)):
            raise InvalidArgument(f"frames must be a list of LiveFrames, got {frames!r}"[:200])
        frames = self.frames if frames is None else list(frames)
        for frame in frames:
            if not isinstance(frame, LiveFrame):
                raise InvalidArgument(f"record() takes LiveFrames, got {frame!r}"[:200])
        if self._closed:
            raise StreamClosed("the stream is closed")
        recorder, _ = self._recorder_at(folder, options)
        for frame in frames:
            self._record_frame(recorder, frame)
        return recorder

    @property
    def recorders(self) -> dict[Path, Recorder]:
        """The running Recorders by folder (absolute): those of the ``record=`` options and of
        :meth:`record`."""
        with self._lock:
            return {folder: recorder for folder, recorder in self._recorders.items()
                    if not recorder._closed}

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
        with self._lock:
            recorders = list(self._recorders.values())
        for recorder in recorders:   # after the frames: every message received is written
            recorder.close()
        self._conn.close()
        self._backfills.put(None)
        self._dropped.put(None)
        thread = self._backfill_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(0.1)  # a fetch in flight ends on its own (daemon thread)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else (
            "connected" if self._conn.connected.is_set() else "not connected")
        with self._lock:
            frames = len(self._frames)
            wire = sum(len(subs) for subs in self._frames.values())
        return (f"<Stream {self.url} {state}, {frames} live frame(s), "
                f"{wire} subscription(s) on the wire>")

    # --- internals -----------------------------------------------------------------------------

    def _format(self, fmt: str | None, kind: str) -> str:
        if fmt is not None:
            return normalize_format(fmt)
        return self.format or DEFAULT_FORMATS[kind]

    def _server_clock(self, required: bool) -> Callable[[], float] | None:
        """The server's time as a clock (the local one moved by the offset read now), or None
        without an HTTP client; ``required``: its failure is raised, else it gives None."""
        if self.http is None:
            return None
        try:
            offset = server_seconds(self.http) - time.time()
        except InviaError:
            if required:
                raise
            return None
        return lambda: time.time() + offset

    def _frequency(self, frequency: int | None, fmt: str) -> int:
        if frequency is not None:
            return check_count(frequency, "frequency", low=0)
        return self.frequency if self.frequency is not None else MIN_FREQUENCY[fmt]

    def _recording_folder(self, value: Any, name: str = "record") -> Path | None:
        """The folder a ``record=`` option names (None: no recording), absolute and resolved,
        so that two spellings of one folder share one Recorder."""
        if value is None and name == "record":
            return None
        try:
            folder = validate.local_path(value, name).resolve()
        except InvalidArgument as exc:
            if name != "record":
                raise
            raise InvalidArgument(f"{exc}; pass the dataset's folder, e.g. record=\"data/\", "
                                  "or None not to record") from None
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise InvalidArgument(f"{name}={value!r}: {exc}; name another folder"[:300]) from None
        if folder.exists() and not folder.is_dir():
            raise InvalidArgument(f"{name}: {str(folder)[:200]!r} is a file; name a folder for the "
                                  "dataset (it is created if missing)")
        return folder

    def _recorder_at(self, folder: Path, options: dict[str, Any] | None = None
                     ) -> tuple[Recorder, bool]:
        """The running Recorder writing to ``folder``, or a new one: ``(recorder, created)``."""
        from ..record import Recorder

        with self._lock:
            running = self._recorders.get(folder)
            if running is not None and not running._closed:
                differing = sorted(k for k, v in (options or {}).items()
                                   if getattr(running, k, object()) != v)
                if differing:
                    raise InvalidArgument(
                        f"a Recorder already writes to {str(folder)[:200]!r} with other "
                        f"{', '.join(differing)}: close it first (stream.recorders[folder]"
                        ".close()) or record into another folder")
                return running, False
            try:
                recorder = Recorder(folder, stream=self, **(options or {}))
            except OSError as exc:
                raise InvalidArgument(f"cannot record into {str(folder)[:200]!r}: "
                                      f"{exc.strerror or exc}; name a folder you can write"
                                      ) from None
            self._recorders[folder] = recorder
        return recorder, True

    def _drop_recorder(self, folder: Path, recorder: Recorder) -> None:
        with self._lock:
            if self._recorders.get(folder) is recorder:
                del self._recorders[folder]
        recorder.close()

    def _record_frame(self, recorder: Recorder, frame: LiveFrame) -> None:
        """Have ``recorder`` write every message of ``frame`` from now on (once: a frame
        shared by identical subscriptions is recorded once per folder)."""
        from ..record import RAW_KINDS

        with self._lock:
            holders = self._recorded.setdefault(frame, [])
            if any(r is recorder for r in holders):
                return
            holders.append(recorder)
            subs = list(self._frames.get(frame, ()))
        for sub in subs:
            if frame.kind in RAW_KINDS:   # the recorder parses every frame's bytes itself
                sub.route.raw = True
            else:   # (no other kind is conflated; this keeps it so)
                sub.route.conflate = False
        recorder.add(frame)

    def _open(self, kind: str, label: str, requests: list[tuple[Request, str, str]],
              state: Any, params: dict[str, Any], timeout: float | None,
              refresh: Callable[[Sub], Request] | None = None, *,
              record: Path | None = None) -> LiveFrame:
        wait = self.subscribe_timeout if timeout is None else validate.seconds(timeout)
        if self._closed:
            raise StreamClosed("the stream is closed")
        if record is None:
            return self._subscribe(kind, label, requests, state, params, wait, refresh)
        recorder, created = self._recorder_at(record)   # a folder it cannot write: no subscribe
        try:
            frame = self._subscribe(kind, label, requests, state, params, wait, refresh)
        except BaseException:
            if created:
                self._drop_recorder(record, recorder)
            raise
        self._record_frame(recorder, frame)
        return frame

    def _subscribe(self, kind: str, label: str, requests: list[tuple[Request, str, str]],
                   state: Any, params: dict[str, Any], wait: float,
                   refresh: Callable[[Sub], Request] | None) -> LiveFrame:
        key = _identity(kind, label, params, [request for request, _, _ in requests])
        with self._lock:
            shared = self._by_identity.get(key)
            if shared is not None and shared in self._frames and shared.status != "error":
                return shared  # the same subscription again (a re-run cell): one on the wire
        frame = LiveFrame(kind, label, params, state, closer=self._close_frame,
                          stale_after=self.stale_after if kind in WATCHED_KINDS else None)
        subs = [Sub(frame, request, sym, ex, refresh) for request, sym, ex in requests]
        for sub in subs:
            sub.awaited = not self._conn.on_thread()  # see _await
        with self._lock:
            self._frames[frame] = subs
            self._by_identity[key] = frame
        weakref.finalize(frame, self._dropped.put, subs)  # put is safe in any thread, any time
        self._start_reaper()
        try:
            for sub in subs:
                self._conn.add(sub)
        except BaseException:
            self._close_frame(frame)
            raise
        self._await(frame, subs, wait)
        return frame

    def _await(self, frame: LiveFrame, subs: list[Sub], timeout: float) -> None:
        """Wait for the server's answer (callbacks run on dispatcher threads, so one that
        subscribes waits like any caller); code on the stream thread itself cannot wait for the
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

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is not None:
                return
            self._reaper = threading.Thread(target=self._reap, name="invia-stream-reaper",
                                            daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        """Unsubscribe the subscriptions of frames that were collected (nobody held them)."""
        while True:
            subs = self._dropped.get()
            if subs is None:
                return
            for sub in subs:
                try:
                    self._conn.remove(sub)
                except Exception:  # one failed unsubscribe must not stop the others
                    log.exception("unsubscribing a collected %s frame failed", sub.kind)

    def _close_frame(self, frame: LiveFrame) -> None:
        with self._lock:
            subs = self._frames.pop(frame, [])
            for key in [k for k, f in self._by_identity.items() if f is frame]:
                del self._by_identity[key]
        for sub in subs:
            self._conn.remove(sub)
        with self._lock:
            recorders = list(self._recorded.get(frame, ()))
        for recorder in recorders:   # what the frame received is on disk when close() returns
            if not recorder._closed:
                recorder.flush()

    # --- backfill of gaps ----------------------------------------------------------------------

    def _on_gap(self, sub: Sub, cursor: Any, lost_at: float) -> None:
        """Runs on the stream thread: queue an HTTP backfill of the gap, or record it."""
        plan = self.policy.backfill(sub.kind, cursor, lost_at)
        if plan is None or self.http is None:
            kind_fills_itself = plan is None  # books and rows: the next message is complete
            if not kind_fills_itself:
                sub.unfilled += 1
            self._record_gap(sub, lost_at, 0, kind_fills_itself,
                             None if kind_fills_itself else "no HTTP client to backfill with")
            return
        with self._lock:
            pending = self._pending.get(sub)
            if pending is not None:  # not fetched yet: one fetch covers both gaps
                self._pending[sub] = (self.policy.merge_backfills(pending[0], plan), pending[1])
                return
            self._pending[sub] = (plan, lost_at)
        self._start_backfill()
        self._backfills.put(sub)

    def _record_gap(self, sub: Sub, lost_at: float, added: int, filled: bool,
                    error: str | None) -> None:
        frame = sub.frame
        symbol = frame.symbol if frame is not None else f"{sub.exchange}:{sub.symbol}"
        timeframe = frame.params.get("tf") if frame is not None and sub.kind == "bars" else None
        self._gaps.append({"kind": sub.kind, "symbol": symbol, "timeframe": timeframe,
                           "start": lost_at,
                           "end": time.time(), "backfilled": added, "filled": filled,
                           "error": error})
        self.gap_count += 1

    def _start_backfill(self) -> None:
        with self._lock:
            if self._backfill_thread is not None:
                return
            self._backfill_thread = threading.Thread(target=self._backfill_loop,
                                                     name="invia-data-backfill", daemon=True)
        self._backfill_thread.start()

    def _backfill_loop(self) -> None:
        while True:
            sub = self._backfills.get()
            if sub is None or self._closed:
                return
            # after a reconnect, fetch only once the server serves the subscription again:
            # trades made before it did come over HTTP, the later ones on the new connection
            sub.resumed.wait(self.subscribe_timeout)
            with self._lock:
                plan, lost_at = self._pending.pop(sub)
            error = None
            added, complete = 0, False
            try:
                added, complete = self._backfill(sub, plan)
                if not complete:
                    error = f"more than {self.backfill_max_pages} pages to fetch"
            except InviaError as exc:
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never let the worker die on one bad response
                error = f"{type(exc).__name__}: {exc}"
                log.exception("backfill of %s %s failed", sub.kind, sub.symbol)
            if error is not None:
                sub.errors += 1
                sub.unfilled += 1
                log.warning("backfill of %s %s left a gap: %s", sub.kind, sub.symbol, error)
            self._record_gap(sub, lost_at, added, error is None, error)

    def _backfill(self, sub: Sub, plan: Backfill) -> tuple[int, bool]:
        """Fetch what the gap missed, after ``plan.cursor`` (the last trade id, or the last
        candle's start) or from ``plan.lost_at``: ``(rows merged, every page fetched)``."""
        frame = sub.frame
        if frame is None or frame.status in ("closed", "error"):
            return 0, True
        fields = sub.request.fields
        fmt = fields["format"]
        board = fields.get("instrumentGroup")
        assert sub.symbol is not None and sub.exchange is not None  # market kinds only
        if sub.kind == "bars":
            since = int(plan.cursor) if plan.cursor is not None else int(plan.lost_at)
            tf = int(frame.params["tf"])
            # up to the server's now (its clock may differ from ours), following `next`
            end = server_now(self.http) + tf
            columns = fetch_range(self.http, Query(sub.symbol, sub.exchange, board, tf, fmt),
                                  since, end)
            added = sub.writer.merge(lambda state: state.merge_columns(columns))
            complete = True
        else:
            trades, complete = all_trades_after(
                self.http, sub.exchange, sub.symbol, after_id=plan.cursor,
                start=None if plan.cursor is not None else int(plan.lost_at), board=board,
                fmt=fmt, page=self.backfill_page, max_pages=self.backfill_max_pages)
            added = sub.writer.merge(lambda state: state.merge(trades))
        if added:
            sub.writer.publish()
        return int(added), complete


RECORDER_OPTIONS = frozenset({"batch_rows", "batch_seconds", "max_pending_rows", "compact"})


def _identity(kind: str, label: str, params: dict[str, Any], requests: list[Request]
              ) -> tuple[Any, ...]:
    """What makes two subscribing calls the same: the kind, the instruments, the caller's
    parameters and what goes on the wire (less ``from``, and the ``start`` it came from when
    the caller left it to the default, which moves with the clock)."""
    wire = tuple(repr(sorted((k, v) for k, v in r.fields.items() if k != "from"))
                 for r in requests)
    caller = {k: v for k, v in params.items()
              if not (k == "start" and params.get("default_start"))}
    return (kind, label, repr(sorted(caller.items(), key=lambda kv: kv[0])), wire)


RESUBSCRIBE_RECENT = 10  # trades the server resends on a resubscription


def _trades_with_recent(sub: Sub) -> Request:
    """On resubscription, the server resends its latest trades (duplicates are dropped by
    id): they cover the moment between the backfill's fetch and the new subscription."""
    recent = max(int(sub.request.fields.get("depth") or 0), RESUBSCRIBE_RECENT)
    return sub.request.with_fields(depth=min(recent, MAX_RECENT_TRADES))


def _bars_from_last_candle(sub: Sub) -> Request:
    """On resubscription, bars restart from the last candle held (the open one is resent)."""
    last = sub.writer.read(lambda s: s.last_time())
    if last is None:
        return sub.request
    return sub.request.with_fields(**{"from": int(last)})
