"""Timeframe spellings: what pandas, yfinance and trading-terminal users type, and the one that
means two things ("1M": a month to pandas, a minute to a trader) refused with the fix named."""

from __future__ import annotations

import pytest

from invia_data.errors import InvalidArgument
from invia_data.history import history
from invia_data.timeframes import label, to_seconds, to_wire

MINUTE, HOUR, DAY, WEEK, MONTH, YEAR = 60, 3600, 86_400, 604_800, 2_592_000, 31_536_000


# yfinance's documented intervals: 1m,2m,5m,15m,30m,60m,90m,1h,1d,5d,1wk,1mo,3mo
@pytest.mark.parametrize(("spelling", "seconds"), [
    ("1m", MINUTE), ("2m", 2 * MINUTE), ("5m", 5 * MINUTE), ("15m", 15 * MINUTE),
    ("30m", 30 * MINUTE), ("60m", HOUR), ("90m", 90 * MINUTE), ("1h", HOUR), ("1d", DAY),
    ("5d", 5 * DAY), ("1wk", WEEK), ("1mo", MONTH), ("3mo", 3 * MONTH),
])
def test_yfinance_intervals(spelling, seconds):
    assert to_seconds(spelling) == seconds


@pytest.mark.parametrize(("spelling", "seconds"), [
    ("1min", MINUTE), ("5min", 5 * MINUTE), ("1T", MINUTE), ("1H", HOUR), ("4h", 4 * HOUR),
    ("1D", DAY), ("D", DAY), ("W", WEEK), ("1W", WEEK), ("M", MONTH), ("Y", YEAR),
    ("1y", YEAR), ("1Y", YEAR), ("2 weeks", 2 * WEEK), ("month", MONTH), ("1 year", YEAR),
    ("M1", MINUTE), ("M15", 15 * MINUTE), ("H4", 4 * HOUR), ("D1", DAY), ("MN1", MONTH),
    (60, MINUTE), ("300", 5 * MINUTE),
])
def test_pandas_and_terminal_spellings(spelling, seconds):
    assert to_seconds(spelling) == seconds


@pytest.mark.parametrize("spelling", ["1M", "3M", " 1M ", "1 M", "12M"])
def test_ambiguous_month_or_minute_is_refused_with_both_fixes(spelling):
    with pytest.raises(InvalidArgument, match="ambiguous") as caught:
        to_seconds(spelling)
    message = str(caught.value)
    for fix in ("'M'", "'1mo'", "'M1'", "'1min'"):
        assert fix in message


@pytest.mark.parametrize("spelling", ["fortnight", "0min", "1ME", "", True, 0, -60, 1.5])
def test_unknown_spellings_are_refused(spelling):
    with pytest.raises(InvalidArgument):
        to_seconds(spelling)


def test_month_and_year_spellings_reach_the_api_as_its_codes():
    assert {to_wire(s) for s in ("M", "1mo", "MN1", "month")} == {"M"}
    assert {to_wire(s) for s in ("Y", "1y", "1Y", "year")} == {"Y"}
    assert {to_wire(s) for s in ("W", "1wk", "1W")} == {"W"}
    assert to_wire("1m") == to_wire("M1") == "60"
    assert label("1mo") == "M" and label("1wk") == "W" and label("90m") == "90min"


class NoRequests:
    base_url = "http://api.test"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get(self, path, params=None, **_):
        self.calls.append(path)

    def get_bytes(self, path, params=None, **_):
        self.calls.append(path)
        return b""


def test_history_refuses_1M_before_any_request():
    http = NoRequests()
    with pytest.raises(InvalidArgument, match="1mo"):
        history(http, "SBER", "1M")
    assert http.calls == []


@pytest.mark.parametrize("text", ["2024-01-01", "01.02.2024", "2024-01-01 10:00"])
def test_a_date_in_place_of_the_timeframe_says_so(text):
    with pytest.raises(InvalidArgument, match="looks like a date.*start="):
        to_seconds(text)
