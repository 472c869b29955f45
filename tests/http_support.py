"""A real HTTP server (uvicorn on 127.0.0.1:0) in front of the real engine (``tests.harness``), for the
HTTP faces' tests, with a real HTTP client (httpx).

``HttpEnv.start`` builds what the composition root builds (``gateway.daemon.build_faces``): the
application layer, the authenticator with OAuth2 access tokens, the rate limiter and ``build_app``; with
``workers=True`` a real ``WorkerPool`` processes deposits as they arrive.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from engine.cpu_pool import CpuPool
from engine.model import Limits
from engine.services.admin import AdminService
from engine.services.auth import TokenAuthenticator
from engine.services.flows import FlowsService
from engine.services.oauth import AccessTokens
from engine.services.watch import WatchService
from engine.status import FlowStatus
from engine.worker import WorkerPool, WorkerSettings
from gateway.http.app import build_app
from gateway.http.auth import HttpAuth
from gateway.http.rate import RateLimiter
from gateway.http.server import HttpServer
from gateway.http.services import HttpServices
from tests.harness import Harness, now

TECH = "demo-technical-token"
TECH_LOGIN = "TECH_1_papeterie@demo"
MANAGER = "demo-manager-token"
VIEWER = "demo-viewer-token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class HttpEnv:
    harness: Harness
    services: HttpServices
    app: FastAPI
    server: HttpServer
    port: int
    workers: WorkerPool | None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = bearer(token) if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    @classmethod
    async def start(
        cls,
        root: Path,
        pool: CpuPool,
        *,
        workers: bool = False,
        limits: Limits | None = None,
        rate: tuple[float, int] = (1000.0, 1000),
        token_ttl_s: int = 900,
        clock: Callable[[], float] | None = None,
        customise: Callable[[HttpServices], None] | None = None,
    ) -> HttpEnv:
        harness = await Harness.open(root, pool, limits)
        worker_pool = None
        if workers:
            worker_pool = WorkerPool(harness.store, harness.processor, WorkerSettings(workers=2, poll_s=0.2), clock=now)
            await worker_pool.start()
        access = AccessTokens(secrets.token_bytes(32), ttl_s=token_ttl_s, **({"clock": clock} if clock else {}))
        tokens = TokenAuthenticator(harness.store, access_tokens=access)
        services = HttpServices(
            flows=FlowsService(harness.store, harness.deposits, stuck_after_s={FlowStatus.RECEIVED: 3600.0}, clock=now),
            watch=WatchService(harness.store, wait_s=0.5),
            admin=AdminService(harness.store, tokens),
            auth=HttpAuth(tokens, RateLimiter(*rate)),
            limits=harness.limits,
        )
        if customise is not None:
            customise(services)
        app = build_app(services)
        server = HttpServer(app, grace_s=5)
        port = await server.start("127.0.0.1:0")
        return cls(harness, services, app, server, port, worker_pool)

    async def close(self) -> None:
        self.services.closing.set()
        await self.server.stop(5)
        if self.workers is not None:
            with contextlib.suppress(Exception):
                await self.workers.stop(5)
        await self.harness.close()
