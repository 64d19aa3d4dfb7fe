"""The simulator's benchmark modes: a trades firehose whose every trade has the next id, and
paced order books that carry their send time."""

from __future__ import annotations

import time

import pytest
from conftest import WSClient, fetch_token

import invia_data.sim
from invia_data.errors import InvalidArgument


def test_trades_firehose_sends_every_next_id():
    with invia_data.sim.run(port=0, firehose=True) as sim:
        client = WSClient(sim.ws_url, fetch_token(sim))
        try:
            guid = client.subscribe("AllTradesGetAndSubscribe", code="SBER", exchange="MOEX",
                                    format="Slim", depth=0)
            trades = client.data(guid, 500, timeout=10)
        finally:
            client.close()
    ids = [t["id"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_paced_books_carry_their_send_time():
    with invia_data.sim.run(port=0, book_rate=50) as sim:
        client = WSClient(sim.ws_url, fetch_token(sim))
        try:
            guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX",
                                    format="Slim", depth=5, frequency=0)
            books = client.data(guid, 10, timeout=10)
        finally:
            client.close()
    sent = [b["st"] for b in books]
    assert sent == sorted(sent) and abs(sent[-1] / 1e9 - time.time()) < 60
    assert all(len(b["b"]) == 5 for b in books)
    with pytest.raises(InvalidArgument):
        invia_data.sim.Simulator(book_rate=0)
