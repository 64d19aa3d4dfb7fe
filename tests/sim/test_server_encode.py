"""The simulator's fast encoders agree with the schema tables."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import websocket

from invia_data.schema import CANDLE, HISTORY, ORDERBOOK
from invia_data.sim import encode

FORMATS = ("Simple", "Slim", "Heavy")


@pytest.mark.parametrize("fmt", FORMATS)
def test_candles_json_matches_schema_encoding(fmt):
    rng = np.random.default_rng(3)
    n = 500
    columns = {
        "time": 1_700_000_000 + 60 * np.arange(n, dtype=np.int64),
        "open": np.round(rng.uniform(1, 500, n), 2),
        "high": np.round(rng.uniform(1, 500, n), 3),
        "low": np.round(rng.uniform(1, 500, n), 1),
        "close": np.round(rng.uniform(1, 500, n), 4),
        "volume": rng.integers(0, 10**9, n),
    }
    body = orjson.loads(encode.history_bytes(columns, fmt, 1_700_030_000, None))
    expected = [CANDLE.encode({k: (int(v[i]) if k in ("time", "volume") else float(v[i]))
                               for k, v in columns.items()}, fmt) for i in range(n)]
    assert body[HISTORY.key("history", fmt)] == expected
    assert body["next"] == 1_700_030_000 and body["prev"] is None
    assert orjson.loads(encode.history_bytes({k: v[:0] for k, v in columns.items()}, fmt, None, 5)) == {
        HISTORY.key("history", fmt): [], "next": None, "prev": 5}


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_ws_text_frame_parses_as_one_text_message(size):
    payload = b"x" * size
    raw = encode.ws_text_frame(payload)
    buffer = bytearray(raw)

    def recv(n):
        chunk = bytes(buffer[:n])
        del buffer[:n]
        return chunk

    frame_buffer = websocket._abnf.frame_buffer(recv, skip_utf8_validation=True)
    frame = frame_buffer.recv_frame()
    assert frame.opcode == websocket.ABNF.OPCODE_TEXT and frame.fin == 1
    assert frame.data == payload and not buffer


def test_book_bytes_adds_simple_legacy_fields_only_in_simple():
    book = {"bids": [{"price": 1.5, "volume": 2}], "asks": [{"price": 1.6, "volume": 3}],
            "time": 1_700_000_000_123}
    simple = orjson.loads(encode.book_bytes(book, "Simple", existing=True))
    assert simple["snapshot"] is True and simple["timestamp"] == 1_700_000_000
    assert simple["ms_timestamp"] == 1_700_000_000_123 and simple["existing"] is True
    slim = orjson.loads(encode.book_bytes(book, "Slim", existing=False))
    assert slim == {"b": [{"p": 1.5, "v": 2}], "a": [{"p": 1.6, "v": 3}], "t": 1_700_000_000_123,
                    "h": False}
    assert ORDERBOOK.decode(slim, "Slim")["existing"] is False


def test_iso_ms_has_seven_fraction_digits():
    assert encode.iso_ms(1_702_969_208_987) == "2023-12-19T07:00:08.9870000Z"
