"""The research helpers of history(): period=, partial results for lists (errors=),
closed_only=, the wide field= frame, and a date typed where the timeframe goes."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import invia_data
from invia_data.errors import InvalidArgument, NotFound
from invia_data.history import period_start

END = int(pd.Timestamp("2024-03-15 12:00", tz="UTC").timestamp())


@pytest.mark.parametrize("period, expected", [
    ("5d", "2024-03-10 12:00"), ("1wk", "2024-03-08 12:00"), ("1mo", "2024-02-15 12:00"),
    ("3mo", "2023-12-15 12:00"), ("1y", "2023-03-15 12:00"), ("2y", "2022-03-15 12:00"),
    ("ytd", "2024-01-01"), ("max", "2000-01-01"), (" 1Y ", "2023-03-15 12:00"),
])
def test_periods_count_back_in_calendar_units(period, expected):
    assert period_start(period, END) == int(pd.Timestamp(expected, tz="UTC").timestamp())


@pytest.mark.parametrize("bad", ["2", "0d", "1M", "fortnight", 5, ""])
def test_unknown_periods_list_the_ones_that_work(bad):
    with pytest.raises(InvalidArgument, match="'5d'.*'ytd' or 'max'"):
        period_start(bad, END)


def test_period_gives_the_range_back_from_now(client):
    frame = client.history("SBER", "D", period="1mo")
    now = client.time()
    assert now - pd.Timedelta(days=32) <= frame.index[0] <= now - pd.Timedelta(days=27)
    assert frame.index[-1] >= now - pd.Timedelta(days=4)


def test_period_and_start_are_exclusive(counted):
    inv, adapter = counted
    sent = len(adapter.sent)
    with pytest.raises(InvalidArgument, match="period and start"):
        inv.history("SBER", "D", period="1y", start="2024-01-01")
    assert len(adapter.sent) == sent


def test_a_bad_symbol_in_a_list_does_not_lose_the_others(client):
    with pytest.warns(invia_data.InviaWarning, match="SBRE"):
        frame = client.history(["SBER", "SBRE", "GAZP"], "D", period="1mo", errors="warn")
    assert list(frame.index.get_level_values("symbol").unique()) == ["SBER", "GAZP"]
    assert list(frame.attrs["failed"]) == ["SBRE"] and "404" in frame.attrs["failed"]["SBRE"]
    assert set(frame.attrs["open_candle"]) == {"SBER", "GAZP"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = client.history(["SBER", "SBRE"], "D", period="1mo", errors="ignore")
    assert list(quiet.attrs["failed"]) == ["SBRE"]
    with pytest.raises(NotFound, match="SBRE"):
        client.history(["SBER", "SBRE"], "D", period="1mo")  # errors="raise", the default


def test_when_every_symbol_fails_the_error_is_raised_whatever_errors_says(client):
    with pytest.raises(NotFound):
        client.history(["SBRE", "GAZR"], "D", period="1mo", errors="ignore")


def test_closed_only_drops_the_open_candle(client):
    both = client.history(["SBER", "GAZP"], "1h", period="5d")
    closed = client.history(["SBER", "GAZP"], "1h", period="5d", closed_only=True)
    assert all(v is not None for v in both.attrs["open_candle"].values())
    assert closed.attrs["open_candle"] == {"SBER": None, "GAZP": None}
    for symbol in ("SBER", "GAZP"):
        opened = pd.Timestamp(both.attrs["open_candle"][symbol])
        assert opened not in closed.xs(symbol).index
        assert closed.xs(symbol).index[-1] < opened


def test_field_gives_the_time_by_symbol_matrix(client):
    long = client.history(["SBER", "GAZP"], "D", start="2024-01-01", end="2024-02-01")
    wide = client.history(["SBER", "GAZP"], "D", start="2024-01-01", end="2024-02-01",
                          field="close")
    assert list(wide.columns) == ["SBER", "GAZP"] and wide.columns.name == "symbol"
    pd.testing.assert_series_equal(wide["GAZP"], long.xs("GAZP")["close"], check_names=False)
    assert wide.attrs["field"] == "close"
    one = client.history("SBER", "D", start="2024-01-01", end="2024-02-01", field="volume")
    assert list(one.columns) == ["SBER"]
    with pytest.raises(InvalidArgument, match="field must be one of open, high"):
        client.history("SBER", "D", field="price")


def test_a_date_in_the_timeframe_place_names_the_fix(client):
    with pytest.raises(InvalidArgument, match="looks like a date.*start='2024-01-01'"):
        client.history("SBER", "2024-01-01")
