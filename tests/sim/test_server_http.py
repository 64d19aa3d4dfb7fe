"""Every HTTP data route of the simulator, in all three formats, decoded with the schema tables."""

from __future__ import annotations

import pytest
import requests

from invia_data.schema import HISTORY, SCHEMAS
from invia_data.sim.instruments import INSTRUMENTS

FORMATS = ("Simple", "Slim", "Heavy")


def get(sim, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{sim.url}{path}", params=params, headers=headers, timeout=10)


def ok(sim, path, token=None, **params):
    response = get(sim, path, token, **params)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return response.json()


def decode(kind, payload, fmt):
    schema = SCHEMAS[kind]
    if isinstance(payload, list):
        return [schema.decode(item, fmt) for item in payload]
    return schema.decode(payload, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_securities_search_and_lookup(sim, token, fmt):
    found = decode("security", ok(sim, "/md/v2/Securities", query="SBER", format=fmt), fmt)
    assert found[0]["symbol"] == "SBER" and found[0]["exchange"] == "MOEX"
    assert found[0]["lot_size"] == 10
    everything = ok(sim, "/md/v2/Securities", format=fmt)
    assert 0 < len(everything) <= 25
    assert len(ok(sim, "/md/v2/Securities", limit=2, format=fmt)) == 2
    futures = decode("security", ok(sim, "/md/v2/Securities", sector="FORTS", format=fmt), fmt)
    listed = {s.symbol for s in INSTRUMENTS if s.is_future}
    assert futures and len(listed) == 9 and listed <= {s["symbol"] for s in futures}
    of_exchange = decode("security", ok(sim, "/md/v2/Securities/MOEX", token, format=fmt), fmt)
    assert {s["exchange"] for s in of_exchange} == {"MOEX"} and len(of_exchange) > 5
    one = decode("security", ok(sim, "/md/v2/Securities/MOEX/GAZP", token, format=fmt), fmt)
    assert one["symbol"] == "GAZP" and one["board"] == "TQBR" and one["min_step"] == 0.01


@pytest.mark.parametrize("fmt", FORMATS)
def test_quotes_and_futures_quote(sim, token, fmt):
    quotes = decode("quote", ok(sim, "/md/v2/Securities/MOEX:SBER,MOEX:GAZP/quotes", token,
                                format=fmt), fmt)
    assert [q["symbol"] for q in quotes] == ["SBER", "GAZP"]
    for q in quotes:
        assert q["bid"] < q["ask"] and q["last_price"] > 0
    futures = decode("quote", ok(sim, "/md/v2/Securities/MOEX/SBRF/actualFuturesQuote", token,
                                 format=fmt), fmt)
    assert futures["symbol"] == next(s.symbol for s in INSTRUMENTS if s.underlying == "SBER")


def test_boards_pairs_time_status_and_rates(sim, token):
    assert "TQBR" in ok(sim, "/md/v2/Securities/MOEX/SBER/availableBoards")
    pairs = decode("currency_pair", ok(sim, "/md/v2/Securities/currencyPairs"), "Simple")
    assert any(p["symbol_tom"] == "USD000UTSTOM" for p in pairs)
    now = ok(sim, "/md/v2/time", token)
    assert isinstance(now, int) and abs(now - sim.market.now()) < 5
    status = ok(sim, "/md/status/MOEX/FOND")
    assert status["code"] == "FOND" and status["status"] in ("open", "closed")
    rates = ok(sim, "/md/v2/risk/rates", riskCategoryId=1, ticker="SBER")
    assert rates["total"] >= 1
    assert decode("risk_rate", rates["list"], "Simple")[0]["instrument"] == "SBER"


def test_invia_page_example(sim, token):
    """GET /md/v2/orderbooks/ITS/SOGN?instrumentGroup=TQBR&depth=5&format=Simple."""
    book = ok(sim, "/md/v2/orderbooks/ITS/SOGN", token, instrumentGroup="TQBR", depth=5,
              format="Simple")
    assert set(book) >= {"snapshot", "bids", "asks", "timestamp", "ms_timestamp", "existing"}
    assert len(book["bids"]) == 5 and len(book["asks"]) == 5
    assert all(set(level) == {"price", "volume"} for level in book["bids"] + book["asks"])
    assert book["bids"][0]["price"] < book["asks"][0]["price"]
    assert [lvl["price"] for lvl in book["bids"]] == sorted((lvl["price"] for lvl in book["bids"]), reverse=True)
    assert [lvl["price"] for lvl in book["asks"]] == sorted(lvl["price"] for lvl in book["asks"])
    assert book["existing"] is True and book["snapshot"] is True
    assert abs(book["ms_timestamp"] / 1000 - book["timestamp"]) < 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_orderbook_formats(sim, token, fmt):
    book = decode("orderbook", ok(sim, "/md/v2/orderbooks/MOEX/SBER", token, depth=10, format=fmt), fmt)
    assert len(book["bids"]) == 10 and len(book["asks"]) == 10
    assert book["bids"][0]["price"] < book["asks"][0]["price"]
    assert isinstance(book["time"], int) and book["existing"] is True


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_trades(sim, token, fmt):
    trades = decode("trade", ok(sim, "/md/v2/Securities/MOEX/SBER/alltrades", token, take=5,
                                descending="true", format=fmt), fmt)
    assert 1 <= len(trades) <= 5
    ids = [t["id"] for t in trades]
    assert ids == sorted(ids, reverse=True)
    assert all(t["side"] in ("buy", "sell") and t["price"] > 0 for t in trades)
    past = ok(sim, "/md/v2/Securities/MOEX/SBER/alltrades/history", token, limit=20, format=fmt)
    assert past["total"] >= len(past["list"]) > 0
    assert len(past["list"]) <= 20
    assert decode("trade", past["list"], fmt)[0]["symbol"] == "SBER"


@pytest.mark.parametrize("fmt", FORMATS)
def test_history(sim, token, fmt):
    now = int(sim.market.now())
    body = ok(sim, "/md/v2/history", token, symbol="SBER", exchange="MOEX", tf=60,
              **{"from": now - 7 * 86400, "to": now}, format=fmt)
    decoded = HISTORY.decode(body, fmt)
    candles = decoded["history"]
    assert len(candles) > 100
    times = [c["time"] for c in candles]
    assert times == sorted(times) and all(t % 60 == 0 for t in times)
    assert all(c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"]
               for c in candles)
    assert decoded["prev"] is None or decoded["prev"] < times[0]
    if fmt == "Slim":
        assert "h" in body and "history" not in body


def test_history_paging_cursor_and_count_back(sim, token):
    now = int(sim.market.now())
    day = ok(sim, "/md/v2/history", token, symbol="SBER", exchange="MOEX", tf="D",
             **{"from": now - 60 * 86400, "to": now - 30 * 86400})
    assert day["next"] is not None and day["next"] > day["history"][-1]["time"]
    back = ok(sim, "/md/v2/history", token, symbol="SBER", exchange="MOEX", tf=3600,
              countBack=50, **{"from": now - 3600, "to": now})
    assert len(back["history"]) == 50


def test_candle_cap_pages_with_next(sim, token):
    from invia_data.sim.server import MAX_CANDLES

    now = int(sim.market.now())
    first = ok(sim, "/md/v2/history", token, symbol="SBER", exchange="MOEX", tf=60,
               **{"from": now - 400 * 86400, "to": now}, format="Slim")
    assert len(first["h"]) == MAX_CANDLES
    assert first["next"] > first["h"][-1]["t"]
    second = ok(sim, "/md/v2/history", token, symbol="SBER", exchange="MOEX", tf=60,
                **{"from": first["next"], "to": now}, format="Slim")
    assert second["h"][0]["t"] == first["next"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_portfolio_routes(sim, token, fmt):
    base = "/md/v2/Clients/MOEX/D39004"
    summary = decode("summary", ok(sim, f"{base}/summary", token, format=fmt), fmt)
    assert summary["buying_power"] > 0
    positions = decode("position", ok(sim, f"{base}/positions", token, format=fmt), fmt)
    assert positions and all(p["portfolio"] == "D39004" for p in positions)
    symbol = next(p["symbol"] for p in positions if not p.get("is_currency"))
    one = decode("position", ok(sim, f"{base}/positions/{symbol}", token, format=fmt), fmt)
    assert one["symbol"] == symbol
    no_money = decode("position", ok(sim, f"{base}/positions", token, withoutCurrency="true",
                                     format=fmt), fmt)
    assert not any(p.get("is_currency") for p in no_money)
    by_login = decode("position", ok(sim, "/md/v2/Clients/P039004/positions", token, format=fmt), fmt)
    assert len(by_login) >= len(positions)
    risk = decode("risk", ok(sim, f"{base}/risk", token, format=fmt), fmt)
    assert risk["portfolio"] == "D39004"
    forts = decode("forts_risk", ok(sim, "/md/v2/Clients/MOEX/7500GHC/fortsrisk", token, format=fmt), fmt)
    assert forts["portfolio"] == "7500GHC"
    money = decode("money", ok(sim, "/md/v2/Clients/legacy/MOEX/D39004/money", token, format=fmt), fmt)
    assert money["portfolio"] == "D39004"


@pytest.mark.parametrize("fmt", FORMATS)
def test_orders_and_trades_routes(sim, token, fmt):
    base = "/md/v2/Clients/MOEX/D39004"
    orders = decode("order", ok(sim, f"{base}/orders", token, format=fmt), fmt)
    assert orders and all(o["portfolio"] == "D39004" for o in orders)
    one = decode("order", ok(sim, f"{base}/orders/{orders[0]['id']}", token, format=fmt), fmt)
    assert one["id"] == orders[0]["id"]
    stops = decode("stop_order", ok(sim, f"{base}/stoporders", token, format=fmt), fmt)
    assert stops
    stop = decode("stop_order", ok(sim, f"{base}/stoporders/{stops[0]['id']}", token, format=fmt), fmt)
    assert stop["id"] == stops[0]["id"]
    trades = decode("own_trade", ok(sim, f"{base}/trades", token, format=fmt), fmt)
    assert all(t["side"] in ("buy", "sell") for t in trades)
    history = decode("own_trade", ok(sim, "/md/v2/Stats/MOEX/D39004/history/trades", token,
                                     limit=50, format=fmt), fmt)
    assert 0 < len(history) <= 50
    symbol = history[0]["symbol"]
    of_symbol = decode("own_trade", ok(sim, f"/md/v2/Stats/MOEX/D39004/history/trades/{symbol}",
                                       token, format=fmt), fmt)
    assert of_symbol and {t["symbol"] for t in of_symbol} == {symbol}
    legacy = ok(sim, f"/md/stats/MOEX/D39004/history/trades/{symbol}", token, format=fmt)
    assert len(legacy) == len(of_symbol)
    per_symbol = ok(sim, f"{base}/{symbol}/trades", token, format=fmt)
    assert all(t for t in decode("own_trade", per_symbol, fmt) if t["symbol"] == symbol)


def test_paths_and_enums_are_case_insensitive(sim, token):
    upper = ok(sim, "/md/v2/Securities/MOEX/SBER", token, format="Slim")
    lower = ok(sim, "/md/v2/securities/moex/sber", token, format="slim")
    assert upper == lower
    assert ok(sim, "/MD/V2/SECURITIES/CURRENCYPAIRS") == ok(sim, "/md/v2/Securities/currencyPairs")
    assert len(ok(sim, "/md/v2/orderbooks/moex/sber", token, depth=3, FORMAT="heavy")["bids"]) == 3


@pytest.mark.parametrize(("path", "params", "names"), [
    ("/md/v2/orderbooks/MOEX/SBER", {"depth": 0}, "depth"),
    ("/md/v2/orderbooks/MOEX/SBER", {"depth": 51}, "depth"),
    ("/md/v2/orderbooks/MOEX/SBER", {"depth": "ten"}, "depth"),
    ("/md/v2/orderbooks/MOEX/SBER", {"format": "Fat"}, "format"),
    ("/md/v2/orderbooks/NYSE/SBER", {}, "exchange"),
    ("/md/v2/history", {"symbol": "SBER", "exchange": "MOEX", "tf": "7q", "from": 0, "to": 10}, "tf"),
    ("/md/v2/history", {"symbol": "SBER", "exchange": "MOEX", "tf": 60, "from": 20, "to": 10}, "from"),
    ("/md/v2/history", {"exchange": "MOEX", "tf": 60, "from": 0, "to": 10}, "symbol"),
    ("/md/v2/history", {"symbol": "SBER", "exchange": "MOEX", "tf": 60, "to": 10}, "from"),
    ("/md/v2/history", {"symbol": "SBER", "exchange": "MOEX", "tf": 60, "from": "x", "to": 10}, "from"),
    ("/md/v2/Securities", {"limit": 0}, "limit"),
    ("/md/v2/Securities/MOEX/SBER/alltrades/history", {}, "limit"),
    ("/md/v2/Securities/MOEX/SBER/alltrades/history", {"limit": 50001}, "limit"),
    ("/md/v2/Securities/MOEX/SBER/alltrades", {"side": "up"}, "side"),
    ("/md/v2/risk/rates", {}, "riskCategoryId"),
    ("/md/v2/Stats/MOEX/D39004/history/trades", {"limit": 1001}, "limit"),
])
def test_bad_parameters_are_400_naming_the_parameter(sim, token, path, params, names):
    response = get(sim, path, token, **params)
    assert response.status_code == 400, response.text
    assert names in response.json()["message"]


def test_unknown_things_are_404(sim, token):
    assert get(sim, "/md/v2/orderbooks/MOEX/NOSUCH", token).status_code == 404
    assert get(sim, "/md/v2/Securities/MOEX/NOSUCH", token).status_code == 404
    assert "NOSUCH" in get(sim, "/md/v2/Securities/MOEX/NOSUCH", token).json()["message"]
    assert get(sim, "/md/v2/Clients/MOEX/D39004/orders/999999999999", token).status_code == 404
    assert get(sim, "/md/v2/no/such/route", token).status_code == 404


def test_anonymous_public_routes_are_15_minutes_late(sim, token):
    now = sim.market.now()
    anonymous = ok(sim, "/md/v2/time")
    assert now - 905 < anonymous < now - 895
    fresh = ok(sim, "/md/v2/history", token, symbol="SBER", exchange="MOEX", tf=60,
               **{"from": int(now) - 3600, "to": int(now) + 60})
    late = ok(sim, "/md/v2/history", symbol="SBER", exchange="MOEX", tf=60,
              **{"from": int(now) - 3600, "to": int(now) + 60})
    assert late["history"][-1]["time"] <= now - 900 < fresh["history"][-1]["time"]
    assert len(ok(sim, "/md/v2/Securities/MOEX:SBER/quotes")) == 1


def test_protected_routes_need_a_token(sim):
    for path in ("/md/v2/orderbooks/MOEX/SBER", "/md/v2/Securities/MOEX",
                 "/md/v2/Clients/MOEX/D39004/summary", "/md/v2/Securities/MOEX/SBER/alltrades"):
        response = get(sim, path)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.content == b""

