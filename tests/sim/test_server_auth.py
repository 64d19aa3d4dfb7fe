"""The token server (POST /refresh) and the checks of every HTTP request and WebSocket message."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
import requests

from invia_data.sim.auth import TokenIssuer, TokenRejected


def claims_of(token):
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (orjson.loads(base64.urlsafe_b64decode(pad(header))),
            orjson.loads(base64.urlsafe_b64decode(pad(payload))))


def refresh(sim, params=None, body=None):
    return requests.post(f"{sim.auth_url}/refresh", params=params,
                         data=orjson.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"}, timeout=10)


def test_refresh_in_query_gives_an_es256_jwt_with_the_documented_claims(sim):
    response = refresh(sim, params={"token": sim.refresh_token})
    assert response.status_code == 200
    assert list(response.json()) == ["AccessToken"]
    header, claims = claims_of(response.json()["AccessToken"])
    assert header["alg"] == "ES256"
    assert claims["sub"] == sim.login == "P039004"
    assert claims["portfolios"].split() == sim.portfolios
    assert claims["agreements"].split() and claims["scope"].split()
    assert claims["exp"] - claims["iat"] == 1800
    assert claims["iss"] == "Alor.Identity"
    assert {"ent", "ein", "clientid", "azp", "aud"} <= set(claims)
    assert abs(claims["iat"] - time.time()) < 5


@pytest.mark.parametrize("name", ["token", "Token"])
def test_refresh_token_in_body(sim, name):
    response = refresh(sim, params={"token": ""}, body={name: sim.refresh_token})
    assert response.status_code == 200


def test_body_wins_over_query(sim):
    assert refresh(sim, params={"token": sim.refresh_token}, body={"token": "wrong"}).status_code == 403
    assert refresh(sim, params={"token": "wrong"}, body={"token": sim.refresh_token}).status_code == 200


def test_allowed_portfolios_narrow_the_token(sim):
    query = refresh(sim, params={"token": sim.refresh_token, "allowedPortfolios": '["D39004"]'})
    assert claims_of(query.json()["AccessToken"])[1]["portfolios"] == "D39004"
    body = refresh(sim, body={"token": sim.refresh_token, "allowedPortfolios": ["G39004", "7500GHC"]})
    assert claims_of(body.json()["AccessToken"])[1]["portfolios"] == "G39004 7500GHC"
    foreign = refresh(sim, body={"token": sim.refresh_token, "allowedPortfolios": ["D11111"]})
    assert foreign.status_code == 403


def test_bad_refresh_token_is_403_with_a_message(sim):
    for params in ({"token": "nope"}, {}):
        response = refresh(sim, params=params)
        assert response.status_code == 403
        assert "message" in response.json()
        assert "nope" not in response.text


def test_http_rejects_missing_forged_and_foreign_tokens(sim, token):
    url = f"{sim.url}/md/v2/Clients/MOEX/D39004/summary"
    assert requests.get(url, timeout=10).status_code == 401
    head, payload, signature = token.split(".")
    forged_claims = claims_of(token)[1] | {"portfolios": "D39004 D66666"}
    forged = ".".join([head, base64.urlsafe_b64encode(orjson.dumps(forged_claims)).rstrip(b"=").decode(),
                       signature])
    other = TokenIssuer("P039004", ["D39004"], ["39004"]).issue()  # right claims, wrong key
    for bad in (forged, other, "garbage", token[:-10]):
        response = requests.get(url, headers={"Authorization": f"Bearer {bad}"}, timeout=10)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(url, headers={"Authorization": f"Basic {token}"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200


def test_portfolio_not_in_token_is_403(sim, token_for):
    narrow = token_for(sim, allowedPortfolios=["G39004"])
    response = requests.get(f"{sim.url}/md/v2/Clients/MOEX/D39004/positions",
                            headers={"Authorization": f"Bearer {narrow}"}, timeout=10)
    assert response.status_code == 403 and "D39004" in response.json()["message"]
    other_login = requests.get(f"{sim.url}/md/v2/Clients/P000001/positions",
                               headers={"Authorization": f"Bearer {narrow}"}, timeout=10)
    assert other_login.status_code == 403


def test_expired_tokens_are_rejected_over_http_and_websocket(fresh_sim, token_for, ws_client):
    short = fresh_sim(faults={"token_lifetime": 1})
    token = token_for(short)
    header, claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == 1
    time.sleep(2.1)
    response = requests.get(f"{short.url}/md/v2/orderbooks/MOEX/SBER",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401
    client = ws_client(short.ws_url, token)
    guid = client.subscribe("OrderBookGetAndSubscribe", code="SBER", exchange="MOEX")
    assert client.result(guid) == {"requestGuid": guid, "httpCode": 401, "message": "Invalid JWT token!"}


def test_websocket_checks_the_token_of_every_message(sim, ws_client, token_for):
    client = ws_client()
    good = client.subscribe("QuotesSubscribe", code="SBER", exchange="MOEX")
    assert client.result(good)["httpCode"] == 200
    client.send({"opcode": "QuotesSubscribe", "guid": "empty", "code": "SBER", "exchange": "MOEX",
                 "token": ""})
    assert client.result("empty")["httpCode"] == 401
    client.send({"opcode": "QuotesSubscribe", "guid": "no-token", "code": "SBER", "exchange": "MOEX"})
    assert client.result("no-token")["httpCode"] == 401
    narrow = token_for(sim, allowedPortfolios=["D39004"])
    denied = client.subscribe("SummariesGetAndSubscribeV2", portfolio="7500GHC", exchange="MOEX",
                              token=narrow)
    assert client.result(denied)["httpCode"] == 403
    unsub = client.subscribe("unsubscribe", guid=good, token="forged.token.here")
    assert client.result(unsub)["httpCode"] == 401


def test_issuer_never_echoes_tokens():
    issuer = TokenIssuer("P1", ["D1"], ["1"])
    token = issuer.issue()
    with pytest.raises(TokenRejected) as caught:
        issuer.verify(token[:-4] + "AAAA")
    assert token[-20:] not in str(caught.value)
    assert issuer.refresh_token not in repr(issuer)
