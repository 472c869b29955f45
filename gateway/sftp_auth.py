"""SFTP authentication: partner code as user name, the partner's public keys, optional passwords, lockouts.

Invariants:

* The user name is a partner code (``^[A-Z]{3}[0-9]{3}$``); a partner authenticates with any of its
  public keys from the store (read at each attempt, so a directory reload takes effect at once) or, only
  when passwords are enabled and the partner has a ``password_hash``, with its password.
* Every rejection, whatever its reason (unknown user, wrong key, wrong password, locked out), gives the
  same answer after the same delay (``auth_delay_s`` from the attempt's start); passwords of unknown
  users are still checked against a dummy hash so the scrypt cost does not tell them apart.
* A connection that ends without authenticating after a rejection counts one failure for its source
  address and for each partner code it tried. ``max_auth_failures`` failures of a partner (or
  ``max_address_failures`` of an address) within ``lockout_s`` lock it for ``lockout_s``: every attempt is
  rejected, valid credentials included. A connection is closed after ``max_attempts_per_connection``
  rejections. Failure state is in the store (``Store.record_auth_failures``, ``engine.lockout``): every
  daemon sharing it counts and enforces the same failures and locks, and a restart keeps them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncssh
import structlog

from engine.clock import utcnow
from engine.errors import StoreError
from engine.flownumber import PARTNER_CODE
from engine.secrets import hash_secret, verify_secret
from engine.store.port import Store

log = structlog.get_logger("fluxdepot.sftp")


@dataclass(frozen=True)
class AuthSettings:
    password_auth: bool = False
    max_auth_failures: int = 5  # per partner, then locked for lockout_s (the portal: 5 failures, 1 hour)
    max_address_failures: int = 20  # per source address
    lockout_s: float = 3600.0
    auth_delay_s: float = 0.5  # every rejection is answered this long after the attempt started
    max_attempts_per_connection: int = 6


class AuthGuard:
    """Failure counts and lockouts per partner and per source address, kept in the store so that every
    daemon sharing it sees the same ones (see the module docstring and ``engine.lockout``)."""

    def __init__(self, store: Store, settings: AuthSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._writes: set[asyncio.Task[None]] = set()

    async def locked(self, partner: str | None, address: str) -> bool:
        keys = [f"addr:{address}"] + ([f"partner:{partner}"] if partner else [])
        await self.drain()  # failures of connections that ended before this attempt count for it
        try:
            return await self._store.auth_locked(keys, self._clock())
        except StoreError as exc:  # the credential check reads the store too, and fails the same way
            log.warning("sftp_auth_state_unavailable", error=str(exc))
            return False

    async def record_failure(self, partners: set[str], address: str) -> None:
        limits = [(f"addr:{address}", self._settings.max_address_failures)]
        limits += [(f"partner:{p}", self._settings.max_auth_failures) for p in sorted(partners)]
        try:
            locked = await self._store.record_auth_failures(limits, self._clock(), self._settings.lockout_s)
        except StoreError as exc:
            log.warning("sftp_auth_failure_not_counted", address=address, partners=sorted(partners), error=str(exc))
            return
        for key in locked:
            kind, _, value = key.partition(":")
            where = {"partner": value} if kind == "partner" else {"address": value}
            log.warning("sftp_auth_locked", lockout_s=self._settings.lockout_s, **where)

    async def record_success(self, partner: str) -> None:
        try:
            await self._store.clear_auth_failures(f"partner:{partner}")
        except StoreError as exc:
            log.warning("sftp_auth_success_not_recorded", partner=partner, error=str(exc))

    def in_background(self, write: Coroutine[Any, Any, None]) -> None:
        """Run ``write`` without waiting (from asyncssh's synchronous hooks); ``drain`` waits for it."""
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self) -> None:
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


class Credentials:
    """Checks a partner's credentials against the store; shared by every connection."""

    def __init__(self, store: Store, guard: AuthGuard, settings: AuthSettings) -> None:
        self._store = store
        self.guard = guard
        self.settings = settings
        self._dummy_hash = hash_secret("fluxdepot: no such partner")
        self.connections: set[asyncssh.SSHServerConnection] = set()  # open ones, closed on shutdown

    async def key_allowed(self, username: str, key: asyncssh.SSHKey) -> bool:
        if not PARTNER_CODE.match(username):
            return False
        partner = await self._store.get_partner(username)
        if partner is None:
            return False
        wanted = key.public_data
        for text in partner.public_keys:
            try:
                known = asyncssh.import_public_key(text)
            except asyncssh.KeyImportError:
                log.warning("sftp_partner_key_invalid", partner=username)
                continue
            if known.public_data == wanted:
                return True
        return False

    async def password_allowed(self, username: str, password: str) -> bool:
        partner = await self._store.get_partner(username) if PARTNER_CODE.match(username) else None
        encoded = partner.password_hash if partner is not None and partner.password_hash else None
        ok = await asyncio.to_thread(verify_secret, password, encoded or self._dummy_hash)
        return ok and encoded is not None


class PartnerSshServer(asyncssh.SSHServer):
    """One SSH connection's authentication (asyncssh calls these hooks)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._conn: asyncssh.SSHServerConnection | None = None
        self._address = "?"
        self._tried: set[str] = set()
        self._rejections = 0
        self._authenticated = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._credentials.connections.add(conn)
        peer = conn.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._credentials.connections.discard(self._conn)
        if not self._authenticated and self._rejections:
            self._credentials.guard.in_background(
                self._credentials.guard.record_failure(set(self._tried), self._address)
            )
            log.info(
                "sftp_auth_failed",
                address=self._address,
                partners=sorted(self._tried),
                attempts=self._rejections,
            )

    def begin_auth(self, username: str) -> bool:
        return True  # every user must authenticate, known or not

    def password_auth_supported(self) -> bool:
        return self._credentials.settings.password_auth

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return await self._decide(username, self._credentials.key_allowed(username, key))

    async def validate_password(self, username: str, password: str) -> bool:
        return await self._decide(username, self._credentials.password_allowed(username, password))

    def auth_completed(self) -> None:
        self._authenticated = True
        username = self._conn.get_extra_info("username") if self._conn else None
        if username:
            self._credentials.guard.in_background(self._credentials.guard.record_success(username))
            log.info("sftp_login", partner=username, address=self._address)

    async def _decide(self, username: str, check: Coroutine[Any, Any, bool]) -> bool:
        """Run ``check`` (a coroutine) unless locked out; a rejection answers at the uniform delay."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        partner = username if PARTNER_CODE.match(username) else None
        if await self._credentials.guard.locked(partner, self._address):
            check.close()
            ok = False
        else:
            ok = await check
        if ok:
            return True
        if partner:
            self._tried.add(partner)
        self._rejections += 1
        await asyncio.sleep(max(0.0, started + self._credentials.settings.auth_delay_s - loop.time()))
        if self._rejections >= self._credentials.settings.max_attempts_per_connection and self._conn:
            self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication failures")
        return False
