"""The simulator's answers, validated against the official spec's response schema of the route
and format asked for (objects admit no key the spec does not list). The spec's own quirks that
the validation tolerates are listed once, in ``support.SPEC_QUIRKS``; every listed quirk must
still occur (in the spec's examples or in the simulator's answers), so the list stays honest."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from .support import (
    ITS_QUIRKS,
    SPEC_EXAMPLE_SHAPES,
    SPEC_QUIRKS,
    http_operations,
    inline_errors,
    unexplained,
    validation_errors,
    ws_operations,
)

FORMATS = ("Simple", "Slim", "Heavy")


@pytest.fixture(scope="module")
def token(sim: Any) -> str:
    """One access token for the module (its answers are all read within its lifetime)."""
    from conftest import fetch_token

    return fetch_token(sim)


def _path_args(sim: Any, op: dict[str, Any], portfolio: str | None) -> dict[str, str]:
    market = sim.market
    portfolio = portfolio or "D39004"
    args = {"exchange": "MOEX", "portfolio": portfolio, "symbol": "SBER", "symbols": "MOEX:SBER,MOEX:GAZP",
            "login": sim.login, "market": "FOND"}
    if "fortsrisk" in op["path"]:
        args["portfolio"] = "7500GHC"
    if "actualFuturesQuote" in op["path"]:
        args["symbol"] = "SBRF"
    if "/stoporders/" in op["path"]:
        args["orderId"] = str(market.stop_orders("D39004")[0]["id"])
    elif "/orders/" in op["path"]:
        args["orderId"] = str(market.orders("D39004")[0]["id"])
    if op["path"].endswith("/positions/{symbol}"):
        args["symbol"] = market.positions("D39004")[0]["symbol"]
    if "trades/{symbol}" in op["path"]:
        args["symbol"] = market.own_trades_history(portfolio)[-1]["symbol"]
    elif op["path"].endswith("{symbol}/trades"):
        args["symbol"] = market.own_trades(portfolio)[-1]["symbol"]
    return args


def _query(sim: Any, op: dict[str, Any]) -> dict[str, Any]:
    now = int(sim.market.now())
    if op["path"] == "/md/v2/history":
        return {"symbol": "SBER", "exchange": "MOEX", "tf": 60, "from": now - 3600, "to": now}
    if op["path"].endswith("/alltrades/history"):
        return {"from": now - 3 * 86_400, "to": now - 86_400, "limit": 5}
    if op["path"].endswith("/alltrades"):
        return {"take": 5}
    if op["path"] == "/md/v2/risk/rates":
        return {"riskCategoryId": 1, "limit": 5}
    if op["path"] == "/md/v2/Securities":
        return {"query": "S", "limit": 5}
    return {}


PORTFOLIOS = ("D39004", "G39004", "7500GHC")  # stock, FX and derivatives accounts of the demo


def _portfolios(op: dict[str, Any]) -> tuple[str | None, ...]:
    if "{portfolio}" not in op["path"] or op["path"].endswith("/orders/{orderId}") \
            or op["path"].endswith("/stoporders/{orderId}") or "/positions/{symbol}" in op["path"]:
        return (None,)
    return ("7500GHC",) if "fortsrisk" in op["path"] else PORTFOLIOS


HTTP_CASES = [
    pytest.param(op, fmt, portfolio, id=f"{op['operationId']}-{fmt}" + (f"-{portfolio}" if portfolio else ""))
    for op in http_operations() for fmt in FORMATS
    if fmt in op["schemas"] or "any" in op["schemas"]
    for portfolio in _portfolios(op)
]


def check(instance: Any, schema_name: str, where: str) -> set[tuple[str, str, str]]:
    """Validate; returns the quirks that explained some errors."""
    seen: set[tuple[str, str, str]] = set()
    bad = unexplained(validation_errors(instance, schema_name), seen)
    assert not bad, f"{where}: the simulator's answer breaks the spec's {schema_name}: {bad[:8]}"
    return seen


@pytest.mark.parametrize(("op", "fmt", "portfolio"), HTTP_CASES)
def test_simulator_http_answer_matches_the_spec(sim, token, op, fmt, portfolio):
    path = op["path"].format(**_path_args(sim, op, portfolio))
    params = {**_query(sim, op), "format": fmt}
    response = requests.get(f"{sim.url}{path}", params=params, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body not in (None, [], {}), f"{path}: nothing to validate"
    check(body, op["schemas"].get(fmt) or op["schemas"]["any"], f"GET {path} {fmt}")


def _ws_fields(op: dict[str, Any], portfolio: str | None) -> dict[str, Any]:
    opcode = op["opcode"]
    if opcode in ("OrderBookGetAndSubscribe", "AllTradesGetAndSubscribe",
                  "InstrumentsGetAndSubscribeV2", "QuotesSubscribe"):
        return {"code": "SBER", "exchange": "MOEX"}
    if opcode == "BarsGetAndSubscribe":
        return {"code": "SBER", "exchange": "MOEX", "tf": 60}
    return {"portfolio": portfolio, "exchange": "MOEX"}


def _ws_portfolios(op: dict[str, Any], fmt: str) -> tuple[str | None, ...]:
    """Every account in Heavy (the format with every field), the stock one otherwise."""
    if op["opcode"] == "SpectraRisksGetAndSubscribe":
        return ("7500GHC",)
    if "portfolio" in json.dumps(op["request"]):
        return PORTFOLIOS if fmt == "Heavy" else ("D39004",)
    return (None,)


WS_CASES = [
    pytest.param(op, fmt, portfolio,
                 id=f"{op['opcode']}-{fmt}" + (f"-{portfolio}" if portfolio else ""))
    for op in ws_operations() if not op["deprecated"] for fmt in FORMATS
    for portfolio in _ws_portfolios(op, fmt)
]


@pytest.mark.parametrize(("op", "fmt", "portfolio"), WS_CASES)
def test_simulator_ws_messages_match_the_spec(sim, ws_client, op, fmt, portfolio):
    """The first data message and whatever follows within 0.05 s (a snapshot's records, updates)."""
    client = ws_client()
    fields = _ws_fields(op, portfolio)
    if op["opcode"] == "BarsGetAndSubscribe":
        fields["from"] = int(sim.market.now()) - 600
    guid = client.subscribe(op["opcode"], guid=str(uuid.uuid4()), format=fmt, **fields)
    result = client.result(guid)
    assert result["httpCode"] == 200
    assert not unexplained(inline_errors(result, op["results"]["200"]["schema"]), set())
    messages = [client.wait_for(lambda f: f.get("guid") == guid and "data" in f)]
    messages += [f for f in client.drain(0.05) if f.get("guid") == guid and "data" in f]
    for message in messages[:50]:
        check(message, op["schemas"][fmt], f"{op['opcode']} {fmt} {portfolio or ''}")


@pytest.mark.parametrize("opcode", ["OrderBookGetAndSubscribe", "PositionsGetAndSubscribeV2"])
def test_simulator_rejects_a_bad_token_with_the_spec_result(ws_client, opcode):
    (op,) = [o for o in ws_operations() if o["opcode"] == opcode]
    client = ws_client()
    fields = _ws_fields(op, "D39004")
    guid = client.subscribe(opcode, token="not-a-jwt", format="Slim", **fields)
    result = client.result(guid)
    assert result == {**op["results"]["401"]["examples"][0], "requestGuid": guid}
    assert not inline_errors(result, op["results"]["401"]["schema"])


def test_the_deprecated_stop_order_stream_is_refused(ws_client):
    (legacy,) = [op for op in ws_operations() if op["opcode"] == "StopOrdersGetAndSubscribe"]
    assert legacy["deprecated"]
    client = ws_client()
    guid = client.subscribe(legacy["opcode"], portfolio="D39004", exchange="MOEX", format="Slim")
    assert client.result(guid)["httpCode"] == 400


def examples_quirks() -> tuple[int, set[tuple[str, str, str]]]:
    """Validate every example of the spec against its own schema: (count, quirks used)."""
    seen: set[tuple[str, str, str]] = set()
    checked = 0
    for op in http_operations() + ws_operations():
        for ex in op["examples"]:
            name = op["schemas"].get(ex["format"] or "any")
            name = SPEC_EXAMPLE_SHAPES.get(ex["name"], (name, ""))[0]
            bad = unexplained(validation_errors(ex["value"], name), seen)
            assert not bad, f"{ex['name']}: {bad}"
            checked += 1
    return checked, seen


def test_spec_examples_break_their_schemas_only_by_listed_quirks():
    checked, _ = examples_quirks()
    assert checked == sum(len(op["examples"]) for op in http_operations() + ws_operations())


def test_every_listed_quirk_occurs_in_the_spec_examples():
    """The list stays honest: each quirk is shown by an example of the spec (the ITS ones by
    the simulator's ITS instrument, above)."""
    _, seen = examples_quirks()
    unused = set(SPEC_QUIRKS) - seen - set(ITS_QUIRKS)
    assert not unused, f"listed quirks that no example shows: {sorted(unused)}"
