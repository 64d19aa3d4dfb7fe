"""Pure converters: wire payloads -> DataFrames with one fixed schema per data kind.

Columns are built directly from the list of wire objects (one list comprehension per column),
never through an intermediate list of canonical dicts. The same columns and dtypes come out
whatever format was used on the wire; a field that a format lacks is an all-NA column; an empty
payload is an empty frame with the same columns and dtypes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import DecodeError, InvalidArgument
from .schema import SCHEMAS, Field, Schema

UTC_DTYPE = "datetime64[ns, UTC]"
STR_DTYPE = pd.StringDtype(na_value=np.nan)
TIME_KINDS = ("ts_s", "ts_ms", "iso")
_DTYPES: dict[str, Any] = {
    "str": STR_DTYPE,
    "lower": STR_DTYPE,
    "float": "float64",
    "int": "Int64",
    "i8": "int64",
    "bool": "boolean",
    "ts_s": UTC_DTYPE,
    "ts_ms": UTC_DTYPE,
    "iso": UTC_DTYPE,
}


def frame_kind(field: Field) -> str:
    """The kind of a field's column in frames: its wire kind, except that a quantity in units
    (``*_units``) is always float64. The API documents it as an integer for orders and own
    trades and as a number for positions and stop orders, and a currency or bond position holds
    fractions of a unit; one column name, one dtype. Lots keep the documented type."""
    if field.name.endswith("_units") and field.kind in ("int", "i8"):
        return "float"
    return field.kind


def dtype_of(field: Field) -> Any:
    return _DTYPES.get(frame_kind(field), object)


def dtypes(schema: Schema) -> dict[str, Any]:
    """Column -> dtype of the DataFrame of ``schema``."""
    return {f.name: dtype_of(f) for f in schema.fields if not f.legacy}


def empty_frame(schema: Schema) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=dt) for name, dt in dtypes(schema).items()})


def convert(values: Sequence[Any], kind: str) -> Any:
    """A list of wire values -> a typed array for a column of ``kind``."""
    if kind == "float":
        return np.array(values, dtype="float64")
    if kind == "i8":
        try:
            return np.array(values, dtype="int64")
        except (TypeError, ValueError):
            return pd.array(np.array(values, dtype="float64"), dtype="Int64")
    if kind == "int":
        return pd.array(values, dtype="Int64")
    if kind == "bool":
        return pd.array(values, dtype="boolean")
    if kind == "str":
        return pd.array([v if v is None or isinstance(v, str) else str(v) for v in values],
                        dtype=STR_DTYPE)
    if kind == "lower":
        return pd.array([v if v is None else str(v).lower() for v in values], dtype=STR_DTYPE)
    if kind in ("ts_s", "ts_ms"):
        return epoch_to_utc(np.array(values, dtype="float64"), "s" if kind == "ts_s" else "ms")
    if kind == "iso":
        return pd.DatetimeIndex(pd.to_datetime(list(values), utc=True, format="ISO8601")).as_unit("ns")
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def epoch_to_utc(values: np.ndarray, unit: str) -> pd.DatetimeIndex:
    """Unix seconds/milliseconds (float, NaN or 0 for missing) -> UTC DatetimeIndex (ns)."""
    scale = 1_000_000_000 if unit == "s" else 1_000_000
    missing = ~np.isfinite(values) | (values == 0)
    present = np.where(missing, 0.0, values)
    # whole units in int64 and the fraction apart: epoch ms * 1e6 exceeds float64's 53 bits,
    # so multiplying the float directly would shift whole milliseconds by up to ~200 ns
    whole = np.floor(present)
    ns = whole.astype("int64") * scale + np.round((present - whole) * scale).astype("int64")
    ns[missing] = np.iinfo("int64").min  # NaT
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")


def _column(field: Field, objs: Sequence[Mapping[str, Any]], fmt: str) -> Any:
    keys = field.keys(fmt)
    n = len(objs)
    if not keys:
        values: list[Any] = [None] * n
    elif len(keys) == 1:
        key = keys[0]
        values = [o.get(key) for o in objs]
    else:
        values = [next((o[k] for k in keys if k in o), None) for o in objs]
    sub = field.sub
    if sub is not None:
        nested = SCHEMAS[sub]
        values = [_decode_nested(nested, v, fmt) for v in values]
    return convert(values, frame_kind(field))


def _decode_nested(schema: Schema, value: Any, fmt: str) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [schema.decode(v, fmt) for v in value]
    return schema.decode(value, fmt)


def to_frame(schema: Schema, objs: Iterable[Mapping[str, Any]], fmt: str, *,
             tz: str | None = None, index: str | None = None) -> pd.DataFrame:
    """Wire objects of ``schema`` in format ``fmt`` -> DataFrame with the canonical columns.

    ``index``: a column to use as the index (e.g. ``"time"``). ``tz``: convert every time
    column (and a time index) from UTC to this zone.
    """
    objs = objs if isinstance(objs, list) else list(objs)
    if not objs:
        frame = empty_frame(schema)
    else:
        frame = pd.DataFrame(
            {f.name: _wire_column(schema, f, objs, fmt) for f in schema.fields if not f.legacy},
            copy=False,
        )
    return _finish(frame, tz, index)


def _wire_column(schema: Schema, field: Field, objs: Sequence[Mapping[str, Any]], fmt: str) -> Any:
    """One column from wire objects; a value that is not of the field's kind (a server body of
    another shape) raises DecodeError (an APIError) naming the field."""
    try:
        return _column(field, objs, fmt)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise DecodeError(f"malformed {schema.name} data: field {field.name} ({field.kind}): "
                       f"{type(exc).__name__}: {exc}"[:300], status=200) from None


def record_frame(schema: Schema, records: Iterable[Mapping[str, Any]], *,
                 tz: str | None = None, index: str | None = None) -> pd.DataFrame:
    """Canonical records (as the stream reducers keep them) -> the same DataFrame as
    :func:`to_frame`. Time fields hold the wire values (epoch numbers or ISO strings)."""
    records = records if isinstance(records, list) else list(records)
    if not records:
        frame = empty_frame(schema)
    else:
        frame = pd.DataFrame(
            {f.name: convert([r.get(f.name) for r in records], f.kind)
             for f in schema.fields if not f.legacy},
            copy=False,
        )
    return _finish(frame, tz, index)


def _finish(frame: pd.DataFrame, tz: str | None, index: str | None) -> pd.DataFrame:
    if tz is not None:
        frame = convert_tz(frame, tz)
    if index is not None:
        frame = frame.set_index(index)
    return frame


def convert_tz(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Convert every tz-aware column and a tz-aware index to ``tz``."""
    try:
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
                frame[name] = frame[name].dt.tz_convert(tz)
        if isinstance(frame.index, pd.DatetimeIndex) and frame.index.tz is not None:
            frame.index = frame.index.tz_convert(tz)
    except Exception as exc:  # unknown zone names raise from zoneinfo / pytz
        raise InvalidArgument(f"unknown time zone {tz!r}") from exc
    return frame
