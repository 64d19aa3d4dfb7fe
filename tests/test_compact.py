"""Compacting a recording: every reader sees the same rows before and after, a compaction
stopped between its rename and its removals is finished by the next run or recorder, and only
closed days are merged unless asked."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fakes import until

import invia_data
from invia_data import compact
from invia_data.errors import InvalidArgument
from invia_data.record import Recorder

KINDS = ("orderbook", "all_trades", "bars", "quotes")
TOMORROW = time.time() + 86_400


@pytest.fixture
def recording(sim, tmp_path_factory):
    """A few seconds of SBER in many small files (a batch every 0.1 s)."""
    path = tmp_path_factory.mktemp("recording")
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        frames = [inv.stream.orderbook("SBER", depth=5), inv.stream.all_trades("SBER"),
                  inv.stream.bars("SBER", "1min"), inv.stream.quotes("SBER")]
        with Recorder(path, frames, stream=inv.stream, batch_seconds=0.1):
            def files_of_each_kind() -> bool:   # (at least two: something to merge)
                return all(len(list(path.glob(f"kind={kind}/*/*/*.parquet"))) > 1
                           for kind in KINDS)

            assert until(files_of_each_kind, timeout=30)
    return path


def _all_rows(path):
    return {kind: invia_data.read_recording(path, kind) for kind in KINDS}


def _files(path):
    return sorted(p.relative_to(path) for p in path.glob("kind=*/*/date=*/*.parquet"))


def test_every_reader_sees_the_same_rows_in_fewer_files(recording):
    before, files = _all_rows(recording), _files(recording)
    plain = pd.read_parquet(recording / "kind=all_trades")
    side = pd.read_parquet(next(recording.glob("kind=orderbook/*/date=*/*.parquet")))["side"]
    assert compact.compact_recording(recording).empty   # today's files: left alone
    assert _files(recording) == files
    summary = compact.compact_recording(recording, clock=lambda: TOMORROW)
    assert set(summary["kind"]) >= set(KINDS)
    assert (summary["merged_into"] == 1).all() and (summary["files"] > 1).all()
    after = _all_rows(recording)
    for kind in KINDS:
        pd.testing.assert_frame_equal(after[kind], before[kind], obj=kind)
    partitions = {f.parent for f in _files(recording)}
    assert len(_files(recording)) == len(partitions) < len(files)
    pd.testing.assert_frame_equal(pd.read_parquet(recording / "kind=all_trades"), plain)
    book = next(recording.glob("kind=orderbook/*/date=*/*.parquet"))
    assert pq.read_metadata(book).num_row_groups == 1
    assert pd.read_parquet(book)["side"].dtype == side.dtype   # as the recorder writes books
    with invia_data.replay(recording, speed=None) as rp:
        trades = rp.all_trades("SBER")
        assert rp.wait(30)
        assert trades.df["id"].tolist() == before["all_trades"]["id"].tolist()[-len(trades.df):]
    again = compact.compact_recording(recording, clock=lambda: TOMORROW)
    assert again.empty   # one file a partition: nothing to merge


def test_a_compaction_stopped_after_its_rename_is_finished_by_the_next_run(
        recording, monkeypatch):
    before = _all_rows(recording)

    def stopped(sources):
        raise KeyboardInterrupt

    monkeypatch.setattr(compact, "_remove", stopped)
    with pytest.raises(KeyboardInterrupt):
        compact.compact_recording(recording, today=True)
    doubled = invia_data.read_recording(recording, "all_trades")
    assert len(doubled) > len(before["all_trades"])   # a reader may see rows twice meanwhile
    monkeypatch.undo()
    with Recorder(recording):   # a recorder starting on the folder finishes it
        pass
    for kind in KINDS:
        pd.testing.assert_frame_equal(invia_data.read_recording(recording, kind), before[kind],
                                      obj=kind)
    assert not list(recording.glob("kind=*/*/date=*/.*"))   # no temporary file left


def test_an_older_file_without_a_newer_column_merges_with_nulls(recording):
    folder = next(recording.glob("kind=bars/*/date=*"))
    older = sorted(folder.glob("*.parquet"))[0]
    table = pq.read_table(older).drop_columns(["timeframe"])
    pq.write_table(table, older)
    compact.compact_recording(recording, today=True)
    rows = invia_data.read_recording(recording, "bars")
    assert rows["timeframe"].isna().sum() == table.num_rows
    assert rows["timeframe"].dropna().eq(60).all()


def test_bad_input_and_the_command(recording, tmp_path):
    with pytest.raises(InvalidArgument, match="no recording"):
        compact.compact_recording(tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="today must be True or False"):
        compact.compact_recording(recording, today="yes")
    with pytest.raises(InvalidArgument, match="inside a recording"):
        compact.compact_recording(recording / "kind=all_trades")
    command = [sys.executable, "-m", "invia_data.cli", "compact", str(recording), "--today"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "merged into" in done.stdout
    done = subprocess.run([*command[:-2], str(tmp_path / "missing")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and "no recording" in done.stderr


def test_a_recorder_merges_the_days_before_today_at_start_and_after_midnight(recording):
    """The recording's files are from today: a recorder whose clock says tomorrow, 00:00:30,
    leaves them (their day's last batches may still come); at 00:01 it merges them."""
    before, files = _all_rows(recording), _files(recording)
    midnight = (time.time() // 86_400 + 1) * 86_400
    now = [midnight + 30]
    with Recorder(recording, batch_seconds=0.05, clock=lambda: now[0]) as recorder:
        assert until(lambda: recorder._compacting is not None, timeout=20)
        until(lambda: not recorder._compacting.is_alive(), timeout=20)
        assert _files(recording) == files   # the start's run: no day before today
        now[0] = midnight + 61
        assert until(lambda: len(_files(recording)) < len(files), timeout=20)
        until(lambda: not recorder._compacting.is_alive(), timeout=20)
    assert len(_files(recording)) == len({f.parent for f in _files(recording)})
    for kind in KINDS:
        pd.testing.assert_frame_equal(invia_data.read_recording(recording, kind), before[kind],
                                      obj=kind)
    with Recorder(recording, compact=False, clock=lambda: midnight + 61) as recorder:
        assert recorder._compacting is None
    with pytest.raises(InvalidArgument, match="compact must be True or False"):
        Recorder(recording, compact="no")


def test_what_a_newcomer_got_wrong_is_refused_or_said(recording, tmp_path, sim):
    """A recording inside a recording is refused (every reader would mix them); a folder that
    is no recording is named; a day left unmerged is counted; an unrecorded timeframe and a
    replay option typo are named; the simulator is reachable as invia_data.sim."""
    with pytest.raises(InvalidArgument, match="inside the recording at .*record into that"):
        Recorder(recording / "kind=all_trades")
    deep = recording / "kind=orderbook" / "symbol=SBER"
    with pytest.raises(InvalidArgument, match=f"give its folder, '{recording}'"):
        invia_data.read_recording(deep, "orderbook")
    plain = tmp_path / "frames"
    plain.mkdir()
    with pytest.raises(InvalidArgument, match="holds no recording"):
        compact.compact_recording(plain)
    unmerged = [f for f in recording.glob("kind=*/*/date=*") if len(list(f.iterdir())) > 1]
    assert compact.compact_recording(recording).attrs["left_today"] == len(unmerged) > 0
    with pytest.raises(InvalidArgument, match="no candles of 900 s; it has 60 s"):
        invia_data.read_recording(recording, "bars", timeframe="15min")
    with pytest.raises(InvalidArgument, match=r"takes no 'sped' \(did you mean speed=\?\)"):
        invia_data.replay(recording, sped=2)
    with pytest.raises(InvalidArgument, match="records nothing"):
        invia_data.replay(recording, record=tmp_path / "again")
    assert subprocess.run([sys.executable, "-c", "import invia_data; invia_data.sim.run"],
                          timeout=120).returncode == 0


def test_closing_a_recorded_frame_puts_what_it_received_on_disk(sim, tmp_path):
    with invia_data.connect(sim.refresh_token, env=sim.url) as inv:
        inv.stream.record(tmp_path, [], batch_seconds=3600)   # nothing written by time
        trades = inv.stream.all_trades("SBER", recent=50, record=tmp_path)
        until(lambda: trades.version > 0, timeout=20)
        trades.close()
        held = trades.df
        written = invia_data.read_recording(tmp_path, "all_trades")
        assert set(held["id"]) <= set(written["id"]) and len(written) >= len(held) > 0


def test_a_command_run_in_process_leaves_the_logger_as_it_was(tmp_path, capsys):
    import logging

    from invia_data import cli

    logger = logging.getLogger("invia_data")
    before = (list(logger.handlers), logger.level)
    assert cli.main(["sim", "--port", "0", "--replay", str(tmp_path / "missing")]) == 1
    assert "no recording" in capsys.readouterr().err
    assert (list(logger.handlers), logger.level) == before
