"""The simulator serving a recording (sim.run(replay=path), invia-data sim --replay): the
HTTP calls and /cws subscriptions answer the recorded day's books, trades, quotes and candles,
and refuse market data the recording does not hold."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from conftest import WSClient, fetch_token

import invia_data
import invia_data.sim
from invia_data.cli import build_parser
from invia_data.errors import InvalidArgument, NotFound

WAIT = 15.0


def _recorded(path, kind):
    return pd.read_parquet(path / f"kind={kind}", filters=[("symbol", "==", "SBER")])


def test_the_http_calls_answer_the_recorded_day(sample_recording):
    with invia_data.sim.run(port=0, replay=sample_recording, speed=50) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        end = sim.market.recording_end
        inv.orderbook("SBER", depth=1)                   # the session begins
        deadline = time.monotonic() + WAIT
        while not sim.market.ended and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.market.ended and sim.market.now() == end
        books = _recorded(sample_recording, "orderbook")
        last = books[books["snapshot_id"] == books["snapshot_id"].max()]
        book = inv.orderbook("SBER", depth=10)
        for side in ("bid", "ask"):
            got = book[book["side"] == side]
            want = last[last["side"] == side]
            assert got["price"].tolist() == want["price"].tolist()
            assert got["volume"].tolist() == want["volume"].tolist()
        assert pd.Timestamp(book.attrs["time"]) == last["exchange_time"].iloc[0]

        trades = _recorded(sample_recording, "all_trades")
        served = inv.all_trades("SBER")
        assert served["id"].tolist() == sorted(trades["id"].tolist())
        assert np.allclose(served["price"].to_numpy(), trades.sort_values("id")["price"])

        quotes = _recorded(sample_recording, "quotes").sort_values("receive_time")
        quote = inv.quotes("SBER").iloc[0]
        assert (quote["bid"], quote["ask"]) == (quotes["bid"].iloc[-1], quotes["ask"].iloc[-1])

        bars = _recorded(sample_recording, "bars").drop_duplicates("time", keep="last")
        start = bars["time"].min()
        candles = inv.history("SBER", tf="1min", start=start, cache=False)
        want = bars.set_index("time")[["open", "high", "low", "close", "volume"]]
        got = candles.loc[want.index.as_unit("ns")]
        assert np.allclose(got[["open", "high", "low", "close"]], want[["open", "high", "low", "close"]])
        assert got["volume"].tolist() == want["volume"].tolist()
        with pytest.raises(NotFound, match="holds no order book for MOEX:LKOH.*MOEX:SBER"):
            inv.orderbook("LKOH", depth=3)               # not recorded: nothing made up


def test_the_stream_plays_the_recorded_books_and_trades(sample_recording):
    books = _recorded(sample_recording, "orderbook")
    snapshots = {tuple(group["price"].head(20)) for _, group in books.groupby("snapshot_id")}
    recorded_ids = set(_recorded(sample_recording, "all_trades")["id"])
    with invia_data.sim.run(port=0, replay=sample_recording, speed=1) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        book = inv.stream.orderbook("SBER", depth=10)
        trades = inv.stream.all_trades("SBER", recent=5)
        book.wait(3, timeout=WAIT)
        assert tuple(book.df["price"]) in snapshots
        trades.wait(2, timeout=WAIT)
        assert set(trades.df["id"]) <= recorded_ids


def test_a_folder_without_a_recording_is_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="no recording"):
        invia_data.sim.Simulator(replay=tmp_path / "nothing")
    with pytest.raises(InvalidArgument, match="holds no recorded data"):
        invia_data.sim.Simulator(replay=tmp_path)
    assert build_parser().parse_args(["sim", "--replay", "data"]).replay == "data"


def test_a_folder_inside_a_recording_names_the_recording(sample_recording, capsys):
    from invia_data import cli

    for inner in (sample_recording / "kind=orderbook",
                  sample_recording / "kind=orderbook" / "symbol=SBER"):
        fix = f"is inside a recording: give its folder, {str(sample_recording)!r}"
        with pytest.raises(InvalidArgument) as caught:
            invia_data.sim.Simulator(replay=inner)
        assert fix in str(caught.value)
        assert cli.main(["sim", "--port", "0", "--replay", str(inner)]) == 1
        assert fix in capsys.readouterr().err


def test_a_book_recorded_empty_is_served_empty(tmp_path):
    import orjson

    from invia_data.record import Recorder
    from invia_data.stream import LiveFrame
    from invia_data.stream.live import FrameWriter
    from invia_data.stream.state import make_state

    live = LiveFrame("orderbook", "MOEX:SBER", {"format": "Slim", "depth": 5},
                     make_state("orderbook", "Slim"))
    books = [{"b": [{"p": 100.0, "v": 3}], "a": [{"p": 101.0, "v": 4}], "t": 1_765_436_400_000},
             {"b": [], "a": [], "t": 1_765_436_401_000}]   # the book emptied (a halt)
    with Recorder(tmp_path, [live], batch_seconds=3600):
        for i, book in enumerate(books):
            FrameWriter(live).apply([book], 1_765_436_400.5 + i, 1,
                                    [orjson.dumps({"data": book, "guid": "g"})])
    with invia_data.sim.run(port=0, replay=tmp_path, speed=20) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        _wait_past_the_end(sim, inv)
        assert inv.orderbook("SBER", depth=5).empty


def _wait_past_the_end(sim, inv, symbol="SBER"):
    inv.quotes(symbol)      # a request for market data begins the session
    deadline = time.monotonic() + WAIT
    while not sim.market.ended:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_market_data_the_recording_lacks_is_refused_over_http(sample_recording):
    with invia_data.sim.run(port=0, replay=sample_recording, speed=50) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        listed = set(inv.instruments("MOEX")["symbol"])
        assert listed == {"SBER", "GAZP"}            # the recorded ones only
        assert not inv.orderbook("SBER", depth=5).empty
        assert len(inv.quotes("GAZP")) == 1            # GAZP's quotes were recorded
        with pytest.raises(NotFound, match="holds no order book for MOEX:GAZP"):
            inv.orderbook("GAZP")                      # ... its book was not
        calls = [lambda: inv.orderbook("LKOH"), lambda: inv.all_trades("LKOH"),
                 lambda: inv.quotes("LKOH"), lambda: inv.history("LKOH", tf="1min", cache=False),
                 lambda: inv.security("LKOH")]
        for call in calls:
            with pytest.raises(NotFound, match="holds no .*MOEX:LKOH; it holds .*MOEX:SBER"):
                call()
        request = urllib.request.Request(
            f"{sim.url}/md/v2/orderbooks/MOEX/LKOH",
            headers={"Authorization": f"Bearer {fetch_token(sim)}"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=WAIT)
        assert caught.value.code == 404
        message = orjson.loads(caught.value.read())["message"]
        assert str(sample_recording) in message and "LKOH" in message


def test_a_subscription_the_recording_lacks_is_refused_on_cws(sample_recording):
    with invia_data.sim.run(port=0, replay=sample_recording, speed=50) as sim:
        client = WSClient(sim.ws_url, fetch_token(sim))
        try:
            for opcode, extra in [("OrderBookGetAndSubscribe", {"depth": 5}),
                                  ("AllTradesGetAndSubscribe", {}),
                                  ("QuotesSubscribe", {}),
                                  ("BarsGetAndSubscribe", {"tf": "60", "from": 0})]:
                guid = client.subscribe(opcode, code="LKOH", exchange="MOEX", **extra)
                reply = client.result(guid)
                assert reply["httpCode"] == 404, reply
                assert "holds no" in reply["message"] and "MOEX:SBER" in reply["message"]
            guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX",
                                    depth=5)
            assert client.result(guid)["httpCode"] == 200
        finally:
            client.close()


def test_the_end_of_the_recording_is_logged_once_and_the_session_reads_closed(
        sample_recording, caplog):
    caplog.set_level(logging.INFO, logger="invia_data.sim")
    with invia_data.sim.run(port=0, replay=sample_recording, speed=50) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        assert any("replaying" in r.getMessage() and "MOEX:SBER" in r.getMessage()
                   for r in caplog.records)
        _wait_past_the_end(sim, inv)
        deadline = time.monotonic() + WAIT
        while not sim.market.ended:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        state = inv.security("SBER")
        assert state["trading_status"].iloc[0] == 18
        # the server's time stands at the recording's end, as the data do
        end = sim.market.recording_end
        assert inv.time() == pd.Timestamp(int(end), unit="s", tz="UTC")
    ended = [r for r in caplog.records if "ended at" in r.getMessage()]
    assert len(ended) == 1 and ended[0].levelno == logging.INFO
    assert f"replay of {sample_recording} ended at" in ended[0].getMessage()
    assert "serving its last state" in ended[0].getMessage()
    assert any("stopped" in r.getMessage() for r in caplog.records)


def test_the_replayed_session_begins_at_the_first_request_for_market_data(sample_recording,
                                                                          caplog):
    from invia_data.sim.replay import ReplayMarket

    caplog.set_level(logging.INFO, logger="invia_data.sim")
    real = [1_000.0]
    market = ReplayMarket(sample_recording, speed=10, clock=lambda: real[0])
    start, end = market.recording_start, market.recording_end
    real[0] += 3_600                       # an hour before a client asks: the clock waits
    market.advance()
    assert market.now() == start and not market.began and not market.ended
    assert market.book(("MOEX", "SBER"), 5)["bids"] == []    # no book received yet
    market.market_data_requested()
    assert market.began and market.now() == start
    real[0] += 0.1
    assert market.now() == pytest.approx(start + 1.0)    # at speed 10 from there
    assert market.book(("MOEX", "SBER"), 5)["bids"]
    market.market_data_requested()                        # a second client: the same session
    real[0] += 0.1
    assert market.now() == pytest.approx(start + 2.0)
    assert not market.begin()
    real[0] += (end - start) / 10
    for _ in range(3):
        market.advance()
    assert market.ended
    began = [r for r in caplog.records if "began with the first request" in r.getMessage()]
    ended = [r for r in caplog.records if "ended at" in r.getMessage()]
    assert len(began) == 1 and len(ended) == 1


def test_a_client_that_comes_late_sees_the_recording_from_its_start(sample_recording):
    books = _recorded(sample_recording, "orderbook")
    received = books.groupby("snapshot_id")["receive_time"].first()
    with invia_data.sim.run(port=0, replay=sample_recording, speed=1) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        market = sim.market
        # listings, security info and the server time answer without beginning the session
        assert set(inv.instruments("MOEX")["symbol"]) == {"SBER", "GAZP"}
        assert inv.security("SBER")["trading_status"].iloc[0] != 18
        inv.time()
        client = WSClient(sim.ws_url, fetch_token(sim))
        try:
            assert market.now() == market.recording_start and not market.began
            guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX",
                                    depth=20, format="Simple")
            assert client.result(guid, WAIT)["httpCode"] == 200
            first = client.data(guid, count=5, timeout=WAIT)[0]
            if not first["bids"]:       # served before the recording's first book came
                first = client.data(guid, count=5, timeout=WAIT)[0]
        finally:
            client.close()
        assert market.began
        # the book of the recording's first seconds, not its last one
        early = books[books["receive_time"] <= received.iloc[0] + pd.Timedelta("2s")]
        snapshots = {tuple(group.sort_values(["side", "level"], ascending=[False, True])["price"])
                     for _, group in early.groupby("snapshot_id")}
        served = tuple(level["price"] for side in ("bids", "asks") for level in first[side])
        assert served in snapshots
        joined = market.now()
        later = WSClient(sim.ws_url, fetch_token(sim))      # a second client joins the session
        try:
            guid = later.subscribe("QuotesSubscribe", code="SBER", exchange="MOEX")
            assert later.result(guid, WAIT)["httpCode"] == 200
        finally:
            later.close()
        assert market.now() >= joined


def _spec_quote(fmt):
    """The official spec's example of a quote message (QuotesSubscribe) in ``fmt``."""
    path = Path(__file__).parents[1] / "fixtures" / "spec" / "ws_examples.json"
    for operation in orjson.loads(path.read_bytes()):
        for example in operation["examples"]:
            if example["name"] == f"ws_QuotesSubscribe_{fmt}":
                return example["value"]["data"]
    raise AssertionError(f"no quote example in {fmt}")


def _record_quotes_and_a_book(path, base):
    """SBER's quotes as Slim messages (the spec's example: no currency, no previous close or
    change; then a bid sent as null, a message leaving fields out) and GAZP's book alone."""
    from invia_data.record import Recorder
    from invia_data.stream import LiveFrame
    from invia_data.stream.live import FrameWriter
    from invia_data.stream.state import make_state

    quote = _spec_quote("Slim")
    messages = [quote,
                {**quote, "bid": None, "c": 272.1, "tst": quote["tst"] + 1},
                {**{k: v for k, v in quote.items() if k not in ("ask", "av")}, "bid": 272.05},
                {"sym": "SBER", "ex": "MOEX", "c": 272.2, "tst": quote["tst"] + 3, "oi": None}]
    quotes = LiveFrame("quotes", "MOEX:SBER", {"format": "Slim", "symbols": ["MOEX:SBER"]},
                       make_state("quotes", "Slim"))
    book = LiveFrame("orderbook", "MOEX:GAZP", {"format": "Slim", "depth": 5},
                     make_state("orderbook", "Slim"))
    gazp = {"b": [{"p": 160.1, "v": 7}], "a": [{"p": 160.2, "v": 9}], "t": int(base * 1000)}
    with Recorder(path, [quotes, book], batch_seconds=3600):
        FrameWriter(book).apply([gazp], base, 1, [orjson.dumps({"data": gazp, "guid": "g"})])
        for i, message in enumerate(messages):
            FrameWriter(quotes).apply([message], base + 0.5 + i * 0.5)
    return [base + 0.5 + i * 0.5 for i in range(len(messages))]


def test_a_replayed_quote_holds_the_recorded_values_only(tmp_path):
    from invia_data.frames import to_frame
    from invia_data.schema import QUOTE
    from invia_data.sim import encode
    from invia_data.sim.replay import ReplayMarket

    base = 1_765_436_400.0   # 2025-12-11 07:00 UTC
    times = _record_quotes_and_a_book(tmp_path, base)
    real = [1_000.0]
    market = ReplayMarket(tmp_path, clock=lambda: real[0])
    market.begin()
    with invia_data.replay(tmp_path, paused=True) as rp:
        replayed = rp.quotes("SBER")
        for t in times:
            at = min(t + 0.1, market.recording_end)
            real[0] = 1_000.0 + at - market.recording_start
            rp.seek(pd.Timestamp(at, unit="s", tz="UTC"))
            for fmt in ("Simple", "Slim", "Heavy"):
                wire = encode.encode("quote", market.quote(("MOEX", "SBER")), fmt)
                pd.testing.assert_frame_equal(to_frame(QUOTE, [wire], fmt), replayed.df,
                                              obj=f"{fmt} quote at {t}")
        last = replayed.df.iloc[0]
    # never recorded: null, as the API sends missing data (no synthetic value)
    assert last[["currency", "prev_close_price", "change", "change_percent"]].isna().all()
    assert pd.isna(last["open_interest"]) and pd.isna(last["yield"])
    assert last["bid"] == 272.05 and last["ask"] == 272 and last["last_price"] == 272.2
    # an instrument whose book alone was recorded: its best levels, nothing else
    gazp = market.quote(("MOEX", "GAZP"))
    assert (gazp["bid"], gazp["bid_vol"], gazp["ask"], gazp["ask_vol"]) == (160.1, 7, 160.2, 9)
    assert gazp["symbol"] == "GAZP" and gazp["ob_time"] == int(base * 1000)
    assert {k for k, v in gazp.items() if v is not None} == {
        "symbol", "exchange", "bid", "bid_vol", "ask", "ask_vol", "ob_time"}


def test_the_server_serves_the_quote_the_python_replay_shows(tmp_path):
    base = 1_765_436_400.0
    _record_quotes_and_a_book(tmp_path, base)
    with invia_data.replay(tmp_path, paused=True) as rp:
        replayed = rp.quotes("SBER")
        rp.seek(rp.end)
        want = replayed.df
    with invia_data.sim.run(port=0, replay=tmp_path, speed=20) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        _wait_past_the_end(sim, inv, "SBER")
        pd.testing.assert_frame_equal(inv.quotes("SBER"), want)
        streamed = inv.stream.quotes("SBER", format="Simple")
        streamed.wait(0, timeout=WAIT)
        pd.testing.assert_frame_equal(streamed.df, want)
        assert pd.isna(streamed.df["prev_close_price"].iloc[0])


def _candles_before(path, moment):
    """The recorded minutes of SBER over by ``moment`` (unix seconds), their times ascending."""
    bars = _recorded(path, "bars")
    over = bars["time"] + pd.Timedelta("60s") <= pd.Timestamp(moment, unit="s", tz="UTC")
    return sorted(bars.loc[over, "time"].unique())


def test_the_candles_over_before_the_recording_are_served_from_its_first_message(
        sample_recording):
    from invia_data.sim.replay import ReplayMarket

    real = [1_000.0]
    market = ReplayMarket(sample_recording, clock=lambda: real[0])
    start = market.recording_start
    history = _candles_before(sample_recording, start)
    assert len(history) > 20      # the recorder's history batch, received after the first message
    market.market_data_requested()
    served = market.candles(("MOEX", "SBER"), 60, int(start) - 500 * 60, int(start) + 1)
    assert pd.to_datetime(served["time"], unit="s", utc=True).tolist() == history


def test_a_default_bars_stream_shows_the_recorded_candles_up_to_the_replay_time(
        sample_recording):
    recorded = sorted(_recorded(sample_recording, "bars")["time"].unique())
    with invia_data.sim.run(port=0, replay=sample_recording, speed=1) as sim, \
            invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        bars = inv.stream.bars("SBER", "1min")        # the request that begins the session
        deadline = time.monotonic() + WAIT
        while len(bars.df) < len(recorded) and time.monotonic() < deadline:
            bars.wait(1, timeout=WAIT)
        assert bars.df.index.tolist() == recorded
        assert bars.df["is_closed"].iloc[:-1].all()


def test_the_clock_stops_at_the_recordings_end(sample_recording):
    from invia_data.sim.replay import ReplayMarket

    real = [1_000.0]
    market = ReplayMarket(sample_recording, speed=10, clock=lambda: real[0])
    end = market.recording_end
    market.market_data_requested()
    real[0] += (end - market.recording_start) / 10 - 0.1      # one market second before it
    assert market.now() == pytest.approx(end - 1)
    assert market.trading_status(("MOEX", "SBER"))["trading_status"] != 18
    real[0] += 3_600                                           # an hour of real time later
    market.advance()
    assert market.now() == end and market.ended
    assert market.trading_status(("MOEX", "SBER"))["trading_status"] == 18
    served = market.candles(("MOEX", "SBER"), 60, int(end) - 3_600, int(end) + 1)
    recorded = sorted(_recorded(sample_recording, "bars")["time"].unique())
    assert pd.to_datetime(served["time"], unit="s", utc=True).tolist() == recorded


def _trades_received_after_the_first_book(path, tmp_path):
    """The sample recording with its trades received 0.2 s after its first book (as the
    recorder writes a book subscribed first): the recent trades sent on subscription, made
    before the recording began, then reach the replayed server a moment into the session."""
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    copy = tmp_path / "recording"
    shutil.copytree(path, copy)
    for file in copy.glob("kind=all_trades/*/*/*.parquet"):
        table = pq.read_table(file)
        column = table.schema.get_field_index("receive_time")
        later = pc.add(table.column(column), pa.scalar(200_000, type=pa.duration("us")))
        pq.write_table(table.set_column(column, table.field(column), later), file)
    return copy


def test_the_trades_made_before_the_recording_are_served_from_its_first_message(
        sample_recording, tmp_path):
    """An all-trades subscription that begins the session (the first thing a client asks)
    gets its recent= trades as the recorded ones made before the recording (existing), not
    every recorded trade as a live one a moment later."""
    from invia_data.sim.replay import ReplayMarket

    recording = _trades_received_after_the_first_book(sample_recording, tmp_path)
    trades = _recorded(recording, "all_trades").sort_values("id")
    before = trades[trades["time"] < trades["receive_time"].min() - pd.Timedelta("0.2s")]
    assert len(before) >= 10
    market = ReplayMarket(recording, clock=lambda: 1_000.0)
    market.market_data_requested()
    served = market.trades(("MOEX", "SBER"), last=10)
    assert [t["id"] for t in served] == before["id"].iloc[-10:].tolist()
    with invia_data.sim.run(port=0, replay=recording, speed=1) as sim:
        client = WSClient(sim.ws_url, fetch_token(sim))
        try:
            guid = client.subscribe("AllTradesGetAndSubscribe", code="SBER", exchange="MOEX",
                                    depth=5, format="Simple")
            assert client.result(guid, WAIT)["httpCode"] == 200
            first = client.data(guid, count=5, timeout=WAIT)
        finally:
            client.close()
    assert [t["existing"] for t in first[:5]] == [True] * 5
    assert [t["id"] for t in first[:5]] == before["id"].iloc[-5:].tolist()
