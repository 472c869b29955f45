"""Who is calling a gRPC method: ``authorization: Bearer <token>`` → a ``Principal`` (DESIGN §6, §10).

The metadata is read here; the token is checked by ``engine.services.auth.TokenAuthenticator`` (lookup id,
salted hash, TTL cache), the same decision every face uses. ``unary``/``client_stream``/``stream`` wrap
servicer methods: authenticate, call, map any error through ``gateway.grpc_errors`` — the servicer bodies
only translate and delegate.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from engine.permissions import Principal
from engine.services.auth import TokenAuthenticator
from gateway.grpc_errors import Unauthenticated, abort_with

Authenticator = TokenAuthenticator  # the name the servicers and ``grpc_server`` know it by

_MISSING = "missing credentials: send the metadata 'authorization: Bearer <token>'"
_INVALID = "invalid or expired token"


async def authenticate(auth: TokenAuthenticator, metadata: Any) -> Principal:
    """The caller of a request with ``metadata``; raises ``Unauthenticated``."""
    principal = await auth.principal_for_token(bearer_token(metadata))
    if principal is None:
        raise Unauthenticated(_INVALID)
    return principal


def bearer_token(metadata: Any) -> str:
    """The token of the ``authorization`` metadata; raises ``Unauthenticated`` when absent or malformed."""
    value = None
    for key, item in metadata or ():
        if key == "authorization":
            value = item
            break
    if not value or not isinstance(value, str):
        raise Unauthenticated(_MISSING)
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("malformed authorization metadata: expected 'Bearer <token>'")
    return token


class HasAuth(Protocol):
    auth: TokenAuthenticator


S = TypeVar("S", bound=HasAuth)
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def unary(
    method: Callable[[S, Req, grpc.aio.ServicerContext, Principal], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext], Awaitable[Resp]]:
    """Wrap a unary servicer method: authenticate, call with the principal, map errors to statuses."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            principal = await authenticate(self.auth, context.invocation_metadata())
            return await method(self, request, context, principal)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, exc, method.__name__)

    return wrapper


def client_stream(
    method: Callable[[S, AsyncIterator[Req], grpc.aio.ServicerContext, Principal], Awaitable[Resp]],
) -> Callable[[S, AsyncIterator[Req], grpc.aio.ServicerContext], Awaitable[Resp]]:
    """Wrap a client-streaming servicer method the same way as ``unary`` (authenticated before the first
    message is read)."""

    @functools.wraps(method)
    async def wrapper(self: S, requests: AsyncIterator[Req], context: grpc.aio.ServicerContext) -> Resp:
        try:
            principal = await authenticate(self.auth, context.invocation_metadata())
            return await method(self, requests, context, principal)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, exc, method.__name__)

    return wrapper


def stream(
    method: Callable[[S, Req, grpc.aio.ServicerContext, Principal], AsyncIterator[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]]:
    """Wrap a server-streaming servicer method the same way as ``unary``."""

    @functools.wraps(method)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext) -> AsyncIterator[Resp]:
        try:
            principal = await authenticate(self.auth, context.invocation_metadata())
            async for item in method(self, request, context, principal):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, exc, method.__name__)

    return wrapper
