"""OAuth2 client credentials for technical users (RFC 6749 §4.4), as Chorus Pro's API gateway works.

A technical user's client id is its login and its client secret is its bearer token (the one
``fluxdepot admin`` or ``AdminService.CreateTechnicalUser`` issued, stored only as a salted hash). The
token endpoint trades them for a short-lived access token: a JWT signed with HMAC-SHA256 under a key kept
in the data folder, so every daemon sharing the folder accepts the tokens the others issue. The access
token is accepted wherever the static token is (gRPC, HTTP): ``TokenAuthenticator`` tells them apart by
shape. Rights are read from the store when the token is used, never frozen into it: a revoked technical
user's access tokens stop working once the authenticator's cache entry expires.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
ISSUER = "fluxdepot"
KEY_BYTES = 32
LEEWAY_S = 5  # clock skew between daemons sharing a store


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int  # seconds


def looks_like_access_token(token: str) -> bool:
    """A JWT has three dot-separated parts; static tokens are url-safe base64 without dots."""
    return token.count(".") == 2


class AccessTokens:
    """Issue and verify signed, short-lived access tokens for technical users."""

    def __init__(self, key: bytes, *, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"the signing key must be at least {KEY_BYTES} bytes")
        self._key = key
        self._ttl_s = ttl_s
        self._clock = clock

    def issue(self, login: str) -> AccessToken:
        now = int(self._clock())
        claims = {"iss": ISSUER, "sub": login, "kind": "technical", "iat": now, "exp": now + self._ttl_s}
        claims["jti"] = secrets.token_urlsafe(12)
        return AccessToken(jwt.encode(claims, self._key, algorithm=ALGORITHM), self._ttl_s)

    def verify(self, token: str) -> tuple[str, float] | None:
        """The technical login of a valid token and the seconds it has left; None otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],  # never "none", never a key confusion
                issuer=ISSUER,
                leeway=LEEWAY_S,
                # Expiry is checked below against this object's clock (the wall clock in the daemon).
                options={"require": ["exp", "iat", "sub", "iss"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            return None
        if claims.get("kind") != "technical" or not isinstance(claims.get("sub"), str):
            return None
        if not isinstance(claims["exp"], int | float):
            return None
        left_s = claims["exp"] - self._clock()
        if left_s + LEEWAY_S < 0:
            return None
        return claims["sub"], max(left_s, 0.0)
