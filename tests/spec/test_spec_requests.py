"""The client's requests against the official spec: every HTTP call, with its options set, asks
for its route with query parameters the spec documents for it (required ones present, values of
the documented type and enum); every subscription frame the client sends carries only fields of
its opcode's request schema, with valid values."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest

from invia_data.sim.websocket import Connection
from invia_data.stream import protocol

from .support import example, http_operations, spec_schemas, ws_operations
from .test_spec_http_examples import route_pattern, serving

# operationId -> a call of the client with as many of its options set as the route takes.
FULL_CALLS: dict[str, Any] = {
    "MdV2SecuritiesGet": lambda inv: inv.securities(
        "SBER", exchange="MOEX", board="TQBR", sector="FOND", cfi_code="ESXXXX",
        include_non_base_boards=True, limit=5, offset=1, format="Slim"),
    "MdV2SecuritiesExchangeGet": lambda inv: inv.instruments(
        "MOEX", market="FOND", include_old=True, include_non_base_boards=True, limit=5, offset=2,
        format="Heavy"),
    "MdV2SecuritiesExchangeSymbolGet": lambda inv: inv.security("SBER", board="TQBR",
                                                                format="Simple"),
    "MdV2SecuritiesSymbolsQuotesGet": lambda inv: inv.quotes(["SBER", "MOEX:GAZP"],
                                                             format="Slim"),
    "MdV2SecuritiesExchangeSymbolActualFuturesQuoteGet":
        lambda inv: inv.futures_quote("SI", format="Heavy"),
    "MdV2OrderbooksExchangeSymbolGet": lambda inv: inv.orderbook("SBER", depth=10, board="TQBR",
                                                                 format="Slim"),
    "MdV2SecuritiesExchangeSymbolAlltradesGet": lambda inv: inv.all_trades(
        "SBER", start="2024-01-01 10:00", end="2024-01-01 11:00", limit=10, side="buy",
        descending=True,
        board="TQBR", from_id=1, to_id=10**9, qty_from=1, qty_to=100, price_from=1.5,
        price_to=500.25, format="Heavy"),
    "MdV2SecuritiesExchangeSymbolAlltradesHistoryGet": lambda inv: inv.all_trades(
        "SBER", start="2024-01-01", end="2024-01-02", history=True, limit=10, board="TQBR",
        format="Simple"),
    "MdV2SecuritiesExchangeSymbolAvailableBoardsGet": lambda inv: inv.available_boards("SBER"),
    "MdV2SecuritiesCurrencyPairsGet": lambda inv: inv.currency_pairs(),
    "MdV2TimeGet": lambda inv: inv.time(),
    "MdV2RiskRatesGet": lambda inv: inv.risk_rates(1, exchange="MOEX", ticker="SBER",
                                                   search="SB", limit=5, offset=1),
    "MdV2HistoryGet": lambda inv: inv.history("SBER", tf="1h", start="2023-11-27",
                                              end="2023-11-28", board="TQBR", format="Slim",
                                              cache=False, progress=False),
    "DevTradingSessionStatus": lambda inv: inv.market_status("FOND", format="Slim"),
    "MdV2ClientsExchangePortfolioSummaryGet": lambda inv: inv.summary(format="Slim"),
    "MdV2ClientsExchangePortfolioPositionsGet":
        lambda inv: inv.positions(without_currency=True, format="Heavy"),
    "MdV2ClientsExchangePortfolioPositionsSymbolGet": lambda inv: inv.position("SBER"),
    "MdV2ClientsLoginPositionsGet": lambda inv: inv.positions_by_login(without_currency=True),
    "MdV2ClientsExchangePortfolioRiskGet": lambda inv: inv.risk(format="Simple"),
    "MdV2ClientsExchangePortfolioFortsriskGet": lambda inv: inv.forts_risk(format="Slim"),
    "ExchangePortfolioMoney": lambda inv: inv.money(format="Heavy"),
    "MdV2ClientsExchangePortfolioOrdersGet": lambda inv: inv.orders(format="Slim"),
    "MdV2ClientsExchangePortfolioOrdersOrderIdGet": lambda inv: inv.order(1234, format="Heavy"),
    "MdV2ClientsExchangePortfolioStopOrdersGet": lambda inv: inv.stop_orders(format="Simple"),
    "MdV2ClientsExchangePortfolioStopOrdersOrderIdGet": lambda inv: inv.stop_order(99),
    "MdV2ClientsExchangePortfolioTradesGet": lambda inv: inv.own_trades(with_repo=True),
    "MdV2ClientsExchangePortfolioSymbolTradesGet":
        lambda inv: inv.own_trades(symbol="SBER", board="TQBR", format="Slim"),
    "MdV2StatsExchangePortfolioHistoryTradesGet": lambda inv: inv.own_trades_history(
        start="2024-01-01", limit=10, board="TQBR", side="sell", with_repo=True, descending=True,
        format="Heavy"),
    "MdV2StatsExchangePortfolioHistoryTradesSymbolGet": lambda inv: inv.own_trades_history(
        symbol="SBER", start="2024-01-01", limit=10, side="buy", format="Slim"),
}
NOT_CALLED = {"TradeStats", "TradeStatsBySymbol"}  # deprecated routes the client does not use


def test_every_data_route_is_requested_here():
    assert {op["operationId"] for op in http_operations()} == set(FULL_CALLS) | NOT_CALLED


def _typed(text: str, schema: dict[str, Any]) -> Any:
    """A query-string value as the JSON value its schema describes."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    return text


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec_schemas()[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _value_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    root = {**schema, "components": {"schemas": spec_schemas()}}
    return [e.message for e in jsonschema.Draft7Validator(root).iter_errors(value)]


def request_problems(op: dict[str, Any], url: str) -> list[str]:
    parts = urlsplit(url)
    problems = []
    if not route_pattern(op["path"]).match(parts.path):
        problems.append(f"path {parts.path} is not {op['path']}")
    documented = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    sent = dict(parse_qsl(parts.query))
    for name, text in sent.items():
        param = documented.get(name)
        if param is None:
            problems.append(f"undocumented parameter {name}={text}")
            continue
        schema = _resolved(param["schema"])
        problems += [f"{name}={text}: {m}" for m in _value_errors(_typed(text, schema), schema)]
    problems += [f"required parameter {n} missing" for n, p in documented.items()
                 if p["required"] and n not in sent]
    return problems


def _body_for(op: dict[str, Any]) -> Any:
    first = op["examples"][0]["value"] if op["examples"] else {"portfolio": "D39004"}
    if op["operationId"] == "MdV2SecuritiesExchangeSymbolActualFuturesQuoteGet":
        return example("Futures_Heavy")
    return first


@pytest.mark.parametrize("operation_id", sorted(FULL_CALLS))
def test_client_requests_use_documented_parameters(operation_id):
    (op,) = [o for o in http_operations() if o["operationId"] == operation_id]
    inv, adapter = serving(op, _body_for(op))
    with inv:
        FULL_CALLS[operation_id](inv)
    urls = [r.url for r in adapter.requests]
    assert urls
    problems = [p for url in urls for p in request_problems(op, url)]
    assert not problems, problems


# --- subscriptions ------------------------------------------------------------------------------

def _allowed_fields(request_schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    fields: dict[str, dict[str, Any]] = {}
    for part in request_schema.get("allOf", [request_schema]):
        fields.update(_resolved(part).get("properties", {}))
    return fields


# Each subscription of the client with its options set (the frames are captured at the simulator).
SUBSCRIBE = {
    "OrderBookGetAndSubscribe": lambda st: st.orderbook("SBER", depth=10, board="TQBR", frequency=50),
    "QuotesSubscribe": lambda st: st.quotes(["SBER"], format="Heavy"),
    "AllTradesGetAndSubscribe": lambda st: st.all_trades("SBER", recent=5, board="TQBR"),
    "BarsGetAndSubscribe": lambda st: st.bars("SBER", "1min", format="Simple"),
    "InstrumentsGetAndSubscribeV2": lambda st: st.instrument_state("SBER", board="TQBR"),
    "PositionsGetAndSubscribeV2": lambda st: st.positions(),
    "SummariesGetAndSubscribeV2": lambda st: st.summary(format="Slim"),
    "RisksGetAndSubscribe": lambda st: st.risk(),
    "SpectraRisksGetAndSubscribe": lambda st: st.forts_risk(),
    "TradesGetAndSubscribeV2": lambda st: st.own_trades(),
    "OrdersGetAndSubscribeV2": lambda st: st.orders(),
    "StopOrdersGetAndSubscribeV2": lambda st: st.stop_orders(format="Heavy"),
}


def test_every_subscription_is_sent_here():
    assert set(SUBSCRIBE) == set(protocol.OPCODES.values())


@pytest.fixture(scope="module")
def sent_frames(sim: Any, client: Any) -> dict[str, dict[str, Any]]:
    """The first subscribe frame of each opcode, as the simulator received it."""
    received: list[dict[str, Any]] = []
    original = Connection._handle

    def recording(self: Any, message: dict[str, Any], guid: Any) -> None:
        received.append(dict(message))
        original(self, message, guid)

    Connection._handle = recording  # type: ignore[method-assign]
    try:
        frames = [subscribe(client.stream) for subscribe in SUBSCRIBE.values()]
        for frame in frames:
            frame.wait(0, timeout=20)
            frame.close()
    finally:
        Connection._handle = original  # type: ignore[method-assign]
    out: dict[str, dict[str, Any]] = {}
    for message in received:
        out.setdefault(message.get("opcode"), message)
    return out


@pytest.mark.parametrize("opcode", sorted(SUBSCRIBE))
def test_subscription_frames_use_documented_fields(sent_frames, opcode):
    frame = sent_frames[opcode]
    (op,) = [o for o in ws_operations() if o["opcode"] == opcode]
    allowed = _allowed_fields(op["request"])
    undocumented = set(frame) - set(allowed)
    assert not undocumented, f"{opcode}: fields the spec does not list: {undocumented}"
    problems = {name: _value_errors(value, allowed[name]) for name, value in frame.items()
                if name not in ("opcode", "token")}
    assert not {k: v for k, v in problems.items() if v}
