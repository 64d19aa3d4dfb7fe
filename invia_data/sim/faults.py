"""Fault injection for the simulator, switchable at start and at run time from any thread.

>>> sim.faults.http_error_rate = 0.3          # 30 % of HTTP data requests fail ...
>>> sim.faults.http_error_status = 429        # ... with 429 and Retry-After
>>> sim.faults.drop_connections()             # every WebSocket connection is cut now
>>> sim.faults.reset()                        # back to a healthy server

Settings are plain attributes (reads and writes of one attribute are atomic); the random
draws use one seeded generator under a lock, so a run with the same seed and the same request
sequence fails the same requests.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidArgument

_DEFAULTS: dict[str, Any] = {
    "http_error_rate": 0.0,      # fraction of HTTP requests answered with http_error_status
    "http_error_status": 429,    # 429 (with Retry-After) or a 5xx
    "retry_after": 1.0,          # seconds, the Retry-After header of injected 429s
    "latency": 0.0,              # seconds added before every HTTP answer and WS reply
    "malformed_rate": 0.0,       # fraction of WebSocket data frames sent broken
    "malformed_kind": "truncated",  # "truncated" (cut in half) or "garbage" (not JSON)
    "token_lifetime": 1800.0,    # seconds, lifetime of access tokens issued from now on
    "drop_every": 0.0,           # seconds; > 0 cuts every WebSocket connection periodically
    "stalled": False,            # subscriptions stop sending data, connections stay open
    "refuse_data_on_cws": False,  # data subscriptions on /cws answer 400 "Unknown opcode"
}
_MALFORMED_KINDS = ("truncated", "garbage")


class Faults:
    """The simulator's fault switchboard (``sim.faults``)."""

    http_error_rate: float
    http_error_status: int
    retry_after: float
    latency: float
    malformed_rate: float
    malformed_kind: str
    token_lifetime: float
    drop_every: float
    stalled: bool
    refuse_data_on_cws: bool

    def __init__(self, seed: int = 1, **settings: Any) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._refuse_until = 0.0
        self._drop_listeners: list[Callable[[], None]] = []
        for name, value in _DEFAULTS.items():
            object.__setattr__(self, name, value)
        self.configure(**settings)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _DEFAULTS:
            value = _validated(name, value)
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        active = {k: getattr(self, k) for k, v in _DEFAULTS.items() if getattr(self, k) != v}
        if self.refusing:
            active["refusing_for"] = round(self._refuse_until - time.monotonic(), 3)
        return f"Faults({', '.join(f'{k}={v!r}' for k, v in active.items())})"

    @classmethod
    def coerce(cls, faults: Faults | Mapping[str, Any] | None, seed: int = 1) -> Faults:
        """``run(faults=...)`` accepts a Faults object, a mapping of settings or None."""
        if isinstance(faults, Faults):
            return faults
        if faults is None:
            return cls(seed)
        if isinstance(faults, Mapping):
            return cls(seed, **faults)
        raise InvalidArgument(f"faults must be a Faults object or a mapping, got {type(faults).__name__}")

    def configure(self, **settings: Any) -> Faults:
        """Set several settings at once (unknown names raise InvalidArgument)."""
        unknown = sorted(set(settings) - set(_DEFAULTS) - {"refuse_for"})
        if unknown:
            raise InvalidArgument(f"unknown fault setting(s): {', '.join(unknown)}; "
                                  f"known: {', '.join(_DEFAULTS)}, refuse_for")
        with self._lock:
            for name, value in settings.items():
                if name == "refuse_for":
                    continue
                setattr(self, name, value)
        if "refuse_for" in settings:
            self.refuse_connections(settings["refuse_for"])
        return self

    def reset(self) -> None:
        """Back to a healthy server (and the generator back to its seed)."""
        with self._lock:
            for name, value in _DEFAULTS.items():
                setattr(self, name, value)
            self._refuse_until = 0.0
            self._rng = random.Random(self._seed)

    # --- connections ---------------------------------------------------------------------------

    def drop_connections(self) -> None:
        """Cut every open WebSocket connection now (clients see an abrupt close)."""
        with self._lock:
            listeners = list(self._drop_listeners)
        for listener in listeners:
            listener()

    def refuse_connections(self, seconds: float) -> None:
        """Refuse new WebSocket connections (HTTP 503 at the upgrade) for ``seconds``."""
        seconds = _number("refuse_for", seconds)
        with self._lock:
            self._refuse_until = time.monotonic() + seconds

    @property
    def refusing(self) -> bool:
        return time.monotonic() < self._refuse_until

    def on_drop(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Register the server's "drop everything" hook; returns a function that removes it."""
        with self._lock:
            self._drop_listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._drop_listeners:
                    self._drop_listeners.remove(listener)
        return remove

    # --- draws ---------------------------------------------------------------------------------

    def http_failure(self) -> int | None:
        """The status to answer this HTTP request with instead of data, or None."""
        rate = self.http_error_rate
        if rate <= 0:
            return None
        with self._lock:
            hit = self._rng.random() < rate
        return self.http_error_status if hit else None

    def corrupt(self, frame: bytes) -> bytes:
        """``frame`` itself, or a broken copy of it for a ``malformed_rate`` fraction of frames."""
        rate = self.malformed_rate
        if rate <= 0:
            return frame
        with self._lock:
            hit = self._rng.random() < rate
        if not hit:
            return frame
        if self.malformed_kind == "garbage":
            return b'{"data": <<not json>>' + frame[:8]
        return frame[: max(1, len(frame) // 2)]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidArgument(f"fault setting {name} must be a number >= 0, got {value!r}")
    return float(value)


def _validated(name: str, value: Any) -> Any:
    if name in ("stalled", "refuse_data_on_cws"):
        if not isinstance(value, bool):
            raise InvalidArgument(f"fault setting {name} must be a bool, got {value!r}")
        return value
    if name == "malformed_kind":
        if value not in _MALFORMED_KINDS:
            raise InvalidArgument(f"malformed_kind must be one of {_MALFORMED_KINDS}, got {value!r}")
        return value
    if name == "http_error_status":
        if isinstance(value, bool) or not isinstance(value, int) or not (value == 429 or 500 <= value <= 599):
            raise InvalidArgument(f"http_error_status must be 429 or a 5xx status, got {value!r}")
        return value
    number = _number(name, value)
    if name in ("http_error_rate", "malformed_rate") and number > 1:
        raise InvalidArgument(f"fault setting {name} is a fraction in 0..1, got {value!r}")
    if name == "token_lifetime" and number < 1:
        raise InvalidArgument(f"token_lifetime must be at least 1 second, got {value!r}")
    return number
