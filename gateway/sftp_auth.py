"""SFTP authentication: asyncssh's hooks over the engine's partner authentication.

Invariants:

* The user name is a partner code. Whether a key or password is a partner's, and every lockout (what
  counts, when, on which keys, for how long, shared by every daemon through the store), is decided by
  ``engine.services.auth.PartnerAuthenticator``; its docstring states the rules.
* Passwords are offered only when ``password_auth`` is set.
* Every rejection, whatever its reason (unknown user, wrong key, wrong password, locked out), gives the
  same answer after the same delay (``auth_delay_s`` from the attempt's start).
* A connection is closed after ``max_attempts_per_connection`` rejections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

import asyncssh
import structlog

from engine.flownumber import PARTNER_CODE
from engine.lockout import LockoutPolicy
from engine.services.auth import LockoutSettings, PartnerAuthenticator

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
    def lockouts(self) -> LockoutSettings:
        policy = LockoutPolicy(self.max_auth_failures, self.max_address_failures, self.max_partner_failures)
        return LockoutSettings(policy, first_lockout_s=self.first_lockout_s, lockout_s=self.lockout_s)


class Credentials:
    """What every connection of one server shares: the engine's partner authenticator (``guard``), the
    settings, and the open connections (closed on shutdown)."""

    def __init__(self, guard: PartnerAuthenticator, settings: AuthSettings) -> None:
        self.guard = guard
        self.settings = settings
        self.connections: set[asyncssh.SSHServerConnection] = set()


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
        guard = self._credentials.guard
        return await self._answer(username, guard.check_key(username, self._address, key.public_data))

    async def validate_password(self, username: str, password: str) -> bool:
        guard = self._credentials.guard
        return await self._answer(username, guard.check_password(username, self._address, password))

    def auth_completed(self) -> None:
        self._authenticated = True
        username = self._conn.get_extra_info("username") if self._conn else None
        if username:
            self._credentials.guard.logged_in(username, self._address)
            log.info("sftp_login", partner=username, address=self._address)

    async def _answer(self, username: str, check: Awaitable[bool]) -> bool:
        """Await the engine's ``check``; a rejection answers at the uniform delay and counts towards the
        connection's limit."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        if await check:
            return True
        if PARTNER_CODE.match(username):
            self._tried.add(username)
        self._rejections += 1
        await asyncio.sleep(max(0.0, started + self._credentials.settings.auth_delay_s - loop.time()))
        if self._rejections >= self._credentials.settings.max_attempts_per_connection and self._conn:
            self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication failures")
        return False
