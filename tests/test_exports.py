"""The public API: exactly these names, each importable, quiet on import."""

from __future__ import annotations

import logging
import subprocess
import sys

import invia_data
from invia_data import errors

EXPECTED = {
    "APIError", "AuthError", "BadRequest", "Client", "Forbidden", "InvalidArgument",
    "InviaError", "LiveFrame", "NotFound", "RateLimited", "ServerError", "Stream",
    "StreamClosed", "ClientClosed", "InviaWarning", "StreamError", "StreamTimeout",
    "TransportError", "DecodeError", "RequestTimeout", "Timeout", "__version__", "book_stats", "connect",
    "Replay", "replay", "read_recording", "compact_recording",
}


def test_all_is_exactly_the_public_api():
    assert set(invia_data.__all__) == EXPECTED
    assert len(invia_data.__all__) == len(EXPECTED)
    for name in invia_data.__all__:
        assert hasattr(invia_data, name), name


def test_exceptions_are_the_tree_of_errors_py():
    for name in EXPECTED - {"Client", "connect", "__version__", "LiveFrame", "Stream", "Replay",
                            "replay", "read_recording", "compact_recording", "InviaWarning",
                            "book_stats"}:
        cls = getattr(invia_data, name)
        assert cls is getattr(errors, name)
        assert issubclass(cls, errors.InviaError)
    assert invia_data.InviaWarning is errors.InviaWarning
    assert issubclass(errors.InviaWarning, UserWarning)


def test_live_frame_and_stream_are_the_stream_layer():
    assert invia_data.LiveFrame.__module__ == "invia_data.stream.live"
    assert invia_data.Stream.__module__ == "invia_data.stream.stream"


def test_connect_and_client_are_the_facade():
    assert callable(invia_data.connect)
    assert invia_data.Client.__module__ == "invia_data.client"
    for call in ("time", "securities", "instruments", "market_status", "security", "quotes", "orderbook", "all_trades",
                 "currency_pairs", "available_boards", "risk_rates", "futures_quote",
                 "summary", "positions", "position", "risk", "forts_risk", "money", "orders",
                 "order", "stop_orders", "stop_order", "own_trades", "own_trades_history",
                 "positions_by_login", "portfolios", "history", "close"):
        assert callable(getattr(invia_data.Client, call)), call


def test_import_adds_no_handlers_and_prints_nothing():
    for name in ("invia_data", "invia_data.http", "invia_data.stream", "invia_data.sim"):
        assert logging.getLogger(name).handlers == []
    out = subprocess.run([sys.executable, "-c", "import invia_data"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


def test_the_license_is_an_spdx_string_so_installs_build_without_deprecation_warnings():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '\nlicense = "MIT"\n' in text  # a TOML table here is deprecated by setuptools 77+
    assert 'requires = ["setuptools>=77"]' in text  # the first release reading that string


def test_the_package_help_names_only_calls_that_exist():
    """help(invia_data) is a newcomer's map: every call and module it names is there."""
    import importlib
    import re

    doc = invia_data.__doc__ or ""
    calls = set(re.findall(r"\binv\.(\w+)", doc))
    assert {"history", "quotes", "stream", "own_trades_history"} <= calls
    for name in calls:
        assert hasattr(invia_data.Client, name), f"inv.{name}"
    stream_bullet = doc[doc.index("``inv.stream``"):doc.index(":func:`replay`")]
    for name in re.findall(r"``(\w+)(?:\(\))?``", stream_bullet):
        assert hasattr(invia_data.Stream, name), f"inv.stream.{name}"
    for module in re.findall(r":mod:`([\w.]+)`", doc):
        importlib.import_module(module)
    plots = importlib.import_module("invia_data.plots")
    for chart in ("candles", "depth", "spread", "trade_tape", "volume_profile", "pnl"):
        assert callable(getattr(plots, chart)), chart


def test_the_package_namespace_holds_the_public_api_and_its_modules_only():
    import types

    leaked = [name for name in dir(invia_data) if not name.startswith("_")
              and name not in invia_data.__all__
              and not isinstance(getattr(invia_data, name), types.ModuleType)]
    assert leaked == []
