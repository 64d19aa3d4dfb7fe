"""Portfolio calls against the simulator, in all three wire formats."""

from __future__ import annotations

import pandas as pd
import pytest

from invia_data import portfolio as portfolio_module
from invia_data.errors import Forbidden, InvalidArgument, NotFound
from invia_data.frames import dtypes
from invia_data.portfolio import agreement_of, market_of
from invia_data.schema import (
    FORMATS,
    FORTS_RISK,
    MONEY,
    ORDER,
    OWN_TRADE,
    POSITION,
    RISK,
    STOP_ORDER,
    SUMMARY,
)


def assert_schema(frame: pd.DataFrame, schema) -> None:
    expected = dtypes(schema)
    assert list(frame.columns) == list(expected)
    assert {c: str(t) for c, t in frame.dtypes.items()} == \
        {c: str(pd.api.types.pandas_dtype(t)) for c, t in expected.items()}


def test_portfolios_from_the_token(client, sim):
    df = client.portfolios()
    assert list(df["portfolio"]) == sim.portfolios
    by_id = df.set_index("portfolio")
    assert by_id.loc["D39004", "market"] == "stock"
    assert by_id.loc["G39004", "market"] == "fx"
    assert by_id.loc["7500GHC", "market"] == "derivatives"
    assert by_id.loc["D39004", "agreement"] == "39004"
    assert (df["exchange"] == "MOEX").all()
    assert client.portfolio == "D39004"


def test_market_and_agreement_by_prefix():
    assert [market_of(p) for p in ("D1", "G1", "7500X", "E1", "Z1")] == \
        ["stock", "fx", "derivatives", "united", None]
    assert agreement_of("D123", ["123", "456"]) == "123"
    assert agreement_of("7500ABC", ["123", "456"]) is None
    assert agreement_of("7500ABC", ["123"]) == "123"


@pytest.mark.parametrize("fmt", FORMATS)
def test_summary(client, fmt):
    df = client.summary(format=fmt)
    assert_schema(df, SUMMARY)
    assert len(df) == 1 and df["portfolio_evaluation"].iloc[0] > 0
    assert df.attrs["portfolio"] == "D39004"
    by_currency = df["buying_power_by_currency"].iloc[0]
    assert isinstance(by_currency, list) and {"currency", "buying_power"} <= set(by_currency[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_positions_and_one_position(client, fmt):
    df = client.positions(format=fmt)
    assert_schema(df, POSITION)
    assert len(df) > 0 and (df["portfolio"] == "D39004").all()
    securities = df[~df["is_currency"].astype(bool)]
    assert len(securities) > 0
    without = client.positions(without_currency=True, format=fmt)
    assert len(without) == len(securities) and not without["is_currency"].any()
    symbol = securities["symbol"].iloc[0]
    one = client.position(symbol, format=fmt)
    assert_schema(one, POSITION)
    assert len(one) == 1 and one["symbol"].iloc[0] == symbol
    assert one["qty_units"].iloc[0] == securities["qty_units"].iloc[0]


def test_position_not_held_is_not_found(client):
    with pytest.raises(NotFound, match="AAPL"):
        client.position("AAPL")


@pytest.mark.parametrize("fmt", FORMATS)
def test_positions_by_login(client, fmt):
    df = client.positions_by_login(format=fmt)
    assert_schema(df, POSITION)
    assert set(df["portfolio"]) <= set(client.tokens.portfolios) and len(df) > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_risk_forts_risk_money(client, fmt):
    risk = client.risk(format=fmt)
    assert_schema(risk, RISK)
    assert len(risk) == 1 and risk["portfolio"].iloc[0] == "D39004"
    forts = client.forts_risk(format=fmt)
    assert_schema(forts, FORTS_RISK)
    assert len(forts) == 1 and forts["portfolio"].iloc[0] == "7500GHC"
    money = client.money(format=fmt)
    assert_schema(money, MONEY)
    assert len(money) == 1 and money["portfolio"].iloc[0] == "D39004"


@pytest.mark.parametrize("fmt", FORMATS)
def test_orders_and_one_order(client, fmt):
    df = client.orders(format=fmt)
    assert_schema(df, ORDER)
    assert len(df) > 0 and set(df["side"]) <= {"buy", "sell"}
    assert str(df["trans_time"].dt.tz) == "UTC"
    one = client.order(df["id"].iloc[0], format=fmt)
    assert len(one) == 1 and one["id"].iloc[0] == df["id"].iloc[0]
    with pytest.raises(NotFound, match="order 999999999"):
        client.order(999999999, format=fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_stop_orders_and_one_stop_order(client, fmt):
    df = client.stop_orders(format=fmt)
    assert_schema(df, STOP_ORDER)
    assert len(df) > 0 and (df["stop_price"] > 0).all()
    one = client.stop_order(df["id"].iloc[0], format=fmt)
    assert len(one) == 1 and one["id"].iloc[0] == df["id"].iloc[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_own_trades_current_session(client, fmt):
    df = client.own_trades(format=fmt)
    assert_schema(df, OWN_TRADE)
    assert len(df) > 0 and df["id"].is_unique
    symbol = df["symbol"].iloc[0]
    one = client.own_trades(symbol=symbol, format=fmt)
    assert_schema(one, OWN_TRADE)
    assert 0 < len(one) <= len(df) and (one["symbol"] == symbol).all()
    moscow = client.own_trades(format=fmt, tz="Europe/Moscow")
    assert str(moscow["date"].dt.tz) == "Europe/Moscow"


@pytest.mark.parametrize("fmt", FORMATS)
def test_own_trades_history(client, fmt):
    df = client.own_trades_history(format=fmt)
    assert_schema(df, OWN_TRADE)
    assert 0 < len(df) <= 1000
    assert df["id"].is_unique and (df["price"] > 0).all()


def test_own_trades_history_pages_by_trade_id(counted, monkeypatch):
    inv, adapter = counted
    whole = inv.own_trades_history(limit=None)
    assert len(whole) > 12
    monkeypatch.setattr(portfolio_module, "STATS_PAGE", 5)
    before = len(adapter.sent)
    paged = inv.own_trades_history(limit=None)
    assert len(adapter.sent) - before >= -(-len(whole) // 5)
    pd.testing.assert_frame_equal(paged, whole)
    capped = inv.own_trades_history(limit=12)
    assert list(capped["id"]) == list(whole["id"].iloc[:12])


def test_own_trades_history_ids_follow_time(client):
    whole = client.own_trades_history(limit=None)
    ids = whole["id"].astype("int64")
    assert ids.is_monotonic_increasing and whole["date"].is_monotonic_increasing


def test_own_trades_history_start_and_end_filter(client):
    whole = client.own_trades_history(limit=None)
    middle = whole["date"].sort_values().iloc[len(whole) // 2]
    later = client.own_trades_history(start=middle.tz_localize(None), limit=None)
    assert 0 < len(later) < len(whole) and (later["date"] >= middle.floor("s")).all()
    earlier = client.own_trades_history(end=middle, limit=None)
    assert 0 < len(earlier) < len(whole) and (earlier["date"] < middle).all()
    assert len(earlier) + len(later) >= len(whole)
    quarter = whole["date"].sort_values().iloc[len(whole) // 4]
    between = client.own_trades_history(start=quarter, end=middle, limit=None)
    assert 0 < len(between) < len(earlier)
    assert ((between["date"] >= quarter.floor("s")) & (between["date"] < middle)).all()


def test_own_trades_history_end_stops_paging_once_passed(counted, monkeypatch):
    inv, adapter = counted
    whole = inv.own_trades_history(limit=None)
    first = whole["date"].sort_values().iloc[3]
    monkeypatch.setattr(portfolio_module, "STATS_PAGE", 2)
    before = len(adapter.sent)
    head = inv.own_trades_history(end=first, limit=None)
    assert (head["date"] < first).all() and len(head) >= 1
    assert len(adapter.sent) - before <= 3  # not every page of the history
    newest = inv.own_trades_history(end=first, descending=True, limit=2)
    assert (newest["date"] < first).all() and len(newest) == 2
    assert newest["date"].is_monotonic_decreasing
    assert list(newest["id"]) == list(head["id"].iloc[::-1].iloc[:2])


def test_foreign_portfolio_raises_before_any_request(counted):
    inv, adapter = counted
    before = list(adapter.sent)
    for call in (lambda: inv.summary("D99999"), lambda: inv.positions(portfolio="X"),
                 lambda: inv.forts_risk("D39004X"), lambda: inv.order("abc"),
                 lambda: inv.order(-5), lambda: inv.own_trades_history(limit=0),
                 lambda: inv.own_trades_history(start="not a date"),
                 lambda: inv.own_trades_history(start="2024-02-01", end="2024-01-01"),
                 lambda: inv.own_trades("SBER"),
                 lambda: inv.orders(tz="Nowhere/City")):
        with pytest.raises(InvalidArgument):
            call()
    assert adapter.sent == before


def test_server_refuses_a_portfolio_outside_the_token(client):
    with pytest.raises(Forbidden) as info:
        client.http.get("/md/v2/Clients/MOEX/D99999/summary")
    assert info.value.status == 403 and isinstance(info.value, PermissionError)


def test_other_portfolio_of_the_token(client):
    df = client.positions("G39004")
    assert len(df) == 0 or (df["portfolio"] == "G39004").all()
