"""Wire encoding for the simulator: schema tables, plus fast paths for bulk data.

Records from the market are canonical (schema.py names); everything leaves the server through
``SCHEMAS[kind].encode(record, fmt)`` except candles, which are built from column arrays with
the CANDLE table's wire keys (a per-field Python loop would be too slow for 1M-candle pages).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson

from ..schema import CANDLE, HISTORY, ORDERBOOK, SCHEMAS

CANDLE_COLUMNS = ("time", "open", "high", "low", "close", "volume")


def encode(kind: str, record: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    return SCHEMAS[kind].encode(record, fmt)


def encode_many(kind: str, records: list[Mapping[str, Any]], fmt: str) -> list[dict[str, Any]]:
    schema = SCHEMAS[kind]
    return [schema.encode(r, fmt) for r in records]


def book_record(book: Mapping[str, Any], existing: bool) -> dict[str, Any]:
    """The market's book with the stream flag and Simple's legacy ``snapshot``/``timestamp``."""
    out = dict(book)
    out["existing"] = existing
    out["snapshot"] = existing
    if out.get("time") is not None:
        out["timestamp_s"] = out["time"] // 1000 if isinstance(out["time"], int) else out["time"] / 1000
    return out


def book_bytes(book: Mapping[str, Any], fmt: str, existing: bool) -> bytes:
    return orjson.dumps(ORDERBOOK.encode(book_record(book, existing), fmt))


def iso_ms(ms: int | float) -> str:
    """Unix milliseconds -> the API's ISO string with 7 fractional digits."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}0000Z"


def trade_record(trade: Mapping[str, Any], existing: bool) -> dict[str, Any]:
    out = dict(trade)
    out["existing"] = existing
    if "time_iso" not in out and out.get("time") is not None:
        out["time_iso"] = iso_ms(out["time"])
    out.setdefault("order_no", "0")
    return out


def _column_texts(values: np.ndarray, dtype: type) -> list[bytes]:
    """The JSON text of each element of a column (orjson formats the whole array at once)."""
    text = orjson.dumps(np.ascontiguousarray(values, dtype=dtype), option=orjson.OPT_SERIALIZE_NUMPY)
    return text[1:-1].split(b",")


def candles_json(columns: Mapping[str, np.ndarray], fmt: str) -> bytes:
    """Column arrays -> the JSON array of wire candle objects, with the CANDLE table's keys.

    Each column is formatted by orjson in one call and the objects are assembled from a
    bytes template: no Python dict or float object per candle."""
    if len(columns["time"]) == 0:
        return b"[]"
    keys = [CANDLE.required_key(name, fmt).encode() for name in CANDLE_COLUMNS]
    template = b"{" + b",".join(b'"%s":%%s' % key for key in keys) + b"}"
    texts = [_column_texts(columns[name], np.int64 if name in ("time", "volume") else np.float64)
             for name in CANDLE_COLUMNS]
    return b"[" + b",".join([template % row for row in zip(*texts, strict=True)]) + b"]"


def history_bytes(columns: Mapping[str, np.ndarray], fmt: str, next_time: int | None,
                  prev_time: int | None) -> bytes:
    """The /md/v2/history body: ``{"history"|"h": [...], "next": ..., "prev": ...}``."""
    cursors = orjson.dumps({"next": next_time, "prev": prev_time})
    list_key = orjson.dumps(HISTORY.key("history", fmt))
    return b"{" + list_key + b":" + candles_json(columns, fmt) + b"," + cursors[1:]


def data_frame(data: bytes, guid_json: bytes) -> bytes:
    """A WebSocket data message ``{"data": ..., "guid": ...}`` from pre-encoded parts."""
    return b'{"data":' + data + b',"guid":' + guid_json + b"}"


def result_frame(guid: Any, status: int, message: str) -> bytes:
    return orjson.dumps({"message": message, "httpCode": status,
                         "requestGuid": guid if isinstance(guid, str) else ""})


def ws_text_frame(payload: bytes) -> bytes:
    """A complete unmasked WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 65_536:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload
