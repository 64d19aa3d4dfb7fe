"""``record=`` on the subscription calls: the frame is recorded into the folder's one Recorder,
shared by every call naming that folder, ended for a frame by its close and flushed by the
stream's; a bad folder is refused before anything is sent."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest
from fakes import until

import invia_data
from invia_data.errors import InvalidArgument, NotFound, StreamClosed
from invia_data.record import Recorder
from invia_data.stream import Stream
from invia_data.stream.protocol import OPCODES

SUBSCRIPTIONS = list(OPCODES)   # every subscription call of inv.stream


def _client(sim):
    return invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                              ws_url=sim.ws_url)


def _read(path: Path, kind: str) -> pd.DataFrame:
    return pd.read_parquet(path / f"kind={kind}")


def _parquet_files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.parquet"))


def _messages(recorder: Recorder, kind: str, symbol: str) -> int:
    health = recorder.health()
    row = health[(health["kind"] == kind) & (health["symbol"] == symbol)]
    assert len(row) == 1, health
    return int(row["messages"].iloc[0])


def test_every_subscription_call_takes_record_by_keyword():
    for name in SUBSCRIPTIONS:
        param = inspect.signature(getattr(Stream, name)).parameters["record"]
        assert param.kind is param.KEYWORD_ONLY and param.default is None, name


def test_record_writes_each_frames_kind_into_one_recorder_flushed_by_the_stream_close(
        sim, tmp_path):
    with _client(sim) as inv:
        stream = inv.stream
        # a long batch: nothing reaches the disk before the stream's close flushes it
        recorder = stream.record(tmp_path, [], batch_seconds=3600)
        book = stream.orderbook("SBER", depth=5, record=tmp_path)
        trades = stream.all_trades("SBER", recent=20, record=str(tmp_path))
        positions = stream.positions(record=tmp_path / "sub" / "..")   # the same folder
        assert stream.recorders == {tmp_path.resolve(): recorder}
        assert stream.record(tmp_path, []) is recorder
        assert until(lambda: book.version > 3 and trades.version > 0 and positions.version > 0)
        assert set(recorder.health()["kind"]) == {"orderbook", "all_trades", "positions"}
        assert _parquet_files(tmp_path) == []
    assert stream.recorders == {}
    with pytest.raises(InvalidArgument, match="closed"):
        recorder.add(book)   # closed with the stream
    health = recorder.health()
    assert (health["pending"] == 0).all() and (health["rows"] > 0).all(), health
    written = _read(tmp_path, "orderbook")
    assert set(written["symbol"]) == {"SBER"} and written["snapshot_id"].nunique() > 3
    assert (written.groupby(["snapshot_id", "side"]).size() == 5).all()
    ids = _read(tmp_path, "all_trades")["id"]
    assert len(ids) >= 20 and ids.is_unique
    assert set(_read(tmp_path, "positions")["portfolio"]) == {inv.portfolio}
    assert recorder.rows == sum(len(_read(tmp_path, k))
                                for k in ("orderbook", "all_trades", "positions"))


def test_an_open_frame_asked_again_with_record_is_the_same_frame_recorded_once(sim, tmp_path):
    with _client(sim) as inv:
        stream = inv.stream
        book = stream.orderbook("SBER", depth=5)
        assert until(lambda: book.version > 0)
        again = stream.orderbook("SBER", depth=5, record=tmp_path)
        assert again is book and len(stream.health()) == 1   # one subscription on the wire
        assert stream.orderbook("SBER", depth=5, record=tmp_path) is book
        recorder = stream.recorders[tmp_path.resolve()]
        assert stream.record(tmp_path, [book]) is recorder
        assert len(recorder.health()) == 1   # recorded once, however often asked
        other = stream.orderbook("SBER", depth=5, record=tmp_path / "other")
        assert other is book and len(stream.recorders) == 2
        assert until(lambda: _messages(recorder, "orderbook", "MOEX:SBER") > 2)
    both = [_read(folder, "orderbook") for folder in (tmp_path, tmp_path / "other")]
    for table in both:
        sizes = table.groupby(["snapshot_id", "side"]).size()
        assert len(table) > 0 and (sizes == 5).all()   # no snapshot written twice
    # what the frame held when its recording began is the first snapshot of each recording
    assert both[0]["receive_time"].min() <= both[1]["receive_time"].min()


def test_closing_a_recorded_frame_ends_its_recording_not_the_others(sim, tmp_path):
    with _client(sim) as inv:
        stream = inv.stream
        book = stream.orderbook("SBER", depth=5, record=tmp_path)
        other = stream.orderbook("GAZP", depth=5, record=tmp_path)
        recorder = stream.recorders[tmp_path.resolve()]
        assert until(lambda: _messages(recorder, "orderbook", "MOEX:SBER") > 2)
        book.close()
        other.wait(1)   # anything in flight to the closed frame has arrived by now
        closed_at = _messages(recorder, "orderbook", "MOEX:SBER")
        seen = _messages(recorder, "orderbook", "MOEX:GAZP")
        assert until(lambda: _messages(recorder, "orderbook", "MOEX:GAZP") >= seen + 5)
        assert _messages(recorder, "orderbook", "MOEX:SBER") == closed_at
        assert stream.recorders == {tmp_path.resolve(): recorder}   # still recording GAZP
        health = recorder.health().set_index("symbol")["status"]
        assert health["MOEX:SBER"] == "closed" and health["MOEX:GAZP"] == "live"
    books = _read(tmp_path, "orderbook")
    assert set(books["symbol"]) == {"SBER", "GAZP"}


def test_a_frame_with_record_keeps_streaming_when_nobody_holds_it(sim, tmp_path):
    import gc

    with _client(sim) as inv:
        stream = inv.stream
        stream.orderbook("SBER", depth=5, record=tmp_path)   # the result is not kept
        recorder = stream.recorders[tmp_path.resolve()]
        gc.collect()
        assert until(lambda: _messages(recorder, "orderbook", "MOEX:SBER") > 3)
        assert [f.status for f in stream.frames] == ["live"]
    assert len(_read(tmp_path, "orderbook")) > 0


BAD_RECORDS = ["", "   ", True, 5, b"data", ["data"], "a\nb", "x" * 300]


@pytest.mark.parametrize("name", SUBSCRIPTIONS)
def test_a_bad_record_value_is_refused_before_anything_is_sent(counted, tmp_path, name):
    inv, adapter = counted
    sent = list(adapter.sent)
    a_file = tmp_path / "file.parquet"
    a_file.write_bytes(b"")
    call = getattr(inv.stream, name)
    subject = ("SBER",) if "symbol" in inspect.signature(call).parameters else ()
    if name == "quotes":
        subject = ("SBER",)
    for value in [*BAD_RECORDS, a_file]:
        with pytest.raises(InvalidArgument, match="record") as raised:
            call(*subject, record=value)
        message = str(raised.value)
        assert "folder" in message and len(message) < 400, message
    assert adapter.sent == sent   # not even the server's clock (bars) or the portfolios
    assert inv.stream.connection.thread is None and inv.stream.recorders == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.parquet"]


def test_a_refused_subscription_leaves_no_recorder_and_a_closed_stream_records_nothing(
        sim, tmp_path):
    with _client(sim) as inv:
        stream = inv.stream
        with pytest.raises(NotFound):
            stream.orderbook("NOSUCH", record=tmp_path / "a")
        assert stream.recorders == {}
        book = stream.orderbook("SBER", depth=5, record=tmp_path / "b")
        with pytest.raises(NotFound):   # the folder's recorder stays for the frame it holds
            stream.orderbook("NOSUCH", record=tmp_path / "b")
        assert list(stream.recorders) == [(tmp_path / "b").resolve()]
        assert until(lambda: book.version > 0)
    with pytest.raises(StreamClosed):
        stream.orderbook("SBER", record=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_record_refuses_other_options_for_a_running_recorder(sim, tmp_path):
    with _client(sim) as inv:
        recorder = inv.stream.record(tmp_path, [], batch_seconds=60)
        assert inv.stream.record(tmp_path, [], batch_seconds=60) is recorder
        with pytest.raises(InvalidArgument, match="batch_seconds.*close it first"):
            inv.stream.record(tmp_path, [], batch_seconds=1)
        recorder.close()   # a closed recorder is replaced by a new one
        fresh = inv.stream.record(tmp_path, [], batch_seconds=1)
        assert fresh is not recorder and inv.stream.recorders == {tmp_path.resolve(): fresh}


def test_a_subscription_reopened_after_its_close_is_recorded_again_without_doubles(
        sim, tmp_path):
    with _client(sim) as inv:
        stream = inv.stream
        first = stream.all_trades("SBER", recent=50, record=tmp_path)
        assert until(lambda: first.version > 0)
        first.close()
        again = stream.all_trades("SBER", recent=50, record=tmp_path)   # resends the recent 50
        assert again is not first
        assert until(lambda: len(again.df) >= 50)   # (the 50 may come in several reads)
        recorder = stream.recorders[tmp_path.resolve()]
        assert list(recorder.health()["status"]) == ["closed", "live"]
    trades = _read(tmp_path, "all_trades")
    assert len(trades) >= 50 and trades["id"].is_unique
    assert (trades["id"].diff().dropna() > 0).all()


def test_recording_all_trades_from_python_starts_with_the_recent_trades_as_the_cli_does(
        sim, tmp_path):
    from invia_data import cli

    args = cli.build_parser().parse_args(["record", "--all-trades", "SBER", "--out",
                                          str(tmp_path / "cli")])
    key = sim.market.resolve("MOEX", "SBER")
    with _client(sim) as inv:
        stream = inv.stream
        traded_before = max(t["id"] for t in sim.market.trades(key))
        recorded = stream.all_trades("SBER", record=tmp_path / "py")
        (by_cli,) = cli.open_recorded_frames(stream, args)
        assert recorded.params["recent"] == by_cli.params["recent"] == 1000
        assert stream.all_trades("SBER").params["recent"] == 0   # not recorded: from now on
        explicit = stream.all_trades("SBER", recent=5, record=tmp_path / "five")
        assert explicit.params["recent"] == 5
        assert until(lambda: len(recorded.df) > 0 and len(explicit.df) > 0)
    trades = _read(tmp_path / "py", "all_trades")
    assert (trades["id"] <= traded_before).sum() > 5   # made before it subscribed
    assert trades["id"].is_unique
    assert (_read(tmp_path / "five", "all_trades")["id"] <= traded_before).sum() <= 5
