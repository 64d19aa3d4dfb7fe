"""Live data over the WebSocket API as LiveFrames (see ``docs/internals.md``).

``Stream`` is ``inv.stream``; ``LiveFrame`` is what each subscription returns. The layers:
``protocol`` (sans-I/O frames and routing), ``wire`` (WebSocket frame splitting), ``state``
(pure reducers), ``live`` (LiveFrame), ``connection`` (the socket thread), ``stream`` (API).
"""

from __future__ import annotations

from .live import LiveFrame
from .stream import Stream

__all__ = ["LiveFrame", "Stream"]
