"""Throughput and memory of ``fluxdepot admin replay`` on a big store, beside the plain processing rate.

Builds a SQLite store of ``--flows`` stored flows (default 100,000), each a distinct UBL invoice of the demo
supplier recorded as integrated under ``en16931`` (the verdict the worker gives it, recorded directly: the
building is not what is measured), then runs the replay command's own code (``gateway.replay_command``
on a read-only store, ``--csv`` to a file) under ``--ruleset`` (default ``en16931+fr-flux2``: every flow
would be rejected, so every invoice is a row, the worst case for the output; ``en16931`` does the checks
(b) does, and writes no row). Reported: the replay's flows/s; the same run's
(b) ``flow_check`` rate and (c) whole-engine rate (``bench.pipeline``'s setup, ``--count`` invoices); and
the replaying process's RSS, sampled as it goes: its growth from the first ``--warm`` flows to the end
(flat memory: a few MiB whatever ``--flows``).

    .venv/bin/python -m bench.replay [--flows 100000] [--count 1000] [--workers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog

from bench.pipeline import _run, _valid_ubl, _whole_engine, whole_pipeline
from engine.blobs import BlobStore
from engine.cpu_pool import CpuPool
from engine.deposit import DepositRequest, DepositService
from engine.directory_file import load_directory
from engine.model import Channel, FlowRecord, FlowVerdict, InvoiceOutcome, Limits, RejectionRule, Rules, Ruleset
from engine.processing import judge_content
from engine.replay import FlowReplay, Replay, ReplayRequest
from engine.status import FlowEvent, FlowStatus
from engine.store import open_store
from engine.store.readonly import open_read_only
from engine.technical import DEFAULT_RULES, flow_check, warm_up
from gateway.replay_command import Output, run_replay
from tests import factory
from tests.harness import DEMO_DIRECTORY, DEMO_SUPPLIER_SIRET

E = FlowEvent
STEPS = (E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED, E.ALL_INTEGRATED)
BATCH = 200  # deposits in flight while building (group-committed)


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _template() -> FlowVerdict:
    """The verdict the worker records for the factory's integrating invoice under en16931."""
    content = factory.ubl_invoice(factory.integrating("TEMPLATE"))
    transport, checked = flow_check(content, "t.xml", None, Limits(), DEFAULT_RULES)
    assert checked is not None and not transport.rejected
    verdict = judge_content(
        checked, issuer_siret=DEMO_SUPPLIER_SIRET, directory=None, earlier={}, rule=RejectionRule.PARTIAL
    )
    return dataclasses.replace(verdict, ruleset_version=checked.ruleset_version)


class SampledReplay(Replay):
    """The replay, sampling this process's RSS every 500 flows."""

    samples: list[tuple[int, float]]
    replayed = 0

    async def replay(self, flow: FlowRecord, rules: Rules) -> FlowReplay:
        result = await super().replay(flow, rules)
        self.replayed += 1
        if self.replayed % 500 == 0:
            self.samples.append((self.replayed, _rss_mib()))
        return result


async def build(folder: Path, flows: int) -> None:
    """``flows`` distinct invoices deposited and recorded as integrated (group commits of ``BATCH``)."""
    store = await open_store(f"sqlite:///{folder / 'fluxdepot.db'}")
    await store.import_directory(load_directory(DEMO_DIRECTORY))
    deposits = DepositService(store, BlobStore(folder / "blobs"), Limits())
    template = _template()
    (outcome,) = template.invoices
    started = time.perf_counter()

    async def one(i: int) -> None:
        name, number = f"{i}.xml", f"RPL-{i:07d}"
        content = factory.ubl_invoice(factory.integrating(number))
        request = DepositRequest(name, content, Channel.API, "tech:TECH_1_papeterie@demo", DEMO_SUPPLIER_SIRET)
        flow = (await deposits.deposit(request)).flow
        facts = dataclasses.replace(outcome.facts, number=number, document=name)
        await store.record_verdict(
            flow.flow_number,
            FlowStatus.RECEIVED,
            STEPS,
            actor="bench",
            at=datetime.now(UTC),
            flow_findings=(),
            invoices=(InvoiceOutcome(facts, outcome.status, outcome.findings),),
            ruleset_version=template.ruleset_version,
        )

    for start in range(0, flows, BATCH):
        await asyncio.gather(*(one(i) for i in range(start, min(flows, start + BATCH))))
    await store.close()
    print(f"store built: {flows} integrated flows in {time.perf_counter() - started:.0f} s")


async def replay(folder: Path, workers: int, warm: int, ruleset: Ruleset) -> tuple[float, float, float, str]:
    """The replay command on the store; (flows/s, RSS at ``warm`` flows, peak RSS, summary)."""
    store = await open_read_only(f"sqlite:///{folder / 'fluxdepot.db'}")
    pool = CpuPool(workers, initializer=warm_up)
    await asyncio.to_thread(pool.warm_up, warm_up)
    replayer = SampledReplay(store, BlobStore(folder / "blobs"), Limits(), pool.run, in_flight=2 * workers)
    replayer.samples = samples = []
    out = io.StringIO()
    request = ReplayRequest(dataclasses.replace(DEFAULT_RULES, ruleset=ruleset))
    try:
        started = time.perf_counter()
        await run_replay(replayer, request, Output(folder / "diff.csv"), out, io.StringIO())
        elapsed = time.perf_counter() - started
        total = await replayer.count(request)
    finally:
        await asyncio.to_thread(pool.close)
        await store.close()
    at_warm = next((rss for n, rss in samples if n >= warm), samples[0][1] if samples else _rss_mib())
    peak = max((rss for _, rss in samples), default=_rss_mib())
    return total / elapsed, at_warm, peak, out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=100_000, help="stored flows replayed")
    parser.add_argument("--count", type=int, default=1000, help="invoices of the (b) and (c) processing rates")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--warm", type=int, default=1000, help="RSS growth is measured from this many flows on")
    parser.add_argument(
        "--ruleset", type=Ruleset.parse, default=Ruleset.EN16931_FR_FLUX2, help="en16931: same work as (b), no rows"
    )
    parser.add_argument("--keep", type=Path, help="build the store here and keep it (reused when it exists)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="fluxdepot-bench-replay-"))
    try:
        if not (folder / "fluxdepot.db").exists():
            folder.mkdir(parents=True, exist_ok=True)
            asyncio.run(build(folder, args.flows))
        rate, at_warm, peak, summary = asyncio.run(replay(folder, args.workers, args.warm, args.ruleset))
        print(summary, end="")
        print(f"replay: {rate:.1f} flows/s ({args.workers} validation processes)")
        print(f"replaying process RSS: {at_warm:.0f} MiB at {args.warm} flows, peak {peak:.0f} MiB "
              f"(growth {peak - at_warm:+.1f} MiB over {args.flows} flows)")  # fmt: skip
        sources = _valid_ubl()
        paths_dir = Path(tempfile.mkdtemp(prefix="fluxdepot-bench-replay-b-"))
        try:
            paths = []
            for i in range(args.count):
                target = paths_dir / f"{i:05d}-{sources[i % len(sources)].name}"
                shutil.copyfile(sources[i % len(sources)], target)
                paths.append(str(target))
            full_rate, _, _ = _run("(b) flow_check (transport + content)", whole_pipeline, paths, args.workers)
        finally:
            shutil.rmtree(paths_dir, ignore_errors=True)
        engine_rate, _, _ = asyncio.run(_whole_engine(sources, args.count, args.workers, 4 * args.workers))
        print(f"replay / (b): {rate / full_rate:.2f}   replay / (c): {rate / engine_rate:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
