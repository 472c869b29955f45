"""The network faces the daemon starts, built from the engine: gRPC, the SFTP server and the outbox writer.

Each is a ``gateway.daemon.Listener``: started in order, told to stop accepting first at shutdown, then
stopped within the grace (STYLE rule 14).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from grpc_health.v1 import health_pb2 as health_pb
from grpc_health.v1._async import HealthServicer  # the asyncio servicer (grpc_health.v1.aio)

from engine import ENGINE_VERSION
from engine.errors import StoreError
from gateway.grpc_auth import Authenticator
from gateway.grpc_server import ADMIN_SERVICE, FLOW_SERVICE, BindFailed, TlsFiles, start_grpc_server
from gateway.outbox import OUTBOX_SINGLETON, PURGE_SINGLETON, OutboxWriter, has_return_flows
from gateway.settings import EX_CONFIG
from gateway.sftp_paths import PartnerFolders
from gateway.sftp_server import SftpServer, SftpSettings, start_sftp_server
from gateway.startup import BIND_ERRNOS, StartupError, bind_error, cannot_listen

if TYPE_CHECKING:
    from engine.model import FlowRecord
    from gateway.daemon import Engine, Listener

log = structlog.get_logger("fluxdepot.listeners")
PROCESSING_SERVICE = "fluxdepot.processing"  # NOT_SERVING while the watchdog sees stuck flows


class GrpcListener:
    name = "grpc"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._health = HealthServicer()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> dict[str, Any]:
        settings = self._engine.settings.grpc
        assert settings.listen is not None
        tls = None
        if settings.tls_cert and settings.tls_key:
            tls = TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        # Probe first: grpc's own failure is a C-core log line on stderr that says less.
        if (busy := bind_error(settings.listen)) is not None:
            raise cannot_listen("grpc", settings.listen, busy)
        try:
            self._server, port = await self._start(settings.listen, tls)
        except BindFailed:
            raise cannot_listen("grpc", settings.listen, bind_error(settings.listen)) from None
        except OSError as exc:  # the TLS files, read before binding
            raise StartupError(
                f"cannot read {exc.filename} ([grpc] tls_cert, tls_key, tls_client_ca): {exc.strerror}", EX_CONFIG
            ) from None
        await self._health.set(PROCESSING_SERVICE, health_pb.HealthCheckResponse.SERVING)
        host = settings.listen.rpartition(":")[0]
        return {"grpc": f"{host}:{port}", "grpc_tls": tls is not None}

    async def _start(self, listen: str, tls: TlsFiles | None) -> tuple[grpc.aio.Server, int]:
        metrics = self._engine.metrics
        return await start_grpc_server(
            self._engine.store,
            self._engine.deposits,
            self._engine.limits,
            listen,
            tls=tls,
            health=self._health,
            auth=Authenticator(self._engine.store, ttl_s=self._engine.settings.grpc.token_cache_s),
            on_call=lambda method, code: metrics.grpc_calls.labels(method, code).inc(),
            stuck_after_s=self._engine.settings.stuck_after(),
            max_message_bytes=self._engine.settings.grpc.max_message_bytes,
        )

    async def set_health(self, service: str, serving: bool) -> None:
        status = health_pb.HealthCheckResponse.SERVING if serving else health_pb.HealthCheckResponse.NOT_SERVING
        if service:
            await self._health.set(service, status)
        elif not serving:  # "" = the whole server: shutting down
            await self._health.enter_graceful_shutdown()

    async def stop_accepting(self) -> None:
        for service in ("", FLOW_SERVICE, ADMIN_SERVICE, PROCESSING_SERVICE):
            await self._health.set(service, health_pb.HealthCheckResponse.NOT_SERVING)

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)


class OutboxListener:
    """Return flows to partners' out/ folders: drained once before SFTP opens (finishing any write a
    crash interrupted), then a loop woken after the verdict of every EDI partner's flow, and a periodic
    retention purge. Both run on the one daemon holding their singleton (``gateway.outbox``), whatever
    the number of daemons."""

    name = "outbox"

    def __init__(self, engine: Engine) -> None:
        settings = engine.settings
        self.writer = OutboxWriter(
            engine.store,
            PartnerFolders(settings.data_dir / "sftp"),
            engine_version=ENGINE_VERSION,
            gateway_code=settings.gateway_code,
            retention_s=settings.retention.outbox_days * 86400,
        )
        engine.verdict_hooks.append(self._on_verdict)
        self._engine = engine
        self._tasks: list[asyncio.Task[Any]] = []

    def _on_verdict(self, flow: FlowRecord) -> None:
        """Only an EDI partner's flow has return flows: any other verdict would start a drain (reads,
        thread hops) that finds nothing to write."""
        if has_return_flows(flow):
            self.writer.wake()

    async def start(self) -> dict[str, Any]:
        self.writer.folders.create()
        store = self._engine.store
        written = 0
        if await store.try_singleton(OUTBOX_SINGLETON):  # else another daemon is the writer
            written = await self.writer.drain(singleton=True)
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._purge_daily())]
        return {"outbox_written_at_start": written}

    async def _run(self) -> None:
        writer = self.writer
        self._engine.metrics.singletons.labels(OUTBOX_SINGLETON).set_function(lambda: float(writer.holding))
        await writer.run()

    async def _purge_daily(self) -> None:
        """Hourly, on the daemon holding the purge singleton: delete return flows past the retention."""
        while True:
            try:
                if await self._engine.store.try_singleton(PURGE_SINGLETON):
                    await self.writer.purge()
            except (OSError, StoreError):
                log.exception("outbox_purge_failed")
            await asyncio.sleep(3600)

    async def set_health(self, service: str, serving: bool) -> None:
        return None

    async def stop_accepting(self) -> None:
        return None

    async def stop(self, grace_s: float) -> None:
        self.writer.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for name in (OUTBOX_SINGLETON, PURGE_SINGLETON):  # let another daemon take over at once
            with contextlib.suppress(StoreError):
                await self._engine.store.release_singleton(name)


class SftpListener:
    name = "sftp"

    def __init__(self, engine: Engine, outbox: OutboxWriter) -> None:
        self._engine = engine
        self._outbox = outbox
        self._server: SftpServer | None = None

    async def start(self) -> dict[str, Any]:
        s = self._engine.settings
        assert s.sftp.listen is not None
        settings = SftpSettings(
            max_flow_bytes=s.limits.max_flow_bytes,
            password_auth=s.sftp.password_auth,
            max_auth_failures=s.sftp.max_auth_failures,
            max_address_failures=s.sftp.max_address_failures,
            max_partner_failures=s.sftp.max_partner_failures,
            first_lockout_s=s.sftp.first_lockout_s,
            max_upload_holes=s.sftp.max_upload_holes,
            lockout_s=s.sftp.lockout_s,
            quota_bytes=s.sftp.quota_bytes,
            quota_files=s.sftp.quota_files,
        )
        try:
            self._server, port = await start_sftp_server(
                self._engine.store, self._engine.deposits, self._outbox, settings, s.sftp.listen
            )
        except OSError as exc:
            if exc.errno not in BIND_ERRNOS:
                raise
            raise cannot_listen("sftp", s.sftp.listen, exc) from None
        server = self._server
        self._engine.metrics.sftp_sessions.set_function(lambda: float(server.session_count))
        host = s.sftp.listen.rpartition(":")[0]
        return {"sftp": f"{host}:{port}"}

    async def set_health(self, service: str, serving: bool) -> None:
        return None

    async def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), grace_s)


async def build_listeners(engine: Engine) -> list[Listener]:
    """The outbox always runs (EDI flows may come from another daemon sharing the store); gRPC and SFTP
    when they have a listen address."""
    outbox = OutboxListener(engine)
    listeners: list[Listener] = [outbox]
    settings = engine.settings
    if settings.grpc.listen:
        listeners.append(GrpcListener(engine))
    if settings.sftp.listen:
        listeners.append(SftpListener(engine, outbox.writer))
    return listeners
