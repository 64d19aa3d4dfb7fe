"""The Client facade and :func:`connect`: environments, credentials, the embedded simulator.

``connect()`` picks the environment and credentials from its arguments, else from
``INVIA_ENV``, ``INVIA_REFRESH_TOKEN`` and ``INVIA_TOKEN``. With no credentials and no
environment at all it starts the embedded simulator (once per process, stopped at exit) and
connects to it, so every call works with no account and no network.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests

from . import validate
from .auth import TokenManager
from .errors import InvalidArgument, StreamClosed
from .http import Http
from .market import MarketData, check_exchange
from .portfolio import PortfolioData
from .schema import normalize_format
from .suggest import suggests_symbols
from .times import TimeLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Client", "Endpoints", "ENVIRONMENTS", "connect"]

log = logging.getLogger("invia_data.http")


@dataclass(frozen=True)
class Endpoints:
    """Where an environment lives: HTTP API, WebSocket, token server."""

    name: str
    base_url: str
    ws_url: str
    auth_url: str


ENVIRONMENTS = {
    "prod": Endpoints("prod", "https://api.inviabroker.com", "wss://api.inviabroker.com/cws",
                      "https://oauth.inviabroker.com"),
    "dev": Endpoints("dev", "https://apidev.inviabroker.com", "wss://apidev.inviabroker.com/cws",
                     "https://oauthdev.inviabroker.com"),
}


def endpoints_for_url(url: str, name: str | None = None) -> Endpoints:
    """An environment at one URL (a self-hosted simulator): HTTP API and token server there,
    the WebSocket at ``/cws`` with the matching ws/wss scheme."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"environment URL must be http(s)://host[:port], got {url!r}")
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    ws = urlunsplit((ws_scheme, parts.netloc, parts.path.rstrip("/") + "/cws", "", ""))
    return Endpoints(name or parts.netloc, base, ws, base)


# --- the embedded simulator: one per process ------------------------------------------------------

_embedded_lock = threading.Lock()
_embedded: Any = None


def embedded_simulator() -> Any:
    """The process's embedded simulator, started on first use and stopped at exit."""
    global _embedded
    with _embedded_lock:
        if _embedded is None:
            from . import sim

            server = sim.start(port=0)
            atexit.register(server.stop)
            _embedded = server
            log.info("no credentials configured: using the embedded simulator at %s", server.url)
        return _embedded


# --- the client ---------------------------------------------------------------------------------

class Client(MarketData, PortfolioData):
    """Market and portfolio data as DataFrames, plus the live ``stream``.

    Made by :func:`connect`. ``http`` is the HTTP seam, ``tokens`` the token manager (None when
    anonymous), ``exchange`` the default exchange, ``portfolio`` the default portfolio,
    ``format`` the wire format pinned for every call (None: Heavy, Slim for bulk calls).
    Use as a context manager, or call :meth:`close`, to stop the stream and the session.
    """

    def __init__(self, http: Http, tokens: TokenManager | None, *, env: str, ws_url: str,
                 exchange: str = "MOEX", portfolio: str | None = None,
                 format: str | None = None, embedded: bool = False) -> None:
        self.http = http
        self.tokens = tokens
        self.env = env
        self.ws_url = ws_url
        self.exchange = check_exchange(exchange)
        self.format = normalize_format(format) if format is not None else None
        self.embedded = embedded
        self._default_portfolio = portfolio
        self._stream: Any = None
        self._stream_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        where = f"{self.env} (embedded simulator)" if self.embedded else self.env
        parts = [f"env={where}", f"url={self.http.base_url}"]
        claims = self._known_claims()
        if self.tokens is None:
            parts.append("anonymous (public data, 15 min delayed)")
        elif claims:
            parts.append(f"login={claims.get('sub')}")
            parts.append(f"portfolios={' '.join(self.tokens.portfolios)}")
        parts.append(f"exchange={self.exchange}")
        if self._closed:
            parts.append("closed")
        return f"<invia_data.Client {' '.join(parts)}>"

    def _known_claims(self) -> dict[str, Any]:
        return self.tokens.claims if self.tokens is not None else {}

    @property
    def stream(self) -> Any:
        """The live stream (:class:`invia_data.stream.Stream`), created on first use."""
        with self._stream_lock:
            if self._closed:
                raise StreamClosed("the client is closed")
            if self._stream is None:
                if self.tokens is None:
                    raise InvalidArgument("the live stream needs credentials: pass "
                                          "refresh_token= to connect() or set INVIA_REFRESH_TOKEN")
                from .stream import Stream

                self._stream = Stream(self.ws_url, self.tokens.token, http=self.http,
                                      exchange=self.exchange, portfolio=self._portfolio_of_kind,
                                      format=self.format)
            return self._stream

    @suggests_symbols
    def history(self, symbols: str | list[str], tf: str | int = "1min", *,
                start: TimeLike | None = None, end: TimeLike | None = None,
                period: str | None = None, exchange: str | None = None,
                board: str | None = None, format: str | None = None, tz: str | None = None,
                cache: bool = True, cache_dir: str | os.PathLike[str] | None = None,
                progress: bool | None = None, errors: str = "raise",
                closed_only: bool = False, field: str | None = None) -> pd.DataFrame:
        """Candles of one symbol (``"SBER"``, ``"ITS:SOGN"``) or a list of them, paged and
        cached on disk.

        Returns a DataFrame indexed by ``time`` (the candle start, tz-aware UTC unless ``tz``),
        or by (``symbol``, ``time``) for a list, with ``open``, ``high``, ``low``, ``close``
        (float64) and ``volume`` (int64, lots). ``attrs``: ``tf``; ``symbol`` for one symbol
        (plots title their charts with it); ``open_candle``, the start
        (ISO string) of the last candle if it had not closed yet, else None (a dict per symbol
        for a list); ``failed`` with ``errors="warn"``/``"ignore"``.

        ``tf``, the timeframe: seconds (``60``, ``"300"``); ``"1min"``, ``"5min"``, ``"15min"``,
        ``"1h"``, ``"4h"`` (also ``"5m"``, ``"1hour"``, ``"M1"``, ``"H1"``...); days ``"D"``,
        ``"1d"``; weeks ``"W"``, ``"1wk"``; months ``"M"``, ``"1mo"``; years ``"Y"``, ``"1y"``.
        ``"1M"`` is refused: a minute or a month?

        ``start`` (inclusive), ``end`` (exclusive, default now), by name: ``"2024-02-01"``,
        ``"2024-02-01 10:00"``, ``"2024-02-01T10:00+03:00"``, ``"01.02.2024"`` (day first),
        ``20240201``, a ``datetime``/``date``/``pd.Timestamp``, or epoch seconds. Times without
        a zone are UTC. Without ``start``, a window before ``end`` that grows with ``tf``;
        or ``period``: ``"5d"``, ``"1wk"``, ``"1mo"``, ``"3mo"``, ``"1y"``, ``"2y"``, ``"ytd"``,
        ``"max"``, back from ``end``.

        For a list: ``errors="raise"`` (default) fails on the first bad symbol; ``"warn"`` or
        ``"ignore"`` returns the others and lists the failed ones in ``attrs["failed"]``.
        ``closed_only=True`` drops candles still open. ``field="close"`` (or ``"open"``,
        ``"high"``, ``"low"``, ``"volume"``) returns that column as a time x symbol frame.
        ``exchange``/``board`` pick the market, ``tz`` converts the index, ``cache=False``
        skips the disk cache (``cache_dir``, ``$INVIA_CACHE_DIR``, ``~/.cache/invia-data``),
        ``progress`` forces the progress bar on or off, ``format`` the wire format.

        Examples::

            inv.history("SBER", "1min", start="2024-01-01", end="2024-02-01")
            inv.history(["SBER", "GAZP", "LKOH"], "D", period="2y", field="close")

        Details: :func:`invia_data.history.history` and docs/history.md.
        """
        from .history import history

        return history(self.http, symbols, tf, start, end, period=period,
                       exchange=self.exchange if exchange is None else exchange, board=board,
                       format=self.format if format is None else format, tz=tz, cache=cache,
                       cache_dir=self._scratch_cache_dir() if cache_dir is None else cache_dir,
                       progress=progress, errors=errors, closed_only=closed_only, field=field)

    def _scratch_cache_dir(self) -> str | None:
        # the embedded simulator declares its identity (see connect), so its candles share the
        # user's cache folder under their own name; another local simulator's may not
        return None if self.embedded else _simulator_cache_dir(self.http.base_url)

    def history_to_dataset(self, symbols: str | list[str], path: str | os.PathLike[str], *,
                           tf: str | int = "1min", start: TimeLike | None = None,
                           end: TimeLike | None = None, **options: Any) -> Any:
        """Closed candles into a Hive-partitioned Parquet dataset, resumable; see
        :func:`invia_data.download.history_to_dataset`."""
        from .download import history_to_dataset

        options.setdefault("exchange", self.exchange)
        options.setdefault("format", self.format)
        return history_to_dataset(self.http, symbols, path, tf, start, end, **options)

    def download_universe(self, path: str | os.PathLike[str], exchange: str | None = None, *,
                          markets: str | list[str] | None = None,
                          boards: str | list[str] | None = None,
                          types: str | list[str] | None = None, tf: str | int = "1min",
                          start: TimeLike | None = None, end: TimeLike | None = None,
                          progress: bool | None = None, max_workers: int = 4) -> pd.DataFrame:
        """Every instrument of ``exchange`` (filtered: ``markets`` such as ``"FOND"``, ``boards``
        such as ``"TQBR"``, ``types`` such as ``"CS"``) downloaded into one Parquet dataset at
        ``path`` (layout in :mod:`invia_data.dataset`; read it with
        :func:`invia_data.dataset.open`). Resumable: a second call fetches only what is
        missing. Returns one row per instrument: exchange, symbol, board, status
        (``written``, ``complete``, ``no candles``, ``failed``), candles, files, requests,
        error; a failed instrument does not stop the others. See
        :func:`invia_data.download.download_universe`.
        """
        from .download import download_universe

        ex = check_exchange(exchange) if exchange is not None else self.exchange

        def listing(market: str | None) -> pd.DataFrame:
            return self.instruments(ex, market=market)

        return download_universe(listing, self.http, path, exchange=ex, markets=markets,
                                 boards=boards, types=types, tf=tf, start=start, end=end,
                                 format=self.format, progress=progress, max_workers=max_workers)

    def close(self) -> None:
        """Close the stream (if it was opened), the HTTP session and the token manager's
        session. Idempotent."""
        with self._stream_lock:
            if self._closed:
                return
            self._closed = True
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        self.http.close()
        if self.tokens is not None:
            self.tokens.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_simulator_cache: str | None = None


def _simulator_cache_dir(base_url: str) -> str | None:
    """A cache folder for a simulator on this machine, removed at exit: its live candles differ
    from one run to the next, so they must not mix in the user's cache (nor pile up there).
    ``$INVIA_CACHE_DIR`` still wins. None (the default cache) for any other host."""
    global _simulator_cache
    host = urlsplit(base_url).hostname or ""
    if os.environ.get("INVIA_CACHE_DIR") or host not in ("127.0.0.1", "localhost", "::1"):
        return None
    with _embedded_lock:
        if _simulator_cache is None:
            _simulator_cache = tempfile.mkdtemp(prefix="invia-sim-cache-")
            atexit.register(shutil.rmtree, _simulator_cache, True)
    return _simulator_cache


# --- connect ------------------------------------------------------------------------------------

def connect(refresh_token: str | None = None, *, token: str | None = None,
            env: str | None = None, base_url: str | None = None, ws_url: str | None = None,
            auth_url: str | None = None, exchange: str = "MOEX", portfolio: str | None = None,
            format: str | None = None, session: requests.Session | None = None,
            rate_limit: float | None = 100.0) -> Client:
    """A :class:`Client` for an environment.

    ``env``: ``"prod"``, ``"dev"``, ``"sim"`` (the embedded simulator, with its own
    credentials; ``$INVIA_REFRESH_TOKEN``/``$INVIA_TOKEN`` are not sent to it) or the URL of a
    server of the API (default ``$INVIA_ENV``, else ``prod`` when credentials exist, else the
    embedded simulator). ``base_url``/``ws_url``/``auth_url`` override its endpoints.
    ``refresh_token`` (default ``$INVIA_REFRESH_TOKEN``) is exchanged for short-lived JWTs and
    renewed automatically; ``token`` (default ``$INVIA_TOKEN``) is a static JWT used until it
    expires. With an explicit environment and no credentials the client is anonymous: public
    calls only, with data 15 minutes old. ``format`` pins the wire format of every call;
    ``session`` is the ``requests.Session`` to use; ``rate_limit`` requests per second.

    A token is fetched at once, so bad credentials fail here (AuthError/Forbidden).
    """
    normalize_format(format)
    exchange = check_exchange(exchange)
    _check_connect_arguments(refresh_token, token, env, base_url, ws_url, auth_url, portfolio,
                             session, rate_limit)
    env = env if env is not None else (os.environ.get("INVIA_ENV") or None)
    if env != "sim":  # the environment's credentials belong to a real account, not the simulator
        refresh_token = refresh_token or os.environ.get("INVIA_REFRESH_TOKEN") or None
        token = token or os.environ.get("INVIA_TOKEN") or None
    embedded = False
    cache_as: tuple[str, int] | None = None
    if env == "sim" or (env is None and base_url is None and not refresh_token and not token):
        server = embedded_simulator()
        endpoints = Endpoints("sim", server.url, server.ws_url, server.auth_url)
        if not refresh_token and not token:
            refresh_token = server.refresh_token
        embedded = True
        cache_as = (server.identity, server.history_until)
    elif env is None:
        endpoints = endpoints_for_url(base_url) if base_url else ENVIRONMENTS["prod"]
    elif env in ENVIRONMENTS:
        endpoints = ENVIRONMENTS[env]
    elif isinstance(env, str) and env.startswith(("http://", "https://")):
        endpoints = endpoints_for_url(env)
    else:
        raise InvalidArgument(f"unknown environment {env!r}: use 'prod', 'dev', 'sim' or a URL")
    base = base_url or endpoints.base_url
    auth = auth_url or endpoints.auth_url
    tokens = None
    if refresh_token or token:
        tokens = TokenManager(refresh_token, token, auth_url=auth, session=session)
    http = Http(base, tokens, session=session, rate=rate_limit)
    if cache_as is not None:
        http.cache_environment, http.cache_until = cache_as
    client = Client(http, tokens, env=endpoints.name, ws_url=ws_url or endpoints.ws_url,
                    exchange=exchange, portfolio=portfolio, format=format, embedded=embedded)
    if tokens is not None:
        try:
            tokens.token()
            if portfolio is not None:  # a portfolio the token lacks fails here
                client._default_portfolio = client._portfolio(portfolio)
        except Exception:
            client.close()
            raise
    else:
        log.info("no credentials for %s: public calls only, data delayed 15 minutes",
                 endpoints.name)
    return client


def _check_connect_arguments(refresh_token: Any, token: Any, env: Any, base_url: Any,
                             ws_url: Any, auth_url: Any, portfolio: Any, session: Any,
                             rate_limit: Any) -> None:
    """The types and shapes of connect()'s arguments, before anything is started."""
    for name, value in (("refresh_token", refresh_token), ("token", token)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidArgument(f"{name} must be a non-empty string (None reads "
                                  f"${'INVIA_REFRESH_TOKEN' if name == 'refresh_token' else 'INVIA_TOKEN'})")
        if isinstance(value, str) and not value.isprintable():
            raise InvalidArgument(f"{name} holds a control character (a newline copied along?)")
    if env is not None and not isinstance(env, str):
        raise InvalidArgument(f"env must be 'prod', 'dev', 'sim' or a URL, got {env!r}")
    for name, value, schemes in (("base_url", base_url, ("http://", "https://")),
                                 ("auth_url", auth_url, ("http://", "https://")),
                                 ("ws_url", ws_url, ("ws://", "wss://"))):
        if value is not None and (not isinstance(value, str) or not value.startswith(schemes)
                                  or not value.isprintable() or len(value) > 2000):
            raise InvalidArgument(f"{name} must be a {' or '.join(schemes)} URL, "
                                  f"got {value!r}"[:200])
    if portfolio is not None:
        validate.portfolio_id(portfolio)
    if session is not None and not isinstance(session, requests.Session):
        raise InvalidArgument(f"session must be a requests.Session, got {type(session).__name__}")
    if rate_limit is not None:
        validate.number(rate_limit, "rate_limit (requests per second)", high=1e6, positive=True)
