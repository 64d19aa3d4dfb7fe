"""Widgets: the ladder HTML, book figures, and the throttled refresher driven by a fake clock."""

from __future__ import annotations

import gc
import logging
import math
import re
import threading
import time

import pandas as pd
import pytest

from invia_data import widgets as W
from invia_data.errors import InvalidArgument

pytestmark = pytest.mark.timeout(30)


def make_book(bids, asks, symbol="SBER"):
    """bids/asks: [(price, volume)] best first -> the long-form book frame."""
    rows = [("bid", i, p, v) for i, (p, v) in enumerate(bids)]
    rows += [("ask", i, p, v) for i, (p, v) in enumerate(asks)]
    df = pd.DataFrame(rows, columns=["side", "level", "price", "volume"])
    df["side"] = df["side"].astype("string")
    df["volume"] = df["volume"].astype("Int64")
    df["yield"] = float("nan")
    df.attrs.update(symbol=symbol, time=pd.Timestamp("2026-11-26 10:00", tz="UTC"))
    return df


BOOK = make_book(bids=[(250.10, 10), (250.09, 20), (250.07, 30), (250.05, 40)],
                 asks=[(250.12, 5), (250.13, 15), (250.15, 25), (250.20, 35)])


class FakeLive:
    """The LiveFrame interface, driven by hand."""

    def __init__(self, df, kind="orderbook", symbol="SBER"):
        self._df = df
        self.version = 1
        self.status = "live"
        self.age = 0.2
        self.error = None
        self.kind = kind
        self.symbol = symbol
        self.params = {}
        self.updated_at = pd.Timestamp("2026-11-26 10:00", tz="UTC")
        self.df_reads = 0

    @property
    def df(self):
        self.df_reads += 1
        return self._df

    def push(self, df=None):
        if df is not None:
            self._df = df
        self.version += 1

    def close(self):
        self.status = "closed"


def rows_of(html_text):
    """[(side, [cell texts])] of the ladder rows, top to bottom."""
    out = []
    for side, body in re.findall(r'<tr class="(\w+)"[^>]*>(.*?)</tr>', html_text):
        cells = [re.sub(r"<[^>]+>", "", c).strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", body)]
        out.append((side, cells))
    return out


@pytest.fixture
def refresher():
    return W.Refresher(clock=lambda: 0.0, autostart=False)


@pytest.fixture
def opened():
    """Widgets created in a test, closed at its end."""
    made = []
    yield made
    for w in made:
        w.close()


# --- render_ladder and book_stats -------------------------------------------------------------


def test_ladder_rows_are_asks_far_to_near_then_spread_then_bids_near_to_far():
    rows = rows_of(W.render_ladder(BOOK, depth=3))
    assert [side for side, _ in rows] == ["ask", "ask", "ask", "spread", "bid", "bid", "bid"]
    asks = [cells for side, cells in rows if side == "ask"]
    bids = [cells for side, cells in rows if side == "bid"]
    # columns: bid cum | bid volume | price | ask volume | ask cum
    assert [c[2] for c in asks] == ["250.15", "250.13", "250.12"]
    assert [c[3] for c in asks] == ["25", "15", "5"]
    assert [c[4] for c in asks] == ["45", "20", "5"]
    assert [c[2] for c in bids] == ["250.10", "250.09", "250.07"]
    assert [c[1] for c in bids] == ["10", "20", "30"]
    assert [c[0] for c in bids] == ["10", "30", "60"]
    assert all(c[3] == "" and c[4] == "" for c in bids)
    spread_row = dict(rows)["spread"][0]
    assert spread_row == "spread 0.02 · mid 250.11"


def test_ladder_levels_limit_and_depth_bars_scale_to_largest_shown_volume():
    text = W.render_ladder(BOOK, depth=2)
    assert "250.15" not in text and "250.07" not in text
    # the largest shown volume (bid level 1: 20) fills its cell; ask 5 is a quarter
    assert "#1e8e3e" in text or "30,142,62" in text
    assert re.search(r"rgba\(30,142,62,0.30\) 100.0%", text)
    assert re.search(r"rgba\(217,48,37,0.30\) 25.0%", text)


def test_ladder_sorts_by_price_when_levels_are_absent_and_shows_odd_ticks():
    df = pd.DataFrame({"side": ["ask", "bid", "ask", "bid"],
                       "price": [101.5, 100.25, 101.0, 100.5],
                       "volume": [1, 2, 3, 4]})
    rows = rows_of(W.render_ladder(df, depth=5))
    assert [c[2] for s, c in rows if s == "ask"] == ["101.50", "101.00"]
    assert [c[2] for s, c in rows if s == "bid"] == ["100.50", "100.25"]
    assert dict(rows)["spread"][0] == "spread 0.50 · mid 100.75"


def line_height(style):
    match = re.search(r"line-height:\s*([0-9.]+)(px)?", style)
    assert match, style
    return float(match.group(1)) * (1 / 12 if match.group(2) else 1)  # px at 12 px text


def test_ladder_and_tables_set_their_own_line_height():
    # ipywidgets gives an HTML widget's content a 28 px line (its buttons' height): unless the
    # table sets its own, each 12 px row is drawn 30 px tall in JupyterLab
    table_style = re.search(r'<table class="invia-ladder" style="([^"]*)"',
                            W.render_ladder(BOOK, depth=3)).group(1)
    assert line_height(table_style) < 1.6
    frame = pd.DataFrame({"price": [1.5, 2.5]}, index=pd.date_range("2026", periods=2,
                                                                     name="time"))
    html_text = W.render_table(frame)
    css = re.search(r"<style>(.*?)</style>", html_text).group(1)
    assert line_height(re.search(r"\.invia-table table\{([^}]*)\}", css).group(1)) < 1.6
    # cells get padding (JupyterLab's DataFrame styles do not reach widget content) and the
    # rules reach only the widget's own tables
    assert re.search(r"\.invia-table th,\.invia-table td\{[^}]*padding:1px 8px", css)
    assert all(rule.strip().startswith(".invia-table") for rule in re.findall(r"[^{}]+(?=\{)",
                                                                              css))
    assert html_text.startswith('<div class="invia-table"')


def test_book_stats_values():
    stats = W.book_stats(BOOK, depth=2)
    assert stats["best_bid"] == 250.10 and stats["best_ask"] == 250.12
    assert stats["spread"] == pytest.approx(0.02)
    assert stats["mid"] == pytest.approx(250.11)
    assert stats["spread_bps"] == pytest.approx(0.02 / 250.11 * 1e4)
    assert stats["bid_volume"] == 30 and stats["ask_volume"] == 20
    assert stats["imbalance"] == pytest.approx((30 - 20) / 50)
    full = W.book_stats(BOOK)
    assert full["imbalance"] == pytest.approx((100 - 80) / 180)


def test_one_sided_and_empty_books():
    one = make_book(bids=[(99.0, 5)], asks=[])
    stats = W.book_stats(one)
    assert stats["best_bid"] == 99.0
    assert math.isnan(stats["best_ask"]) and math.isnan(stats["spread"])
    assert stats["imbalance"] == 1.0
    assert "spread — · mid —" in W.render_ladder(one)
    empty = make_book(bids=[], asks=[])
    assert math.isnan(W.book_stats(empty)["imbalance"])
    assert [s for s, _ in rows_of(W.render_ladder(empty))] == ["spread"]
    assert "empty book" in W.render_ladder(empty)


@pytest.mark.parametrize("bad, depth", [
    ("not a frame", 10),
    (pd.DataFrame({"side": ["bid"], "price": [1.0]}), 10),
    (BOOK, 0),
    (BOOK, 2.5),
])
def test_render_ladder_rejects_bad_input(bad, depth):
    with pytest.raises(InvalidArgument):
        W.render_ladder(bad, depth)


def test_price_decimals():
    assert W.price_decimals([250.1, 250.12]) == 2
    assert W.price_decimals([100, 101]) == 0
    assert W.price_decimals([0.00125]) == 5
    assert W.price_decimals([]) == 0


def test_age_text_changes_at_most_once_a_second():
    assert W.format_age(None) == "no data yet"
    assert W.format_age(0.3) == W.format_age(0.9) == "updated <1 s ago"
    assert W.format_age(5.1) == W.format_age(5.9) == "updated 5 s ago"
    assert W.format_age(600) == "updated 10 min ago"


# --- the refresher with a fake clock ---------------------------------------------------------


def test_refresher_caps_rate_while_the_book_changes_every_tick(refresher, opened):
    live = FakeLive(BOOK)
    w = W.orderbook_widget(live, depth=3, max_rate=4.0, refresher=refresher)
    opened.append(w)
    step = 1 / 16  # exact in binary: 4 ticks per 1/4 s
    for k in range(17):  # t = 0 .. 1.0 s
        refresher.tick(k * step)
        live.push()
    assert w.refresh_count == 5  # t = 0, 0.25, 0.5, 0.75, 1.0
    assert w.shown_version == 17  # pushed 16 times after version 1; the last render at t=1.0
    assert live.df_reads == 5
    assert rows_of(w.ladder.value)[0][1][2] == "250.15"
    assert "imbalance" in w.stats.value


def test_refresher_skips_unchanged_frames_but_updates_the_age_badge(refresher, opened):
    live = FakeLive(BOOK)
    w = W.orderbook_widget(live, refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    assert w.refresh_count == 1 and w.badge_count == 1
    for k in range(1, 40):  # 10 s without a new version
        live.age = 0.2 + k * 0.25
        refresher.tick(k * 0.25)
    assert w.refresh_count == 1
    assert live.df_reads == 1
    assert 9 <= w.badge_count <= 11  # once a second, when the age text changes
    assert "updated 9 s ago" in w.badge.value


def test_status_change_redraws_badge(refresher, opened):
    live = FakeLive(BOOK)
    w = W.orderbook_widget(live, refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    live.status = "reconnecting"
    refresher.tick(1.0)
    assert ">reconnecting<" in w.badge.value
    live.status, live.error = "error", InvalidArgument("boom <x>")
    refresher.tick(2.0)
    assert ">error<" in w.badge.value and "boom &lt;x&gt;" in w.badge.value


def test_pause_freezes_the_ladder_until_resumed(refresher, opened):
    live = FakeLive(BOOK)
    w = W.orderbook_widget(live, depth=3, refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    before = w.ladder.value
    w.paused = True
    moved = make_book(bids=[(300.5, 1)], asks=[(301.0, 1)])
    for k in range(1, 9):
        live.push(moved)
        refresher.tick(k * 0.5)
    assert w.ladder.value == before
    assert ">paused<" in w.badge.value
    # the age is that of the frozen book (0.2 s old when read at t=0), not the live frame's
    assert live.age == 0.2 and "updated 4 s ago" in w.badge.value
    w.pause_button.value = False
    refresher.tick(5.0)
    assert "300.5" in w.ladder.value and "250.10" not in w.ladder.value
    assert ">live<" in w.badge.value


def test_depth_selector_redraws_even_when_paused(refresher, opened):
    live = FakeLive(BOOK)
    w = W.orderbook_widget(live, depth=2, refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    assert len([r for r in rows_of(w.ladder.value) if r[0] == "bid"]) == 2
    w.paused = True
    live.push(make_book(bids=[(1.0, 1)], asks=[(2.0, 1)]))
    w.depth_selector.value = 5
    refresher.tick(1.0)
    bids = [c for s, c in rows_of(w.ladder.value) if s == "bid"]
    assert [c[2] for c in bids] == ["250.10", "250.09", "250.07", "250.05"]  # the held book
    with pytest.raises(InvalidArgument):
        w.depth = -1
    w.depth = 7
    assert w.depth_selector.value == 7 and w.depth == 7


def test_closed_frame_gets_a_final_render_then_stops(refresher, opened):
    live = FakeLive(BOOK)
    w = W.orderbook_widget(live, refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    live.close()
    refresher.tick(1.0)
    assert ">closed<" in w.badge.value
    assert refresher.views() == []
    count = w.refresh_count
    live.push()
    refresher.tick(2.0)
    assert w.refresh_count == count


def test_closed_frame_disables_the_controls_and_lifts_a_pause(refresher, opened):
    live = FakeLive(BOOK)
    w = W.orderbook_widget(live, refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    w.paused = True
    assert (w.pause_button.description, w.pause_button.icon) == ("resume", "play")
    assert not w.pause_button.disabled and not w.depth_selector.disabled
    live.push(make_book(bids=[(300.5, 1)], asks=[(301.0, 1)]))
    live.close()
    refresher.tick(1.0)
    # nothing refreshes a closed frame's widget: its inputs would do nothing, the badge and
    # the ladder show the final state rather than a pause no one can lift
    assert w.pause_button.disabled and w.depth_selector.disabled
    assert ">closed<" in w.badge.value and ">paused<" not in w.badge.value
    assert "300.5" in w.ladder.value
    assert (w.pause_button.description, w.pause_button.icon) == ("pause", "pause")


def test_closed_widget_stops_refreshing(refresher):
    live = FakeLive(BOOK)
    w = W.orderbook_widget(live, refresher=refresher)
    refresher.tick(0.0)
    w.close()
    assert w.closed and refresher.views() == []
    live.push()
    refresher.tick(1.0)
    assert w.refresh_count == 1
    assert w.refresh(2.0) is False


def test_render_error_is_counted_logged_and_shown_not_raised(refresher, opened, caplog):
    live = FakeLive(pd.DataFrame({"nonsense": [1]}))
    w = W.orderbook_widget(live, refresher=refresher)
    opened.append(w)
    with caplog.at_level(logging.ERROR, logger="invia_data.widgets"):
        for k in range(48):  # 3 s at 16 ticks a second, a new version on each
            live.push()
            refresher.tick(k / 16)
    assert w.error_count == 12 and w.refresh_count == 0  # failed attempts are capped at 4 Hz
    assert isinstance(w.last_error, InvalidArgument)
    assert "render failed: InvalidArgument: order-book frame lacks" in w.badge.value
    logged = [r for r in caplog.records if r.name == "invia_data.widgets"]
    assert len(logged) == 2  # the 1st and the 10th
    assert "OrderBookWidget failed to render" in logged[0].getMessage()
    live.push(BOOK)  # the frame recovers, so does the widget
    refresher.tick(20.0)
    assert w.refresh_count == 1 and "250.12" in w.ladder.value
    assert "render failed" not in w.badge.value


def test_reading_the_frame_can_fail_too(refresher, opened):
    class Failing(FakeLive):
        @property
        def df(self):
            raise ZeroDivisionError("division by zero")

    w = W.orderbook_widget(Failing(BOOK), refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    assert w.error_count == 1 and refresher.errors == 0
    assert "ZeroDivisionError: division by zero" in w.badge.value


def test_failures_are_not_written_to_stderr_without_a_configured_handler(refresher, opened,
                                                                         capsys):
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # what a notebook without logging.basicConfig has
    try:
        assert not logging.getLogger("invia_data.widgets").hasHandlers()
        w = W.orderbook_widget(FakeLive(pd.DataFrame({"x": [1]})), refresher=refresher)
        opened.append(w)
        broken = Broken()
        refresher.register(broken)
        refresher.tick(0.0)
    finally:
        root.handlers[:] = saved
    assert w.error_count == 1 and refresher.errors == 1
    assert capsys.readouterr().err == ""


class Broken:
    def __init__(self):
        self.calls = 0

    def refresh(self, now):
        self.calls += 1
        raise RuntimeError("broken view")


def test_refresher_counts_errors_escaping_a_view(refresher, caplog):
    bad, good = Broken(), FakeView()
    refresher.register(bad)
    refresher.register(good)
    with caplog.at_level(logging.ERROR, logger="invia_data.widgets"):
        refresher.tick(0.0)
        refresher.tick(1.0)
    assert refresher.errors == 2 and bad.calls == 2 and good.calls == 2
    assert any("widget refresh failed" in r.getMessage() for r in caplog.records)


class FakeView:
    def __init__(self, keep=True):
        self.calls = 0
        self.keep = keep

    def refresh(self, now):
        self.calls += 1
        return self.keep


def test_refresher_holds_weak_references_and_drops_finished_views(refresher):
    kept, done, dropped = FakeView(), FakeView(keep=False), FakeView()
    for view in (kept, done, dropped):
        refresher.register(view)
    refresher.register(kept)  # registering twice does not double refreshes
    del dropped, view
    gc.collect()
    refresher.tick(0.0)
    assert refresher.views() == [kept]
    assert kept.calls == 1 and done.calls == 1


@pytest.mark.parametrize("rate", [0, -1, float("inf"), "4", True])
def test_bad_rate_is_rejected(refresher, rate):
    with pytest.raises(InvalidArgument):
        W.orderbook_widget(FakeLive(BOOK), max_rate=rate, refresher=refresher)
    assert refresher.views() == []


# --- table and health widgets -------------------------------------------------------------------


def test_table_widget_shows_the_tail_of_a_growing_frame(refresher, opened):
    idx = pd.date_range("2026-11-26 07:00", periods=30, freq="1min", tz="UTC", name="time")
    bars = pd.DataFrame({"close": [100.0 + i for i in range(30)]}, index=idx)
    live = FakeLive(bars, kind="bars")
    w = W.table_widget(live, max_rows=5, refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    assert "129.0" in w.table.value and "125.0" in w.table.value and "124.0" not in w.table.value
    assert "last 5 of 30 rows" in w.table.value
    assert "SBER bars" in w.title.value
    live.push(bars.iloc[:3])
    refresher.tick(1.0)
    assert "3 rows" in w.table.value and w.refresh_count == 2


def test_table_widget_shows_the_head_of_a_keyed_table(refresher, opened):
    positions = pd.DataFrame({"symbol": [f"S{i}" for i in range(8)], "qty_units": range(8)})
    w = W.table_widget(FakeLive(positions, kind="positions"), max_rows=3, refresher=refresher)
    opened.append(w)
    refresher.tick(0.0)
    assert "S0" in w.table.value and "S2" in w.table.value and "S3" not in w.table.value
    assert "first 3 of 8 rows" in w.table.value


class FakeStream:
    def __init__(self):
        self.closed = False
        self.calls = 0

    def health(self):
        self.calls += 1
        frame = pd.DataFrame({"kind": ["orderbook"], "messages": [100 * self.calls]})
        frame.attrs.update(connected=self.calls != 2, connection={"reconnects": self.calls})
        return frame


def test_health_widget_rereads_once_a_second_until_the_stream_closes(refresher, opened):
    stream = FakeStream()
    w = W.health_widget(stream, refresher=refresher)
    opened.append(w)
    for k in range(5):  # 1 s at 4 ticks a second
        refresher.tick(k * 0.25)
    assert stream.calls == 2  # t = 0, 1
    assert ">200<" in w.table.value and ">reconnecting<" in w.badge.value
    assert "connection: reconnects 2" in w.table.value
    for k in range(5, 9):
        refresher.tick(k * 0.25)
    assert stream.calls == 3
    assert ">300<" in w.table.value and ">live<" in w.badge.value
    stream.closed = True
    refresher.tick(3.0)
    assert refresher.views() == [] and ">closed<" in w.badge.value


# --- the real thread ----------------------------------------------------------------------------


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_refresher_thread_refreshes_survives_errors_and_ends_when_idle():
    refresher = W.Refresher()
    live = FakeLive(BOOK)
    bad = Broken()
    refresher.register(bad)
    w = W.orderbook_widget(live, max_rate=50.0, refresher=refresher)
    assert refresher.running
    assert wait_for(lambda: w.refresh_count >= 1)
    live.push(make_book(bids=[(10.0, 1)], asks=[(11.0, 2)]))
    assert wait_for(lambda: [c[2] for s, c in rows_of(w.ladder.value) if s == "bid"] == ["10"])
    assert refresher.errors > 0 and refresher.running
    names = [t.name for t in threading.enumerate()]
    assert names.count("invia-data-widgets") >= 1
    w.close()
    refresher.unregister(bad)
    assert refresher.join(5.0)
    # registering again restarts it
    view = FakeView()
    refresher.register(view)
    assert wait_for(lambda: view.calls > 0)
    refresher.unregister(view)
    assert refresher.join(5.0)


def test_default_refresher_is_shared():
    assert W.default_refresher() is W.default_refresher()
    a = W.orderbook_widget(FakeLive(BOOK))
    b = W.table_widget(FakeLive(BOOK, kind="all_trades"))
    try:
        views = W.default_refresher().views()
        assert a in views and b in views
    finally:
        a.close()
        b.close()
    assert a not in W.default_refresher().views()


# --- a real LiveFrame from the simulator -------------------------------------------------------


@pytest.fixture(scope="module")
def client(sim):
    import invia_data

    with invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                            ws_url=sim.ws_url) as inv:
        yield inv


def test_ladder_of_a_live_book_from_the_simulator(client):
    refresher = W.Refresher()
    book = client.stream.orderbook("SBER", depth=10)
    w = W.orderbook_widget(book, depth=5, max_rate=20.0, refresher=refresher)
    health = W.health_widget(client.stream, refresher=refresher)
    try:
        book.wait(1, timeout=10)
        assert wait_for(lambda: w.refresh_count >= 2 and ">live<" in w.badge.value)
        w.paused = True  # freeze, then compare the ladder with the book it shows
        assert wait_for(lambda: ">paused<" in w.badge.value)
        held = w._held
        rows = rows_of(w.ladder.value)
        assert [s for s, _ in rows].count("ask") == 5 and [s for s, _ in rows].count("bid") == 5
        prices = [float(c[2].replace(",", "")) for s, c in rows if s != "spread"]
        assert prices == sorted(prices, reverse=True) and len(set(prices)) == 10
        stats = W.book_stats(held, 5)
        assert prices[4] == pytest.approx(stats["best_ask"])
        assert prices[5] == pytest.approx(stats["best_bid"])
        assert stats["spread"] > 0
        w.paused = False
        assert wait_for(lambda: "SBER" in health.table.value and ">live<" in health.badge.value)
        assert w.error_count == 0 and health.error_count == 0 and refresher.errors == 0
        book.close()
        assert wait_for(lambda: ">closed<" in w.badge.value)
        assert wait_for(lambda: w not in refresher.views())
    finally:
        w.close()
        health.close()
        book.close()
    assert refresher.join(5.0)


def test_health_widget_of_a_real_stream_says_closed_and_stops(client):
    refresher = W.Refresher()
    stream = client.stream
    book = stream.orderbook("GAZP", depth=5)
    health = W.health_widget(stream, refresher=refresher)
    try:
        book.wait(1, timeout=10)
        assert wait_for(lambda: "GAZP" in health.table.value and ">live<" in health.badge.value)
        assert not stream.closed
        stream.close()
        assert stream.closed
        assert wait_for(lambda: ">closed<" in health.badge.value)
        assert wait_for(lambda: health not in refresher.views())
    finally:
        health.close()
    assert refresher.join(5.0)
