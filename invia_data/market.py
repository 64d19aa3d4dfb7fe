"""Market data calls: server time, instruments, quotes, order book, all trades, reference data.

:class:`MarketData` is mixed into :class:`~invia_data.client.Client`; each call builds its
parameters (checking them before any request), makes one call to the HTTP seam (or a bounded
series of pages) and turns the payload into a DataFrame through the schema tables, so columns
and dtypes are the same whatever ``format`` was used on the wire, and an empty answer is an
empty frame with those columns.

Times: every returned time is tz-aware UTC; ``tz=`` converts (e.g. ``"Europe/Moscow"``). Times
given by the user may be ``pd.Timestamp``, ``datetime``, ``date``, ISO strings or epoch seconds;
naive ones and strings without an offset are read as UTC. Calls whose frames hold no time
column accept ``tz=`` too, so code can pass one zone everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import numpy as np
import pandas as pd

from . import validate
from .errors import DecodeError, InvalidArgument
from .frames import STR_DTYPE, epoch_to_utc, record_frame, to_frame
from .schema import (
    BOOK_LEVEL,
    CURRENCY_PAIR,
    MARKET_STATUS,
    ORDERBOOK,
    QUOTE,
    RISK_RATE,
    SECURITY,
    TRADE,
    normalize_format,
)
from .suggest import suggests_symbols
from .times import TimeLike, check_range, check_tz, iso_time

if TYPE_CHECKING:
    from .http import Http

__all__ = ["DataCalls", "MarketData", "book_frame", "parse_symbol"]

MAX_DEPTH = 50
HISTORY_PAGE = 50_000          # the most /alltrades/history returns per request
RISK_RATES_PAGE = 1000
TRADES_PAGE = 5_000             # trades per request when paging the current session
MAX_PAGES = 10_000             # a bound on any paging loop, far above real needs
SECTORS = ("FORTS", "FOND", "CURR")
INT32_MAX = 2**31 - 1          # the spec's int32 parameters (riskCategoryId)
MARKETS = ("FORTS", "FOND", "CURR", "SPBX")


# --- argument checks (all raise InvalidArgument before any request) -----------------------------

def parse_symbol(value: str, exchange: str) -> tuple[str, str]:
    """``"SBER"`` -> ``(exchange, "SBER")``; ``"MOEX:SBER"`` -> ``("MOEX", "SBER")``.

    Symbols are spelt in capitals whatever the user typed (``"sber"`` -> ``"SBER"``): the API
    reads them case-insensitively, and frames, attrs and index levels then agree."""
    ex, sym = validate.instrument(value, exchange)
    return ex, sym.upper()


def check_exchange(exchange: str) -> str:
    return validate.exchange(exchange)


def check_board(board: str | None) -> str | None:
    return validate.board(board)


def check_count(value: Any, name: str, *, low: int = 1, high: int | None = None) -> int:
    return validate.count(value, name, low=low, high=validate.INT64_MAX if high is None else high)


def check_market(market: Any, allowed: tuple[str, ...] = MARKETS, name: str = "market") -> str:
    if not isinstance(market, str) or market.strip().upper() not in allowed:
        raise InvalidArgument(f"{name} must be one of {', '.join(allowed)}, got {market!r}")
    return market.strip().upper()


def check_flag(value: Any, name: str) -> bool:
    return validate.flag(value, name)


def check_side(side: str | None) -> str | None:
    if side is None:
        return None
    if not isinstance(side, str) or side.lower() not in ("buy", "sell"):
        raise InvalidArgument(f"side must be 'buy' or 'sell', got {side!r}")
    return side.lower()


def flag(value: bool) -> str:
    return "true" if value else "false"


def alltrades_path(exchange: str, symbol: str) -> str:
    """The route of the current session's anonymous trades of one instrument."""
    return f"/md/v2/Securities/{path_part(exchange)}/{path_part(symbol)}/alltrades"


def all_trades_after(http: Any, exchange: str, symbol: str, *, after_id: int | None = None,
                     start: int | None = None, board: str | None = None, fmt: str = "Slim",
                     page: int = TRADES_PAGE, max_pages: int = MAX_PAGES,
                     ) -> tuple[list[Any], bool]:
    """Current-session trades with an id above ``after_id`` (else from ``start``, unix s),
    ascending, page after page (``take``/``offset``) until a page comes back short.
    Returns the wire trades and whether the last page was reached (False: ``max_pages``
    pages were fetched and more may follow)."""
    params = without_none({"fromId": None if after_id is None else after_id + 1,
                           "from": start if after_id is None else None,
                           "instrumentGroup": board, "format": fmt, "take": page})
    trades: list[Any] = []
    what = f"trades of {exchange}:{symbol}"
    for _ in range(max_pages):
        batch, _total = listing(http.get(alltrades_path(exchange, symbol),
                                         {**params, "offset": len(trades)}, what=what),
                                what=what)
        trades.extend(batch)
        if len(batch) < page:
            return trades, True
    return trades, False


def path_part(text: str) -> str:
    return quote(text, safe="")


def without_none(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


# --- frames -----------------------------------------------------------------------------------

def book_frame(book: Mapping[str, Any], *, symbol: str | None = None,
               exchange: str | None = None, depth: int | None = None,
               tz: str | None = None) -> pd.DataFrame:
    """A canonical ORDERBOOK record -> the long-form book.

    Columns: ``side`` ("bid"/"ask", string), ``level`` (int64, 0 = best), ``price`` (float64),
    ``volume`` (Int64), ``yield`` (float64, bonds in Slim only, else NA). Bids first (best, i.e.
    highest, first), then asks (best, i.e. lowest, first). ``attrs``: ``time`` (exchange
    timestamp as an ISO string in ``tz``, or None), ``existing``, ``symbol``, ``exchange``,
    ``depth``.
    """
    bids = list(book.get("bids") or [])
    asks = list(book.get("asks") or [])
    frame = record_frame(BOOK_LEVEL, bids + asks)
    frame.insert(0, "level", np.concatenate([np.arange(len(bids)), np.arange(len(asks))]).astype("int64"))
    sides = pd.array(["bid"] * len(bids) + ["ask"] * len(asks), dtype=STR_DTYPE)
    frame.insert(0, "side", cast(Any, sides))
    stamp = book.get("time")
    time = epoch_to_utc(np.array([stamp if stamp is not None else np.nan], dtype="float64"), "ms")[0]
    frame.attrs.update(time=iso_time(time, tz), existing=book.get("existing"), symbol=symbol,
                       exchange=exchange, depth=depth)
    return frame


def malformed(what: str, payload: Any) -> DecodeError:
    """The error of a body whose shape is not the documented one."""
    shape = type(payload).__name__
    return DecodeError(f"malformed body for {what}: unexpected {shape} {str(payload)[:80]!r}",
                    status=200)


def records(payload: Any, what: str = "the request") -> list[Mapping[str, Any]]:
    """A body holding records -> the list of them: an array of objects, or one object (the
    spec's examples show one object where the server may send an array). None is no record;
    anything else raises :class:`~invia_data.errors.DecodeError` (an APIError)."""
    if payload is None:
        return []
    if isinstance(payload, Mapping):
        return [payload]
    if isinstance(payload, list) and all(isinstance(item, Mapping) for item in payload):
        return payload
    raise malformed(what, payload)


def one_row(schema: Any, payload: Any, fmt: str, tz: str | None,
            what: str = "the request") -> pd.DataFrame:
    """The frame of a one-record answer (an object; an array of one object is accepted)."""
    objs = records(payload, what)
    if len(objs) > 1:
        raise malformed(what, payload)
    return to_frame(schema, objs, fmt, tz=tz)


def listing(payload: Any, key: str = "list", what: str = "the request"
            ) -> tuple[list[Mapping[str, Any]], int | None]:
    """``{"total": n, "list": [...]}``, the same with ``list`` one object, a bare list or one
    bare record -> (records, total or None). Other shapes raise DecodeError."""
    if isinstance(payload, Mapping) and (key in payload or "total" in payload):
        total = payload.get("total")
        count = int(total) if isinstance(total, (int, float)) and not isinstance(total, bool) else None
        return records(payload.get(key), what), count
    return records(payload, what), None


class DataCalls:
    """What the call mixins share: the HTTP seam, the default exchange and format."""

    http: Http
    exchange: str
    format: str | None

    def _wire_format(self, fmt: str | None, *, bulk: bool = False) -> str:
        """The wire format of a call: ``fmt``, else the client's, else Heavy (Slim for bulk
        calls: history, all trades)."""
        if fmt is not None:
            return normalize_format(fmt)
        return normalize_format(self.format or ("Slim" if bulk else "Heavy"))


class MarketData(DataCalls):
    """Market calls of :class:`~invia_data.client.Client`."""

    # --- helpers ---------------------------------------------------------------------------

    def _instrument(self, symbol: str, exchange: str | None) -> tuple[str, str]:
        return parse_symbol(symbol, exchange if exchange is not None else self.exchange)

    def _instrument_path(self, symbol: str, exchange: str | None) -> tuple[str, str, str]:
        ex, sym = self._instrument(symbol, exchange)
        return ex, sym, f"{path_part(ex)}/{path_part(sym)}"

    # --- calls -----------------------------------------------------------------------------

    def time(self, *, tz: str | None = None) -> pd.Timestamp:
        """The server's current time as a tz-aware Timestamp (UTC unless ``tz``).

        Anonymous callers get the time of 15 minutes ago (the API's delay for public data).
        """
        check_tz(tz)
        from .history import server_seconds

        stamp = pd.Timestamp(server_seconds(self.http), unit="s", tz="UTC")
        return stamp.tz_convert(tz) if tz else stamp

    def securities(self, query: str | None = None, *, exchange: str | None = None,
                   board: str | None = None, sector: str | None = None,
                   cfi_code: str | None = None, include_non_base_boards: bool = False,
                   limit: int = 25, offset: int = 0, format: str | None = None,
                   tz: str | None = None) -> pd.DataFrame:
        """Search instruments, most traded first (``GET /md/v2/Securities``).

        ``exchange``/``board``/``sector`` (``FORTS``, ``FOND``, ``CURR``) filter; None means all.
        Columns (one row per instrument): ``symbol``, ``short_name``, ``description``,
        ``exchange``, ``market``, ``board``, ``primary_board``, ``type``, ``lot_size``,
        ``face_value``, ``currency``, ``isin``, ``cfi_code``, ``min_step``, ``price_step``,
        ``price_max``, ``price_min``, ``rating``, ``trading_status``, ``cancellation`` (UTC),
        ``margin_buy``, ``margin_sell``, ... ``end_expiration`` (UTC) and the initial-margin
        columns; the full list is ``schema.SECURITY.columns``.

        The server returns 25 rows unless ``limit`` says otherwise; for every instrument of one
        exchange use :meth:`instruments`.
        """
        fmt = self._wire_format(format)
        check_tz(tz)
        query = validate.free_text(query, "query") if query is not None else None
        if sector is not None:
            sector = check_market(sector, SECTORS, "sector")
        params = without_none({
            "query": query,
            "exchange": check_exchange(exchange) if exchange is not None else None,
            "instrumentGroup": check_board(board),
            "sector": sector,
            "cficode": (validate.code(cfi_code, "cfi_code", "ESXXXX")
                        if cfi_code is not None else None),
            "includeNonBaseBoards": (flag(True) if check_flag(include_non_base_boards,
                                                              "include_non_base_boards") else None),
            "limit": check_count(limit, "limit"),
            "offset": check_count(offset, "offset", low=0),
            "format": fmt,
        })
        return to_frame(SECURITY, records(self.http.get("/md/v2/Securities", params)), fmt, tz=tz)

    def instruments(self, exchange: str | None = None, *, market: str | None = None,
                    include_old: bool = False, include_non_base_boards: bool = False,
                    limit: int | None = None, offset: int = 0, format: str | None = None,
                    tz: str | None = None) -> pd.DataFrame:
        """Every instrument of one exchange, most traded first (``GET /md/v2/Securities/{exchange}``,
        authorized): the columns of :meth:`securities`, one row per instrument.

        ``exchange``: default the client's. ``market`` (``FORTS``, ``FOND``, ``CURR``, ``SPBX``)
        filters; ``include_old`` adds delisted and expired instruments;
        ``include_non_base_boards`` lists an instrument on its other boards too. Unlike the
        search, the server returns all matching rows unless ``limit`` is given.
        """
        fmt = self._wire_format(format)
        check_tz(tz)
        ex = check_exchange(exchange) if exchange is not None else self.exchange
        params = without_none({
            "market": check_market(market) if market is not None else None,
            "includeOld": flag(True) if check_flag(include_old, "include_old") else None,
            "includeNonBaseBoards": (flag(True) if check_flag(include_non_base_boards,
                                                              "include_non_base_boards") else None),
            "limit": check_count(limit, "limit") if limit is not None else None,
            "offset": check_count(offset, "offset", low=0) or None,
            "format": fmt,
        })
        payload = self.http.get(f"/md/v2/Securities/{path_part(ex)}", params,
                                what=f"instruments of {ex}")
        return to_frame(SECURITY, records(payload), fmt, tz=tz)

    @suggests_symbols
    def security(self, symbol: str, *, exchange: str | None = None, board: str | None = None,
                 format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """One instrument as a one-row frame (columns of :meth:`securities`).

        ``GET /md/v2/Securities/{exchange}/{symbol}``; NotFound names the instrument.
        """
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, sym, where = self._instrument_path(symbol, exchange)
        params = without_none({"instrumentGroup": check_board(board), "format": fmt})
        payload = self.http.get(f"/md/v2/Securities/{where}", params,
                                what=f"instrument {ex}:{sym}")
        return one_row(SECURITY, payload, fmt, tz)

    @suggests_symbols
    def quotes(self, symbols: str | Iterable[str], *, exchange: str | None = None,
               format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Current quotes of many instruments in one request (``.../{symbols}/quotes``).

        ``symbols``: ``"SBER"``, ``"MOEX:SBER"``, ``"SBER,GAZP"`` or a list of those.
        Columns (one row per instrument, in the server's order): ``symbol``, ``exchange``,
        ``description``, ``last_price``, ``last_price_time`` (UTC), ``bid``, ``ask``, ``bid_vol``,
        ``ask_vol``, ``total_bid_vol``, ``total_ask_vol``, ``ob_time`` (UTC), ``open_price``,
        ``high_price``, ``low_price``, ``prev_close_price``, ``change``, ``change_percent``,
        ``volume``, ``open_interest``, ``accrued_interest``, ``yield``, ``lot_size``,
        ``lot_value``, ``face_value``, ``type``, ``currency``.
        """
        fmt = self._wire_format(format)
        check_tz(tz)
        if isinstance(symbols, str):
            items = [s for s in symbols.split(",") if s.strip()]
        elif isinstance(symbols, Iterable):
            items = list(symbols)
        else:
            raise InvalidArgument(f"symbols must be a string or a list of strings, got {symbols!r}")
        if not items:
            raise InvalidArgument("symbols is empty")
        pairs = list(dict.fromkeys(":".join(self._instrument(s, exchange)) for s in items))
        path = f"/md/v2/Securities/{quote(','.join(pairs), safe=':,')}/quotes"
        payload = self.http.get(path, {"format": fmt}, what=f"quotes of {', '.join(pairs)}")
        return to_frame(QUOTE, records(payload), fmt, tz=tz)

    def futures_quote(self, base: str, *, exchange: str | None = None,
                      format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """The quote of the nearest non-expired futures contract of ``base`` (e.g. ``"SI"``),
        as a one-row frame with the columns of :meth:`quotes` (MOEX only)."""
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, sym, where = self._instrument_path(base, exchange)
        payload = self.http.get(f"/md/v2/Securities/{where}/actualFuturesQuote",
                                {"format": fmt}, what=f"futures on {ex}:{sym}")
        return one_row(QUOTE, payload, fmt, tz)

    @suggests_symbols
    def orderbook(self, symbol: str, depth: int = 20, *, exchange: str | None = None,
                  board: str | None = None, format: str | None = None,
                  tz: str | None = None) -> pd.DataFrame:
        """The order book now, long form: one row per price level (see :func:`book_frame`).

        Columns ``side``, ``level``, ``price``, ``volume``, ``yield``; ``df.attrs["time"]`` is the
        exchange timestamp; ``attrs`` also hold ``symbol``, ``exchange``, ``depth``.
        ``depth``: levels per side, 1..50.
        """
        fmt = self._wire_format(format)
        check_tz(tz)
        depth = check_count(depth, "depth", high=MAX_DEPTH)
        ex, sym, where = self._instrument_path(symbol, exchange)
        params = without_none({"instrumentGroup": check_board(board), "depth": depth,
                               "format": fmt})
        payload = self.http.get(f"/md/v2/orderbooks/{where}", params,
                                what=f"order book of {ex}:{sym}")
        book = ORDERBOOK.decode(payload or {}, fmt)
        return book_frame(book, symbol=sym, exchange=ex, depth=depth, tz=tz)

    @suggests_symbols
    def all_trades(self, symbol: str, *, start: TimeLike | None = None,
                   end: TimeLike | None = None, limit: int | None = None,
                   side: str | None = None, descending: bool = False, history: bool = False,
                   exchange: str | None = None, board: str | None = None,
                   from_id: int | None = None, to_id: int | None = None,
                   qty_from: int | None = None, qty_to: int | None = None,
                   price_from: float | None = None, price_to: float | None = None,
                   format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Anonymous trades of all participants (time and sales), indexed by ``time`` (UTC).

        ``history=False``: the current session (``.../alltrades``), filtered by ``start``/``end``,
        trade ids, size, price and aggressor ``side``; ``limit`` caps the rows (newest first when
        ``descending``). ``history=True``: past sessions (``.../alltrades/history``), fetched in
        pages of up to 50 000 until the server's ``total`` (or ``limit``) is reached.
        Columns: ``id`` (Int64), ``symbol``, ``board``, ``side`` ("buy"/"sell"), ``price``,
        ``qty`` (lots, Int64), ``oi`` (open interest, Int64), ``existing`` (boolean).
        """
        fmt = self._wire_format(format, bulk=True)
        check_tz(tz)
        lo, hi = check_range(start, end)
        ex, sym, where = self._instrument_path(symbol, exchange)
        limit = check_count(limit, "limit") if limit is not None else None
        side = check_side(side)
        window = {"from": int(lo.value // 10**9) if lo is not None else None,
                  "to": int(hi.value // 10**9) if hi is not None else None,
                  "instrumentGroup": check_board(board), "format": fmt}
        what = f"trades of {ex}:{sym}"
        descending = check_flag(descending, "descending")
        if check_flag(history, "history"):
            if any(v is not None for v in (side, from_id, to_id, qty_from, qty_to, price_from,
                                           price_to)) or descending:
                raise InvalidArgument("past-session trades (history=True) filter by time only")
            trades = self._trade_pages(f"/md/v2/Securities/{where}/alltrades/history",
                                       without_none(window), limit, what)
        else:
            params = without_none({
                **window, "take": limit, "side": side,
                "descending": flag(True) if descending else None,
                "fromId": _optional_int(from_id, "from_id"), "toId": _optional_int(to_id, "to_id"),
                "qtyFrom": _optional_int(qty_from, "qty_from"),
                "qtyTo": _optional_int(qty_to, "qty_to"),
                "priceFrom": _optional_float(price_from, "price_from"),
                "priceTo": _optional_float(price_to, "price_to"),
            })
            trades, _ = listing(self.http.get(alltrades_path(ex, sym), params, what=what),
                                what=what)
        return to_frame(TRADE, trades, fmt, tz=tz, index="time")

    def _trade_pages(self, path: str, params: dict[str, Any], limit: int | None,
                     what: str) -> list[Any]:
        trades: list[Any] = []
        for _ in range(MAX_PAGES):
            want = HISTORY_PAGE if limit is None else min(HISTORY_PAGE, limit - len(trades))
            page, total = listing(self.http.get(
                path, {**params, "limit": want, "offset": len(trades)}, what=what), what=what)
            trades.extend(page)
            done = total is None or len(trades) >= total
            if not page or done or (limit is not None and len(trades) >= limit):
                break
        return trades[:limit] if limit is not None else trades

    def currency_pairs(self, *, tz: str | None = None) -> pd.DataFrame:
        """Currency pairs: ``first_code``, ``second_code``, ``symbol_tom`` (the TOM instrument)."""
        check_tz(tz)
        return to_frame(CURRENCY_PAIR, records(self.http.get("/md/v2/Securities/currencyPairs")),
                        "Simple", tz=tz)

    @suggests_symbols
    def available_boards(self, symbol: str, *, exchange: str | None = None,
                         tz: str | None = None) -> pd.DataFrame:
        """The boards the instrument trades on: one column ``board`` (string)."""
        check_tz(tz)
        ex, sym, where = self._instrument_path(symbol, exchange)
        what = f"boards of {ex}:{sym}"
        boards = self.http.get(f"/md/v2/Securities/{where}/availableBoards",
                               what=f"instrument {ex}:{sym}") or []
        if not isinstance(boards, list) or not all(isinstance(b, str) for b in boards):
            raise malformed(what, boards)
        return pd.DataFrame({"board": pd.array(boards, dtype=STR_DTYPE)})

    def market_status(self, market: str, *, exchange: str | None = None,
                      format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Whether a market is trading, one row: ``market`` (``FORTS``, ``FOND``, ``CURR``,
        ``SPBX``) and ``status`` (the server's word, e.g. ``"open"``, ``"closed"``).

        Deprecated by the API (``GET /md/status/{exchange}/{market}``, public): it may go away;
        :meth:`securities` carries each instrument's ``trading_status`` and
        ``inv.stream.instrument_state`` follows it live.
        """
        fmt = self._wire_format(format)
        check_tz(tz)
        code = check_market(market)
        ex = check_exchange(exchange) if exchange is not None else self.exchange
        payload = self.http.get(f"/md/status/{path_part(ex)}/{code}", {"format": fmt},
                                what=f"market {ex}:{code}")
        return one_row(MARKET_STATUS, payload, fmt, tz)

    def risk_rates(self, risk_category_id: int, *, exchange: str | None = None,
                   ticker: str | None = None, search: str | None = None,
                   limit: int | None = None, offset: int = 0,
                   tz: str | None = None) -> pd.DataFrame:
        """Risk rates of a risk category (``GET /md/v2/risk/rates``); all pages unless ``limit``.

        Columns: ``id``, ``instrument``, ``exchange``, ``risk_category_id``,
        ``security_risk_category_id``, ``asset_type``, ``underlying_asset``, ``set_name``,
        ``isin``, ``currency_code``, ``rate_up``, ``rate_down``, ``rate_symmetric``,
        ``is_short_sell_possible``, ``is_marginal``, ``set_rate``, ``sgn_r``.
        ``attrs["total"]``: the server's count of matching records (None when the answer has no
        count: a bare list, or one bare record as in the spec's example, which is one row).
        """
        check_tz(tz)
        category = check_count(risk_category_id, "risk_category_id", low=0, high=INT32_MAX)
        limit = check_count(limit, "limit") if limit is not None else None
        offset = check_count(offset, "offset", low=0)
        base = without_none({
            "riskCategoryId": category,
            "exchange": check_exchange(exchange) if exchange is not None else None,
            "ticker": validate.symbol(ticker, "ticker") if ticker is not None else None,
            "search": validate.free_text(search, "search") if search is not None else None,
        })
        rows: list[Any] = []
        total: int | None = None
        for _ in range(MAX_PAGES):
            want = RISK_RATES_PAGE if limit is None else min(RISK_RATES_PAGE, limit - len(rows))
            page, total = listing(self.http.get(
                "/md/v2/risk/rates", {**base, "limit": want, "offset": offset + len(rows)}),
                what="risk rates")
            rows.extend(page)
            if (not page or total is None or offset + len(rows) >= total
                    or (limit is not None and len(rows) >= limit)):
                break
        frame = to_frame(RISK_RATE, rows, "Simple", tz=tz)
        frame.attrs["total"] = total
        return frame


def _optional_int(value: Any, name: str) -> int | None:
    return None if value is None else check_count(value, name, low=0)


def _optional_float(value: Any, name: str) -> float | None:
    return None if value is None else validate.number(value, name)

