"""TokenManager: claims, renewal ahead of expiry, one renewal under concurrency, no leaks."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fakes import FakeClock, demo_claims, make_jwt, scripted_session, sequence

from invia_data.auth import TokenManager, decode_claims, redact
from invia_data.errors import (
    APIError,
    AuthError,
    DecodeError,
    Forbidden,
    InvalidArgument,
    TransportError,
)

REFRESH = "refresh-secret-0123456789abcdef"


def token_server(clock: FakeClock, lifetime: float = 1800, delay: float = 0.0):
    """A responder that issues a fresh JWT per call (iat = fake now)."""
    issued: list[str] = []

    def respond(request: requests.PreparedRequest):
        if delay:
            time.sleep(delay)
        query = parse_qs(urlsplit(request.url).query)
        if query.get("token") != [REFRESH]:
            return 403, {"message": f"bad refresh token {query.get('token')}"}, {}
        jwt = make_jwt(**demo_claims(clock.now, lifetime, jti=len(issued)))
        issued.append(jwt)
        return 200, {"AccessToken": jwt}, {}

    return respond, issued


def manager(respond, clock: FakeClock, **kwargs) -> tuple[TokenManager, object]:
    session, adapter = scripted_session(respond)
    tokens = TokenManager(REFRESH, auth_url="https://oauth.example", session=session,
                          clock=clock, sleep=clock.sleep, **kwargs)
    return tokens, adapter


def test_decode_claims_reads_payload_without_signature():
    jwt = make_jwt(sub="P1", portfolios="D1 G1", exp=5)
    assert decode_claims(jwt) == {"sub": "P1", "portfolios": "D1 G1", "exp": 5}


@pytest.mark.parametrize("bad", ["", "abc", "a.b", "a.!!!.c", "x.bm90IGpzb24.y"])
def test_decode_claims_rejects_non_jwt_without_echoing_it(bad):
    with pytest.raises(InvalidArgument) as info:
        decode_claims(bad)
    assert bad == "" or bad not in str(info.value)


def test_static_token_claims_and_repr_without_token():
    clock = FakeClock()
    jwt = make_jwt(**demo_claims(clock.now))
    tokens = TokenManager(token=jwt, clock=clock)
    assert tokens.token() == jwt
    assert tokens.login == "P039004"
    assert tokens.portfolios == ["D39004", "G39004", "7500GHC"]
    assert tokens.agreements == ["39004"]
    assert tokens.expires_at.value == int((clock.now + 1800) * 1e9)
    assert not tokens.can_refresh
    assert jwt not in repr(tokens) and "P039004" in repr(tokens)


def test_expired_static_token_raises_auth_error_with_clear_text():
    clock = FakeClock()
    jwt = make_jwt(**demo_claims(clock.now, lifetime=600))
    tokens = TokenManager(token=jwt, clock=clock)
    clock.advance(601)
    with pytest.raises(AuthError) as info:
        tokens.token()
    assert "expired" in str(info.value) and "refresh_token" in str(info.value)
    assert jwt not in str(info.value)


def test_constructor_validates_before_any_request():
    with pytest.raises(InvalidArgument):
        TokenManager()
    with pytest.raises(InvalidArgument):
        TokenManager("   ", auth_url="https://x")
    with pytest.raises(InvalidArgument):
        TokenManager(REFRESH)  # no auth_url
    with pytest.raises(InvalidArgument):
        TokenManager(token="not-a-jwt")


def test_refresh_once_then_cached_then_renewed_ahead_of_expiry():
    clock = FakeClock()
    respond, issued = token_server(clock)
    tokens, adapter = manager(respond, clock)
    assert tokens.claims == {} and tokens.portfolios == [] and not tokens.has_token
    assert adapter.requests == []              # reading claims makes no request
    first = tokens.token()
    assert tokens.has_token and tokens.login == "P039004"
    assert tokens.token() == first and tokens.refresh_count == 1
    request = adapter.requests[0]
    assert request.method == "POST" and urlsplit(request.url).path == "/refresh"
    clock.advance(1800 - 61)           # still outside the 60 s leeway
    assert tokens.token() == first and tokens.refresh_count == 1
    clock.advance(2)                   # inside the leeway: renewed before it expires
    second = tokens.token()
    assert second != first and second == issued[-1] and tokens.refresh_count == 2


def test_short_lived_token_uses_ten_percent_of_lifetime_as_leeway():
    clock = FakeClock()
    respond, _ = token_server(clock, lifetime=10)
    tokens, _ = manager(respond, clock)
    tokens.token()
    clock.advance(8.9)
    tokens.token()
    assert tokens.refresh_count == 1
    clock.advance(0.2)                 # 9.1 s of 10: within the last 10 %
    tokens.token()
    assert tokens.refresh_count == 2


def test_many_threads_share_one_refresh():
    clock = FakeClock()
    respond, issued = token_server(clock, delay=0.05)
    tokens, adapter = manager(respond, clock)
    barrier = threading.Barrier(16)
    got: list[str] = []
    errors: list[BaseException] = []

    def ask():
        try:
            barrier.wait(timeout=5)
            got.append(tokens.token())
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors
    assert len(got) == 16 and set(got) == {issued[0]}
    assert tokens.refresh_count == 1 and len(adapter.requests) == 1


def test_invalidate_renews_only_the_rejected_token():
    clock = FakeClock()
    respond, _ = token_server(clock)
    tokens, _ = manager(respond, clock)
    first = tokens.token()
    tokens.invalidate("some-other-token")
    assert tokens.token() == first
    tokens.invalidate(first)
    second = tokens.token()
    assert second != first and tokens.refresh_count == 2
    tokens.invalidate(first)           # a late 401 for the old token: no extra refresh
    assert tokens.token() == second and tokens.refresh_count == 2


def test_refused_refresh_token_is_forbidden_and_redacted():
    clock = FakeClock()
    reply = (403, {"message": f"refresh token {REFRESH} revoked"}, {})
    tokens, adapter = manager(sequence(reply), clock)
    with pytest.raises(Forbidden) as info:
        tokens.token()
    text = str(info.value)
    assert "refused" in text and "revoked" in text and REFRESH not in text
    assert len(adapter.requests) == 1  # a refusal is not retried


def test_token_server_unreachable_is_transport_error_without_token(caplog):
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    failure = requests.ConnectionError(f"cannot reach https://oauth.example/refresh?token={REFRESH}")
    tokens, adapter = manager(sequence(failure), clock, attempts=3)
    with pytest.raises(TransportError) as info:
        tokens.token()
    assert REFRESH not in str(info.value)
    # no exception of the chain holds it either: a logger formatting the chain leaks nothing
    chain = "".join(traceback.format_exception(info.value))
    assert "no answer from the token server" in chain and REFRESH not in chain
    seen, exc = [], info.value
    while exc is not None:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert len(seen) == 1 and all(REFRESH not in str(e) for e in seen)
    assert len(adapter.requests) == 3 and len(clock.sleeps) == 2
    assert REFRESH not in caplog.text


def test_server_error_is_retried_then_succeeds(caplog):
    caplog.set_level(logging.INFO, logger="invia_data.http")
    clock = FakeClock()
    respond, issued = token_server(clock)
    replies = iter([(503, b"busy", {})])

    def flaky(request):
        return next(replies, None) or respond(request)

    tokens, adapter = manager(flaky, clock)
    assert tokens.token() == issued[0]
    assert len(adapter.requests) == 2
    assert "POST /refresh 503" in caplog.text and "POST /refresh 200" in caplog.text
    assert REFRESH not in caplog.text and issued[0] not in caplog.text


@pytest.mark.parametrize("body", [b"<html>", {"token": "x"}, {"AccessToken": "nope"}])
def test_unusable_token_server_answer_is_a_decode_error_not_an_auth_error(body):
    clock = FakeClock()
    tokens, _ = manager(sequence((200, body, {})), clock)
    with pytest.raises(DecodeError) as caught:
        tokens.token()
    assert isinstance(caught.value, APIError) and not isinstance(caught.value, AuthError)
    assert caught.value.status == 200 and caught.value.request == "POST /refresh"


def test_redact_leaves_words_that_contain_a_short_secret():
    assert redact("Refresh token is invalid, expired", ["x"]) == (
        "Refresh token is invalid, expired")
    assert redact("refused x, x-ray, (x)", ["x"]) == "refused ***, x-ray, (***)"
    assert redact("token a.b+c/d= rejected", ["a.b+c/d="]) == "token *** rejected"


def test_redact_hides_secrets_queries_and_jwts():
    jwt = make_jwt(sub="x")
    text = f"POST /refresh?token={REFRESH}&a=1 Bearer {jwt} secret"
    cleaned = redact(text, ["secret"])
    assert REFRESH not in cleaned and jwt not in cleaned and "secret" not in cleaned
    assert "a=1" in cleaned


def test_a_slow_renewal_holds_up_only_the_thread_that_renews():
    """While one thread waits for the token server, others get the token that is expiring
    but still valid; the renewal then replaces it."""
    now = 100_000.0
    released = threading.Event()
    renewed = make_jwt(**demo_claims(now, lifetime=1800))

    def slow(request):
        released.wait(10)
        return (200, {"AccessToken": renewed}, {})

    session, _ = scripted_session(slow)
    first = make_jwt(**demo_claims(now - 1770, lifetime=1800))  # 30 s left, inside the leeway
    tokens = TokenManager(refresh_token="r", token=first, auth_url="https://auth.test",
                          session=session, leeway=60, clock=lambda: now)
    renewing = threading.Thread(target=tokens.token)
    renewing.start()
    deadline = time.monotonic() + 5
    while not tokens._refresh_lock.locked() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert tokens._refresh_lock.locked()
    assert tokens.token() == first  # still valid: no waiting for the token server
    released.set()
    renewing.join(5)
    assert tokens.token() == renewed and tokens.refresh_count == 1
