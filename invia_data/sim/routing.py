"""Request routing and validation for the simulator's HTTP API.

Paths are matched case-insensitively (segments compared in lower case, parameters keep their
case); query parameter names are matched case-insensitively too; enum values (format,
exchange, side, ...) as well. Bad values raise ``Problem(400, message naming the parameter)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from ..errors import InvalidArgument
from ..schema import normalize_format
from ..timeframes import to_seconds

if TYPE_CHECKING:
    from .server import SimServer

ANONYMOUS_DELAY = 900
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1
MAX_TF_SECONDS = 31_536_000    # "Y": no candle is longer than a year
EXCHANGES = ("MOEX", "SPBX", "ITS", "UNITED")
MARKETS = ("FORTS", "FOND", "CURR", "SPBX")


class Problem(Exception):
    """An HTTP error answer: 401 has an empty body, the others ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> Problem:
    return Problem(400, message)


# --- query parameters ----------------------------------------------------------------------------

class Params:
    """Query parameters by case-insensitive name, validated into Python values (400 otherwise)."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self._values = {k.lower(): v for k, v in query.items()}

    def raw(self, name: str) -> str | None:
        value = self._values.get(name.lower())
        return None if value is None or value == "" else value

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None and required:
            raise bad(f"parameter '{name}' is required")
        return value

    @overload
    def integer(self, name: str, default: int, *, required: bool = False,
                lo: int | None = None, hi: int | None = None) -> int: ...

    @overload
    def integer(self, name: str, default: None = None, *, required: Literal[True],
                lo: int | None = None, hi: int | None = None) -> int: ...

    @overload
    def integer(self, name: str, default: None = None, *, required: bool = False,
                lo: int | None = None, hi: int | None = None) -> int | None: ...

    def integer(self, name: str, default: int | None = None, *, required: bool = False,
                lo: int | None = None, hi: int | None = None) -> int | None:
        value = self.text(name, required)
        if value is None:
            return default
        try:
            number = int(value) if len(value) <= 20 else None
        except ValueError:
            number = None
        if number is None:
            raise bad(f"parameter '{name}' must be an integer, got {value[:40]!r}")
        # the API's integers are int64 at most (int32 where the spec says so)
        return check_range(name, number, INT64_MIN if lo is None else lo,
                           INT64_MAX if hi is None else hi)

    def number(self, name: str) -> float | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            number = float(value) if len(value) <= 40 else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise bad(f"parameter '{name}' must be a finite number, got {value[:40]!r}")
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise bad(f"parameter '{name}' must be true or false, got {value!r}")

    def choice(self, name: str, options: Iterable[str], required: bool = False) -> str | None:
        value = self.text(name, required)
        return None if value is None else pick(name, value, options)

    def format(self) -> str:
        return parse_format(self.raw("format"))


def check_range(name: str, number: int, lo: int | None, hi: int | None) -> int:
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        low = "" if lo is None else f"{lo}"
        high = "" if hi is None else f"{hi}"
        raise bad(f"parameter '{name}' must be in {low}..{high}, got {number}")
    return number


def pick(name: str, value: Any, options: Iterable[str]) -> str:
    """The canonical spelling of an enum value matched case-insensitively (400 otherwise)."""
    options = tuple(options)
    if isinstance(value, str):
        for option in options:
            if option.lower() == value.lower():
                return option
    raise bad(f"parameter '{name}' must be one of {', '.join(options)}, got {value!r}")


def parse_format(value: Any) -> str:
    try:
        return normalize_format(value)
    except InvalidArgument:
        raise bad(f"parameter 'format' must be one of Simple, Slim, Heavy, got {value!r}") from None


def parse_tf(value: Any) -> int:
    """Seconds (1 up to a year) or a code (``D``, ``W``, ``M``, ``Y``); 400 otherwise."""
    if isinstance(value, str) and len(value) > 32:
        raise bad(f"parameter 'tf' is not a known timeframe: {value[:32]!r}...")
    try:
        seconds = to_seconds(value if not isinstance(value, float) else int(value))
    except (InvalidArgument, ValueError, TypeError, OverflowError):
        seconds = None
    if seconds is None or not 1 <= seconds <= MAX_TF_SECONDS:
        raise bad(f"parameter 'tf' is not a known timeframe: {str(value)[:32]!r} (seconds "
                  f"1..{MAX_TF_SECONDS} or D, W, M, Y)")
    return seconds


# --- routing -------------------------------------------------------------------------------------

@dataclass
class Request:
    """What a route handler sees."""

    server: SimServer
    args: dict[str, str]
    params: Params
    claims: dict[str, Any] | None
    body: Any = None
    fmt: str = "Simple"

    @property
    def market(self) -> Any:
        return self.server.market

    @property
    def delay(self) -> int:
        return 0 if self.claims is not None else ANONYMOUS_DELAY

    def now(self) -> float:
        return self.market.now() - self.delay


Handler = Callable[[Request], Any]


@dataclass
class Route:
    pattern: tuple[str, ...]
    handler: Handler
    public: bool = False
    method: str = "GET"
    names: tuple[str | None, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.names = tuple(p[1:-1] if p.startswith("{") else None for p in self.pattern)

    def match(self, segments: list[str], lowered: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.pattern):
            return None
        args = {}
        for seg, low, pat, name in zip(segments, lowered, self.pattern, self.names, strict=False):
            if name is not None:
                args[name] = seg
            elif low != pat:
                return None
        return args


ROUTES: list[Route] = []


def route(path: str, public: bool = False, method: str = "GET") -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        pattern = tuple(p if p.startswith("{") else p.lower() for p in path.strip("/").split("/"))
        ROUTES.append(Route(pattern, handler, public, method))
        return handler
    return register


def find_route(path: str) -> tuple[Route, dict[str, str]] | None:
    segments = [s for s in path.strip("/").split("/") if s]
    lowered = [s.lower() for s in segments]
    for candidate in ROUTES:
        args = candidate.match(segments, lowered)
        if args is not None:
            return candidate, args
    return None
