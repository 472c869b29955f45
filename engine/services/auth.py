"""Who is calling, for every face: a bearer token → ``Principal``; an EDI partner's key or password.

Tokens (gRPC, HTTP; DESIGN §6, §10). A token is found by its lookup id (``engine.secrets.secret_lookup_id``),
then verified against the stored salted scrypt hash (``verify_secret``, a constant-time compare; ~50 ms of
CPU, run off the event loop). A verified token's principal is cached for ``ttl_s`` under the token's
SHA-256 (never the token itself), so a client making thousands of calls per second pays scrypt once per
TTL; concurrent first calls with one token share one verification. Failures are never cached. Use cases
that change rights call ``invalidate()`` so a revoked profile stops working at once on this process.

Partners (SFTP; DESIGN §8):

* The user name is a partner code (``^[A-Z]{3}[0-9]{3}$``); a partner authenticates with any of its
  public keys from the store (read at each attempt, so a directory reload takes effect at once; compared
  by their SSH wire blob) or with its password when it has a ``password_hash`` (whether passwords are
  offered at all is the face's setting). A password of an unknown partner is still checked against a
  dummy hash, so the scrypt cost does not tell them apart.
* Every refused key and every wrong password counts, when it is refused: on its (partner, source address)
  pair, its source address and its partner (``engine.lockout``; an IPv6 source is its /64), each with its
  limit of ``LockoutSettings.policy``. Failures count within ``lockout_s``; the first lock of a key lasts
  ``first_lockout_s``, each further one twice the one before, up to ``lockout_s``. A locked key refuses
  every attempt, valid credentials included, and an attempt refused so is not counted.
* A password is a secret: its attempt is counted before it is checked (``Store.take_auth_attempt``), so
  parallel connections never get more passwords checked than a key's limit; the right one is forgiven
  once the login completes (``logged_in``). A public key is not a secret: whether it is authorised is
  looked up first, and only a refused key is counted (``Store.record_auth_failures``, which also refuses
  to count past a lock). A login forgives its pair's failures, also on the partner and the address (the
  partner's own fumbles), never a lock in force. Failure state is in the store: every daemon sharing it
  counts and enforces the same failures and locks, and a restart keeps them.
* A store error never locks anyone out: the attempt goes on to the credential check, which reads the
  store too (and fails the same way), and the error is logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from engine.clock import utcnow
from engine.errors import StoreError
from engine.flownumber import PARTNER_CODE
from engine.lockout import LockoutPolicy, attempt_limits, pair_key
from engine.permissions import Principal, PrincipalKind
from engine.secrets import hash_secret, secret_lookup_id, verify_secret
from engine.services.oauth import AccessToken, AccessTokens, looks_like_access_token
from engine.store.port import Store

log = structlog.get_logger("fluxdepot.sftp")  # partners log in over SFTP: its logger and event names

MAX_TOKEN_CHARS = 512  # a longer bearer token is refused unchecked: no scrypt over hostile megabytes


@dataclass
class _Entry:
    digest: bytes
    principal: Principal
    expires_at: float


class TokenAuthenticator:
    """Bearer token → ``Principal``, with a small TTL cache (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        access_tokens: AccessTokens | None = None,
    ) -> None:
        self._store = store
        self._access_tokens = access_tokens
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future[Principal | None]] = {}

    def invalidate(self) -> None:
        """Forget every cached principal (rights changed: the next call reads them again)."""
        self._cache.clear()

    async def principal_for_token(self, token: str) -> Principal | None:
        """The principal ``token`` belongs to; None when it is unknown, wrong or too long."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        entry = self._cache.get(digest)
        if entry is not None and hmac.compare_digest(entry.digest, digest):
            if entry.expires_at > self._clock():
                return entry.principal
            del self._cache[digest]
        pending = self._pending.get(digest)
        if pending is not None:  # another call is verifying this very token: share its answer
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            principal, valid_s = await self._verify(token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else has to
            raise
        finally:
            del self._pending[digest]
        future.set_result(principal)
        if principal is not None:
            self._cache[digest] = _Entry(digest, principal, self._clock() + min(self._ttl_s, valid_s))
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal | None, float]:
        """The token's principal and how long it may be cached (an access token: until it expires)."""
        if self._access_tokens is not None and looks_like_access_token(token):
            verified = self._access_tokens.verify(token)
            if verified is None:
                return None, 0.0
            login, expires_in_s = verified
            return await self._store.principal(PrincipalKind.TECHNICAL.value, login), expires_in_s
        credential = await self._store.find_credential(secret_lookup_id(token))
        if credential is None:
            return None, 0.0
        if not await asyncio.to_thread(verify_secret, token, credential.token_hash):
            return None, 0.0
        return await self._store.principal(credential.kind, credential.login), self._ttl_s

    async def client_credentials(self, client_id: str, client_secret: str) -> AccessToken | None:
        """OAuth2 client credentials (``engine.services.oauth``): a technical user's login and its bearer
        token → a short-lived access token; None when they do not match (or tokens are not configured)."""
        if self._access_tokens is None or not client_secret or len(client_secret) > MAX_TOKEN_CHARS:
            return None
        credential = await self._store.find_credential(secret_lookup_id(client_secret))
        if credential is None or credential.kind != PrincipalKind.TECHNICAL.value:
            return None
        if not hmac.compare_digest(credential.login.encode(), client_id.encode()):
            return None
        if not await asyncio.to_thread(verify_secret, client_secret, credential.token_hash):
            return None
        return self._access_tokens.issue(credential.login)


@dataclass(frozen=True)
class LockoutSettings:
    """How many refused attempts lock what, and for how long (see the module docstring)."""

    policy: LockoutPolicy = field(default_factory=LockoutPolicy)
    first_lockout_s: float = 60.0  # a key's first lock; each further one twice as long, up to lockout_s
    lockout_s: float = 3600.0  # the longest lock, and the window failures are counted in


def key_blob(public_key: str) -> bytes | None:
    """The SSH wire blob of an OpenSSH one-line public key (what a client presents), None when unreadable."""
    parts = public_key.split()
    if len(parts) < 2:
        return None
    try:
        return base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        return None


class PartnerAuthenticator:
    """An EDI partner's public key or password, with the lockouts of the module docstring; one per server,
    shared by every connection."""

    def __init__(self, store: Store, settings: LockoutSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._dummy_hash = hash_secret("fluxdepot: no such partner")
        self._writes: set[asyncio.Task[None]] = set()

    async def check_key(self, username: str, address: str, public_key: bytes) -> bool:
        """Whether ``username`` logs in from ``address`` with the key whose SSH wire blob is ``public_key``:
        looked up first, counted only when refused; authorised but locked is refused uncounted."""
        partner = _partner(username)
        if not await self._key_allowed(partner, public_key):
            await self._record_failure(partner, address)
            return False
        return not await self._locked(partner, address)

    async def check_password(self, username: str, address: str, password: str) -> bool:
        """Whether ``username`` logs in from ``address`` with ``password``: counted before it is checked."""
        partner = _partner(username)
        if not await self._take(partner, address):
            return False  # blocked: refused unchecked
        if await self._password_allowed(partner, password):
            return True
        await self._record_failure(partner, address, taken=True)
        return False

    def logged_in(self, partner: str, address: str) -> None:
        """A login completed: forgive its pair's failures (in the background, from a synchronous hook;
        ``drain`` waits for it, and every later attempt does too)."""
        task = asyncio.ensure_future(self._record_success(partner, address))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self) -> None:
        """Wait for the background writes of ``logged_in``."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _key_allowed(self, partner: str | None, public_key: bytes) -> bool:
        found = await self._store.get_partner(partner) if partner else None
        if found is None:
            return False
        for text in found.public_keys:
            blob = key_blob(text)
            if blob is None:
                log.warning("sftp_partner_key_invalid", partner=partner)
            elif blob == public_key:
                return True
        return False

    async def _password_allowed(self, partner: str | None, password: str) -> bool:
        found = await self._store.get_partner(partner) if partner else None
        encoded = found.password_hash if found is not None and found.password_hash else None
        ok = await asyncio.to_thread(verify_secret, password, encoded or self._dummy_hash)
        return ok and encoded is not None

    def _limits(self, partner: str | None, address: str) -> list[tuple[str, int]]:
        return attempt_limits(partner, address, self._settings.policy)

    async def _locked(self, partner: str | None, address: str) -> bool:
        await self.drain()  # logins that completed before this attempt are forgiven for it
        try:
            return await self._store.auth_locked([k for k, _ in self._limits(partner, address)], self._clock())
        except StoreError as exc:
            log.warning("sftp_auth_state_unavailable", error=str(exc))
            return False

    async def _take(self, partner: str | None, address: str) -> bool:
        await self.drain()
        try:
            return await self._store.take_auth_attempt(
                self._limits(partner, address), self._clock(), self._settings.lockout_s
            )
        except StoreError as exc:
            log.warning("sftp_auth_state_unavailable", error=str(exc))
            return True

    async def _record_failure(self, partner: str | None, address: str, *, taken: bool = False) -> None:
        try:
            locked = await self._store.record_auth_failures(
                self._limits(partner, address),
                self._clock(),
                self._settings.lockout_s,
                self._settings.first_lockout_s,
                taken=taken,
            )
        except StoreError as exc:
            log.warning("sftp_auth_failure_not_counted", address=address, partner=partner, error=str(exc))
            return
        for key in locked:
            kind, _, value = key.partition(":")
            log.warning("sftp_auth_locked", scope=kind, key=value, partner=partner, address=address)

    async def _record_success(self, partner: str, address: str) -> None:
        limits = self._limits(partner, address)
        pair = pair_key(partner, address)
        try:
            await self._store.clear_auth_failures(pair, [key for key, _ in limits if key != pair])
        except StoreError as exc:
            log.warning("sftp_auth_success_not_recorded", partner=partner, error=str(exc))


def _partner(username: str) -> str | None:
    return username if PARTNER_CODE.match(username) else None
