"""No silent loss, no stalls: outages longer than a backfill page, malformed frames, gaps that
cannot be filled, slow callbacks, a slow token server, and a server that keeps ``/cws`` for
order commands. Trade ids are checked against the simulator's own."""

from __future__ import annotations

import functools
import logging
import threading
import time

import pandas as pd
import pytest
from fakes import until

import invia_data
from invia_data.auth import TokenManager
from invia_data.stream import Stream

WAIT = 15.0


_until = functools.partial(until, timeout=WAIT)


def _same_ids_as_the_server(inv, live):
    """The ids held are exactly the server's ids of that range: none lost, none twice."""
    held = live.df["id"].tolist()
    assert len(held) == len(set(held)) and held == sorted(held)
    server = inv.all_trades("SBER", from_id=held[0], to_id=held[-1])["id"].tolist()
    return held == sorted(server)


def test_an_outage_longer_than_a_page_is_backfilled_page_by_page(fresh_sim):
    sim = fresh_sim(speed=20)
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        stream = inv.stream
        stream.backfill_page = 3  # the outage spans many pages
        trades = stream.all_trades("SBER", maxlen=1_000_000)
        assert _until(lambda: len(trades.df) >= 2)
        sim.faults.refuse_connections(1.5)
        sim.faults.drop_connections()
        assert _until(lambda: len(stream.gaps()) == 1)
        gap = stream.gaps().iloc[0]
        assert gap["filled"] and pd.isna(gap["error"])
        assert gap["backfilled"] > 3 * stream.backfill_page
        trades.wait(2, timeout=WAIT)
        assert _same_ids_as_the_server(inv, trades)
        assert stream.health()["unfilled_gaps"].tolist() == [0]


def test_malformed_frames_lose_no_trade(fresh_sim):
    sim = fresh_sim(speed=20)
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        stream = inv.stream
        trades = stream.all_trades("SBER", maxlen=1_000_000)
        book = stream.orderbook("SBER", depth=3)
        assert _until(lambda: len(trades.df) >= 2)
        for kind in ("truncated", "garbage"):
            sim.faults.malformed_kind = kind
            sim.faults.malformed_rate = 0.2
            before = stream.health().attrs["connection"]["malformed"]
            assert _until(lambda: stream.health().attrs["connection"]["malformed"] >= before + 5)  # noqa: B023
        sim.faults.malformed_rate = 0.0
        trades.wait(2, timeout=WAIT)
        health = stream.health().set_index("kind")
        assert health.loc["all_trades", "gaps"] > 0  # the losses were noticed ...
        assert _until(lambda: _same_ids_as_the_server(inv, trades), step=0.2)  # ... and filled
        assert stream.health().set_index("kind").loc["all_trades", "unfilled_gaps"] == 0
        assert stream.health().attrs["connection"]["reconnects"] == 0
        assert book.status == "live"


def test_a_gap_the_backfill_cannot_fill_is_marked(fresh_sim):
    sim = fresh_sim(speed=20)
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        stream = inv.stream
        stream.backfill_page, stream.backfill_max_pages = 2, 1  # cut short on purpose
        trades = stream.all_trades("SBER", maxlen=1_000_000)
        assert _until(lambda: len(trades.df) >= 2)
        sim.faults.refuse_connections(1.5)
        sim.faults.drop_connections()
        assert _until(lambda: len(stream.gaps()) == 1)
        gap = stream.gaps().iloc[0]
        assert not gap["filled"] and "pages" in gap["error"]
        row = stream.health().iloc[0]
        assert row["unfilled_gaps"] == 1 and row["errors"] >= 1


def test_a_slow_callback_stalls_nothing_else(fresh_sim):
    sim = fresh_sim()
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    with Stream(sim.ws_url, tokens.token, frequency=10) as stream:
        slow_book = stream.orderbook("SBER", depth=3)
        other = stream.orderbook("GAZP", depth=3)
        running, overlaps, calls, other_calls = [0], [0], [0], [0]
        lock = threading.Lock()

        def slow(frame):
            with lock:
                running[0] += 1
                overlaps[0] = max(overlaps[0], running[0])
            time.sleep(0.5)
            with lock:
                running[0] -= 1
                calls[0] += 1

        slow_book.on_update(slow)
        other.on_update(lambda frame: other_calls.__setitem__(0, other_calls[0] + 1))
        assert _until(lambda: calls[0] >= 3)
        version = other.version
        other.wait(3, timeout=WAIT)
        assert other.version >= version + 3
        health = stream.health().set_index("symbol")
        # ingest went on: both frames are fresh; only the slow frame's callbacks lag
        assert health.loc["MOEX:SBER", "data_age"] < 1.0
        assert health.loc["MOEX:GAZP", "data_age"] < 1.0
        assert health.loc["MOEX:SBER", "callbacks_skipped"] > 0
        assert _until(lambda: slow_book.callback_lag > 0.1, timeout=2)
        assert other_calls[0] > calls[0]
        assert overlaps[0] == 1  # one frame's calls never overlap
        assert slow_book.status == "live" and other.status == "live"


def test_calls_and_close_do_not_wait_for_a_slow_token_renewal(fresh_sim):
    sim = fresh_sim()
    released = threading.Event()
    now = [time.time()]

    class SlowSession:
        """The token server: answers at once until ``slow``, then only when released."""
        slow = False

        def __init__(self):
            import requests
            self._session = requests.Session()

        def post(self, *args, **kwargs):
            if self.slow:
                released.wait(10)
            return self._session.post(*args, **kwargs)

    session = SlowSession()
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url,
                          session=session, clock=lambda: now[0])
    stream = Stream(sim.ws_url, tokens.token)
    try:
        book = stream.orderbook("SBER", depth=3).wait(0, timeout=WAIT)
        session.slow = True
        exp = tokens.claims["exp"]
        now[0] = exp - 5  # inside the renewal leeway, still valid
        renewing = threading.Thread(target=tokens.token, daemon=True)
        renewing.start()
        assert _until(lambda: tokens._refresh_lock.locked())
        other = stream.orderbook("GAZP", depth=3)  # its token: the one still valid
        assert other.status == "live" and not released.is_set()
        book.close()
        other.close()
        assert book.status == "closed" and other.status == "closed"
        assert not released.is_set()  # none of that waited for the token server
    finally:
        stream.close()
        released.set()
        if "renewing" in locals():
            renewing.join(15)  # the renewal ends before the simulator stops


def test_data_refused_on_cws_moves_to_ws_once(fresh_sim, caplog):
    sim = fresh_sim(faults={"refuse_data_on_cws": True})
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    assert sim.ws_url.endswith("/cws")
    with caplog.at_level(logging.INFO, logger="invia_data.stream"):
        with Stream(sim.ws_url, tokens.token) as stream:
            book = stream.orderbook("SBER", depth=3, timeout=WAIT)
            quotes = stream.quotes("GAZP", timeout=WAIT)
            book.wait(1, timeout=WAIT)
            quotes.wait(1, timeout=WAIT)
            assert stream.connection.url.endswith("/ws")
            health = stream.health()
            assert health.attrs["url"].endswith("/ws")
            assert (health["status"] == "live").all() and (health["errors"] == 0).all(), health
    moves = [r for r in caplog.records if "move to" in r.getMessage()]
    assert len(moves) == 1 and moves[0].levelno == logging.INFO, caplog.text


def test_a_pinned_cws_path_does_not_move(fresh_sim):
    sim = fresh_sim(faults={"refuse_data_on_cws": True})
    tokens = TokenManager(refresh_token=sim.refresh_token, auth_url=sim.auth_url)
    with Stream(sim.ws_url, tokens.token, path="/cws") as stream:
        with pytest.raises(invia_data.BadRequest, match="Unknown opcode"):
            stream.orderbook("SBER", depth=3, timeout=WAIT)
        assert stream.connection.url.endswith("/cws")
