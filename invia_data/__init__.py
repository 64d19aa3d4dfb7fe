"""invia-data: the Invia Broker API as pandas DataFrames, live, with an embedded simulator.

Start here::

    import invia_data
    inv = invia_data.connect()        # no credentials configured: the embedded simulator
    inv.quotes(["SBER", "GAZP"])      # every call answers with a DataFrame
    book = inv.stream.orderbook("SBER", depth=20)   # a LiveFrame: book.df, book.widget()

Where to look next (each has its own ``help()``):

* ``inv.securities``, ``inv.instruments``, ``inv.quotes``, ``inv.orderbook``,
  ``inv.all_trades``: the market now.
* ``inv.history``: candles of any range and timeframe, cached on disk (every timeframe and
  date spelling is in its help); ``inv.history_to_dataset``, ``inv.download_universe`` and
  :mod:`invia_data.dataset` for large downloads.
* ``inv.portfolios``, ``inv.positions``, ``inv.summary``, ``inv.risk``, ``inv.orders``,
  ``inv.own_trades``, ``inv.own_trades_history``: the account.
* ``inv.stream`` (:class:`Stream`): live subscriptions as :class:`LiveFrame` objects
  (``orderbook``, ``quotes``, ``all_trades``, ``bars``, ``positions``...), ``health()``,
  ``record()``; :func:`replay` plays a recording back into the same LiveFrames.
* :mod:`invia_data.plots`: candles, depth, spread, trade tape, volume profile, P&L.
* :mod:`invia_data.errors`: one exception tree; :class:`InvalidArgument` names the fix.
* :mod:`invia_data.sim`: the simulator on its own (``invia-data sim``).
"""

# (no `from __future__ import annotations` here: it would be a public name of the package)
from .books import book_stats
from .client import Client, connect
from .compact import compact_recording
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
from .replay import Replay, read_recording, replay
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
    "read_recording",
    "compact_recording",
    "connect",
    "replay",
]


def __getattr__(name: str) -> object:
    """``invia_data.sim`` after a plain ``import invia_data`` (the simulator and its server
    libraries load only when it is first used)."""
    if name == "sim":
        import importlib

        return importlib.import_module(".sim", __name__)
    raise AttributeError(f"module 'invia_data' has no attribute {name!r}")
