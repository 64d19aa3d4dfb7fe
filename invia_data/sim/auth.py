"""The simulator's token server: refresh token -> ES256 JWT, and the check of every request.

Claims follow REFERENCE §2.4 (``sub``, ``ent``, ``ein``, ``clientid``, ``azp``, space-separated
``portfolios`` and ``agreements``, ``scope``, ``iat``/``exp``, ``iss`` "Alor.Identity", ``aud``).
The signing key is generated when the issuer is made, so tokens of another simulator run are
rejected as forged. Times are wall-clock seconds (clients compare ``exp`` with their own clock).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ISSUER = "Alor.Identity"
AUDIENCE = "Client WARP WarpATConnector subscriptionsApi CommandApi InstrumentApi"
SCOPE = "OrdersRead OrdersCreate Trades Personal Stats"
DEFAULT_LIFETIME = 1800.0
_HEADER = {"alg": "ES256", "typ": "JWT"}
_VERIFIED_CACHE = 1024


class TokenRejected(Exception):
    """A token is missing, malformed, forged or expired (the server answers 401)."""


class PortfolioRejected(Exception):
    """A refresh asked for a portfolio the login does not own (the server answers 403)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues access tokens for one login and checks them.

    ``lifetime`` is read on every issue, so a callable lets the fault switchboard shorten it
    at run time.
    """

    def __init__(self, login: str, portfolios: Iterable[str], agreements: Iterable[str],
                 refresh_token: str | None = None,
                 lifetime: Callable[[], float] | float = DEFAULT_LIFETIME,
                 clock: Callable[[], float] = time.time) -> None:
        self.login = login
        self.portfolios = list(portfolios)
        self.agreements = list(agreements)
        self.refresh_token = refresh_token or secrets.token_hex(16)
        self._lifetime = lifetime if callable(lifetime) else (lambda: float(lifetime))
        self._clock = clock
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._public = self._key.public_key()
        self._verified: dict[str, dict[str, Any]] = {}  # signature checks are the costly part

    def __repr__(self) -> str:
        return f"TokenIssuer(login={self.login!r}, portfolios={self.portfolios!r})"

    def check_refresh_token(self, token: str | None) -> bool:
        if not isinstance(token, str) or not token:
            return False
        return hmac.compare_digest(token.encode(), self.refresh_token.encode())

    def issue(self, allowed_portfolios: Iterable[str] | None = None) -> str:
        """A signed JWT; ``allowed_portfolios`` narrows the ``portfolios`` claim."""
        portfolios = self.portfolios
        if allowed_portfolios is not None:
            owned = {p.upper(): p for p in self.portfolios}
            wanted = list(allowed_portfolios)
            unknown = [p for p in wanted if not isinstance(p, str) or p.upper() not in owned]
            if unknown:
                raise PortfolioRejected(f"portfolio {unknown[0]!r} is not available to this login")
            portfolios = [owned[p.upper()] for p in wanted]
        now = int(self._clock())
        claims = {
            "sub": self.login,
            "ent": "client",
            "ein": self.login.lstrip("P0") or "0",
            "clientid": self.login[1:],
            "azp": "5f3e9c1d2b7a4e6f8a0c",
            "agreements": " ".join(self.agreements),
            "portfolios": " ".join(portfolios),
            "scope": SCOPE,
            "iat": now,
            "exp": now + max(1, int(round(self._lifetime()))),
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        signing_input = f"{b64url(orjson.dumps(_HEADER))}.{b64url(orjson.dumps(claims))}"
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def verify(self, token: Any) -> dict[str, Any]:
        """The claims of a valid token; raises TokenRejected otherwise (never echoing the token)."""
        if not isinstance(token, str) or not token:
            raise TokenRejected("JWT token is missing")
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
            if len(self._verified) >= _VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = claims
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= self._clock():
            raise TokenRejected("JWT token has expired")
        return claims

    def _check_signature(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("JWT token is malformed")
        try:
            header = orjson.loads(b64url_decode(parts[0]))
            claims = orjson.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise TokenRejected("JWT token is malformed") from exc
        if not isinstance(header, dict) or header.get("alg") != "ES256" or len(signature) != 64:
            raise TokenRejected("JWT token is not signed with ES256")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        try:
            self._public.verify(der, f"{parts[0]}.{parts[1]}".encode("ascii"),
                                ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise TokenRejected("JWT token signature is invalid") from exc
        if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
            raise TokenRejected("JWT token has a wrong issuer")
        return claims


def token_portfolios(claims: dict[str, Any]) -> list[str]:
    value = claims.get("portfolios", "")
    return value.split() if isinstance(value, str) else []
