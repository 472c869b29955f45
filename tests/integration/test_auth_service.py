"""Authentication as every face asks for it (``engine.services.auth``), on a real SQLite store: bearer
tokens with their cache, and partners' keys and passwords with their lockouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest

from engine.directory import Partner
from engine.directory_file import load_directory
from engine.lockout import LockoutPolicy
from engine.permissions import PrincipalKind
from engine.secrets import hash_secret, secret_lookup_id
from engine.services.auth import MAX_TOKEN_CHARS, LockoutSettings, PartnerAuthenticator, TokenAuthenticator
from engine.store import open_store
from engine.store.port import Store
from tests.harness import DEMO_DIRECTORY, DEMO_SUPPLIER_SIRET

TECH = "demo-technical-token"
DEMO_KEY = DEMO_DIRECTORY.parent / "AAA001_ed25519.pub"
PASSWORD = "correct horse battery staple"


class Clock:
    """A clock the test moves by hand (seconds for the token cache, datetimes for lockouts)."""

    def __init__(self) -> None:
        self.s = 0.0

    def monotonic(self) -> float:
        return self.s

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.s)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{tmp_path / 'fluxdepot.db'}")
    try:
        await s.import_directory(load_directory(DEMO_DIRECTORY))
        await s.upsert_partner(Partner("BBB002", DEMO_SUPPLIER_SIRET, password_hash=hash_secret(PASSWORD)))
        yield s
    finally:
        await s.close()


async def test_token_to_principal_cached_until_ttl_or_invalidate(store: Store) -> None:
    """A verified token's principal is served from the cache for ``ttl_s``, even after the token was
    replaced in the store; ``invalidate`` or the end of the TTL make the next call read the store again.
    Unknown, empty and overlong tokens are None, never an exception."""
    clock = Clock()
    tokens = TokenAuthenticator(store, ttl_s=30.0, clock=clock.monotonic)
    principal = await tokens.principal_for_token(TECH)
    assert principal is not None and principal.kind is PrincipalKind.TECHNICAL
    await store.set_token("technical", principal.login, hash_secret("renewed"), secret_lookup_id("renewed"))
    assert await tokens.principal_for_token(TECH) == principal  # cached
    clock.s = 31.0
    assert await tokens.principal_for_token(TECH) is None  # TTL over: read again, replaced
    assert await tokens.principal_for_token("renewed") == principal
    await store.set_token("technical", principal.login, hash_secret(TECH), secret_lookup_id(TECH))
    assert await tokens.principal_for_token("renewed") == principal  # cached
    tokens.invalidate()
    assert await tokens.principal_for_token("renewed") is None
    for wrong in ("", "not-a-token", "x" * (MAX_TOKEN_CHARS + 1)):
        assert await tokens.principal_for_token(wrong) is None


async def test_concurrent_first_calls_share_one_answer(store: Store) -> None:
    """Many calls with one new token at once all get its principal (one verification, shared); a wrong
    token at once in many calls is None for each and is not cached."""
    tokens = TokenAuthenticator(store)
    answers = await asyncio.gather(*(tokens.principal_for_token(TECH) for _ in range(20)))
    assert len(set(answers)) == 1 and answers[0] is not None
    assert await asyncio.gather(*(tokens.principal_for_token("nope") for _ in range(5))) == [None] * 5


def _blob(public_key: str) -> bytes:
    return bytes(asyncssh.import_public_key(public_key).public_data)


async def test_partner_key_and_password_with_a_pair_lock(store: Store) -> None:
    """AAA001's key is accepted whatever its comment; another key, an unknown partner or a user name that
    is no partner code are refused. After the pair's limit of refused keys, the right key is refused from
    that address only, until the lock ends. A password is checked only for a partner that has one."""
    clock = Clock()
    policy = LockoutPolicy(max_pair_failures=2, max_address_failures=20, max_partner_failures=50)
    partners = PartnerAuthenticator(store, LockoutSettings(policy, first_lockout_s=10, lockout_s=60), clock.now)
    key = _blob(DEMO_KEY.read_text())
    other = bytes(asyncssh.generate_private_key("ssh-ed25519").public_data)
    assert await partners.check_key("AAA001", "10.0.0.1", key)
    assert not await partners.check_key("ZZZ999", "10.0.0.9", key)
    assert not await partners.check_key("root", "10.0.0.9", key)
    assert not await partners.check_key("AAA001", "10.0.0.2", other)
    assert not await partners.check_key("AAA001", "10.0.0.2", other)  # the pair's second failure: locked
    assert not await partners.check_key("AAA001", "10.0.0.2", key)
    assert await partners.check_key("AAA001", "10.0.0.1", key)
    clock.s = 11
    assert await partners.check_key("AAA001", "10.0.0.2", key)
    assert await partners.check_password("BBB002", "10.0.0.3", PASSWORD)
    partners.logged_in("BBB002", "10.0.0.3")
    await partners.drain()
    assert not await partners.check_password("BBB002", "10.0.0.3", "wrong")
    assert not await partners.check_password("AAA001", "10.0.0.3", PASSWORD)  # no password: refused
