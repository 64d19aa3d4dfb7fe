"""`invia-data sim` as a process: the first stdout line is the connection JSON, Ctrl-C stops it."""

from __future__ import annotations

import signal
import subprocess
import sys

import orjson
import pytest
import requests

from invia_data.cli import build_parser


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell does for a background job


@pytest.mark.parametrize("as_background_job", [False, True])
def test_sim_command_prints_its_urls_then_serves_until_interrupted(as_background_job):
    start = ["--start", "2026-11-18 10:30"] if as_background_job else []  # Moscow time
    process = subprocess.Popen(
        [sys.executable, "-m", "invia_data.cli", "sim", "--port", "0", "--seed", "3", *start],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ignore_sigint if as_background_job else None)
    try:
        info = orjson.loads(process.stdout.readline())
        assert set(info) == {"url", "ws_url", "auth_url", "refresh_token", "market_time"}
        if start:
            assert info["market_time"].startswith("2026-11-18 10:30:")
        assert info["ws_url"].startswith("ws://127.0.0.1:") and info["ws_url"].endswith("/cws")
        response = requests.post(f"{info['auth_url']}/refresh",
                                 params={"token": info["refresh_token"]}, timeout=10)
        token = response.json()["AccessToken"]
        book = requests.get(f"{info['url']}/md/v2/orderbooks/MOEX/SBER",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert book.status_code == 200 and book.json()["bids"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        log = process.stderr.read()
        assert "GET /md/v2/orderbooks/MOEX/SBER 200" in log
        assert f"market time {info['market_time'][:16]}" in log
        assert token not in log and info["refresh_token"] not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        process.stdout.close()
        process.stderr.close()


def test_parser_has_the_sim_options():
    args = build_parser().parse_args(["sim", "--tls", "--firehose", "--speed", "2", "--port", "9"])
    assert (args.command, args.tls, args.firehose, args.speed, args.port) == ("sim", True, True, 2.0, 9)
    defaults = build_parser().parse_args(["sim"])
    assert (defaults.host, defaults.port, defaults.seed) == ("127.0.0.1", 8088, 1)
    assert defaults.guid_reuse == "replace"
    assert build_parser().parse_args(["sim", "--guid-reuse", "reject"]).guid_reuse == "reject"


def test_the_commands_put_sigint_back_when_they_end():
    """`invia-data sim` and `record` stop on SIGINT/SIGTERM by setting an event; run in-process
    (a test, a notebook), they leave Ctrl-C raising KeyboardInterrupt afterwards."""
    import os
    import signal

    from invia_data.cli import stopped_by_signals

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stopped_by_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
