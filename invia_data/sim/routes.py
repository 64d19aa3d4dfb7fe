"""The HTTP data routes of REFERENCE §3, registered on the routing table in path order.

Order matters where patterns overlap: literal segments are registered before placeholders.
Handlers return a JSON-able object or ready bytes; they raise ``Problem`` for errors.

``/md/v2/history`` returns at most ``MAX_CANDLES`` candles per response; when a range holds
more, the oldest ``MAX_CANDLES`` are returned and ``next`` is the start of the first one left
out, so a client continues with ``from=next``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from . import encode
from .auth import token_portfolios
from .routing import (
    EXCHANGES,
    INT32_MAX,
    MARKETS,
    Params,
    Problem,
    Request,
    bad,
    parse_tf,
    pick,
    route,
)

MAX_CANDLES = 50_000
MAX_TRADE_HISTORY_SECONDS = 31 * 86_400  # every trade of the range is built for one page
PREV_LOOKBACK_CANDLES = 20_000  # how far back `prev` is looked for, in candles


@route("/md/v2/time", public=True)
def server_time(req: Request) -> Any:
    return int(req.now())


def _paged(items: list, params: Params, default_limit: int | None, max_limit: int = 100_000) -> list:
    limit = params.integer("limit", default_limit, lo=1, hi=max_limit)
    offset = params.integer("offset", 0, lo=0) or 0
    items = items[offset:]
    return items if limit is None else items[:limit]


def _filter_securities(req: Request, records: list[dict], exchange: str | None) -> list[dict]:
    p = req.params
    query = p.text("query")
    sector = p.choice("sector", MARKETS) or p.choice("market", MARKETS)
    cfi = p.text("cficode")
    board = p.text("instrumentGroup")
    base_only = not p.boolean("includeNonBaseBoards")
    out = []
    for rec in records:
        if exchange and exchange != "ITS" and str(rec.get("exchange", "")).upper() != exchange:
            continue
        if sector and rec.get("market") != sector:
            continue
        if board and str(rec.get("board", "")).upper() != board.upper():
            continue
        if base_only and rec.get("primary_board") and rec.get("board") != rec.get("primary_board"):
            continue
        if cfi and not fnmatchcase(str(rec.get("cfi_code") or ""), cfi.upper().replace("X", "?")):
            continue
        if query and not _matches(rec, query):
            continue
        out.append(rec)
    if query:  # exact ticker first, the rest keeps the market's volume order
        out.sort(key=lambda r: str(r.get("symbol", "")).upper() != query.upper())
    return out


def _matches(rec: Mapping[str, Any], query: str) -> bool:
    needle = query.lower()
    return any(needle in str(rec.get(f) or "").lower()
               for f in ("symbol", "short_name", "description", "isin"))


@route("/md/v2/Securities", public=True)
def securities_search(req: Request) -> Any:
    exchange = req.params.choice("exchange", EXCHANGES)
    found = _filter_securities(req, req.market.securities(), exchange)
    return encode.encode_many("security", _paged(found, req.params, 25), req.fmt)


@route("/md/v2/Securities/currencyPairs", public=True)
def currency_pairs(req: Request) -> Any:
    return encode.encode_many("currency_pair", req.market.currency_pairs(), req.fmt)


@route("/md/v2/Securities/{exchange}")
def securities_of_exchange(req: Request) -> Any:
    exchange = pick("exchange", req.args["exchange"], EXCHANGES)
    records = req.market.securities()
    if not req.params.boolean("includeOld"):
        now_iso = encode.iso_ms(req.market.now() * 1000)[:19]
        records = [r for r in records if not r.get("cancellation") or str(r["cancellation"])[:19] >= now_iso]
    found = _filter_securities(req, records, exchange)
    return encode.encode_many("security", _paged(found, req.params, None), req.fmt)


def _quote_key(req: Request, pair: str) -> Any:
    exchange, sep, symbol = pair.partition(":")
    if not sep:
        exchange, symbol = "MOEX", pair
    return req.server.resolve(exchange.strip(), symbol.strip(), kind="quotes")


@route("/md/v2/Securities/{symbols}/quotes", public=True)
def quotes(req: Request) -> Any:
    pairs = [p for p in req.args["symbols"].split(",") if p.strip()]
    if not pairs:
        raise bad("parameter 'symbols' is required")
    keys = [_quote_key(req, p) for p in pairs]
    return [encode.encode("quote", req.market.quote(k, delay=req.delay), req.fmt) for k in keys]


@route("/md/v2/Securities/{exchange}/{symbol}")
def security(req: Request) -> Any:
    key = req.server.resolve(req.args["exchange"], req.args["symbol"], req.params.text("instrumentGroup"))
    return encode.encode("security", req.market.security(key), req.fmt)


@route("/md/v2/Securities/{exchange}/{symbol}/availableBoards", public=True)
def available_boards(req: Request) -> Any:
    key = req.server.resolve(req.args["exchange"], req.args["symbol"])
    return list(req.market.boards(key))


@route("/md/v2/Securities/{exchange}/{symbol}/actualFuturesQuote")
def actual_futures_quote(req: Request) -> Any:
    exchange = pick("exchange", req.args["exchange"], ("MOEX",))
    base = req.args["symbol"].upper()
    now_iso = encode.iso_ms(req.market.now() * 1000)[:19]
    candidates = [
        r for r in req.market.securities()
        if r.get("market") == "FORTS"
        and (str(r.get("symbol", "")).upper().startswith(base + "-")
             or str(r.get("symbol", "")).upper() == base
             or str(r.get("underlying_symbol") or "").upper() == base)
        and str(r.get("cancellation") or "9999")[:19] >= now_iso
    ]
    if not candidates:
        raise Problem(404, f"no active futures contract for {base}")
    nearest = min(candidates, key=lambda r: str(r.get("cancellation") or "9999"))
    key = req.server.resolve(exchange, nearest["symbol"], kind="quotes")
    return encode.encode("quote", req.market.quote(key), req.fmt)


@route("/md/v2/orderbooks/{exchange}/{symbol}")
def orderbook(req: Request) -> Any:
    key = req.server.resolve(req.args["exchange"], req.args["symbol"],
                             req.params.text("instrumentGroup"), kind="orderbook")
    depth = req.params.integer("depth", 20, lo=1, hi=50)
    return req.server.book_data(key, depth, req.fmt, existing=True)


def _trade_filters(req: Request, trades: list[dict]) -> list[dict]:
    p = req.params
    from_id, to_id = p.integer("fromId"), p.integer("toId")
    qty_from, qty_to = p.integer("qtyFrom"), p.integer("qtyTo")
    price_from, price_to = p.number("priceFrom"), p.number("priceTo")
    side = p.choice("side", ("buy", "sell"))
    out = []
    for t in trades:
        if (from_id is not None and t["id"] < from_id) or (to_id is not None and t["id"] > to_id):
            continue
        if (qty_from is not None and t["qty"] < qty_from) or (qty_to is not None and t["qty"] > qty_to):
            continue
        if (price_from is not None and t["price"] < price_from) or (price_to is not None and t["price"] > price_to):
            continue
        if side and t.get("side") != side:
            continue
        out.append(t)
    return out


def _time_window(params: Params) -> tuple[int | None, int | None]:
    start = params.integer("from", lo=0)
    end = params.integer("to", lo=0)
    if start is not None and end is not None and start > end:
        raise bad("parameter 'from' must not be after 'to'")
    return start, end


@route("/md/v2/Securities/{exchange}/{symbol}/alltrades")
def all_trades(req: Request) -> Any:
    key = req.server.resolve(req.args["exchange"], req.args["symbol"],
                             req.params.text("instrumentGroup"), kind="all_trades")
    start, end = _time_window(req.params)
    take = req.params.integer("take", None, lo=0, hi=1_000_000)
    offset = req.params.integer("offset", 0, lo=0) or 0
    descending = req.params.boolean("descending")
    req.params.boolean("includeVirtualTrades")
    trades = _trade_filters(req, req.market.trades(key, start, None if end is None else end + 1))
    if descending:
        trades = trades[::-1]
    trades = trades[offset:] if take is None else trades[offset:offset + take]
    return [encode.encode("trade", encode.trade_record(t, True), req.fmt) for t in trades]


@route("/md/v2/Securities/{exchange}/{symbol}/alltrades/history")
def all_trades_history(req: Request) -> Any:
    key = req.server.resolve(req.args["exchange"], req.args["symbol"],
                             req.params.text("instrumentGroup"), kind="all_trades")
    limit = req.params.integer("limit", required=True, lo=1, hi=50_000)
    offset = req.params.integer("offset", 0, lo=0) or 0
    start, end = _time_window(req.params)
    now = int(req.market.now())
    end = now if end is None else end
    start = end - 86_400 if start is None else start
    if end - start > MAX_TRADE_HISTORY_SECONDS:
        raise bad(f"the range from 'from' to 'to' spans {(end - start) / 86_400:.0f} days; "
                  f"past trades are served {MAX_TRADE_HISTORY_SECONDS // 86_400} days per request")
    page = req.market.past_trades(key, start, end + 1, offset=offset, limit=limit)
    return {"total": req.market.past_trade_count(key, start, end + 1),
            "list": [encode.encode("trade", encode.trade_record(t, True), req.fmt) for t in page]}


# candles

def _candles(req: Request, key: Any, tf: int, start: int, end: int) -> dict[str, np.ndarray]:
    return req.market.candles(key, tf, start, end)


def _count(columns: Mapping[str, np.ndarray]) -> int:
    return len(columns["time"])


def _slice(columns: Mapping[str, np.ndarray], sl: slice) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[sl] for k, v in columns.items()}


def _concat(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([np.asarray(a[k]), np.asarray(b[k])]) for k in encode.CANDLE_COLUMNS}


def _collect(req: Request, key: Any, tf: int, start: int, stop: int) -> dict[str, np.ndarray]:
    """The first ``MAX_CANDLES + 1`` candles of ``[start, stop)`` (the one past a full page is
    its ``next``): only they are generated, so a range of years of seconds costs one page."""
    return dict(req.market.candles(key, tf, start, stop, limit=MAX_CANDLES + 1))


def _delayed_last_candle(req: Request, key: Any, tf: int, columns: dict[str, np.ndarray],
                         cutoff: int) -> dict[str, np.ndarray]:
    """For anonymous callers, rebuild the candle open at ``cutoff`` from the minutes before it."""
    if tf <= 60 or _count(columns) == 0:
        return columns
    last = int(columns["time"][-1])
    if last + tf <= cutoff:
        return columns
    minutes = _candles(req, key, 60, last, cutoff + 1)
    if _count(minutes) == 0:
        return _slice(columns, slice(0, -1))
    out = {k: np.array(np.asarray(v), copy=True) for k, v in columns.items()}
    out["open"][-1] = minutes["open"][0]
    out["high"][-1] = np.max(minutes["high"])
    out["low"][-1] = np.min(minutes["low"])
    out["close"][-1] = minutes["close"][-1]
    out["volume"][-1] = np.sum(minutes["volume"])
    return out


def _extend_back(req: Request, key: Any, tf: int, columns: dict[str, np.ndarray], start: int,
                 count_back: int) -> dict[str, np.ndarray]:
    """Move ``from`` back until ``count_back`` candles are there (or history runs out)."""
    window = max(tf * count_back * 2, 7 * 86_400)
    for _ in range(12):
        missing = count_back - _count(columns)
        if missing <= 0 or start <= 0:
            break
        earlier_start = max(0, start - window)
        earlier = _candles(req, key, tf, earlier_start, start)
        columns = _concat(earlier, columns)
        start = earlier_start
        window *= 2
    extra = _count(columns) - count_back
    return _slice(columns, slice(extra, None)) if extra > 0 else columns


def _neighbour(req: Request, key: Any, tf: int, start: int, end: int, last: bool) -> int | None:
    if end <= start:
        return None
    if not last:  # the first candle after: only it is generated
        found = req.market.candles(key, tf, start, end, limit=1)
        return int(found["time"][0]) if _count(found) else None
    found = _candles(req, key, tf, max(start, end - tf * PREV_LOOKBACK_CANDLES), end)
    if _count(found) == 0:
        return None
    return int(found["time"][-1])


@route("/md/v2/history", public=True)
def history(req: Request) -> Any:
    p = req.params
    exchange = p.choice("exchange", EXCHANGES, required=True)
    symbol = p.text("symbol", required=True)
    tf = parse_tf(p.text("tf", required=True))
    start = p.integer("from", required=True)
    end = p.integer("to", required=True)
    if start > end:
        raise bad("parameter 'from' must not be after 'to'")
    count_back = p.integer("countBack", None, lo=1, hi=INT32_MAX)
    count_back = None if count_back is None else min(count_back, MAX_CANDLES)  # one page at most
    for flag in ("untraded", "splitAdjust", "jsonResponse"):
        p.boolean(flag)
    key = req.server.resolve(exchange, symbol, p.text("instrumentGroup"), kind="bars")
    now = int(req.now())
    stop = min(end, now) + 1
    columns = _collect(req, key, tf, max(start, 0), stop)
    if count_back:
        columns = _extend_back(req, key, tf, columns, max(start, 0), count_back)
    if req.delay:
        columns = _delayed_last_candle(req, key, tf, columns, now)
    lookaround = max(tf * 20, 14 * 86_400)
    next_time: int | None
    if _count(columns) > MAX_CANDLES:
        next_time = int(columns["time"][MAX_CANDLES])
        columns = _slice(columns, slice(0, MAX_CANDLES))
    else:
        next_time = _neighbour(req, key, tf, stop, min(stop + lookaround, now + 1), last=False)
    first = int(columns["time"][0]) if _count(columns) else max(start, 0)
    prev_time = _neighbour(req, key, tf, max(0, first - lookaround), first, last=True)
    return encode.history_bytes(columns, req.fmt, next_time, prev_time)


@route("/md/v2/risk/rates", public=True)
def risk_rates(req: Request) -> Any:
    p = req.params
    category = p.integer("riskCategoryId", required=True, lo=0, hi=INT32_MAX)
    exchange = p.choice("exchange", EXCHANGES)
    rates = req.market.risk_rates(category, exchange=exchange, ticker=p.text("ticker"),
                                  search=p.text("search"))
    page = _paged(rates, p, None)
    return {"total": len(rates), "list": encode.encode_many("risk_rate", page, req.fmt)}


@route("/md/status/{exchange}/{market}", public=True)
def session_status(req: Request) -> Any:
    pick("exchange", req.args["exchange"], EXCHANGES)
    market_code = pick("market", req.args["market"], MARKETS)
    status = "closed"
    for rec in req.market.securities():
        if rec.get("market") == market_code:
            key = req.market.resolve(rec["exchange"], rec["symbol"])
            state = req.market.instrument_state(key) if key is not None else {}
            status = "open" if state.get("trading_status") == 17 else "closed"
            break
    return {"code": market_code, "status": status}


# portfolio data (REFERENCE §3.10)

def _portfolio(req: Request, forts: bool = False) -> str:
    """The path's portfolio in its own spelling, once exchange and token allow it."""
    pick("exchange", req.args["exchange"], ("MOEX",) if forts else EXCHANGES)
    assert req.claims is not None  # protected routes always have claims
    return req.server.allowed_portfolio(req.claims, req.args["portfolio"])


def _records(req: Request, kind: str, records: Iterable[Mapping[str, Any]]) -> list[dict]:
    return [encode.encode(kind, _existing(r), req.fmt) for r in records]


def _existing(record: Mapping[str, Any], existing: bool = True) -> dict[str, Any]:
    out = dict(record)
    out["existing"] = existing
    return out


@route("/md/v2/Clients/{exchange}/{portfolio}/summary")
def summary(req: Request) -> Any:
    return encode.encode("summary", req.market.summary(_portfolio(req)), req.fmt)


@route("/md/v2/Clients/{exchange}/{portfolio}/positions")
def positions(req: Request) -> Any:
    records = req.market.positions(_portfolio(req))
    if req.params.boolean("withoutCurrency"):
        records = [r for r in records if not r.get("is_currency")]
    return _records(req, "position", records)


@route("/md/v2/Clients/{login}/positions")
def positions_of_login(req: Request) -> Any:
    assert req.claims is not None
    login = req.args["login"]
    if login.upper() != str(req.claims.get("sub", "")).upper():
        raise Problem(403, f"login {login!r} is not the login of this token")
    without_currency = req.params.boolean("withoutCurrency")
    out = []
    for portfolio in token_portfolios(req.claims):
        for rec in req.market.positions(portfolio):
            if not (without_currency and rec.get("is_currency")):
                out.append(rec)
    return _records(req, "position", out)


@route("/md/v2/Clients/{exchange}/{portfolio}/positions/{symbol}")
def position(req: Request) -> Any:
    symbol = req.args["symbol"].upper()
    for rec in req.market.positions(_portfolio(req)):
        if str(rec.get("symbol", "")).upper() == symbol:
            return encode.encode("position", _existing(rec), req.fmt)
    raise Problem(404, f"no position in {symbol}")


@route("/md/v2/Clients/{exchange}/{portfolio}/risk")
def risk(req: Request) -> Any:
    return encode.encode("risk", req.market.risk(_portfolio(req)), req.fmt)


@route("/md/v2/Clients/{exchange}/{portfolio}/fortsrisk")
def forts_risk(req: Request) -> Any:
    portfolio = _portfolio(req, forts=True)
    if not portfolio.startswith("75"):
        raise bad(f"portfolio {portfolio!r} is not a derivatives (FORTS) portfolio")
    return encode.encode("forts_risk", req.market.forts_risk(portfolio), req.fmt)


@route("/md/v2/Clients/legacy/{exchange}/{portfolio}/money")
def legacy_money(req: Request) -> Any:
    return encode.encode("money", req.market.money(_portfolio(req)), req.fmt)


def _by_id(records: Iterable[Mapping[str, Any]], order_id: str, what: str) -> Mapping[str, Any]:
    if not order_id.isdigit():
        raise bad(f"parameter 'orderId' must be an integer, got {order_id!r}")
    for rec in records:
        if str(rec.get("id")) == order_id:
            return rec
    raise Problem(404, f"{what} {order_id} not found")


@route("/md/v2/Clients/{exchange}/{portfolio}/orders")
def orders(req: Request) -> Any:
    return _records(req, "order", req.market.orders(_portfolio(req)))


@route("/md/v2/Clients/{exchange}/{portfolio}/orders/{orderId}")
def order(req: Request) -> Any:
    rec = _by_id(req.market.orders(_portfolio(req)), req.args["orderId"], "order")
    return encode.encode("order", _existing(rec), req.fmt)


@route("/md/v2/Clients/{exchange}/{portfolio}/stoporders")
def stop_orders(req: Request) -> Any:
    return _records(req, "stop_order", req.market.stop_orders(_portfolio(req)))


@route("/md/v2/Clients/{exchange}/{portfolio}/stoporders/{orderId}")
def stop_order(req: Request) -> Any:
    rec = _by_id(req.market.stop_orders(_portfolio(req)), req.args["orderId"], "stop order")
    return encode.encode("stop_order", _existing(rec), req.fmt)


@route("/md/v2/Clients/{exchange}/{portfolio}/trades")
def own_trades(req: Request) -> Any:
    req.params.boolean("withRepo")
    return _records(req, "own_trade", req.market.own_trades(_portfolio(req)))


@route("/md/v2/Clients/{exchange}/{portfolio}/{symbol}/trades")
def own_trades_of_symbol(req: Request) -> Any:
    portfolio = _portfolio(req)
    return _records(req, "own_trade", req.market.own_trades(portfolio, req.args["symbol"].upper()))


# The deprecated /md/stats routes answer the older trade shape, without Heavy's shortName and
# currency (spec: response_Trade_Heavy against response_Trade_V2_Heavy).
LEGACY_TRADE_OMITS = ("short_name", "currency")


def _stats_trades(req: Request, symbol: str | None, omit: tuple[str, ...] = ()) -> Any:
    p = req.params
    portfolio = _portfolio(req)
    date_from = p.text("dateFrom")
    if date_from is not None:
        date_from = _parse_date(date_from)
    symbol = symbol or p.text("ticker")
    from_id = p.integer("from", None, lo=0)
    limit = p.integer("limit", 1000, lo=1, hi=1000)
    side = p.choice("side", ("buy", "sell"))
    descending = p.boolean("descending")
    for flag in ("orderByTradeDate", "withRepo", "jsonResponse"):
        p.boolean(flag)
    records = req.market.own_trades_history(portfolio, symbol.upper() if symbol else None, date_from)
    if side:
        records = [r for r in records if r.get("side") == side]
    if from_id is not None:
        records = [r for r in records if _int_id(r) >= from_id]
    if descending:
        records = records[::-1]
    records = [{k: v for k, v in r.items() if k not in omit} for r in records[:limit]]
    return _records(req, "own_trade", records)


def _int_id(record: Mapping[str, Any]) -> int:
    try:
        return int(record.get("id") or 0)
    except (TypeError, ValueError):
        return 0


def _parse_date(text: str) -> str:
    """``2021-10-13`` or an ISO UTC datetime -> the ISO string the market takes (400 otherwise)."""
    import pandas as pd

    stamp: pd.Timestamp | None = None
    try:
        read = pd.Timestamp(text) if len(text) <= 40 else pd.NaT
        if isinstance(read, pd.Timestamp) and read is not pd.NaT:
            read = read.tz_localize("UTC") if read.tzinfo is None else read.tz_convert("UTC")
            stamp = read if 1970 <= read.year <= 9999 else None
    except (ValueError, TypeError, OverflowError):
        stamp = None
    if stamp is None:
        raise bad(f"parameter 'dateFrom' must be a date or an ISO datetime, got {text[:40]!r}")
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


@route("/md/v2/Stats/{exchange}/{portfolio}/history/trades")
def stats_trades(req: Request) -> Any:
    return _stats_trades(req, None)


@route("/md/v2/Stats/{exchange}/{portfolio}/history/trades/{symbol}")
def stats_trades_of_symbol(req: Request) -> Any:
    return _stats_trades(req, req.args["symbol"])


@route("/md/stats/{exchange}/{portfolio}/history/trades")
def legacy_stats_trades(req: Request) -> Any:
    return _stats_trades(req, None, LEGACY_TRADE_OMITS)


@route("/md/stats/{exchange}/{portfolio}/history/trades/{symbol}")
def legacy_stats_trades_of_symbol(req: Request) -> Any:
    return _stats_trades(req, req.args["symbol"], LEGACY_TRADE_OMITS)
