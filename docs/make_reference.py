"""Writes the README's "Every call and its DataFrame" section from the code itself.

Columns come from the empty frames that the code builds (the schema tables of
``invia_data/schema.py``, the order-book and candle frames, the stream's reducers), call
spellings from the signatures, opcodes from ``stream.protocol.OPCODES``; only the HTTP routes
are written here, and ``tests/test_readme_reference.py`` checks each against the request the
call really sends.

    python docs/make_reference.py           # rewrite README.md between the markers
    python docs/make_reference.py --check   # exit 1 when README.md differs
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from invia_data.cache import empty_columns  # noqa: E402
from invia_data.client import Client, connect  # noqa: E402
from invia_data.frames import to_frame  # noqa: E402
from invia_data.history import candle_frame  # noqa: E402
from invia_data.market import book_frame  # noqa: E402
from invia_data.portfolio import portfolio_table  # noqa: E402
from invia_data.schema import (  # noqa: E402
    CURRENCY_PAIR,
    FORTS_RISK,
    MARKET_STATUS,
    MONEY,
    ORDER,
    OWN_TRADE,
    POSITION,
    QUOTE,
    RISK,
    RISK_RATE,
    SECURITY,
    STOP_ORDER,
    SUMMARY,
    TRADE,
    Schema,
)
from invia_data.stream import Stream  # noqa: E402
from invia_data.stream.protocol import OPCODES  # noqa: E402
from invia_data.stream.state import make_state  # noqa: E402

README = ROOT / "README.md"
START = "<!-- reference:start -->"
END = "<!-- reference:end -->"
PLACEHOLDER = "CALLS_TABLE_PLACEHOLDER"
STREAM_EXTRAS = ("health", "gaps")      # Stream methods that return a DataFrame, not a LiveFrame
STREAM_OTHER = {                         # Stream methods that return something else
    "record": "*the folder's `Recorder` (one per folder, shared with the subscriptions' "
              "`record=`) writing every message of the frames to a Parquet dataset "
              "(kind / symbol / date); see Record and replay*",
}

Frame = Callable[[], pd.DataFrame]


def of(schema: Schema, index: str | None = None) -> Frame:
    return lambda: to_frame(schema, [], "Heavy", index=index)


def columns(*names: str) -> Frame:
    return lambda: pd.DataFrame(columns=list(names))


@dataclass(frozen=True)
class Call:
    """A Client call: its routes (the first is the usual one) and its empty frame (None: the
    call returns something else, described by ``note``)."""

    name: str
    routes: tuple[str, ...]
    frame: Frame | None
    note: str = ""


CALLS = (
    Call("time", ("GET /md/v2/time",), None, "a `pd.Timestamp` (UTC), not a frame"),
    Call("securities", ("GET /md/v2/Securities",), of(SECURITY), "search, 25 rows unless `limit=`"),
    Call("instruments", ("GET /md/v2/Securities/{exchange}",), of(SECURITY),
         "every instrument of one exchange"),
    Call("security", ("GET /md/v2/Securities/{exchange}/{symbol}",), of(SECURITY), "one row"),
    Call("quotes", ("GET /md/v2/Securities/{symbols}/quotes",), of(QUOTE),
         "one row per instrument, one request"),
    Call("futures_quote", ("GET /md/v2/Securities/{exchange}/{symbol}/actualFuturesQuote",),
         of(QUOTE), "one row"),
    Call("orderbook", ("GET /md/v2/orderbooks/{exchange}/{symbol}",), lambda: book_frame({}),
         "one row per level; `attrs['time']`"),
    Call("all_trades", ("GET /md/v2/Securities/{exchange}/{symbol}/alltrades",
                        "GET /md/v2/Securities/{exchange}/{symbol}/alltrades/history"),
         of(TRADE, "time"), "`history=True`: past sessions, paged"),
    Call("currency_pairs", ("GET /md/v2/Securities/currencyPairs",), of(CURRENCY_PAIR)),
    Call("available_boards", ("GET /md/v2/Securities/{exchange}/{symbol}/availableBoards",),
         columns("board")),
    Call("risk_rates", ("GET /md/v2/risk/rates",), of(RISK_RATE), "all pages; `attrs['total']`"),
    Call("market_status", ("GET /md/status/{exchange}/{market}",), of(MARKET_STATUS),
         "deprecated route; one row"),
    Call("history", ("GET /md/v2/history",), lambda: candle_frame(empty_columns()),
         "paged, cached; index (symbol, time) for a list of symbols"),
    Call("history_to_dataset", ("GET /md/v2/history",), columns("symbol", "year", "candles", "path"),
         "writes a Parquet dataset, resumable; one row per file"),
    Call("download_universe", ("GET /md/v2/Securities/{exchange}", "GET /md/v2/history"),
         columns("exchange", "symbol", "board", "status", "candles", "files", "requests", "error"),
         "every instrument of an exchange into one dataset, resumable; one row per instrument"),
    Call("portfolios", ("(none: the token's claims)",), lambda: portfolio_table([], [])),
    Call("summary", ("GET /md/v2/Clients/{exchange}/{portfolio}/summary",), of(SUMMARY), "one row"),
    Call("positions", ("GET /md/v2/Clients/{exchange}/{portfolio}/positions",), of(POSITION)),
    Call("position", ("GET /md/v2/Clients/{exchange}/{portfolio}/positions/{symbol}",),
         of(POSITION), "one row"),
    Call("positions_by_login", ("GET /md/v2/Clients/{login}/positions",), of(POSITION)),
    Call("risk", ("GET /md/v2/Clients/{exchange}/{portfolio}/risk",), of(RISK), "one row"),
    Call("forts_risk", ("GET /md/v2/Clients/MOEX/{portfolio}/fortsrisk",), of(FORTS_RISK),
         "one row; `75…` portfolio"),
    Call("money", ("GET /md/v2/Clients/legacy/{exchange}/{portfolio}/money",), of(MONEY),
         "deprecated route; one row"),
    Call("orders", ("GET /md/v2/Clients/{exchange}/{portfolio}/orders",), of(ORDER)),
    Call("order", ("GET /md/v2/Clients/{exchange}/{portfolio}/orders/{order_id}",), of(ORDER),
         "one row"),
    Call("stop_orders", ("GET /md/v2/Clients/{exchange}/{portfolio}/stoporders",),
         of(STOP_ORDER)),
    Call("stop_order", ("GET /md/v2/Clients/{exchange}/{portfolio}/stoporders/{order_id}",),
         of(STOP_ORDER), "one row"),
    Call("own_trades", ("GET /md/v2/Clients/{exchange}/{portfolio}/trades",
                        "GET /md/v2/Clients/{exchange}/{portfolio}/{symbol}/trades"),
         of(OWN_TRADE), "own trades of the session"),
    Call("own_trades_history", ("GET /md/v2/Stats/{exchange}/{portfolio}/history/trades",
                                "GET /md/v2/Stats/{exchange}/{portfolio}/history/trades/{symbol}"),
         of(OWN_TRADE), "past sessions, paged"),
)
NOT_DATA = ("close",)                   # public Client methods that fetch nothing


# --- building the cells -----------------------------------------------------------------------

def parameters(function: Callable[..., Any]) -> tuple[list[str], list[str]]:
    """(by position, by keyword) of a signature, each as written in the parameter table:
    ``name`` or ``name=default`` (``*`` and ``**`` prefixes for variadic ones)."""
    positional: list[str] = []
    keyword: list[str] = []
    for p in inspect.signature(function).parameters.values():
        if p.name == "self":
            continue
        text = p.name if p.default is p.empty else f"{p.name}={p.default!r}"
        if p.kind is p.VAR_POSITIONAL:
            positional.append(f"*{p.name}")
        elif p.kind is p.VAR_KEYWORD:
            keyword.append(f"**{p.name}")
        elif p.kind is p.KEYWORD_ONLY:
            keyword.append(text)
        else:
            positional.append(text)
    return positional, keyword


def parameter_row(label: str, function: Callable[..., Any]) -> str:
    positional, keyword = parameters(function)
    by_position = ", ".join(f"`{p}`" for p in positional) or "-"
    by_keyword = ", ".join(f"`{k}`" for k in keyword) or "-"
    return f"| `{label}` | {by_position} | {by_keyword} |"


def parameter_rows() -> list[str]:
    """Every public call in the order of the tables above: connect, inv.*, inv.stream.*."""
    rows = [parameter_row("invia_data.connect", connect)]
    rows += [parameter_row(f"inv.{name}", getattr(Client, name))
             for name in (*(call.name for call in CALLS), *NOT_DATA)]
    rows += [parameter_row(f"inv.stream.{name}", getattr(Stream, name))
             for name in (*OPCODES, *STREAM_EXTRAS, *STREAM_OTHER, "close")]
    return rows


def spelling(owner: type, name: str, prefix: str) -> str:
    """``inv.orderbook(symbol, depth)``: the parameters that may be given by position."""
    signature = inspect.signature(getattr(owner, name))
    positional = [p.name for p in signature.parameters.values()
                  if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    return f"`{prefix}{name}({', '.join(positional)})`"


class Cells:
    """Frame cells of one table build: a column list seen before is named by its first call."""

    def __init__(self) -> None:
        self.seen: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}

    def frame(self, frame: pd.DataFrame, name: str) -> str:
        index = tuple(str(n) for n in frame.index.names if n is not None)
        cols = tuple(str(c) for c in frame.columns)
        first = self.seen.setdefault((index, cols), name)
        if first != name:
            return f"as `{first}`"
        listed = ", ".join(cols)
        return f"index {', '.join(index)}; {listed}" if index else listed

    def call(self, call: Call) -> str:
        spelled = spelling(Client, call.name, "inv.")
        routes = "<br>".join(f"`{r}`" if r.startswith("GET") else r for r in call.routes)
        what = self.frame(call.frame(), f"inv.{call.name}") if call.frame is not None else ""
        note = f"*{call.note}*" if call.note else ""
        cell = f"{what}<br>{note}" if what and note else what or note
        return f"| {spelled} | {routes} | {cell} |"

    def stream(self, kind: str) -> str:
        spelled = spelling(Stream, kind, "inv.stream.")
        cell = self.frame(stream_frame(kind), f"inv.stream.{kind}")
        return f"| {spelled} | `{OPCODES[kind]}` | {cell} |"

    def stream_other(self, name: str) -> str:
        spelled = spelling(Stream, name, "inv.stream.")
        return f"| {spelled} | (no request) | {STREAM_OTHER[name]} |"

    def stream_extra(self, name: str) -> str:
        spelled = spelling(Stream, name, "inv.stream.")
        cell = self.frame(stream_extra_frame(name), f"inv.stream.{name}")
        return f"| {spelled} | (no request) | {cell} |"


def stream_frame(kind: str) -> pd.DataFrame:
    state = make_state(kind, "Slim")
    return state.frame(state.snapshot())


def stream_extra_frame(name: str) -> pd.DataFrame:
    """The frame of an unconnected stream (nothing is opened: the socket starts on first use)."""
    stream = Stream("ws://127.0.0.1:9/cws", lambda: "")
    try:
        return getattr(stream, name)()
    finally:
        stream.close()


def section() -> str:
    cells = Cells()
    lines = [
        START,
        "## Every call and its DataFrame",
        "",
        "Generated by `docs/make_reference.py` from the schema tables; "
        "`tests/test_readme_reference.py` fails when this table is out of date.",
        "The frame is the same whichever wire format `format=` picks (`Simple`, `Slim`, "
        "`Heavy`); times are tz-aware UTC (`tz=` converts); an empty answer is an empty "
        "frame with these columns and dtypes.",
        "",
        "Dtypes, one rule for every frame: text is `str`; times `datetime64[ns, UTC]`; prices "
        "and money `float64`; quantities in units (`*_units`) `float64` (a currency or bond "
        "position holds fractions of a unit); quantities in lots keep the API's documented "
        "type, `Int64` (nullable) for whole lots and `float64` where it documents a number "
        "(positions, whose money lots are fractional, and orders' filled lots); candle volume "
        "`int64`. Ids of the account's own records (orders, stop orders, own trades) are `str`, "
        "as the API sends them; the exchange's all-trades numbers are `Int64`, since "
        "`from_id`/`to_id` filter them as numbers.",
        "",
        "| Call | Route | DataFrame: index; columns |",
        "|---|---|---|",
        *(cells.call(call) for call in CALLS),
        "",
        "Live: each `inv.stream.*` subscription returns a `LiveFrame` whose `.df` is kept up "
        "to date over one WebSocket (`/cws`); its columns are those of the HTTP call named.",
        "",
        "| Subscription | Opcode | DataFrame: index; columns |",
        "|---|---|---|",
        *(cells.stream(kind) for kind in OPCODES),
        *(cells.stream_extra(name) for name in STREAM_EXTRAS),
        *(cells.stream_other(name) for name in STREAM_OTHER),
        "",
        "### Parameters",
        "",
        "One rule for positions: the subject first (the symbol or symbols, the portfolio, the "
        "order id, the search query), then the call's main parameter (a book's `depth`, a "
        "candle `tf`, a dataset `path`), everything else by keyword. The same call on "
        "`inv.` and `inv.stream.` takes the same positions. `depth` always counts order-book "
        "levels per side; time ranges are `start=` (inclusive) and `end=` (exclusive).",
        "",
        "| Call | By position | By keyword only (default) |",
        "|---|---|---|",
        *parameter_rows(),
        END,
    ]
    return "\n".join(lines)


# --- the README -------------------------------------------------------------------------------

def current_section(text: str) -> str | None:
    """The section as the README holds it now (None: no markers)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start:end + len(END)]


def updated(text: str) -> str:
    """The README text with the section replaced (or put where the placeholder line is)."""
    new = section()
    old = current_section(text)
    if old is not None:
        return text.replace(old, new, 1)
    lines = text.split("\n")
    if PLACEHOLDER not in lines:
        raise SystemExit(f"README.md has neither the markers nor a {PLACEHOLDER} line")
    lines[lines.index(PLACEHOLDER)] = new
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    fresh = updated(text)
    if "--check" in argv:
        if fresh != text:
            print("README.md's reference section is stale: run python docs/make_reference.py")
            return 1
        return 0
    if fresh != text:
        README.write_text(fresh, encoding="utf-8")
        print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
