"""history(): range splitting, parsing, validation, and the whole call against the simulator."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest

from invia_data import history as history_module
from invia_data.errors import APIError, InvalidArgument
from invia_data.frames import to_frame
from invia_data.history import (
    candle_frame,
    default_window,
    history,
    parse_history,
    split_range,
)
from invia_data.schema import CANDLE

DTYPES = {"open": "float64", "high": "float64", "low": "float64", "close": "float64",
          "volume": "int64"}
T0 = 1_701_068_400  # 2023-11-27 07:00 UTC


class NoRequests:
    """An Http stand-in that fails the test on any request."""

    base_url = "http://127.0.0.1:9"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get(self, path, params=None, **_):
        self.calls.append(path)
        raise AssertionError(f"unexpected request {path}")

    get_bytes = get


def sample_records(count: int = 5) -> list[dict]:
    return [dict(time=T0 + 60 * i, open=287.41 + i, high=287.9 + i, low=287.0 + i,
                 close=287.79 + i, volume=174_466 + i) for i in range(count)]


def body(records: list[dict], fmt: str, list_key: str | None = None, **extra) -> bytes:
    key = list_key or ("h" if fmt == "Slim" else "history")
    return orjson.dumps({key: [CANDLE.encode(r, fmt) for r in records], **extra})


# --- pure parts ---

def test_split_range_covers_the_range_in_bounded_pieces() -> None:
    pieces = split_range(100, 100 + 60 * 2500 + 7, 60, candles_per_request=1000)
    assert pieces[0][0] == 100 and pieces[-1][1] == 100 + 60 * 2500 + 7
    assert all(b - a <= 60 * 1000 for a, b in pieces)
    assert all(pieces[i][1] == pieces[i + 1][0] for i in range(len(pieces) - 1))
    assert len(pieces) == 3
    assert split_range(5, 5, 60) == []


def test_default_window_grows_with_the_timeframe() -> None:
    windows = [default_window(s) for s in (15, 60, 3600, 86_400, 604_800)]
    assert windows == sorted(windows)
    assert windows[1] == 7 * 86_400 and windows[3] == 365 * 86_400


@pytest.mark.parametrize("fmt", ["Simple", "Slim", "Heavy"])
def test_parse_history_matches_the_generic_converter(fmt: str) -> None:
    records = sample_records()
    columns, nxt = parse_history(body(records, fmt, next=T0 + 999, prev=None), fmt)
    assert nxt == T0 + 999
    expected = to_frame(CANDLE, [CANDLE.encode(r, fmt) for r in records], fmt, index="time")
    pd.testing.assert_frame_equal(candle_frame(columns), expected)


def test_parse_history_accepts_both_slim_list_keys_and_float_volumes() -> None:
    records = sample_records(3)
    by_h, _ = parse_history(body(records, "Slim"), "slim")
    by_history, _ = parse_history(body(records, "Slim", list_key="history"), "slim")
    wire = [dict(CANDLE.encode(r, "Slim"), v=float(r["volume"])) for r in records]
    floats, _ = parse_history(orjson.dumps({"h": wire, "next": None}), "Slim")
    for name in by_h:
        assert by_h[name].tolist() == by_history[name].tolist() == floats[name].tolist()
    assert floats["volume"].dtype == "int64"


def test_parse_history_of_pretty_printed_json() -> None:
    records = sample_records(3)
    pretty = orjson.dumps({"h": [CANDLE.encode(r, "Slim") for r in records]},
                          option=orjson.OPT_INDENT_2)
    columns, nxt = parse_history(pretty, "Slim")
    assert columns["time"].tolist() == [r["time"] for r in records] and nxt is None


def test_parse_history_rejects_a_body_that_is_not_json() -> None:
    with pytest.raises(APIError, match="not JSON"):
        parse_history(b"<html>busy</html>", "Slim")


def test_empty_candle_frame_has_the_schema() -> None:
    columns, _ = parse_history(b'{"h": [], "next": null, "prev": null}', "Slim")
    frame = candle_frame(columns)
    assert frame.empty and frame.index.name == "time"
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert {k: str(v) for k, v in frame.dtypes.items()} == DTYPES


# --- bad input: an exception before any request ---

@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("SBER", "7 fortnights"), {}, "timeframe"),
    (("SBER", 0), {}, "timeframe"),
    (("SBER", "1min", "2024-02-01", "2024-01-01"), {}, "after"),
    (("SBER", "1min", "not a date"), {}, "start"),
    (("SBER",), {"format": "Medium"}, "format"),
    (([],), {}, "empty"),
    ((["SBER", 7],), {}, "tickers"),
    (("  ",), {}, "tickers"),
    (("SBER",), {"tz": "Mars/Olympus"}, "zone"),
    (("SBER",), {"exchange": ""}, "exchange"),
    (("SBER",), {"max_workers": 0}, "max_workers"),
    (("SBER",), {"progress": "yes"}, "progress"),
    (("SBER",), {"cache": "no"}, "cache"),
])
def test_bad_input_raises_before_any_request(args, kwargs, match) -> None:
    http = NoRequests()
    with pytest.raises(InvalidArgument, match=match):
        history(http, *args, **kwargs)
    assert http.calls == []


def test_export_rejects_a_bad_path_before_any_request() -> None:
    http = NoRequests()
    with pytest.raises(InvalidArgument, match="path"):
        history_module.history_to_dataset(http, "SBER", None, "D", "2024-01-01", "2024-02-01")
    assert http.calls == []
