"""The web portal's log-in and sessions: a directory user's login and password → a server-side session.

Passwords (DESIGN §6): the directory file holds each portal user's argon2id hash (never a password). A
password is verified off the event loop; an unknown login is verified against a dummy hash, so the time
taken does not tell logins apart. Every attempt is counted before its check, like an SFTP password
(``engine.services.auth.PartnerAuthenticator``, ``engine.lockout``): on its (login, source address) pair
``portal-pair:<login>@<source>``, its source ``portal-addr:<source>`` and its login ``portal-user:<login>``,
each with its ``[portal]`` limit, in the store's lockout rows shared by every daemon. A locked key refuses
every attempt, the right password included, and answers like a wrong one. A log-in forgives its pair's
failures (and takes them off the login's and the address's counts), never a lock in force.

Sessions: a log-in creates a new session (a new random id: an id known before the log-in is worth
nothing); its cookie carries the id, the store keeps only its SHA-256, the login, the creation and
last-use times and the session's CSRF secret. A session ends at log-out, after ``idle_s`` unused and
``absolute_s`` after its log-in, whichever comes first; an expired one is deleted when it is presented.
The user's rights are read from the store on every request, so a revoked profile takes effect at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.clock import utcnow
from engine.errors import StoreError
from engine.lockout import source_of
from engine.permissions import Principal, PrincipalKind
from engine.store.port import Store

log = structlog.get_logger("fluxdepot.portal")

SESSION_ID_BYTES = 32
MAX_LOGIN_CHARS = 128
MAX_PASSWORD_CHARS = 1024  # a longer password is refused unchecked: no hashing of hostile megabytes
TOUCH_EVERY_S = 30.0  # a session's last use is written at most this often (not on every request)


@dataclass(frozen=True)
class PortalAuthSettings:
    """``[portal]``: session lifetimes and log-in lockouts (see the module docstring)."""

    session_idle_s: float = 1800.0
    session_absolute_s: float = 43200.0
    max_login_failures: int = 5
    max_address_failures: int = 20
    max_user_failures: int = 50
    first_lockout_s: float = 60.0
    lockout_s: float = 900.0


@dataclass(frozen=True)
class PortalSession:
    """A live session: who it is, and the CSRF token its forms must post back."""

    login: str
    principal: Principal
    csrf_token: str


@dataclass(frozen=True)
class NewSession:
    """A log-in's result: ``session_id`` goes in the cookie, and only there."""

    session_id: str
    session: PortalSession


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class UserAuthenticator:
    """Log-in, sessions and log-out of the web portal (see the module docstring); one per daemon."""

    def __init__(self, store: Store, settings: PortalAuthSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._hasher = PasswordHasher()
        self._dummy_hash = self._hasher.hash("fluxdepot: no such portal user")

    async def login(self, login: str, password: str, address: str) -> NewSession | None:
        """A new session when ``password`` is ``login``'s and no lock applies; None otherwise (wrong login,
        wrong password and locked all look the same to the caller)."""
        login = login.strip()[:MAX_LOGIN_CHARS]
        limits = self._limits(login, address)
        now = self._clock()
        try:
            if not await self._store.take_auth_attempt(limits, now, self._settings.lockout_s):
                log.warning("portal_login_refused_locked", login=login, address=address)
                return None
        except StoreError as exc:  # a store error never locks anyone out; the check below reads it too
            log.warning("portal_auth_state_unavailable", error=str(exc))
        if not login or len(password) > MAX_PASSWORD_CHARS or not await self._password_ok(login, password):
            await self._failed(limits, login, address)
            return None
        principal = await self._store.principal(PrincipalKind.USER.value, login)
        if principal is None:
            await self._failed(limits, login, address)
            return None
        pair = limits[0][0]
        try:
            await self._store.clear_auth_failures(pair, [key for key, _ in limits[1:]])
        except StoreError as exc:
            log.warning("portal_login_success_not_recorded", login=login, error=str(exc))
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        csrf = secrets.token_urlsafe(SESSION_ID_BYTES)
        now = self._clock()  # the session starts now, not when the attempt began (hashing takes a while)
        await self._store.create_session(session_hash(session_id), login, csrf, now)
        await self._store.delete_expired_sessions(*self._cutoffs(now))
        log.info("portal_login", login=login, address=address)
        return NewSession(session_id, PortalSession(login, principal, csrf))

    async def session(self, session_id: str) -> PortalSession | None:
        """The live session whose cookie carries ``session_id``; None when unknown, expired or its user gone."""
        if not session_id or len(session_id) > 128:
            return None
        key = session_hash(session_id)
        found = await self._store.get_session(key)
        if found is None:
            return None
        now = self._clock()
        idle_before, created_before = self._cutoffs(now)
        if found.last_seen_at < idle_before or found.created_at < created_before:
            await self._store.delete_session(key)
            return None
        principal = await self._store.principal(PrincipalKind.USER.value, found.login)
        if principal is None:
            await self._store.delete_session(key)
            return None
        if (now - found.last_seen_at).total_seconds() >= min(TOUCH_EVERY_S, self._settings.session_idle_s / 10):
            await self._store.touch_session(key, now)
        return PortalSession(found.login, principal, found.csrf_secret)

    async def logout(self, session_id: str) -> None:
        """End the session: its cookie no longer works, on any daemon."""
        if session_id and len(session_id) <= 128:
            await self._store.delete_session(session_hash(session_id))

    def _cutoffs(self, now: datetime) -> tuple[datetime, datetime]:
        return (
            now - timedelta(seconds=self._settings.session_idle_s),
            now - timedelta(seconds=self._settings.session_absolute_s),
        )

    def _limits(self, login: str, address: str) -> list[tuple[str, int]]:
        source = source_of(address)
        s = self._settings
        return [
            (f"portal-pair:{login}@{source}", s.max_login_failures),
            (f"portal-addr:{source}", s.max_address_failures),
            (f"portal-user:{login}", s.max_user_failures),
        ]

    async def _password_ok(self, login: str, password: str) -> bool:
        encoded = await self._store.user_password_hash(login)
        return await asyncio.to_thread(self._verify, encoded or self._dummy_hash, password) and encoded is not None

    def _verify(self, encoded: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(encoded, password))
        except (VerificationError, InvalidHashError):
            return False

    async def _failed(self, limits: list[tuple[str, int]], login: str, address: str) -> None:
        s = self._settings
        try:
            locked = await self._store.record_auth_failures(
                limits, self._clock(), s.lockout_s, s.first_lockout_s, taken=True
            )
        except StoreError as exc:
            log.warning("portal_login_failure_not_counted", login=login, address=address, error=str(exc))
            return
        log.warning("portal_login_failed", login=login, address=address)
        for key in locked:
            scope, _, value = key.partition(":")
            log.warning("portal_login_locked", scope=scope, key=value, login=login, address=address)
