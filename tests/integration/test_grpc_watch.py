"""WatchFlows: every visible status change in commit order, resumable by cursor without loss or repeat."""

from __future__ import annotations

import asyncio
from pathlib import Path

from clients.models import FlowEvent
from engine.cpu_pool import CpuPool
from engine.permissions import Visibility
from tests.grpc_support import MANAGER, TECH, VIEWER, GrpcEnv, invoice

FLOWS = 12


async def _all_final(env: GrpcEnv, numbers: list[str]) -> None:
    while True:
        flows = [await env.harness.store.get_flow(n) for n in numbers]
        if all(f is not None and f.status.is_final for f in flows):
            return
        await asyncio.sleep(0.05)


async def test_reconnecting_with_the_last_cursor_loses_and_repeats_nothing(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A watcher disconnects mid-stream while flows are deposited and processed by real workers, then
    reconnects with the last cursor it saw: together the two streams hold every status change of every
    flow exactly once, in commit order."""
    env = await GrpcEnv.start(tmp_path, cpu_pool, workers=True)
    try:
        async with env.client(TECH) as depositor, env.client(MANAGER) as watcher:
            first: list[FlowEvent] = []
            numbers: list[str] = []

            async def deposit_all() -> None:
                for i in range(FLOWS):
                    receipt = await depositor.deposit(invoice(f"FA-W-{i}"), f"w{i}.xml")
                    numbers.append(receipt.flow_number)
                    await asyncio.sleep(0.02)

            depositing = asyncio.create_task(deposit_all())
            async for event in watcher.watch_flows(from_start=True):
                first.append(event)
                if len(first) == 15:
                    break  # disconnect mid-stream: flows are still arriving and being processed
            assert not depositing.done() or len(first) < FLOWS * 5
            await depositing
            await asyncio.wait_for(_all_final(env, numbers), timeout=60)
            expected = await env.harness.store.events_after(0, Visibility(everything=True), limit=10_000)
            assert len(expected) > len(first)

            second: list[FlowEvent] = []
            stream = watcher.watch_flows(cursor=first[-1].cursor)
            async with asyncio.timeout(30):
                async for event in stream:
                    second.append(event)
                    if len(first) + len(second) >= len(expected):
                        break
            await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await env.close()
    got = [(e.cursor, e.flow_number, e.status) for e in first + second]
    want = [(e.cursor, e.flow_number, e.status.name) for e in expected]
    assert got == want
    assert len({c for c, _, _ in got}) == len(got)  # no repeat


async def test_watch_flows_shows_only_visible_flows(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A user without flow follow-up on the supplier receives none of its events, even live."""
    env = await GrpcEnv.start(tmp_path, cpu_pool)
    try:
        async with env.client(TECH) as tech, env.client(VIEWER) as viewer:
            stream = viewer.watch_flows(from_start=True)
            waiting = asyncio.ensure_future(anext(stream))  # type: ignore[arg-type]
            await tech.deposit(invoice(), "hidden.xml")
            await env.harness.process_all()
            done, _ = await asyncio.wait({waiting}, timeout=1.5)
            assert not done
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await env.close()
