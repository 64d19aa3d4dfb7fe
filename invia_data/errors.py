"""The exception tree of invia-data.

Warnings it gives are :class:`InviaWarning` (a UserWarning): a partial result, for example.

Every error the library raises on purpose derives from :class:`InviaError`::

    InviaError
    ├── InvalidArgument (ValueError)     bad input, raised before any request is sent
    ├── ClientClosed                      a call on a client after its close()
    ├── APIError                          the server answered with an error status
    │   ├── BadRequest         400        the server's message names the parameter
    │   ├── AuthError          401        missing, expired or rejected token
    │   ├── Forbidden          403        portfolio not in the token, refresh token refused
    │   │                                 (also a PermissionError)
    │   ├── NotFound           404        unknown instrument, order, position (also a LookupError)
    │   ├── RateLimited        429        still limited after the bounded retries
    │   ├── ServerError        5xx        still failing after the bounded retries
    │   └── DecodeError                   a body that is not JSON or not of the documented
    │                                     shape (an HTTP route's, the token server's)
    ├── TransportError (ConnectionError)  no answer: connection refused, reset, timed out
    │   └── RequestTimeout (Timeout)      an HTTP request (or the token server) timed out
    ├── Timeout (TimeoutError)            anything awaited did not come in time:
    │                                     RequestTimeout, StreamTimeout
    └── StreamError                       the live stream failed outside an HTTP-like status
        ├── StreamClosed                  the stream was closed by the user
        └── StreamTimeout (Timeout)       awaited stream data did not arrive in time

``APIError`` carries ``status``, ``message`` (the server's text) and ``request`` (a short
"METHOD path" or the WebSocket opcode). Error texts never contain a token.
"""

from __future__ import annotations

import re

__all__ = [
    "InviaError",
    "InviaWarning",
    "InvalidArgument",
    "ClientClosed",
    "APIError",
    "BadRequest",
    "AuthError",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "ServerError",
    "DecodeError",
    "TransportError",
    "RequestTimeout",
    "Timeout",
    "StreamError",
    "StreamClosed",
    "StreamTimeout",
    "error_for_status",
]


class InviaError(Exception):
    """Base class of every error raised by invia-data."""


class InviaWarning(UserWarning):
    """A warning of invia-data: the call worked, but not completely (see its message)."""


class InvalidArgument(InviaError, ValueError):
    """An argument is invalid; raised before any request is made.

    A value quoted in the message is cut to a readable length (a 10,000-character symbol is
    shown by its start and its length), so the message stays short enough to read the fix."""

    def __init__(self, message: str = "", *args: object) -> None:
        if isinstance(message, str) and len(message) > _LONG_MESSAGE:
            message = _LONG_WORD.sub(_shorten, message)
        super().__init__(message, *args)


_LONG_MESSAGE = 300
_LONG_WORD = re.compile(r"\S{81,}")


def _shorten(match: re.Match[str]) -> str:
    word = match.group(0)
    return f"{word[:40]}...({len(word)} characters)"


class ClientClosed(InviaError):
    """A call on a client (or its HTTP seam) after ``close()``: make a new one with
    ``invia_data.connect()``."""


class APIError(InviaError):
    """The server answered with an error status."""

    status: int = 0

    def __init__(self, message: str, *, status: int | None = None, request: str | None = None,
                 retry_after: float | None = None) -> None:
        if status is not None:
            self.status = status
        self.message = message
        self.request = request
        self.retry_after = retry_after
        where = f" ({request})" if request else ""
        super().__init__(f"{self.status}: {message}{where}")


class BadRequest(APIError):
    status = 400


class AuthError(APIError):
    status = 401


class Forbidden(APIError, PermissionError):
    status = 403


class NotFound(APIError, LookupError):
    status = 404


class RateLimited(APIError):
    status = 429


class ServerError(APIError):
    status = 500


class DecodeError(APIError):
    """The server answered, but its body is not JSON or not of the documented shape: a
    server-side fault, not the caller's input (so not an InvalidArgument), and for the token
    server not a refused credential (so not an AuthError). ``status`` is the answer's."""


class TransportError(InviaError, ConnectionError):
    """The request got no answer (connection refused or reset, timeout, TLS failure)."""


class Timeout(InviaError, TimeoutError):
    """Something awaited did not come in time; also the builtin ``TimeoutError``.
    ``except TimeoutError`` catches both kinds: :class:`RequestTimeout` and
    :class:`StreamTimeout`."""


class RequestTimeout(TransportError, Timeout):
    """An HTTP request (or the token server, e.g. in ``connect()``) timed out, after the
    bounded retries; a TransportError and a TimeoutError."""


class StreamError(InviaError):
    """The live stream failed outside an HTTP-like status."""


class StreamClosed(StreamError):
    """The stream (or the subscription) was closed by the user."""


class StreamTimeout(StreamError, Timeout):
    """Awaited stream data did not arrive in time (``LiveFrame.wait``); also a TimeoutError."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    429: RateLimited,
}


def error_for_status(status: int, message: str, request: str | None = None,
                     retry_after: float | None = None) -> APIError:
    """The exception instance for an error status (any 5xx is a ServerError)."""
    if status >= 500:
        cls: type[APIError] = ServerError
    else:
        cls = _BY_STATUS.get(status, APIError)
    return cls(message, status=status, request=request, retry_after=retry_after)
