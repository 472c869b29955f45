"""The store contract for SFTP lockouts (``take_auth_attempt``, ``record_auth_failures``,
``clear_auth_failures``, ``auth_locked``) on SQLite and on PostgreSQL, with two stores standing for two
daemons where the backend allows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from engine.lockout import LockoutPolicy, attempt_limits
from engine.store.port import Store
from engine.store.sqlite import SqliteStore
from tests.integration.test_store_contract import StoreFactory, factory

__all__ = ["factory"]  # the fixture these tests use: one store factory per backend

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOUR_S, MINUTE = 3600.0, timedelta(minutes=1)
POLICY = LockoutPolicy(max_pair_failures=5, max_address_failures=20, max_partner_failures=8)


def limits(address: str, partner: str | None = "AAA001") -> list[tuple[str, int]]:
    return attempt_limits(partner, address, POLICY)


def keys(address: str, partner: str | None = "AAA001") -> list[str]:
    return [key for key, _ in limits(address, partner)]


@pytest.fixture
async def two_stores(factory: StoreFactory) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database (two daemons); SQLite's second is the first (one process per file here)."""
    first = await factory.open()
    second = await factory.open() if not isinstance(first, SqliteStore) else first
    try:
        yield first, second
    finally:
        if second is not first:
            await second.close()
        await first.close()


async def fail(
    store: Store, address: str, at: datetime, partner: str | None = "AAA001", only_pair: bool = False
) -> list[str]:
    """One refused key; ``only_pair``: counted on the pair alone (no address or partner limit in the way)."""
    counted = limits(address, partner)
    if only_pair:
        counted = [(key, limit) for key, limit in counted if key.startswith("pair:")]
    return await store.record_auth_failures(counted, at, HOUR_S, 60)


async def test_parallel_takes_never_pass_the_pair_limit(two_stores: tuple[Store, Store]) -> None:
    """30 attempts taken at once through two stores: exactly 5 (the pair's limit) are granted; their
    failures lock the pair once; the partner has 5 failures, not 30, and the pair's valid key elsewhere
    is not locked."""
    first, second = two_stores
    granted = await asyncio.gather(
        *(s.take_auth_attempt(limits("10.0.0.2"), T0, HOUR_S) for _ in range(15) for s in (first, second))
    )
    assert granted.count(True) == 5
    locked = [
        key
        for _ in range(5)
        for key in await first.record_auth_failures(limits("10.0.0.2"), T0, HOUR_S, 60, taken=True)
    ]
    assert locked == ["pair:AAA001@10.0.0.2"]
    for store in (first, second):
        assert await store.auth_locked(keys("10.0.0.2"), T0)
        assert not await store.auth_locked(keys("10.0.0.1"), T0)
    assert not await second.take_auth_attempt(limits("10.0.0.2"), T0 + MINUTE / 2, HOUR_S)  # locked
    for n in range(3):  # 5 + 3 = the partner's limit of 8 only if the 25 refused takes did not count
        assert await fail(second, f"10.0.1.{n}", T0) == ([] if n < 2 else ["partner:AAA001"])


async def test_failures_while_locked_do_not_count(two_stores: tuple[Store, Store]) -> None:
    """Failures of a locked pair are not counted anywhere: a hundred more from that address leave the
    partner unlocked for every other address."""
    first, second = two_stores
    for _ in range(5):
        await fail(first, "10.0.0.2", T0)
    for _ in range(100):
        assert await fail(second, "10.0.0.2", T0 + MINUTE / 2) == []
    assert not await first.auth_locked(keys("10.0.0.1"), T0 + MINUTE / 2)


async def test_locks_back_off_then_reset_after_a_login(two_stores: tuple[Store, Store]) -> None:
    """A pair locked again when its lock ends is locked twice as long (1, 2, 4 minutes, through either
    store); a login from the pair forgives its strikes, so its next lock is one minute again."""
    first, second = two_stores
    at = T0
    for minutes in (1, 2, 4):
        for n in range(5):
            locked = await fail((first, second)[n % 2], "10.0.0.2", at, only_pair=True)
        assert locked == ["pair:AAA001@10.0.0.2"]
        assert await first.auth_locked(keys("10.0.0.2"), at + minutes * MINUTE - timedelta(seconds=1))
        at += minutes * MINUTE
        assert not await second.auth_locked(keys("10.0.0.2"), at)
    await first.clear_auth_failures("pair:AAA001@10.0.0.2", ["addr:10.0.0.2", "partner:AAA001"])
    for _ in range(5):
        await fail(second, "10.0.0.2", at, only_pair=True)
    assert await first.auth_locked(keys("10.0.0.2"), at + MINUTE - timedelta(seconds=1))
    assert not await first.auth_locked(keys("10.0.0.2"), at + MINUTE)


async def test_the_partner_limit_locks_it_from_every_address(two_stores: tuple[Store, Store]) -> None:
    """Eight failures of AAA001 from eight addresses (none near its pair limit) lock AAA001 everywhere,
    also from an address that never failed; BBB002 and unknown users from those addresses are not locked."""
    first, second = two_stores
    locked = [key for n in range(8) for key in await fail((first, second)[n % 2], f"10.0.0.{n}", T0)]
    assert locked == ["partner:AAA001"]
    assert await second.auth_locked(keys("192.0.2.1"), T0 + MINUTE / 2)
    assert not await first.auth_locked(keys("10.0.0.1", "BBB002"), T0 + MINUTE / 2)
    assert not await first.auth_locked(keys("10.0.0.1", None), T0 + MINUTE / 2)


async def test_a_login_refunds_its_pairs_failures_but_keeps_a_lock(two_stores: tuple[Store, Store]) -> None:
    """A login forgives the failures of its pair on the partner and the address too (the partner's own
    fumbles), and a lock in force on the pair stays; a take is forgiven the same way."""
    first, second = two_stores
    for n in range(7):  # 7 of the partner's 8: 4 from 10.0.0.1, 3 from elsewhere
        await fail(first, "10.0.0.1" if n < 4 else f"10.0.2.{n}", T0)
    assert await second.take_auth_attempt(limits("10.0.0.1"), T0, HOUR_S)  # a password being checked: 8
    assert not await first.take_auth_attempt(limits("10.0.3.1"), T0, HOUR_S)  # the partner's limit is spent
    await second.clear_auth_failures("pair:AAA001@10.0.0.1", ["addr:10.0.0.1", "partner:AAA001"])  # it was right
    for n in range(4):  # 3 + 4 = 7: still under 8
        assert await fail(first, f"10.0.4.{n}", T0) == []
    assert await fail(first, "10.0.5.1", T0) == ["partner:AAA001"]
    for _ in range(5):
        await fail(second, "10.0.0.9", T0, "BBB002")
    await first.clear_auth_failures("pair:BBB002@10.0.0.9", ["addr:10.0.0.9", "partner:BBB002"])
    assert await second.auth_locked(keys("10.0.0.9", "BBB002"), T0 + MINUTE / 2)


async def test_old_windows_are_forgotten(two_stores: tuple[Store, Store]) -> None:
    """Failures of a window that ended count for nothing: four failures, an hour, then four more do not
    lock a pair whose limit is five."""
    first, second = two_stores
    for _ in range(4):
        await fail(first, "10.0.0.2", T0)
    for _ in range(4):
        assert await fail(second, "10.0.0.2", T0 + timedelta(hours=1, seconds=1)) == []
    assert not await first.auth_locked(keys("10.0.0.2"), T0 + timedelta(hours=1, seconds=1))
