"""Plots: the artists each chart draws, labels and time zones, empty frames, bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from fakes import market_time
from matplotlib.collections import LineCollection, PathCollection, PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from invia_data import frames, plots, schema  # noqa: E402
from invia_data import widgets as W  # noqa: E402
from invia_data.errors import InvalidArgument  # noqa: E402

pytestmark = pytest.mark.timeout(60)

START = 1764140400  # 2025-11-26 07:00 UTC = 10:00 Moscow


@pytest.fixture(autouse=True)
def no_figure_left_open():
    before = set(plt.get_fignums())
    yield
    left = set(plt.get_fignums()) - before
    plt.close("all")
    assert not left, f"the test left figure(s) {sorted(left)} open"


@pytest.fixture
def new_ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def make_candles(n=30, tf=60, currency="RUB"):
    rng = np.random.default_rng(7)
    close = 250 + np.cumsum(rng.normal(0, 0.1, n)).round(2)
    open_ = np.r_[250.0, close[:-1]]
    objs = [{"t": START + tf * i, "o": open_[i], "h": max(open_[i], close[i]) + 0.05,
             "l": min(open_[i], close[i]) - 0.05, "c": close[i], "v": 10 * (i + 1)}
            for i in range(n)]
    df = frames.to_frame(schema.CANDLE, objs, "Slim", index="time")
    df.attrs.update(symbol="SBER", tf=tf)
    if currency:
        df.attrs["currency"] = currency
    return df


def make_book(bids, asks, currency="RUB"):
    rows = [("bid", i, p, v) for i, (p, v) in enumerate(bids)]
    rows += [("ask", i, p, v) for i, (p, v) in enumerate(asks)]
    df = pd.DataFrame(rows, columns=["side", "level", "price", "volume"])
    df.attrs.update(symbol="SBER", time=pd.Timestamp(START, unit="s", tz="UTC"),
                    currency=currency)
    return df


def make_trades(spec):
    """spec: [(seconds after START, side, price, qty)]."""
    objs = [{"timestamp": (START + s) * 1000, "id": i, "symbol": "SBER", "board": "TQBR",
             "side": side, "price": price, "qty": qty, "oi": 0, "existing": False}
            for i, (s, side, price, qty) in enumerate(spec)]
    return frames.to_frame(schema.TRADE, objs, "Simple")


def texts(ax):
    return [t.get_text() for t in ax.texts]


def msk(seconds):
    """The matplotlib x of a UTC epoch second as Moscow wall time (UTC+3)."""
    return mdates.date2num(np.datetime64(int(seconds) + 3 * 3600, "s"))


# --- candles -----------------------------------------------------------------------------------


def test_candles_new_figure_has_price_and_volume_rows():
    df = make_candles(30)
    ax = plots.candles(df, tz="Europe/Moscow")
    try:
        fig = ax.figure
        assert len(fig.axes) == 2 and fig.axes[0] is ax
        vax = fig.axes[1]
        wicks = [c for c in ax.collections if isinstance(c, LineCollection)]
        bodies = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(wicks) == 1 and len(bodies) == 1
        assert len(wicks[0].get_segments()) == 30 and len(bodies[0].get_paths()) == 30
        assert len(vax.collections) == 1 and len(vax.collections[0].get_paths()) == 30
        assert ax.get_title() == "SBER · 1min"
        assert ax.get_ylabel() == "price, RUB"
        assert vax.get_xlabel() == "time (Europe/Moscow)" and vax.get_ylabel() == "volume, lots"
        # x is the Moscow wall time; the body is 70 % of the interval wide
        first = bodies[0].get_paths()[0].vertices
        assert (first[:, 0].min() + first[:, 0].max()) / 2 == pytest.approx(msk(START))
        assert np.ptp(first[:, 0]) == pytest.approx(0.7 * 60 / 86_400)
        # up candles green, down candles red
        up = (df["close"] >= df["open"]).to_numpy()
        colors = [to_hex(c) for c in bodies[0].get_facecolors()]
        assert colors == [plots.UP if u else plots.DOWN for u in up]
        # wick spans low..high
        seg = wicks[0].get_segments()[3]
        assert sorted(seg[:, 1]) == pytest.approx([df["low"].iat[3], df["high"].iat[3]])
        # volume bars reach the candle volume
        top = vax.collections[0].get_paths()[-1].vertices[:, 1].max()
        assert top == pytest.approx(df["volume"].iat[-1])
    finally:
        plt.close(ax.figure)


def test_candles_in_a_given_ax_put_volume_on_a_twin(new_ax):
    df = make_candles(10)
    out = plots.candles(df, ax=new_ax, tz="UTC", title="custom")
    assert out is new_ax
    fig = new_ax.figure
    assert len(fig.axes) == 2
    twin = fig.axes[1]
    assert twin.get_ylim()[1] == pytest.approx(5 * df["volume"].max())
    assert new_ax.get_xlabel() == "time (UTC)" and new_ax.get_title() == "custom"
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    x0 = body.get_paths()[0].vertices[:, 0]
    assert x0.mean() == pytest.approx(mdates.date2num(np.datetime64(START, "s")))


def test_candles_without_volume_and_interval_from_steps(new_ax):
    df = make_candles(5, tf=300, currency=None)
    del df.attrs["tf"]
    plots.candles(df, ax=new_ax, volume=False)
    assert len(new_ax.figure.axes) == 1
    assert new_ax.get_ylabel() == "price" and new_ax.get_title() == "SBER · 5min"
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    assert np.ptp(body.get_paths()[0].vertices[:, 0]) == pytest.approx(0.7 * 300 / 86_400)


def test_open_candle_of_a_live_frame_is_hollow(new_ax):
    df = make_candles(4).assign(is_closed=[True, True, True, False])
    plots.candles(df, ax=new_ax, volume=False)
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    faces = [to_hex(c) for c in body.get_facecolors()]
    edges = [to_hex(c) for c in body.get_edgecolors()]
    assert faces[3] == "#ffffff" and edges[3] in (plots.UP, plots.DOWN)
    assert faces[:3] == edges[:3]


def test_candles_skip_rows_without_prices(new_ax):
    df = make_candles(6)
    df.iloc[2, df.columns.get_loc("close")] = np.nan
    plots.candles(df, ax=new_ax, volume=False)
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    assert len(body.get_paths()) == 5


def test_candles_of_an_empty_frame_say_no_data():
    empty = frames.empty_frame(schema.CANDLE).set_index("time")
    ax = plots.candles(empty)
    try:
        assert "no data" in texts(ax)
        assert len(ax.collections) == 0
        assert ax.get_title() == "candles"
        assert ax.figure.axes[1].get_xlabel() == "time (UTC)"  # the frame's zone
    finally:
        plt.close(ax.figure)


def test_candles_of_a_multi_symbol_history_frame(new_ax):
    one = make_candles(4)
    del one.attrs["symbol"]
    stacked = pd.concat([one], keys=["GAZP"], names=["symbol", "time"])
    stacked.attrs = {"tf": "1min"}
    plots.candles(stacked, ax=new_ax, volume=False)
    assert new_ax.get_title() == "GAZP · 1min"
    two = pd.concat([one, one], keys=["GAZP", "SBER"], names=["symbol", "time"])
    with pytest.raises(InvalidArgument, match="df.loc"):
        plots.candles(two, ax=new_ax)


@pytest.mark.parametrize("bad, kwargs", [
    ("frame", {}),
    (pd.DataFrame({"open": [1.0]}), {}),
    (make_candles(3), {"tz": "Mars/Olympus"}),
    (make_candles(3), {"ax": "not an axes"}),
])
def test_candles_reject_bad_input_before_drawing(bad, kwargs):
    with pytest.raises(InvalidArgument):
        plots.candles(bad, **kwargs)
    assert plt.get_fignums() == []


# --- depth and spread --------------------------------------------------------------------------


BOOK = make_book(bids=[(250.10, 10), (250.09, 20), (250.07, 30)],
                 asks=[(250.12, 5), (250.13, 15), (250.15, 25)])


def test_depth_draws_cumulative_steps_and_mid(new_ax):
    assert plots.depth(BOOK, ax=new_ax, tz="Europe/Moscow") is new_ax
    lines = {line.get_label(): line for line in new_ax.get_lines()}
    assert set(lines) == {"bids", "asks", "mid 250.11"}
    bids, asks = lines["bids"], lines["asks"]
    assert list(bids.get_xdata()) == [250.07, 250.09, 250.10]
    assert list(bids.get_ydata()) == [60, 30, 10]
    assert list(asks.get_xdata()) == [250.12, 250.13, 250.15]
    assert list(asks.get_ydata()) == [5, 20, 45]
    assert bids.get_drawstyle() == "steps-pre" and asks.get_drawstyle() == "steps-post"
    assert list(lines["mid 250.11"].get_xdata()) == pytest.approx([250.11, 250.11])
    assert new_ax.get_xlabel() == "price, RUB"
    assert new_ax.get_ylabel() == "cumulative volume, lots"
    assert new_ax.get_title() == "SBER order book · 2025-11-26 10:00:00"
    assert len(new_ax.collections) == 2  # the two filled areas


def test_depth_title_time_in_the_chosen_zone(new_ax):
    naive = BOOK.copy()
    naive.attrs["time"] = pd.Timestamp("2025-11-26 07:00:00")  # naive times are UTC
    plots.depth(naive, ax=new_ax, tz="Asia/Yekaterinburg")
    assert new_ax.get_title() == "SBER order book · 2025-11-26 12:00:00"


def test_depth_levels_and_empty_book(new_ax):
    plots.depth(BOOK, ax=new_ax, depth=1)
    lines = {line.get_label(): line for line in new_ax.get_lines()}
    assert list(lines["bids"].get_ydata()) == [10]
    new_ax.cla()
    plots.depth(make_book([], []), ax=new_ax)
    assert "no data" in texts(new_ax) and len(new_ax.get_lines()) == 0
    with pytest.raises(InvalidArgument):
        plots.depth(BOOK, ax=new_ax, depth=0)


def test_spread_from_quotes(new_ax):
    times = pd.date_range("2025-11-26 07:00", periods=4, freq="1s", tz="UTC", name="time")
    quotes = pd.DataFrame({"bid": [100.0, 100.1, 100.2, 100.1],
                           "ask": [100.2, 100.2, 100.5, 100.3]}, index=times)
    quotes.attrs["currency"] = "RUB"
    assert plots.spread(quotes, ax=new_ax, tz="Europe/Moscow") is new_ax
    twin = new_ax.figure.axes[-1]
    mid = [line for line in new_ax.get_lines() if line.get_label() == "mid"][0]
    assert list(mid.get_ydata()) == pytest.approx([100.1, 100.15, 100.35, 100.2])
    assert list(mid.get_xdata()) == pytest.approx([msk(START + i) for i in range(4)])
    spread_line = twin.get_lines()[0]
    assert list(spread_line.get_ydata()) == pytest.approx([0.2, 0.1, 0.3, 0.2])
    assert new_ax.get_xlabel() == "time (Europe/Moscow)"
    assert twin.get_ylabel() == "spread, RUB" and new_ax.get_ylabel() == "mid, RUB"
    assert [t.get_text() for t in new_ax.get_legend().get_texts()] == ["bid-ask", "mid", "spread"]


def test_spread_from_stacked_books_and_quote_schema(new_ax):
    rows = []
    for i, (bid, ask) in enumerate([(10.0, 10.2), (10.1, 10.2)]):
        t = pd.Timestamp(START + i, unit="s", tz="UTC")
        rows += [(t, "bid", 0, bid), (t, "bid", 1, bid - 0.1), (t, "ask", 0, ask),
                 (t, "ask", 1, ask + 0.1)]
    stacked = pd.DataFrame(rows, columns=["time", "side", "level", "price"])
    plots.spread(stacked, ax=new_ax)
    assert list(new_ax.figure.axes[-1].get_lines()[0].get_ydata()) == pytest.approx([0.2, 0.1])
    new_ax.figure.axes[-1].remove()
    new_ax.cla()
    quote = frames.to_frame(schema.QUOTE, [{"symbol": "SBER", "bid": 1.0, "ask": 1.5,
                                            "ob_ms_timestamp": START * 1000}], "Simple")
    plots.spread(quote, ax=new_ax)
    assert new_ax.get_title() == "SBER spread and mid"
    assert list(new_ax.figure.axes[-1].get_lines()[0].get_ydata()) == [0.5]


def test_spread_from_a_sampled_book(new_ax):
    """book.sample() names its columns best_bid/best_ask: spread draws it as it is."""
    times = pd.date_range("2025-11-26 07:00", periods=3, freq="1s", tz="UTC", name="time")
    sampled = pd.DataFrame({"book_time": times, "best_bid": [10.0, 10.1, 10.1],
                            "best_ask": [10.2, 10.2, 10.3], "mid": [10.1, 10.15, 10.2]},
                           index=times)
    sampled.attrs = {"symbol": "SBER", "depth": None}
    plots.spread(sampled, ax=new_ax)
    assert new_ax.get_title() == "SBER spread and mid"
    assert list(new_ax.figure.axes[-1].get_lines()[0].get_ydata()) == pytest.approx(
        [0.2, 0.1, 0.2])


def test_spread_rejects_frames_without_quotes_and_handles_empty(new_ax):
    with pytest.raises(InvalidArgument):
        plots.spread(pd.DataFrame({"price": [1.0]}), ax=new_ax)
    empty = frames.empty_frame(schema.QUOTE)
    plots.spread(empty, ax=new_ax)
    assert "no data" in texts(new_ax)


# --- trades ------------------------------------------------------------------------------------


TRADES = make_trades([(0, "buy", 250.10, 10), (1, "sell", 250.09, 40), (2, "buy", 250.11, 20),
                      (3, "sell", 250.09, 5), (4, "buy", 250.10, 30)])


def test_trade_tape_one_scatter_per_side_sized_by_qty(new_ax):
    assert plots.trade_tape(TRADES, ax=new_ax, max_size=100, tz="Europe/Moscow") is new_ax
    dots = {c.get_label(): c for c in new_ax.collections if isinstance(c, PathCollection)}
    assert set(dots) == {"buy", "sell"}
    assert len(dots["buy"].get_offsets()) == 3 and len(dots["sell"].get_offsets()) == 2
    assert list(dots["sell"].get_sizes()) == pytest.approx([4 + 100, 4 + 100 * 5 / 40])
    assert list(dots["buy"].get_offsets()[:, 1]) == [250.10, 250.11, 250.10]
    assert dots["buy"].get_offsets()[0, 0] == pytest.approx(msk(START))
    assert to_hex(dots["buy"].get_facecolors()[0], keep_alpha=False) == plots.UP
    assert new_ax.get_title() == "SBER · 5 trades"
    assert new_ax.get_xlabel() == "time (Europe/Moscow)" and new_ax.get_ylabel() == "price"


def test_trade_tape_unknown_side_and_empty(new_ax):
    unknown = TRADES.assign(side=pd.array([None] * 5, dtype="string"))
    plots.trade_tape(unknown, ax=new_ax, tz="UTC")
    labels = [c.get_label() for c in new_ax.collections]
    assert labels == ["unknown"] and new_ax.get_xlabel() == "time (UTC)"
    new_ax.cla()
    plots.trade_tape(frames.empty_frame(schema.TRADE), ax=new_ax)
    assert "no data" in texts(new_ax) and new_ax.get_title() == "0 trades"


def bar_sizes(ax):
    """price centre -> total bar width of the horizontal bars."""
    out = {}
    for patch in ax.patches:
        centre = round(patch.get_y() + patch.get_height() / 2, 6)
        out[centre] = out.get(centre, 0) + patch.get_width()
    return out


def test_volume_profile_of_trades_stacks_sides_on_tick_aligned_bins(new_ax):
    plots.volume_profile(TRADES, ax=new_ax)
    sizes = {p: v for p, v in bar_sizes(new_ax).items() if v}
    assert sizes == pytest.approx({250.09: 45, 250.10: 40, 250.11: 20})
    assert len(new_ax.patches) == 2 * 3  # buys and sells, one bar per tick from 250.09 to .11
    assert "POC 250.09" in texts(new_ax)
    assert new_ax.get_xlabel() == "volume, lots" and new_ax.get_ylabel() == "price"


def test_volume_profile_of_candles_spreads_volume_over_each_range(new_ax):
    candles = pd.DataFrame({"high": [102.0, 101.0], "low": [100.0, 101.0],
                            "volume": [100, 50]})
    plots.volume_profile(candles, ax=new_ax, bins=[100.0, 101.0, 102.0])
    widths = [p.get_width() for p in new_ax.patches]
    assert widths == pytest.approx([50.0, 100.0])  # [100,101): half of 100; [101,102]: 50+50
    assert sum(widths) == pytest.approx(150)


@pytest.mark.parametrize("bins", [0, [3.0, 2.0], [1.0], True])
def test_volume_profile_rejects_bad_bins(new_ax, bins):
    with pytest.raises(InvalidArgument):
        plots.volume_profile(TRADES, ax=new_ax, bins=bins)


def test_volume_profile_needs_trades_or_candles(new_ax):
    with pytest.raises(InvalidArgument):
        plots.volume_profile(pd.DataFrame({"price": [1.0]}), ax=new_ax)
    plots.volume_profile(frames.empty_frame(schema.TRADE), ax=new_ax)
    assert "no data" in texts(new_ax)


# --- P&L ---------------------------------------------------------------------------------------


def positions(records):
    return frames.record_frame(schema.POSITION, records)


def test_pnl_bars_per_position_without_money(new_ax):
    df = positions([
        {"portfolio": "D39004", "symbol": "SBER", "unrealised_pl": 120.5, "is_currency": False},
        {"portfolio": "D39004", "symbol": "GAZP", "unrealised_pl": -40.25, "is_currency": False},
        {"portfolio": "D39004", "symbol": "RUB", "unrealised_pl": 0.0, "is_currency": True},
    ])
    df.attrs["currency"] = "RUB"
    assert plots.pnl(df, ax=new_ax) is new_ax
    bars = new_ax.patches
    assert [b.get_height() for b in bars] == pytest.approx([120.5, -40.25])
    assert [to_hex(b.get_facecolor(), keep_alpha=False) for b in bars] == [plots.UP, plots.DOWN]
    assert [t.get_text() for t in new_ax.get_xticklabels()] == ["SBER", "GAZP"]
    assert new_ax.get_title() == "unrealised P&L · D39004"
    assert new_ax.get_ylabel() == "unrealised P&L, RUB"
    assert {"120.50", "-40.25"} <= set(texts(new_ax))


def test_pnl_names_portfolios_when_several_and_handles_empty(new_ax):
    df = positions([
        {"portfolio": "D39004", "symbol": "SBER", "unrealised_pl": 1.0},
        {"portfolio": "G39004", "symbol": "SiZ6", "unrealised_pl": 2.0},
    ])
    plots.pnl(df, ax=new_ax)
    assert [t.get_text() for t in new_ax.get_xticklabels()] == ["SBER (D39004)", "SiZ6 (G39004)"]
    assert new_ax.get_title() == "unrealised P&L" and new_ax.get_ylabel() == "unrealised P&L"
    new_ax.cla()
    plots.pnl(frames.empty_frame(schema.POSITION), ax=new_ax)
    assert "no data" in texts(new_ax)
    with pytest.raises(InvalidArgument):
        plots.pnl(pd.DataFrame({"symbol": ["X"]}), ax=new_ax)


def test_every_plot_makes_its_own_figure_when_no_ax_is_given():
    made = [plots.candles(make_candles(3)), plots.depth(BOOK), plots.trade_tape(TRADES),
            plots.volume_profile(TRADES), plots.pnl(positions([{"symbol": "A",
                                                                  "unrealised_pl": 1.0}])),
            plots.spread(pd.DataFrame({"bid": [1.0], "ask": [2.0]},
                                      index=pd.DatetimeIndex([START * 10**9], tz="UTC")))]
    figures = {id(ax.figure) for ax in made}
    assert len(figures) == len(made) == len(plt.get_fignums())
    plt.close("all")


# --- the live candle chart -----------------------------------------------------------------------


class FakeBars:
    kind, symbol, params, error, age = "bars", "SBER", {"tf": 60}, None, 0.1

    def __init__(self, df):
        self.df = df
        self.version = 1
        self.status = "live"


def test_live_candles_redraws_png_when_bars_change_at_a_capped_rate():
    refresher = W.Refresher(autostart=False)
    bars = FakeBars(make_candles(10))
    w = W.candles_widget(bars, max_rate=1.0, last=5, refresher=refresher)
    try:
        assert plt.get_fignums() == []  # the widget owns a figure outside pyplot
        refresher.tick(0.0)
        first = w.image.value
        assert first[:8] == b"\x89PNG\r\n\x1a\n"
        body = [c for c in w.ax.collections if isinstance(c, PolyCollection)][0]
        assert len(body.get_paths()) == 5
        assert w.ax.get_title() == "SBER · 1min"
        bars.df, bars.version = make_candles(12), 2
        refresher.tick(0.5)  # too soon at 1 Hz
        assert w.refresh_count == 1
        refresher.tick(1.0)
        assert w.refresh_count == 2 and w.image.value != first
        assert len(w.ax.figure.axes) == 2  # redraws reuse the volume twin
        assert w.volume_ax.yaxis.get_label_position() == "right"
    finally:
        w.close()


def test_live_candles_via_plots_and_an_empty_frame(new_ax):
    refresher = W.Refresher(autostart=False)
    bars = FakeBars(frames.empty_frame(schema.CANDLE).set_index("time"))
    w = plots.live_candles(bars, ax=new_ax, refresher=refresher)
    try:
        refresher.tick(0.0)
        assert w.ax is new_ax and "no data" in texts(new_ax) and w.error_count == 0
        with pytest.raises(InvalidArgument):
            plots.live_candles(bars, ax="nope")
        with pytest.raises(InvalidArgument):
            plots.live_candles(bars, last=0)
    finally:
        w.close()


# --- against the simulator -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(sim):
    import invia_data

    with invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                            ws_url=sim.ws_url) as inv:
        yield inv


def wait_for(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_live_candles_of_simulator_bars(client):
    refresher = W.Refresher()
    bars = client.stream.bars("SBER", "1min")
    w = plots.live_candles(bars, max_rate=10.0, last=50, refresher=refresher)
    try:
        bars.wait(0, timeout=10)
        # a render of a version that holds candles (the key is (version, status))
        assert wait_for(lambda: (w.shown_version or 0) > 0)
    finally:
        w.close()
        bars.close()
    assert refresher.join(5.0)  # no redraw runs while the axes are inspected
    assert w.image.value[:4] == b"\x89PNG" and w.error_count == 0
    body = [c for c in w.ax.collections if isinstance(c, PolyCollection)][0]
    assert 1 <= len(body.get_paths()) <= 50
    assert w.ax.get_title() == "MOEX:SBER · 1min"


def test_charts_of_simulator_frames(client, sim, new_ax):
    history = client.history("SBER", tf="5min", start=market_time(sim) - pd.Timedelta(hours=6),
                             cache=False)
    plots.candles(history, ax=new_ax)
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    assert len(body.get_paths()) == history["open"].notna().sum() > 0
    for draw, frame in ((plots.depth, client.orderbook("SBER")),
                        (plots.trade_tape, client.all_trades("SBER")),
                        (plots.volume_profile, client.all_trades("SBER")),
                        (plots.pnl, client.positions())):
        for extra in new_ax.figure.axes[1:]:
            extra.remove()
        new_ax.cla()
        assert draw(frame, ax=new_ax) is new_ax
        assert "no data" not in texts(new_ax), draw.__name__
        assert new_ax.lines or new_ax.collections or new_ax.patches


def test_charts_take_a_live_frame_as_its_snapshot(client, new_ax):
    book = client.stream.orderbook("SBER", depth=5)
    trades = client.stream.all_trades("SBER", recent=20)
    try:
        trades.wait(0, timeout=10)
        assert plots.depth(book, ax=new_ax) is new_ax
        lines = {line.get_label(): line for line in new_ax.get_lines()}
        assert len(lines["bids"].get_ydata()) >= 5 and len(lines["asks"].get_ydata()) >= 5
        new_ax.cla()
        plots.trade_tape(trades, ax=new_ax)
        assert sum(len(c.get_offsets()) for c in new_ax.collections) > 0
    finally:
        book.close()
        trades.close()


def test_axes_show_the_zone_of_the_frame_unless_tz_says_otherwise(new_ax):
    utc = make_candles(3)
    plots.candles(utc, ax=new_ax, volume=False)
    first = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    left_utc = first.get_paths()[0].vertices[:, 0].min()
    assert new_ax.get_xlabel() == "time (UTC)"
    new_ax.cla()
    moscow = utc.tz_convert("Europe/Moscow")  # what inv.history(..., tz="Europe/Moscow") gives
    plots.candles(moscow, ax=new_ax, volume=False)
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    assert new_ax.get_xlabel() == "time (Europe/Moscow)"
    left_msk = body.get_paths()[0].vertices[:, 0].min()
    assert left_msk - left_utc == pytest.approx(3 / 24)  # three hours later on the wall clock
    new_ax.cla()
    plots.candles(utc, ax=new_ax, volume=False, tz="Europe/Moscow")
    again = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    assert again.get_paths()[0].vertices[:, 0].min() == pytest.approx(left_msk)


def test_a_resampled_frame_is_drawn_at_its_own_interval_not_its_stale_attrs(new_ax):
    minutes = make_candles(60)  # attrs say tf=60
    fifteen = minutes.resample("15min").agg({"open": "first", "high": "max", "low": "min",
                                             "close": "last", "volume": "sum"})
    assert fifteen.attrs["tf"] == 60  # pandas carried the attrs through resample
    plots.candles(fifteen, ax=new_ax, volume=False)
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    assert np.ptp(body.get_paths()[0].vertices[:, 0]) == pytest.approx(0.7 * 900 / 86_400)
    assert new_ax.get_title() == "SBER · 15min"


def test_gaps_between_sessions_do_not_shrink_the_candles(new_ax):
    day = make_candles(10)
    night = day.copy()
    night.index = night.index + pd.Timedelta(hours=15)  # the next session, after a gap
    plots.candles(pd.concat([day, night]), ax=new_ax, volume=False)
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    assert np.ptp(body.get_paths()[0].vertices[:, 0]) == pytest.approx(0.7 * 60 / 86_400)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_the_interval_is_read_whatever_unit_the_index_holds(new_ax, unit):
    df = make_candles(5, tf=300, currency=None)
    del df.attrs["tf"]
    df.index = df.index.as_unit(unit)  # pandas 3's date_range makes microseconds
    plots.candles(df, ax=new_ax, volume=False)
    assert new_ax.get_title() == "SBER · 5min"
    body = [c for c in new_ax.collections if isinstance(c, PolyCollection)][0]
    assert np.ptp(body.get_paths()[0].vertices[:, 0]) == pytest.approx(0.7 * 300 / 86_400)
