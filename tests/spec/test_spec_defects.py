"""Fidelity checks built from the official spec's examples: shapes its examples show that a
client must read, and what the simulator must (not) send."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import requests

from invia_data.errors import DecodeError

from .support import example, load, operation
from .test_spec_http_examples import serving
from .test_spec_ws_examples import live_frame

FORMATS = ("Simple", "Slim", "Heavy")


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_trades_history_reads_list_as_one_object_or_an_array(fmt):
    op = operation("MdV2SecuritiesExchangeSymbolAlltradesHistoryGet")
    body = example(f"AllTradesHistory_{fmt}")
    assert isinstance(body["list"], dict)
    inv, _ = serving(op, body)
    one = inv.all_trades("SBER", history=True, format=fmt)
    assert list(one["id"]) == [159] and one["price"].iloc[0] == 142.52
    second = {**body["list"], "id": 160}
    inv, _ = serving(op, {"total": 2, "list": [body["list"], second]})
    assert list(inv.all_trades("SBER", history=True, format=fmt)["id"]) == [159, 160]


@pytest.mark.parametrize("bad_list", ["159", 159, [1, 2], [{"id": 1}, "x"], True])
def test_all_trades_history_with_another_shape_raises_an_api_error(bad_list):
    op = operation("MdV2SecuritiesExchangeSymbolAlltradesHistoryGet")
    inv, _ = serving(op, {"total": 23, "list": bad_list})
    with pytest.raises(DecodeError, match="malformed body"):
        inv.all_trades("SBER", history=True, format="Slim")


@pytest.mark.parametrize("body", ["text", 12, [["a"]]])
def test_a_list_call_with_a_body_of_another_shape_raises_an_api_error(body):
    inv, _ = serving(operation("MdV2SecuritiesSymbolsQuotesGet"), body)
    with pytest.raises(DecodeError):
        inv.quotes("SBER")


def test_risk_rates_of_one_bare_record_is_one_row_not_an_empty_frame():
    body = example("RiskRates")
    assert "list" not in body
    inv, _ = serving(operation("MdV2RiskRatesGet"), body)
    frame = inv.risk_rates(5)
    assert len(frame) == 1
    assert frame["instrument"].iloc[0] == "SBER" and frame["rate_up"].iloc[0] == body["rateUp"]
    assert frame.attrs["total"] is None  # the body carries no count


def test_risk_rates_envelope_still_pages_with_its_total():
    record = example("RiskRates")
    inv, adapter = serving(operation("MdV2RiskRatesGet"), {"total": 1, "list": [record]})
    frame = inv.risk_rates(5)
    assert len(frame) == 1 and frame.attrs["total"] == 1 and len(adapter.requests) == 1


def test_heavy_security_currencies_are_columns():
    inv, _ = serving(operation("MdV2SecuritiesExchangeSymbolGet"), example("Security_Heavy"))
    row = inv.security("CNY-6.25", format="Heavy").iloc[0]
    assert row["nominal_currency"] == "RUB"
    assert pd.isna(row["settlement_currency"]) and pd.isna(row["underlying_currency"])


def test_simulator_sends_the_heavy_security_currencies(client):
    frame = client.securities(limit=50, format="Heavy")
    assert frame["nominal_currency"].notna().all()
    fx = frame[frame["market"] == "CURR"]
    assert len(fx) and fx["underlying_currency"].notna().all()
    assert client.securities(limit=5, format="Slim")["nominal_currency"].isna().all()


@pytest.mark.parametrize("route", ["/md/stats/MOEX/D39004/history/trades",
                                   "/md/stats/MOEX/D39004/history/trades/SBER"])
def test_the_deprecated_stats_route_answers_the_older_trade_shape(sim, token, route):
    schemas = load("schemas.json")
    older = set(schemas["response_Trade_Heavy"]["properties"])
    newer = set(schemas["response_Trade_V2_Heavy"]["properties"])
    assert newer - older == {"shortName", "currency"}
    headers = {"Authorization": f"Bearer {token}"}
    trades = requests.get(f"{sim.url}{route}", params={"format": "Heavy"}, headers=headers,
                          timeout=10).json()
    current = requests.get(f"{sim.url}{route.replace('/md/stats/', '/md/v2/Stats/')}",
                           params={"format": "Heavy"}, headers=headers, timeout=10).json()
    assert trades and current, "the demo portfolio has past trades"
    assert not {"shortName", "currency"} & set().union(*trades)
    assert {"shortName", "currency"} <= set(current[0])


@pytest.mark.parametrize("key", ["bp2v", "bpv2"])
def test_summary_slim_buying_power_by_currency_under_either_spelling(key):
    message = copy.deepcopy(example("ws_SummariesGetAndSubscribeV2_Slim"))
    message["data"][key] = message["data"].pop("bp2v")
    frame = live_frame("SummariesGetAndSubscribeV2", "Slim", message)
    assert frame["buying_power_by_currency"].iloc[0] == [
        {"currency": "RUB", "buying_power": 99186.21945092}]
    inv, _ = serving(operation("MdV2ClientsExchangePortfolioSummaryGet"), message["data"])
    assert inv.summary(format="Slim")["buying_power_by_currency"].iloc[0][0]["currency"] == "RUB"


def test_stop_order_condition_has_one_spelling_over_http_and_stream():
    http_spelling = example("StopOrders_Warp_Heavy")[0]["condition"]
    ws_spelling = example("ws_StopOrdersGetAndSubscribeV2_Heavy")["data"]["condition"]
    assert http_spelling != ws_spelling  # "LessOrEqual" and "lessorequal"
    inv, _ = serving(operation("MdV2ClientsExchangePortfolioStopOrdersGet"),
                     example("StopOrders_Warp_Heavy"))
    over_http = inv.stop_orders(format="Heavy")["condition"].iloc[0]
    streamed = live_frame("StopOrdersGetAndSubscribeV2", "Heavy",
                          example("ws_StopOrdersGetAndSubscribeV2_Heavy"))["condition"].iloc[0]
    assert over_http == streamed == "lessorequal"


def test_simulator_stop_orders_read_in_the_enum_spelling(client):
    conditions = set(client.stop_orders()["condition"].dropna())
    assert conditions and conditions <= {"more", "less", "moreorequal", "lessorequal"}


@pytest.mark.parametrize("key", ["h", "history"])
def test_slim_candles_under_h_or_history(key):
    body = copy.deepcopy(example("History_Slim"))
    body[key] = body.pop("h")
    inv, _ = serving(operation("MdV2HistoryGet"), body)
    frame = inv.history("SBER", tf="10min", start=1701068400, end=1701069000, format="Slim",
                        cache=False, progress=False)
    assert list(frame["close"]) == [287.79]
    assert frame.index[0] == pd.Timestamp(1701068400, unit="s", tz="UTC")


@pytest.mark.parametrize(("key", "value"), [("px", "abc"), ("t", "soon"), ("q", [1]),
                                            ("h", {"x": 1})])
def test_all_trades_with_a_value_of_another_type_raises_an_api_error(key, value):
    op = operation("MdV2SecuritiesExchangeSymbolAlltradesHistoryGet")
    body = copy.deepcopy(example("AllTradesHistory_Slim"))
    body["list"][key] = value
    inv, _ = serving(op, body)
    with pytest.raises(DecodeError, match="malformed trade data"):
        inv.all_trades("SBER", history=True, format="Slim")
