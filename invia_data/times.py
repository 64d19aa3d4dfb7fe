"""User-given points in time -> UTC.

One rule for every call that takes a time: naive datetimes and strings without an offset are
read as UTC; aware ones are converted. Accepted:

* ``pd.Timestamp``, ``datetime``, ``date`` (midnight UTC), ``numpy.datetime64``;
* ISO-like strings: ``"2024-02-01"``, ``"2024-02-01 10:00"``, ``"2024-02-01T10:00:00+03:00"``;
* dotted dates, always day first as written in Russia: ``"01.02.2024"`` is 1 February
  (``"01.02.2024 10:00"`` with a time);
* an integer that reads as a calendar date ``YYYYMMDD`` (``20240201``) is that date;
* other numbers are epoch seconds (values above 1e11 are taken as milliseconds, the API's
  other unit).

Times must fall between the years 1678 and 2261 (what a nanosecond timestamp holds).
"""

from __future__ import annotations

import datetime as dt
import numbers
import re
from typing import TypeAlias

import numpy as np
import pandas as pd

from .errors import InvalidArgument

__all__ = ["TimeLike", "iso_time", "to_utc", "to_epoch_seconds", "to_epoch_ms", "check_range", "check_tz", "utc_now"]

TimeLike: TypeAlias = pd.Timestamp | dt.datetime | dt.date | np.datetime64 | str | int | float

_MS_THRESHOLD = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](.+))?$")
# 19000101..22611231 as epoch seconds would be 1970-08 .. 1971-09: no one means those
_YYYYMMDD = (19000101, 22611231)


def to_utc(value: TimeLike, *, name: str = "time") -> pd.Timestamp:
    """A tz-aware UTC Timestamp for ``value`` (see the module docstring for the accepted forms).

    Raises InvalidArgument for None, booleans, NaN/NaT, times outside the years 1678-2261 and
    text pandas cannot read.
    """
    if value is None or isinstance(value, bool):
        raise InvalidArgument(f"{name}: expected a time, got {value!r}")
    try:
        stamp = _read(value, name)
        if stamp is not pd.NaT:
            stamp = stamp.as_unit("ns")  # pandas 3 reads year 1 at another unit; the API can't
    except InvalidArgument:
        raise
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        raise InvalidArgument(f"{name}: cannot read {_short(value)} as a time between the years "
                              "1678 and 2261; write it as '2024-02-01' or '2024-02-01 10:00'"
                              ) from None
    if stamp is pd.NaT or pd.isna(stamp):
        raise InvalidArgument(f"{name}: expected a time, got {value!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _read(value: TimeLike, name: str) -> pd.Timestamp:
    if isinstance(value, numbers.Real) and not isinstance(value, np.datetime64):
        return _read_number(value, name)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        value = _undot(value.strip())
    return pd.Timestamp(value)


def _read_number(value: numbers.Real, name: str) -> pd.Timestamp:
    number = float(value)
    if not np.isfinite(number):
        raise InvalidArgument(f"{name}: expected a time, got {value!r}")
    if number.is_integer() and _YYYYMMDD[0] <= number <= _YYYYMMDD[1]:
        text = str(int(number))
        return pd.Timestamp(f"{text[:4]}-{text[4:6]}-{text[6:]}")
    unit = "ms" if abs(number) >= _MS_THRESHOLD else "s"
    return pd.Timestamp(number, unit=unit, tz="UTC")


def _undot(text: str) -> str:
    """``"01.02.2024 10:00"`` -> ``"2024-02-01 10:00"`` (day first, never month first)."""
    match = _DOTTED.match(text)
    if not match:
        return text
    day, month, year, rest = match.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}" + (f" {rest}" if rest else "")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_epoch_seconds(value: TimeLike, *, name: str = "time") -> int:
    """Unix seconds (int, floored) for ``value``; naive times are UTC."""
    stamp = to_utc(value, name=name)
    return int(stamp.value // 1_000_000_000)


def to_epoch_ms(value: TimeLike, *, name: str = "time") -> int:
    """Unix milliseconds (int, floored) for ``value``; naive times are UTC."""
    stamp = to_utc(value, name=name)
    return int(stamp.value // 1_000_000)


def check_range(start: TimeLike | None, end: TimeLike | None
                ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Both bounds as UTC Timestamps (None stays None); InvalidArgument when start > end."""
    lo = None if start is None else to_utc(start, name="start")
    hi = None if end is None else to_utc(end, name="end")
    if lo is not None and hi is not None and lo > hi:
        raise InvalidArgument(f"start {lo.isoformat()} is after end {hi.isoformat()}")
    return lo, hi


def utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def check_tz(tz: str | dt.tzinfo | None) -> str | dt.tzinfo | None:
    """``tz`` unchanged when pandas knows the zone (or it is None); InvalidArgument otherwise,
    so a bad zone is reported before any request."""
    if tz is None:
        return None
    if not isinstance(tz, (str, dt.tzinfo)):
        raise InvalidArgument(f"tz must be a zone name such as 'Europe/Moscow', got {tz!r}")
    try:
        pd.Timestamp(0, tz=tz)
    except Exception as exc:  # zoneinfo, pytz and dateutil raise different types
        raise InvalidArgument(f"unknown time zone {tz!r}: use an IANA name such as "
                              "'Europe/Moscow' or 'UTC', or an offset such as '+03:00'") from exc
    return tz


def iso_time(stamp: pd.Timestamp | None, tz: str | dt.tzinfo | None = None) -> str | None:
    """``stamp`` as an ISO 8601 string (in ``tz`` when given), None for None/NaT.

    Frames carry times in ``attrs`` this way: pandas writes ``attrs`` to Parquet and Feather as
    JSON, which has no timestamp type; ``pd.Timestamp(text)`` reads it back exactly."""
    if stamp is None or stamp is pd.NaT or pd.isna(stamp):
        return None
    stamp = pd.Timestamp(stamp)
    if tz is not None:
        stamp = stamp.tz_convert(tz)
    # always with microseconds: a list of these parses with one format (pd.to_datetime infers
    # it from the first value, and a time on a whole second would otherwise lack the fraction)
    return stamp.isoformat(timespec="microseconds")
