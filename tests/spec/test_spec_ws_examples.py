"""Every WebSocket example message of the official spec, through the protocol session and the
stream reducer of its subscription: the LiveFrame's frame has the README's documented columns
and holds every non-null value of the message's data."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from invia_data.stream.protocol import CONFIRMED, DATA, OPCODES, REJECTED, Request, Route, Session
from invia_data.stream.state import make_state

from .support import assert_documented_columns, assert_no_value_lost, ws_operations

KIND_OF_OPCODE = {opcode: kind for kind, opcode in OPCODES.items()}

# The README's subscription of each opcode.
SUBSCRIPTION = {
    "OrderBookGetAndSubscribe": "inv.stream.orderbook",
    "QuotesSubscribe": "inv.stream.quotes",
    "AllTradesGetAndSubscribe": "inv.stream.all_trades",
    "BarsGetAndSubscribe": "inv.stream.bars",
    "InstrumentsGetAndSubscribeV2": "inv.stream.instrument_state",
    "PositionsGetAndSubscribeV2": "inv.stream.positions",
    "SummariesGetAndSubscribeV2": "inv.stream.summary",
    "RisksGetAndSubscribe": "inv.stream.risk",
    "SpectraRisksGetAndSubscribe": "inv.stream.forts_risk",
    "TradesGetAndSubscribeV2": "inv.stream.own_trades",
    "OrdersGetAndSubscribeV2": "inv.stream.orders",
    "StopOrdersGetAndSubscribeV2": "inv.stream.stop_orders",
}

# Deprecated subscriptions the client never makes (the simulator refuses them).
NOT_SUBSCRIBED = {
    "StopOrdersGetAndSubscribe": "deprecated: an older stop-order shape (Slim `exp`/`e`, lots "
                                 "in `qty`); the client uses StopOrdersGetAndSubscribeV2",
}

_ORDER_SIMPLE = {"qty": "repeats qtyBatch", "filled": "repeats filledQtyBatch"}
_TRADE_TIME = {"time": "ISO text of `timestamp`"}
# Keys of the messages that are not frame values (see test_spec_http_examples.DROPPED).
DROPPED: dict[str, dict[str, dict[str, str]]] = {
    "OrderBookGetAndSubscribe":
        {"Simple": {"snapshot": "repeats existing", "timestamp": "ms_timestamp in seconds"}},
    "QuotesSubscribe": {"Simple": {"accrued_interest": "deprecated spelling of accruedInt"}},
    "AllTradesGetAndSubscribe": {"Simple": {**_TRADE_TIME, "orderno": "always 0"},
                                 "Heavy": _TRADE_TIME},
    "PositionsGetAndSubscribeV2": {"Simple": {"qtyBatch": "sum of the qtyT*Batch fields",
                                              "qty": "repeats qtyBatch",
                                              "open": "repeats openQtyBatch"}},
    "SpectraRisksGetAndSubscribe": {"Simple": {"balanceMoney": "deprecated"}},
    "OrdersGetAndSubscribeV2": {"Simple": _ORDER_SIMPLE},
    "StopOrdersGetAndSubscribeV2": {"Simple": _ORDER_SIMPLE},
}

CASES = [
    pytest.param(op, ex, id=ex["name"])
    for op in ws_operations() if op["opcode"] in SUBSCRIPTION
    for ex in op["examples"]
]


def test_every_subscription_of_the_spec_is_consumed_or_listed():
    opcodes = {op["opcode"] for op in ws_operations()}
    assert opcodes == set(SUBSCRIPTION) | set(NOT_SUBSCRIBED)
    assert set(SUBSCRIPTION) == set(OPCODES.values())


def live_frame(opcode: str, fmt: str, message: dict[str, Any]) -> Any:
    """The message through a protocol session (as the stream's reader gets it) and the
    reducer of its kind -> the LiveFrame's frame."""
    kind = KIND_OF_OPCODE[opcode]
    session = Session(new_guid=lambda: message["guid"])
    route = Route(Request(kind, {"format": fmt}), target=None)
    session.subscribe(route, token="a-token")
    event, routed, data = session.receive(orjson.dumps(message))
    assert event == DATA and routed is route
    state = make_state(kind, fmt)
    assert state.apply(data)
    return state.frame(state.snapshot())


@pytest.mark.parametrize(("op", "ex"), CASES)
def test_spec_ws_example_through_its_reducer(op, ex):
    frame = live_frame(op["opcode"], ex["format"], ex["value"])
    assert len(frame) >= 1
    assert_documented_columns(frame, SUBSCRIPTION[op["opcode"]])
    dropped = DROPPED.get(op["opcode"], {}).get(ex["format"], {})
    assert_no_value_lost(ex["value"]["data"], frame, dropped=dropped)


@pytest.mark.parametrize("code", ["200", "401"])
def test_spec_result_frames_through_the_protocol(code):
    op = next(o for o in ws_operations() if o["opcode"] == "OrderBookGetAndSubscribe")
    (frame,) = op["results"][code]["examples"]
    session = Session(new_guid=lambda: frame["requestGuid"])
    route = Route(Request("orderbook", {"format": "Slim"}), target=None)
    session.subscribe(route, token="a-token")
    event, routed, payload = session.receive(orjson.dumps(frame))
    assert routed is route
    if code == "200":
        assert (event, payload, route.confirmed) == (CONFIRMED, "Handled successfully", True)
    else:
        assert (event, payload) == (REJECTED, (401, "Invalid JWT token!"))
