"""A real gRPC server on 127.0.0.1:0 in front of the real engine (``tests.harness``), for gRPC tests.

``GrpcEnv.start`` builds the server the daemon builds (``gateway.grpc_server.start_grpc_server``) on a
fresh store with the demo directory; with ``workers=True`` a real ``WorkerPool`` processes deposits as
they arrive (deposits wake it), otherwise tests call ``harness.process_all()`` when they choose.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from clients.client import AsyncClient
from engine.cpu_pool import CpuPool
from engine.deposit import DepositService
from engine.model import Limits
from engine.status import FlowStatus
from engine.worker import WorkerPool, WorkerSettings
from fluxdepot.v1 import admin_pb2_grpc, flows_pb2_grpc
from gateway.grpc_server import start_grpc_server
from tests.factory import integrating, ubl_invoice
from tests.harness import Harness, now

TECH = "demo-technical-token"
MANAGER = "demo-manager-token"
VIEWER = "demo-viewer-token"
SUPPLIER = "40483304800022"
PROVIDER = "55210055400013"
OTHER_SUPPLIER = "73282932000074"


def invoice(number: str = "FA-2026-0001", **changes: object) -> bytes:
    """A UBL invoice that integrates under the demo directory (unless ``changes`` say otherwise)."""
    return ubl_invoice(replace(integrating(number), **changes))  # type: ignore[arg-type]


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


@dataclass
class GrpcEnv:
    harness: Harness
    server: grpc.aio.Server
    port: int
    channel: grpc.aio.Channel
    workers: WorkerPool | None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def flows(self) -> flows_pb2_grpc.FlowServiceStub:
        return flows_pb2_grpc.FlowServiceStub(self.channel)

    @property
    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self.channel)

    def client(self, token: str | None) -> AsyncClient:
        return AsyncClient(self.target, token, timeout_s=30)

    @classmethod
    async def start(cls, root: Path, pool: CpuPool, *, workers: bool = False, limits: Limits | None = None) -> GrpcEnv:
        harness = await Harness.open(root, pool, limits)
        pool_ = None
        if workers:
            pool_ = WorkerPool(harness.store, harness.processor, WorkerSettings(workers=2, poll_s=0.2), clock=now)
            wake = pool_.wake
            harness.deposits = DepositService(
                harness.store, harness.blobs, harness.limits, on_deposit=lambda _flow: wake()
            )
            await pool_.start()
        server, port = await start_grpc_server(
            harness.store,
            harness.deposits,
            harness.limits,
            "127.0.0.1:0",
            watch_wait_s=0.5,
            stuck_after_s={FlowStatus.RECEIVED: 3600.0},
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return cls(harness, server, port, channel, pool_)

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        if self.workers is not None:
            with contextlib.suppress(Exception):
                await self.workers.stop(5)
        await self.harness.close()
