"""SFTP authentication: partner code as user name, the partner's public keys, optional passwords, lockouts.

Invariants:

* The user name is a partner code (``^[A-Z]{3}[0-9]{3}$``); a partner authenticates with any of its
  public keys from the store (read at each attempt, so a directory reload takes effect at once) or, only
  when passwords are enabled and the partner has a ``password_hash``, with its password.
* Every rejection, whatever its reason (unknown user, wrong key, wrong password, locked out), gives the
  same answer after the same delay (``auth_delay_s`` from the attempt's start); passwords of unknown
  users are still checked against a dummy hash so the scrypt cost does not tell them apart.
* Every refused key and every wrong password counts, when it is refused, not when its connection ends:
  on its (partner, source address) pair, its source address and its partner (``engine.lockout``; an IPv6
  source is its /64). ``max_auth_failures`` failures of a pair lock that pair only: the partner's valid
  key from another address still gets in. ``max_address_failures`` from one address lock the address,
  whatever the user name; ``max_partner_failures`` of a partner from all addresses together lock the
  partner everywhere. Failures count within ``lockout_s``; the first lock of a key lasts
  ``first_lockout_s``, each further one twice the one before, up to ``lockout_s``. A locked key refuses
  every attempt, valid credentials included, and an attempt refused so is not counted.
* A password is a secret: its attempt is counted before it is checked (``Store.take_auth_attempt``), so
  parallel connections never get more passwords checked than a key's limit; the right one is forgiven
  once the login completes. A public key is not a secret: whether it is authorised is looked up first,
  and only a refused key is counted (``Store.record_auth_failures``, which also refuses to count past a
  lock). A login forgives its pair's failures, also on the partner and the address (the partner's own
  fumbles), never a lock in force. A connection is closed after ``max_attempts_per_connection``
  rejections. Failure state is in the store: every daemon sharing it counts and enforces the same
  failures and locks, and a restart keeps them.
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
from engine.lockout import LockoutPolicy, attempt_limits, pair_key
from engine.secrets import hash_secret, verify_secret
from engine.store.port import Store

log = structlog.get_logger("fluxdepot.sftp")


@dataclass(frozen=True)
class AuthSettings:
    password_auth: bool = False
    max_auth_failures: int = 5  # per (partner, source address): then that pair is locked
    max_address_failures: int = 20  # per source address, whatever the user name
    max_partner_failures: int = 50  # per partner from every address: then the partner is locked everywhere
    first_lockout_s: float = 60.0  # a key's first lock; each further one twice as long, up to lockout_s
    lockout_s: float = 3600.0  # the longest lock, and the window failures are counted in
    auth_delay_s: float = 0.5  # every rejection is answered this long after the attempt started
    max_attempts_per_connection: int = 6

    @property
    def policy(self) -> LockoutPolicy:
        return LockoutPolicy(self.max_auth_failures, self.max_address_failures, self.max_partner_failures)


class AuthGuard:
    """Failure counts and lockouts per (partner, address), per address and per partner, kept in the store
    so that every daemon sharing it sees the same ones (see the module docstring and ``engine.lockout``).
    A store error never locks anyone out: the attempt goes on to the credential check, which reads the
    store too (and fails the same way), and the error is logged."""

    def __init__(self, store: Store, settings: AuthSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._settings = settings
        self._policy = settings.policy
        self._clock = clock
        self._writes: set[asyncio.Task[None]] = set()

    def _limits(self, partner: str | None, address: str) -> list[tuple[str, int]]:
        return attempt_limits(partner, address, self._policy)

    async def locked(self, partner: str | None, address: str) -> bool:
        """Whether an attempt with authorised credentials must still be refused."""
        await self.drain()  # logins that completed before this attempt are forgiven for it
        try:
            return await self._store.auth_locked([k for k, _ in self._limits(partner, address)], self._clock())
        except StoreError as exc:
            log.warning("sftp_auth_state_unavailable", error=str(exc))
            return False

    async def take(self, partner: str | None, address: str) -> bool:
        """Count an attempt before its secret is checked; False: blocked, refuse it unchecked."""
        await self.drain()
        try:
            return await self._store.take_auth_attempt(
                self._limits(partner, address), self._clock(), self._settings.lockout_s
            )
        except StoreError as exc:
            log.warning("sftp_auth_state_unavailable", error=str(exc))
            return True

    async def record_failure(self, partner: str | None, address: str, *, taken: bool = False) -> None:
        """A refused attempt (``taken``: counted already by ``take``); logs the locks it set."""
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

    async def record_success(self, partner: str, address: str) -> None:
        """A login: the pair's failures are forgiven, on the partner and the address too."""
        limits = self._limits(partner, address)
        pair = pair_key(partner, address)
        try:
            await self._store.clear_auth_failures(pair, [key for key, _ in limits if key != pair])
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
        self._tried: set[str] = set()  # partner codes tried, for the log
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
        if not self._authenticated and self._rejections:  # each rejection was counted when it was answered
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
        return await self._decide(username, self._credentials.key_allowed(username, key), secret=False)

    async def validate_password(self, username: str, password: str) -> bool:
        return await self._decide(username, self._credentials.password_allowed(username, password), secret=True)

    def auth_completed(self) -> None:
        self._authenticated = True
        username = self._conn.get_extra_info("username") if self._conn else None
        if username:
            self._credentials.guard.in_background(self._credentials.guard.record_success(username, self._address))
            log.info("sftp_login", partner=username, address=self._address)

    async def _decide(self, username: str, check: Coroutine[Any, Any, bool], *, secret: bool) -> bool:
        """Run ``check`` (a coroutine) unless locked out, counting the attempt as the module docstring
        says (a secret before its check, a public key after); a rejection answers at the uniform delay."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        partner = username if PARTNER_CODE.match(username) else None
        guard = self._credentials.guard
        if secret:
            taken = await guard.take(partner, self._address)
            ok = taken and await check
            if not taken:
                check.close()
            elif not ok:
                await guard.record_failure(partner, self._address, taken=True)
        else:
            ok = await check
            if ok:
                ok = not await guard.locked(partner, self._address)  # authorised, but locked: not counted
            else:
                await guard.record_failure(partner, self._address)
        if ok:
            return True
        if partner:
            self._tried.add(partner)
        self._rejections += 1
        await asyncio.sleep(max(0.0, started + self._credentials.settings.auth_delay_s - loop.time()))
        if self._rejections >= self._credentials.settings.max_attempts_per_connection and self._conn:
            self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication failures")
        return False
