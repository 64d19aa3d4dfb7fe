"""Candles: ``history()`` pages ``GET /md/v2/history`` into one DataFrame, with a disk cache.

The frame: a tz-aware UTC ``DatetimeIndex`` named ``time`` (the candle start), columns ``open``,
``high``, ``low``, ``close`` (float64) and ``volume`` (int64), ascending, one row per time. For a
list of symbols the index is a (``symbol``, ``time``) MultiIndex. ``df.attrs``:

* ``"open_candle"``: the start time (ISO string) of the candle that had not closed yet when the data was
  fetched (it is in the frame and may still change), or ``None``; for a list of symbols a dict
  symbol -> time or ``None``. The open candle is never cached.
* ``"tf"``: the timeframe label (``"1min"``, ``"D"``).
* ``"symbol"``: for one symbol, that symbol (bare, as in a list's index); plots title with it.

Ranges: naive datetimes and strings are UTC; ``start`` is inclusive, ``end`` exclusive. The
default ``end`` is now (the server's clock) and includes the open candle; the default
``start`` is ``end`` minus :func:`default_window`: 1 day below 1 minute, 7 days up to 1 hour
(excluded), 90 days below 1 day, 1 year for daily, 5 years for weekly and longer candles.

Paging: the range is cut into requests of at most ``CANDLES_PER_REQUEST`` candles that a small
thread pool fetches in parallel (all through the one rate limiter of ``Http``); a response that
stops early and names a ``next`` candle inside its request is followed. Slim bodies are parsed
by ``pyarrow.json`` straight into columns (no Python object per candle, and without the GIL, so
parsing overlaps the transfers); any body it cannot read goes through orjson instead.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache as memoize
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from . import validate
from .cache import (
    COLUMN_DTYPES,
    COLUMNS,
    CacheKey,
    CandleCache,
    Columns,
    concat_columns,
    empty_columns,
    environment_name,
    resolve_cache_dir,
    select,
    sort_unique,
    year_bounds,
    years_of,
)
from .errors import DecodeError, InvalidArgument, InviaError, InviaWarning, NotFound
from .frames import STR_DTYPE, convert, convert_tz, epoch_to_utc
from .market import parse_symbol
from .schema import CANDLE, HISTORY, normalize_format
from .timeframes import CODES, label, to_seconds, to_wire
from .times import TimeLike, check_range, check_tz, iso_time, to_epoch_seconds

if TYPE_CHECKING:
    from .http import Http

__all__ = [
    "CANDLES_PER_REQUEST",
    "PROGRESS_MIN_REQUESTS",
    "candle_frame",
    "default_window",
    "history",
    "parse_history",
    "split_range",
]

logger = logging.getLogger("invia_data.http")

HISTORY_PATH = "/md/v2/history"
TIME_PATH = "/md/v2/time"
DEFAULT_FORMAT = "Slim"
CANDLES_PER_REQUEST = 50_000  # ~3.5 MB of Slim JSON, far below the 30 MB the API discourages
PROGRESS_MIN_REQUESTS = 10  # progress=None shows a bar above this many requests
RECENT_SECONDS = 86_400  # an end closer than this to the local clock asks the server's clock
DAY = 86_400


@dataclass(frozen=True)
class Query:
    """One symbol's request parameters, validated."""

    symbol: str
    exchange: str
    board: str | None
    tf_seconds: int
    fmt: str

    def params(self, start: int, end: int) -> dict[str, Any]:
        params: dict[str, Any] = {"symbol": self.symbol, "exchange": self.exchange,
                                  "tf": to_wire(self.tf_seconds), "from": start, "to": end,
                                  "format": self.fmt}
        if self.board:
            params["instrumentGroup"] = self.board
        return params

    @property
    def what(self) -> str:
        board = f" on board {self.board}" if self.board else ""
        return f"instrument {self.exchange}:{self.symbol}{board}"


# --- pure parts ---------------------------------------------------------------------------------

def default_window(tf_seconds: int) -> int:
    """Seconds of history asked for when no ``start`` is given (see the module docstring)."""
    if tf_seconds < 60:
        return DAY
    if tf_seconds < 3600:
        return 7 * DAY
    if tf_seconds < DAY:
        return 90 * DAY
    if tf_seconds < 7 * DAY:
        return 365 * DAY
    return 5 * 365 * DAY


def split_range(start: int, end: int, tf_seconds: int,
                candles_per_request: int | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` cut into consecutive pieces that hold at most ``candles_per_request``
    candles of ``tf_seconds`` each."""
    if end <= start:
        return []
    per_request = CANDLES_PER_REQUEST if candles_per_request is None else candles_per_request
    span = max(1, tf_seconds * per_request)
    return [(a, min(a + span, end)) for a in range(start, end, span)]


@memoize
def _arrow_schema(fmt: str) -> pa.Schema:
    """The explicit pyarrow schema of a /md/v2/history body in ``fmt`` (every accepted key of
    the candle list, so Slim's ``h`` and ``history`` both parse)."""
    types = {"ts_s": pa.int64(), "float": pa.float64(), "i8": pa.int64()}
    candle = pa.struct([(f.key(fmt), types[f.kind]) for f in CANDLE.fields])
    fields = [(key, pa.list_(candle)) for key in HISTORY.field("history").keys(fmt)]
    fields += [("next", pa.int64()), ("prev", pa.int64())]
    return pa.schema(fields)


def _parse_arrow(body: bytes, fmt: str) -> tuple[Columns, int | None]:
    schema = _arrow_schema(fmt)
    table = pa_json.read_json(
        io.BytesIO(body),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=len(body) + 1),
        parse_options=pa_json.ParseOptions(explicit_schema=schema,
                                           unexpected_field_behavior="ignore"),
    )
    if table.num_rows != 1:
        raise ValueError("expected one JSON object")
    candles = None
    for key in HISTORY.field("history").keys(fmt):
        column = table.column(key)
        if column.null_count == 0:
            candles = column.combine_chunks().flatten()
            break
    if candles is None:
        raise ValueError("no candle list")
    columns: Columns = {}
    for field in CANDLE.fields:
        values = candles.field(field.key(fmt))
        if values.null_count:
            raise ValueError(f"missing {field.name}")
        columns[field.name] = values.to_numpy().astype(COLUMN_DTYPES[field.name], copy=False)
    return columns, table.column("next")[0].as_py()


def _parse_json(body: bytes, fmt: str) -> tuple[Columns, int | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise DecodeError("the server answered with a body that is not JSON", status=200,
                          request=f"GET {HISTORY_PATH}") from None
    if not isinstance(payload, dict):
        raise DecodeError("the history body is not a JSON object", status=200,
                          request=f"GET {HISTORY_PATH}")
    keys = HISTORY.field("history").keys(fmt)
    candles: list[dict[str, Any]] = next(
        (payload[k] for k in keys if payload.get(k) is not None), [])
    try:
        columns = _json_columns(candles, fmt)
        nxt = payload.get("next")
        return columns, None if nxt is None else int(nxt)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DecodeError(f"malformed history body ({type(exc).__name__}: {exc})"[:300],
                          status=200, request=f"GET {HISTORY_PATH}") from None


def _json_columns(candles: list[dict[str, Any]], fmt: str) -> Columns:
    columns: Columns = {}
    for field in CANDLE.fields:
        key = CANDLE.required_key(field.name, fmt)
        values = [c.get(key) for c in candles]
        if field.kind == "float":
            columns[field.name] = convert(values, "float")
        else:  # epoch seconds and volume: integers on the wire, floats tolerated
            numbers = np.array([0 if v is None else v for v in values], dtype="float64")
            columns[field.name] = np.rint(numbers).astype("int64")
    return columns


def parse_history(body: bytes, fmt: str) -> tuple[Columns, int | None]:
    """A /md/v2/history body in ``fmt`` -> (candle columns, the ``next`` cursor or None)."""
    fmt = normalize_format(fmt)
    try:
        return _parse_arrow(body, fmt)
    except (pa.ArrowException, ValueError, KeyError):
        return _parse_json(body, fmt)


def candle_frame(columns: Columns) -> pd.DataFrame:
    """Candle columns -> the history frame of one symbol (UTC ``time`` index)."""
    index = epoch_to_utc(columns["time"].astype("float64"), "s")
    index.name = "time"
    data = {name: columns[name] for name in COLUMNS[1:]}
    return pd.DataFrame(data, index=index, copy=False)


# --- validation ---------------------------------------------------------------------------------

def _symbol_list(symbols: str | Sequence[str]) -> tuple[list[str], bool]:
    """(symbols, asked for one as a plain string)."""
    if isinstance(symbols, str):
        names, single = [symbols], True
    elif isinstance(symbols, Sequence) or hasattr(symbols, "__iter__"):
        names, single = list(symbols), False
    else:
        raise InvalidArgument(f"symbols: expected a ticker or a list of tickers, got {symbols!r}")
    if not names:
        raise InvalidArgument("symbols: the list is empty")
    cleaned: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument(f"symbols: expected non-empty tickers, got {name!r}")
        if name.strip(" ") not in cleaned:  # a newline is refused, not stripped
            cleaned.append(name.strip(" "))
    return cleaned, single


@dataclass(frozen=True)
class Plan:
    """Everything ``history()`` was asked, validated before any request."""

    symbols: list[str]
    exchanges: list[str]
    single: bool
    query: Query
    start: int | None
    end: int | None
    tz: str | None
    cache: CandleCache | None
    progress: bool | None
    max_workers: int


def _plan(symbols: str | Sequence[str], tf: str | int, start: TimeLike | None,
          end: TimeLike | None, exchange: str, board: str | None, format: str | None,
          tz: str | None, cache: bool, cache_dir: str | os.PathLike[str] | None,
          progress: bool | None, max_workers: int) -> Plan:
    names, single = _symbol_list(symbols)
    tf_seconds = to_seconds(tf)
    fmt = normalize_format(DEFAULT_FORMAT if format is None else format)
    exchange = validate.exchange(exchange)
    exchanges, names = _instruments(names, exchange)
    board = validate.board(board)
    first, last = check_range(start, end)
    lo = None if first is None else to_epoch_seconds(first)
    hi = None if last is None else to_epoch_seconds(last)
    check_tz(tz)
    if not isinstance(cache, bool):
        raise InvalidArgument(f"cache: expected True or False, got {cache!r}")
    if progress is not None and not isinstance(progress, bool):
        raise InvalidArgument(f"progress: expected None, True or False, got {progress!r}")
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise InvalidArgument(f"max_workers: expected a positive int, got {max_workers!r}")
    if cache_dir is not None:
        validate.local_path(cache_dir, "cache_dir")
    store = CandleCache(resolve_cache_dir(cache_dir)) if cache else None
    query = Query(names[0], exchanges[0], board, tf_seconds, fmt)
    return Plan(names, exchanges, single, query, lo, hi, tz, store, progress, max_workers)


def _instruments(names: list[str], exchange: str) -> tuple[list[str], list[str]]:
    """(exchanges, symbols) of ``"SBER"`` (on ``exchange``) or ``"ITS:SOGN"`` spellings; the
    frame is keyed by symbol, so one symbol on two exchanges is refused."""
    pairs = list(dict.fromkeys(parse_symbol(name, exchange) for name in names))
    symbols = [symbol for _, symbol in pairs]
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice:
        raise InvalidArgument(f"symbols: {', '.join(twice)} asked on two exchanges; "
                              "call history() once per exchange")
    return [ex for ex, _ in pairs], symbols


# --- I/O ----------------------------------------------------------------------------------------

def server_seconds(http: Any) -> float:
    """The server's clock in unix seconds (delayed by 15 minutes for anonymous access, like the
    data). No fallback to the local clock: the server's clock decides which candle is still
    open, and a local clock ahead of it would cache an open candle as closed. A failed request
    raises its error; an answer that is not a number raises DecodeError."""
    value = http.get(TIME_PATH)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise DecodeError(f"the server's time is not a number: {str(value)[:80]!r}",
                          status=200, request=f"GET {TIME_PATH}")
    return value


def server_now(http: Any) -> int:
    """:func:`server_seconds` rounded down to a whole second."""
    return math.floor(server_seconds(http))


def fetch_range(http: Any, query: Query, start: int, end: int) -> Columns:
    """The candles of ``[start, end)``, following ``next`` when a response stops early."""
    parts: list[Columns] = []
    cursor = start
    for _ in range(CANDLES_PER_REQUEST + 2):
        body = http.get_bytes(HISTORY_PATH, query.params(cursor, end), what=query.what)
        columns, nxt = parse_history(body, query.fmt)
        parts.append(columns)
        if nxt is None or nxt >= end:
            break
        if nxt <= cursor:
            raise InviaError(f"{HISTORY_PATH}: the next cursor {nxt} does not advance past "
                             f"{cursor} for {query.what}")
        cursor = nxt
    return select(sort_unique(concat_columns(parts)), start, end)


def _run(tasks: list[Callable[[], Columns]], progress: bool | None, max_workers: int,
         description: str) -> list[Columns]:
    """Run ``tasks`` (in a pool when there are several); results in task order. The first
    failure cancels what has not started and is raised here."""
    show = len(tasks) > PROGRESS_MIN_REQUESTS if progress is None else progress
    bar = _progress_bar(len(tasks), description) if show and tasks else None
    try:
        if len(tasks) <= 1 or max_workers == 1:
            results = []
            for task in tasks:
                results.append(task())
                if bar is not None:
                    bar.update(1)
            return results
        return _run_pooled(tasks, min(max_workers, len(tasks)), bar)
    finally:
        if bar is not None:
            bar.close()


def _run_pooled(tasks: list[Callable[[], Columns]], workers: int, bar: Any) -> list[Columns]:
    """The tasks on a pool. On a failure or an interrupt (Ctrl-C) the pages not started are
    cancelled and the error is raised at once, without waiting for the requests in flight:
    their answers are dropped (nothing of this call reaches the cache)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="invia-history")
    try:
        futures: list[Future[Columns]] = [pool.submit(task) for task in tasks]
        if bar is not None:
            for future in futures:
                future.add_done_callback(lambda _f: bar.update(1))
        results = [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def _progress_bar(total: int, description: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="req", leave=False)


# --- the call -----------------------------------------------------------------------------------

def history(http: Http, symbols: str | Sequence[str], tf: str | int = "1min",
            start: TimeLike | None = None, end: TimeLike | None = None, *,
            period: str | None = None, exchange: str = "MOEX", board: str | None = None,
            format: str | None = None, tz: str | None = None, cache: bool = True,
            cache_dir: str | os.PathLike[str] | None = None, progress: bool | None = None,
            max_workers: int = 4, errors: str = "raise", closed_only: bool = False,
            field: str | None = None) -> pd.DataFrame:
    """Candles of one symbol (``"SBER"``) or several (``["SBER", "GAZP"]``) as a DataFrame.

    A symbol is on ``exchange`` unless it names its own (``"ITS:SOGN"``); the frame's
    ``symbol`` level and the keys of ``attrs["open_candle"]`` are the bare symbols.

    ``tf``: seconds or a spelling of ``timeframes.py`` (``"1min"``, ``"5min"``, ``"1h"``,
    ``"D"``, ``"W"``). ``start``/``end``: any time ``times.py`` reads (naive = UTC);
    ``start`` inclusive, ``end`` exclusive, defaults in the module docstring. ``format``: the
    wire format (default Slim; the frame is the same for all three). ``tz``: convert the index.
    ``cache``: read and fill the Parquet cache of closed candles (``cache.py``; location
    ``cache_dir`` > ``$INVIA_CACHE_DIR`` > ``~/.cache/invia-data``). ``progress``: ``None``
    shows a bar above ``PROGRESS_MIN_REQUESTS`` requests, ``True``/``False`` force it.
    ``max_workers``: parallel requests.

    ``period`` (instead of ``start``): ``"5d"``, ``"1wk"``, ``"1mo"``, ``"3mo"``, ``"1y"``,
    ``"2y"``, ``"ytd"`` or ``"max"``, counted back from ``end`` (default now). ``errors``
    (a list of symbols): ``"raise"`` the first failure, or ``"warn"``/``"ignore"`` to return
    the symbols that worked, with the failed ones in ``attrs["failed"]`` (symbol -> message);
    if every symbol fails the first error is raised all the same. ``closed_only``: drop
    candles that had not closed yet. ``field`` (``"close"``, ``"volume"``...): that column
    alone, wide: one column per symbol.

    Raises InvalidArgument (before any request) for an unknown timeframe or format, an empty
    symbol list, unreadable times, ``start`` after ``end`` or an unknown time zone; NotFound
    for an unknown instrument; the other errors of ``errors.py`` as the server answers.
    """
    options = _check_options(period, start, errors, closed_only, field)
    plan = _plan(symbols, tf, start, end, exchange, board, format, tz, cache, cache_dir,
                 progress, max_workers)
    start_s, end_s, now, server_clock = _resolve_range(http, plan)
    if period is not None:
        start_s = period_start(period, end_s)
    environment = (getattr(http, "cache_environment", None)
                   or environment_name(getattr(http, "base_url", "") or "default"))
    queries = [replace(plan.query, exchange=ex, symbol=s)
               for ex, s in zip(plan.exchanges, plan.symbols, strict=True)]
    keys = [CacheKey(environment, q.exchange, q.symbol, q.board, label(q.tf_seconds))
            for q in queries]
    known = [_from_cache(plan.cache, key, start_s, end_s) for key in keys]
    if plan.cache is not None and not server_clock and any(gaps for _, gaps in known):
        # what is stored as closed is decided by the server's clock, which may be far from
        # ours (a simulator started in the past), never by the local one
        now = server_now(http)
    failures: dict[int, InviaError] | None = None if options.errors == "raise" else {}
    try:
        fetched = _fetch_gaps(http, plan, queries, [gaps for _, gaps in known], failures)
    except NotFound as exc:
        if plan.single:
            raise
        raise NotFound(f"{exc.message}; errors='warn' returns the other symbols",
                       status=exc.status, request=exc.request) from exc

    frames: list[pd.DataFrame] = []
    open_candles: list[pd.Timestamp | None] = []
    tf_seconds = plan.query.tf_seconds
    for i, (key, (cached, gaps), new) in enumerate(zip(keys, known, fetched, strict=True)):
        if failures and i in failures:
            continue
        if plan.cache is not None and gaps:
            _remember(plan.cache, key, new, gaps, tf_seconds, _cacheable_until(http, now))
        columns = sort_unique(concat_columns([cached, new]))
        if options.closed_only:
            columns = _closed(columns, tf_seconds, now)
        frames.append(candle_frame(columns))
        open_candles.append(_open_candle(columns, tf_seconds, now))
    failed = None if failures is None else {plan.symbols[i]: str(e) for i, e in failures.items()}
    if failures:
        plan = _without_failed(plan, failures, options.errors)
    return _shape(_finish(frames, open_candles, plan), plan, options.field, failed)


Gaps = list[tuple[int, int]]


def _from_cache(cache: CandleCache | None, key: CacheKey, start: int, end: int
                ) -> tuple[Columns, Gaps]:
    """(the cached candles of ``[start, end)``, the sub-ranges still to fetch)."""
    if cache is None:
        return empty_columns(), [(start, end)] if end > start else []
    return cache.lookup(key, start, end)


def _fetch_gaps(http: Any, plan: Plan, queries: list[Query], gaps: list[Gaps],
                failures: dict[int, InviaError] | None = None) -> list[Columns]:
    """Every gap of every symbol, cut into bounded requests run by one pool; per symbol the
    candles fetched (in no particular order). With ``failures`` (a dict), a symbol whose
    request fails is recorded there (index -> error) instead of failing the call."""
    tf_seconds = plan.query.tf_seconds
    pieces = [(i, a, b) for i, symbol_gaps in enumerate(gaps) for gap in symbol_gaps
              for a, b in split_range(*gap, tf_seconds, CANDLES_PER_REQUEST)]
    tasks = [_fetch_task(http, queries[i], a, b) for i, a, b in pieces]
    if failures is not None:
        tasks = [_catching(task) for task in tasks]
    what = plan.symbols[0] if plan.single else f"{len(plan.symbols)} symbols"
    results: list[Any] = _run(tasks, plan.progress, plan.max_workers,
                              f"{what} {label(tf_seconds)}")
    out = []
    for i in range(len(queries)):
        mine = [r for (j, _, _), r in zip(pieces, results, strict=True) if j == i]
        failed = [r for r in mine if isinstance(r, InviaError)]
        if failed and failures is not None:
            failures[i] = failed[0]
        out.append(concat_columns([r for r in mine if not isinstance(r, InviaError)]))
    return out


def _catching(task: Callable[[], Columns]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return task()
        except InviaError as exc:  # this symbol failed; the others go on
            return exc
    return run


# --- the options of a research call: period, partial results, closed only, one wide field -------

PERIODS = "'5d', '1wk', '1mo', '3mo', '6mo', '1y', '2y', '5y', '10y', 'ytd' or 'max'"
_PERIOD = re.compile(r"^(\d+)(d|wk|mo|y)$")
_PERIOD_UNITS = {"d": "days", "wk": "weeks", "mo": "months", "y": "years"}
MAX_PERIOD_START = pd.Timestamp("2000-01-01", tz="UTC")  # before any candle the API serves
ERRORS = ("raise", "warn", "ignore")
FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Options:
    errors: str
    closed_only: bool
    field: str | None


def _check_options(period: Any, start: Any, errors: Any, closed_only: Any, field: Any
                   ) -> Options:
    if period is not None:
        if start is not None:
            raise InvalidArgument("period and start both say where to begin: pass one of them")
        period_start(period, 0)
    if errors not in ERRORS:
        raise InvalidArgument(f"errors must be 'raise', 'warn' or 'ignore', got {errors!r}")
    if not isinstance(closed_only, bool):
        raise InvalidArgument(f"closed_only: expected True or False, got {closed_only!r}")
    if field is not None and field not in FIELDS:
        raise InvalidArgument(f"field must be one of {', '.join(FIELDS)}, got {field!r}")
    return Options(errors, closed_only, field)


def period_start(period: Any, end: int) -> int:
    """Unix seconds of the start of ``period`` counted back from ``end``: ``"5d"``, ``"1wk"``,
    ``"3mo"``, ``"2y"`` (calendar months and years), ``"ytd"`` (1 January, UTC), ``"max"``."""
    text = period.strip().lower() if isinstance(period, str) else None
    stamp = pd.Timestamp(end, unit="s", tz="UTC")
    if text == "max":
        return int(MAX_PERIOD_START.timestamp())
    if text == "ytd":
        return int(pd.Timestamp(year=stamp.year, month=1, day=1, tz="UTC").timestamp())
    match = _PERIOD.match(text or "")
    if not match or int(match.group(1)) < 1:
        raise InvalidArgument(f"unknown period {period!r}: use {PERIODS}")
    offset = pd.DateOffset(**cast(Any, {_PERIOD_UNITS[match.group(2)]: int(match.group(1))}))
    return int(max(stamp - offset, MAX_PERIOD_START).timestamp())


def _without_failed(plan: Plan, failures: dict[int, InviaError], errors: str) -> Plan:
    """The plan of the symbols that worked; all failed: the first error, whatever ``errors``."""
    if len(failures) == len(plan.symbols):
        raise next(iter(failures.values()))
    if errors == "warn":
        names = ", ".join(plan.symbols[i] for i in failures)
        warnings.warn(f"history: no candles for {names} (see attrs['failed'])", InviaWarning,
                      stacklevel=3)
    keep = [i for i in range(len(plan.symbols)) if i not in failures]
    return replace(plan, symbols=[plan.symbols[i] for i in keep],
                   exchanges=[plan.exchanges[i] for i in keep])


def _shape(frame: pd.DataFrame, plan: Plan, field: str | None,
           failed: dict[str, str] | None) -> pd.DataFrame:
    attrs = dict(frame.attrs)
    if failed is not None:
        attrs["failed"] = failed
    if field is not None:
        if plan.single:
            frame = frame[[field]].rename(columns={field: plan.symbols[0]})
        else:
            frame = frame[field].unstack("symbol").reindex(columns=plan.symbols)
        frame.columns.name = "symbol"
        attrs["field"] = field
    frame.attrs = attrs
    return frame


def _remember(cache: CandleCache, key: CacheKey, fetched: Columns, gaps: Gaps,
              tf_seconds: int, now: int) -> None:
    """Store the closed candles of the fetched gaps, and the gaps as covered up to where a
    candle may still be open."""
    final = closed_before(tf_seconds, now)
    covered = [(a, min(b, final)) for a, b in gaps if min(b, final) > a]
    cache.store(key, _closed(fetched, tf_seconds, now), covered)


def _cacheable_until(http: Any, now: int) -> int:
    until = getattr(http, "cache_until", None)
    return now if until is None else min(now, int(until))


def _fetch_task(http: Any, query: Query, start: int, end: int) -> Callable[[], Columns]:
    return lambda: fetch_range(http, query, start, end)


def _resolve_range(http: Any, plan: Plan) -> tuple[int, int, int, bool]:
    """(start, end, now, whether now is the server's) in unix seconds, filling the defaults.
    The local clock stands in for the server's only for an ``end`` long past, where it decides
    nothing but ``attrs["open_candle"]``; the cache asks the server before storing."""
    local_now = time.time()
    server_clock = plan.end is None or plan.end > local_now - RECENT_SECONDS
    now = server_now(http) if server_clock else math.floor(local_now)
    end = now + 1 if plan.end is None else plan.end
    start = end - default_window(plan.query.tf_seconds) if plan.start is None else plan.start
    if start > end:
        raise InvalidArgument(f"start ({pd.Timestamp(start, unit='s', tz='UTC')}) is after "
                              f"the end ({pd.Timestamp(end, unit='s', tz='UTC')})")
    return start, end, now, server_clock


def candle_ends(times: np.ndarray, tf_seconds: int) -> np.ndarray:
    """When candles starting at ``times`` end: ``M`` and ``Y`` are calendar months and years
    (as the server builds them), any other timeframe is its length in seconds."""
    unit = {CODES["M"]: "M", CODES["Y"]: "Y"}.get(tf_seconds)
    if unit is None:
        return times + tf_seconds
    periods = times.astype("datetime64[s]").astype(f"datetime64[{unit}]") + 1
    return periods.astype("datetime64[s]").astype("int64")


def closed_before(tf_seconds: int, now: int) -> int:
    """A time before which every candle has closed at ``now`` (candles start before they end,
    so one starting earlier than ``now`` minus the longest candle is over)."""
    longest = {CODES["M"]: 31 * DAY, CODES["Y"]: 366 * DAY}.get(tf_seconds, tf_seconds)
    return now - longest + 1


def _closed(columns: Columns, tf_seconds: int, now: int) -> Columns:
    done = candle_ends(columns["time"], tf_seconds) <= now
    return columns if done.all() else {name: values[done] for name, values in columns.items()}


def _open_candle(columns: Columns, tf_seconds: int, now: int) -> pd.Timestamp | None:
    times = columns["time"]
    if len(times) and candle_ends(times[-1:], tf_seconds)[0] > now:
        return pd.Timestamp(int(times[-1]), unit="s", tz="UTC")
    return None


def _finish(frames: list[pd.DataFrame], open_candles: list[pd.Timestamp | None],
            plan: Plan) -> pd.DataFrame:
    tf_label = label(plan.query.tf_seconds)
    if plan.single:
        frame = frames[0]
        opened: Any = open_candles[0]
    else:
        frame = pd.concat(frames, keys=pd.Index(plan.symbols, dtype=STR_DTYPE),
                          names=["symbol", "time"])
        opened = dict(zip(plan.symbols, open_candles, strict=True))
    if plan.tz is not None:
        frame = _to_zone(frame, plan.tz)
    frame.attrs = {"open_candle": _iso_open(opened, plan.tz), "tf": tf_label}
    if plan.single:  # titles of plots and saved files name the instrument
        frame.attrs["symbol"] = plan.symbols[0]
    return frame


def _to_zone(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    if isinstance(frame.index, pd.MultiIndex):
        times = pd.DatetimeIndex(frame.index.levels[1]).tz_convert(tz)
        frame.index = cast(Any, frame.index).set_levels(times, level="time")  # stubs lag
        return frame
    return convert_tz(frame, tz)


def _iso_open(opened: Any, tz: str | None) -> Any:
    if isinstance(opened, dict):
        return {k: iso_time(v, tz) for k, v in opened.items()}
    return iso_time(opened, tz)


# --- years -------------------------------------------------------------------------------------

def _year_pieces(start: int, end: int) -> list[tuple[int, int]]:
    if end <= start:
        return []
    first, last = (int(y) for y in years_of(np.array([start, end - 1], dtype="int64")))
    pieces = []
    for year in range(first, last + 1):
        lo, hi = year_bounds(year)
        pieces.append((max(lo, start), min(hi, end)))
    return pieces

