"""A LiveFrame met as a DataFrame: mistakes point to .df, print shows the frame, and an order
book samples its figures over time."""

from __future__ import annotations

import functools
import gc
import math
import time

import pandas as pd
import pytest
from fakes import until

import invia_data
from invia_data.books import book_stats, sample_book
from invia_data.errors import InvalidArgument

BOOK = pd.DataFrame({"side": ["bid", "bid", "ask", "ask"], "level": [0, 1, 0, 1],
                     "price": [99.0, 98.0, 101.0, 102.0], "volume": [30, 10, 10, 50]})


def test_book_figures_follow_their_definitions():
    stats = book_stats(BOOK)
    assert stats["mid"] == 100.0 and stats["spread"] == 2.0
    # microprice: best prices weighted by the opposite queue (30 lots bid, 10 ask)
    assert stats["microprice"] == pytest.approx((99 * 10 + 101 * 30) / 40)
    bid_vwap = (99 * 30 + 98 * 10) / 40
    ask_vwap = (101 * 10 + 102 * 50) / 60
    assert stats["weighted_mid"] == pytest.approx((bid_vwap + ask_vwap) / 2)
    assert stats["imbalance"] == pytest.approx((40 - 60) / 100)
    top = book_stats(BOOK, depth=1)
    assert top["imbalance"] == pytest.approx((30 - 10) / 40)
    assert math.isnan(book_stats(BOOK[BOOK["side"] == "bid"])["microprice"])


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Book:
    symbol = "SBER"

    def __init__(self) -> None:
        self.reads = 0

    @property
    def df(self) -> pd.DataFrame:
        self.reads += 1
        frame = BOOK.copy()
        frame["price"] += self.reads  # the book moves up one each read
        frame.attrs["time"] = "2024-03-01T07:00:00+00:00"
        return frame


def test_sampling_reads_the_book_on_a_schedule_and_blocks_no_longer_than_asked():
    clock, book = FakeClock(), Book()
    frame = sample_book(book, "250ms", "1s", clock=clock, sleep=clock.sleep)
    assert len(frame) == 5 and book.reads == 5
    assert clock.now == pytest.approx(1.0) and sum(clock.slept) == pytest.approx(1.0)
    assert frame["mid"].tolist() == [101.0, 102.0, 103.0, 104.0, 105.0]
    assert {"microprice", "weighted_mid", "imbalance", "spread_bps"} <= set(frame.columns)
    assert str(frame["book_time"].dtype) == "datetime64[ns, UTC]"
    assert frame.index.is_monotonic_increasing and frame.attrs["symbol"] == "SBER"
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize("every, duration", [("0s", "1s"), ("2s", "1s"), ("soon", "1s"),
                                             ("1s", -3), (True, "1s")])
def test_sampling_refuses_durations_that_make_no_sense(every, duration):
    with pytest.raises(InvalidArgument):
        sample_book(Book(), every, duration, sleep=lambda s: None)


def test_dataframe_habits_on_a_live_frame_point_to_df(client):
    with client.stream.orderbook("SBER", 5) as book:
        book.wait(timeout=10)
        for attempt in (lambda: book.tail(), lambda: book.side, lambda: book.shape):
            with pytest.raises(AttributeError, match=r"\.df"):
                attempt()
        with pytest.raises(TypeError, match=r"live\.df\['price'\]"):
            _ = book["price"]
        with pytest.raises(TypeError, match=r"len\(live\.df\)"):
            len(book)
        assert book and len(book.df) == 10   # still true as an object
        with pytest.raises(AttributeError) as info:
            _ = book.no_such_thing
        assert ".df" not in str(info.value)
        text = str(book)
        assert text.splitlines()[0].startswith("orderbook MOEX:SBER: live, version")
        assert "price" in text and "bid" in text and len(text.splitlines()) == 12
        samples = book.sample("100ms", "300ms", depth=3)
        assert len(samples) == 4 and samples["spread"].gt(0).all()
    with client.stream.quotes("SBER") as quotes, pytest.raises(InvalidArgument, match="order books"):
        quotes.sample()
    assert invia_data.book_stats is book_stats


def test_a_cell_run_twenty_times_keeps_one_subscription_on_the_wire(sim):
    inv = invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                             ws_url=sim.ws_url)
    before = sim.active_subscriptions()
    for _ in range(20):
        live = inv.stream.orderbook("SBER", depth=10)  # the cell, run again and again
    assert sim.active_subscriptions() == before + 1
    assert "1 live frame(s), 1 subscription(s) on the wire" in repr(inv.stream)
    assert inv.stream.orderbook("sber", 10) is live  # the same request, spelt otherwise
    other = inv.stream.orderbook("SBER", depth=5)     # another depth is another subscription
    assert other is not live and sim.active_subscriptions() == before + 2
    live.close()
    again = inv.stream.orderbook("SBER", depth=10)   # closed: asking again subscribes anew
    assert again is not live and again.wait(timeout=10).status == "live"
    inv.close()


def test_sampling_a_frame_subscribed_a_moment_ago_starts_with_its_first_book(sim):
    with invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                            ws_url=sim.ws_url) as inv:
        for _ in range(3):
            fresh = inv.stream.orderbook("GAZP", depth=3)
            samples = fresh.sample("50ms", "100ms")
            assert samples["mid"].notna().all() and samples["book_time"].notna().all()
            fresh.close()


_until = functools.partial(until, timeout=10.0, between=gc.collect)


def test_a_frame_nobody_holds_any_more_is_unsubscribed(sim):
    with invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                            ws_url=sim.ws_url) as inv:
        before = sim.active_subscriptions()
        live = inv.stream.orderbook("SBER", depth=10).wait(timeout=10)
        kept = inv.stream.all_trades("SBER")
        assert sim.active_subscriptions() == before + 2
        live = inv.stream.orderbook("SBER", depth=20)  # the cell edited and run again
        assert _until(lambda: sim.active_subscriptions() == before + 2)  # depth 10 went
        assert live.wait(timeout=10).status == "live" and len(inv.stream.frames) == 2
        del live
        assert _until(lambda: sim.active_subscriptions() == before + 1)
        assert kept.wait(timeout=10).status == "live"  # the frame still held streams on
        assert [f.kind for f in inv.stream.frames] == ["all_trades"]


def test_a_frame_shown_in_a_widget_stays_subscribed(sim):
    with invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                            ws_url=sim.ws_url) as inv:
        before = sim.active_subscriptions()
        view = inv.stream.orderbook("GAZP", depth=5).widget()  # only the widget holds it
        gc.collect()
        time.sleep(0.2)
        assert sim.active_subscriptions() == before + 1
        view.close()


def test_a_bars_cell_run_again_a_minute_later_keeps_its_subscription(client, sim):
    """The default start moves with the clock; it does not make the call another one."""
    now = [sim.market.now()]
    client.stream._server_clock = lambda required: (lambda: now[0])
    first = client.stream.bars("SBER", "1min")
    now[0] += 120
    assert client.stream.bars("SBER", "1min") is first
    assert client.stream.bars("SBER", "1min", start=now[0] - 600) is not first
