"""The flows' pump (``engine.pump``) where it differs from the asyncio workers: checks queued ahead on a
process, a check that hangs or whose process dies while others wait behind it, a stop that abandons a
running check, and the validation pool's other callers (a portal check) during a backlog.

Its verdicts are the workers': ``tests/integration/test_processing.py`` and the other ``BOTH_WALKS``
modules run every processing test through both, and ``test_worker_pool.py`` every pool test."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.cpu_pool import CpuPool
from engine.model import Limits
from engine.pump import QUEUED_PER_PROCESS, FlowPump
from engine.status import FlowStatus
from engine.store.sqlite import SqliteStore
from engine.technical import flow_check, warm_up
from engine.worker import WorkerSettings
from tests import factory
from tests.harness import Harness, now
from tests.integration.test_processing import error_codes
from tests.integration.test_worker_pool import wait_until_final

HANG, DIE = b"<!-- hang -->", b"<!-- die -->"


def faulty_check(source: bytes | str, *args: Any) -> Any:
    """``flow_check``, except on a flow carrying a fault marker: it hangs, or its process dies (SIGKILL)."""
    if isinstance(source, bytes) and HANG in source:
        time.sleep(3600)
    if isinstance(source, bytes) and DIE in source:
        os.kill(os.getpid(), signal.SIGKILL)
    return flow_check(source, *args)


@pytest.fixture
def one_process() -> Iterator[CpuPool]:
    """One warm validation process: every flow waits behind the one before it."""
    pool = CpuPool(1, initializer=warm_up)
    pool.warm_up(warm_up)
    yield pool
    pool.close()


@pytest.fixture
async def lone(tmp_path: Path, one_process: CpuPool) -> AsyncIterator[Harness]:
    h = await Harness.open(tmp_path, one_process, Limits(validation_timeout_s=5))
    try:
        yield h
    finally:
        await h.close()


def pump_for(harness: Harness, **settings: Any) -> FlowPump:
    assert isinstance(harness.store, SqliteStore)
    chosen = WorkerSettings(**{"workers": 1, "poll_s": 0.05, **settings})
    return FlowPump(harness.store, harness.processor, harness.pool, chosen, clock=now, check=faulty_check)


def marked(number: str, marker: bytes) -> bytes:
    return factory.ubl_invoice(factory.integrating(number)).replace(b"?>", b"?>" + marker, 1)


async def deposit_all(harness: Harness, contents: list[bytes]) -> list[str]:
    return [(await harness.deposit(f"{i}.xml", c)).flow.flow_number for i, c in enumerate(contents)]


async def codes(harness: Harness, number: str) -> set[str]:
    return {f.code for f in await harness.store.flow_findings(number)}


@pytest.mark.parametrize(("marker", "code"), [(HANG, "CHECK_TIMEOUT"), (DIE, "CHECK_OUT_OF_MEMORY")])
async def test_a_check_that_hangs_or_dies_fails_its_flow_and_the_flows_queued_behind_it_integrate(
    lone: Harness, marker: bytes, code: str
) -> None:
    """One process, the faulty flow first and more flows queued behind it on the same pipe: the faulty
    one ends WARNING (the process killed at its deadline, or dead), the others had not started and are
    checked by the replacement process: all INTEGRATED."""
    followers = QUEUED_PER_PROCESS + 2
    contents = [marked("FAULT-0", marker)] + [
        factory.ubl_invoice(factory.integrating(f"FAULT-{i}")) for i in range(1, followers + 1)
    ]
    numbers = await deposit_all(lone, contents)
    pump = pump_for(lone)
    await pump.start()
    statuses = await wait_until_final(lone, numbers)
    await pump.stop(5)
    assert statuses == [FlowStatus.WARNING] + [FlowStatus.INTEGRATED] * followers
    assert await codes(lone, numbers[0]) == {code}
    assert pump.processed == followers + 1


async def test_leases_are_extended_while_a_check_runs(tmp_path: Path, one_process: CpuPool) -> None:
    """A check that runs for several leases (0.6 s leases, expired ones recovered every 0.2 s): the pump
    extends the lease of the flow it checks and of those queued behind it, so none is recovered (and
    claimed again, or held for an operator); the slow one ends on its own deadline."""
    harness = await Harness.open(tmp_path, one_process, Limits(validation_timeout_s=2))
    try:
        contents = [marked("LEASE-0", HANG), factory.ubl_invoice(factory.integrating("LEASE-1"))]
        numbers = await deposit_all(harness, contents)
        pump = pump_for(harness, lease_s=0.6, recover_every_s=0.2)
        await pump.start()
        statuses = await wait_until_final(harness, numbers)
        await pump.stop(5)
        assert statuses == [FlowStatus.WARNING, FlowStatus.INTEGRATED]
        assert await codes(harness, numbers[0]) == {"CHECK_TIMEOUT"}
        assert pump.processed == 2
    finally:
        await harness.close()


async def test_an_unexpected_error_in_the_pump_starts_it_again_and_loses_no_flow(lone: Harness) -> None:
    """The pump's thread meets an error it does not expect (its clock fails once, in its first turn): it
    logs it, starts again and takes every flow to its verdict."""
    failed: list[str] = []

    def clock() -> datetime:
        if threading.current_thread().name == "fluxdepot-pump" and not failed:
            failed.append("once")
            raise RuntimeError("the clock failed")
        return now()

    numbers = await deposit_all(lone, [factory.ubl_invoice(factory.integrating(f"AGAIN-{i}")) for i in range(3)])
    assert isinstance(lone.store, SqliteStore)
    settings = WorkerSettings(workers=1, poll_s=0.05)
    pump = FlowPump(lone.store, lone.processor, lone.pool, settings, clock=clock)
    await pump.start()
    statuses = await wait_until_final(lone, numbers)
    await pump.stop(5)
    assert failed == ["once"]
    assert statuses == [FlowStatus.INTEGRATED] * 3


async def test_stop_abandons_a_running_check_and_hands_its_flow_back(lone: Harness) -> None:
    """Past the grace, a check still running is abandoned (its process killed, another started) and its
    flow's job released as it was: RECEIVED, claimable again, no attempt counted."""
    (number,) = await deposit_all(lone, [marked("STOP-HANG", HANG)])
    pump = pump_for(lone)
    await pump.start()
    async with asyncio.timeout(10):
        while pump.holding == 0:  # noqa: ASYNC110 - the thread claims it
            await asyncio.sleep(0.02)
    started = time.monotonic()
    await pump.stop(0.5)
    assert time.monotonic() - started < 5
    flow = await lone.store.get_flow(number)
    assert flow is not None and flow.status is FlowStatus.RECEIVED
    claim = await lone.store.claim("after-stop", now=now(), lease_s=60)
    assert claim is not None and claim.flow_number == number and claim.attempts == 0
    assert await lone.pool.run(30, os.getpid) > 0  # the pool has a live process again


async def test_a_caller_of_the_pool_gets_a_process_during_a_backlog(lone: Harness) -> None:
    """While the pump has a backlog on the only process, a check asked of the pool (a portal check) runs
    within a few checks' time, not after the backlog. The backlog is one invoice deposited again and
    again: verdicts that share a transaction see each other, so only the first integrates it."""
    content = factory.ubl_invoice(factory.integrating("BACKLOG"))
    numbers = await deposit_all(lone, [content] * 150)
    pump = pump_for(lone)
    await pump.start()
    async with asyncio.timeout(30):
        while pump.processed < 3:  # noqa: ASYNC110 - the pump has the process
            await asyncio.sleep(0.01)
    asked = time.monotonic()
    pid = await lone.pool.run(30, os.getpid)
    waited_s = time.monotonic() - asked
    left = await lone.store.queue_depth()
    statuses = await wait_until_final(lone, numbers, timeout_s=120)
    await pump.stop(5)
    assert pid > 0 and waited_s < 2.0, waited_s
    assert left > 0  # it did not wait for the backlog
    assert statuses[0] is FlowStatus.INTEGRATED
    assert statuses[1:] == [FlowStatus.REJECTED] * 149
    assert "DUPLICATE_INVOICE" in error_codes(await lone.report(numbers[-1]))
