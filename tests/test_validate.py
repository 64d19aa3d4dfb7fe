"""The validation layer: path segments that cannot change a route, one portfolio rule for HTTP
and stream, closed clients that leave no socket behind."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import psutil
import pytest
from fakes import scripted_session

import invia_data
from invia_data import validate
from invia_data.errors import InvalidArgument
from invia_data.http import Http


@pytest.mark.parametrize("value", [".", "..", "...", "MOEX:..", "a/b", "%2e%2e", "SBER\n",
                                   "SB\x00ER", "", "  ", "x" * 10_000, "СБЕР", None, 5,
                                   b"SBER", "SB ER"])
def test_a_symbol_that_could_change_the_route_is_refused(value):
    with pytest.raises(InvalidArgument) as info:
        validate.instrument(value, "MOEX")
    assert len(str(info.value)) < 300  # a 10k-character value is not echoed whole


@pytest.mark.parametrize("value, expected", [("SBER", ("MOEX", "SBER")),
                                             ("ITS:SOGN", ("ITS", "SOGN")),
                                             (" Si-12.24 ", ("MOEX", "Si-12.24")),
                                             ("spbx:AAPL", ("SPBX", "AAPL"))])
def test_real_symbols_pass(value, expected):
    assert validate.instrument(value, "MOEX") == expected


def test_counts_and_numbers_are_strict_and_bounded():
    assert validate.count(np.int64(5), "limit") == 5
    for bad in (True, 1.5, "5", 10**30, 2**63, -1, 0, None, math.nan):
        with pytest.raises(InvalidArgument, match="limit"):
            validate.count(bad, "limit")
    assert validate.number(1.5, "price") == 1.5
    for bad in (True, "5", math.nan, math.inf, -1, 10**30):
        with pytest.raises(InvalidArgument, match="price"):
            validate.number(bad, "price")
    for bad in ("5", 0, -1, math.inf, None):
        with pytest.raises(InvalidArgument, match="timeout"):
            validate.seconds(bad)


def test_order_ids_are_positive_64_bit_integers():
    assert validate.order_id("123") == "123" and validate.order_id(7) == "7"
    for bad in ("²", "9" * 5000, "-1", "1.5", 0, 2**63, True, "", "12a"):
        with pytest.raises(InvalidArgument, match="order id"):
            validate.order_id(bad)


def test_local_paths_refuse_what_the_file_system_would(tmp_path):
    assert validate.local_path(tmp_path / "a") == tmp_path / "a"
    assert validate.local_path("~") == Path.home().absolute()
    for bad in ("", " ", "a\nb", "x" * 300, b"dir", 5, None):
        with pytest.raises(InvalidArgument, match="path"):
            validate.local_path(bad)


def test_the_http_seam_encodes_segments_and_refuses_dot_segments():
    session, adapter = scripted_session(lambda request: (200, b"[]", {}))
    http = Http("http://127.0.0.1:9", session=session, rate=None)
    for path in ("/md/v2/Securities/MOEX/..", "/md/v2/Securities/MOEX/./quotes",
                 "/md/v2/Securities//SBER", "/md/v2/Securities/MOEX/%2E%2E/x",
                 "/md/v2/Securities/MOEX/a%2Fb"):
        with pytest.raises(InvalidArgument, match="would change the route"):
            http.get(path)
    assert adapter.requests == []
    http.get("/md/v2/Securities/MOEX:SBER,MOEX:GAZP/quotes")
    http.get("/md/v2/Securities/MOEX/A B²")
    sent = [r.path_url for r in adapter.requests]
    assert sent == ["/md/v2/Securities/MOEX:SBER,MOEX:GAZP/quotes",
                    "/md/v2/Securities/MOEX/A%20B%C2%B2"]


# --- one portfolio rule for both sides ----------------------------------------------------------

def test_portfolio_defaults_and_spellings_are_the_same_over_http_and_stream(client):
    stock = client.portfolio
    derivatives = next(p for p in client.tokens.portfolios if p.startswith("75"))
    http_risk = client.forts_risk()
    assert http_risk["portfolio"].iloc[0] == derivatives
    live = client.stream.forts_risk(timeout=5)
    try:
        assert live.params["portfolio"] == derivatives
        assert live.wait(0, timeout=5).df["portfolio"].iloc[0] == derivatives
    finally:
        live.close()
    lower = stock.lower()
    assert client.positions(lower).attrs.get("portfolio", stock) == stock
    live = client.stream.positions(lower, timeout=5)
    try:
        assert live.params["portfolio"] == stock  # the token's spelling, as over HTTP
    finally:
        live.close()
    for side in (client.positions, client.stream.positions):
        for bad in ("", "D00000", "d3900", ".."):
            with pytest.raises(InvalidArgument):
                side(bad)


def test_connect_checks_its_arguments_before_starting_anything(sim):
    bad = [dict(rate_limit="100"), dict(rate_limit=0), dict(rate_limit=math.inf),
           dict(refresh_token=""), dict(token=" "), dict(ws_url="http://x"),
           dict(base_url="ftp://x"), dict(portfolio=".."), dict(session="yes"),
           dict(exchange="MOEX:.."), dict(format="")]
    for kwargs in bad:
        args = dict(refresh_token=sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                    ws_url=sim.ws_url)
        args.update(kwargs)
        with pytest.raises(InvalidArgument):
            invia_data.connect(**args)


# --- closing ------------------------------------------------------------------------------------

def _established_to(port: int) -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def test_closed_clients_leave_no_socket_open(fresh_sim):
    server = fresh_sim()
    clients = [invia_data.connect(server.refresh_token, base_url=server.url,
                                  auth_url=server.auth_url, ws_url=server.ws_url)
               for _ in range(10)]
    for inv in clients:
        inv.time()
    assert _established_to(server.port) >= 10
    for inv in clients:
        inv.close()
    assert _established_to(server.port) == 0


# --- the inputs that used to change the route or escape the tree --------------------------------

@pytest.mark.parametrize("call", [
    lambda inv: inv.security(".."), lambda inv: inv.security("."),
    lambda inv: inv.futures_quote(".."), lambda inv: inv.security("MOEX:.."),
    lambda inv: inv.position("."), lambda inv: inv.own_trades(symbol="."),
    lambda inv: inv.orderbook("a/b"), lambda inv: inv.security("x" * 10_000),
    lambda inv: inv.history("x" * 10_000, "D"), lambda inv: inv.history("SBER", "D", exchange="x" * 10_000),
    lambda inv: inv.order("²"), lambda inv: inv.order("9" * 5000),
    lambda inv: inv.risk_rates(10**30), lambda inv: inv.risk_rates(1, ticker="SBER\n"),
    lambda inv: inv.all_trades("SBER", history="yes"),
    lambda inv: inv.positions(without_currency="yes"),
    lambda inv: inv.security("SBER", exchange=""), lambda inv: inv.quotes("SBER", format=""),
    lambda inv: inv.history("SBER", "D", start="0001-01-01"),
    lambda inv: inv.history("SBER", "D", end="9999-12-31"),
    lambda inv: inv.history("SBER", 10**12),
    lambda inv: inv.stream.orderbook("SBER", timeout="5"),
    lambda inv: inv.stream.all_trades("SBER", exchange=""),
    lambda inv: inv.stream.positions("d3900"),
])
def test_inputs_a_user_gets_wrong_fail_clearly_before_any_request(counted, call):
    inv, adapter = counted
    before = len(adapter.sent)
    with pytest.raises(InvalidArgument) as info:
        call(inv)
    assert len(adapter.sent) == before
    assert len(str(info.value)) < 300


def test_a_live_frame_wait_refuses_a_timeout_that_is_not_a_number(client):
    book = client.stream.orderbook("SBER", timeout=5)
    try:
        for bad in ("5", -1, math.inf, True):
            with pytest.raises(InvalidArgument, match="timeout"):
                book.wait(timeout=bad)
        assert book.wait(0, timeout=5.0) is book
    finally:
        book.close()
