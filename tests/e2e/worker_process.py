"""A process that runs the engine's worker pool on a data folder until it is killed (crash tests).

``python -m tests.e2e.worker_process DATA_DIR`` prints ``ready`` once its workers run.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from engine.blobs import BlobStore
from engine.cpu_pool import CpuPool
from engine.model import Limits
from engine.processing import FlowProcessor
from engine.store import open_store
from engine.worker import WorkerPool, WorkerSettings
from tests.harness import now


async def main(root: Path) -> None:
    store = await open_store(f"sqlite:///{root / 'fluxdepot.db'}")
    pool = CpuPool(2)
    processor = FlowProcessor(store, BlobStore(root / "blobs"), Limits(), pool.run, clock=now, actor="worker:crash")
    workers = WorkerPool(store, processor, WorkerSettings(workers=2, lease_s=5, poll_s=0.2, exclusive=True), clock=now)
    await workers.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
