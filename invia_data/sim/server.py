"""The simulator's aiohttp application: the token server, the HTTP data routes (``routes.py``)
and the WebSocket interfaces ``/cws`` and ``/ws`` (``websocket.py``), from one process.

Anonymous requests to the public set of REFERENCE §2.5 see the market as of 15 minutes ago;
every other route needs a valid JWT.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from . import encode, routes
from .auth import PortfolioRejected, TokenIssuer, TokenRejected, token_portfolios
from .faults import Faults
from .routing import EXCHANGES, Params, Problem, Request, bad, find_route, pick

log = logging.getLogger("invia_data.sim")

MAX_CANDLES = routes.MAX_CANDLES
TICK_SECONDS = 0.01
HANDLER_THREADS = 4

# --- the server ----------------------------------------------------------------------------------

class SimServer:
    """The application state: market, token issuer, faults, open WebSocket connections."""

    def __init__(self, market: Any, issuer: TokenIssuer, faults: Faults, *,
                 firehose: bool = False, guid_reuse: str = "replace",
                 local_only: bool = True, book_rate: float | None = None) -> None:
        self.market = market
        self.local_only = local_only
        self.issuer = issuer
        self.faults = faults
        self.firehose = firehose
        self.book_rate = book_rate
        self.guid_reuse = guid_reuse
        self.connections: set[Any] = set()
        self.book_cache: dict[tuple, tuple[int, bytes]] = {}
        self.firehose_cache: dict[tuple, tuple[float, list[bytes]]] = {}
        self._tasks: list[asyncio.Task] = []
        self._remove_drop_listener: Callable[[], None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # route handlers and the market's steps run here, so a heavy request (a page of
        # hourly candles over years) never holds up the event loop and its other clients
        self.workers: ThreadPoolExecutor | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    # lifecycle

    async def _on_startup(self, _app: web.Application) -> None:
        self.loop = asyncio.get_running_loop()
        self.workers = ThreadPoolExecutor(max_workers=HANDLER_THREADS,
                                          thread_name_prefix="sim-handler")
        self._tasks = [asyncio.create_task(self._ticker(), name="sim-ticker"),
                       asyncio.create_task(self._periodic_drops(), name="sim-drops")]
        self._remove_drop_listener = self.faults.on_drop(self._drop_all_threadsafe)

    async def _on_shutdown(self, _app: web.Application) -> None:
        if self._remove_drop_listener:
            self._remove_drop_listener()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self.connections):
            conn.abort("server shutting down")
        workers, self.workers = self.workers, None  # later steps run on the loop itself
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)

    async def _ticker(self) -> None:
        """Runs the market's order flow up to its clock; a failing step is logged, not fatal."""
        failures = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.in_worker(self.market.advance)
                failures = 0
            except Exception:
                failures += 1
                if failures <= 3 or failures % 1000 == 0:
                    log.exception("market.advance() failed (%d in a row)", failures)

    async def _periodic_drops(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            every = self.faults.drop_every
            if every > 0 and time.monotonic() - last >= every:
                last = time.monotonic()
                self.drop_all()
            elif every <= 0:
                last = time.monotonic()

    async def in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.workers is None or self.loop is None:
            return fn(*args)
        try:
            future = self.loop.run_in_executor(self.workers, fn, *args)
        except RuntimeError:  # the interpreter is exiting and took the worker threads along
            return fn(*args)
        return await future

    def _drop_all_threadsafe(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.drop_all)

    def drop_all(self) -> None:
        if self.connections:
            log.info("dropping %d WebSocket connection(s)", len(self.connections))
        for conn in list(self.connections):
            conn.abort("dropped by fault injection")

    def foreign_origin(self, request: web.Request) -> str | None:
        """Why a request does not come from this machine's own pages and programs (None when
        it does, or when the simulator serves a public host): a ``Host`` that names another
        machine (DNS rebinding) or a browser ``Origin`` of another site."""
        if not self.local_only:
            return None
        host = request.headers.get("Host")
        if host is None or not is_local_name(urlsplit(f"//{host}").hostname):
            return f"Host {str(host)[:80]!r} is not this machine"
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null" and not is_local_name(
                urlsplit(origin).hostname):
            return f"Origin {origin[:80]!r} is not this machine"
        return None

    # authorization

    def claims_for(self, token: Any) -> dict[str, Any]:
        return self.issuer.verify(token)

    def allowed_portfolio(self, claims: Mapping[str, Any], portfolio: Any) -> str:
        """The portfolio's own spelling if the token covers it, else Problem(403)."""
        if isinstance(portfolio, str):
            for known in token_portfolios(dict(claims)):
                if known.upper() == portfolio.upper():
                    return known
        raise Problem(403, f"portfolio {portfolio!r} is not available with this token")

    # dispatch

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        lowered = path.lower().rstrip("/")
        foreign = self.foreign_origin(request)
        if foreign is not None:
            log.warning("refused %s %s: %s", request.method, path, foreign)
            return json_response({"message": f"{foreign}: the simulator serves this machine "
                                  "only (start it with a public --host to serve others)"}, 403)
        if lowered in ("/ws", "/cws"):
            from .websocket import serve_websocket
            return await serve_websocket(self, request)
        started = time.perf_counter()
        try:
            response = await self._answer(request)
        except Exception:
            log.exception("%s %s failed", request.method, path)
            response = json_response({"message": "internal simulator error"}, 500)
        log.info("%s %s %d %.1f ms", request.method, path, response.status,
                 (time.perf_counter() - started) * 1000)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        if self.faults.latency > 0:
            await asyncio.sleep(self.faults.latency)
        if request.path.lower().rstrip("/") == "/refresh":
            return await self._refresh(request)
        failure = self.faults.http_failure()
        if failure is not None:
            return self._injected_failure(failure)
        found = find_route(request.path)
        if found is None:
            return json_response({"message": f"no route {request.path}"}, 404)
        matched, args = found
        if request.method != matched.method:
            return json_response({"message": f"method {request.method} not allowed"}, 405)
        try:
            claims = self._request_claims(request, matched.public)
            ctx = Request(self, args, Params(request.query), claims)
            ctx.fmt = ctx.params.format()
            payload = await self.in_worker(matched.handler, ctx)
        except Problem as problem:
            return problem_response(problem)
        if isinstance(payload, bytes):
            return web.Response(body=payload, content_type="application/json")
        return json_response(payload)

    def _injected_failure(self, status: int) -> web.Response:
        headers = {}
        if status == 429:
            headers["Retry-After"] = f"{self.faults.retry_after:g}"
        message = "Too many requests" if status == 429 else "Service temporarily unavailable"
        return json_response({"message": message}, status, headers)

    def _request_claims(self, request: web.Request, public: bool) -> dict[str, Any] | None:
        header = request.headers.get("Authorization")
        if not header:
            if public:
                return None
            raise Problem(401, "JWT token is missing")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "Authorization header must be 'Bearer <JWT>'")
        try:
            return self.claims_for(token.strip())
        except TokenRejected as exc:
            raise Problem(401, str(exc)) from None

    async def _refresh(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return json_response({"message": "use POST /refresh"}, 405)
        query = {k.lower(): v for k, v in request.query.items()}
        token = query.get("token") or None
        allowed: Any = query.get("allowedportfolios") or None
        if allowed is not None:
            try:
                allowed = orjson.loads(allowed)
            except orjson.JSONDecodeError:
                return json_response({"message": "allowedPortfolios must be a JSON array"}, 400)
        raw = await request.read()
        if raw.strip():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return json_response({"message": "the body is not valid JSON"}, 400)
            if not isinstance(body, dict):
                return json_response({"message": "the body must be a JSON object"}, 400)
            body = {k.lower(): v for k, v in body.items()}
            token = body.get("token") or token
            allowed = body.get("allowedportfolios", allowed)
        if allowed is not None and (not isinstance(allowed, list)
                                    or not all(isinstance(p, str) for p in allowed)):
            return json_response({"message": "allowedPortfolios must be an array of strings"}, 400)
        if not self.issuer.check_refresh_token(token):
            return json_response({"message": "Refresh token is invalid, expired or revoked"}, 403)
        try:
            access = self.issuer.issue(allowed)
        except PortfolioRejected as exc:
            return json_response({"message": str(exc)}, 403)
        return json_response({"AccessToken": access})

    # shared lookups for the routes and the WebSocket

    def resolve(self, exchange: Any, symbol: Any, board: Any = None, kind: str | None = None
                ) -> Any:
        """The key of an instrument whose market data of ``kind`` (any kind when None) is
        served, else Problem(404) naming why. Asking for a ``kind`` of market data tells the
        market so (a replay's session begins at the first such request)."""
        exchange = pick("exchange", exchange, EXCHANGES)
        if not isinstance(symbol, str) or not symbol:
            raise bad("parameter 'symbol' is required")
        key = self.market.resolve(exchange, symbol, board or None)
        if key is None:
            where = f" on board {board}" if board else ""
            raise Problem(404, f"instrument {exchange}:{symbol}{where} not found")
        refusal = self.market.data_refusal(key, kind)
        if refusal is not None:
            raise Problem(404, refusal)
        if kind is not None:
            self.market.market_data_requested()
        return key

    def book_data(self, key: Any, depth: int, fmt: str, existing: bool, delay: int = 0) -> bytes:
        """The encoded book, shared by every subscriber of the same (instrument, depth, format)."""
        version = self.market.book_version(key)
        cache_key = (key, depth, fmt, existing, delay)
        cached = self.book_cache.get(cache_key)
        if cached is not None and cached[0] == version and delay == 0:
            return cached[1]
        data = encode.book_bytes(self.market.book(key, depth, delay=delay), fmt, existing)
        self.book_cache[cache_key] = (version, data)
        return data


LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def is_local_name(host: str | None) -> bool:
    """A loopback address or ``localhost`` (and its subdomains, which resolve to loopback)."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
                  ) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, headers=headers,
                        content_type="application/json")


def problem_response(problem: Problem) -> web.Response:
    if problem.status == 401:
        return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
    return json_response({"message": problem.message}, problem.status)
