"""A design measured before it is built: the flows' walk as a synchronous pump on one thread (issue 20).

Not the product. ``bench.pipeline`` (c) shows the engine process spending 1.2–1.7 ms of CPU per flow,
and (c1) that the store's own statements and rows take 0.6–0.8 ms of it at one flow per transaction:
the rest is the asyncio machinery around each flow (a task, futures, a thread hand-off per transaction,
1.7 transactions per flow). This sketch drives the same store functions and the same checks without it:

* one thread, one SQLite connection (``synchronous=NORMAL``, as the workers' writes), two validation
  processes each fed over its own pipe;
* each turn records the verdicts of the replies read so far and claims enough jobs to keep ``depth``
  checks queued per process, all in ONE transaction (``sqlite.write_judged``, ``sqlite.claim_next``);
* it waits with ``select``; with ``gather`` > 1 it lets a reply wait up to 4 ms for others, so that
  several verdicts share a transaction (the processes stay busy meanwhile: their queue is deeper).

``pump_async`` runs the same turns as one coroutine on the event loop with the product's parts
(``CpuPool``, the flows' writer thread): whether a batched worker that stays on asyncio would do.

What the thread leaves out, and a real pump would need: a check's deadline and memory limit, a process
that dies, leases' heartbeats and hand-back, flows claimed after a restart (not RECEIVED), the operator's
writes and the deposits' writer sharing the write lock, metrics. Those cost little per flow; the figures
printed are the per-flow costs. (b) is measured in the same run, before and after.

    .venv/bin/python -m bench.pump_sketch [--count 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import select
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.cpu import own_cpu_seconds
from bench.pipeline import _children_cpu_s, _deposited_store, _run, _valid_ubl, record_checked, repeated, whole_pipeline
from engine.cpu_pool import _read_frame, _write_frame
from engine.model import Limits
from engine.store.port import Claim
from engine.store.sqlite import claim_next
from engine.store.sqlite_database import SqliteSync
from engine.store.sqlite_db import connect_writer
from engine.technical import flow_check, warm_up

_READY = b"ready"
LINGER_S = 0.004


def _checker(conn: Connection) -> None:
    """A validation process: ``flow_check`` on each ``(bytes, file name)`` received, the result sent back."""
    warm_up()
    fd = conn.fileno()
    _write_frame(fd, _READY)
    limits = Limits()
    while (request := _read_frame(fd)) is not None:
        source, name = pickle.loads(request)  # noqa: S301 - our parent, on our own pipe
        _write_frame(fd, pickle.dumps(flow_check(source, name, None, limits), protocol=pickle.HIGHEST_PROTOCOL))


@dataclass
class _Checker:
    conn: Connection
    pid: int
    queued: list[Claim] = field(default_factory=list)  # sent, in the order the replies come


def pump(count: int, *, depth: int, gather: int) -> tuple[float, float, float, float]:
    """Deposit ``count`` flows, then take each to its verdict; (flows/s, parent CPU ms per flow, checks'
    CPU ms per flow, transactions per flow)."""
    folder = Path(tempfile.mkdtemp(prefix="fluxdepot-bench-pump-"))
    context = get_context("spawn")
    checkers: list[_Checker] = []
    handles = []
    try:
        path = asyncio.run(_deposited_store(folder, _valid_ubl(), count))
        for _ in range(2):
            ours, theirs = context.Pipe()
            handle = context.Process(target=_checker, args=(theirs,))
            handle.start()
            theirs.close()
            handles.append(handle)
            assert _read_frame(ours.fileno()) == _READY
            checkers.append(_Checker(ours, handle.pid or 0))
        conn = connect_writer(path)
        conn.execute("PRAGMA synchronous = NORMAL")
        db = SqliteSync(conn)
        by_fd = {c.conn.fileno(): c for c in checkers}
        replies: list[tuple[Claim, Any]] = []
        done = transactions = 0
        exhausted = lingered = False
        checks_before = sum(own_cpu_seconds(c.pid) for c in checkers)
        cpu_before, started = time.process_time(), time.perf_counter()
        while True:
            wanted = 0 if exhausted else sum(depth - len(c.queued) for c in checkers)
            if (replies and (len(replies) >= gather or lingered)) or (wanted and not replies):
                now = datetime.now(UTC)
                conn.execute("BEGIN IMMEDIATE")
                for claim, (_, content) in replies:
                    record_checked(db, claim, content, actor="worker:pump", at=now)
                done += len(replies)
                replies = []
                claims = []
                for _ in range(wanted):
                    leased = claim_next(db, "pump", now=now, expires=now + timedelta(seconds=30))
                    if leased is None:
                        exhausted = True
                        break
                    claims.append(leased)
                conn.execute("COMMIT")
                transactions += 1
                for claim in claims:
                    checker = min(checkers, key=lambda c: len(c.queued))
                    assert claim.flow is not None
                    request = (claim.content, claim.flow.file_name)
                    _write_frame(checker.conn.fileno(), pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
                    checker.queued.append(claim)
            busy = [fd for fd, c in by_fd.items() if c.queued]
            if not busy:
                if not replies:
                    break
                lingered = True  # nothing more will come: record what was read
                continue
            readable, _, _ = select.select(busy, [], [], LINGER_S if replies else 60)
            lingered = not readable
            for fd in readable:
                body = _read_frame(fd)
                assert body is not None, "a validation process died"
                replies.append((by_fd[fd].queued.pop(0), pickle.loads(body)))  # noqa: S301 - our child
        elapsed_s = time.perf_counter() - started
        parent_ms = (time.process_time() - cpu_before) * 1000 / count
        checks_ms = (sum(own_cpu_seconds(c.pid) for c in checkers) - checks_before) * 1000 / count
        conn.close()
        if done != count:
            raise SystemExit(f"the pump judged {done} of {count} flows")
    finally:
        for checker in checkers:
            checker.conn.close()
        for handle in handles:
            handle.join(10)
        shutil.rmtree(folder, ignore_errors=True)
    return count / elapsed_s, parent_ms, checks_ms, transactions / count


async def pump_async(count: int, *, in_flight: int, gather: int) -> tuple[float, float, float, float]:
    """The same turns on the event loop, with the product's parts: checks through ``CpuPool`` (deadline,
    memory limit, replacement of a dead process), each turn's verdicts and claims one call to the flows'
    writer thread (``SqliteDatabase.write_flows``, under the write lock). One coroutine drives every flow:
    no worker task, group commit or claim round trip per flow; ``in_flight`` checks at a time."""
    import logging

    import structlog

    from engine.cpu_pool import CpuPool
    from engine.store.sqlite import SqliteStore

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    folder = Path(tempfile.mkdtemp(prefix="fluxdepot-bench-pump-"))
    pool = CpuPool(2, initializer=warm_up)
    try:
        pool.warm_up(warm_up)
        store = SqliteStore(await _deposited_store(folder, _valid_ubl(), count))
        await store.open()
        limits = Limits()
        checks: dict[asyncio.Task[Any], Claim] = {}
        replies: list[tuple[Claim, Any]] = []
        done = transactions = 0
        exhausted = lingered = False

        def turn(db: SqliteSync, judged: list[tuple[Claim, Any]], wanted: int) -> list[Claim]:
            now = datetime.now(UTC)
            for claim, (_, content) in judged:
                record_checked(db, claim, content, actor="worker:pump", at=now)
            claims = []
            for _ in range(wanted):
                leased = claim_next(db, "pump", now=now, expires=now + timedelta(seconds=30))
                if leased is None:
                    break
                claims.append(leased)
            return claims

        checks_before = _children_cpu_s()
        cpu_before, started = time.process_time(), time.perf_counter()
        while True:
            wanted = 0 if exhausted else in_flight - len(checks)
            if (replies and (len(replies) >= gather or lingered)) or (wanted and not replies):
                judged, replies = replies, []
                claims = await store._db.write_flows(partial(turn, judged=judged, wanted=wanted), durable=False)
                transactions += 1
                done += len(judged)
                exhausted = len(claims) < wanted
                for claim in claims:
                    assert claim.flow is not None
                    args = (claim.content, claim.flow.file_name, None, limits)
                    checks[asyncio.ensure_future(pool.run(limits.validation_timeout_s, flow_check, *args))] = claim
            if not checks:
                if not replies:
                    break
                lingered = True
                continue
            finished, _ = await asyncio.wait(
                checks, timeout=LINGER_S if replies else None, return_when=asyncio.FIRST_COMPLETED
            )
            lingered = not finished
            replies.extend((checks.pop(task), task.result()) for task in finished)
        elapsed_s = time.perf_counter() - started
        parent_ms = (time.process_time() - cpu_before) * 1000 / count
        checks_ms = (_children_cpu_s() - checks_before) * 1000 / count
        await store.close()
        if done != count:
            raise SystemExit(f"the pump judged {done} of {count} flows")
    finally:
        pool.close()
        shutil.rmtree(folder, ignore_errors=True)
    return count / elapsed_s, parent_ms, checks_ms, transactions / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fluxdepot-bench-"))
    try:
        paths = repeated(_valid_ubl(), args.count, folder)
        before, _ = _run("(b) flow_check, before", whole_pipeline, paths, 2)
        results = []
        for depth, gather in ((2, 1), (3, 2)):
            label = f"pump, {depth} checks queued per process, verdicts gathered by {gather}"
            results.append((label, *pump(args.count, depth=depth, gather=gather)))
        for in_flight, gather in ((4, 1), (4, 2), (8, 2)):
            label = f"on the event loop, {in_flight} checks in flight, verdicts gathered by {gather}"
            results.append((label, *asyncio.run(pump_async(args.count, in_flight=in_flight, gather=gather))))
        after, _ = _run("(b) flow_check, after", whole_pipeline, paths, 2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    baseline = (before + after) / 2
    for label, rate, parent_ms, checks_ms, per_flow in results:
        print(
            f"{label}: {rate:.0f} flows/s, "
            f"{rate / baseline:.2f} of (b); parent {parent_ms:.2f} ms of CPU per flow, checks {checks_ms:.2f} ms, "
            f"{per_flow:.2f} transactions per flow; CPU-bound ratio {checks_ms / (checks_ms + parent_ms):.2f}"
        )


if __name__ == "__main__":
    main()
