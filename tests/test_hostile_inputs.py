"""Every hostile input answered: a table of kinds of bad values thrown at every public parameter
of every public call (``connect``, ``inv.*``, ``inv.stream.*``), found by introspection.

Each case ends in one of seven outcomes; the last four must never happen:

* ``library error``  -- InvalidArgument (or another error of the library's tree) before sending;
* ``server 4xx``     -- the server refused it (BadRequest, NotFound, Forbidden ...);
* ``correct answer`` -- an answer to a value that is fine after all (None for an optional
  parameter, ``1.5`` seconds of timeout, ``"5"`` as a timeframe in seconds ...);
* ``raw exception``  -- anything outside :mod:`invia_data.errors` (TypeError, OverflowError,
  OSError ...), or a 5xx from the server;
* ``silently accepted`` -- an answer to a value a user would expect an error for;
* ``wrong request sent`` -- a request whose path is not one of the API's route templates with
  the user's values as single segments (``..`` normalised away, an encoded ``/``);
* ``hang`` -- no outcome within ``HANG_SECONDS``.

Whether a value is bad for a parameter is decided by the parameter's kind (from its name, else
its annotation) in :func:`is_bad`, independently of the library's own checks. Run with ``-s`` to
see the table of counts.
"""

from __future__ import annotations

import inspect
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest
import requests

import invia_data
from invia_data.errors import APIError, InviaError
from invia_data.sim.routing import find_route
from invia_data.stream import Stream

pytestmark = pytest.mark.slow

HANG_SECONDS = 20.0  # far beyond any call here (about 0.1 s), far below a stuck one
FAILURES = ("raw exception", "silently accepted", "wrong request sent", "hang")
OUTCOMES = ("library error", "server 4xx", "correct answer") + FAILURES

# --- the table of kinds of bad values -----------------------------------------------------------

HOSTILE: list[tuple[str, Any]] = [
    ("None", None), ("True", True), ("empty", ""), ("blank", "   "), ("dot", "."),
    ("dot-dot", ".."), ("exchange:..", "MOEX:.."), ("slash", "a/b"), ("encoded dots", "%2e%2e"),
    ("traversal", "../../etc/passwd"), ("newline", "SBER\n"), ("NUL", "SB\x00ER"),
    ("superscript", "²"), ("cyrillic", "СБЕР"), ("10k chars", "x" * 10_000),
    ("5000 digits", "9" * 5000), ("huge int", 10**30), ("int64+1", 2**63), ("negative", -1),
    ("NaN", math.nan), ("inf", math.inf), ("float", 1.5), ("yes", "yes"), ("digit string", "5"),
    ("empty list", []), ("list with None", ["SBER", None]), ("dict", {"a": 1}),
    ("object", object()), ("year 1", datetime(1, 1, 1)), ("year 9999", "9999-12-31"),
    ("bytes", b"SBER"),
]

# the kind of a parameter, by name; others by annotation (bool, int, float)
KIND_BY_NAME = {
    "symbol": "symbol", "base": "symbol", "ticker": "symbol", "symbols": "symbols",
    "exchange": "code", "board": "code", "login": "code", "portfolio": "portfolio",
    "markets": "codes", "boards": "codes", "types": "codes",
    "market": "enum", "sector": "enum", "side": "enum", "format": "enum", "env": "enum",
    "tz": "enum", "period": "enum", "errors": "enum", "field": "enum", "query": "text", "search": "text", "cfi_code": "text", "tf": "tf",
    "start": "time", "end": "time", "path": "path", "cache_dir": "path", "record": "path",
    "timeout": "seconds", "rate_limit": "seconds", "order_id": "order_id",
    "refresh_token": "token", "token": "token", "base_url": "url", "ws_url": "url",
    "auth_url": "url", "session": "session", "frames": "frames",
    "price_from": "number", "price_to": "number",
}


def kind_of(param: inspect.Parameter) -> str:
    if param.name in KIND_BY_NAME:
        return KIND_BY_NAME[param.name]
    annotation = str(param.annotation).replace(" | None", "")
    found = {"bool": "bool", "int": "int", "float": "number"}.get(annotation)
    if found is None:
        raise AssertionError(f"the harness does not know the kind of parameter {param.name!r} "
                             f"({param.annotation}): add it to KIND_BY_NAME")
    return found


def optional(param: inspect.Parameter) -> bool:
    return "None" in str(param.annotation) or (
        param.default is None and param.default is not inspect.Parameter.empty)


def _control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _bad_text(text: str, limit: int = 1000) -> bool:
    return _control(text) or not text.strip() or len(text) > limit


def _bad_segment(text: str) -> bool:
    """A value placed in a URL path: odd whatever the server would say."""
    return (_bad_text(text, 100) or set(text.strip()) <= {"."} or "/" in text or "%" in text
            or "\\" in text)


def _bad_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63


def _bad_number(value: Any, positive: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    number = float(value) if abs(value) < 1e300 else math.inf
    return not math.isfinite(number) or number < 0 or number > 1e15 or (positive and number == 0)


def is_bad(kind: str, value: Any, may_be_none: bool) -> bool:
    """Whether a user passing ``value`` would expect an error (None: only when required)."""
    if value is None:
        return not may_be_none
    if kind == "bool":
        return not isinstance(value, bool)
    if kind == "int":
        return _bad_int(value)
    if kind == "number":
        return _bad_number(value)
    if kind == "seconds":
        return _bad_number(value, positive=True)
    if kind == "time":  # numbers are epoch seconds; no hostile string is a time in range
        return isinstance(value, (str, bytes, list, dict, datetime, bool)) or not isinstance(
            value, (int, float)) or not -1e10 < value < 1e10
    if kind == "order_id":
        if isinstance(value, str):
            return not (value.isascii() and value.isdigit() and 0 < len(value) < 19)
        return _bad_int(value) or value == 0
    if kind == "tf":
        if isinstance(value, str):
            return value != "5"
        return _bad_int(value) or not 0 < value <= 31_536_000
    if kind == "session":
        return not isinstance(value, requests.Session)
    if kind == "frames":
        return not isinstance(value, list) or len(value) > 0  # hostile items are no LiveFrames
    if kind == "symbols" and isinstance(value, list):
        return not value or any(not isinstance(v, str) or _bad_segment(v) for v in value)
    if kind == "codes" and isinstance(value, list):
        return not value or any(not isinstance(v, str) or _bad_segment(v) for v in value)
    if kind == "path":
        if not isinstance(value, str):
            return True
        return _bad_text(value, 10_000) or any(len(p.encode()) > 255 for p in value.split("/"))
    if not isinstance(value, str):
        return True
    if kind in ("enum", "url", "portfolio"):  # no hostile string is a zone, format, URL, ...
        return True
    if kind == "text":
        return _bad_text(value, 256)
    if kind == "token":
        return _bad_text(value, 100_000)
    # symbol, symbols (comma-separated), code(s)
    parts = value.split(",") if kind in ("symbols", "codes") else [value]
    return any(_bad_segment(p.split(":")[-1] if kind.startswith("symbol") else p)
               or (kind.startswith("symbol") and ":" in p and _bad_segment(p.split(":")[0]))
               for p in parts)


# --- recording the requests -------------------------------------------------------------------

class RecordingSession(requests.Session):
    """Checks every path the client builds, before requests prepares (and normalises) it."""

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
                ) -> requests.Response:
        problem = path_problem(str(url))
        if problem is not None:
            self.violations.append(f"{method} {str(url)[:200]}: {problem}")
        return super().request(method, url, *args, **kwargs)


def path_problem(url: str) -> str | None:
    raw = urlsplit(url).path
    if raw == "/refresh":
        return None
    for segment in raw.strip("/").split("/"):
        text = unquote(segment)
        if text in ("", ".", "..") or "/" in text or "\\" in text:
            return f"segment {segment[:40]!r} changes the route"
    prepared = urlsplit(requests.Request("GET", url).prepare().url or "").path
    if unquote(prepared) != unquote(raw):
        return f"sent as {prepared[:120]!r}"
    if find_route(unquote(raw)) is None:
        return "matches no route template"
    return None


# --- the cases ----------------------------------------------------------------------------------

def public_calls(target: Any) -> Iterator[tuple[str, Callable[..., Any], inspect.Signature]]:
    for name, fn in inspect.getmembers(type(target), inspect.isfunction):
        if not name.startswith("_"):
            yield name, getattr(target, name), inspect.signature(fn)


def parameters(signature: inspect.Signature) -> list[inspect.Parameter]:
    return [p for p in signature.parameters.values() if p.name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


class Harness:
    def __init__(self, sim: Any, workdir: Path) -> None:
        self.sim = sim
        self.workdir = workdir
        self.session = RecordingSession()
        self.inv = invia_data.connect(sim.refresh_token, base_url=sim.url,
                                      auth_url=sim.auth_url, ws_url=sim.ws_url,
                                      session=self.session)
        market_now = pd.Timestamp(sim.market.now(), unit="s", tz="UTC")  # the market's clock
        week_ago = market_now.floor("D") - pd.Timedelta(days=7)
        # valid values for required parameters and cheap ones for costly defaults
        self.valid = {
            "symbol": "SBER", "symbols": "SBER", "base": "SI", "order_id": 1,
            "risk_category_id": 1, "market": "FOND", "tf": "D", "start": week_ago,
            "end": week_ago + pd.Timedelta(days=1), "boards": "CETS",
        }
        self.counts: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.by_call: dict[str, Counter[str]] = {}
        self.failures: list[str] = []
        self.long_messages: list[str] = []

    def baseline(self, call: str, params: list[inspect.Parameter]) -> dict[str, Any]:
        kwargs = {}
        for p in params:
            if p.name in self.valid and (p.default is inspect.Parameter.empty
                                         or p.name in ("tf", "start", "end", "boards")):
                kwargs[p.name] = self.valid[p.name]
            elif p.name == "path":
                kwargs["path"] = str(self.workdir / "out")
            elif p.default is inspect.Parameter.empty:
                raise AssertionError(f"no valid value for the required {call}({p.name}=)")
        return kwargs

    def run_all(self) -> None:
        connect_signature = inspect.signature(invia_data.connect)
        for p in parameters(connect_signature):
            for label, value in HOSTILE:
                self.case("connect", p, label, value, self._connect)
        targets = [("inv", self.inv), ("inv.stream", self.inv.stream)]
        for prefix, target in targets:
            for name, fn, signature in public_calls(target):
                params = parameters(signature)
                base = self.baseline(name, params)
                for p in params:
                    for label, value in HOSTILE:
                        call = f"{prefix}.{name}"
                        self.case(call, p, label, value,
                                  lambda kw, fn=fn, base=base: fn(**{**base, **kw}))

    def _connect(self, kwargs: dict[str, Any]) -> Any:
        args = dict(refresh_token=self.sim.refresh_token, base_url=self.sim.url,
                    auth_url=self.sim.auth_url, ws_url=self.sim.ws_url, session=self.session)
        args.update(kwargs)
        return invia_data.connect(**args)

    def case(self, call: str, param: inspect.Parameter, label: str, value: Any,
             run: Callable[[dict[str, Any]], Any]) -> None:
        bad = is_bad(kind_of(param), value, optional(param))
        before = len(self.session.violations)
        started = time.monotonic()
        try:
            result = run({param.name: value})
        except InviaError as exc:
            outcome = self._error_outcome(exc)
        except Exception as exc:  # the harness counts what escapes the tree
            outcome = "raw exception"
            detail = f"{type(exc).__name__}: {str(exc)[:120]}"
        else:
            outcome = "silently accepted" if bad else "correct answer"
            _dispose(result)
            detail = "answered"
        finally:
            self._tidy()
        elapsed = time.monotonic() - started
        self.seconds[call] += elapsed
        if len(self.session.violations) > before:
            outcome, detail = "wrong request sent", self.session.violations[-1]
        elif elapsed > HANG_SECONDS:
            outcome, detail = "hang", f"{elapsed:.1f} s"
        self.counts[outcome] += 1
        self.by_call.setdefault(call, Counter())[outcome] += 1
        if outcome in FAILURES:
            self.failures.append(f"{call}({param.name}={label}): {outcome}: "
                                 f"{detail if outcome != 'silently accepted' else 'answered'}")

    def _error_outcome(self, exc: InviaError) -> str:
        if isinstance(exc, APIError):
            return "server 4xx" if 400 <= exc.status < 500 else "raw exception"
        if len(str(exc)) > 400:
            self.long_messages.append(f"{type(exc).__name__}: {str(exc)[:90]}")
        return "library error"

    def _tidy(self) -> None:
        stream = self.inv._stream
        if stream is not None:
            for frame in stream.frames:
                frame.close()

    def close(self) -> None:
        self.inv.close()

    def summary_of_failures(self) -> str:
        """The failures grouped by call, parameter and outcome, with the values' labels."""
        groups: dict[str, list[str]] = {}
        for line in self.failures:
            head, _, rest = line.partition(": ")
            call, _, label = head.partition("=")
            outcome = rest.split(": ")[0]
            groups.setdefault(f"{call}=): {outcome}", []).append(label.rstrip(")"))
        return "\n".join(f"{key} {', '.join(labels)}" for key, labels in groups.items())

    def table(self) -> str:
        total = sum(self.counts.values())
        lines = [f"hostile inputs: {total} cases "
                 f"(connect, {len(self.by_call) - 1} calls on inv and inv.stream)"]
        sides = {"connect": Counter(), "inv": Counter(), "inv.stream": Counter()}
        for call, counts in self.by_call.items():
            side = "inv.stream" if call.startswith("inv.stream.") else call.split(".")[0]
            sides[side].update(counts)
        lines.append(f"  {'':<20} {'all':>6} " + " ".join(f"{s:>10}" for s in sides))
        lines += [f"  {name:<20} {self.counts[name]:>6} "
                  + " ".join(f"{sides[s][name]:>10}" for s in sides) for name in OUTCOMES]
        slowest = ", ".join(f"{c} {s:.1f} s" for c, s in self.seconds.most_common(8))
        lines.append(f"slowest calls: {slowest}")
        return "\n".join(lines)


def _dispose(result: Any) -> None:
    """Close what a call returned that holds resources (a client, a LiveFrame, a recorder)."""
    if isinstance(result, (invia_data.Client, Stream)) or hasattr(result, "close"):
        try:
            result.close()
        except Exception:
            pass


def test_every_hostile_input_gets_a_clear_answer(sim, tmp_path, monkeypatch):
    workdir = tmp_path / "a" / "b" / "c"  # so "../../x" stays inside tmp_path
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("INVIA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("INVIA_REFRESH_TOKEN", raising=False)
    monkeypatch.delenv("INVIA_TOKEN", raising=False)
    monkeypatch.delenv("INVIA_ENV", raising=False)
    harness = Harness(sim, workdir)
    try:
        harness.run_all()
    finally:
        harness.close()
    print("\n" + harness.table())
    assert sum(harness.counts.values()) >= 1000
    assert harness.failures == [], harness.summary_of_failures()
    assert harness.long_messages == [], "\n".join(sorted(set(m[:70] for m in harness.long_messages)))  # no error echoes a 10k-character value
    for name in FAILURES:
        assert harness.counts[name] == 0
