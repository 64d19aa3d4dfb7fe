"""The stream's rules (policy.Policy) on a fake clock and a fixed random source: no sockets,
no threads, no sleeps."""

from __future__ import annotations

import pytest

from invia_data.stream.policy import (
    FAIL,
    PING,
    RECONNECT,
    RESEND,
    RETRY,
    SWITCH_TO_WS,
    Backfill,
    Policy,
    Retry,
    is_unknown_operation,
)


def _policy(random=0.5, **options) -> Policy:
    return Policy(random=lambda: random, **options)


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    low, high = _policy(0.0, reconnect_delay=0.5, max_reconnect_delay=4.0), \
        _policy(0.999999, reconnect_delay=0.5, max_reconnect_delay=4.0)
    assert low.backoff(0) == pytest.approx(0.1) and high.backoff(0) == pytest.approx(0.3)
    assert [low.backoff(n) for n in (1, 2, 3, 4, 5, 9)] == \
        pytest.approx([0.25, 0.5, 1.0, 2.0, 2.0, 2.0])
    assert [high.backoff(n) for n in (1, 2, 3, 4, 5)] == \
        pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0], rel=1e-5)


def test_401_is_resent_three_times_then_fails():
    policy, retry = _policy(), Retry()
    assert [policy.rejected(retry, 401, "Invalid JWT token!", 0.0) for _ in range(4)] == \
        [RESEND, RESEND, RESEND, FAIL]
    policy.confirmed(retry)
    assert policy.rejected(retry, 401, "expired", 0.0) == RESEND


def test_429_and_5xx_are_retried_later_then_given_up_and_a_confirmation_resets():
    policy, retry = _policy(1.0 - 1e-12, reconnect_delay=0.5), Retry()
    now = 100.0
    delays = []
    for _ in range(5):
        assert policy.rejected(retry, 503, "busy", now) == RETRY
        delays.append(retry.retry_at - now)
        assert policy.due([("sub", retry)], retry.retry_at - 0.001) == []
        assert policy.due([("sub", retry)], retry.retry_at) == ["sub"]
        policy.sent(retry, retry.retry_at)
        assert retry.retry_at is None
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0])
    assert policy.rejected(retry, 429, "slow down", now) == FAIL
    policy.confirmed(retry)
    assert policy.rejected(retry, 429, "slow down", now) == RETRY


def test_other_refusals_fail_at_once():
    policy = _policy()
    for status in (400, 403, 404):
        assert policy.rejected(Retry(), status, "no", 0.0) == FAIL


def test_an_unknown_operation_on_cws_switches_to_ws_once():
    policy = _policy()
    assert policy.rejected(Retry(), 400, "Unknown opcode 'QuotesSubscribe'", 0.0,
                           on_cws=True) == SWITCH_TO_WS
    assert policy.switched_to_ws
    # once only: a second refusal (now on /ws) is the subscription's own error
    assert policy.rejected(Retry(), 400, "Unknown opcode 'QuotesSubscribe'", 0.0,
                           on_cws=True) == FAIL
    fresh = _policy()
    assert fresh.rejected(Retry(), 400, "Unknown opcode 'X'", 0.0, on_cws=False) == FAIL
    assert fresh.rejected(Retry(), 404, "Instrument not found", 0.0, on_cws=True) == FAIL


@pytest.mark.parametrize(("status", "message", "unknown"), [
    (400, "Unknown opcode 'BarsGetAndSubscribe'", True),
    (400, "Operation not supported on this endpoint", True),
    (404, "unknown operation", True),
    (400, "Invalid 'depth': must be 1..50", False),
    (404, "Instrument SBER not found", False),
    (401, "Unknown opcode", False),
    (500, "unknown operation", False),
])
def test_unknown_operation_answers(status, message, unknown):
    assert is_unknown_operation(status, message) is unknown


def test_keepalive_pings_after_a_quiet_interval_and_reconnects_after_two():
    policy = _policy(ping_interval=10.0)
    assert policy.keepalive(now=109.0, last_recv=100.0, pinged=False) is None
    assert policy.keepalive(now=110.5, last_recv=100.0, pinged=False) == PING
    assert policy.keepalive(now=115.0, last_recv=100.0, pinged=True) is None
    assert policy.keepalive(now=120.5, last_recv=100.0, pinged=True) == RECONNECT


def test_stale_watches_market_data_from_its_last_message_or_subscribe():
    policy = _policy(stale_after=5.0)
    book, quiet_new, summary = Retry(), Retry(), Retry()
    policy.sent(book, 0.0)
    policy.message(book, 10.0)
    policy.sent(quiet_new, 12.0)
    policy.sent(summary, 0.0)
    subs = [("book", "orderbook", book), ("new", "all_trades", quiet_new),
            ("summary", "summary", summary)]
    assert policy.stale(subs, 14.9) == []
    assert policy.stale(subs, 15.1) == ["book"]          # the summary is not watched
    assert policy.stale(subs, 17.1) == ["book", "new"]
    assert policy.silence(book, 17.0) == pytest.approx(7.0)
    assert _policy(stale_after=None).stale(subs, 1e9) == []


def test_backfill_plans_only_what_http_can_fetch_and_merges_pending_gaps():
    policy = _policy()
    assert policy.backfill("orderbook", None, 1.0) is None
    assert policy.backfill("quotes", None, 1.0) is None
    plan = policy.backfill("all_trades", 120, 50.0)
    assert plan == Backfill("all_trades", 120, 50.0)
    later = policy.backfill("all_trades", 180, 60.0)
    assert policy.merge_backfills(plan, later) == Backfill("all_trades", 120, 50.0)
    # nothing held before one of the gaps: fetch by time from the earliest
    assert policy.merge_backfills(later, Backfill("all_trades", None, 40.0)) == \
        Backfill("all_trades", None, 40.0)
