"""Who is calling an HTTP route: ``Authorization: Bearer <token>`` → a ``Principal``, and the caller's rate.

The token is a technical user's or user's static token, or an OAuth2 access token from ``/oauth/token``;
``engine.services.auth.TokenAuthenticator`` decides, as for gRPC. A missing, wrong or expired token is 401
with a ``WWW-Authenticate`` challenge (RFC 6750); a caller past its rate is 429 with ``Retry-After``.
"""

from __future__ import annotations

from starlette.requests import Request

from engine.permissions import Principal
from engine.services.auth import TokenAuthenticator
from gateway.http.errors import TooManyRequests, Unauthenticated
from gateway.http.rate import RateLimiter, retry_after_s

MISSING = "missing credentials: send the header 'Authorization: Bearer <token>'"
INVALID = "invalid or expired token"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class HttpAuth:
    def __init__(self, tokens: TokenAuthenticator, limiter: RateLimiter) -> None:
        self.tokens = tokens
        self.limiter = limiter

    async def principal(self, request: Request) -> Principal:
        """The authenticated caller of ``request``, within its rate; raises ``Unauthenticated`` or
        ``TooManyRequests``. Failed attempts spend the address's rate, so guessing is slow too."""
        header = request.headers.get("authorization")
        if not header:
            self.limit(client_address(request))
            raise Unauthenticated(MISSING, error="")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.limit(client_address(request))
            raise Unauthenticated("malformed Authorization header: expected 'Bearer <token>'", error="invalid_request")
        principal = await self.tokens.principal_for_token(token.strip())
        if principal is None:
            self.limit(client_address(request))
            raise Unauthenticated(INVALID)
        self.limit(principal.depositor)
        request.state.caller = principal.depositor
        return principal

    def limit(self, key: str) -> None:
        wait = self.limiter.take(key)
        if wait > 0:
            raise TooManyRequests(retry_after_s(wait))
