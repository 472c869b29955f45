"""Who is calling: the bearer token of ``authorization: Bearer <token>`` → a ``Principal`` (DESIGN §6, §10).

A token is found by its lookup id (``engine.secrets.secret_lookup_id``), then verified against the
stored salted scrypt hash (``verify_secret``, a constant-time compare; ~50 ms of CPU, run off the event
loop). A verified token's principal is cached for ``ttl_s`` under the token's SHA-256 (never the token
itself), so a client making thousands of calls per second pays scrypt once per TTL; concurrent first
calls with one token share one verification. Failures are never cached. Administration calls that
change rights call ``invalidate()`` so a revoked profile stops working at once on this process.

``unary``/``stream`` wrap servicer methods: authenticate, call, map any error through
``gateway.grpc_errors`` — the servicer bodies only translate and delegate.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
import structlog

from engine.permissions import Principal
from engine.secrets import secret_lookup_id, verify_secret
from engine.store.port import Store
from gateway.grpc_errors import Unauthenticated, abort_with

log = structlog.get_logger("fluxdepot.grpc")

MAX_TOKEN_CHARS = 512
_MISSING = "missing credentials: send the metadata 'authorization: Bearer <token>'"
_INVALID = "invalid or expired token"


@dataclass
class _Entry:
    digest: bytes
    principal: Principal
    expires_at: float


class Authenticator:
    """Bearer token → ``Principal``, with a small TTL cache (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future[Principal]] = {}

    def invalidate(self) -> None:
        """Forget every cached principal (rights changed: the next call reads them again)."""
        self._cache.clear()

    async def authenticate(self, metadata: Any) -> Principal:
        """The caller of a request with ``metadata``; raises ``Unauthenticated``."""
        token = bearer_token(metadata)
        digest = hashlib.sha256(token.encode()).digest()
        entry = self._cache.get(digest)
        if entry is not None and hmac.compare_digest(entry.digest, digest):
            if entry.expires_at > self._clock():
                return entry.principal
            del self._cache[digest]
        pending = self._pending.get(digest)
        if pending is not None:  # another call is verifying this very token: share its answer
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            principal = await self._verify(token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else has to
            raise
        finally:
            del self._pending[digest]
        future.set_result(principal)
        self._cache[digest] = _Entry(digest, principal, self._clock() + self._ttl_s)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> Principal:
        credential = await self._store.find_credential(secret_lookup_id(token))
        if credential is None:
            raise Unauthenticated(_INVALID)
        if not await asyncio.to_thread(verify_secret, token, credential.token_hash):
            raise Unauthenticated(_INVALID)
        principal = await self._store.principal(credential.kind, credential.login)
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
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated(_INVALID)
    return token


class HasAuth(Protocol):
    auth: Authenticator


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
            principal = await self.auth.authenticate(context.invocation_metadata())
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
            principal = await self.auth.authenticate(context.invocation_metadata())
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
            principal = await self.auth.authenticate(context.invocation_metadata())
            async for item in method(self, request, context, principal):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, exc, method.__name__)

    return wrapper
