"""The sans-I/O session and the frame splitter, driven with plain strings and bytes."""

from __future__ import annotations

import itertools
import os

import orjson
import pytest

from invia_data.errors import InvalidArgument
from invia_data.stream import protocol as p
from invia_data.stream.wire import (
    OP_CLOSE,
    OP_PING,
    FrameReader,
    ProtocolViolation,
    close_code,
)


def _session():
    counter = itertools.count(1)
    return p.Session(new_guid=lambda: f"g{next(counter)}")


def _book_route(fmt="Slim"):
    request = p.instrument_request("orderbook", "SBER", "MOEX", board="TQBR", format=fmt,
                                   depth=10, frequency=10)
    return p.Route(request, target="book")


def test_subscribe_frame_carries_code_token_guid_and_fields():
    session = _session()
    route = _book_route("slim")
    frame = orjson.loads(session.subscribe(route, "TOKEN-1"))
    assert frame == {"opcode": "OrderBookGetAndSubscribe", "code": "SBER", "exchange": "MOEX",
                     "instrumentGroup": "TQBR", "format": "Slim", "depth": 10, "frequency": 10,
                     "guid": "g1", "token": "TOKEN-1"}
    assert "symbol" not in frame
    assert route.guid == "g1" and not route.confirmed


def test_portfolio_request_and_unknown_format():
    request = p.portfolio_request("positions", "D39004", "MOEX", format="Heavy")
    assert request.opcode == "PositionsGetAndSubscribeV2"
    assert request.fields == {"portfolio": "D39004", "exchange": "MOEX", "format": "Heavy",
                              "skipHistory": False}
    with pytest.raises(InvalidArgument):
        p.instrument_request("orderbook", "SBER", "MOEX", format="Fat")


def test_data_confirmation_and_rejection_are_routed_by_guid():
    session = _session()
    route = _book_route()
    session.subscribe(route, "t")
    kind, got, data = session.receive('{"data": {"b": [], "a": [], "t": 1}, "guid": "g1"}')
    assert (kind, got, data) == (p.DATA, route, {"b": [], "a": [], "t": 1})
    kind, got, message = session.receive(
        b'{"message": "Handled successfully", "httpCode": 200, "requestGuid": "g1"}')
    assert (kind, got, message) == (p.CONFIRMED, route, "Handled successfully")
    assert route.confirmed
    other = _book_route()
    session.subscribe(other, "t")
    kind, got, value = session.receive(
        '{"message": "Instrument not found", "httpCode": 404, "requestGuid": "g2"}')
    assert (kind, got, value) == (p.REJECTED, other, (404, "Instrument not found"))


def test_error_frame_with_empty_guid_unknown_guid_and_malformed_frames():
    session = _session()
    session.subscribe(_book_route(), "t")
    kind, route, value = session.receive(
        '{"requestGuid": "", "httpCode": 401, "message": "Invalid JWT token!"}')
    assert (kind, route, value) == (p.REJECTED, None, (401, "Invalid JWT token!"))
    assert session.receive('{"data": {"x": 1}, "guid": "nope"}') == (p.UNKNOWN, None, "nope")
    assert session.receive('{"httpCode": 200, "requestGuid": "nope"}')[0] == p.UNKNOWN
    for text in ("{not json", "[1, 2]", '{"hello": 1}', '{"httpCode": "200"}', b"\xff\xfe",
                 '{"httpCode": true, "requestGuid": "g1"}'):
        assert session.receive(text)[0] == p.MALFORMED, text


def test_receive_many_groups_data_and_conflates_books_only():
    session = _session()
    book = _book_route()
    book.conflate = True
    trades = p.Route(p.instrument_request("all_trades", "SBER", "MOEX"), target="all_trades")
    session.subscribe(book, "t")
    session.subscribe(trades, "t")
    payloads = [b'{"data": {"n": 1}, "guid": "g1"}', b'{"data": {"id": 1}, "guid": "g2"}',
                b'{"httpCode": 200, "requestGuid": "g2", "message": "ok"}',
                b'{"data": {"n": 2}, "guid": "g1"}', b'{"data": {"id": 2}, "guid": "g2"}',
                b'{"data": [1], "guid": "g1"}', b"nope", b'{"data": {"n": 3}, "guid": "g1"}']
    groups, events = session.receive_many(payloads)
    assert groups == {book: [3, [{"n": 3}]], trades: [2, [{"id": 1}, {"id": 2}]]}
    assert [(kind, route) for kind, route, _ in events] == [
        (p.CONFIRMED, trades), (p.MALFORMED, book), (p.MALFORMED, None)]


def test_a_recorded_book_keeps_every_frames_bytes_and_parses_only_the_latest():
    """Recorded books (``raw`` + ``conflate``): every frame's bytes reach the group, routed by
    the guid at the frame's end (or parsed, when the guid comes first); the LiveFrame gets the
    latest book; another route's frames are untouched."""
    session = _session()
    book = _book_route()
    book.conflate = book.raw = True
    trades = p.Route(p.instrument_request("all_trades", "SBER", "MOEX"), target="all_trades")
    session.subscribe(book, "t")
    session.subscribe(trades, "t")
    payloads = [b'{"data":{"n":1},"guid":"g1"}', b'{"data": {"id": 1}, "guid": "g2"}',
                b'{"guid": "g1", "data": {"n": 2}}', b'{"data":{"n":3,"note":"g","guid":"g1"}',
                b'{"httpCode": 200, "requestGuid": "g1", "message": "ok"}',
                b'{"data":{"n":4},"guid":"g1"}']
    groups, events = session.receive_many(payloads)
    assert groups[book] == [4, [{"n": 4}], [payloads[0], payloads[2], payloads[3], payloads[5]]]
    assert groups[trades] == [1, [{"id": 1}]]
    assert [(kind, route) for kind, route, _ in events] == [(p.CONFIRMED, book)]
    # the latest frame broken: the frame keeps what it had, the bytes still go to the recorder
    groups, events = session.receive_many([b'{"data":{"n":5},"guid":"g1"}', b'{"data":1,"guid":"g1"}'])
    assert groups[book] == [2, [], [b'{"data":{"n":5},"guid":"g1"}', b'{"data":1,"guid":"g1"}']]
    assert [(kind, route) for kind, route, _ in events] == [(p.MALFORMED, book)]


def test_recorded_books_of_guids_of_different_lengths_are_each_routed_by_their_end():
    """Two recorded books whose guids differ in length (and one a suffix of the other's end):
    each frame reaches its own book; a frame whose end is neither is parsed."""
    guids = iter(["g1", "gg1"])
    session = p.Session(new_guid=lambda: next(guids))
    short, long = _book_route(), _book_route()
    for route in (short, long):
        route.conflate = route.raw = True
        session.subscribe(route, "t")
    payloads = [b'{"data":{"n":1},"guid":"gg1"}', b'{"data":{"n":2},"guid":"g1"}',
                b'{"data":{"n":3},"guid":"gg1"}', b'{"data":{"n":4}, "guid":"g1"}']
    groups, events = session.receive_many(payloads)
    assert groups[long] == [2, [{"n": 3}], [payloads[0], payloads[2]]]
    assert groups[short] == [2, [{"n": 4}], [payloads[1], payloads[3]]]
    assert events == []


def test_recorded_trades_keep_every_message_and_its_bytes_in_order():
    session = _session()
    trades = p.Route(p.instrument_request("all_trades", "SBER", "MOEX"), target="all_trades")
    trades.raw = True
    book = _book_route()
    session.subscribe(trades, "t")
    session.subscribe(book, "t")
    payloads = [b'{"data": {"id": %d}, "guid": "g1"}' % i for i in range(1, 4)]
    payloads += [b'{"data": {"n": 1}, "guid": "g2"}', b'{"data": {"id": 4}, "guid": "g1"}',
                 b'not json', b'{"data": {"id": 5}, "guid": "g1"}']
    groups, events = session.receive_many(payloads)
    assert groups[trades] == [5, [{"id": i} for i in range(1, 6)],
                              [f for f in payloads if b'"id"' in f]]
    assert groups[book] == [1, [{"n": 1}]]
    assert [kind for kind, _, _ in events] == [p.MALFORMED]


def test_unsubscribe_then_late_data_and_result():
    session = _session()
    route = _book_route()
    session.subscribe(route, "t")
    frame = orjson.loads(session.unsubscribe(route, "T2"))
    assert frame == {"opcode": "unsubscribe", "guid": "g1", "token": "T2"}
    assert session.unsubscribe(route, "T2") is None
    assert session.receive('{"data": {"b": []}, "guid": "g1"}')[0] == p.LATE
    kind, got, _ = session.receive('{"httpCode": 200, "requestGuid": "g1", "message": "ok"}')
    assert (kind, got) == (p.UNSUBSCRIBED, route)
    assert session.receive('{"data": {"b": []}, "guid": "g1"}')[0] == p.UNKNOWN


def test_reset_returns_live_routes_and_resubscribe_uses_fresh_guids():
    session = _session()
    a, b = _book_route(), _book_route()
    session.subscribe(a, "t")
    session.subscribe(b, "t")
    assert session.reset() == [a, b]
    assert session.receive('{"data": {}, "guid": "g1"}')[0] == p.UNKNOWN
    session.subscribe(a, "fresh")
    assert a.guid == "g3"
    assert orjson.loads(session.encode(a, "fresh"))["token"] == "fresh"


def test_guid_collisions_are_skipped():
    guids = iter(["same", "same", "other"])
    session = p.Session(new_guid=lambda: next(guids))
    a, b = _book_route(), _book_route()
    session.subscribe(a, "t")
    session.subscribe(b, "t")
    assert (a.guid, b.guid) == ("same", "other")


# --- WebSocket frames ---------------------------------------------------------------------------

def ws_frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bool = False,
             rsv: int = 0) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


def test_frames_of_every_length_class_split_at_every_byte():
    messages = [b'{"a":1}', b"x" * 200, b"y" * 70_000, b""]
    stream = b"".join(ws_frame(m) for m in messages)
    for step in (1, 7, 125, 4096, len(stream)):
        reader = FrameReader()
        out = []
        for i in range(0, len(stream), step):
            out.extend(reader.feed(stream[i:i + step]))
        assert out == messages, step


def test_large_frames_over_many_reads_then_small_ones():
    big = bytes(range(256)) * 4000
    stream = ws_frame(b"a") + ws_frame(big) + ws_frame(b"b") + ws_frame(big[:70_000])
    reader = FrameReader()
    out = []
    for i in range(0, len(stream), 3000):
        out.extend(reader.feed(stream[i:i + 3000]))
    assert out == [b"a", big, b"b", big[:70_000]]
    assert reader._pending == [] and reader._need == 0


def test_fragmented_message_with_interleaved_ping():
    reader = FrameReader()
    data = (ws_frame(b'{"da', fin=False) + ws_frame(b"ping!", opcode=OP_PING)
            + ws_frame(b'ta":', opcode=0, fin=False) + ws_frame(b"1}", opcode=0))
    assert reader.feed(data) == [b'{"data":1}']
    assert reader.control == [(OP_PING, b"ping!")]


def test_close_frame_and_its_code():
    reader = FrameReader()
    assert reader.feed(ws_frame((1001).to_bytes(2, "big") + b"going away", opcode=OP_CLOSE)) == []
    opcode, payload = reader.control[0]
    assert opcode == OP_CLOSE and close_code(payload) == (1001, "going away")
    assert close_code(b"") == (None, "")


@pytest.mark.parametrize("data", [
    ws_frame(b"x", mask=True),
    ws_frame(b"x", rsv=0x40),
    ws_frame(b"x", opcode=0),
    ws_frame(b"x", opcode=3),
    ws_frame(b"x", opcode=OP_PING, fin=False),
    ws_frame(b"x", fin=False) + ws_frame(b"y"),
])
def test_protocol_violations(data):
    with pytest.raises(ProtocolViolation):
        FrameReader().feed(data)


def test_message_size_limit():
    assert FrameReader(max_message=200).feed(ws_frame(b"z" * 200)) == [b"z" * 200]
    with pytest.raises(ProtocolViolation):
        FrameReader(max_message=200).feed(ws_frame(b"z" * 201))
    with pytest.raises(ProtocolViolation):
        FrameReader(max_message=200).feed(ws_frame(b"z" * 70_000))
    reader = FrameReader(max_message=200)
    reader.feed(ws_frame(b"z" * 150, fin=False))
    with pytest.raises(ProtocolViolation):
        reader.feed(ws_frame(b"z" * 100, opcode=0))


def test_a_field_that_cannot_be_encoded_registers_nothing():
    session = _session()
    route = p.Route(p.instrument_request("orderbook", "SBER", "MOEX", frequency=2**70), target=None)
    with pytest.raises(InvalidArgument, match="frequency"):
        session.subscribe(route, "tok")
    assert session.routes == {} and route.guid == ""
    with pytest.raises(InvalidArgument, match="frequency"):
        route.request.check()
