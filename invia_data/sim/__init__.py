"""The embedded simulator: a real local server of the Invia API over a deterministic market.

>>> with invia_data.sim.run(port=0, seed=1) as sim:
...     sim.url, sim.ws_url, sim.auth_url, sim.refresh_token

The market clock starts at ``start`` and runs ``speed`` times as fast as real time:
``run(start="2025-03-14 09:55", speed=60)`` shows an opening auction within a minute (a time
without a zone is Moscow time). By default it starts now; when the exchange's equity market is
closed now (night, weekend, holiday), at the same time of day in the most recent main session
(12:00 MSK when that time of day is outside it), so a demo always shows a live market.
``start="now"`` keeps the real clock even then.

The server runs in a background thread with its own asyncio loop; leaving the ``with`` block
(or ``sim.stop()``) stops it and joins the thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import logging
import math
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, TransportError
from .faults import Faults

__all__ = ["Simulator", "run", "start", "market_start", "Faults"]

log = logging.getLogger("invia_data.sim")
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
GUID_REUSE_MODES = ("replace", "reject")


StartLike = float | int | str | dt.datetime | None


def market_start(start: StartLike = None, now: float | None = None) -> float:
    """The market clock's starting time (unix seconds) for ``start``: None = now, or, when the
    equity market is closed now, the same time of day in its most recent main session (12:00
    MSK when that time of day is outside it); ``"now"`` = the real clock as it is; a number =
    unix seconds; a string or datetime = that moment (a naive one is Moscow time)."""
    from . import calendar

    real = time.time() if now is None else float(now)
    if start is None:
        return calendar.last_main_session(calendar.SHARES, real)
    if isinstance(start, str) and start.strip().lower() == "now":
        return real
    if isinstance(start, bool):
        raise InvalidArgument(f"start must be a time, got {start!r}")
    if isinstance(start, (int, float)):
        if not math.isfinite(start):
            raise InvalidArgument(f"start must be a finite unix time, got {start!r}")
        return float(start)
    if isinstance(start, (str, dt.datetime)):
        import pandas as pd

        try:
            stamp = pd.Timestamp(start)
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"start {start!r} is not a time; write it like "
                                  "'2025-03-14 09:55' (Moscow time) or '2025-03-14T06:55Z'") from exc
        if stamp is pd.NaT:
            raise InvalidArgument(f"start must be a time, got {start!r}")
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("Europe/Moscow")
        return stamp.timestamp()
    raise InvalidArgument(f"start must be None, 'now', unix seconds, a datetime or a string such "
                          f"as '2025-03-14 09:55' (Moscow time), got {type(start).__name__}")


def _moscow(t: float) -> str:
    return (dt.datetime.fromtimestamp(t, dt.timezone.utc) + dt.timedelta(hours=3)).strftime(
        "%Y-%m-%d %H:%M:%S MSK")


class Simulator:
    """A running simulator: its URLs, refresh token, fault switchboard and market."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, seed: int = 1,
                 speed: float = 1.0, tls: bool = False, firehose: bool = False,
                 faults: Faults | Mapping[str, Any] | None = None,
                 refresh_token: str | None = None, guid_reuse: str = "replace",
                 replay: str | Path | None = None, book_rate: float | None = None,
                 start: StartLike = None) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidArgument(f"port must be an integer in 0..65535, got {port!r}")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or speed <= 0:
            raise InvalidArgument(f"speed must be a positive number, got {speed!r}")
        if guid_reuse not in GUID_REUSE_MODES:
            raise InvalidArgument(f"guid_reuse must be one of {GUID_REUSE_MODES}, got {guid_reuse!r}")
        self.host = host
        self.port = port
        self.seed = seed
        self.speed = float(speed)
        self.tls = tls
        self.firehose = firehose
        if book_rate is not None and (isinstance(book_rate, bool)
                                      or not isinstance(book_rate, (int, float))
                                      or not 0 < book_rate <= 1000):
            raise InvalidArgument(f"book_rate must be a number in (0, 1000], got {book_rate!r}")
        self.book_rate = book_rate
        self.guid_reuse = guid_reuse
        self.faults = Faults.coerce(faults, seed)
        from .auth import TokenIssuer
        from .market import Market

        if replay is not None:
            from .replay import ReplayMarket

            self.market: Market = ReplayMarket(replay, seed=seed, speed=self.speed)
        else:
            try:
                self.market = Market(seed=seed, speed=self.speed, start=market_start(start))
            except ValueError as exc:
                raise InvalidArgument(f"start: {exc}; pick a time from 2018 on") from exc
        self.replay = None if replay is None else Path(replay)
        self._issuer = TokenIssuer(self.market.login, self.market.portfolios, self.market.agreements,
                                   refresh_token=refresh_token,
                                   lifetime=lambda: self.faults.token_lifetime)
        self.refresh_token = self._issuer.refresh_token
        self.login: str = self.market.login
        self.portfolios: list[str] = list(self.market.portfolios)
        self.cert_path: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    def active_subscriptions(self) -> int:
        """How many subscriptions the clients hold open now, over all WebSocket connections
        (read on the server's loop, so the count is consistent)."""
        if self._loop is None or not self.running:
            return 0

        async def count() -> int:
            return sum(len(conn.subscriptions) for conn in self._server.connections)

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(_STOP_TIMEOUT)

    @property
    def identity(self) -> str:
        """What makes this simulator's generated history what it is: the seed and the code that
        generates it. Two simulators of one identity answer the same candles before their
        :attr:`history_until`, so a client may cache those across processes."""
        identity = f"simulator-seed{self.seed}-{_code_fingerprint()}"
        if self.replay is not None:   # a recorded day answers other candles than the seed's
            digest = hashlib.sha256(str(self.replay.resolve()).encode()).hexdigest()[:12]
            identity += f"-replay{digest}"
        return identity

    @property
    def history_until(self) -> int:
        """Unix seconds before which every candle is generated from the seed alone; from then on
        the live market makes them, and they differ from one run to the next."""
        return int(self.market.live_minute)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"Simulator({self.url if self.port else self.host!r}, seed={self.seed}, "
                f"market time {self.market_time}, speed={self.speed:g}, {state})")

    @property
    def market_time(self) -> str:
        """The market clock now, as Moscow time text."""
        return _moscow(self.market.now())

    @property
    def local_only(self) -> bool:
        """Serving this machine only (a loopback ``host``): requests whose ``Host`` or
        ``Origin`` names another machine are refused, so a web page cannot reach the simulator
        through DNS rebinding. A public ``host`` serves everyone."""
        from .server import is_local_name

        return is_local_name(self.host)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self._url_host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self._url_host}:{self.port}/cws"

    @property
    def auth_url(self) -> str:
        return self.url

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    # lifecycle

    def start(self) -> Simulator:
        if self._thread is not None:
            return self
        ssl_context = self._ssl_context() if self.tls else None
        self._thread = threading.Thread(target=self._serve, args=(ssl_context,),
                                        name=f"invia-sim-{self.seed}", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            self.stop()
            raise TransportError(f"the simulator did not start within {_START_TIMEOUT:g} s")
        if self._startup_error is not None:
            self._thread.join(_STOP_TIMEOUT)
            self._thread = None
            raise TransportError(f"the simulator could not start on {self.host}:{self.port}: "
                                 f"{self._startup_error}") from self._startup_error
        log.info("simulator listening on %s; market time %s, speed %g", self.url,
                 self.market_time, self.speed)
        describe = getattr(self.market, "describe", None)
        if describe is not None:
            log.info("%s", describe())
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; calling it again does nothing."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:  # the loop closed in between
                pass
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            log.warning("the simulator thread did not stop within %g s", _STOP_TIMEOUT)
        else:
            log.info("simulator on %s stopped; market time %s", self.url, self.market_time)
        self._thread = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the server thread

    def _serve(self, ssl_context: ssl.SSLContext | None) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ssl_context))
        except BaseException as exc:  # reported to start() or logged; never lost
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()
            else:
                log.exception("the simulator stopped with an error")
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _main(self, ssl_context: ssl.SSLContext | None) -> None:
        from aiohttp import web

        from .server import SimServer

        self._stop_event = asyncio.Event()
        server = SimServer(self.market, self._issuer, self.faults, firehose=self.firehose,
                           guid_reuse=self.guid_reuse, local_only=self.local_only,
                           book_rate=self.book_rate)
        self._server = server
        runner = web.AppRunner(server.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, ssl_context=ssl_context,
                               reuse_address=True)
            await site.start()
            sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr, attr-defined]
            self.port = sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    def _ssl_context(self) -> ssl.SSLContext:
        from ._tls import self_signed_certificate

        self._tmpdir = tempfile.TemporaryDirectory(prefix="invia-sim-tls-")
        cert, key = self_signed_certificate(Path(self._tmpdir.name), self.host)
        self.cert_path = str(cert)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context


def start(**kwargs: Any) -> Simulator:
    """Start a simulator in a background thread and return it (stop it with ``.stop()``).

    Arguments: ``host="127.0.0.1"``, ``port=0`` (any free port), ``seed=1``, ``speed=1.0``
    (market clock rate), ``tls=False`` (https/wss with a self-signed certificate whose path is
    ``.cert_path``), ``firehose=False`` (order-book and all-trades subscriptions send as fast
    as the socket takes them; every trade has the next id), ``book_rate=None`` (a benchmark
    mode: each order-book subscription sends that many distinct books a second, each with
    ``"st"``, its send time in unix ns), ``faults=None`` (a Faults object or a mapping of its settings),
    ``refresh_token=None`` (a random one is made), ``guid_reuse="replace"`` (a subscribe whose
    guid is active on the same connection replaces it; ``"reject"`` answers 400 and keeps the old),
    ``replay=None`` (a recording's folder: its instruments answer from the recording; market
    data it does not hold is refused with 404. The clock stands at the recording's first
    message until the first request for market data — a ``/cws``
    subscription to an instrument or an HTTP book, trades, quotes or candles call; listings,
    security info, the server time and portfolios do not count — and then runs at ``speed``
    up to the recording's end, where it stops: one session shared by every client, a later
    client joins it where it is;
    ``sim.market.begin()`` begins it without a client), ``start=None`` (the market clock's
    start: see :func:`market_start`; ``"2025-03-14 09:55"`` is Moscow time).
    """
    return Simulator(**kwargs).start()


def run(**kwargs: Any) -> Simulator:
    """``with run(port=0, seed=1) as sim:`` — the same as start(), stopped when the block ends."""
    return start(**kwargs)


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """A short hash of the simulator's source: a change to how it generates history gives a new
    identity, so no cache ever mixes candles of two versions."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
