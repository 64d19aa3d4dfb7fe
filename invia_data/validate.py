"""One validation layer for every argument a user gives, shared by the HTTP calls and the stream.

Each check returns the normalised value or raises :class:`~invia_data.errors.InvalidArgument`
with a message that names the fix, before any request is built. The rules:

* **Path segments** (symbols, exchanges, boards, portfolios, order ids, logins) are codes of a
  fixed ASCII alphabet with a length limit: never ``.``/``..``, a ``/``, a ``%``, a control
  character or whitespace inside, so no value can change the route a call requests (the HTTP
  seam also percent-encodes every segment, see :func:`quote_segment`).
* **Free text** (a search query) may hold any printable character, within a length limit.
* **Flags** are strictly ``True``/``False`` (``"yes"``, ``1`` and ``None`` are refused).
* **Integers** are Python or NumPy integers (not bools, floats or strings) within 64 bits and
  the range the call allows; **numbers** are finite reals within a sane range.
* **Local paths** are ``str``/``PathLike`` without control characters, each name at most 255
  bytes (refused here rather than as ``OSError: File name too long``).
* **Keywords** a call does not take are refused naming the one probably meant (a close
  spelling, or our name for the wire's or an older one: ``levels=`` is ``depth=``) and listing
  the call's options, rather than as Python's ``TypeError``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from .errors import InvalidArgument

__all__ = [
    "INT64_MAX",
    "board",
    "code",
    "count",
    "exchange",
    "flag",
    "free_text",
    "instrument",
    "checked_keywords",
    "keywords",
    "parameter_names",
    "local_path",
    "login",
    "number",
    "optional_flag",
    "order_id",
    "portfolio_id",
    "quote_segment",
    "resolve_portfolio",
    "seconds",
    "symbol",
]

INT64_MAX = 2**63 - 1
SYMBOL_MAX = 64
EXCHANGE_MAX = 16
BOARD_MAX = 32
PORTFOLIO_MAX = 32
TEXT_MAX = 256
NAME_MAX_BYTES = 255             # one file or directory name on common file systems
NUMBER_MAX = 1e15                # prices, quantities: far above any real one

_SYMBOL = re.compile(r"[A-Za-z0-9_.\-@+]+")
_EXCHANGE = re.compile(r"[A-Za-z]+")
_BOARD = re.compile(r"[A-Za-z0-9_.\-]+")
_PORTFOLIO = re.compile(r"[A-Za-z0-9]+")
_ALNUM = re.compile(r"[A-Za-z0-9]+")
_LOGIN = re.compile(r"[A-Za-z0-9_.\-@]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# RFC 3986 pchar minus "%": what a path segment keeps unencoded
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"
# a keyword from elsewhere (the wire, an older version, other libraries) -> ours, where it is one
KEYWORD_RENAMES = {"levels": "depth", "depth": "recent", "timeframe": "tf",
                   "date_from": "start", "date_to": "end"}


def _shown(value: Any) -> str:
    """``repr(value)`` cut to a readable length (a 10k-character string stays short)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-10:]} ({len(text)} chars)"


def _code(value: Any, name: str, pattern: re.Pattern[str], limit: int, example: str,
          alphabet: str) -> str:
    """A code used as a path segment: a string of ``pattern``, at most ``limit`` characters,
    not made of dots only. Surrounding spaces are dropped; anything else odd is refused."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string such as {example!r}, got {_shown(value)}")
    if _CONTROL.search(value):
        raise InvalidArgument(f"{name} {_shown(value)} holds a control character "
                              f"(a newline?): pass the bare code, e.g. {example!r}")
    text = value.strip(" ")
    if not text:
        raise InvalidArgument(f"{name} must not be empty: pass a code such as {example!r}")
    if len(text) > limit:
        raise InvalidArgument(f"{name} is {len(text)} characters long; a code has at most "
                              f"{limit} (e.g. {example!r})")
    if not pattern.fullmatch(text) or set(text) == {"."}:
        raise InvalidArgument(f"invalid {name} {_shown(value)}: use {alphabet}, "
                              f"e.g. {example!r}")
    return text


def symbol(value: Any, name: str = "symbol") -> str:
    """A ticker such as ``"SBER"`` or ``"Si-12.24"`` (its case is kept)."""
    return _code(value, name, _SYMBOL, SYMBOL_MAX, "SBER",
                 "ASCII letters, digits and . - _ @ + (not only dots)")


def exchange(value: Any, name: str = "exchange") -> str:
    """An exchange code such as ``"MOEX"``, upper-cased."""
    return _code(value, name, _EXCHANGE, EXCHANGE_MAX, "MOEX", "ASCII letters only").upper()


def board(value: Any, name: str = "board") -> str | None:
    """A board (instrument group) such as ``"TQBR"``, upper-cased; None stays None."""
    if value is None:
        return None
    return _code(value, name, _BOARD, BOARD_MAX, "TQBR",
                 "ASCII letters, digits and . - _").upper()


def portfolio_id(value: Any, name: str = "portfolio") -> str:
    """The spelling of a portfolio id such as ``"D39004"`` (whether the token lists it is
    :func:`resolve_portfolio`'s business)."""
    return _code(value, name, _PORTFOLIO, PORTFOLIO_MAX, "D39004", "ASCII letters and digits")


def login(value: Any, name: str = "login") -> str:
    return _code(value, name, _LOGIN, SYMBOL_MAX, "P039004", "ASCII letters and digits")


def code(value: Any, name: str, example: str) -> str:
    """A letters-and-digits code sent as a query parameter (a CFI pattern such as ``"ESXXXX"``)."""
    return _code(value, name, _ALNUM, SYMBOL_MAX, example, "ASCII letters and digits")


def instrument(value: Any, default_exchange: str, name: str = "symbol") -> tuple[str, str]:
    """``"SBER"`` -> ``(default_exchange, "SBER")``; ``"MOEX:SBER"`` -> ``("MOEX", "SBER")``."""
    if isinstance(value, str) and ":" in value and not _CONTROL.search(value):
        prefix, _, rest = value.partition(":")
        return exchange(prefix, f"exchange of {name} {_shown(value)}"), symbol(rest, name)
    return exchange(default_exchange), symbol(value, name)


def order_id(value: Any, name: str = "order id") -> str:
    """A positive integer id (int or digit string) within 64 bits, as its decimal text."""
    if isinstance(value, str):
        text = value.strip(" ")
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise InvalidArgument(f"{name} must be a positive integer, got {_shown(value)}")
        value = int(text)
    return str(count(value, name, low=1))


def free_text(value: Any, name: str, limit: int = TEXT_MAX) -> str:
    """Text sent as a query parameter (a search): printable, non-empty, at most ``limit``."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {_shown(value)}")
    if _CONTROL.search(value):
        raise InvalidArgument(f"{name} {_shown(value)} holds a control character: "
                              "remove newlines and tabs")
    text = value.strip()
    if not text:
        raise InvalidArgument(f"{name} must not be empty (pass None for no filter)")
    if len(text) > limit:
        raise InvalidArgument(f"{name} is {len(text)} characters long; at most {limit}")
    return text


def flag(value: Any, name: str) -> bool:
    """Strictly ``True`` or ``False`` (a NumPy bool too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgument(f"{name} must be True or False, got {_shown(value)}")
    return bool(value)


def optional_flag(value: Any, name: str) -> bool | None:
    return None if value is None else flag(value, name)


def count(value: Any, name: str, *, low: int = 1, high: int = INT64_MAX) -> int:
    """An integer (not a bool, float or string) in ``low..high``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{name} must be an integer, got {_shown(value)}")
    number_ = int(value)
    if number_ < low or number_ > high:
        bound = f">= {low}" if high == INT64_MAX else f"{low}..{high}"
        raise InvalidArgument(f"{name} must be {bound}, got {_shown(number_)}")
    return number_


def number(value: Any, name: str, *, low: float = 0.0, high: float = NUMBER_MAX,
           positive: bool = False) -> float:
    """A finite real number in ``low..high`` (above ``low`` when ``positive``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise InvalidArgument(f"{name} must be a number, got {_shown(value)}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result) or result < low or result > high or (
            positive and result <= low):
        side = f"> {low:g}" if positive else f">= {low:g}"
        raise InvalidArgument(f"{name} must be a finite number {side} and <= {high:g}, "
                              f"got {_shown(value)}")
    return result


def seconds(value: Any, name: str = "timeout", high: float = 86_400.0) -> float:
    """A duration in seconds (``timeout=5``): a positive number up to a day."""
    return number(value, name, high=high, positive=True)


def local_path(value: Any, name: str = "path") -> Path:
    """A local file or folder path: ``str`` or ``PathLike``, no control characters, no name
    longer than 255 bytes; ``~`` expanded, made absolute."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise InvalidArgument(f"{name} must be a str or pathlib.Path, got {_shown(value)}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"{name} must be a non-empty path, got {_shown(value)}")
    if _CONTROL.search(text):
        raise InvalidArgument(f"{name} {_shown(value)} holds a control character")
    path = Path(text).expanduser().absolute()  # "MOEX:x" is a folder, not a URI scheme
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX_BYTES:
            raise InvalidArgument(f"{name}: the name {_shown(part)} is longer than "
                                  f"{NAME_MAX_BYTES} bytes; use a shorter one")
    return path


# --- portfolios ---------------------------------------------------------------------------------

_PREFIX_MARKET = {"D": "stock-market (D…)", "75": "derivatives (75…)", "G": "FX (G…)"}


def resolve_portfolio(portfolio: Any, known: list[str], default: str | None,
                      prefix: str = "D") -> str:
    """The portfolio a call is about, in the token's spelling, by one rule for HTTP and stream.

    ``None``: ``default`` when ``prefix`` is ``"D"`` (the client's default portfolio), else the
    token's first portfolio starting with ``prefix`` (``"75"`` for derivatives risk). Otherwise
    the id, matched without regard to case against the token's ``known`` portfolios.
    """
    if portfolio is None:
        found = default if prefix == "D" and default else next(
            (p for p in known if p.startswith(prefix)), None)
        if found is None:
            kind = _PREFIX_MARKET.get(prefix, f"{prefix}…")
            raise InvalidArgument(f"the token lists no {kind} portfolio; pass portfolio=")
        return found
    text = portfolio_id(portfolio)
    for candidate in known:
        if candidate.upper() == text.upper():
            return candidate
    listed = ", ".join(known) or "none"
    raise InvalidArgument(f"portfolio {text!r} is not in the token (its portfolios: {listed})")


# --- the HTTP seam ------------------------------------------------------------------------------

def keywords(call: str, given: Iterable[str], options: Iterable[str]) -> None:
    """Refuse the first of ``given`` that is not among ``options`` (the keywords ``call``
    takes), naming the one probably meant."""
    known = sorted(set(options))
    for name in given:
        if name not in known:
            raise InvalidArgument(f"{call}() takes no {name!r}{_meant(name, known)}; its options "
                                  f"are {', '.join(known)}")


def parameter_names(function: Callable[..., Any]) -> list[str]:
    """The parameters ``function`` takes by name (``self`` and ``*``/``**`` ones aside)."""
    return [name for name, p in inspect.signature(function).parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def checked_keywords(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with a keyword it does not take refused by :func:`keywords` (naming the
    one probably meant: ``levels=`` is ``depth=``), not by Python's TypeError."""
    options = parameter_names(function)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        keywords(function.__name__, kwargs, options)
        return function(*args, **kwargs)

    return call


def _meant(name: str, known: list[str]) -> str:
    renamed = [KEYWORD_RENAMES.get(name),   # either way: tf= where timeframe= is taken too
               *(old for old, new in KEYWORD_RENAMES.items() if new == name)]
    close = ([r for r in renamed if r in known]
             or difflib.get_close_matches(name, known, n=1, cutoff=0.6))
    return f" (did you mean {close[0]}=?)" if close else ""


def quote_segment(segment: str) -> str:
    """One URL path segment, percent-encoded so it stays one segment. Refuses what no encoding
    can keep in place: empty, ``.``/``..`` and an encoded ``/`` or ``\\``."""
    text = unquote(segment)
    if text in ("", ".", "..") or "/" in text or "\\" in text or _CONTROL.search(text):
        raise InvalidArgument(f"the path segment {_shown(segment)} would change the route "
                              "requested; check the symbol, exchange or portfolio given")
    return quote(text, safe=_SEGMENT_SAFE)
