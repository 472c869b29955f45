"""A real gRPC server on 127.0.0.1:0 in front of the real engine (``tests.harness``), for gRPC tests.

``GrpcEnv.start`` builds the server the daemon builds (``gateway.grpc_server.start_grpc_server``, in
front of the application layer ``engine.services``) on a fresh store with the demo directory; with
``workers=True`` a real ``WorkerPool`` processes deposits as they arrive (the store wakes it), otherwise
tests call ``harness.process_all()`` when they choose.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import grpc
from grpc_health.v1._async import HealthServicer

from clients.client import AsyncClient
from engine.cpu_pool import CpuPool
from engine.model import Limits
from engine.services.admin import AdminService
from engine.services.flows import FlowsService
from engine.services.watch import WatchService
from engine.status import FlowStatus
from engine.validation.rulesets import ruleset_problem
from engine.worker import WorkerPool, WorkerSettings
from fluxdepot.v1 import admin_pb2_grpc, flows_pb2_grpc
from gateway.grpc_auth import Authenticator
from gateway.grpc_server import TlsFiles, start_grpc_server
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


async def serve(
    harness: Harness, listen: str = "127.0.0.1:0", *, tls: TlsFiles | None = None
) -> tuple[grpc.aio.Server, int]:
    """The daemon's gRPC server over ``harness``: its services built as the composition root builds them."""
    auth = Authenticator(harness.store)
    return await start_grpc_server(
        harness.limits,
        listen,
        flows=FlowsService(harness.store, harness.deposits, stuck_after_s={FlowStatus.RECEIVED: 3600.0}, clock=now),
        watch=WatchService(harness.store, wait_s=0.5),
        auth=auth,
        admin=AdminService(
            harness.store,
            auth,
            ruleset_problem=partial(ruleset_problem, harness.processor.rulesets.default),
            rulesets_changed=harness.processor.rulesets.invalidate,
        ),
        health=HealthServicer(),
        tls=tls,
    )


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
            await pool_.start()  # deposits wake it through the store
        server, port = await serve(harness)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return cls(harness, server, port, channel, pool_)

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        if self.workers is not None:
            with contextlib.suppress(Exception):
                await self.workers.stop(5)
        await self.harness.close()
