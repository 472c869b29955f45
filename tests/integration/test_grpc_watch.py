"""WatchFlows: every visible status change in commit order, resumable by cursor without loss or repeat."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from clients.models import FlowEvent
from engine.cpu_pool import CpuPool
from engine.permissions import Visibility
from tests.grpc_support import MANAGER, OTHER_SUPPLIER, TECH, VIEWER, GrpcEnv, invoice

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


HIDDEN_DEPOSITOR = "tech:hidden@other"  # deposits for OTHER_SUPPLIER, on which MANAGER has no follow-up
IDLE_WINDOW_S = 2.0
MAX_IDLE_CPU_S = 0.5  # a spinning stream burns ~IDLE_WINDOW_S; an idle one a few hundredths


async def _hidden_events(env: GrpcEnv, *, process: bool) -> None:
    """Status changes MANAGER may not see: a flow of OTHER_SUPPLIER deposited by someone else."""
    await env.harness.deposit("hidden.xml", invoice("FA-HIDDEN"), issuer=OTHER_SUPPLIER, depositor=HIDDEN_DEPOSITOR)
    if process:
        await env.harness.process_all()


async def _cpu_while_pending(pending: asyncio.Future[object]) -> float:
    """The process's CPU seconds over ``IDLE_WINDOW_S`` during which ``pending`` must not complete."""
    started = time.process_time()
    done, _ = await asyncio.wait({pending}, timeout=IDLE_WINDOW_S)
    used = time.process_time() - started
    assert not done, "the stream sent an event the caller may not see"
    return used


async def test_watch_flows_idles_while_only_hidden_events_are_newer(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A user who follows one structure watches every flow while events of another structure are written:
    the server stays idle (its CPU time over 2 s stays far below a spinning loop's), sends none of them,
    and a later visible event still arrives."""
    env = await GrpcEnv.start(tmp_path, cpu_pool)
    try:
        async with env.client(TECH) as tech, env.client(MANAGER) as watcher:
            stream = watcher.watch_flows(from_start=True)
            first = (await tech.deposit(invoice("FA-SEEN-1"), "seen1.xml")).flow_number
            await env.harness.process_all()
            async with asyncio.timeout(10):  # the stream is live: the visible flow's changes came
                seen = [await anext(stream) for _ in range(5)]  # type: ignore[arg-type]
            assert (seen[0].flow_number, seen[-1].status) == (first, "INTEGRATED")
            await _hidden_events(env, process=True)
            pending = asyncio.ensure_future(anext(stream))  # type: ignore[arg-type]
            cpu_s = await _cpu_while_pending(pending)
            later = (await tech.deposit(invoice("FA-SEEN-2"), "seen2.xml")).flow_number
            async with asyncio.timeout(10):
                event = await pending
            await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await env.close()
    assert cpu_s < MAX_IDLE_CPU_S, f"{cpu_s:.2f} s of CPU in {IDLE_WINDOW_S} s idle"
    assert (event.flow_number, event.status) == (later, "RECEIVED")


async def test_watch_flow_idles_while_other_flows_change(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """Watching one flow while only other flows change keeps the server idle (CPU time over 2 s far below
    a spinning loop's); the flow's own changes then arrive up to its final status, which ends the stream."""
    env = await GrpcEnv.start(tmp_path, cpu_pool)
    try:
        async with env.client(TECH) as tech, env.client(MANAGER) as watcher:
            number = (await tech.deposit(invoice("FA-ONE"), "one.xml")).flow_number
            stream = watcher.watch_flow(number)
            async with asyncio.timeout(10):
                assert (await anext(stream)).status == "RECEIVED"  # type: ignore[arg-type]
            await _hidden_events(env, process=False)
            pending = asyncio.ensure_future(anext(stream))  # type: ignore[arg-type]
            cpu_s = await _cpu_while_pending(pending)
            await env.harness.process_all()
            async with asyncio.timeout(10):
                statuses = [(await pending).status] + [e.status async for e in stream]
    finally:
        await env.close()
    assert cpu_s < MAX_IDLE_CPU_S, f"{cpu_s:.2f} s of CPU in {IDLE_WINDOW_S} s idle"
    assert statuses == ["PROCESSED_SE_CPP", "WAITING_FOR_PROCESSING", "IN_PROGRESS", "INTEGRATED"]
