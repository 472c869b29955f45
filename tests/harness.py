"""The engine wired as the daemon wires it (store, blobs, deposit service, processor), for tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.blobs import BlobStore
from engine.cpu_pool import CpuPool
from engine.deposit import DepositReceipt, DepositRequest, DepositService
from engine.directory_file import load_directory
from engine.model import Channel, FlowRecord, Limits
from engine.processing import FlowProcessor
from engine.pump import FlowPump
from engine.report import Report, build_report, report_dict
from engine.store import open_store
from engine.store.port import Store
from engine.store.sqlite import SqliteStore
from engine.worker import WorkerSettings

REPO = Path(__file__).resolve().parent.parent
DEMO_DIRECTORY = REPO / "config" / "demo" / "directory.toml"
DEMO_SUPPLIER_SIRET = "40483304800022"
DEMO_PROVIDER_SIRET = "55210055400013"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Harness:
    root: Path
    store: Store
    blobs: BlobStore
    limits: Limits
    deposits: DepositService
    processor: FlowProcessor
    pool: CpuPool
    pump: bool = False  # process_all through the flows' pump (engine.pump), as the daemon on SQLite

    @classmethod
    async def open(cls, root: Path, pool: CpuPool, limits: Limits | None = None) -> Harness:
        store = await open_store(f"sqlite:///{root / 'fluxdepot.db'}")
        await store.import_directory(load_directory(DEMO_DIRECTORY))
        blobs = BlobStore(root / "blobs")
        limits = limits or Limits()
        deposits = DepositService(store, blobs, limits)
        processor = FlowProcessor(store, blobs, limits, pool.run, clock=now, actor="worker:test")
        return cls(root, store, blobs, limits, deposits, processor, pool)

    def with_limits(self, limits: Limits) -> Harness:
        """The same store and blobs, judged under other limits (e.g. a tiny validation timeout)."""
        deposits = DepositService(self.store, self.blobs, limits)
        processor = FlowProcessor(self.store, self.blobs, limits, self.pool.run, clock=now, actor="worker:test")
        return replace(self, limits=limits, deposits=deposits, processor=processor)

    def storing_blob_files(self) -> Harness:
        """The same store, with every deposit's bytes in a blob file, as bigger flows' are (small ones are
        otherwise kept in the store with their row)."""
        return replace(self, deposits=DepositService(self.store, self.blobs, self.limits, inline_max_bytes=0))

    async def close(self) -> None:
        await self.store.close()

    async def deposit(
        self,
        name: str,
        content: bytes,
        *,
        issuer: str = DEMO_SUPPLIER_SIRET,
        channel: Channel = Channel.API,
        depositor: str = "tech:TECH_1_papeterie@demo",
        **kwargs: object,
    ) -> DepositReceipt:
        request = DepositRequest(
            file_name=name,
            content=content,
            channel=channel,
            depositor=depositor,
            issuer_siret=issuer,
            **kwargs,  # type: ignore[arg-type]
        )
        return await self.deposits.deposit(request)

    async def process_all(self) -> list[FlowRecord]:
        """Process queued flows until the queue is empty: one worker, deterministic, or with ``pump`` the
        daemon's pump on SQLite; the flows as their verdicts left them, in the order those came."""
        if self.pump:
            return await self._pump_all()
        done = []
        while (claim := await self.store.claim("test-worker", now=now(), lease_s=60)) is not None:
            done.append(await self.processor.process(claim))
        return done

    async def _pump_all(self) -> list[FlowRecord]:
        assert isinstance(self.store, SqliteStore)
        done: list[FlowRecord] = []
        settings = WorkerSettings(workers=1, poll_s=0.05, exclusive=False)  # leases held by a test stay held
        pump = FlowPump(self.store, self.processor, self.pool, settings, clock=now, observer=_Collect(done))
        await pump.start()
        try:
            async with asyncio.timeout(120):
                while await self.store.queue_depth():  # noqa: ASYNC110 - polls the store
                    await asyncio.sleep(0.02)
        finally:
            await pump.stop(5)
        return done

    async def deposit_and_process(self, name: str, content: bytes, **kwargs: object) -> FlowRecord:
        receipt = await self.deposit(name, content, **kwargs)
        await self.process_all()
        flow = await self.store.get_flow(receipt.flow.flow_number)
        assert flow is not None
        return flow

    async def report(self, flow_number: str) -> dict[str, Any]:
        """The flow's report as its JSON rendering reads (``engine.report.report_dict``)."""
        return report_dict(await self.integration_report(flow_number))

    async def integration_report(self, flow_number: str) -> Report:
        flow = await self.store.get_flow(flow_number)
        assert flow is not None
        return build_report(
            flow,
            await self.store.history(flow_number),
            await self.store.flow_findings(flow_number),
            await self.store.invoices(flow_number),
            ruleset_version=await self.store.ruleset_version(flow_number) or "",
            engine_version="test",
        )


@dataclass
class _Collect:
    """A ``FlowObserver`` keeping each verdict's flow."""

    flows: list[FlowRecord]

    def flow_deposited(self, flow: FlowRecord) -> None:
        return None

    def flow_judged(self, flow: FlowRecord, seconds: float) -> None:
        self.flows.append(flow)
