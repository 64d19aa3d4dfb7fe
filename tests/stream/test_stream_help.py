"""help() of every subscription call explains each of its parameters, in a few lines."""

from __future__ import annotations

import inspect

import pytest

from invia_data.stream import Stream
from invia_data.stream.protocol import MIN_FREQUENCY, OPCODES


@pytest.mark.parametrize("name", list(OPCODES))
def test_help_of_a_subscription_explains_every_parameter(name):
    call = getattr(Stream, name)
    text = inspect.getdoc(call) or ""
    for param in inspect.signature(call).parameters:
        if param != "self":
            assert f"``{param}``" in text, f"inv.stream.{name}: {param} is not explained"
    assert len(text.splitlines()) <= 40, f"inv.stream.{name}: help() runs long"


def test_timeout_and_frequency_say_what_they_wait_for_and_their_defaults():
    text = inspect.getdoc(Stream.orderbook) or ""
    timeout = text[text.index("``timeout``"):text.index("``record``")]
    for term in ("seconds", "accept or refuse", "subscribe_timeout", "NotFound",
                 "raises nothing", "connecting", "StreamTimeout"):
        assert term in timeout, term
    frequency = text[text.index("``frequency``"):text.index("``timeout``")]
    assert "milliseconds" in frequency
    for fmt, ms in MIN_FREQUENCY.items():   # the defaults named are the protocol's
        assert f"{fmt} {ms}" in frequency, fmt
