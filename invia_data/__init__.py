"""invia-data: the Invia Broker API as pandas DataFrames, live, with an embedded simulator."""

from __future__ import annotations

from .books import book_stats
from .client import Client, connect
from .errors import (
    APIError,
    AuthError,
    BadRequest,
    ClientClosed,
    DecodeError,
    Forbidden,
    InvalidArgument,
    InviaError,
    InviaWarning,
    NotFound,
    RateLimited,
    RequestTimeout,
    ServerError,
    StreamClosed,
    StreamError,
    StreamTimeout,
    Timeout,
    TransportError,
)
from .replay import Replay, replay
from .stream import LiveFrame, Stream

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AuthError",
    "DecodeError",
    "BadRequest",
    "Client",
    "Forbidden",
    "InvalidArgument",
    "InviaError",
    "LiveFrame",
    "NotFound",
    "RateLimited",
    "Replay",
    "ServerError",
    "Stream",
    "StreamClosed",
    "ClientClosed",
    "InviaWarning",
    "StreamError",
    "RequestTimeout",
    "StreamTimeout",
    "Timeout",
    "TransportError",
    "__version__",
    "book_stats",
    "connect",
    "replay",
]
