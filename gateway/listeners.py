"""The network faces the daemon starts and stops: gRPC, HTTP, the SFTP server and the outbox writer.

Each is a ``Listener``: started in order, told to stop accepting first at shutdown, then stopped within
the grace (STYLE rule 14). A listener receives what it runs, built by the composition root
(``gateway.daemon``); it builds no collaborator and knows nothing of the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc
import structlog
from grpc_health.v1 import health_pb2 as health_pb
from grpc_health.v1._async import HealthServicer  # the asyncio servicer (grpc_health.v1.aio)

from engine.errors import StoreError
from engine.return_flows import ReturnFlowStore
from gateway.grpc_server import ADMIN_SERVICE, FLOW_SERVICE, BindFailed, TlsFiles
from gateway.http.server import HttpServer
from gateway.metrics import Metrics
from gateway.outbox import OUTBOX_SINGLETON, PURGE_SINGLETON, OutboxWriter
from gateway.settings import EX_CONFIG, GrpcSection
from gateway.sftp_server import SftpServer
from gateway.startup import BIND_ERRNOS, StartupError, bind_error, cannot_listen

log = structlog.get_logger("fluxdepot.listeners")
PROCESSING_SERVICE = "fluxdepot.processing"  # NOT_SERVING while the watchdog sees stuck flows
PURGE_EVERY_S = 3600.0

# Start a server on an address: returns it and the port it is bound to.
GrpcServe = Callable[[str, TlsFiles | None], Awaitable[tuple[grpc.aio.Server, int]]]
SftpServe = Callable[[str], Awaitable[tuple[SftpServer, int]]]
HttpServe = Callable[[str], Awaitable[tuple[HttpServer, int]]]


class Listener(Protocol):
    """A network face the daemon starts and stops (gRPC, SFTP, outbox writer)."""

    name: str

    async def start(self) -> dict[str, Any]:
        """Start serving; return what to log in the ``ready`` event (e.g. the bound address)."""

    async def stop_accepting(self) -> None:
        """Refuse new connections/calls (first step of shutdown)."""

    async def stop(self, grace_s: float) -> None:
        """Finish in-flight work within ``grace_s``, then close."""

    async def set_health(self, service: str, serving: bool) -> None:
        """Report a health status ("" = the whole server); a no-op for faces without health."""


class GrpcListener:
    name = "grpc"

    def __init__(self, settings: GrpcSection, serve: GrpcServe, health: HealthServicer) -> None:
        self._settings = settings
        self._serve = serve
        self._health = health
        self._server: grpc.aio.Server | None = None

    async def start(self) -> dict[str, Any]:
        settings = self._settings
        assert settings.listen is not None
        tls = None
        if settings.tls_cert and settings.tls_key:
            tls = TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        # Probe first: grpc's own failure is a C-core log line on stderr that says less.
        if (busy := bind_error(settings.listen)) is not None:
            raise cannot_listen("grpc", settings.listen, busy)
        try:
            self._server, port = await self._serve(settings.listen, tls)
        except BindFailed:
            raise cannot_listen("grpc", settings.listen, bind_error(settings.listen)) from None
        except OSError as exc:  # the TLS files, read before binding
            raise StartupError(
                f"cannot read {exc.filename} ([grpc] tls_cert, tls_key, tls_client_ca): {exc.strerror}", EX_CONFIG
            ) from None
        await self._health.set(PROCESSING_SERVICE, health_pb.HealthCheckResponse.SERVING)
        host = settings.listen.rpartition(":")[0]
        return {"grpc": f"{host}:{port}", "grpc_tls": tls is not None}

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
    crash interrupted), then the writer's loop, woken by its store after the verdict of every EDI
    partner's flow, and a periodic retention purge. Both run on the one daemon holding their singleton
    (``gateway.outbox``), whatever the number of daemons."""

    name = "outbox"

    def __init__(self, writer: OutboxWriter, store: ReturnFlowStore, metrics: Metrics) -> None:
        self.writer = writer
        self._store = store
        self._metrics = metrics
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> dict[str, Any]:
        self.writer.folders.create()
        written = 0
        if await self._store.try_singleton(OUTBOX_SINGLETON):  # else another daemon is the writer
            written = await self.writer.drain(singleton=True)
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._purge_hourly())]
        return {"outbox_written_at_start": written}

    async def _run(self) -> None:
        writer = self.writer
        self._metrics.singletons.labels(OUTBOX_SINGLETON).set_function(lambda: float(writer.holding))
        await writer.run()

    async def _purge_hourly(self) -> None:
        """Hourly, on the daemon holding the purge singleton: delete return flows past the retention."""
        while True:
            try:
                if await self._store.try_singleton(PURGE_SINGLETON):
                    await self.writer.purge()
            except (OSError, StoreError):
                log.exception("outbox_purge_failed")
            await asyncio.sleep(PURGE_EVERY_S)

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
                await self._store.release_singleton(name)


class HttpListener:
    """The HTTP faces (``gateway.http``). ``closing`` is set when the daemon stops accepting, so live
    feeds (Server-Sent Events) end and their connections can close within the grace."""

    name = "http"

    def __init__(self, listen: str, serve: HttpServe, closing: asyncio.Event, tls: bool) -> None:
        self._listen = listen
        self._serve = serve
        self._closing = closing
        self._tls = tls
        self._server: HttpServer | None = None

    async def start(self) -> dict[str, Any]:
        try:
            self._server, port = await self._serve(self._listen)
        except OSError as exc:
            if exc.errno not in BIND_ERRNOS:
                raise StartupError(
                    f"cannot read {exc.filename} ([http] tls_cert, tls_key): {exc.strerror}", EX_CONFIG
                ) from None
            raise cannot_listen("http", self._listen, exc) from None
        host = self._listen.rpartition(":")[0]
        return {"http": f"{host}:{port}", "http_tls": self._tls}

    async def set_health(self, service: str, serving: bool) -> None:
        return None

    async def stop_accepting(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.close()

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)


class SftpListener:
    name = "sftp"

    def __init__(self, listen: str, serve: SftpServe, metrics: Metrics) -> None:
        self._listen = listen
        self._serve = serve
        self._metrics = metrics
        self._server: SftpServer | None = None

    async def start(self) -> dict[str, Any]:
        try:
            self._server, port = await self._serve(self._listen)
        except OSError as exc:
            if exc.errno not in BIND_ERRNOS:
                raise
            raise cannot_listen("sftp", self._listen, exc) from None
        server = self._server
        self._metrics.sftp_sessions.set_function(lambda: float(server.session_count))
        host = self._listen.rpartition(":")[0]
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
