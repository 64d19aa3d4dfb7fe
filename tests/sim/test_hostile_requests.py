"""The simulator under hostile requests: every route's path segments and query parameters, and
every WebSocket opcode's fields, get a table of bad values sent directly (no client library in
between). The answer is a 4xx (or a 2xx where the value is fine after all), never a 5xx, and
``/md/v2/time`` keeps answering meanwhile.

Routes, their query parameters and each opcode's fields are found by introspection: one valid
request per route (and per opcode) is made while the simulator's parameter readers record the
names they are asked for. Run with ``-s`` to see the counts and the latencies of the clock
route.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import pytest
import requests
import websocket

from invia_data.sim import routing
from invia_data.sim import websocket as sim_ws

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 10.0  # every answer here takes milliseconds

HOSTILE_TEXT = ["", " ", ".", "..", "%2e%2e", "a/b", "a\\b", "SBER\n", "SB\x00ER", "x" * 10_000,
                "9" * 5000, "-1", "0", "1.5", "1e400", "nan", "inf", str(10**30), str(2**63),
                str(-(2**63) - 1), "yes", "²", "СБЕР", "9999-12-31", "[]", "{}"]
# JSON text for WebSocket fields (so integers beyond 64 bits can be sent as they are)
HOSTILE_JSON = ["null", "true", '""', '"."', '".."', "-1", "0", "1.5", "1e400", str(10**30),
                str(2**63), str(-(2**63) - 1), '"yes"', "[]", "{}", '"' + "x" * 10_000 + '"',
                '"\\u00b2"', '"SBER\\n"', '"9999-12-31"', '[1, "a", null]']

VALID_SEGMENTS = {"exchange": "MOEX", "symbol": "SBER", "symbols": "MOEX:SBER",
                  "portfolio": "D39004", "market": "FOND", "login": "P039004", "orderId": "1"}


def valid_query(now: int) -> dict[str, str]:
    return {"symbol": "SBER", "exchange": "MOEX", "tf": "60", "from": str(now - 3600),
            "to": str(now), "riskCategoryId": "1", "limit": "10", "format": "Simple"}


class Recorder:
    """Names asked of the simulator's parameter readers while one request is answered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        original_raw = routing.Params.raw
        original_field = sim_ws.Subscription.field
        recorder = self

        def raw(params: routing.Params, name: str) -> Any:
            recorder.names.append(name)
            return original_raw(params, name)

        def field(sub: sim_ws.Subscription, name: str, default: Any = None) -> Any:
            recorder.names.append(name)
            return original_field(sub, name, default)

        monkeypatch.setattr(routing.Params, "raw", raw)
        monkeypatch.setattr(sim_ws.Subscription, "field", field)

    def take(self) -> list[str]:
        names, self.names = list(dict.fromkeys(self.names)), []
        return names


class ClockProbe:
    """Asks ``/md/v2/time`` every 20 ms on its own connection and keeps the latencies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ClockProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                started = time.perf_counter()
                session.get(f"{self.url}/md/v2/time", timeout=30).raise_for_status()
                self.latencies.append(time.perf_counter() - started)
                self._stop.wait(0.02)

    def summary(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        return (f"/md/v2/time meanwhile: {len(ms)} answers, median {ms[len(ms) // 2]:.1f} ms, "
                f"p99 {ms[int(len(ms) * 0.99)]:.1f} ms, max {ms[-1]:.1f} ms")


def _send_raw(session: requests.Session, url: str, headers: dict[str, str]) -> int:
    """GET ``url`` exactly as written (requests would normalise ``.``/``..`` away)."""
    prepared = requests.Request("GET", "http://placeholder/", headers=headers).prepare()
    prepared.url = url
    return session.send(prepared, timeout=REQUEST_TIMEOUT).status_code


def _path(route: routing.Route, values: dict[str, str]) -> str:
    parts = []
    for literal, name in zip(route.pattern, route.names, strict=True):
        parts.append(literal if name is None else values[name])
    return "/" + "/".join(parts)


def http_cases(sim: Any, token: str, recorder: Recorder
               ) -> Iterator[tuple[str, str]]:
    """(label, URL) for every route x (placeholder or query parameter) x hostile value."""
    now = int(time.time())
    headers = {"Authorization": f"Bearer {token}"}
    with requests.Session() as session:
        for route in routing.ROUTES:
            unknown = [n for n in route.names if n is not None and n not in VALID_SEGMENTS]
            assert not unknown, f"no valid value for the placeholder(s) {unknown} of {route.pattern}"
            segments = {n: quote(VALID_SEGMENTS[n], safe=":,") for n in route.names if n}
            query = valid_query(now)
            base = sim.url + _path(route, segments)
            recorder.take()
            status = _send_raw(session, f"{base}?{urlencode(query)}", headers)
            assert status < 500, f"{route.pattern} answers {status} to valid values"
            names = [n for n in recorder.take() if n.lower() != "format"] + ["format"]
            for name in (n for n in route.names if n):
                for value in HOSTILE_TEXT:
                    hostile = dict(segments, **{name: quote(value, safe="") or value})
                    yield (f"{'/'.join(route.pattern)} {{{name}}}={value[:12]!r}",
                           sim.url + _path(route, hostile) + "?" + urlencode(query))
            for name in names:
                for value in HOSTILE_TEXT:
                    yield (f"{'/'.join(route.pattern)} ?{name}={value[:12]!r}",
                           f"{base}?{urlencode({**query, name: value})}")


def ws_cases(token: str, recorder: Recorder, client: Any) -> Iterator[tuple[str, str]]:
    """(label, JSON text) for every opcode x field x hostile value."""
    now = int(time.time())
    valid = {"code": "SBER", "exchange": "MOEX", "portfolio": "D39004", "format": "Simple",
             "tf": "60", "from": now - 600, "depth": 10, "frequency": 100}
    for opcode in sim_ws.OPCODES:
        if opcode in getattr(sim_ws, "REFUSED_OPCODES", ()):
            continue
        guid = str(uuid.uuid4())
        recorder.take()
        client.send(orjson.dumps({"opcode": opcode, "guid": guid, "token": token, **valid}))
        _result(client, guid)
        client.send(orjson.dumps({"opcode": "unsubscribe", "guid": guid, "token": token}))
        _result(client, guid)
        names = [n for n in recorder.take() if n.lower() not in ("opcode", "guid", "token")]
        for name in names:
            for value in HOSTILE_JSON:
                fields = {k: orjson.dumps(v).decode() for k, v in valid.items()}
                fields[name] = value
                guid = str(uuid.uuid4())
                text = ", ".join([f'"opcode": "{opcode}"', f'"guid": "{guid}"',
                                  f'"token": "{token}"'] +
                                 [f'"{k}": {v}' for k, v in fields.items()])
                yield f"{opcode} {name}={value[:12]}", "{" + text + "}"


def _result(client: Any, guid: str | None, timeout: float = 10.0) -> int:
    """The httpCode answered to ``guid`` (any result frame when the guid was unreadable)."""
    deadline = time.monotonic() + timeout
    while True:
        client.settimeout(max(0.01, deadline - time.monotonic()))
        frame = orjson.loads(client.recv())
        if "httpCode" in frame and (guid is None or frame.get("requestGuid") in (guid, "", None)):
            return int(frame["httpCode"])


def _guid_of(text: str) -> str:
    return text.split('"guid": "', 1)[1].split('"', 1)[0]


def test_the_simulator_answers_hostile_requests_with_4xx_never_5xx(sim, token, monkeypatch):
    recorder = Recorder(monkeypatch)
    counts: Counter[str] = Counter()
    slowest: Counter[str] = Counter()
    fivexx: list[str] = []
    client = websocket.create_connection(sim.ws_url, timeout=10, skip_utf8_validation=True)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with ClockProbe(sim.url) as probe, requests.Session() as session:
            for label, url in http_cases(sim, token, recorder):
                started = time.perf_counter()
                try:
                    status = _send_raw(session, url, headers)
                except requests.RequestException as exc:
                    raise AssertionError(f"HTTP {label}: no answer ({exc})"[:300]) from None
                slowest[label] = time.perf_counter() - started
                counts[f"HTTP {status // 100}xx"] += 1
                if status >= 500:
                    fivexx.append(f"HTTP {label}: {status}")
            for label, text in ws_cases(token, recorder, client):
                guid = _guid_of(text)
                started = time.perf_counter()
                client.send(text)
                status = _result(client, guid)
                slowest[label] = time.perf_counter() - started
                counts[f"WebSocket {status // 100}xx"] += 1
                if status >= 500:
                    fivexx.append(f"WebSocket {label}: {status}")
                if status < 300:
                    client.send(orjson.dumps({"opcode": "unsubscribe", "guid": guid,
                                              "token": token}))
                    _result(client, guid)
    finally:
        client.close()
    print("\nsimulator under hostile requests: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(probe.summary())
    print("slowest requests: " + ", ".join(f"{k} {v * 1000:.0f} ms"
                                            for k, v in slowest.most_common(5)))
    assert sum(counts.values()) >= 1000
    assert fivexx == [], "\n".join(fivexx)
    assert max(probe.latencies) < 5.0  # far above the usual few ms; an event loop held up
    # by one request (a 25 s history page) would show here
