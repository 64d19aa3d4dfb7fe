"""Each fault of the switchboard, on simulators of their own; plus TLS, firehose and the
slow-consumer drop."""

from __future__ import annotations

import logging
import socket
import time

import orjson
import pytest
import requests
import websocket

from invia_data.errors import InvalidArgument
from invia_data.sim import Faults


def book_request(client, **fields):
    return client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX",
                            format="Slim", frequency=10, **fields)


def wait_closed(client, timeout=10.0):
    """Read until the server's close or reset shows up; True if it did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.ws.settimeout(0.5)
            client.ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return True
    return False


def test_drop_connections_now(fresh_sim, token_for, ws_client):
    server = fresh_sim()
    clients = [ws_client(server.ws_url, token_for(server)) for _ in range(2)]
    for client in clients:
        client.result(book_request(client))
    server.faults.drop_connections()
    assert all(wait_closed(c, 5) for c in clients)
    again = ws_client(server.ws_url, token_for(server))
    assert again.result(book_request(again))["httpCode"] == 200


def test_drop_every_n_seconds(fresh_sim, token_for, ws_client):
    server = fresh_sim(faults={"drop_every": 0.4})
    for _ in range(2):
        client = ws_client(server.ws_url, token_for(server))
        client.result(book_request(client))
        assert wait_closed(client, 5)


def test_refuse_new_connections_for_a_while(fresh_sim, token_for, ws_client):
    server = fresh_sim()
    server.faults.refuse_connections(0.8)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        ws_client(server.ws_url, token_for(server))
    assert refused.value.status_code == 503
    time.sleep(0.9)
    client = ws_client(server.ws_url, token_for(server))
    assert client.result(book_request(client))["httpCode"] == 200


@pytest.mark.parametrize("status", [429, 503])
def test_http_errors_for_every_request(fresh_sim, token_for, status):
    server = fresh_sim(faults={"http_error_rate": 1.0, "http_error_status": status, "retry_after": 2})
    token = token_for(server)  # the token server itself is not affected
    response = requests.get(f"{server.url}/md/v2/orderbooks/MOEX/SBER",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == status
    assert "message" in response.json()
    if status == 429:
        assert response.headers["Retry-After"] == "2"
    server.faults.reset()
    assert requests.get(f"{server.url}/md/v2/time", timeout=10).status_code == 200


def test_http_error_fraction_is_seeded(fresh_sim):
    patterns = []
    for _ in range(2):
        server = fresh_sim(seed=7, faults=Faults(seed=7, http_error_rate=0.5))
        patterns.append([requests.get(f"{server.url}/md/v2/time", timeout=10).status_code
                         for _ in range(40)])
    assert patterns[0] == patterns[1]
    assert 5 < patterns[0].count(429) < 35 and set(patterns[0]) == {200, 429}


def test_added_latency(fresh_sim):
    server = fresh_sim(faults={"latency": 1.5})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{server.url}/md/v2/time", timeout=0.5)
    server.faults.latency = 0
    assert requests.get(f"{server.url}/md/v2/time", timeout=5).status_code == 200


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_malformed_data_frames(fresh_sim, token_for, kind):
    server = fresh_sim(faults={"malformed_rate": 1.0, "malformed_kind": kind})
    ws = websocket.create_connection(server.ws_url, timeout=5)
    try:
        ws.send(orjson.dumps({"opcode": "OrderBookGetAndSubscribe", "guid": "g", "code": "SBER",
                              "exchange": "MOEX", "format": "Slim", "frequency": 10,
                              "token": token_for(server)}).decode())
        assert orjson.loads(ws.recv())["httpCode"] == 200  # results stay intact
        for _ in range(3):
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(ws.recv())
    finally:
        ws.close()


def test_stall_keeps_the_connection_but_stops_data(fresh_sim, token_for, ws_client):
    server = fresh_sim()
    client = ws_client(server.ws_url, token_for(server))
    guid = book_request(client)
    client.result(guid)
    client.data(guid, 2)
    server.faults.stalled = True
    client.drain(0.3)
    assert not [f for f in client.drain(0.7) if f.get("guid") == guid]
    ping = client.subscribe("ping")
    assert client.result(ping)["httpCode"] == 200
    server.faults.stalled = False
    assert client.data(guid, 1, timeout=5)


def test_slow_consumer_with_too_many_unsent_messages_is_dropped(fresh_sim, token_for, ws_client,
                                                               caplog):
    caplog.set_level(logging.INFO, logger="invia_data.sim")
    server = fresh_sim()
    client = ws_client(server.ws_url, token_for(server),
                       sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    for i in range(100):
        client.subscribe("OrderBookGetAndSubscribe", guid=f"g{i}", code=("SBER", "GAZP")[i % 2],
                         exchange="MOEX", format="Slim", depth=50, frequency=10)
    time.sleep(3.0)  # not reading: the server's queue for this socket passes 5000 messages
    assert wait_closed(client, 20)
    assert "more than 5000 unsent messages" in caplog.text


def test_faults_validate_their_settings():
    faults = Faults()
    with pytest.raises(InvalidArgument):
        faults.http_error_rate = 2
    with pytest.raises(InvalidArgument):
        faults.http_error_status = 404
    with pytest.raises(InvalidArgument):
        Faults(no_such_fault=1)
    faults.configure(latency=0.1, stalled=True)
    assert "latency=0.1" in repr(faults)
    faults.reset()
    assert faults.latency == 0 and faults.stalled is False


def test_tls(fresh_sim, token_for):
    server = fresh_sim(tls=True)
    assert server.url.startswith("https://") and server.ws_url.startswith("wss://")
    response = requests.post(f"{server.auth_url}/refresh", params={"token": server.refresh_token},
                             verify=server.cert_path, timeout=10)
    token = response.json()["AccessToken"]
    ws = websocket.create_connection(server.ws_url, timeout=5, sslopt={"ca_certs": server.cert_path})
    try:
        ws.send(orjson.dumps({"opcode": "ping", "guid": "p", "token": token}).decode())
        assert orjson.loads(ws.recv())["httpCode"] == 200
    finally:
        ws.close()


def test_firehose_sends_distinct_books_as_fast_as_read(fresh_sim, token_for):
    server = fresh_sim(firehose=True)
    ws = websocket.create_connection(server.ws_url, timeout=5, skip_utf8_validation=True)
    try:
        ws.send(orjson.dumps({"opcode": "OrderBookGetAndSubscribe", "guid": "f", "code": "SBER",
                              "exchange": "MOEX", "format": "Slim", "depth": 10,
                              "token": token_for(server)}).decode())
        assert orjson.loads(ws.recv())["httpCode"] == 200
        books = [orjson.loads(ws.recv())["data"] for _ in range(2000)]
    finally:
        ws.close()
    assert books[0]["h"] is True and all(b["h"] is False for b in books[1:])
    assert all(len(b["b"]) == 10 and len(b["a"]) == 10 for b in books)
    assert len({orjson.dumps(b) for b in books[1:]}) > 200
