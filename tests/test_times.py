"""One reading of user-given times: naive and strings are UTC, aware ones converted."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from invia_data.errors import InvalidArgument
from invia_data.times import check_range, check_tz, to_epoch_ms, to_epoch_seconds, to_utc

NEW_YEAR = 1_704_067_200  # 2024-01-01T00:00:00Z


@pytest.mark.parametrize("value", [
    "2024-01-01", "2024-01-01 00:00", "2024-01-01T03:00:00+03:00", "2024-01-01T00:00:00Z",
    dt.date(2024, 1, 1), dt.datetime(2024, 1, 1),
    dt.datetime(2024, 1, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=3))),
    pd.Timestamp("2024-01-01"), pd.Timestamp("2023-12-31 19:00", tz="America/New_York"),
    np.datetime64("2024-01-01T00:00"), NEW_YEAR, float(NEW_YEAR), NEW_YEAR * 1000,
    np.int64(NEW_YEAR),
])
def test_every_spelling_of_the_same_instant(value):
    stamp = to_utc(value)
    assert str(stamp.tz) == "UTC" and stamp == pd.Timestamp("2024-01-01", tz="UTC")
    assert to_epoch_seconds(value) == NEW_YEAR
    assert to_epoch_ms(value) == NEW_YEAR * 1000


def test_sub_second_values_floor():
    assert to_epoch_seconds("2024-01-01 00:00:00.900") == NEW_YEAR
    assert to_epoch_ms("2024-01-01 00:00:00.9005") == NEW_YEAR * 1000 + 900


@pytest.mark.parametrize("bad", [None, True, "soon", float("nan"), pd.NaT, [2024], "2024-13-01"])
def test_unreadable_times_are_invalid_arguments(bad):
    with pytest.raises(InvalidArgument):
        to_utc(bad, name="start")


def test_range_order_is_checked():
    lo, hi = check_range("2024-01-01", None)
    assert hi is None and lo == pd.Timestamp("2024-01-01", tz="UTC")
    assert check_range(None, None) == (None, None)
    with pytest.raises(InvalidArgument, match="after"):
        check_range("2024-01-02", "2024-01-01")


def test_time_zone_check():
    assert check_tz("Europe/Moscow") == "Europe/Moscow"
    assert check_tz(None) is None
    assert check_tz(dt.timezone.utc) is dt.timezone.utc
    for bad in ("Mars/Base", 3, ""):
        with pytest.raises(InvalidArgument):
            check_tz(bad)


def test_an_unknown_zone_is_answered_with_names_that_work():
    with pytest.raises(InvalidArgument, match="'MSK'.*'Europe/Moscow'") as info:
        check_tz("MSK")
    assert check_tz("+03:00") == "+03:00"  # the offset the message offers is accepted
    assert "'UTC'" in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("01.02.2024", "2024-02-01"),            # day first, as written in Russia: 1 February
    ("1.2.2024", "2024-02-01"),
    ("13.02.2024", "2024-02-13"),
    ("01.02.2024 10:30", "2024-02-01 10:30"),
])
def test_dotted_dates_are_read_day_first(text, expected):
    assert to_utc(text) == pd.Timestamp(expected, tz="UTC")


def test_an_integer_that_reads_as_yyyymmdd_is_that_date():
    assert to_utc(20240201) == pd.Timestamp("2024-02-01", tz="UTC")
    assert to_epoch_seconds(1_706_745_600) == 1_706_745_600  # real epoch seconds still work


@pytest.mark.parametrize("bad", ["0001-01-01", "9999-12-31", dt.datetime(1, 1, 1), 10**30,
                                 np.datetime64("0001-01-01"), "31.02.2024"])
def test_times_outside_what_the_api_holds_are_invalid_arguments(bad):
    with pytest.raises(InvalidArgument, match="2024-02-01"):
        to_utc(bad, name="start")


def test_range_errors_show_the_times_as_understood():
    with pytest.raises(InvalidArgument) as info:
        check_range("01.03.2024", "01.02.2024")
    assert "2024-03-01T00:00:00+00:00" in str(info.value)
    assert "2024-02-01T00:00:00+00:00" in str(info.value)


def test_iso_times_of_attrs_share_one_format_so_a_list_of_them_parses():
    from invia_data.times import iso_time

    values = [iso_time(pd.Timestamp("2026-12-04 07:53:49", tz="UTC")),
              iso_time(pd.Timestamp("2026-12-04 07:53:49.250", tz="UTC"))]
    assert values[0] == "2026-12-04T07:53:49.000000+00:00"
    parsed = pd.to_datetime(pd.Series(values), utc=True)
    assert parsed.dt.microsecond.tolist() == [0, 250_000]
