"""connect(), environments, the embedded simulator, token renewal, faults, errors, no leaks."""

from __future__ import annotations

import inspect
import logging
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from fakes import counting_session, make_jwt, market_time, scripted_session, sequence

import invia_data
import invia_data.cache
from invia_data import client as client_module
from invia_data.auth import TokenManager
from invia_data.errors import (
    AuthError,
    Forbidden,
    InvalidArgument,
    RateLimited,
    ServerError,
    StreamClosed,
    TransportError,
)
from invia_data.http import Http, RetryPolicy


def connect_to(server, **kwargs) -> invia_data.Client:
    return invia_data.connect(server.refresh_token, base_url=server.url,
                              auth_url=server.auth_url, ws_url=server.ws_url, **kwargs)


def fast_retries(inv: invia_data.Client, retries: int) -> None:
    inv.http.retry = RetryPolicy(retries=retries, backoff=0.001, max_delay=0.01)


@pytest.fixture()
def no_env(monkeypatch):
    for name in ("INVIA_ENV", "INVIA_REFRESH_TOKEN", "INVIA_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- connecting -----------------------------------------------------------------------------

def test_connect_with_refresh_token_and_repr(sim):
    with connect_to(sim) as inv:
        text = repr(inv)
        assert "login=P039004" in text and "D39004 G39004 7500GHC" in text
        assert sim.url in text and "exchange=MOEX" in text
        assert inv.tokens.token() not in text and sim.refresh_token not in text
        assert inv.portfolio == "D39004" and inv.exchange == "MOEX"
    assert "closed" in repr(inv)


def test_no_credentials_start_the_embedded_simulator_once(no_env, caplog):
    caplog.set_level(logging.INFO, logger="invia_data.http")
    was_running = client_module._embedded is not None
    first = invia_data.connect()
    second = invia_data.connect(env="sim")
    try:
        assert first.http.base_url == second.http.base_url
        assert urlsplit(first.http.base_url).hostname == "127.0.0.1"
        assert first.embedded and "embedded simulator" in repr(first)
        assert "login=P039004" in repr(first)
        assert isinstance(first.time(), pd.Timestamp)
        announced = [r for r in caplog.records if "embedded simulator" in r.getMessage()]
        assert len(announced) == (0 if was_running else 1)
    finally:
        first.close()
        second.close()
    assert client_module._embedded.running      # stays up for the process, stopped at exit


def test_sim_ignores_credentials_of_the_environment(no_env, monkeypatch):
    monkeypatch.setenv("INVIA_REFRESH_TOKEN", "a-real-account-refresh-token")
    monkeypatch.setenv("INVIA_ENV", "sim")
    with invia_data.connect() as inv:
        assert inv.embedded and inv.tokens.login == "P039004"


def test_environment_from_the_environment_variable(no_env, monkeypatch, sim):
    monkeypatch.setenv("INVIA_ENV", sim.url)
    monkeypatch.setenv("INVIA_REFRESH_TOKEN", sim.refresh_token)
    with invia_data.connect() as inv:
        assert inv.http.base_url == sim.url and inv.ws_url == sim.ws_url
        assert not inv.embedded and inv.tokens.login == "P039004"


@pytest.mark.parametrize("env, api, ws, oauth", [
    ("prod", "https://api.inviabroker.com", "wss://api.inviabroker.com/cws",
     "https://oauth.inviabroker.com"),
    ("dev", "https://apidev.inviabroker.com", "wss://apidev.inviabroker.com/cws",
     "https://oauthdev.inviabroker.com"),
])
def test_invia_hosts(no_env, env, api, ws, oauth):
    jwt = make_jwt(sub="P1", portfolios="D1", agreements="1", exp=time.time() + 1800)
    session, adapter = scripted_session(sequence((200, {"AccessToken": jwt}, {})))
    inv = invia_data.connect("refresh-abc", env=env, session=session)
    assert inv.http.base_url == api and inv.ws_url == ws
    assert adapter.requests[0].url.startswith(f"{oauth}/refresh?")
    assert f"env={env}" in repr(inv) and "refresh-abc" not in repr(inv)
    anonymous = invia_data.connect(env=env, session=session)
    assert anonymous.tokens is None and "anonymous" in repr(anonymous)
    assert len(adapter.requests) == 1          # an anonymous connect sends nothing


def test_anonymous_calls_that_need_a_token_say_so(no_env, sim):
    inv = invia_data.connect(env=sim.url)
    assert inv.currency_pairs().shape[0] > 0   # public
    with pytest.raises(AuthError, match="needs credentials"):
        inv.orderbook("SBER")
    with pytest.raises(InvalidArgument, match="credentials"):
        inv.positions(portfolio="D39004")
    for call in (inv.positions, inv.summary, inv.forts_risk, inv.orders):
        with pytest.raises(InvalidArgument, match="needs credentials"):
            call()  # no token, so no portfolio of its own: say what is missing


def test_bad_connect_arguments(no_env):
    session, adapter = counting_session()
    for kwargs in ({"env": "staging"}, {"format": "xml"}, {"exchange": "MO EX"},
                   {"env": "ftp://host"}):
        with pytest.raises(InvalidArgument):
            invia_data.connect("r", session=session, **kwargs)
    assert adapter.sent == []


def test_portfolio_not_in_the_token_fails_at_connect(sim):
    with pytest.raises(InvalidArgument, match="D00000"):
        connect_to(sim, portfolio="D00000")
    with connect_to(sim, portfolio="G39004") as inv:
        assert inv.portfolio == "G39004"


def test_pinned_format_applies_to_every_call(sim):
    session, adapter = counting_session()
    with connect_to(sim, format="slim", session=session) as inv:
        assert inv.format == "Slim"
        assert inv._wire_format(None) == "Slim" and inv._wire_format("heavy") == "Heavy"
        assert len(inv.quotes("SBER")) == 1


# --- tokens ---------------------------------------------------------------------------------

def test_static_token(sim, no_env):
    jwt = TokenManager(sim.refresh_token, auth_url=sim.auth_url).token()
    with invia_data.connect(token=jwt, base_url=sim.url) as inv:
        assert not inv.tokens.can_refresh and inv.tokens.login == "P039004"
        assert len(inv.positions()) > 0
    expired = make_jwt(sub="P039004", portfolios="D39004", exp=int(time.time()) - 5)
    session, adapter = counting_session()
    with pytest.raises(AuthError) as info:
        invia_data.connect(token=expired, base_url=sim.url, session=session)
    assert "expired" in str(info.value) and expired not in str(info.value)
    assert adapter.sent == []


# The simulator's exp and iat are whole seconds, so a token of lifetime 2 has between 1 and
# 2 seconds left when it arrives: never inside the 10 % leeway at once.

def test_short_lived_token_renewed_ahead_of_expiry_once_for_many_threads(fresh_sim):
    server = fresh_sim(faults={"token_lifetime": 2})
    with connect_to(server) as inv:
        assert inv.tokens.refresh_count == 1
        inv.summary()
        time.sleep(2.0)                        # the token is now due for renewal
        barrier = threading.Barrier(12)
        errors: list[BaseException] = []

        def call():
            try:
                barrier.wait(timeout=5)
                inv.quotes("SBER")             # no 401: renewed before it ran out
            except BaseException as exc:       # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors
        assert inv.tokens.refresh_count == 2


def test_a_401_renews_the_token_once_and_retries(sim, fresh_sim):
    server = fresh_sim(seed=2)
    foreign = TokenManager(sim.refresh_token, auth_url=sim.auth_url).token()  # other signer
    tokens = TokenManager(server.refresh_token, token=foreign, auth_url=server.auth_url)
    session, adapter = counting_session()
    http = Http(server.url, tokens, session=session)
    assert isinstance(http.get("/md/v2/Clients/MOEX/D39004/summary"), dict)
    assert tokens.refresh_count == 1 and tokens.token() != foreign
    assert adapter.sent == ["GET /md/v2/Clients/MOEX/D39004/summary"] * 2   # 401, then 200


def test_refused_refresh_token(sim):
    with pytest.raises(Forbidden) as info:
        invia_data.connect("not-the-refresh-token", base_url=sim.url, auth_url=sim.auth_url)
    assert "refused" in str(info.value) and "not-the-refresh-token" not in str(info.value)


# --- faults ---------------------------------------------------------------------------------

def test_429_with_retry_after_is_retried_then_raised(fresh_sim):
    server = fresh_sim(faults={"http_error_rate": 1.0, "http_error_status": 429,
                               "retry_after": 0.05})
    session, adapter = counting_session()
    slept: list[float] = []
    tokens = TokenManager(server.refresh_token, auth_url=server.auth_url)
    http = Http(server.url, tokens, session=session, rate=None, retries=RetryPolicy(retries=3),
                sleep=slept.append)
    with pytest.raises(RateLimited) as info:
        http.get("/md/v2/time")
    assert adapter.sent == ["GET /md/v2/time"] * 4
    assert slept == [0.05] * 3                 # each wait is the server's Retry-After
    assert info.value.retry_after == pytest.approx(0.05)


def test_a_fraction_of_failures_is_absorbed_by_retries(fresh_sim):
    server = fresh_sim(faults={"http_error_rate": 0.4, "http_error_status": 503})
    session, adapter = counting_session()
    with connect_to(server, session=session) as inv:
        fast_retries(inv, 10)
        before = len(adapter.sent)
        frames = [inv.quotes("SBER") for _ in range(15)]
        assert all(len(f) == 1 for f in frames)
        assert len(adapter.sent) - before > 15  # some requests failed and were retried


def test_persistent_5xx_is_server_error(fresh_sim):
    server = fresh_sim(faults={"http_error_rate": 1.0, "http_error_status": 502})
    with connect_to(server) as inv:
        fast_retries(inv, 2)
        with pytest.raises(ServerError) as info:
            inv.orderbook("SBER")
        assert info.value.status == 502


def test_unreachable_server_is_transport_error(fresh_sim):
    port = free_port()
    with pytest.raises(TransportError):
        invia_data.connect("r", base_url=f"http://127.0.0.1:{port}",
                           auth_url=f"http://127.0.0.1:{port}")
    server = fresh_sim()
    inv = connect_to(server)
    inv.http.retry = RetryPolicy(transport_retries=1, backoff=0.001)
    server.stop()
    with pytest.raises(TransportError, match="GET /md/v2/time"):
        inv.time()
    inv.close()


# --- no leaks -------------------------------------------------------------------------------

def test_tokens_never_in_logs_reprs_or_errors(sim, caplog):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with connect_to(sim) as inv:
        jwt = inv.tokens.token()
        inv.quotes("SBER")
        inv.summary()
        for call in (lambda: inv.security("NOSUCH"),
                     lambda: inv.http.get("/md/v2/Clients/MOEX/D99999/summary"),
                     lambda: inv.http.get("/md/v2/orderbooks/MOEX/SBER", {"depth": 99})):
            with pytest.raises(invia_data.InviaError) as info:
                call()
            texts += [str(info.value), repr(info.value)]
        texts += [repr(inv), repr(inv.tokens), repr(inv.http), str(inv.tokens.claims)]
    texts.append(caplog.text)
    assert "POST /refresh 200" in caplog.text and "GET /md/v2/Clients/MOEX/D39004/summary 200" in caplog.text
    for text in texts:
        assert sim.refresh_token not in text and jwt not in text


# --- the rest of the facade -----------------------------------------------------------------

def test_history_delegates_with_the_client_http(sim, tmp_path):
    with connect_to(sim) as inv:
        end = market_time(sim).floor("h") - pd.Timedelta(days=3)
        df = inv.history("SBER", tf="1h", start=end - pd.Timedelta(days=2), end=end,
                         cache_dir=tmp_path)
        assert len(df) > 0 and list(df.columns) == ["open", "high", "low", "close", "volume"]
        assert str(df.index.tz) == "UTC" and (df["high"] >= df["low"]).all()


def test_history_help_describes_the_frame_without_a_detour():
    text = inspect.getdoc(invia_data.Client.history)
    for term in ("time", "symbol", "open", "volume", "open_candle", "tz", "ITS:SOGN"):
        assert term in text, term


def test_stream_is_lazy_and_closed_with_the_client(sim):
    inv = connect_to(sim)
    assert inv._stream is None
    stream = inv.stream
    assert stream is inv.stream and stream.url == sim.ws_url
    inv.close()
    assert "closed" in repr(stream)
    with pytest.raises(StreamClosed):
        _ = inv.stream
    inv.close()                                # idempotent


ALL_CALLS = {
    "time": lambda c, tz: c.time(tz=tz),
    "securities": lambda c, tz: c.securities(tz=tz),
    "instruments": lambda c, tz: c.instruments(tz=tz),
    "market_status": lambda c, tz: c.market_status("FOND", tz=tz),
    "security": lambda c, tz: c.security("SBER", tz=tz),
    "quotes": lambda c, tz: c.quotes("SBER", tz=tz),
    "futures_quote": lambda c, tz: c.futures_quote("SI", tz=tz),
    "orderbook": lambda c, tz: c.orderbook("SBER", tz=tz),
    "all_trades": lambda c, tz: c.all_trades("SBER", limit=5, tz=tz),
    "currency_pairs": lambda c, tz: c.currency_pairs(tz=tz),
    "available_boards": lambda c, tz: c.available_boards("SBER", tz=tz),
    "risk_rates": lambda c, tz: c.risk_rates(1, tz=tz),
    "summary": lambda c, tz: c.summary(tz=tz),
    "positions": lambda c, tz: c.positions(tz=tz),
    "position": lambda c, tz: c.position("SBER", tz=tz),
    "positions_by_login": lambda c, tz: c.positions_by_login(tz=tz),
    "risk": lambda c, tz: c.risk(tz=tz),
    "forts_risk": lambda c, tz: c.forts_risk(tz=tz),
    "money": lambda c, tz: c.money(tz=tz),
    "orders": lambda c, tz: c.orders(tz=tz),
    "order": lambda c, tz: c.order(1, tz=tz),
    "stop_orders": lambda c, tz: c.stop_orders(tz=tz),
    "stop_order": lambda c, tz: c.stop_order(1, tz=tz),
    "own_trades": lambda c, tz: c.own_trades(tz=tz),
    "own_trades_history": lambda c, tz: c.own_trades_history(limit=5, tz=tz),
    "history": lambda c, tz: c.history("SBER", tz=tz, cache=False),
}


@pytest.fixture(scope="module")
def counted_client(sim):
    session, adapter = counting_session()
    with connect_to(sim, session=session) as inv:
        yield inv, adapter


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_every_call_takes_tz_and_checks_it_before_a_request(counted_client, name):
    inv, adapter = counted_client
    before = list(adapter.sent)
    with pytest.raises(InvalidArgument, match="Atlantis/Capital"):
        ALL_CALLS[name](inv, "Atlantis/Capital")
    assert adapter.sent == before


def test_candles_of_a_local_simulator_stay_out_of_the_user_cache(sim, no_env, monkeypatch,
                                                                  tmp_path):
    monkeypatch.delenv("INVIA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    with connect_to(sim) as inv:
        candles = inv.history("SBER", tf="1h", start="2024-03-01", end="2024-03-02")
    # Friday 2024-03-01 MSK: the 09:59 opening-auction print, 10:00-18:50, 19:05-23:50
    assert len(candles) == 15
    assert not (tmp_path / "user-cache").exists()
    own = Path(client_module._simulator_cache_dir(sim.url))
    assert list(own.rglob("*.parquet")), "closed candles are cached in the simulator's folder"
    monkeypatch.setenv("INVIA_CACHE_DIR", str(tmp_path / "chosen"))
    assert client_module._simulator_cache_dir(sim.url) is None
    assert client_module._simulator_cache_dir("https://api.inviabroker.com") is None


def _declared(server: invia_data.sim.Simulator, **kwargs: object) -> invia_data.Client:
    """A client of ``server`` that knows its identity, as connect() sets it up for the
    embedded simulator."""
    inv = connect_to(server, **kwargs)
    inv.http.cache_environment, inv.http.cache_until = server.identity, server.history_until
    return inv


def test_a_simulator_identity_is_its_seed_and_code():
    with invia_data.sim.run(port=0, seed=1) as one, invia_data.sim.run(port=0, seed=1) as two, \
            invia_data.sim.run(port=0, seed=2) as other:
        assert one.identity == two.identity != other.identity
        assert one.url != two.url


def test_the_embedded_simulator_declares_its_identity_to_the_client(no_env):
    with invia_data.connect(env="sim") as inv:
        server = client_module.embedded_simulator()
        assert inv.http.cache_environment == server.identity
        assert inv.http.cache_until == server.history_until


def test_a_restarted_simulator_of_the_same_seed_reuses_the_cache(tmp_path):
    past = dict(tf="1h", start="2024-03-01", end="2024-03-04", cache_dir=tmp_path)
    with invia_data.sim.run(port=0, seed=1) as first, _declared(first) as inv:
        before = inv.history("SBER", **past)
        recent = inv.history("SBER", tf="1min", cache_dir=tmp_path)  # into the live candles
    assert pd.Timestamp(recent.index[-1]).timestamp() >= first.history_until
    assert [p.name for p in tmp_path.iterdir()] == [first.identity]
    session, adapter = counting_session()
    with invia_data.sim.run(port=0, seed=1) as second, _declared(second, session=session) as inv:
        sent = len(adapter.sent)
        again = inv.history("SBER", **past)
        assert len(adapter.sent) == sent, "a past range comes from the cache, no request"
        pd.testing.assert_frame_equal(again, before)
        cache = invia_data.cache.CandleCache(tmp_path)
        key = invia_data.cache.CacheKey(first.identity, "MOEX", "SBER", None, "1min")
        newest = max(b for _, b in cache.coverage(key))
        assert newest <= first.history_until, "live candles of a run are never cached"


def test_calls_on_a_closed_client_raise_instead_of_answering(sim):
    inv = connect_to(sim)
    inv.close()
    for call in (lambda: inv.quotes("SBER"), lambda: inv.history("SBER", tf="D"),
                 lambda: inv.positions(), lambda: inv.time()):
        with pytest.raises(invia_data.ClientClosed, match="connect"):
            call()
    with pytest.raises(invia_data.StreamClosed):
        inv.stream.orderbook("SBER")
    inv.close()  # idempotent
