"""User-given points in time -> UTC.

One rule for every call that takes a time: naive datetimes and strings without an offset are
read as UTC; aware ones are converted. Accepted: ``pd.Timestamp``, ``datetime``, ``date``
(midnight UTC), ``numpy.datetime64``, ISO-like strings (``"2024-01-01"``,
``"2024-01-01 10:00"``, ``"2024-01-01T10:00:00+03:00"``) and epoch numbers (seconds; values
above 1e11 are taken as milliseconds, the API's other unit).
"""

from __future__ import annotations

import datetime as dt
import numbers

import numpy as np
import pandas as pd

from .errors import InvalidArgument

__all__ = ["TimeLike", "to_utc", "to_epoch_seconds", "to_epoch_ms", "check_range", "check_tz", "utc_now"]

TimeLike = pd.Timestamp | dt.datetime | dt.date | np.datetime64 | str | int | float

_MS_THRESHOLD = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973


def to_utc(value: TimeLike, *, name: str = "time") -> pd.Timestamp:
    """A tz-aware UTC Timestamp for ``value`` (see the module docstring for the accepted forms).

    Raises InvalidArgument for None, booleans, NaN/NaT and text pandas cannot read.
    """
    if value is None or isinstance(value, bool):
        raise InvalidArgument(f"{name}: expected a time, got {value!r}")
    if isinstance(value, numbers.Real) and not isinstance(value, np.datetime64):
        number = float(value)
        if not np.isfinite(number):
            raise InvalidArgument(f"{name}: expected a time, got {value!r}")
        unit = "ms" if abs(number) >= _MS_THRESHOLD else "s"
        return pd.Timestamp(number, unit=unit, tz="UTC")
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    try:
        stamp = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidArgument(f"{name}: cannot read {value!r} as a time") from exc
    if stamp is pd.NaT or pd.isna(stamp):
        raise InvalidArgument(f"{name}: expected a time, got {value!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


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
