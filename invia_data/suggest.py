"""Better answers to an unknown symbol: after the server's 404, one search request finds whether
the symbol is listed on another exchange (``SOGN`` is on ITS: write ``ITS:SOGN``) or what it
was probably meant to be (``SBRE``: did you mean ``SBER``?).

Only a failed call pays for the search, and a failed search leaves the original error as it was.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .errors import InviaError, NotFound

__all__ = ["suggesting", "suggests_symbols", "hint"]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("invia_data.http")

SEARCH_LIMIT = 200


@contextmanager
def suggesting(http: Any, pairs: Sequence[tuple[str, str]]) -> Iterator[None]:
    """Re-raise a NotFound about one of ``pairs`` (exchange, symbol) with a hint that names
    the fix, when one search request finds it."""
    try:
        yield
    except NotFound as exc:
        if http is None:  # nothing to search with (a stream without HTTP)
            raise
        unknown = _unknown_pair(exc, pairs)
        extra = hint(http, *unknown) if unknown else None
        if not extra:
            raise
        raise NotFound(f"{exc.message}. {extra}", request=exc.request) from exc


def suggests_symbols(method: F) -> F:
    """For a call whose first argument is a symbol (or symbols) and whose ``exchange=`` keyword
    defaults to the client's: its NotFound carries the hint of :func:`suggesting`."""
    first = list(inspect.signature(method).parameters)[1]  # after self, by name or position

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except NotFound:
            from .market import parse_symbol

            symbols = args[0] if args else kwargs.get(first)
            pairs = [parse_symbol(s, kwargs.get("exchange") or self.exchange)
                     for s in _names(symbols)]
            with suggesting(self.http, pairs):
                raise
    return call  # type: ignore[return-value]


def _names(symbols: Any) -> list[str]:
    if isinstance(symbols, str):
        return [s for s in symbols.split(",") if s.strip()]
    return [s for s in symbols if isinstance(s, str)] if isinstance(symbols, Iterable) else []


def _unknown_pair(exc: NotFound, pairs: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The pair the server's text names last (it follows the call's own list of what it
    asked for), or the only one asked for."""
    if len(pairs) == 1:
        return pairs[0]
    text = str(exc.message).upper()
    where = {p: text.rfind(f"{p[0]}:{p[1]}".upper()) for p in pairs}
    found = [p for p, at in where.items() if at >= 0]
    return max(found, key=where.__getitem__) if found else None


def hint(http: Any, exchange: str, symbol: str) -> str | None:
    """A sentence that names the fix for an unknown ``exchange:symbol``, or None."""
    try:
        found = _search(http, symbol)
    except InviaError as exc:  # the hint is a courtesy: never hide the real error behind it
        log.debug("no hint for %s:%s: %s", exchange, symbol, exc)
        return None
    elsewhere = sorted({ex for ex, sym in found if sym.upper() == symbol.upper() and ex != exchange})
    if elsewhere:
        spelled = " or ".join(f"'{ex}:{symbol}'" for ex in elsewhere)
        return f"{symbol} is listed on {', '.join(elsewhere)}, not {exchange}: write {spelled}"
    names = sorted({sym.upper() for ex, sym in found if ex == exchange})
    if symbol.upper() in names:  # it exists: the 404 was about something else
        return None
    close = difflib.get_close_matches(symbol.upper(), names, n=3, cutoff=0.6)
    if close:
        return "Did you mean " + " or ".join(repr(name) for name in close) + "?"
    return None


def _search(http: Any, symbol: str) -> list[tuple[str, str]]:
    """(exchange, symbol) of the instruments whose names start like ``symbol``: one request."""
    params = {"query": symbol[:2], "limit": SEARCH_LIMIT, "format": "Simple"}
    payload = http.get("/md/v2/Securities", params)
    return [(str(item.get("exchange") or "").upper(), str(item.get("symbol") or ""))
            for item in payload or [] if isinstance(item, dict)]
