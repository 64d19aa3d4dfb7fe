"""A bond's answers from the simulator against the official spec's schemas, in every format:
the security, the quote (yield, accrued interest) and the order book (Slim level yields)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from .support import http_operations, unexplained, validation_errors

FORMATS = ("Simple", "Slim", "Heavy")
OFZ = "SU26221RMFS0"
ROUTES = {
    "/md/v2/Securities/{exchange}/{symbol}": f"/md/v2/Securities/MOEX/{OFZ}",
    "/md/v2/Securities/{symbols}/quotes": f"/md/v2/Securities/MOEX:{OFZ}/quotes",
    "/md/v2/orderbooks/{exchange}/{symbol}": f"/md/v2/orderbooks/MOEX/{OFZ}",
}


@pytest.fixture(scope="module")
def token(sim: Any) -> str:
    from conftest import fetch_token

    return fetch_token(sim)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_bond_answers_match_the_spec(sim, token, route, fmt) -> None:
    (op,) = [o for o in http_operations() if o["path"] == route]
    response = requests.get(f"{sim.url}{ROUTES[route]}", params={"format": fmt}, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    bad = unexplained(validation_errors(body, op["schemas"][fmt]), set())
    assert not bad, f"{route} {fmt}: {bad[:8]}"
    record = body[0] if isinstance(body, list) else body
    if "orderbooks" in route:
        levels = record["b" if fmt == "Slim" else "bids"]
        assert levels and all(("y" in level) == (fmt == "Slim") for level in levels)
        if fmt == "Slim":
            assert all(5 < level["y"] < 30 for level in levels)
    else:
        slim_key = "y" if "quotes" in route else "yld"
        assert 5 < record[slim_key if fmt == "Slim" else "yield"] < 30
    if "quotes" in route:
        accrued = record["acci" if fmt == "Slim" else "accruedInt" if fmt == "Simple"
                         else "accruedInterest"]
        assert accrued > 0
