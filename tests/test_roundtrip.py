"""Every frame a call or a LiveFrame returns survives pandas' own round trips: Parquet, Feather
and pickle, with no warning (pandas writes ``attrs`` as JSON, so they must be JSON-safe).

Text columns are pandas' ``str`` dtype. pandas 2.x reads them back from Parquet and Feather as
``object`` unless ``pd.options.future.infer_string = True`` (the default from pandas 3): with it
the round trip is exact, without it the values are."""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import invia_data

PAST = "2024-03-01"

CALLS: dict[str, Callable[[invia_data.Client], pd.DataFrame]] = {
    "history": lambda c: c.history("SBER", tf="D", start="2024-01-01"),
    "history_open": lambda c: c.history("SBER", tf="1h"),
    "history_many": lambda c: c.history(["SBER", "GAZP"], tf="1h", start=PAST, end="2024-03-03"),
    "history_zone": lambda c: c.history("SBER", tf="1h", tz="Europe/Moscow"),
    "orderbook": lambda c: c.orderbook("SBER", 10),
    "orderbook_zone": lambda c: c.orderbook("SBER", 5, tz="Europe/Moscow"),
    "quotes": lambda c: c.quotes(["SBER", "GAZP"]),
    "securities": lambda c: c.securities("SBER"),
    "security": lambda c: c.security("SBER"),
    "all_trades": lambda c: c.all_trades("SBER"),
    "currency_pairs": lambda c: c.currency_pairs(),
    "risk_rates": lambda c: c.risk_rates(1),
    "summary": lambda c: c.summary(),
    "positions": lambda c: c.positions(),
    "risk": lambda c: c.risk(),
    "orders": lambda c: c.orders(),
    "stop_orders": lambda c: c.stop_orders(),
    "own_trades": lambda c: c.own_trades(),
    "own_trades_history": lambda c: c.own_trades_history(),
    "all_trades_history": lambda c: c.all_trades("SBER", start=PAST, end="2024-03-02",
                                                 history=True, limit=500),
    "instruments": lambda c: c.instruments(),
    "futures_quote": lambda c: c.futures_quote("SI"),
    "available_boards": lambda c: c.available_boards("SBER"),
    "forts_risk": lambda c: c.forts_risk(),
    "money": lambda c: c.money(),
    "portfolios": lambda c: c.portfolios(),
}


PANDAS_2 = int(pd.__version__.split(".")[0]) < 3


def _read_back(path: Path) -> dict[str, pd.DataFrame]:
    return {"parquet": pd.read_parquet(path / "f.parquet"),
            "feather": pd.read_feather(path / "f.feather"),
            "pickle": pickle.loads((path / "f.pkl").read_bytes())}


def _round_trips(frame: pd.DataFrame, path: Path) -> dict[str, pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame.to_parquet(path / "f.parquet")
        frame.to_feather(path / "f.feather")
        frame.to_pickle(path / "f.pkl")
        if PANDAS_2:
            with pd.option_context("future.infer_string", True):
                return _read_back(path)
        return _read_back(path)


def _check(frame: pd.DataFrame, tmp_path: Path) -> None:
    assert len(frame), "a round trip of an empty frame proves little"
    json.dumps(frame.attrs)  # JSON-safe, the way pandas stores attrs in Parquet and Feather
    for how, back in _round_trips(frame, tmp_path).items():
        # pandas 2 with the option also reads the column labels as str: the labels are equal
        pd.testing.assert_frame_equal(back, frame, check_freq=False, obj=how,
                                      check_column_type=not PANDAS_2)
        assert back.attrs == frame.attrs, how
    if PANDAS_2:  # without the option: the same values, text as object
        for how, back in _read_back(tmp_path).items():
            back = back.astype(frame.dtypes.to_dict())
            pd.testing.assert_frame_equal(back, frame, check_freq=False, check_index_type=False,
                                          check_column_type=False, obj=how)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_call_frame_round_trips(client, name, tmp_path):
    _check(CALLS[name](client), tmp_path)


def test_live_frames_round_trip(client, tmp_path):
    stream = client.stream
    frames = {"orderbook": stream.orderbook("SBER", 5), "quotes": stream.quotes("SBER"),
              "all_trades": stream.all_trades("SBER", recent=20),
              "bars": stream.bars("SBER", "1min", start=client.time() - pd.Timedelta(hours=1))}
    try:
        for name, live in frames.items():
            live.wait(timeout=10)
            _check(live.df, tmp_path / name if (tmp_path / name).mkdir() is None else tmp_path)
        _check(stream.health(), tmp_path)
    finally:
        for live in frames.values():
            live.close()


def _attrs_values(attrs: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in attrs.values():
        out += _attrs_values(value) if isinstance(value, dict) else [value]
    return out


def test_times_in_attrs_are_iso_strings_that_read_back_exactly(client):
    book = client.orderbook("SBER", 1, tz="Europe/Moscow")
    many = client.history(["SBER", "GAZP"], tf="1h")
    for value in [book.attrs["time"], *_attrs_values(many.attrs["open_candle"])]:
        assert isinstance(value, str)
        assert pd.Timestamp(value).isoformat(timespec="microseconds") == value
    assert pd.Timestamp(many.attrs["open_candle"]["SBER"]) == many.xs("SBER").index[-1]


def test_one_dtype_rule_for_quantities_and_ids(client):
    """Units are float64 everywhere; lots follow the API's documented type (Int64 or
    float64); ids of the account's own records are str, exchange trade numbers Int64."""
    frames = {name: CALLS[name](client) for name in ("orders", "stop_orders", "own_trades",
                                                      "own_trades_history", "positions",
                                                      "all_trades", "orderbook", "quotes")}
    units = {(n, c): str(t) for n, f in frames.items() for c, t in f.dtypes.items()
             if c.endswith("_units")}
    assert units and set(units.values()) == {"float64"}, units
    for name in ("orders", "stop_orders", "own_trades", "own_trades_history"):
        assert str(frames[name]["id"].dtype) == "str", name
    assert str(frames["all_trades"]["id"].dtype) == "Int64"
    lots = {str(frames[n][c].dtype) for n, c in [("orders", "qty_batch"), ("own_trades", "qty"),
                                                 ("all_trades", "qty"), ("orderbook", "volume"),
                                                 ("quotes", "bid_vol")]}
    assert lots == {"Int64"}
