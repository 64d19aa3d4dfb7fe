"""Every example body of the official spec's data routes, served to its client call: the frame
has the README's documented columns and holds every non-null value of the example."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
from fakes import demo_claims, make_jwt, scripted_session

import invia_data

from .support import (
    assert_documented_columns,
    assert_no_value_lost,
    http_operations,
)

Call = Callable[[Any, dict[str, Any]], Any]

# operationId -> (the README's call, how to make it). `fmt` is {"format": ...} or {}.
CALLS: dict[str, tuple[str, Call]] = {
    "MdV2ClientsExchangePortfolioOrdersGet": ("inv.orders", lambda inv, f: inv.orders(**f)),
    "MdV2ClientsExchangePortfolioOrdersOrderIdGet":
        ("inv.order", lambda inv, f: inv.order(41423837024, **f)),
    "MdV2ClientsExchangePortfolioStopOrdersGet":
        ("inv.stop_orders", lambda inv, f: inv.stop_orders(**f)),
    "MdV2ClientsExchangePortfolioStopOrdersOrderIdGet":
        ("inv.stop_order", lambda inv, f: inv.stop_order(347499, **f)),
    "MdV2ClientsExchangePortfolioSummaryGet": ("inv.summary", lambda inv, f: inv.summary(**f)),
    "MdV2ClientsExchangePortfolioPositionsGet":
        ("inv.positions", lambda inv, f: inv.positions(**f)),
    "MdV2ClientsExchangePortfolioPositionsSymbolGet":
        ("inv.position", lambda inv, f: inv.position("APTK", **f)),
    "MdV2ClientsExchangePortfolioTradesGet":
        ("inv.own_trades", lambda inv, f: inv.own_trades(**f)),
    "MdV2ClientsExchangePortfolioSymbolTradesGet":
        ("inv.own_trades", lambda inv, f: inv.own_trades(symbol="APTK", **f)),
    "MdV2ClientsExchangePortfolioFortsriskGet":
        ("inv.forts_risk", lambda inv, f: inv.forts_risk(**f)),
    "MdV2ClientsExchangePortfolioRiskGet": ("inv.risk", lambda inv, f: inv.risk(**f)),
    "MdV2ClientsLoginPositionsGet":
        ("inv.positions_by_login", lambda inv, f: inv.positions_by_login(**f)),
    "MdV2StatsExchangePortfolioHistoryTradesGet":
        ("inv.own_trades_history", lambda inv, f: inv.own_trades_history(**f)),
    "MdV2StatsExchangePortfolioHistoryTradesSymbolGet":
        ("inv.own_trades_history",
         lambda inv, f: inv.own_trades_history(symbol="APTK", **f)),
    "MdV2SecuritiesGet": ("inv.securities", lambda inv, f: inv.securities("CNY", **f)),
    "MdV2SecuritiesExchangeGet": ("inv.instruments", lambda inv, f: inv.instruments("MOEX", **f)),
    "MdV2SecuritiesExchangeSymbolGet":
        ("inv.security", lambda inv, f: inv.security("CNY-6.25", **f)),
    "MdV2SecuritiesExchangeSymbolAvailableBoardsGet":
        ("inv.available_boards", lambda inv, f: inv.available_boards("SBER", **f)),
    "MdV2SecuritiesExchangeSymbolAlltradesGet":
        ("inv.all_trades", lambda inv, f: inv.all_trades("SBER", **f)),
    "MdV2SecuritiesExchangeSymbolAlltradesHistoryGet":
        ("inv.all_trades", lambda inv, f: inv.all_trades("SBER", history=True, **f)),
    "MdV2SecuritiesExchangeSymbolActualFuturesQuoteGet":
        ("inv.futures_quote", lambda inv, f: inv.futures_quote("SBRF", **f)),
    "MdV2SecuritiesSymbolsQuotesGet": ("inv.quotes", lambda inv, f: inv.quotes("SBER", **f)),
    "MdV2SecuritiesCurrencyPairsGet":
        ("inv.currency_pairs", lambda inv, f: inv.currency_pairs(**f)),
    "MdV2OrderbooksExchangeSymbolGet":
        ("inv.orderbook", lambda inv, f: inv.orderbook("SBER", depth=1, **f)),
    "MdV2TimeGet": ("inv.time", lambda inv, f: inv.time(**f)),
    "MdV2RiskRatesGet": ("inv.risk_rates", lambda inv, f: inv.risk_rates(5, **f)),
    "MdV2HistoryGet": ("inv.history", lambda inv, f: inv.history(
        "SBER", tf="10min", start=1701068400, end=1701069000, cache=False, progress=False, **f)),
    "DevTradingSessionStatus":
        ("inv.market_status", lambda inv, f: inv.market_status("FOND", **f)),
}

# Routes the client does not call (the simulator serves them; tests/spec/test_spec_sim.py).
NOT_CALLED = {
    "TradeStats": "deprecated /md/stats own-trades history; the client uses /md/v2/Stats",
    "TradeStatsBySymbol": "deprecated /md/stats own-trades history; the client uses /md/v2/Stats",
}

# Wire keys of an example that are not frame columns, by route and format: deprecated fields
# that repeat another one (REFERENCE.md: Simple keeps them for backward compatibility) and the
# paging envelope the call consumes.
_NO_TIME = "0: no order-book time, read as NaT"
_ORDER_SIMPLE = {"qty": "repeats qtyBatch", "filled": "repeats filledQtyBatch"}
_TRADE_TIME = {"time": "ISO text of `timestamp` (the example's two disagree; `timestamp` is read)"}
_ALL_TRADES = {"Simple": {**_TRADE_TIME, "orderno": "always 0 for anonymous trades"},
               "Heavy": _TRADE_TIME}
DROPPED: dict[str, dict[str | None, dict[str, str]]] = {
    "MdV2ClientsExchangePortfolioOrdersGet": {"Simple": _ORDER_SIMPLE},
    "MdV2ClientsExchangePortfolioOrdersOrderIdGet": {"Simple": _ORDER_SIMPLE},
    "MdV2ClientsExchangePortfolioStopOrdersGet": {"Simple": _ORDER_SIMPLE},
    "MdV2ClientsExchangePortfolioStopOrdersOrderIdGet": {"Simple": _ORDER_SIMPLE},
    **{op: {"Simple": {"qtyBatch": "sum of the qtyT*Batch fields", "qty": "repeats qtyBatch",
                       "open": "repeats openQtyBatch"}}
       for op in ("MdV2ClientsExchangePortfolioPositionsGet", "MdV2ClientsLoginPositionsGet",
                  "MdV2ClientsExchangePortfolioPositionsSymbolGet")},
    "MdV2ClientsExchangePortfolioFortsriskGet": {"Simple": {"balanceMoney": "deprecated"}},
    "MdV2SecuritiesExchangeSymbolAlltradesGet": _ALL_TRADES,
    "MdV2SecuritiesExchangeSymbolAlltradesHistoryGet": {
        fmt: {**_ALL_TRADES.get(fmt, {}), "total": "the paging count"}
        for fmt in ("Simple", "Slim", "Heavy")},
    "MdV2SecuritiesExchangeSymbolActualFuturesQuoteGet": {
        "Simple": {"accrued_interest": "deprecated spelling of accruedInt",
                   "ob_ms_timestamp": _NO_TIME},
        "Slim": {"tso": _NO_TIME}, "Heavy": {"obMsTimestamp": _NO_TIME}},
    "MdV2SecuritiesSymbolsQuotesGet":
        {"Simple": {"accrued_interest": "deprecated spelling of accruedInt"}},
    "MdV2OrderbooksExchangeSymbolGet":
        {"Simple": {"snapshot": "repeats existing", "timestamp": "ms_timestamp in seconds"}},
    "MdV2HistoryGet": {fmt: {"next": "paging cursor", "prev": "paging cursor"}
                       for fmt in ("Simple", "Slim", "Heavy")},
}

CASES = [
    pytest.param(op, ex, id=f"{op['operationId']}-{ex['name']}")
    for op in http_operations() if op["operationId"] in CALLS
    for ex in op["examples"]
]


def route_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$")


def serving(op: dict[str, Any], body: Any) -> tuple[Any, Any]:
    """A client whose transport answers the route's first request with ``body`` and later
    ones (the next pages) with an empty page; any other route is a test failure."""
    pattern = route_pattern(op["path"])
    served = []

    def respond(request: Any) -> Any:
        path = urlsplit(request.url).path
        assert pattern.match(path), f"{path} is not {op['path']}"
        served.append(path)
        if len(served) == 1:
            return 200, body, {}
        if isinstance(body, dict) and "list" in body:
            return 200, {**body, "list": []}, {}
        if isinstance(body, dict) and "next" in body:  # candles: an empty page, no cursor
            return 200, {k: [] if isinstance(v, list) else None for k, v in body.items()}, {}
        return 200, [], {}

    session, adapter = scripted_session(respond)
    inv = invia_data.connect(token=make_jwt(**demo_claims(time.time())),
                             base_url="http://api.test", session=session)
    return inv, adapter


def test_every_data_route_of_the_spec_is_called_or_listed():
    ids = {op["operationId"] for op in http_operations()}
    money = {"ExchangePortfolioMoney"}  # no example in the spec
    assert ids == set(CALLS) | set(NOT_CALLED) | money


@pytest.mark.parametrize(("op", "ex"), CASES)
def test_spec_example_through_its_call(op, ex):
    call_name, call = CALLS[op["operationId"]]
    inv, adapter = serving(op, ex["value"])
    fmt = {"format": ex["format"]} if ex["format"] else {}
    with inv:
        result = call(inv, fmt)
    assert adapter.requests, "the call made no request"
    if isinstance(result, pd.Timestamp):
        assert result == pd.Timestamp(ex["value"], unit="s", tz="UTC")
        return
    assert_documented_columns(result, call_name)
    dropped = DROPPED.get(op["operationId"], {}).get(ex["format"], {})
    assert_no_value_lost(ex["value"], result, dropped=dropped)
