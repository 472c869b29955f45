"""kill -9 the process running the workers mid-flow, restart it: no accepted flow is lost or stuck."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.audit import verify_chain
from engine.status import FlowStatus
from tests import factory
from tests.harness import Harness
from tests.integration.test_processing import zip_of

REPO = Path(__file__).resolve().parents[2]
KILL_CYCLES = 4  # kill -9 / restart cycles, each while flows are in flight
FLOWS = 120


def start_workers(root: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.worker_process", str(root)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    for _ in range(1000):  # log lines may come first; EOF (b"") means it died
        line = proc.stdout.readline()
        if line.strip() == b"ready" or not line:
            break
    assert line.strip() == b"ready", "the worker process died before it was ready"
    return proc


def kill_hard(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group: the workers and their validation processes die at once."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


async def statuses(harness: Harness, numbers: list[str]) -> list[FlowStatus]:
    return [f.status for n in numbers if (f := await harness.store.get_flow(n)) is not None]


def settled(status: FlowStatus) -> bool:
    return status.is_final or status is FlowStatus.WAITING_FOR_REPROCESSING


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_kill_9_mid_flow_loses_nothing(harness: Harness) -> None:
    """After several kill -9 / restart cycles every acknowledged flow ends final or held, history intact."""
    rng = random.Random(20261127)
    numbers = []
    for i in range(FLOWS):
        invoices = {f"inv{j}.xml": factory.ubl_invoice(factory.integrating(f"CRASH-{i}-{j}")) for j in range(4)}
        numbers.append((await harness.deposit(f"flow{i}.zip", zip_of(invoices))).flow.flow_number)

    kills = 0
    for _ in range(KILL_CYCLES):
        before = sum(settled(s) for s in await statuses(harness, numbers))
        proc = start_workers(harness.root)
        for _ in range(600):  # wait for progress, so that the kill lands while flows are being processed
            if sum(settled(s) for s in await statuses(harness, numbers)) > before:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0.0, 0.4))
        kill_hard(proc)
        kills += 1
        assert not all(settled(s) for s in await statuses(harness, numbers)), "killed after the work was done"

    proc = start_workers(harness.root)
    try:
        for _ in range(1200):
            current = await statuses(harness, numbers)
            if all(settled(s) for s in current):
                break
            await asyncio.sleep(0.1)
    finally:
        kill_hard(proc)

    final = await statuses(harness, numbers)
    assert len(final) == FLOWS, "an acknowledged flow disappeared"
    assert all(settled(s) for s in final), final
    assert final.count(FlowStatus.INTEGRATED) >= FLOWS // 2, final
    assert kills == KILL_CYCLES
    for n in numbers:
        assert verify_chain(await harness.store.history(n)) == []
    assert await harness.store.queue_depth() == 0
