"""Market calls against the simulator, in all three wire formats."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pytest
from fakes import demo_claims, make_jwt, market_time, scripted_session, sequence

import invia_data
from invia_data import market as market_module
from invia_data.errors import AuthError, BadRequest, InvalidArgument, NotFound
from invia_data.frames import UTC_DTYPE, dtypes
from invia_data.schema import (
    CURRENCY_PAIR,
    FORMATS,
    MARKET_STATUS,
    QUOTE,
    RISK_RATE,
    SECURITY,
    TRADE,
)

BOOK_DTYPES = {"side": "str", "level": "int64", "price": "float64", "volume": "Int64",
               "yield": "float64"}


def assert_schema(frame: pd.DataFrame, schema, *, index: str | None = None) -> None:
    expected = dtypes(schema)
    if index is not None:
        assert frame.index.name == index
        assert str(frame.index.dtype) == str(expected.pop(index))
    assert list(frame.columns) == list(expected)
    assert {c: str(t) for c, t in frame.dtypes.items()} == \
        {c: str(pd.api.types.pandas_dtype(t)) for c, t in expected.items()}


def test_time_is_utc_and_near_the_market_clock(client, sim):
    now = client.time()
    assert isinstance(now, pd.Timestamp) and str(now.tz) == "UTC"
    assert abs(now.timestamp() - sim.market.now()) < 60
    moscow = client.time(tz="Europe/Moscow")
    assert str(moscow.tz) == "Europe/Moscow"


@pytest.mark.parametrize("fmt", FORMATS)
def test_securities(client, fmt):
    df = client.securities(limit=5, format=fmt)
    assert_schema(df, SECURITY)
    assert 1 <= len(df) <= 5
    assert (df["lot_size"] > 0).all() and (df["min_step"] > 0).all()
    assert df["rating"].is_monotonic_decreasing or df["rating"].isna().all()
    found = client.securities("SBER", format=fmt)
    assert found["symbol"].iloc[0] == "SBER"


def test_securities_filters_and_paging(client):
    everything = client.securities(limit=100)
    page = client.securities(limit=3, offset=2)
    assert list(page["symbol"]) == list(everything["symbol"].iloc[2:5])
    fx = client.securities(sector="CURR", limit=100)
    assert len(fx) > 0 and set(fx["market"].dropna()) <= {"CURR"}


def scripted_client(*replies):
    """A client on a scripted transport (static token: connect sends nothing)."""
    session, adapter = scripted_session(sequence(*replies))
    inv = invia_data.connect(token=make_jwt(**demo_claims(time.time())),
                             base_url="http://api.test", session=session)
    return inv, adapter


def sent_query(request) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(request.url).query))


@pytest.mark.parametrize("fmt", FORMATS)
def test_instruments_of_one_exchange(client, fmt):
    df = client.instruments(format=fmt)
    assert_schema(df, SECURITY)
    assert len(df) > 0 and (df["exchange"] == "MOEX").all()
    assert df["rating"].is_monotonic_decreasing
    # no default limit: every MOEX instrument, the same ones the search finds
    searched = client.securities(exchange="MOEX", limit=1000, format=fmt)
    assert sorted(df["symbol"]) == sorted(searched["symbol"])
    assert "SPBX" not in set(df["exchange"])


def test_instruments_filters_and_paging(client):
    everything = client.instruments()
    fx = client.instruments(market="curr")
    assert len(fx) > 0 and (fx["market"] == "CURR").all()
    assert len(fx) < len(everything)
    page = client.instruments(limit=3, offset=2)
    assert list(page["symbol"]) == list(everything["symbol"].iloc[2:5])
    other = client.instruments("SPBX")
    assert len(other) > 0 and (other["exchange"] == "SPBX").all()
    assert len(client.instruments(include_old=True)) >= len(everything)


@pytest.mark.parametrize("fmt", FORMATS)
def test_instruments_empty_result_is_a_typed_frame(client, fmt):
    assert_schema(empty := client.instruments(market="SPBX", format=fmt), SECURITY)
    assert empty.empty
    beyond = client.instruments(offset=10_000, format=fmt, tz="Europe/Moscow")
    assert beyond.empty and list(beyond.columns) == list(SECURITY.columns)
    assert str(beyond["cancellation"].dt.tz) == "Europe/Moscow"


def test_instruments_sends_the_route_and_its_parameters():
    inv, adapter = scripted_client((200, [], {}))
    with inv:
        inv.instruments("spbx", market="Fond", include_old=True, include_non_base_boards=True,
                        limit=7, offset=3, format="slim")
        inv.instruments()
    first, second = adapter.requests
    assert urlsplit(first.url).path == "/md/v2/Securities/SPBX"
    assert sent_query(first) == {"market": "FOND", "includeOld": "true",
                                 "includeNonBaseBoards": "true", "limit": "7", "offset": "3",
                                 "format": "Slim"}
    assert urlsplit(second.url).path == "/md/v2/Securities/MOEX"
    assert sent_query(second) == {"format": "Heavy"}          # no limit: all instruments
    assert first.headers["Authorization"].startswith("Bearer ")


def test_instruments_need_a_token(sim):
    with invia_data.connect(env=sim.url) as anonymous:
        with pytest.raises(AuthError, match="needs credentials"):
            anonymous.instruments()


@pytest.mark.parametrize("fmt", FORMATS)
def test_market_status(client, fmt):
    df = client.market_status("FOND", format=fmt)
    assert_schema(df, MARKET_STATUS)
    assert list(df.columns) == ["market", "status"] and len(df) == 1
    assert df["market"].iloc[0] == "FOND" and df["status"].iloc[0] in ("open", "closed")
    pd.testing.assert_frame_equal(client.market_status("fond", exchange="moex", format=fmt), df)


def test_market_status_is_public_and_follows_the_market(sim, client):
    with invia_data.connect(env=sim.url) as anonymous:
        for market in ("FORTS", "FOND", "CURR"):
            df = anonymous.market_status(market)
            assert df["market"].iloc[0] == market
            assert df["status"].iloc[0] in ("open", "closed")
    # the simulated market trades around the clock, so every market it lists is open
    assert client.market_status("FORTS")["status"].iloc[0] == "open"


def test_market_status_route_and_empty_answer():
    inv, adapter = scripted_client((200, None, {}), (200, {"code": "CURR", "status": "closed"}, {}))
    with inv:
        empty = inv.market_status("CURR", exchange="SPBX")
        assert empty.empty and list(empty.columns) == ["market", "status"]
        assert {str(t) for t in empty.dtypes} == {"str"}
        df = inv.market_status("CURR")
    assert urlsplit(adapter.requests[0].url).path == "/md/status/SPBX/CURR"
    assert urlsplit(adapter.requests[1].url).path == "/md/status/MOEX/CURR"
    assert df.to_dict("records") == [{"market": "CURR", "status": "closed"}]


@pytest.mark.parametrize("fmt", FORMATS)
def test_security_one_row(client, fmt):
    df = client.security("SBER", format=fmt)
    assert_schema(df, SECURITY)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["symbol"] == "SBER" and row["exchange"] == "MOEX" and row["lot_size"] == 10


def test_security_same_values_in_every_format(client):
    frames = [client.security("SBER", format=f) for f in FORMATS]
    shared = [c for c in frames[0].columns if all(f[c].notna().all() for f in frames)]
    assert "symbol" in shared and "isin" in shared and "min_step" in shared
    for other in frames[1:]:
        pd.testing.assert_frame_equal(frames[0][shared], other[shared])


def test_unknown_instrument_is_not_found_naming_it(client):
    with pytest.raises(NotFound) as info:
        client.security("NOSUCH")
    assert "MOEX:NOSUCH" in str(info.value)
    with pytest.raises(NotFound, match="NOSUCH"):
        client.orderbook("NOSUCH")


@pytest.mark.parametrize("fmt", FORMATS)
def test_quotes_many_symbols_one_request(counted, fmt):
    inv, adapter = counted
    before = len(adapter.sent)
    df = inv.quotes(["SBER", "MOEX:GAZP", "LKOH"], format=fmt)
    assert len(adapter.sent) == before + 1
    assert_schema(df, QUOTE)
    assert list(df["symbol"]) == ["SBER", "GAZP", "LKOH"]
    assert (df["last_price"] > 0).all()
    assert (df["bid"] < df["ask"]).all()
    assert df["last_price_time"].notna().all()


def test_quotes_spellings_and_time_zone(client):
    df = client.quotes("SBER,GAZP", tz="Europe/Moscow")
    assert list(df["symbol"]) == ["SBER", "GAZP"]
    assert str(df["last_price_time"].dt.tz) == "Europe/Moscow"
    assert len(client.quotes(["SBER", "SBER", "MOEX:SBER"])) == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_orderbook_long_form_sorted(client, fmt):
    df = client.orderbook("SBER", depth=7, format=fmt)
    assert {c: str(t) for c, t in df.dtypes.items()} == BOOK_DTYPES
    bids, asks = df[df["side"] == "bid"], df[df["side"] == "ask"]
    assert 0 < len(bids) <= 7 and 0 < len(asks) <= 7
    assert list(bids["level"]) == list(range(len(bids)))
    assert list(asks["level"]) == list(range(len(asks)))
    assert bids["price"].is_monotonic_decreasing and bids["price"].is_unique
    assert asks["price"].is_monotonic_increasing and asks["price"].is_unique
    assert bids["price"].iloc[0] < asks["price"].iloc[0]
    assert (df["volume"] > 0).all() and (df["price"] > 0).all()
    assert df.attrs["symbol"] == "SBER" and df.attrs["exchange"] == "MOEX"
    assert df.attrs["depth"] == 7
    stamp = pd.Timestamp(df.attrs["time"])  # an ISO string, so attrs survive to_parquet
    assert isinstance(df.attrs["time"], str) and str(stamp.tz) == "UTC"


def test_orderbook_time_zone(client):
    df = client.orderbook("GAZP", depth=1, tz="Europe/Moscow")
    assert df.attrs["time"].endswith("+03:00")
    assert len(df) == 2


def test_empty_book_frame_keeps_dtypes():
    df = market_module.book_frame({"bids": [], "asks": [], "time": None})
    assert df.empty and {c: str(t) for c, t in df.dtypes.items()} == BOOK_DTYPES
    assert df.attrs["time"] is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_trades_current_session(client, fmt):
    df = client.all_trades("SBER", limit=50, format=fmt)
    assert_schema(df, TRADE, index="time")
    assert 0 < len(df) <= 50
    assert df.index.is_monotonic_increasing
    assert df["id"].is_monotonic_increasing and df["id"].is_unique
    assert (df["price"] > 0).all() and (df["qty"] > 0).all()
    assert set(df["side"]) <= {"buy", "sell"}
    assert (df["symbol"] == "SBER").all()


def test_all_trades_descending_side_and_window(client):
    newest = client.all_trades("SBER", limit=10, descending=True)
    assert newest["id"].is_monotonic_decreasing
    buys = client.all_trades("SBER", limit=20, side="buy")
    assert len(buys) > 0 and (buys["side"] == "buy").all()
    some = client.all_trades("SBER", limit=200)
    start, end = some.index[10], some.index[-10]
    window = client.all_trades("SBER", start=start, end=end)
    assert len(window) > 0
    assert window.index.min() >= start.floor("s") and window.index.max() < end.ceil("s") + pd.Timedelta("1s")


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_trades_in_the_future_is_an_empty_typed_frame(client, sim, fmt):
    start = market_time(sim) + pd.Timedelta(days=365)
    df = client.all_trades("SBER", start=start, end=start + pd.Timedelta(hours=1), format=fmt)
    assert df.empty
    assert_schema(df, TRADE, index="time")
    assert str(df.index.dtype) == UTC_DTYPE


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_trades_past_sessions(client, sim, fmt):
    # 11:00-13:00 MSK of the day before (a trading day: the simulator starts on a Wednesday)
    end = market_time(sim).normalize() - pd.Timedelta(days=1) + pd.Timedelta(hours=10)
    df = client.all_trades("SBER", start=end - pd.Timedelta(hours=2), end=end, history=True, limit=500,
                           format=fmt)
    assert_schema(df, TRADE, index="time")
    assert 0 < len(df) <= 500
    assert (df["price"] > 0).all() and df["id"].is_unique


def test_all_trades_history_pages_until_total(counted, sim, monkeypatch):
    inv, adapter = counted
    end = market_time(sim).normalize() - pd.Timedelta(days=2) + pd.Timedelta(hours=10)
    start = end - pd.Timedelta(hours=1)
    whole = inv.all_trades("SBER", start=start, end=end, history=True)
    assert len(whole) > 30
    monkeypatch.setattr(market_module, "HISTORY_PAGE", 10)
    before = len(adapter.sent)
    paged = inv.all_trades("SBER", start=start, end=end, history=True)
    pages = len(adapter.sent) - before
    assert pages == -(-len(whole) // 10)      # ceil: stops at the server's total
    pd.testing.assert_frame_equal(paged, whole)
    before = len(adapter.sent)
    capped = inv.all_trades("SBER", start=start, end=end, history=True, limit=25)
    assert len(capped) == 25 and len(adapter.sent) - before == 3
    assert list(capped["id"]) == list(whole["id"].iloc[:25])


def test_currency_pairs(client):
    df = client.currency_pairs()
    assert_schema(df, CURRENCY_PAIR)
    assert len(df) > 0 and df["symbol_tom"].str.endswith("TOM").all()


def test_available_boards(client):
    df = client.available_boards("SBER")
    assert list(df.columns) == ["board"] and str(df["board"].dtype) == "str"
    assert "TQBR" in set(df["board"])


def test_risk_rates_all_pages(client, monkeypatch):
    df = client.risk_rates(1)
    assert_schema(df, RISK_RATE)
    assert len(df) == df.attrs["total"] and len(df) > 0
    monkeypatch.setattr(market_module, "RISK_RATES_PAGE", 2)
    paged = client.risk_rates(1)
    pd.testing.assert_frame_equal(paged, df)
    assert len(client.risk_rates(1, limit=1)) == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_futures_quote(client, fmt):
    df = client.futures_quote("SI", format=fmt)
    assert_schema(df, QUOTE)
    assert len(df) == 1 and df["symbol"].iloc[0].upper().startswith("SI-")
    assert df["last_price"].iloc[0] > 0


def test_server_side_bad_request_carries_its_message(client):
    with pytest.raises(BadRequest) as info:
        client.http.get("/md/v2/orderbooks/MOEX/SBER", {"depth": 99})
    assert "depth" in info.value.message


BAD_CALLS = {
    "depth 0": lambda c: c.orderbook("SBER", depth=0),
    "depth 51": lambda c: c.orderbook("SBER", depth=51),
    "depth float": lambda c: c.orderbook("SBER", depth=2.5),
    "unknown format": lambda c: c.security("SBER", format="Medium"),
    "start after end": lambda c: c.all_trades("SBER", start="2024-01-02", end="2024-01-01"),
    "bad time": lambda c: c.all_trades("SBER", start="yesterday-ish"),
    "bad side": lambda c: c.all_trades("SBER", side="both"),
    "limit 0": lambda c: c.all_trades("SBER", limit=0),
    "history filters": lambda c: c.all_trades("SBER", history=True, side="buy"),
    "bad tz": lambda c: c.quotes("SBER", tz="Mars/Olympus"),
    "empty symbols": lambda c: c.quotes([]),
    "bad symbol": lambda c: c.security("SB ER"),
    "slash in symbol": lambda c: c.orderbook("../SBER"),
    "bad exchange": lambda c: c.security("MO EX:SBER"),
    "bad sector": lambda c: c.securities(sector="BONDS"),
    "instruments bad market": lambda c: c.instruments(market="BONDS"),
    "instruments bad exchange": lambda c: c.instruments("MO EX"),
    "instruments limit 0": lambda c: c.instruments(limit=0),
    "instruments negative offset": lambda c: c.instruments(offset=-1),
    "instruments include_old text": lambda c: c.instruments(include_old="yes"),
    "instruments bad format": lambda c: c.instruments(format="xml"),
    "status bad market": lambda c: c.market_status("BONDS"),
    "status no market": lambda c: c.market_status(None),
    "status bad exchange": lambda c: c.market_status("FOND", exchange="MO/EX"),
    "status bad tz": lambda c: c.market_status("FOND", tz="Mars/Olympus"),
    "negative offset": lambda c: c.securities(offset=-1),
    "bad category": lambda c: c.risk_rates("one"),
    "bad ticker": lambda c: c.risk_rates(1, ticker=5),
    "bad timeframe": lambda c: c.history("SBER", tf="7 parsecs", cache=False),
    "history start after end": lambda c: c.history("SBER", start="2024-02-01",
                                                    end="2024-01-01", cache=False),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises_before_any_request(counted, name):
    inv, adapter = counted
    before = list(adapter.sent)
    with pytest.raises(InvalidArgument):
        BAD_CALLS[name](inv)
    assert adapter.sent == before


def test_ms_precision_of_trade_times(client):
    df = client.all_trades("SBER", limit=20)
    assert (df.index.asi8 % 1_000_000 == 0).all()        # whole milliseconds
    assert np.all(np.diff(df.index.asi8) >= 0)


def test_symbols_are_spelt_in_capitals_whatever_the_user_typed(client):
    assert client.orderbook("sber", 1).attrs["symbol"] == "SBER"
    assert client.quotes("sber")["symbol"].tolist() == ["SBER"]
    many = client.history(["sber", "GAZP"], tf="D", start="2024-01-01", end="2024-02-01")
    assert list(many.index.get_level_values("symbol").unique()) == ["SBER", "GAZP"]
    assert set(many.attrs["open_candle"]) == {"SBER", "GAZP"}


def test_a_range_error_shows_the_times_as_understood(client):
    with pytest.raises(InvalidArgument, match="2024-03-01T00:00:00.*2024-02-01T00:00:00"):
        client.history("SBER", start="01.03.2024", end="01.02.2024")


@pytest.mark.parametrize("call", [
    lambda c: c.quotes("SOGN"), lambda c: c.security("SOGN"), lambda c: c.orderbook("SOGN"),
    lambda c: c.all_trades("SOGN"), lambda c: c.history("SOGN", tf="D")])
def test_a_symbol_of_another_exchange_is_answered_with_its_spelling(client, call):
    with pytest.raises(NotFound, match="SOGN is listed on ITS, not MOEX: write 'ITS:SOGN'"):
        call(client)


def test_a_misspelt_symbol_is_answered_with_the_near_names(client):
    with pytest.raises(NotFound, match="Did you mean 'SBER'"):
        client.orderbook("SBRE")
    with pytest.raises(NotFound, match="MOEX:SBRE.*Did you mean 'SBER'"):
        client.quotes(["GAZP", "SBRE"])


def test_a_subscription_to_an_unknown_symbol_is_answered_like_the_http_call(client):
    with pytest.raises(NotFound, match="SOGN is listed on ITS, not MOEX: write 'ITS:SOGN'"):
        client.stream.orderbook("SOGN")
    with pytest.raises(NotFound, match="Did you mean 'SBER'"):
        client.stream.all_trades("SBRE")
    with pytest.raises(NotFound, match="MOEX:SBRE.*Did you mean 'SBER'"):
        client.stream.quotes(["GAZP", "SBRE"])


def test_a_list_with_an_unknown_symbol_names_the_option_that_returns_the_others(client):
    with pytest.raises(NotFound, match="MOEX:SBRE not found; errors='warn' returns the other "
                                       "symbols. Did you mean 'SBER'"):
        client.history(["GAZP", "SBRE"], "D", period="1mo")
    with pytest.raises(NotFound) as single:
        client.history("SBRE", "D", period="1mo")
    assert "errors=" not in str(single.value)


def test_the_hint_costs_one_request_and_only_after_a_404(counted):
    inv, adapter = counted
    start = len(adapter.sent)
    inv.orderbook("SBER", 1)
    assert len(adapter.sent) == start + 1
    with pytest.raises(NotFound, match="Did you mean"):
        inv.orderbook("SBRE", 1)
    assert len(adapter.sent) == start + 3  # the 404, then one search


def test_no_hint_when_nothing_is_near(client):
    with pytest.raises(NotFound) as info:
        client.orderbook("QQQQQQ")
    assert "Did you mean" not in str(info.value) and "listed on" not in str(info.value)
