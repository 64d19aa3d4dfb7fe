"""The HTTP seam with a scripted transport: pacing, retries, error mapping, 401 renewal, leaks."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
import requests
from fakes import FakeClock, demo_claims, make_jwt, scripted_session, sequence

from invia_data.auth import TokenManager
from invia_data.errors import (
    APIError,
    AuthError,
    BadRequest,
    Forbidden,
    InvalidArgument,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)
from invia_data.http import Http, RateLimiter, RetryPolicy, parse_retry_after

BASE = "https://api.example"


def make_http(responder, *, tokens=None, retries=None, clock=None):
    clock = clock or FakeClock()
    session, adapter = scripted_session(responder)
    http = Http(BASE, tokens, session=session, rate=None, retries=retries, sleep=clock.sleep)
    return http, adapter, clock


# --- rate limiter ---------------------------------------------------------------------------

def test_limiter_paces_exactly_on_a_fake_clock():
    clock = FakeClock()
    limiter = RateLimiter(50, burst=5, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(105):
        limiter.acquire()
    # the first 5 ride the burst, the other 100 take 1/50 s each
    assert clock.now - start == pytest.approx(100 / 50)
    assert limiter.acquired == 105 and limiter.waited == pytest.approx(2.0)
    assert len(clock.sleeps) == 100
    assert all(s == pytest.approx(1 / 50, abs=1e-5) for s in clock.sleeps)


def test_limiter_refills_after_idle_time_up_to_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(10, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert limiter.acquire() == 0
    assert limiter.acquire() == pytest.approx(0.1)
    clock.advance(60)                  # a long pause refills the burst, not more
    assert [limiter.acquire() for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire() == pytest.approx(0.1)


def test_limiter_queues_concurrent_callers_without_overlap():
    clock = FakeClock()                # frozen clock: every reservation goes into debt
    limiter = RateLimiter(100, burst=1, clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(25):
            w = limiter.reserve()
            with lock:
                waits.append(round(w * 100))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    # 200 slots, 1 free, then one slot per 10 ms each: no two callers got the same slot
    assert sorted(waits) == list(range(0, 200))


def test_limiter_default_burst_and_validation():
    assert RateLimiter(100).burst == 10
    assert RateLimiter(None).reserve() == 0
    for bad in (0, -1, True):
        with pytest.raises(InvalidArgument):
            RateLimiter(bad)


def test_http_uses_the_shared_limiter_per_request():
    clock = FakeClock()
    session, _ = scripted_session(sequence((200, 1, {})))
    limiter = RateLimiter(20, burst=1, clock=clock, sleep=clock.sleep)
    http = Http(BASE, None, session=session, limiter=limiter, sleep=clock.sleep)
    for _ in range(11):
        http.get("/md/v2/time", auth=False)
    assert limiter.acquired == 11 and clock.now - 1_700_000_000.0 == pytest.approx(0.5)


# --- retry policy ---------------------------------------------------------------------------

def test_retry_delay_grows_with_bounded_jitter():
    policy = RetryPolicy(backoff=0.25, max_delay=1.0, jitter=0.25)
    assert policy.delay(0, rng=lambda: 0.5) == pytest.approx(0.25)
    assert policy.delay(1, rng=lambda: 0.0) == pytest.approx(0.5 * 0.75)
    assert policy.delay(2, rng=lambda: 1.0) == pytest.approx(1.0 * 1.25)
    assert policy.delay(9, rng=lambda: 0.5) == pytest.approx(1.0)   # capped
    assert policy.delay(3, retry_after=7.0) == 7.0


def test_parse_retry_after_numbers_and_dates():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0   # in the past
    assert parse_retry_after("soon") is None


def test_429_honours_retry_after_then_succeeds():
    http, adapter, clock = make_http(sequence(
        (429, {"message": "slow down"}, {"Retry-After": "0.7"}),
        (429, {"message": "slow down"}, {"Retry-After": "1"}),
        (200, [1, 2], {})))
    assert http.get("/md/v2/Securities", auth=False) == [1, 2]
    assert clock.sleeps == [0.7, 1.0] and len(adapter.requests) == 3


def test_5xx_backoff_then_success():
    http, adapter, clock = make_http(sequence((503, b"", {}), (502, b"", {}), (200, 5, {})))
    assert http.get("/md/v2/time", auth=False) == 5
    first, second = clock.sleeps
    assert 0.25 * 0.75 <= first <= 0.25 * 1.25 and 0.5 * 0.75 <= second <= 0.5 * 1.25


def test_persistent_5xx_gives_server_error_after_bounded_attempts():
    http, adapter, clock = make_http(sequence((500, {"message": "boom"}, {})),
                                     retries=RetryPolicy(retries=3))
    with pytest.raises(ServerError) as info:
        http.get("/md/v2/time", auth=False)
    assert info.value.status == 500 and "boom" in str(info.value)
    assert len(adapter.requests) == 4 and len(clock.sleeps) == 3


def test_retry_after_beyond_the_total_budget_is_not_waited():
    http, adapter, clock = make_http(sequence((429, {"message": "later"}, {"Retry-After": "120"})))
    with pytest.raises(RateLimited) as info:
        http.get("/md/v2/time", auth=False)
    assert info.value.retry_after == 120 and clock.sleeps == [] and len(adapter.requests) == 1


def test_total_wait_is_bounded():
    http, adapter, clock = make_http(sequence((503, b"", {"Retry-After": "4"})),
                                     retries=RetryPolicy(retries=10, max_total=10))
    with pytest.raises(ServerError):
        http.get("/md/v2/time", auth=False)
    assert clock.sleeps == [4.0, 4.0] and sum(clock.sleeps) <= 10


def test_other_5xx_are_not_retried():
    http, adapter, _ = make_http(sequence((501, b"not implemented", {})))
    with pytest.raises(ServerError):
        http.get("/md/v2/time", auth=False)
    assert len(adapter.requests) == 1


# --- error mapping --------------------------------------------------------------------------

@pytest.mark.parametrize("status, cls", [(400, BadRequest), (403, Forbidden), (404, NotFound),
                                         (418, APIError)])
def test_error_statuses_map_to_the_tree(status, cls):
    http, adapter, _ = make_http(sequence((status, {"message": "depth must be <= 50"}, {})))
    with pytest.raises(cls) as info:
        http.get("/md/v2/orderbooks/MOEX/SBER", {"depth": 99}, auth=False)
    error = info.value
    assert error.status == status and error.request == "GET /md/v2/orderbooks/MOEX/SBER"
    assert "depth must be <= 50" in error.message
    assert len(adapter.requests) == 1


def test_not_found_names_the_subject():
    http, _, _ = make_http(sequence((404, b"", {})))
    with pytest.raises(NotFound) as info:
        http.get("/md/v2/Securities/MOEX/NOPE", auth=False, what="instrument MOEX:NOPE")
    assert "instrument MOEX:NOPE not found" in str(info.value)
    assert isinstance(info.value, LookupError)


def test_not_found_says_it_once_when_the_server_says_the_same():
    same = {"message": "instrument MOEX:NOPE not found"}
    http, _, _ = make_http(sequence((404, same, {}), (404, {"message": "no such board"}, {})))
    with pytest.raises(NotFound) as info:
        http.get("/md/v2/history", auth=False, what="instrument MOEX:NOPE")
    assert info.value.message == "instrument MOEX:NOPE not found"
    with pytest.raises(NotFound) as info:
        http.get("/md/v2/history", auth=False, what="instrument MOEX:NOPE")
    assert info.value.message == "instrument MOEX:NOPE not found: no such board"


def test_plain_text_error_body_is_kept():
    http, _, _ = make_http(sequence((400, b"Invalid tf", {})))
    with pytest.raises(BadRequest, match="Invalid tf"):
        http.get("/md/v2/history", auth=False)


def test_anonymous_401_says_credentials_are_needed():
    http, _, _ = make_http(sequence((401, b"", {"WWW-Authenticate": "Bearer"})))
    with pytest.raises(AuthError, match="needs credentials"):
        http.get("/md/v2/orderbooks/MOEX/SBER")


def test_non_json_success_body_is_an_api_error():
    http, _, _ = make_http(sequence((200, b"<html>", {})))
    with pytest.raises(APIError, match="not JSON"):
        http.get("/md/v2/time", auth=False)
    assert http.get_bytes("/md/v2/time", auth=False) == b"<html>"


def test_bad_path_raises_before_a_request():
    http, adapter, _ = make_http(sequence((200, 1, {})))
    with pytest.raises(InvalidArgument):
        http.get("md/v2/time")
    with pytest.raises(InvalidArgument):
        Http("ftp://x")
    assert adapter.requests == []


# --- transport errors -----------------------------------------------------------------------

def test_connection_errors_are_retried_then_transport_error():
    http, adapter, clock = make_http(sequence(requests.ConnectionError("reset by peer")))
    with pytest.raises(TransportError) as info:
        http.get("/md/v2/time", auth=False)
    assert isinstance(info.value, ConnectionError) and "GET /md/v2/time" in str(info.value)
    assert len(adapter.requests) == 3 and len(clock.sleeps) == 2


def test_connection_error_then_recovery():
    http, adapter, _ = make_http(sequence(requests.Timeout("slow"), (200, 9, {})))
    assert http.get("/md/v2/time", auth=False) == 9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_closed_port_is_transport_error():
    clock = FakeClock()
    http = Http(f"http://127.0.0.1:{free_port()}", None, rate=None, timeout=2,
                sleep=clock.sleep)
    with pytest.raises(TransportError, match="no answer"):
        http.get("/md/v2/time", auth=False)


# --- tokens ---------------------------------------------------------------------------------

def token_manager(clock: FakeClock):
    issued: list[str] = []

    def respond(request):
        jwt = make_jwt(**demo_claims(clock.now, jti=len(issued)))
        issued.append(jwt)
        return 200, {"AccessToken": jwt}, {}

    session, _ = scripted_session(respond)
    tokens = TokenManager("refresh-secret-xyz", auth_url="https://oauth.example",
                          session=session, clock=clock)
    return tokens, issued


def test_bearer_header_and_401_renews_once_and_retries():
    clock = FakeClock()
    tokens, issued = token_manager(clock)
    http, adapter, _ = make_http(sequence((401, b"", {}), (200, {"ok": 1}, {})), tokens=tokens,
                                 clock=clock)
    assert http.get("/md/v2/Clients/MOEX/D39004/summary") == {"ok": 1}
    sent = [r.headers["Authorization"] for r in adapter.requests]
    assert sent == [f"Bearer {issued[0]}", f"Bearer {issued[1]}"]
    assert tokens.refresh_count == 2


def test_second_401_is_auth_error_without_token(caplog):
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    tokens, issued = token_manager(clock)
    http, adapter, _ = make_http(sequence((401, {"message": "bad"}, {})), tokens=tokens,
                                 clock=clock)
    with pytest.raises(AuthError) as info:
        http.get("/md/v2/Clients/MOEX/D39004/summary")
    assert len(adapter.requests) == 2
    for jwt in issued:
        assert jwt not in str(info.value) and jwt not in repr(info.value)
        assert jwt not in caplog.text and jwt not in repr(http) and jwt not in repr(tokens)
    assert "refresh-secret-xyz" not in caplog.text


def test_static_token_401_is_not_retried():
    clock = FakeClock()
    jwt = make_jwt(**demo_claims(clock.now))
    tokens = TokenManager(token=jwt, clock=clock)
    http, adapter, _ = make_http(sequence((401, b"", {})), tokens=tokens, clock=clock)
    with pytest.raises(AuthError):
        http.get("/md/v2/time")
    assert len(adapter.requests) == 1


def test_one_info_line_per_request_without_query(caplog):
    caplog.set_level(logging.INFO, logger="invia_data.http")
    http, _, _ = make_http(sequence((200, 1, {})))
    http.get("/md/v2/Securities", {"query": "SBER", "token": "should-not-show"}, auth=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "invia_data.http"]
    assert len(lines) == 1
    assert lines[0].startswith("GET /md/v2/Securities 200 ") and lines[0].endswith(" ms")
    assert "should-not-show" not in caplog.text and "SBER" not in caplog.text
