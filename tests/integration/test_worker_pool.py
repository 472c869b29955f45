"""The worker pool: concurrent workers, wake-ups, lease recovery on start, orderly stop, and a flow that
exhausts its validation process's memory among others."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.cpu_pool import CpuPool, ProcessLimits
from engine.pump import FlowPump
from engine.status import FlowEvent, FlowStatus
from engine.store.sqlite import SqliteStore
from engine.technical import warm_up
from engine.worker import WorkerPool, WorkerSettings
from tests import factory
from tests.harness import Harness, now

MIB = 1024 * 1024


BOTH_WALKS = True  # each test twice: the asyncio workers and the flows' pump (tests/conftest.py)


def pool_for(harness: Harness, **settings: float | int | bool) -> WorkerPool | FlowPump:
    """The asyncio workers, or with ``harness.pump`` the flows' pump as the daemon builds it on SQLite
    (with no workers, both only recover leases: the pool does it)."""
    chosen = WorkerSettings(**settings)  # type: ignore[arg-type]
    pool = WorkerPool(harness.store, harness.processor, chosen, clock=now)
    if not harness.pump or not chosen.workers:
        return pool
    assert isinstance(harness.store, SqliteStore)
    return FlowPump(harness.store, harness.processor, harness.pool, chosen, clock=now)


async def wait_until_final(harness: Harness, numbers: list[str], timeout_s: float = 60) -> list[FlowStatus]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        flows = [await harness.store.get_flow(n) for n in numbers]
        statuses = [f.status for f in flows if f is not None]
        if all(s.is_final or s is FlowStatus.WAITING_FOR_REPROCESSING for s in statuses):
            return statuses
        assert asyncio.get_running_loop().time() < deadline, statuses
        await asyncio.sleep(0.05)


async def test_pool_processes_deposits_as_they_arrive(harness: Harness) -> None:
    """Two workers woken by deposits (through the store) take 12 flows to INTEGRATED; the queue is empty
    afterwards."""
    pool = pool_for(harness, workers=2, poll_s=5)
    await pool.start()
    numbers = []
    for i in range(12):
        receipt = await harness.deposit(f"{i}.xml", factory.ubl_invoice(factory.integrating(f"POOL-{i}")))
        numbers.append(receipt.flow.flow_number)
    statuses = await wait_until_final(harness, numbers)
    await pool.stop(grace_s=5)
    assert statuses == [FlowStatus.INTEGRATED] * 12
    assert await harness.store.queue_depth() == 0


async def test_start_recovers_flows_left_in_progress_by_a_dead_worker(harness: Harness) -> None:
    """A flow a dead worker left IN_PROGRESS is requeued at start and processed to a final status."""
    receipt = await harness.deposit("a.xml", factory.ubl_invoice(factory.integrating("DEAD-1")))
    number = receipt.flow.flow_number
    claim = await harness.store.claim("dead-worker", now=now(), lease_s=3600)
    assert claim is not None
    for expected, event in [
        (FlowStatus.RECEIVED, FlowEvent.TRANSPORT_CHECKED),
        (FlowStatus.PROCESSED_SE_CPP, FlowEvent.QUEUED),
        (FlowStatus.WAITING_FOR_PROCESSING, FlowEvent.CLAIMED),
    ]:
        await harness.store.transition(number, expected, event, actor="worker:dead", at=now())
    pool = pool_for(harness, workers=1, exclusive=True)
    await pool.start()
    (status,) = await wait_until_final(harness, [number])
    await pool.stop(grace_s=5)
    assert status is FlowStatus.INTEGRATED
    history = await harness.store.history(number)
    assert FlowEvent.LEASE_EXPIRED in [c.event for c in history]
    assert all(c.at <= now() for c in history)  # recovery is stamped with the real time


async def test_second_lost_lease_holds_the_flow_for_an_operator(harness: Harness) -> None:
    """A flow whose lease is lost twice ends WAITING_FOR_REPROCESSING, not reprocessed forever."""
    receipt = await harness.deposit("a.xml", factory.ubl_invoice(factory.integrating("DEAD-2")))
    number = receipt.flow.flow_number
    for attempt in range(2):
        claim = await harness.store.claim(f"dead-{attempt}", now=now(), lease_s=3600)
        assert claim is not None and claim.flow_number == number
        pool = pool_for(harness, workers=0, exclusive=True)  # start() only recovers
        await pool.start()
        await pool.stop(grace_s=1)
    flow = await harness.store.get_flow(number)
    assert flow is not None and flow.status is FlowStatus.WAITING_FOR_REPROCESSING
    assert "PROCESSING_INTERRUPTED" in {f.code for f in await harness.store.flow_findings(number)}


async def test_stop_hands_back_unfinished_flows(harness: Harness) -> None:
    """Stopping with no grace loses nothing: unfinished flows are claimable again and finish later."""
    numbers = [
        (await harness.deposit(f"{i}.xml", factory.ubl_invoice(factory.integrating(f"STOP-{i}")))).flow.flow_number
        for i in range(6)
    ]
    pool = pool_for(harness, workers=2)
    await pool.start()
    await asyncio.sleep(0.3)
    await pool.stop(grace_s=0)
    for n in numbers:
        flow = await harness.store.get_flow(n)
        assert flow is not None
        assert flow.status.is_final or flow.status in (
            FlowStatus.RECEIVED,
            FlowStatus.PROCESSED_SE_CPP,
            FlowStatus.WAITING_FOR_PROCESSING,
            FlowStatus.IN_PROGRESS,
        )
    again = pool_for(harness, workers=2)
    await again.start()
    statuses = await wait_until_final(harness, numbers)
    await again.stop(grace_s=5)
    assert statuses == [FlowStatus.INTEGRATED] * 6


def element_bomb(number: str, elements: int) -> bytes:
    """A UBL invoice padded with ``elements`` empty elements: within the flow size and XML element
    budgets, but its tree takes ~120 bytes per element in the validation process."""
    invoice = factory.ubl_invoice(factory.integrating(number))
    return invoice.replace(b"</cbc:ID>", b"</cbc:ID><cbc:Note>" + b"<x/>" * elements + b"</cbc:Note>", 1)


@pytest.mark.parametrize("walk", ["processor", "pump"])
async def test_a_flow_past_the_process_memory_limit_ends_in_warning_and_others_integrate(
    tmp_path: Path, walk: str
) -> None:
    """Among flows checked at the same time by two workers, one whose check needs more memory than its
    process may use (1.9 M elements, ~690 MiB, in warm processes limited to 400 MiB) ends WARNING with
    CHECK_OUT_OF_MEMORY, not a wrong XML_NOT_WELL_FORMED; the other flows integrate, and a flow
    deposited afterwards integrates in the same pool."""
    cpu = CpuPool(2, initializer=warm_up, limits=ProcessLimits(memory_limit_bytes=400 * MIB))
    harness = await Harness.open(tmp_path, cpu)
    harness.pump = walk == "pump"
    try:
        await asyncio.to_thread(cpu.warm_up, warm_up)
        bomb = await harness.deposit("bomb.xml", element_bomb("MEM-BOMB", 1_900_000))
        others = [
            await harness.deposit(f"{i}.xml", factory.ubl_invoice(factory.integrating(f"MEM-{i}"))) for i in range(4)
        ]
        pool = pool_for(harness, workers=2, poll_s=0.05)
        await pool.start()
        numbers = [bomb.flow.flow_number, *(r.flow.flow_number for r in others)]
        statuses = await wait_until_final(harness, numbers)
        after = await harness.deposit("after.xml", factory.ubl_invoice(factory.integrating("MEM-AFTER")))
        (after_status,) = await wait_until_final(harness, [after.flow.flow_number])
        await pool.stop(grace_s=5)
        assert statuses == [FlowStatus.WARNING] + [FlowStatus.INTEGRATED] * 4
        assert after_status is FlowStatus.INTEGRATED
        codes = {f.code for f in await harness.store.flow_findings(bomb.flow.flow_number)}
        assert codes == {"CHECK_OUT_OF_MEMORY"}
    finally:
        await harness.close()
        cpu.close()
