"""Ctrl-C during a paged history() reaches the caller at once, against a server that hangs."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from invia_data.history import history
from invia_data.http import Http, RetryPolicy

HANG_SECONDS = 10.0  # the client's timeout: without the fix an interrupt waits this long


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    listener.close()


def _interrupt_main_after(seconds: float) -> threading.Timer:
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("workers", [1, 4])
def test_ctrl_c_during_paged_history_is_raised_at_once(hung_server, tmp_path, workers):
    http = Http(hung_server, rate=None, timeout=HANG_SECONDS,
                retries=RetryPolicy(retries=2, transport_retries=2))
    cache_dir = tmp_path / "cache"
    # 9 days of 1-second candles: 16 pages, none of them near now (no clock request)
    timer = _interrupt_main_after(0.5)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            history(http, "SBER", 1, "2024-01-01", "2024-01-10", cache_dir=cache_dir,
                    max_workers=workers, progress=False)
        waited = time.monotonic() - started
    finally:
        timer.cancel()
    assert waited < 0.5 + 2.0 < HANG_SECONDS  # not after the requests in flight time out
    written = [p for p in cache_dir.rglob("*") if p.is_file()] if cache_dir.exists() else []
    assert written == []  # no page, no coverage, no temporary file
    http.close()
