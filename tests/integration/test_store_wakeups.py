"""The store's own wake-ups (``engine.store.wakeups``), on SQLite and PostgreSQL: idle workers learn of new
work and the outbox of new verdicts from the store that committed them, never from a callback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.catalogue import finding
from engine.model import Channel
from engine.status import FlowEvent, FlowStatus
from engine.store.port import Store
from engine.store.sqlite import SqliteStore
from tests.factory import new_flow
from tests.pg import store_factory_parts

WAKE_S = 5.0  # a wait that returns before this was woken (its timeout is twice that)


def now() -> datetime:
    return datetime.now(UTC)


def sqlite_opener(tmp_path: Path) -> Callable[[], Awaitable[Store]]:
    async def open_store() -> Store:
        store = SqliteStore(str(tmp_path / "fluxdepot.db"))
        await store.open()
        return store

    return open_store


def postgres_opener(tmp_path: Path) -> Callable[[], Awaitable[Store]]:
    open_store, _ = store_factory_parts()
    return open_store  # type: ignore[no-any-return]


@pytest.fixture(params=["postgresql", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opener = {"sqlite": sqlite_opener, "postgresql": postgres_opener}[request.param](tmp_path)
    s = await opener()
    try:
        yield s
    finally:
        await s.close()


async def within(wait: Awaitable[object], seconds: float = WAKE_S) -> float:
    """How long ``wait`` took; fails past ``seconds``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(wait, seconds)
    return loop.time() - started


async def reject(store: Store, number: str) -> None:
    await store.record_verdict(
        number,
        FlowStatus.RECEIVED,
        FlowEvent.TECHNICAL_REJECTION,
        actor="worker:test",
        at=now(),
        flow_findings=[finding("FILE_EMPTY")],
        invoices=[],
        ruleset_version="",
    )


async def test_a_verdict_with_return_flows_wakes_wait_for_verdicts(store: Store) -> None:
    """The verdict of an EDI partner's flow wakes a waiter at once and counts; one committed before the
    wait began (after the count was read) returns it at once; an API flow's verdict wakes nobody."""
    seen = await store.wait_for_verdicts(-1, 0.0)
    edi = await store.create_flow(new_flow(1))
    waiter = asyncio.ensure_future(store.wait_for_verdicts(seen, 2 * WAKE_S))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await reject(store, edi.flow_number)
    await within(waiter)
    assert waiter.result() == seen + 1

    seen = waiter.result()
    other = await store.create_flow(new_flow(2))
    await reject(store, other.flow_number)
    assert await store.wait_for_verdicts(seen, 2 * WAKE_S) == seen + 1  # at once: it came after ``seen``

    seen += 1
    api = await store.create_flow(replace(new_flow(3), channel=Channel.API, partner_code=None))
    await reject(store, api.flow_number)
    assert await store.wait_for_verdicts(seen, 0.3) == seen  # no return flows: no wake-up


async def test_an_idle_worker_is_woken_by_a_deposit_and_by_a_release(store: Store) -> None:
    """After a claim found nothing, a new flow wakes ``wait_for_work`` at once, and so does a held flow
    released back to the queue by an operator (ADMIN_RELEASE)."""
    assert await store.claim("w", now=now(), lease_s=30) is None
    waiter = asyncio.ensure_future(store.wait_for_work(2 * WAKE_S))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    flow = await store.create_flow(new_flow(1))
    await within(waiter)

    claim = await store.claim("w", now=now(), lease_s=30)
    assert claim is not None and claim.flow_number == flow.flow_number
    await store.transition(flow.flow_number, FlowStatus.RECEIVED, FlowEvent.HOLD, actor="op", at=now())
    assert await store.claim("w", now=now(), lease_s=30) is None
    waiter = asyncio.ensure_future(store.wait_for_work(2 * WAKE_S))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.transition(
        flow.flow_number, FlowStatus.WAITING_FOR_REPROCESSING, FlowEvent.ADMIN_RELEASE, actor="op", at=now()
    )
    await within(waiter)
    claim = await store.claim("w", now=now(), lease_s=30)
    assert claim is not None and claim.flow_number == flow.flow_number


async def test_work_enqueued_between_a_claim_and_the_wait_is_not_missed(tmp_path: Path) -> None:
    """SQLite: a flow committed after a claim looked (and found nothing) but before the worker began to
    wait ends the wait at once: the claim noted where the store's count stood."""
    store = await sqlite_opener(tmp_path)()
    try:
        assert await store.claim("w", now=now(), lease_s=30) is None
        await store.create_flow(new_flow(1))
        assert await within(store.wait_for_work(2 * WAKE_S)) < 1.0
    finally:
        await store.close()
