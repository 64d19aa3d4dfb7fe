"""run()/start()/stop(): the thread, the URLs, a busy port, bad arguments."""

from __future__ import annotations

import threading

import pytest
import requests

import invia_data.sim
from invia_data.errors import InvalidArgument, TransportError


def _sim_threads():
    return [t for t in threading.enumerate() if t.name.startswith("invia-sim-")]


def test_run_serves_inside_the_block_and_joins_its_thread_after():
    before = len(_sim_threads())
    with invia_data.sim.run(port=0, seed=2) as server:
        assert server.running and len(_sim_threads()) == before + 1
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert server.ws_url == f"ws://127.0.0.1:{server.port}/cws"
        assert server.auth_url == server.url
        assert server.portfolios == ["D39004", "G39004", "7500GHC"] and server.login == "P039004"
        assert requests.get(f"{server.url}/md/v2/time", timeout=5).status_code == 200
        assert server.refresh_token not in repr(server)
    assert not server.running and len(_sim_threads()) == before
    server.stop()  # idempotent
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{server.url}/md/v2/time", timeout=2)


def test_a_busy_port_is_a_transport_error(sim):
    with pytest.raises(TransportError, match=str(sim.port)):
        invia_data.sim.start(port=sim.port)


@pytest.mark.parametrize("kwargs", [{"port": -1}, {"port": "80"}, {"speed": 0}, {"faults": 3},
                                    {"faults": {"latency": -1}}, {"guid_reuse": "drop"}])
def test_bad_arguments_are_rejected_before_starting(kwargs):
    with pytest.raises(InvalidArgument):
        invia_data.sim.start(**kwargs)
