"""Group commit of ``create_flow`` on SQLite: many concurrent deposits, few transactions, each durable."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import AlreadyExists
from engine.store.group_commit import GroupCommit
from engine.store.sqlite import SqliteStore
from tests.grpc_support import invoice
from tests.harness import Harness


async def test_concurrent_deposits_share_transactions(harness: Harness) -> None:
    """64 concurrent deposits (two with the same tracking id) give 63 distinct flows with distinct
    numbers in fewer transactions than deposits; the tracking-id retry returns the first flow."""
    store = harness.store
    assert isinstance(store, SqliteStore)
    before = store._creates.batches
    receipts = await asyncio.gather(
        *(harness.deposit(f"g{i}.xml", invoice(f"FA-G{i}")) for i in range(62)),
        harness.deposit("t.xml", invoice("FA-T"), tracking_id="same"),
        harness.deposit("t.xml", invoice("FA-T"), tracking_id="same"),
    )
    numbers = {r.flow.flow_number for r in receipts}
    assert len(numbers) == 63 and len(await store.all_flow_numbers()) == 63
    assert sum(r.already_deposited for r in receipts) == 1
    assert store._creates.batches - before < 64
    reopened = SqliteStore(store.path)  # what a crash right after the acknowledgements would find
    await reopened.open()
    try:
        assert set(await reopened.all_flow_numbers()) == numbers
    finally:
        await reopened.close()


async def test_a_failed_transaction_fails_every_caller_of_its_batch() -> None:
    """When the batch's transaction fails, each waiting caller gets the error; later batches still run."""
    calls: list[list[int]] = []

    async def run(items: list[int]) -> list[int | BaseException]:
        calls.append(list(items))
        await asyncio.sleep(0)
        if 13 in items:
            raise RuntimeError("disk on fire")
        return [AlreadyExists("dup") if i == 7 else i * 2 for i in items]

    group: GroupCommit[int, int] = GroupCommit(run)  # type: ignore[arg-type]
    ok = await asyncio.gather(*(group.submit(i) for i in range(5)))
    assert ok == [0, 2, 4, 6, 8] and len(calls) == 1
    results = await asyncio.gather(group.submit(7), group.submit(13), return_exceptions=True)
    assert isinstance(results[0], RuntimeError | AlreadyExists) and isinstance(results[1], RuntimeError)
    assert await group.submit(3) == 6
    with pytest.raises(AlreadyExists):
        await group.submit(7)
