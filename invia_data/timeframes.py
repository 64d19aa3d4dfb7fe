"""Timeframes: user spellings ("1min", "5min", "1h", "D", 60) <-> the API's ``tf`` string.

The API takes a number of seconds or a code: ``D`` (86400), ``W`` (604800), ``M`` (2592000),
``Y`` (31536000). Candle times are the candle start in UTC.

Accepted: seconds (``60``, ``"60"``); the API's codes ``"D"``, ``"W"``, ``"M"`` (month),
``"Y"``; a count and a unit, as pandas and yfinance spell them (``"1min"``, ``"5m"``, ``"1h"``,
``"1d"``, ``"1wk"``, ``"1mo"``, ``"3mo"``, ``"1y"``); trading-terminal names (``"M1"``,
``"H4"``, ``"D1"``, ``"MN1"``). ``"1M"`` (and any count before a capital ``M``) is refused:
pandas reads it as a month and traders as a minute.
"""

from __future__ import annotations

import re

import numpy as np

from .errors import InvalidArgument

CODES = {"D": 86_400, "W": 604_800, "M": 2_592_000, "Y": 31_536_000}
_UNITS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "min": 60, "m": 60, "t": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86_400, "day": 86_400, "days": 86_400,
    "w": 604_800, "wk": 604_800, "wks": 604_800, "week": 604_800, "weeks": 604_800,
    "mo": 2_592_000, "mon": 2_592_000, "mos": 2_592_000, "month": 2_592_000,
    "months": 2_592_000,
    "y": 31_536_000, "yr": 31_536_000, "yrs": 31_536_000, "year": 31_536_000,
    "years": 31_536_000,
}
_ALIASES = {"M1": 60, "M5": 300, "M10": 600, "M15": 900, "M30": 1800, "H1": 3600, "H4": 14_400,
            "D1": 86_400, "W1": 604_800, "MN1": 2_592_000, "MS": 2_592_000, "ME": 2_592_000,
            "MONTH": 2_592_000, "Y": 31_536_000, "YEAR": 31_536_000}
_DATE_LIKE = re.compile(r"^\d{1,4}[-./]\d{1,2}([-./]\d{1,4})?([ T].*)?$")
_PATTERN = re.compile(r"^\s*(\d+)?\s*([a-zA-Z]+)\s*$")


def to_seconds(tf: str | int) -> int:
    """Any accepted timeframe spelling -> its length in seconds (``"M"`` is a 30-day month),
    at most a year (``"Y"``)."""
    seconds = _seconds(tf)
    if seconds > MAX_SECONDS:
        raise InvalidArgument(f"timeframe {_shown(tf)} is longer than a year: the longest "
                              "candle is 'Y' (31536000 seconds)")
    return seconds


MAX_SECONDS = 31_536_000


def _shown(tf: object) -> str:
    text = repr(tf) if not isinstance(tf, int) or tf.bit_length() < 200 else "a huge integer"
    return text if len(text) <= 40 else text[:30] + "..."


def _seconds(tf: str | int) -> int:
    if isinstance(tf, (bool, np.bool_)):
        raise InvalidArgument(f"unknown timeframe {tf!r}")
    if isinstance(tf, (int, np.integer)):
        if tf > 0:
            return int(tf)
        raise InvalidArgument(f"timeframe must be a positive number of seconds, got {tf!r}")
    if not isinstance(tf, str) or len(tf) > 32:
        raise InvalidArgument(f"unknown timeframe {_shown(tf)}: use seconds (60), '1min', "
                              "'5min', '1h', 'D', 'W', 'M' or 'Y'")
    text = tf.strip()
    if text.isascii() and text.isdigit() and int(text) > 0:
        return int(text)
    if text in CODES:
        return CODES[text]
    if text.upper() in _ALIASES:
        return _ALIASES[text.upper()]
    match = _PATTERN.match(text)
    if match:
        count = int(match.group(1) or 1)
        unit = match.group(2)
        if unit == "M":
            raise InvalidArgument(
                f"ambiguous timeframe {tf!r}: use 'M' or '1mo' for a month, "
                f"'M1' or '1min' for a minute")
        seconds = _UNITS.get(unit.lower())
        if seconds and count > 0:
            return count * seconds
    if _DATE_LIKE.match(text):
        raise InvalidArgument(
            f"timeframe {tf!r} looks like a date: the argument after the symbol is the "
            f"timeframe; pass dates by name, e.g. history('SBER', 'D', start={text!r})")
    raise InvalidArgument(
        f"unknown timeframe {_shown(tf)}: use seconds (60), '1min', '5min', '1h', 'D' or '1d', "
        f"'W' or '1wk', 'M' or '1mo', 'Y' or '1y'")


def to_wire(tf: str | int) -> str:
    """The API's ``tf`` parameter for a timeframe: ``"60"``, ``"D"``, ``"W"``, ``"M"``, ``"Y"``."""
    seconds = to_seconds(tf)
    for code, length in CODES.items():
        if seconds == length:
            return code
    return str(seconds)


def label(tf: str | int) -> str:
    """A short human label: ``"1min"``, ``"4h"``, ``"D"``."""
    seconds = to_seconds(tf)
    for code, length in CODES.items():
        if seconds == length:
            return code
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
