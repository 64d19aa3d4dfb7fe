"""Shared fixtures: the simulator on port 0 (one per session, plus fresh ones for fault tests),
access tokens from it, a small WebSocket client for protocol tests, and a guard that keeps
every test on loopback."""

from __future__ import annotations

import errno
import ipaddress
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import websocket

import invia_data
import invia_data.sim

# --- loopback only ---------------------------------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_loopback(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0] if isinstance(address, tuple) else address
    try:
        if ipaddress.ip_address(str(host).split("%")[0]).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise OSError(errno.ENETUNREACH, f"tests may only connect to loopback, not {host!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_loopback(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_loopback(self, address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# --- the simulator -----------------------------------------------------------------------------

# Simulators of the tests start inside a main session (Moscow time, a Wednesday), so the market
# trades whatever the hour and day the suite runs at; times in tests come from the market clock.
SIM_START = "2026-11-18 12:00"


@pytest.fixture(scope="session")
def sim() -> Iterator[invia_data.sim.Simulator]:
    with invia_data.sim.run(port=0, seed=1, start=SIM_START) as server:
        yield server


@pytest.fixture
def fresh_sim() -> Iterator[Callable[..., invia_data.sim.Simulator]]:
    """A factory of simulators of their own (for faults); all are stopped after the test."""
    started: list[invia_data.sim.Simulator] = []

    def make(**kwargs: Any) -> invia_data.sim.Simulator:
        kwargs.setdefault("port", 0)
        kwargs.setdefault("seed", 1)
        kwargs.setdefault("start", SIM_START)
        server = invia_data.sim.start(**kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def fetch_token(server: invia_data.sim.Simulator, **body: Any) -> str:
    response = requests.post(f"{server.auth_url}/refresh", params={"token": server.refresh_token},
                             json=body or None, timeout=10)
    response.raise_for_status()
    return response.json()["AccessToken"]


@pytest.fixture
def token(sim: invia_data.sim.Simulator) -> str:
    return fetch_token(sim)


# --- a WebSocket client for protocol tests -----------------------------------------------------------

class WSClient:
    """websocket-client with frames buffered per guid, so tests can wait for what they need."""

    def __init__(self, url: str, token: str | None = None, **options: Any) -> None:
        self.token = token
        self.ws = websocket.create_connection(url, timeout=5, skip_utf8_validation=True, **options)
        self.frames: list[dict[str, Any]] = []

    def close(self) -> None:
        self.ws.close()

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            message = orjson.dumps(message).decode()
        self.ws.send(message)

    def subscribe(self, opcode: str, guid: str | None = None, token: str | None = None,
                  **fields: Any) -> str:
        guid = guid or str(uuid.uuid4())
        self.send({"opcode": opcode, "guid": guid, "token": token or self.token, **fields})
        return guid

    def _next(self, deadline: float) -> dict[str, Any]:
        self.ws.settimeout(max(0.01, deadline - time.monotonic()))
        raw = self.ws.recv()
        frame = orjson.loads(raw)
        self.frames.append(frame)
        return frame

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
                 ) -> dict[str, Any]:
        """The first buffered or new frame matching ``predicate`` (removed from the buffer)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, frame in enumerate(self.frames):
                if predicate(frame):
                    return self.frames.pop(i)
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching frame within {timeout} s; buffered: {self.frames[:5]}")
            try:
                self._next(deadline)
            except websocket.WebSocketTimeoutException:
                continue

    def result(self, guid: str, timeout: float = 5.0) -> dict[str, Any]:
        return self.wait_for(lambda f: f.get("requestGuid") == guid and "httpCode" in f, timeout)

    def data(self, guid: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [self.wait_for(lambda f: f.get("guid") == guid and "data" in f, timeout)["data"]
                for _ in range(count)]

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within ``seconds`` (plus what is buffered)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._next(deadline)
            except websocket.WebSocketTimeoutException:
                break
        frames, self.frames = self.frames, []
        return frames


@pytest.fixture
def ws_client(sim: invia_data.sim.Simulator, token: str) -> Iterator[Callable[..., WSClient]]:
    """A factory of WSClients on the session simulator's ``/cws`` (closed after the test)."""
    clients: list[WSClient] = []

    def connect(url: str | None = None, token_: str | None = None, **options: Any) -> WSClient:
        client = WSClient(url or sim.ws_url, token_ or token, **options)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        try:
            client.close()
        except Exception:
            pass


@pytest.fixture
def token_for() -> Callable[..., str]:
    """``token_for(sim, allowedPortfolios=[...])``: a fresh access token from that simulator."""
    return fetch_token


@pytest.fixture(scope="module")
def client(sim: invia_data.sim.Simulator) -> Iterator[invia_data.Client]:
    """A client of the session's simulator, shared by a test module."""
    with invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                            ws_url=sim.ws_url) as inv:
        yield inv


@pytest.fixture
def counted(sim: invia_data.sim.Simulator) -> Iterator[tuple[invia_data.Client, Any]]:
    """A client whose every request is counted (the token is fetched in connect)."""
    from fakes import counting_session

    session, adapter = counting_session()
    with invia_data.connect(sim.refresh_token, base_url=sim.url, auth_url=sim.auth_url,
                            ws_url=sim.ws_url, session=session) as inv:
        yield inv, adapter


# --- a recording made from the simulator (tests/data/make_sample_recording.py) ------------------------

@pytest.fixture(scope="session")
def sample_recording() -> Path:
    return Path(__file__).with_name("data") / "recording"


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as in a terminal, however the suite was started: a shell starts a background job
    with SIGINT ignored, which a process and its children keep (the Ctrl-C tests would then see
    no interrupt at all)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
