"""Portfolio calls: summary, positions, risk, orders, stop orders, own trades.

:class:`PortfolioData` is mixed into :class:`~invia_data.client.Client`. The default portfolio
is the first stock-market (``D…``) portfolio of the token; ``forts_risk`` defaults to the
derivatives (``75…``) one. A ``portfolio=`` that the token does not list raises
:class:`~invia_data.errors.InvalidArgument` before any request (the server would answer 403).
Portfolio ids come from the token's ``portfolios`` claim: ``D…`` stock market, ``G…`` FX,
``75…`` derivatives (FORTS), ``E…`` united money position.

Every call takes ``tz=`` (times are UTC otherwise); calls whose frames hold no time column
accept it too, so code can pass one zone everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from . import validate
from .errors import InvalidArgument
from .frames import STR_DTYPE, to_frame
from .market import (
    DataCalls,
    check_board,
    check_count,
    check_exchange,
    check_flag,
    check_side,
    flag,
    listing,
    one_row,
    parse_symbol,
    path_part,
    records,
    without_none,
)
from .schema import (
    FORTS_RISK,
    MONEY,
    ORDER,
    OWN_TRADE,
    POSITION,
    RISK,
    STOP_ORDER,
    SUMMARY,
    Schema,
)
from .times import TimeLike, check_range, check_tz, to_utc

if TYPE_CHECKING:
    from .auth import TokenManager

__all__ = ["PortfolioData", "market_of", "portfolio_table"]

STATS_PAGE = 1000              # the most /Stats/.../history/trades returns per request
MAX_PAGES = 10_000
MARKETS = (("75", "derivatives"), ("D", "stock"), ("G", "fx"), ("E", "united"))


def market_of(portfolio: str) -> str | None:
    """The market of a portfolio id by its prefix (None when unknown)."""
    for prefix, market in MARKETS:
        if portfolio.startswith(prefix):
            return market
    return None


def agreement_of(portfolio: str, agreements: list[str]) -> str | None:
    """The agreement a portfolio belongs to: ``D39004``/``G39004`` -> ``39004`` when that
    agreement is in the token; any portfolio when the token has exactly one agreement."""
    for prefix in ("D", "G", "E"):
        if portfolio.startswith(prefix) and portfolio[len(prefix):] in agreements:
            return portfolio[len(prefix):]
    return agreements[0] if len(agreements) == 1 else None


def portfolio_table(portfolios: list[str], agreements: list[str],
                    exchange: str = "MOEX") -> pd.DataFrame:
    """Columns: ``portfolio``, ``market`` (stock/fx/derivatives/united), ``exchange``,
    ``agreement`` (NA when not derivable)."""
    return pd.DataFrame({
        "portfolio": pd.array(portfolios, dtype=STR_DTYPE),
        "market": pd.array([market_of(p) for p in portfolios], dtype=STR_DTYPE),
        "exchange": pd.array([exchange] * len(portfolios), dtype=STR_DTYPE),
        "agreement": pd.array([agreement_of(p, agreements) for p in portfolios], dtype=STR_DTYPE),
    })


def _before(date: Any, end: pd.Timestamp) -> bool:
    """Whether a trade's ISO ``date`` is before ``end`` (a trade without one is kept)."""
    if not isinstance(date, str) or not date:
        return True
    try:
        return to_utc(date, name="date") < end
    except InvalidArgument:
        return True


class PortfolioData(DataCalls):
    """Portfolio calls of :class:`~invia_data.client.Client` (needs ``http``, ``tokens``,
    ``exchange``, ``format``)."""

    tokens: TokenManager | None
    _default_portfolio: str | None

    # --- the portfolios of the token ---------------------------------------------------------

    def _token_portfolios(self) -> list[str]:
        return self.tokens.portfolios if self.tokens is not None else []

    @property
    def portfolio(self) -> str | None:
        """The default portfolio: the one given to ``connect``, else the token's first ``D…``."""
        if self._default_portfolio:
            return self._default_portfolio
        return next((p for p in self._token_portfolios() if p.startswith("D")), None)

    def portfolios(self) -> pd.DataFrame:
        """The portfolios of the token (no request): ``portfolio``, ``market``
        (stock/fx/derivatives/united by prefix D/G/75/E), ``exchange``, ``agreement``."""
        agreements = self.tokens.agreements if self.tokens is not None else []
        return portfolio_table(self._token_portfolios(), agreements, self.exchange)

    def _portfolio(self, portfolio: str | None, *, prefix: str = "D") -> str:
        """The portfolio a call is about (the same rule as the stream's, see
        :func:`invia_data.validate.resolve_portfolio`)."""
        if self.tokens is None:
            if portfolio is not None:
                validate.portfolio_id(portfolio)
            raise InvalidArgument("portfolio data needs credentials: pass refresh_token= "
                                  "to connect() or set INVIA_REFRESH_TOKEN")
        return validate.resolve_portfolio(portfolio, self._token_portfolios(),
                                          self.portfolio, prefix)

    def _portfolio_of_kind(self, kind: str, portfolio: str | None = None) -> str:
        """The portfolio of a data kind (``"forts_risk"`` defaults to the derivatives one,
        every other kind to :attr:`portfolio`); the stream resolves its defaults here too."""
        return self._portfolio(portfolio, prefix="75" if kind == "forts_risk" else "D")

    def _base(self, portfolio: str | None, exchange: str | None, *,
              prefix: str = "D") -> tuple[str, str]:
        ex = check_exchange(exchange) if exchange is not None else self.exchange
        return ex, self._portfolio(portfolio, prefix=prefix)

    def _get(self, path: str, params: dict[str, Any], what: str | None = None) -> Any:
        return self.http.get(path, without_none(params), what=what)

    # --- calls -----------------------------------------------------------------------------

    def summary(self, portfolio: str | None = None, *, exchange: str | None = None,
                format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Portfolio summary, one row: ``buying_power_at_morning``, ``buying_power``, ``profit``,
        ``profit_rate``, ``portfolio_evaluation``, ``portfolio_liquidation_value``,
        ``initial_margin``, ``corrected_margin``, ``risk_before_force_position_closing``,
        ``commission``, ``buying_power_by_currency`` (list of {currency, buying_power}).
        ``attrs``: ``portfolio``, ``exchange``."""
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, p = self._base(portfolio, exchange)
        payload = self._get(f"/md/v2/Clients/{ex}/{path_part(p)}/summary", {"format": fmt})
        frame = one_row(SUMMARY, payload, fmt, tz)
        frame.attrs.update(portfolio=p, exchange=ex)
        return frame

    def positions(self, portfolio: str | None = None, *, without_currency: bool = False,
                  exchange: str | None = None, format: str | None = None,
                  tz: str | None = None) -> pd.DataFrame:
        """Positions, one row each: ``portfolio``, ``symbol``, ``exchange``, ``broker_symbol``,
        ``short_name``, ``is_currency``, ``lot_size``, ``qty_units``, ``open_units``,
        ``avg_price``, ``volume``, ``current_volume``, ``daily_unrealised_pl``,
        ``unrealised_pl``, ``qty_t0``, ``qty_t1``, ``qty_t2``, ``qty_t_future``, the ``*_batch``
        quantities (NA in Slim) and ``existing``. ``without_currency`` drops money positions."""
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, p = self._base(portfolio, exchange)
        payload = self._get(f"/md/v2/Clients/{ex}/{path_part(p)}/positions",
                            {"format": fmt,
                             "withoutCurrency": flag(check_flag(without_currency,
                                                                "without_currency"))})
        return to_frame(POSITION, records(payload), fmt, tz=tz)

    def position(self, symbol: str, portfolio: str | None = None, *,
                 exchange: str | None = None, format: str | None = None,
                 tz: str | None = None) -> pd.DataFrame:
        """One position as a one-row frame (columns of :meth:`positions`); NotFound if none."""
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, p = self._base(portfolio, exchange)
        ex, sym = parse_symbol(symbol, ex)
        payload = self._get(f"/md/v2/Clients/{ex}/{path_part(p)}/positions/{path_part(sym)}",
                            {"format": fmt}, what=f"position in {ex}:{sym} of {p}")
        return one_row(POSITION, payload, fmt, tz)

    def positions_by_login(self, login: str | None = None, *, without_currency: bool = False,
                           format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Positions across all portfolios of a login (default: the token's ``sub``); the
        columns of :meth:`positions`."""
        fmt = self._wire_format(format)
        check_tz(tz)
        if login is None:
            login = self.tokens.login if self.tokens is not None else None
            if not login:
                raise InvalidArgument("no login: the token has no 'sub' claim; pass login=")
        login = validate.login(login)
        payload = self._get(f"/md/v2/Clients/{path_part(login)}/positions",
                            {"format": fmt,
                             "withoutCurrency": flag(check_flag(without_currency,
                                                                "without_currency"))})
        return to_frame(POSITION, records(payload), fmt, tz=tz)

    def risk(self, portfolio: str | None = None, *, exchange: str | None = None,
             format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Portfolio risk, one row: ``portfolio``, ``exchange``, ``portfolio_evaluation``,
        ``portfolio_liquidation_value``, ``initial_margin``, ``minimal_margin``,
        ``corrected_margin``, ``risk_coverage_ratio_one``/``_two``, ``risk_category_id``,
        ``client_type``, ``has_forbidden_positions``, ``has_negative_quantity``,
        ``risk_status``, ``calculation_time`` (UTC)."""
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, p = self._base(portfolio, exchange)
        payload = self._get(f"/md/v2/Clients/{ex}/{path_part(p)}/risk", {"format": fmt})
        return one_row(RISK, payload, fmt, tz)

    def forts_risk(self, portfolio: str | None = None, *, format: str | None = None,
                   tz: str | None = None) -> pd.DataFrame:
        """Derivatives-market risk of a ``75…`` portfolio (default: the token's), one row:
        ``portfolio``, ``money_free``, ``money_blocked``, ``fee``, ``money_old``,
        ``money_amount``, ``money_pledge_amount``, ``vm_inter_cl``, ``vm_current_positions``,
        ``var_margin``, ``indicative_var_margin``, ``net_option_value``, ``pos_risk``,
        ``is_limits_set``. MOEX only."""
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, p = "MOEX", self._portfolio(portfolio, prefix="75")
        payload = self._get(f"/md/v2/Clients/{ex}/{path_part(p)}/fortsrisk", {"format": fmt})
        return one_row(FORTS_RISK, payload, fmt, tz)

    def money(self, portfolio: str | None = None, *, exchange: str | None = None,
              format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Legacy money view (deprecated route of API v1), one row: ``portfolio``, ``cash``,
        ``used``, ``open``, ``free``, ``profit``, ``profit_rate``, ``commission``, ``changes``.
        Prefer :meth:`summary`, :meth:`risk` and :meth:`positions`."""
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, p = self._base(portfolio, exchange)
        payload = self._get(f"/md/v2/Clients/legacy/{ex}/{path_part(p)}/money", {"format": fmt})
        return one_row(MONEY, payload, fmt, tz)

    def orders(self, portfolio: str | None = None, *, exchange: str | None = None,
               format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Orders of the session, one row each: ``id``, ``portfolio``, ``symbol``, ``exchange``,
        ``board``, ``broker_symbol``, ``type``, ``side``, ``status``, ``price``, ``qty_units``,
        ``qty_batch``, ``filled_qty_units``, ``filled_qty_batch``, ``volume``,
        ``time_in_force``, ``trans_time``/``update_time``/``end_time`` (UTC), ``comment``,
        ``iceberg`` (dict or None), ``existing``."""
        return self._orders("orders", ORDER, portfolio, exchange, format, tz)

    def order(self, order_id: int | str, portfolio: str | None = None, *,
              exchange: str | None = None, format: str | None = None,
              tz: str | None = None) -> pd.DataFrame:
        """One order as a one-row frame (columns of :meth:`orders`); NotFound if unknown."""
        return self._one_order("orders", ORDER, "order", order_id, portfolio, exchange,
                               format, tz)

    def stop_orders(self, portfolio: str | None = None, *, exchange: str | None = None,
                    format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Stop orders, one row each: the order columns plus ``exchange_order_id``,
        ``condition``, ``stop_price``, ``avg_price``, ``error``, ``protecting_seconds``."""
        return self._orders("stoporders", STOP_ORDER, portfolio, exchange, format, tz)

    def stop_order(self, order_id: int | str, portfolio: str | None = None, *,
                   exchange: str | None = None, format: str | None = None,
                   tz: str | None = None) -> pd.DataFrame:
        """One stop order as a one-row frame (columns of :meth:`stop_orders`)."""
        return self._one_order("stoporders", STOP_ORDER, "stop order", order_id, portfolio,
                               exchange, format, tz)

    def _orders(self, route: str, schema: Schema, portfolio: str | None, exchange: str | None,
                format: str | None, tz: str | None) -> pd.DataFrame:
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, p = self._base(portfolio, exchange)
        payload = self._get(f"/md/v2/Clients/{ex}/{path_part(p)}/{route}", {"format": fmt})
        return to_frame(schema, records(payload), fmt, tz=tz)

    def _one_order(self, route: str, schema: Schema, what: str, order_id: int | str,
                   portfolio: str | None, exchange: str | None, format: str | None,
                   tz: str | None) -> pd.DataFrame:
        fmt = self._wire_format(format)
        check_tz(tz)
        oid = validate.order_id(order_id)
        ex, p = self._base(portfolio, exchange)
        payload = self._get(f"/md/v2/Clients/{ex}/{path_part(p)}/{route}/{oid}",
                            {"format": fmt}, what=f"{what} {oid} of {p}")
        return one_row(schema, payload, fmt, tz)

    def own_trades(self, portfolio: str | None = None, *, symbol: str | None = None,
                   exchange: str | None = None, board: str | None = None,
                   with_repo: bool = False, format: str | None = None,
                   tz: str | None = None) -> pd.DataFrame:
        """Own trades of the current session (of one instrument when ``symbol``), one row each:
        ``id``, ``order_no``, ``symbol``, ``short_name``, ``exchange``, ``board``,
        ``broker_symbol``, ``side``, ``price``, ``qty_units``, ``qty_batch``, ``qty``,
        ``volume``, ``accrued_interest``, ``commission``, ``currency``, ``date`` (UTC),
        ``settle_date`` (UTC), ``comment``, ``repo_specific_fields``, ``existing``."""
        fmt = self._wire_format(format)
        check_tz(tz)
        ex, p = self._base(portfolio, exchange)
        repo, board = check_flag(with_repo, "with_repo"), check_board(board)
        if symbol is None:
            path = f"/md/v2/Clients/{ex}/{path_part(p)}/trades"
            params = {"format": fmt, "withRepo": flag(True) if repo else None}
        else:
            ex, sym = parse_symbol(symbol, ex)
            path = f"/md/v2/Clients/{ex}/{path_part(p)}/{path_part(sym)}/trades"
            params = {"format": fmt, "instrumentGroup": board}
        return to_frame(OWN_TRADE, records(self._get(path, params)), fmt, tz=tz)

    def own_trades_history(self, portfolio: str | None = None, *, symbol: str | None = None,
                           start: TimeLike | None = None, end: TimeLike | None = None,
                           limit: int | None = 1000, exchange: str | None = None,
                           board: str | None = None, side: str | None = None,
                           with_repo: bool = False, descending: bool = False,
                           format: str | None = None, tz: str | None = None) -> pd.DataFrame:
        """Own trades of past sessions (``/md/v2/Stats/.../history/trades``), columns of
        :meth:`own_trades`. ``start`` (inclusive; the server's ``dateFrom``) and ``end``
        (exclusive; applied to each trade's ``date`` here, the route has no upper bound):
        dates or times, naive = UTC. ``limit``: rows wanted in total (None: all); fetched in
        pages of up to 1000, each continuing from the last trade id of the previous page."""
        fmt = self._wire_format(format)
        check_tz(tz)
        lo, hi = check_range(start, end)
        ex, p = self._base(portfolio, exchange)
        limit = check_count(limit, "limit") if limit is not None else None
        params: dict[str, Any] = without_none({
            "format": fmt, "side": check_side(side), "instrumentGroup": check_board(board),
            "withRepo": flag(True) if check_flag(with_repo, "with_repo") else None,
            "dateFrom": lo.strftime("%Y-%m-%dT%H:%M:%SZ") if lo is not None else None,
        })
        path = f"/md/v2/Stats/{ex}/{path_part(p)}/history/trades"
        if symbol is not None:
            ex, sym = parse_symbol(symbol, ex)
            path = f"/md/v2/Stats/{ex}/{path_part(p)}/history/trades/{path_part(sym)}"
        if check_flag(descending, "descending") and hi is not None:
            # the newest trades before `end`: read forwards up to `end`, then reverse
            trades = self._stats_pages(path, params, None, hi)[::-1][:limit]
        else:
            if descending:
                params["descending"] = flag(True)
            trades = self._stats_pages(path, params, limit, hi)
        return to_frame(OWN_TRADE, trades, fmt, tz=tz)

    def _stats_pages(self, path: str, params: dict[str, Any], limit: int | None,
                     end: pd.Timestamp | None) -> list[Any]:
        fmt = params["format"]
        id_key = OWN_TRADE.required_key("id", fmt)
        date_key = OWN_TRADE.required_key("date", fmt)
        ascending = "descending" not in params
        trades: list[Any] = []
        seen: set[str] = set()
        after: str | None = None
        for _ in range(MAX_PAGES):
            # `from` is inclusive on the server: a continued page repeats the last trade, so
            # it asks for one more and drops what was seen
            repeat = 0 if after is None else 1
            want = STATS_PAGE if limit is None else min(STATS_PAGE, limit - len(trades) + repeat)
            page, _ = listing(self.http.get(path, {**params, "limit": want, "from": after}))
            fresh = [t for t in page if str(t.get(id_key)) not in seen]
            seen.update(str(t.get(id_key)) for t in fresh)
            kept = fresh if end is None else [t for t in fresh if _before(t.get(date_key), end)]
            trades.extend(kept)
            past_end = ascending and len(kept) < len(fresh)  # later pages are later still
            if (not fresh or len(page) < want or past_end
                    or (limit is not None and len(trades) >= limit)):
                break
            after = str(page[-1].get(id_key))
        return trades[:limit] if limit is not None else trades
