"""history(): range splitting, parsing, validation, and the whole call against the simulator."""

from __future__ import annotations

import threading

import numpy as np
import orjson
import pandas as pd
import pytest
import requests

from invia_data import download as download_module
from invia_data import history as history_module
from invia_data.auth import TokenManager
from invia_data.cache import CacheKey, CacheWarning, CandleCache, environment_name
from invia_data.download import history_to_dataset
from invia_data.errors import APIError, InvalidArgument, NotFound, ServerError
from invia_data.frames import to_frame
from invia_data.history import (
    candle_ends,
    candle_frame,
    closed_before,
    default_window,
    history,
    parse_history,
    split_range,
)
from invia_data.http import Http, RetryPolicy
from invia_data.schema import CANDLE
from invia_data.sim import calendar as sim_calendar
from invia_data.sim import routes as sim_routes
from invia_data.timeframes import to_seconds

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


def test_monthly_and_yearly_candles_end_with_the_calendar() -> None:
    starts = pd.DatetimeIndex(["2024-01-01", "2024-02-01", "2023-06-01"], tz="UTC")
    seconds = starts.as_unit("s").asi8
    months = pd.to_datetime(candle_ends(seconds, to_seconds("M")), unit="s", utc=True)
    assert list(months.strftime("%Y-%m-%d")) == ["2024-02-01", "2024-03-01", "2023-07-01"]
    years = pd.to_datetime(candle_ends(seconds, to_seconds("Y")), unit="s", utc=True)
    assert list(years.strftime("%Y-%m-%d")) == ["2025-01-01", "2025-01-01", "2024-01-01"]
    assert candle_ends(seconds, 3600).tolist() == (seconds + 3600).tolist()
    now = int(pd.Timestamp("2024-03-31 12:00", tz="UTC").timestamp())
    assert closed_before(to_seconds("M"), now) <= int(pd.Timestamp("2024-03-01", tz="UTC").timestamp())
    assert closed_before(60, now) == now - 59


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


def test_the_fast_path_ignores_unknown_keys() -> None:
    wire = [dict(CANDLE.encode(r, "Heavy"), settlementCurrency="RUB", extra={"a": [1]})
            for r in sample_records(2)]
    payload = orjson.dumps({"history": wire, "next": None, "prev": 5, "nominalCurrency": "RUB"})
    columns, nxt = history_module._parse_arrow(payload, "Heavy")
    assert columns["time"].tolist() == [T0, T0 + 60] and nxt is None


def test_parse_history_of_pretty_printed_json() -> None:
    records = sample_records(3)
    pretty = orjson.dumps({"h": [CANDLE.encode(r, "Slim") for r in records]},
                          option=orjson.OPT_INDENT_2)
    columns, nxt = parse_history(pretty, "Slim")
    assert columns["time"].tolist() == [r["time"] for r in records] and nxt is None


def test_parse_history_rejects_a_body_that_is_not_json() -> None:
    with pytest.raises(APIError, match="not JSON"):
        parse_history(b"<html>busy</html>", "Slim")


@pytest.mark.parametrize("payload", [
    b'{"h": "busy"}',
    b'{"h": [{"t": 1, "o": "a lot", "h": 1, "l": 1, "c": 1, "v": 1}]}',
    b'{"h": [], "next": "soon"}',
    b'[1, 2]',
])
def test_parse_history_rejects_malformed_payloads(payload: bytes) -> None:
    with pytest.raises(APIError, match="malformed|not a JSON object"):
        parse_history(payload, "Slim")


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
    ((["MOEX:SBER", "SPBX:SBER"],), {}, "two exchanges"),
])
def test_bad_input_raises_before_any_request(args, kwargs, match) -> None:
    http = NoRequests()
    with pytest.raises(InvalidArgument, match=match):
        history(http, *args, **kwargs)
    assert http.calls == []


def test_export_rejects_a_bad_path_before_any_request() -> None:
    http = NoRequests()
    with pytest.raises(InvalidArgument, match="path"):
        download_module.history_to_dataset(http, "SBER", None, "D", "2024-01-01", "2024-02-01")
    assert http.calls == []


# --- against the simulator ---

DAY = 86_400
PAST = pd.Timestamp("2024-02-27 07:00", tz="UTC")  # a Tuesday 10:00 MSK, long closed: final candles


def session_candles(start: object, end: object, tf_seconds: int = 60,
                    market: str = sim_calendar.SHARES) -> int:
    """How many candles of ``tf_seconds`` the exchange's calendar allows in [start, end): the
    buckets holding a minute of continuous trading or an auction's print (counted from the
    calendar, not from the simulator's candles)."""
    lo, hi = (int(pd.Timestamp(x).timestamp()) for x in (start, end))
    minutes: list[np.ndarray] = []
    for day in range(lo // DAY, (hi - 1) // DAY + 1):
        for segment in sim_calendar.sessions(market, sim_calendar.day_date(day)):
            auction = segment.status in (sim_calendar.OPENING_AUCTION,
                                         sim_calendar.CLOSING_AUCTION)
            first = segment.end - 1 if auction else segment.start
            minutes.append(day * DAY + np.arange(first, segment.end) * 60)
    times = np.concatenate(minutes) if minutes else np.zeros(0, dtype=np.int64)
    times = times[(times >= lo) & (times < hi)]
    return len(np.unique(times // tf_seconds))


def trading_days(start: str, end: str) -> int:
    """Trading days of the equity market in [start, end) by the exchange's calendar."""
    first, last = (int(pd.Timestamp(x).timestamp()) // DAY for x in (start, end))
    return sum(sim_calendar.is_trading_day(sim_calendar.SHARES, sim_calendar.day_date(d))
               for d in range(first, last))


class Recording:
    """Http with a log of the /md/v2/history requests it made (their from/to)."""

    def __init__(self, http: Http) -> None:
        self.http = http
        self.base_url = http.base_url
        self.ranges: list[tuple[int, int]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def get(self, path, params=None, **kwargs):
        with self._lock:
            self.paths.append(path)
        return self.http.get(path, params, **kwargs)

    def get_bytes(self, path, params=None, **kwargs):
        with self._lock:
            self.paths.append(path)
            if path == "/md/v2/history":
                self.ranges.append((params["from"], params["to"]))
        return self.http.get_bytes(path, params, **kwargs)

    def reset(self) -> None:
        self.ranges.clear()
        self.paths.clear()


@pytest.fixture
def http(sim, token):
    client = Http(sim.url, TokenManager(token=token))
    yield Recording(client)
    client.close()


def check_schema(frame: pd.DataFrame) -> None:
    assert {k: str(v) for k, v in frame.dtypes.items()} == DTYPES
    times = frame.index.get_level_values("time")
    assert str(times.dtype).startswith("datetime64[ns, ")
    assert frame.index.name == "time" or frame.index.names == ["symbol", "time"]


def test_all_formats_give_the_same_frame(http, tmp_path) -> None:
    frames = {fmt: history(http, "SBER", "1min", PAST, PAST + pd.Timedelta(hours=6),
                           format=fmt, cache=False) for fmt in ("Simple", "Slim", "Heavy")}
    slim = frames["Slim"]
    check_schema(slim)
    assert len(slim) == 360
    assert slim.index[0] == PAST and slim.index.is_monotonic_increasing and slim.index.is_unique
    assert (slim["high"] >= slim[["open", "close"]].max(axis=1)).all()
    pd.testing.assert_frame_equal(frames["Simple"], slim)
    pd.testing.assert_frame_equal(frames["Heavy"], slim)
    assert slim.attrs == {"open_candle": None, "tf": "1min", "symbol": "SBER"}


def test_several_symbols_give_a_symbol_time_multiindex(http) -> None:
    start, end = PAST, PAST + pd.Timedelta(days=3)
    both = history(http, ["SBER", "GAZP"], "1h", start, end, cache=False)
    check_schema(both)
    assert both.index.names == ["symbol", "time"]
    assert list(both.index.get_level_values("symbol").unique()) == ["SBER", "GAZP"]
    for symbol in ("SBER", "GAZP"):
        alone = history(http, symbol, "1h", start, end, cache=False)
        assert len(alone) == session_candles(start, end, 3600) == 3 * 15
        pd.testing.assert_frame_equal(both.xs(symbol, level="symbol"), alone, check_names=False)
    assert both.attrs["open_candle"] == {"SBER": None, "GAZP": None}


def test_a_symbol_may_name_its_exchange_as_in_the_other_calls(http) -> None:
    start, end = PAST, PAST + pd.Timedelta(days=2)
    named = history(http, "ITS:SOGN", "1h", start, end, cache=False)
    plain = history(http, "SOGN", "1h", start, end, exchange="ITS", cache=False)
    assert len(named) == session_candles(start, end, 3600) == 2 * 15
    pd.testing.assert_frame_equal(named, plain)
    mixed = history(http, ["SBER", "ITS:SOGN"], "1h", start, end, cache=False)
    assert list(mixed.index.get_level_values("symbol").unique()) == ["SBER", "SOGN"]
    pd.testing.assert_frame_equal(mixed.xs("SOGN", level="symbol"), plain, check_names=False)
    assert named.attrs["symbol"] == "SOGN" and "symbol" not in mixed.attrs  # a plot's title


def test_export_of_a_symbol_on_another_exchange(http, tmp_path) -> None:
    written = history_to_dataset(http, ["SBER", "ITS:SOGN"], tmp_path, "D", "2024-01-01",
                                 "2024-01-11")
    assert sorted(written["symbol"]) == ["SBER", "SOGN"]
    assert {p.split("/exchange=")[1].split("/")[0] for p in written["path"]} == {"ITS", "MOEX"}
    data = pd.read_parquet(tmp_path)
    sogn = data[data["symbol"] == "SOGN"].set_index("time").sort_index()
    expected = history(http, "SOGN", "D", "2024-01-01", "2024-01-11", exchange="ITS", cache=False)
    np.testing.assert_array_equal(sogn["close"].to_numpy(), expected["close"].to_numpy())


def test_many_pages_equal_one_request(http, monkeypatch) -> None:
    start, end = PAST, PAST + pd.Timedelta(days=2)
    whole = history(http, "SBER", "1min", start, end, cache=False)
    assert len(http.ranges) == 1 and len(whole) == session_candles(start, end)
    http.reset()
    monkeypatch.setattr(history_module, "CANDLES_PER_REQUEST", 500)
    monkeypatch.setattr(sim_routes, "MAX_CANDLES", 200)  # the server stops early, names `next`
    paged = history(http, "SBER", "1min", start, end, cache=False, max_workers=3)
    # 5 pieces of 500 minutes and one of 380; each in responses of at most 200 candles (`to`
    # is inclusive: a piece has the candles of [from, to + 1 minute))
    first = int(start.timestamp())
    pieces = [(a, min(a + 500 * 60, int(end.timestamp()))) for a in range(first, first + 2 * DAY,
                                                                       500 * 60)]
    responses = [max(1, -(-session_candles(pd.Timestamp(a, unit="s"),
                                            pd.Timestamp(b + 60, unit="s")) // 200))
                 for a, b in pieces]
    assert len(http.ranges) == sum(responses)
    pd.testing.assert_frame_equal(paged, whole)


def test_a_repeated_call_is_served_by_the_cache(http, tmp_path) -> None:
    start, end = PAST, PAST + pd.Timedelta(days=1)
    first = history(http, "SBER", "5min", start, end, cache_dir=tmp_path)
    assert len(http.ranges) == 1 and len(first) == session_candles(start, end, 300)
    http.reset()
    second = history(http, "SBER", "5min", start, end, cache_dir=tmp_path)
    assert http.ranges == [] and http.paths == []
    pd.testing.assert_frame_equal(second, first)
    inner = history(http, "SBER", "5min", start + pd.Timedelta(hours=1), end, cache_dir=tmp_path)
    assert http.ranges == []
    pd.testing.assert_frame_equal(inner, first.loc[start + pd.Timedelta(hours=1):])


def test_a_partial_overlap_fetches_only_the_gap(http, tmp_path) -> None:
    day1, day2 = PAST, PAST + pd.Timedelta(days=1)
    history(http, "SBER", "1min", day1, day2, cache_dir=tmp_path)
    http.reset()
    wider = history(http, "SBER", "1min", day1 - pd.Timedelta(hours=2),
                    day2 + pd.Timedelta(hours=3), cache_dir=tmp_path)
    gaps = sorted(http.ranges)
    lo, hi = int(day1.timestamp()), int(day2.timestamp())
    assert gaps == [(lo - 7200, lo), (hi, hi + 3 * 3600)]
    assert len(wider) == session_candles(day1 - pd.Timedelta(hours=2), day2 + pd.Timedelta(hours=3))
    direct = history(http, "SBER", "1min", day1 - pd.Timedelta(hours=2),
                     day2 + pd.Timedelta(hours=3), cache=False)
    pd.testing.assert_frame_equal(wider, direct)


def test_cache_false_bypasses_the_cache(http, tmp_path) -> None:
    for _ in range(2):
        history(http, "SBER", "1h", PAST, PAST + pd.Timedelta(days=2), cache=False,
                cache_dir=tmp_path)
    assert len(http.ranges) == 2
    assert list(tmp_path.iterdir()) == []


def test_the_open_candle_is_returned_but_never_cached(http, tmp_path, sim) -> None:
    frame = history(http, "SBER", "1h", cache_dir=tmp_path)  # default: the last 90 days to now
    opened = pd.Timestamp(frame.attrs["open_candle"])
    assert opened == frame.index[-1]
    now = pd.Timestamp(sim.market.now(), unit="s", tz="UTC")
    assert opened <= now < opened + pd.Timedelta(hours=1)
    assert frame.index[0] >= now - pd.Timedelta(days=90) - pd.Timedelta(hours=1)
    cache = CandleCache(tmp_path)
    key = CacheKey(environment_name(http.base_url), "MOEX", "SBER", None, "1h")
    cached = cache.read(key, 0, 2**40)
    assert cached["time"].max() < opened.timestamp()
    assert max(b for _, b in cache.coverage(key)) <= opened.timestamp()
    http.reset()
    again = history(http, "SBER", "1h", frame.index[0], cache_dir=tmp_path)
    assert http.ranges and min(a for a, _ in http.ranges) >= int(opened.timestamp()) - 3600
    assert pd.Timestamp(again.attrs["open_candle"]) >= opened
    closed = len(frame) - 1
    pd.testing.assert_frame_equal(again.iloc[:closed], frame.iloc[:closed])


def test_a_corrupted_cache_file_is_refetched_with_a_warning(http, tmp_path) -> None:
    start, end = PAST, PAST + pd.Timedelta(days=1)
    first = history(http, "SBER", "15min", start, end, cache_dir=tmp_path)
    part = next(tmp_path.rglob("part.parquet"))
    part.write_bytes(b"garbage" * 10)
    http.reset()
    with pytest.warns(CacheWarning):
        second = history(http, "SBER", "15min", start, end, cache_dir=tmp_path)
    assert len(http.ranges) == 1
    pd.testing.assert_frame_equal(second, first)


def test_empty_ranges_give_empty_typed_frames(http, tmp_path) -> None:
    same = history(http, "SBER", "1min", PAST, PAST, cache_dir=tmp_path)
    assert same.empty and http.ranges == []
    check_schema(same)
    before = history(http, "SBER", "D", "2010-01-01", "2010-06-01", cache_dir=tmp_path)
    assert before.empty and len(http.ranges) == 1
    check_schema(before)
    http.reset()
    history(http, "SBER", "D", "2010-01-01", "2010-06-01", cache_dir=tmp_path)
    assert http.ranges == []  # a range without candles is remembered too


def test_times_are_utc_and_tz_converts(http) -> None:
    utc = history(http, ["SBER", "GAZP"], "1h", "2024-03-01", "2024-03-02", cache=False)
    same = history(http, ["SBER", "GAZP"], "1h", "2024-03-01T03:00+03:00",
                   pd.Timestamp("2024-03-02"), cache=False)
    pd.testing.assert_frame_equal(same, utc)
    moscow = history(http, ["SBER", "GAZP"], "1h", "2024-03-01", "2024-03-02",
                     tz="Europe/Moscow", cache=False)
    times = moscow.index.get_level_values("time")
    # the day's first candle holds the opening auction's print at 09:59 MSK
    assert str(times.tz) == "Europe/Moscow" and times[0].hour == 9
    assert (times == utc.index.get_level_values("time")).all()
    single = history(http, "SBER", "1h", "2024-03-01", "2024-03-02", tz="Asia/Tokyo",
                     cache=False)
    assert str(single.index.tz) == "Asia/Tokyo" and single.index[0].hour == 15


def test_unknown_symbol_is_not_found(http) -> None:
    with pytest.raises(NotFound):
        history(http, ["SBER", "NOSUCH"], "1h", PAST, PAST + pd.Timedelta(days=1), cache=False)


def test_progress_bar_only_when_asked_or_long(http, capsys, monkeypatch) -> None:
    history(http, "SBER", "1h", PAST, PAST + pd.Timedelta(days=1), cache=False)
    assert "req" not in capsys.readouterr().err
    history(http, "SBER", "1h", PAST, PAST + pd.Timedelta(days=1), cache=False, progress=True)
    assert "req" in capsys.readouterr().err
    monkeypatch.setattr(history_module, "CANDLES_PER_REQUEST", 100)
    long = history(http, "SBER", "1min", PAST, PAST + pd.Timedelta(hours=20), cache=False)
    assert len(http.ranges) > 2 + history_module.PROGRESS_MIN_REQUESTS
    assert len(long) == session_candles(PAST, PAST + pd.Timedelta(hours=20))
    assert "SBER 1min" in capsys.readouterr().err
    history(http, "SBER", "1min", PAST, PAST + pd.Timedelta(hours=20), cache=False,
            progress=False)
    assert capsys.readouterr().err == ""


def test_default_start_is_a_window_before_end(http) -> None:
    frame = history(http, "SBER", "1h", end=PAST, cache=False)
    assert frame.index[0] >= PAST - pd.Timedelta(days=90) and frame.index[-1] < PAST
    assert len(frame) == session_candles(PAST - pd.Timedelta(days=90), PAST, 3600)
    assert http.paths == ["/md/v2/history"]


def test_export_writes_a_partitioned_dataset(http, tmp_path) -> None:
    out = tmp_path / "candles"
    written = history_to_dataset(http, ["SBER", "GAZP"], out, "D", "2023-12-01", "2024-02-01")
    assert sorted(zip(written["symbol"], written["year"], strict=True)) == [
        ("GAZP", 2023), ("GAZP", 2024), ("SBER", 2023), ("SBER", 2024)]
    data = pd.read_parquet(out)
    days = trading_days("2023-12-01", "2024-02-01")
    assert len(data) == 2 * days and written["candles"].sum() == 2 * days
    expected = history(http, "GAZP", "D", "2023-12-01", "2024-02-01", cache=False)
    gazp = data[data["symbol"] == "GAZP"].set_index("time").sort_index()
    np.testing.assert_array_equal(gazp["close"].to_numpy(), expected["close"].to_numpy())
    assert (gazp.index == expected.index).all()


def test_the_open_month_is_flagged_and_not_cached(http, tmp_path, sim) -> None:
    now = pd.Timestamp(sim.market.now(), unit="s", tz="UTC")
    frame = history(http, "SBER", "M", now - pd.Timedelta(days=100), cache_dir=tmp_path)
    assert 3 <= len(frame) <= 5
    month = now.tz_localize(None).to_period("M").to_timestamp().tz_localize("UTC")
    assert frame.index[-1] == month and pd.Timestamp(frame.attrs["open_candle"]) == month
    key = CacheKey(environment_name(http.base_url), "MOEX", "SBER", None, "M")
    cached = CandleCache(tmp_path).read(key, 0, 2**40)
    assert len(cached["time"]) == len(frame) - 1  # every closed month, the open one left out
    assert cached["time"].max() < month.timestamp()


def test_export_leaves_the_open_candle_out(http, tmp_path, sim) -> None:
    out = tmp_path / "candles"
    now = pd.Timestamp(sim.market.now(), unit="s", tz="UTC")
    history_to_dataset(http, "SBER", out, "1h", now - pd.Timedelta(hours=5))
    data = pd.read_parquet(out)
    assert 4 <= len(data) <= 5
    assert (data["time"] + pd.Timedelta(hours=1) <= pd.Timestamp(sim.market.now(), unit="s",
                                                                 tz="UTC")).all()


def test_failing_pages_are_retried_or_raised_never_half_cached(fresh_sim, token_for, tmp_path,
                                                               monkeypatch) -> None:
    server = fresh_sim(faults={"http_error_rate": 0.3, "http_error_status": 503})
    session = requests.Session()
    statuses: list[int] = []
    session.hooks["response"].append(  # the candle pages (the cache also asks the server's time)
        lambda r, *a, **k: statuses.append(r.status_code) if "/md/v2/history" in r.url else None)
    quick = RetryPolicy(retries=6, backoff=0.01, max_delay=0.05)
    flaky = Http(server.url, TokenManager(token=token_for(server)), session=session,
                 retries=quick)
    start, end = PAST, PAST + pd.Timedelta(days=3)
    monkeypatch.setattr(history_module, "CANDLES_PER_REQUEST", 500)  # 9 pages per symbol
    try:
        got = history(flaky, ["SBER", "GAZP"], "1min", start, end, cache_dir=tmp_path,
                      max_workers=4)
        assert statuses.count(503) > 0 and statuses.count(200) == 18
        server.faults.reset()
        clean = history(flaky, ["SBER", "GAZP"], "1min", start, end, cache=False)
        pd.testing.assert_frame_equal(got, clean)
        server.faults.http_error_rate = 1.0
        server.faults.http_error_status = 500
        with pytest.raises(ServerError):
            history(flaky, "LKOH", "1min", start, end, cache_dir=tmp_path)
    finally:
        flaky.close()
        session.close()
    key = CacheKey(environment_name(server.url), "MOEX", "LKOH", None, "1min")
    assert CandleCache(tmp_path).coverage(key) == []


def test_threads_sharing_one_cache_agree(http, tmp_path) -> None:
    start = PAST
    results: dict[int, pd.DataFrame] = {}
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            results[i] = history(http, "SBER", "1min", start + pd.Timedelta(hours=3 * i),
                                 start + pd.Timedelta(hours=3 * i + 12), cache_dir=tmp_path)
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 6
    http.reset()
    whole = history(http, "SBER", "1min", start, start + pd.Timedelta(hours=27),
                    cache_dir=tmp_path)
    assert http.ranges == [] and len(whole) == session_candles(start, start + pd.Timedelta(hours=27))
    for i, part in results.items():
        lo, hi = start + pd.Timedelta(hours=3 * i), start + pd.Timedelta(hours=3 * i + 12)
        pd.testing.assert_frame_equal(part, whole[(whole.index >= lo) & (whole.index < hi)])


def test_export_merges_existing_files_and_remembers_empty_ranges(http, tmp_path) -> None:
    out = tmp_path / "candles"
    symbols = ["SBER", "GAZP", "LKOH"]
    empty = history_to_dataset(http, symbols, out, "D", "2016-01-01", "2016-06-01")
    assert empty.empty and list(out.rglob("*.parquet")) == []  # before the history: no data
    http.reset()
    assert history_to_dataset(http, symbols, out, "D", "2016-01-01", "2016-06-01").empty
    assert http.ranges == []  # the manifest says the range is done: nothing asked again
    history_to_dataset(http, symbols, out, "D", "2024-01-01", "2024-02-01")
    http.reset()
    more = history_to_dataset(http, symbols, out, "D", "2024-01-15", "2024-03-01")
    days = trading_days("2024-01-01", "2024-03-01")  # Jan 1 - Feb 29, merged with the first run
    assert sorted(more["candles"]) == [days] * 3
    first_day = int(pd.Timestamp("2024-02-01", tz="UTC").timestamp())
    assert all(a >= first_day for a, _ in http.ranges)  # only February was fetched
    data = pd.read_parquet(out)
    assert len(data) == 3 * days and not data.duplicated(["symbol", "time"]).any()


def test_export_holds_a_bounded_window_of_series_years(http, tmp_path, monkeypatch) -> None:
    """Memory: pages of at most max_workers * UNITS_IN_FLIGHT_PER_WORKER series-years are
    fetched before the oldest of them is written."""
    events: list[tuple[str, object]] = []
    real_fetch, real_store = download_module.fetch_range, download_module.DatasetStore.store

    def fetch(http_, query, a, b):
        events.append(("fetch", (query.symbol, pd.Timestamp(a, unit="s").year)))
        return real_fetch(http_, query, a, b)

    def store(self, key, columns, covered):
        events.append(("write", None))
        return real_store(self, key, columns, covered)

    monkeypatch.setattr(download_module, "fetch_range", fetch)
    monkeypatch.setattr(download_module.DatasetStore, "store", store)
    symbols = ["SBER", "GAZP", "LKOH", "GMKN", "VTBR", "ROSN"]
    written = history_to_dataset(http, symbols, tmp_path, "D", "2021-01-01", "2024-01-01",
                                 max_workers=1)
    assert len(written) == 6 * 3
    window = 1 * download_module.UNITS_IN_FLIGHT_PER_WORKER
    seen: set[object] = set()
    writes = 0
    for kind, unit in events:
        if kind == "fetch":
            seen.add(unit)
        else:
            writes += 1
        assert len(seen) <= writes + window


def test_random_overlapping_calls_match_direct_downloads(http, tmp_path) -> None:
    """Twelve calls over random, overlapping ranges of one month: each equals a download
    without the cache, and every hour is requested from the server at most once."""
    rng = np.random.default_rng(7)
    base = int(PAST.timestamp())
    hours = 31 * 24
    fetched_hours = 0
    for _ in range(12):
        lo, hi = sorted(int(x) for x in rng.integers(0, hours, 2))
        start, end = base + 3600 * lo, base + 3600 * (hi + 1) + int(rng.integers(0, 3600))
        http.reset()
        got = history(http, "GAZP", "1h", start, end, cache_dir=tmp_path)
        fetched_hours += sum(b - a for a, b in http.ranges) / 3600
        direct = history(http, "GAZP", "1h", start, end, cache=False)
        pd.testing.assert_frame_equal(got, direct)
    assert fetched_hours <= hours + 1
