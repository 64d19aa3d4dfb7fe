"""A sans-I/O splitter of server-to-client WebSocket frames (RFC 6455).

websocket-client does the handshake; after it the stream thread reads the raw socket in large
chunks and feeds them here. That removes websocket-client's per-message overhead (one
``recv()`` per frame, pure-Python UTF-8 validation): orjson validates the text as it parses.

Server frames are never masked and no extension is negotiated, so RSV bits must be zero.
Fragmented messages are reassembled; control frames (ping, pong, close) may arrive between
fragments and are handed out separately.
"""

from __future__ import annotations

from ..errors import StreamError

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

MAX_MESSAGE = 64 * 1024 * 1024


class ProtocolViolation(StreamError):
    """The server sent bytes that are not valid WebSocket framing."""


class FrameReader:
    """``feed(chunk) -> [message payloads]``; control frames collect in ``.control``.
    ``max_message`` bounds frames of 126 bytes and more, and reassembled messages."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buf = b""
        self._pending: list[bytes] = []  # chunks of a frame too large for one read
        self._pending_size = 0
        self._need = 0  # bytes the frame at the start of the buffer needs in total
        self._fragments: list[bytes] | None = None
        self._fragment_size = 0
        self._max = max_message
        self.control: list[tuple[int, bytes]] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._need:
            # a large frame arrives over many reads: collect, join once it is complete
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._pending_size < self._need:
                return []
            chunk = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
            self._need = 0
        buf = self._buf + chunk if self._buf else chunk
        out: list[bytes] = []
        append = out.append
        pos = 0
        end_of_buf = len(buf)
        fragmenting = self._fragments is not None
        while end_of_buf - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            # b1 < 126: unmasked, 7-bit length; 126: unmasked, 16-bit length (the usual cases)
            if b1 < 126:
                start = pos + 2
                stop = start + b1
            else:
                if b1 == 126:
                    if end_of_buf - pos < 4:
                        break
                    start = pos + 4
                    stop = start + ((buf[pos + 2] << 8) | buf[pos + 3])
                else:
                    if b1 & 0x80:
                        raise ProtocolViolation("masked frame from the server")
                    if end_of_buf - pos < 10:
                        break
                    start = pos + 10
                    stop = start + int.from_bytes(buf[pos + 2:start], "big")
                if stop - start > self._max:
                    raise ProtocolViolation(f"frame of {stop - start} bytes exceeds the limit")
            if stop > end_of_buf:
                if stop - pos > 65536:
                    self._need = stop - pos
                break
            if (b0 == 0x81 or b0 == 0x82) and not fragmenting:  # one whole text/binary message
                append(buf[start:stop])
            else:
                if b0 & 0x70:
                    raise ProtocolViolation("reserved bits set in a server frame")
                self._other(b0 & 0x0F, b0 & 0x80, buf[start:stop], append)
                fragmenting = self._fragments is not None
            pos = stop
        self._buf = buf[pos:] if pos < end_of_buf else b""
        if self._need:
            self._pending = [self._buf]
            self._pending_size = len(self._buf)
            self._buf = b""
        return out

    def _other(self, opcode: int, fin: int, payload: bytes, append) -> None:
        if opcode >= 0x8:
            if not fin or len(payload) > 125:
                raise ProtocolViolation("fragmented or oversized control frame")
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolViolation(f"unknown control opcode {opcode:#x}")
            self.control.append((opcode, payload))
            return
        if opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                raise ProtocolViolation("new message inside a fragmented message")
            self._fragments = [payload]
            self._fragment_size = len(payload)
            return
        if opcode != OP_CONTINUATION:
            raise ProtocolViolation(f"unknown data opcode {opcode:#x}")
        if self._fragments is None:
            raise ProtocolViolation("continuation frame without a message to continue")
        self._fragments.append(payload)
        self._fragment_size += len(payload)
        if self._fragment_size > self._max:
            raise ProtocolViolation("fragmented message exceeds the limit")
        if fin:
            append(b"".join(self._fragments))
            self._fragments = None
            self._fragment_size = 0


def close_code(payload: bytes) -> tuple[int | None, str]:
    """The status code and reason of a close frame's payload."""
    if len(payload) < 2:
        return None, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")
