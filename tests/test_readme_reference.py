"""The README's reference section is what docs/make_reference.py writes now, lists every call
and subscription, and each listed route and frame is what the call really requests and returns."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakes import demo_claims, make_jwt

from invia_data.auth import TokenManager
from invia_data.client import Client
from invia_data.stream import Stream
from invia_data.stream.protocol import OPCODES

ROOT = Path(__file__).resolve().parent.parent


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("make_reference", ROOT / "docs" / "make_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_reference"] = module   # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ref = load_script()
CALLS = {call.name: call for call in ref.CALLS}


def public_methods(cls: type) -> set[str]:
    return {name for name, value in vars_of(cls).items()
            if not name.startswith("_") and inspect.isfunction(value)}


def vars_of(cls: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        found.update(vars(klass))
    return found


# --- the README ---------------------------------------------------------------------------------

def test_readme_section_is_what_the_script_writes_now():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    current = ref.current_section(text)
    assert current is not None, "README.md lacks the reference markers"
    assert current == ref.section(), "stale reference: run python docs/make_reference.py"
    assert ref.updated(text) == text
    assert text.count(ref.START) == 1 and text.count(ref.END) == 1


def test_the_script_fills_the_placeholder_and_then_replaces_only_its_section():
    before = "# Title\n\nintro\n\nCALLS_TABLE_PLACEHOLDER\n\n## Next\n"
    filled = ref.updated(before)
    assert filled.startswith("# Title\n\nintro\n\n" + ref.START)
    assert filled.endswith(ref.END + "\n\n## Next\n")
    stale = filled.replace("| `inv.time()` |", "| `inv.clock()` |")
    assert stale != filled and ref.updated(stale) == filled
    with pytest.raises(SystemExit):
        ref.updated("# nothing to fill\n")


# --- completeness -------------------------------------------------------------------------------

def test_every_client_call_is_listed():
    listed = set(CALLS) | set(ref.NOT_DATA)
    assert public_methods(Client) == listed, (
        f"add to docs/make_reference.py CALLS: {sorted(public_methods(Client) - listed)}; "
        f"listed but gone: {sorted(listed - public_methods(Client))}")
    assert len(CALLS) == len(ref.CALLS)


def test_every_stream_subscription_is_listed():
    section = ref.section()
    listed = set(OPCODES) | set(ref.STREAM_EXTRAS) | set(ref.STREAM_OTHER) | {"close"}
    assert public_methods(Stream) == listed, (
        f"not in the reference: {sorted(public_methods(Stream) - listed)}; "
        f"listed but gone: {sorted(listed - public_methods(Stream))}")
    for kind, opcode in OPCODES.items():
        assert f"`inv.stream.{kind}(" in section and f"`{opcode}`" in section


# --- each route and frame is the call's own -------------------------------------------------------

EMPTY_HISTORY = b'{"history": [], "next": null, "prev": null}'


class RecordingHttp:
    """The HTTP seam answering every route with an empty result, recording the paths asked."""

    base_url = "http://api.test"

    def __init__(self) -> None:
        self.paths: list[str] = []

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, auth: bool = True,
            what: str | None = None) -> Any:
        self.paths.append(path)
        return int(time.time()) if path == "/md/v2/time" else None

    def get_bytes(self, path: str, params: Mapping[str, Any] | None = None, *,
                  auth: bool = True, what: str | None = None) -> bytes:
        self.paths.append(path)
        return EMPTY_HISTORY

    def close(self) -> None:
        pass


def listing_sber(inv: Client) -> Client:
    """The client with an instrument listing of one share (the recording server lists none)."""
    row = {"symbol": "SBER", "exchange": "MOEX", "board": "TQBR", "primary_board": "TQBR",
           "type": "CS"}
    inv.instruments = lambda *args, **kwargs: pd.DataFrame([row])  # type: ignore[method-assign]
    return inv


Sample = Callable[[Client, Path], Any]

# one invocation per listed route of each call
SAMPLES: dict[str, list[Sample]] = {
    "time": [lambda c, _: c.time()],
    "securities": [lambda c, _: c.securities("SBER")],
    "instruments": [lambda c, _: c.instruments("SPBX")],
    "security": [lambda c, _: c.security("SBER")],
    "quotes": [lambda c, _: c.quotes(["SBER", "GAZP"])],
    "futures_quote": [lambda c, _: c.futures_quote("SI")],
    "orderbook": [lambda c, _: c.orderbook("SBER")],
    "all_trades": [lambda c, _: c.all_trades("SBER", limit=5),
                   lambda c, _: c.all_trades("SBER", history=True)],
    "currency_pairs": [lambda c, _: c.currency_pairs()],
    "available_boards": [lambda c, _: c.available_boards("SBER")],
    "risk_rates": [lambda c, _: c.risk_rates(1)],
    "market_status": [lambda c, _: c.market_status("FOND")],
    "history": [lambda c, _: c.history("SBER", cache=False, progress=False)],
    "history_to_dataset": [lambda c, tmp: c.history_to_dataset("SBER", tmp / "dataset",
                                                                tf="D", progress=False)],
    "download_universe": [
        lambda c, tmp: c.download_universe(tmp / "universe", start="2024-01-01", progress=False),
        lambda c, tmp: listing_sber(c).download_universe(tmp / "universe", start="2024-01-01",
                                                         progress=False)],
    "portfolios": [lambda c, _: c.portfolios()],
    "summary": [lambda c, _: c.summary()],
    "positions": [lambda c, _: c.positions()],
    "position": [lambda c, _: c.position("SBER")],
    "positions_by_login": [lambda c, _: c.positions_by_login()],
    "risk": [lambda c, _: c.risk()],
    "forts_risk": [lambda c, _: c.forts_risk()],
    "money": [lambda c, _: c.money()],
    "orders": [lambda c, _: c.orders()],
    "order": [lambda c, _: c.order(12345)],
    "stop_orders": [lambda c, _: c.stop_orders()],
    "stop_order": [lambda c, _: c.stop_order(12345)],
    "own_trades": [lambda c, _: c.own_trades(), lambda c, _: c.own_trades(symbol="SBER")],
    "own_trades_history": [lambda c, _: c.own_trades_history(),
                           lambda c, _: c.own_trades_history(symbol="SBER")],
}


def route_pattern(route: str) -> re.Pattern[str]:
    """``GET /md/v2/Securities/{exchange}`` -> a regex of the paths it stands for."""
    path = route.removeprefix("GET ")
    parts = re.split(r"(\{\w+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
                      + "$")


def matched_route(path: str, routes: tuple[str, ...]) -> str | None:
    found = [r for r in routes if route_pattern(r).match(path)]
    return found[0] if len(found) == 1 else None


def test_samples_cover_every_listed_call():
    assert set(SAMPLES) == set(CALLS)


@pytest.mark.parametrize("name", list(CALLS))
def test_each_call_requests_its_listed_routes_and_returns_its_listed_frame(name, tmp_path):
    call = CALLS[name]
    http = RecordingHttp()
    tokens = TokenManager(token=make_jwt(**demo_claims(time.time())))
    inv = Client(http, tokens, env="test", ws_url="ws://127.0.0.1:9/cws")  # type: ignore[arg-type]
    used: set[str] = set()
    for sample in SAMPLES[name]:
        before = len(http.paths)
        result = sample(inv, tmp_path)
        asked = [p for p in http.paths[before:] if p != "/md/v2/time" or name == "time"]
        for path in asked:
            route = matched_route(path, call.routes)
            assert route is not None, f"{name} asked {path}, not one of {call.routes}"
            used.add(route)
        if call.frame is None:
            assert isinstance(result, pd.Timestamp)
        else:
            expected = call.frame()
            assert list(result.columns) == list(expected.columns)
            assert list(result.index.names) == list(expected.index.names)
    requested = {r for r in call.routes if r.startswith("GET ")}
    assert used == requested, f"{name}: listed {sorted(requested)}, asked {sorted(used)}"


def test_route_patterns_take_one_segment_per_placeholder():
    pattern = route_pattern("GET /md/v2/Securities/{exchange}/{symbol}")
    assert pattern.match("/md/v2/Securities/MOEX/SBER")
    assert not pattern.match("/md/v2/Securities/MOEX/SBER/quotes")
    assert not pattern.match("/md/v2/Securities/MOEX")


# --- the parameter table and the positional rule ---------------------------------------------------

def readme_parameter_rows() -> dict[str, tuple[list[str], list[str]]]:
    """The README's parameter table: call -> (by position, by keyword), as written there."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("### Parameters"):text.index(ref.END)]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        rows[cells[0].strip("`")] = tuple(  # type: ignore[assignment]
            [] if cell == "-" else re.findall(r"`([^`]*)`", cell) for cell in cells[1:])
    return rows


def public_calls() -> dict[str, Callable[..., Any]]:
    import invia_data

    calls: dict[str, Callable[..., Any]] = {"invia_data.connect": invia_data.connect}
    calls.update({f"inv.{n}": vars_of(Client)[n] for n in public_methods(Client)})
    calls.update({f"inv.stream.{n}": vars_of(Stream)[n] for n in public_methods(Stream)})
    return calls


def test_parameter_table_lists_every_public_call_with_its_signature():
    rows = readme_parameter_rows()
    calls = public_calls()
    assert set(rows) == set(calls)
    for label, function in calls.items():
        by_position, by_keyword = rows[label]
        params = [p for p in inspect.signature(function).parameters.values() if p.name != "self"]
        listed_names = [re.sub(r"^\*+|=.*$", "", item) for item in by_position + by_keyword]
        assert listed_names == [p.name for p in params], label
        for item, p in zip(by_position + by_keyword, params, strict=True):
            keyword_only = p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD)
            assert (item in by_keyword) == keyword_only, f"{label}: {p.name}"
            if p.default is not p.empty:
                assert item.endswith(f"={p.default!r}"), f"{label}: {item} vs {p.default!r}"


def test_positions_are_the_subject_and_at_most_one_main_parameter():
    for label, function in public_calls().items():
        positional = [p for p in inspect.signature(function).parameters.values()
                      if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
        assert len(positional) <= 2, f"{label} takes {[p.name for p in positional]} by position"
        names = {p.name for p in positional}
        for by_keyword in ("start", "end", "board", "format", "tz", "limit", "timeout",
                           "recent", "maxlen"):
            assert by_keyword not in names, f"{label}: {by_keyword} must be keyword-only"
        if names & {"symbol", "symbols", "portfolio"}:  # the exchange is a subject only alone
            assert "exchange" not in names, f"{label}: exchange must be keyword-only"


def test_the_same_call_on_inv_and_inv_stream_takes_the_same_positions():
    shared = public_methods(Client) & public_methods(Stream) - {"close"}
    assert {"orderbook", "quotes", "all_trades", "own_trades", "positions", "summary",
            "orders"} <= shared
    for name in shared:
        http, live = (inspect.signature(vars_of(cls)[name]).parameters.values()
                      for cls in (Client, Stream))
        assert ([p.name for p in http if p.kind is p.POSITIONAL_OR_KEYWORD]
                == [p.name for p in live if p.kind is p.POSITIONAL_OR_KEYWORD]), name
