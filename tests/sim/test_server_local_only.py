"""A simulator on a loopback address serves this machine only: a web page that reaches it through
DNS rebinding (a foreign Host) or cross-site (a foreign Origin) is refused; a public host serves
everyone."""

from __future__ import annotations

import pytest
import requests
import websocket

from invia_data.sim.server import is_local_name


@pytest.mark.parametrize("name, local", [
    ("127.0.0.1", True), ("localhost", True), ("LOCALHOST.", True), ("app.localhost", True),
    ("::1", True), ("127.3.4.5", True), ("attacker.example", False), ("10.0.0.1", False),
    ("0.0.0.0", False), ("localhost.attacker.example", False), ("", False), (None, False)])
def test_local_names(name, local):
    assert is_local_name(name) is local


def test_foreign_host_or_origin_is_refused_on_a_loopback_simulator(sim):
    assert sim.local_only
    url = f"{sim.url}/md/v2/time"
    assert requests.get(url, timeout=5).status_code == 200
    assert requests.get(url, headers={"Host": f"localhost:{sim.port}"}, timeout=5).ok
    refused = requests.get(url, headers={"Host": "attacker.example"}, timeout=5)
    assert refused.status_code == 403 and "Host 'attacker.example'" in refused.json()["message"]
    cross = requests.get(url, headers={"Origin": "https://attacker.example"}, timeout=5)
    assert cross.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(sim.ws_url, origin="http://attacker.example", timeout=5)
    assert info.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(sim.ws_url, host="rebound.attacker.example", timeout=5)
    ws = websocket.create_connection(sim.ws_url, origin=f"http://localhost:{sim.port}", timeout=5)
    ws.close()


def test_a_public_host_serves_every_host_and_origin(fresh_sim):
    server = fresh_sim(host="0.0.0.0")
    assert not server.local_only
    url = f"http://127.0.0.1:{server.port}/md/v2/time"
    assert requests.get(url, headers={"Host": "sim.example", "Origin": "https://sim.example"},
                        timeout=5).status_code == 200
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/cws",
                                     origin="http://sim.example", timeout=5)
    ws.close()
