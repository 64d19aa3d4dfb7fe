"""The recorder parses order books and all trades from the frames' bytes (DuckDB or Arrow),
not from the objects the stream decoded. Fed the official spec's example frames, and the same
frames as another server might write them (keys reordered, guid first, spaces, a whole number
written as a float), the bytes path must give exactly the rows of the objects path. DuckDB
parses all of them itself; Arrow refuses a float where an integer goes, and the recorder then
takes the objects path for that batch."""

from __future__ import annotations

import json
import logging

import orjson
import pandas as pd
import pyarrow as pa
import pytest

from invia_data.record import (
    FrameBytes,
    book_table,
    kind_schema,
    payload_table,
    plain_books,
    record_table,
)

from .support import ws_operations


def _engines() -> list[str]:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return ["arrow"]
    return ["arrow", "duckdb"]


def _examples(opcode: str) -> list[tuple[str, dict]]:
    op = next(o for o in ws_operations() if o["opcode"] == opcode)
    return [(e["format"], e["value"]) for e in op["examples"]]


def _variants(frame: dict) -> list[bytes]:
    """One frame as several servers could write it."""
    data = frame["data"]
    reordered = dict(reversed(list(data.items())))
    floats = {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
              for k, v in data.items()}
    for side in ("b", "a", "bids", "asks"):
        if isinstance(data.get(side), list):
            floats[side] = [{k: float(v) if k in ("v", "volume") else v for k, v in level.items()}
                            for level in data[side]]
    return [orjson.dumps(frame),
            json.dumps({"guid": frame["guid"], "data": reordered}, indent=2).encode(),
            json.dumps({"data": floats, "guid": frame["guid"]}, separators=(", ", ": ")).encode()]


TIMES = [1_700_000_000.25, 1_700_000_000.25, 1_700_000_001.5]


def _through_bytes(kind, frame, fmt, engine, caplog):
    """The frame's variants, their decoded objects, and the table the bytes path made of them
    (Arrow, and only Arrow, takes the slow path for a float where an integer goes)."""
    caplog.set_level(logging.DEBUG, "invia_data.record")
    frames = _variants(frame)
    objects = [orjson.loads(f)["data"] for f in frames]
    parsed = payload_table(kind, frames, TIMES, fmt, engine)
    assert ("slow path" in caplog.text) == (engine == "arrow")
    return frames, objects, parsed


@pytest.mark.parametrize("engine", _engines())
@pytest.mark.parametrize("fmt,frame", _examples("OrderBookGetAndSubscribe"),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_spec_books_from_bytes_equal_the_objects_path(engine, fmt, frame, caplog):
    frames, objects, parsed = _through_bytes("orderbook", frame, fmt, engine, caplog)
    parsed = plain_books(parsed).to_pandas()
    pd.testing.assert_frame_equal(parsed, plain_books(book_table(objects, TIMES, fmt)).to_pandas())
    levels = len(frame["data"].get("b", frame["data"].get("bids", [])))
    levels += len(frame["data"].get("a", frame["data"].get("asks", [])))
    assert len(parsed) == 3 * levels and parsed["price"].notna().all()
    assert parsed["exchange_time"].notna().all()


@pytest.mark.parametrize("engine", _engines())
@pytest.mark.parametrize("fmt,frame", _examples("AllTradesGetAndSubscribe"),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_spec_trades_from_bytes_equal_the_objects_path(engine, fmt, frame, caplog):
    frames, objects, parsed = _through_bytes("all_trades", frame, fmt, engine, caplog)
    decoded = record_table("all_trades", objects, TIMES, fmt).drop(columns="symbol")
    decoded = pa.Table.from_pandas(decoded, preserve_index=False).cast(kind_schema("all_trades"))
    assert parsed.schema == kind_schema("all_trades")
    pd.testing.assert_frame_equal(parsed.to_pandas(), decoded.to_pandas())
    row = parsed.to_pandas().iloc[0]
    assert row["id"] == 9237394357 and row["price"] == 267.92 and row["qty"] == 79
    assert row["time"] == pd.Timestamp("2023-12-19 07:00:08.987", tz="UTC")


@pytest.mark.parametrize("engine", _engines())
def test_a_batch_the_native_parser_refuses_still_reaches_the_dataset(engine):
    """A quantity sent as a string: Arrow refuses the batch and the objects path keeps every
    row; DuckDB reads the number inside the string."""
    good = orjson.dumps({"data": {"id": 1, "sym": "SBER", "bd": "TQBR", "q": 2, "px": 10.5,
                                  "t": 1702969208987, "oi": 0, "h": False, "s": "buy"},
                         "guid": "g"})
    odd = good.replace(b'"q":2', b'"q":"2"').replace(b'"id":1', b'"id":2')
    table = payload_table("all_trades", [good, odd], TIMES[:2], "Slim", engine).to_pandas()
    assert table["id"].tolist() == [1, 2]
    assert table["qty"].tolist() == [2, 2]


@pytest.mark.parametrize("engine", _engines())
def test_frames_that_are_not_json_data_are_left_out_and_the_rest_kept(engine, caplog):
    """Recorded books reach the recorder unparsed: a broken frame costs only itself."""
    book = {"data": {"b": [{"p": 10.0, "v": 1}], "a": [{"p": 11.0, "v": 2}],
                     "t": 1702631123780, "h": False}, "guid": "g"}
    good = orjson.dumps(book)
    broken = [good[:-9], b'{"data": [1, 2], "guid": "g"}', b'["data"]',
              good.replace(b'"h":false', b'"h":"\xff"')]   # not UTF-8
    frames = [good, *broken, good]
    times = [1.0, 2.0, 3.0, 4.0, 4.5, 5.0]
    read = FrameBytes()   # as the recorder holds them: joined per socket read
    for frame, received in zip(frames, times, strict=True):
        read.add([frame], received)
    for held in (frames, read):
        caplog.clear()
        frame = plain_books(payload_table("orderbook", held, times, "Slim", engine)).to_pandas()
        assert frame["receive_time"].astype("int64").unique().tolist() == [1_000_000, 5_000_000]
        assert frame["price"].tolist() == [10.0, 11.0, 10.0, 11.0]
        assert "4 orderbook frames were not JSON data frames" in caplog.text
