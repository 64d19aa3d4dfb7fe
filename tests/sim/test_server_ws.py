"""The WebSocket interface (/cws and /ws): every opcode in all three formats, the result/data
protocol, unsubscribe, guid replacement, error frames."""

from __future__ import annotations

import pytest

from invia_data.schema import SCHEMAS

FORMATS = ("Simple", "Slim", "Heavy")


def decoded(kind, data, fmt):
    return SCHEMAS[kind].decode(data, fmt)


@pytest.mark.parametrize("path", ["/cws", "/ws"])
def test_orderbook_answers_200_then_streams_books(sim, ws_client, path):
    client = ws_client(sim.url.replace("http", "ws") + path)
    guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX", depth=10,
                            format="Simple", frequency=0)
    first = client.wait_for(lambda f: f.get("requestGuid") == guid or f.get("guid") == guid)
    assert first == {"message": "Handled successfully", "httpCode": 200, "requestGuid": guid}
    books = client.data(guid, 3, timeout=10)
    assert books[0]["existing"] is True and books[0]["snapshot"] is True
    assert all(b["existing"] is False for b in books[1:])
    assert all(len(b["bids"]) == 10 and len(b["asks"]) == 10 for b in books)
    assert books[1]["ms_timestamp"] >= books[0]["ms_timestamp"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_orderbook_formats(ws_client, fmt):
    client = ws_client()
    guid = client.subscribe("OrderBookGetAndSubscribe", code="ITS:SOGN".split(":")[1],
                            exchange="ITS", depth=5, format=fmt)
    assert client.result(guid)["httpCode"] == 200
    book = decoded("orderbook", client.data(guid)[0], fmt)
    assert len(book["bids"]) == 5 and book["bids"][0]["price"] < book["asks"][0]["price"]
    assert book["existing"] is True


@pytest.mark.parametrize("fmt", FORMATS)
def test_quotes(ws_client, fmt):
    client = ws_client()
    guid = client.subscribe("QuotesSubscribe", code="GAZP", exchange="MOEX", format=fmt)
    assert client.result(guid)["httpCode"] == 200
    quote = decoded("quote", client.data(guid)[0], fmt)
    assert quote["symbol"] == "GAZP" and quote["bid"] < quote["ask"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_trades_replay_depth_then_live(ws_client, fmt):
    client = ws_client()
    guid = client.subscribe("AllTradesGetAndSubscribe", code="SBER", exchange="MOEX", depth=20,
                            format=fmt)
    assert client.result(guid)["httpCode"] == 200
    trades = [decoded("trade", d, fmt) for d in client.data(guid, 21, timeout=15)]
    replay, live = trades[:20], trades[20:]
    assert all(t["existing"] is True for t in replay)
    assert live[0]["existing"] is False
    ids = [t["id"] for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(t["symbol"] == "SBER" for t in trades)


@pytest.mark.parametrize("fmt", FORMATS)
def test_bars_history_then_updates(sim, ws_client, fmt):
    client = ws_client()
    start = int(sim.market.now()) - 30 * 60
    guid = client.subscribe("BarsGetAndSubscribe", code="SBER", exchange="MOEX", tf="60",
                            format=fmt, frequency=0, **{"from": start})
    assert client.result(guid)["httpCode"] == 200
    bars = [decoded("candle", d, fmt) for d in client.data(guid, 25, timeout=10)]
    times = [b["time"] for b in bars]
    assert times[0] >= start - 60 and times == sorted(times)
    assert all(b["low"] <= b["high"] for b in bars)
    more = [decoded("candle", d, fmt) for d in client.data(guid, 8, timeout=20)]
    # every later message is the open candle again (same time) or a new one (larger time)
    assert all(b["time"] >= times[-1] for b in more)


def test_bars_skip_history_sends_only_new_data(sim, ws_client):
    client = ws_client()
    guid = client.subscribe("BarsGetAndSubscribe", code="SBER", exchange="MOEX", tf=60,
                            skipHistory=True, format="Slim", **{"from": int(sim.market.now()) - 3600})
    assert client.result(guid)["httpCode"] == 200
    bar = client.data(guid, timeout=20)[0]
    assert bar["t"] >= int(sim.market.now()) - 120


@pytest.mark.parametrize("fmt", FORMATS)
def test_instruments_full_then_changed_fields(ws_client, fmt):
    client = ws_client()
    guid = client.subscribe("InstrumentsGetAndSubscribeV2", code="SBER", exchange="MOEX", format=fmt)
    assert client.result(guid)["httpCode"] == 200
    state = decoded("instrument_state", client.data(guid)[0], fmt)
    assert state["symbol"] == "SBER" and state["trading_status"] in (17, 18, 2)
    assert {"price_min", "price_max", "board"} <= set(state)


PORTFOLIO_STREAMS = [
    ("PositionsGetAndSubscribeV2", "position", "D39004"),
    ("SummariesGetAndSubscribeV2", "summary", "D39004"),
    ("RisksGetAndSubscribe", "risk", "D39004"),
    ("SpectraRisksGetAndSubscribe", "forts_risk", "7500GHC"),
    ("TradesGetAndSubscribeV2", "own_trade", "D39004"),
    ("OrdersGetAndSubscribeV2", "order", "D39004"),
    ("StopOrdersGetAndSubscribeV2", "stop_order", "D39004"),
]


def test_the_deprecated_stop_order_opcode_is_refused_not_answered_in_the_v2_shape(ws_client):
    client = ws_client()
    guid = client.subscribe("StopOrdersGetAndSubscribe", portfolio="D39004", exchange="MOEX",
                            format="Slim")
    result = client.result(guid)
    assert result["httpCode"] == 400 and "StopOrdersGetAndSubscribeV2" in result["message"]
    assert not [f for f in client.drain(0.3) if f.get("guid") == guid and "data" in f]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("opcode", "kind", "portfolio"), PORTFOLIO_STREAMS)
def test_portfolio_streams_send_current_state(sim, ws_client, opcode, kind, portfolio, fmt):
    client = ws_client()
    guid = client.subscribe(opcode, portfolio=portfolio, exchange="MOEX", format=fmt)
    assert client.result(guid)["httpCode"] == 200
    records = {
        "position": sim.market.positions, "order": sim.market.orders,
        "stop_order": sim.market.stop_orders, "own_trade": sim.market.own_trades,
    }
    expected = len(records[kind](portfolio)) if kind in records else 1
    if expected == 0:  # nothing to replay: no existing=true record may arrive
        assert not [f for f in client.drain(0.3) if f.get("guid") == guid and
                    decoded(kind, f["data"], fmt).get("existing")]
        return
    first = decoded(kind, client.data(guid)[0], fmt)
    if "portfolio" in SCHEMAS[kind].by_name:
        assert first["portfolio"] == portfolio
    if "existing" in SCHEMAS[kind].by_name:
        assert first["existing"] is True


def test_own_trades_on_the_stream_lack_heavy_short_name_and_currency(sim, ws_client):
    assert sim.market.own_trades("D39004"), "the demo portfolio has trades this session"
    client = ws_client()
    guid = client.subscribe("TradesGetAndSubscribeV2", portfolio="D39004", exchange="MOEX",
                            format="Heavy")
    assert client.result(guid)["httpCode"] == 200
    data = client.data(guid)[0]
    assert "orderNo" in data and "settleDate" in data
    assert "shortName" not in data and "currency" not in data


def test_orders_filter_by_status_and_skip_history(sim, ws_client):
    client = ws_client()
    statuses = {o["status"] for o in sim.market.orders("D39004")}
    wanted = sorted(statuses)[0]
    guid = client.subscribe("OrdersGetAndSubscribeV2", portfolio="D39004", exchange="MOEX",
                            orderStatuses=[wanted], format="Heavy")
    assert client.result(guid)["httpCode"] == 200
    count = sum(1 for o in sim.market.orders("D39004") if o["status"] == wanted)
    orders = client.data(guid, count)
    assert {o["status"] for o in orders} == {wanted}
    quiet = client.subscribe("OrdersGetAndSubscribeV2", portfolio="D39004", exchange="MOEX",
                             skipHistory=True, format="Heavy")
    assert client.result(quiet)["httpCode"] == 200
    assert not any(f.get("guid") == quiet and f["data"].get("existing") for f in client.drain(0.5))


def test_unsubscribe_stops_the_stream(ws_client):
    client = ws_client()
    guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX",
                            format="Slim", frequency=10)
    client.result(guid)
    client.data(guid, 2)
    client.send({"opcode": "unsubscribe", "guid": guid, "token": client.token})
    assert client.result(guid)["httpCode"] == 200
    client.drain(0.3)  # frames already in flight
    assert not any(f.get("guid") == guid for f in client.drain(0.6))


def test_reused_guid_replaces_the_subscription(ws_client):
    client = ws_client()
    guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX",
                            format="Slim", depth=3, frequency=10)
    client.result(guid)
    client.data(guid)
    client.subscribe("OrderBookGetAndSubscribe", guid=guid, code="GAZP", exchange="MOEX",
                     format="Heavy", depth=7, frequency=500)
    client.result(guid)
    later = [f["data"] for f in client.drain(1.2) if f.get("guid") == guid]
    heavy = [d for d in later if "msTimestamp" in d]
    assert heavy and all(len(d["bids"]) == 7 for d in heavy)
    # after the replacement only Heavy books of depth 7 arrive
    first_heavy = later.index(heavy[0])
    assert all("msTimestamp" in d for d in later[first_heavy:])


def test_reused_guid_is_rejected_when_so_configured(fresh_sim, token_for, ws_client):
    server = fresh_sim(guid_reuse="reject")
    client = ws_client(server.ws_url, token_for(server))
    guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX",
                            format="Slim", depth=3, frequency=10)
    assert client.result(guid)["httpCode"] == 200
    client.data(guid)
    client.subscribe("OrderBookGetAndSubscribe", guid=guid, code="GAZP", exchange="MOEX",
                     format="Heavy", depth=7, frequency=500)
    refusal = client.result(guid)
    assert refusal["httpCode"] == 400 and guid in refusal["message"]
    # the old subscription keeps streaming: Slim books of depth 3, never the Heavy ones
    later = client.data(guid, 3, timeout=5)
    assert all("t" in d and "msTimestamp" not in d and len(d["b"]) == 3 for d in later)


def test_frequency_below_minimum_is_clamped(ws_client):
    client = ws_client()
    guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX",
                            format="Heavy", frequency=0)
    client.result(guid)
    frames = [f for f in client.drain(1.6) if f.get("guid") == guid]
    # Heavy's minimum is 500 ms: at most the snapshot plus 3 updates in 1.6 s
    assert 1 <= len(frames) <= 4


def test_ping_and_authorize(ws_client):
    client = ws_client()
    guid = client.subscribe("ping", confirm=True)
    assert client.result(guid) == {"message": "Handled successfully", "httpCode": 200, "requestGuid": guid}
    guid = client.subscribe("authorize")
    assert client.result(guid)["message"] == "The connection has been initialized."


@pytest.mark.parametrize(("message", "status", "words"), [
    ({"opcode": "NoSuchOpcode"}, 400, "opcode"),
    ({"opcode": "OrderBookGetAndSubscribe", "exchange": "MOEX"}, 400, "code"),
    ({"opcode": "OrderBookGetAndSubscribe", "code": "SBER", "exchange": "MOEX", "depth": 51}, 400, "depth"),
    ({"opcode": "OrderBookGetAndSubscribe", "code": "SBER", "exchange": "MOEX", "format": "Fat"}, 400, "format"),
    ({"opcode": "AllTradesGetAndSubscribe", "code": "SBER", "exchange": "MOEX", "depth": 5001}, 400, "depth"),
    ({"opcode": "BarsGetAndSubscribe", "code": "SBER", "exchange": "MOEX", "tf": "9zz"}, 400, "tf"),
    ({"opcode": "OrderBookGetAndSubscribe", "code": "NOSUCH", "exchange": "MOEX"}, 404, "NOSUCH"),
    ({"opcode": "PositionsGetAndSubscribeV2", "portfolio": "D99999", "exchange": "MOEX"}, 403, "D99999"),
])
def test_error_frames(ws_client, message, status, words):
    client = ws_client()
    guid = client.subscribe(message.pop("opcode"), **message)
    reply = client.result(guid)
    assert reply["httpCode"] == status and words in reply["message"]
    assert set(reply) == {"requestGuid", "httpCode", "message"}


def test_malformed_json_gets_400_and_the_connection_lives_on(ws_client):
    client = ws_client()
    client.send("{not json")
    reply = client.wait_for(lambda f: "httpCode" in f)
    assert reply == {"message": "Malformed JSON", "httpCode": 400, "requestGuid": ""}
    guid = client.subscribe("ping")
    assert client.result(guid)["httpCode"] == 200


def test_portfolio_changes_stream_live(ws_client):
    client = ws_client()
    guid = client.subscribe("PositionsGetAndSubscribeV2", portfolio="D39004", exchange="MOEX",
                            skipHistory=True, format="Slim")
    assert client.result(guid)["httpCode"] == 200
    change = decoded("position", client.data(guid, timeout=15)[0], "Slim")
    assert change["existing"] is False and change["portfolio"] == "D39004"


def test_instrument_changes_carry_only_changed_fields(fresh_sim, token_for, ws_client, monkeypatch):
    server = fresh_sim()
    real_state = server.market.instrument_state
    calls = {"n": 0}

    def moving_state(key):
        calls["n"] += 1
        state = dict(real_state(key))
        if calls["n"] > 1:  # the price band moves after the first snapshot
            state["price_max"] = state["price_max"] + 1.0
        return state

    monkeypatch.setattr(server.market, "instrument_state", moving_state)
    client = ws_client(server.ws_url, token_for(server))
    guid = client.subscribe("InstrumentsGetAndSubscribeV2", code="SBER", exchange="MOEX", format="Slim")
    client.result(guid)
    full, change = client.data(guid, 2, timeout=5)
    assert {"sym", "ex", "bd", "st", "pxmn", "pxmx"} <= set(full)
    assert change == {"sym": "SBER", "pxmx": full["pxmx"] + 1.0}
