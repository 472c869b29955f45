"""The composition root (STYLE rule 3): ``fluxdepot serve`` reads settings, opens the store, builds the
engine and the faces over it (``Engine``, ``build_faces``: the whole object graph, here and nowhere
else), starts the servers, and owns the ordered, bounded shutdown (STYLE rule 14). Calls go one way:
faces → engine → store; workers and the outbox learn of new work and new verdicts from the store
(``engine.store.wakeups``), and the engine reports deposits and verdicts to the metrics
(``engine.observer``).

Start: logging → metrics → store (migrated) → directory import → blobs → validation pool (warmed) →
workers (recovering leases left by a previous run) → outbox → gRPC → HTTP → SFTP → one ``ready`` event and
READY=1 to systemd.

Stop (SIGTERM or SIGINT): STOPPING=1 → health NOT_SERVING → every face stops accepting (live HTTP feeds
end) → SFTP, HTTP and gRPC finish their in-flight requests within the grace → workers finish or hand back
their flows → outbox → validation pool → store → one ``shutdown_complete`` event → exit 0. A second
signal forces the exit at once (status 1): nothing is lost, since every acknowledged deposit is already
durable and leases are recovered at the next start.

Several daemons may share one PostgreSQL store and one data folder (scale-out): periodic jobs that must
run once (stuck-flow watchdog, outbox writing and purge) run under the store's singletons
(``Store.try_singleton``), on one daemon at a time, passing to another when it dies.

SIGHUP reloads what can change safely: the directory file (structures, users, partners and their keys)
and the log level.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc_health.v1._async import HealthServicer  # the asyncio servicer (grpc_health.v1.aio)

from engine import ENGINE_VERSION
from engine.blobs import BlobStore
from engine.clock import utcnow
from engine.cpu_pool import CpuPool
from engine.deposit import DepositService
from engine.directory_file import DirectoryFileError, load_directory
from engine.errors import AlreadyExists
from engine.permissions import Visibility
from engine.processing import FlowProcessor
from engine.pump import FlowPump
from engine.queries import DashboardQuery
from engine.services.admin import AdminService
from engine.services.auth import PartnerAuthenticator, TokenAuthenticator
from engine.services.check import CheckService
from engine.services.flows import FlowsService
from engine.services.oauth import AccessTokens
from engine.services.portal_auth import PortalAuthSettings, UserAuthenticator
from engine.services.portal_users import PortalUsers
from engine.services.return_files import ReadReturnFile, ReturnFiles
from engine.services.watch import WatchService
from engine.status import FlowStatus
from engine.store import open_store, sqlite_path
from engine.store.port import Store
from engine.store.sqlite import SqliteStore
from engine.store.sqlite_guard import Mark, StoreRefused, check_before_open, keep_numbers_rising, refresh_mark
from engine.technical import warm_up
from engine.validation.rulesets import require_artefacts, ruleset_problem
from engine.watchdog import StuckFlowWatchdog
from engine.webhooks import Backoff
from engine.worker import WorkerPool, WorkerSettings
from gateway.data_lock import DataFolderBusy, DataFolderLock
from gateway.demo_secrets import demo_secrets_in
from gateway.grpc_server import TlsFiles, start_grpc_server
from gateway.http.app import build_app
from gateway.http.auth import HttpAuth
from gateway.http.portal.context import PORTAL, PortalContext
from gateway.http.rate import RateLimiter
from gateway.http.server import HttpServer, HttpTls
from gateway.http.services import HttpServices
from gateway.http.signing_key import load_or_create
from gateway.listeners import GrpcListener, HttpListener, Listener, OutboxListener, SftpListener
from gateway.logs import configure_logging
from gateway.metrics import Metrics
from gateway.outbox import OutboxWriter
from gateway.settings import PortalSection, Settings, SettingsError
from gateway.sftp_auth import Credentials
from gateway.sftp_intake import Intake
from gateway.sftp_paths import PartnerFolders
from gateway.sftp_server import SftpServer, SftpSettings, auth_settings, intake_settings, start_sftp_server
from gateway.startup import EX_DATAERR, EX_TEMPFAIL, StartupError, cannot_listen
from gateway.systemd import Notifier, watchdog_interval_s, while_advancing
from gateway.webhooks import WebhookListener, WebhookRunner, renderers

log = structlog.get_logger("fluxdepot.daemon")
EX_OK, EX_FORCED = 0, 1
WATCHDOG_SINGLETON = "watchdog"  # one daemon of those sharing a store runs the stuck-flow watchdog
MARK_EVERY_S = 5.0  # how often the flow-number mark follows the store (engine.store.sqlite_guard)
SHARED_TEMP_AGE_S = 3600.0  # on a shared data folder, only temporary files this old are from a dead daemon
WATCH_WAIT_S = 15.0  # a watch stream re-reads the feed at least this often (besides the store's signal)


class Engine:
    """The engine's parts, built once: the application layer the faces call, the workers, the pool.
    ``metrics`` observes deposits and verdicts (``engine.observer``)."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.limits = settings.engine_limits
        self.blobs = BlobStore(settings.data_dir / "blobs")
        self.cpu = CpuPool(settings.workers.processes, initializer=warm_up, limits=settings.workers.process_limits())
        self.processor = FlowProcessor(
            store, self.blobs, self.limits, self.cpu.run, clock=utcnow, actor="worker", rules=settings.engine_rules
        )
        w = settings.workers
        worker_settings = WorkerSettings(
            workers=w.count,
            lease_s=w.lease_s,
            poll_s=w.poll_s,
            recover_every_s=w.recover_every_s,
            exclusive=settings.store_url.startswith("sqlite:"),  # one process owns a SQLite file
        )
        self.workers: WorkerPool | FlowPump
        if isinstance(store, SqliteStore) and w.pump and w.count:
            self.workers = FlowPump(store, self.processor, self.cpu, worker_settings, clock=utcnow, observer=metrics)
        else:
            self.workers = WorkerPool(store, self.processor, worker_settings, clock=utcnow, observer=metrics)
        self.deposits = DepositService(
            store,
            self.blobs,
            self.limits,
            gateway_code=settings.gateway_code,
            clock=utcnow,
            observer=metrics,
        )
        self.flows = FlowsService(store, self.deposits, stuck_after_s=settings.stuck_after(), clock=utcnow)
        self.watch = WatchService(store, wait_s=WATCH_WAIT_S)
        # Bearer tokens for gRPC and HTTP alike, static or OAuth2 access tokens (engine.services.oauth).
        access = AccessTokens(load_or_create(settings.data_dir), ttl_s=settings.http.access_token_ttl_s)
        self.tokens = TokenAuthenticator(store, ttl_s=settings.grpc.token_cache_s, access_tokens=access)
        self.admin = AdminService(
            store,
            self.tokens,
            ruleset_problem=partial(ruleset_problem, settings.engine_rules),
            rulesets_changed=self.processor.rulesets.invalidate,
        )


def build_faces(engine: Engine) -> list[Listener]:
    """The faces over ``engine``, in their start order: the outbox always (EDI flows may come from another
    daemon sharing the store), then gRPC, HTTP and SFTP when they have a listen address."""
    s, store, metrics = engine.settings, engine.store, engine.metrics
    outbox = OutboxWriter(
        store,
        PartnerFolders(s.data_dir / "sftp"),
        engine_version=ENGINE_VERSION,
        gateway_code=s.gateway_code,
        retention_s=s.retention.outbox_days * 86400,
    )
    faces: list[Listener] = [OutboxListener(outbox, store, metrics)]
    if s.grpc.listen:
        health = HealthServicer()

        async def serve_grpc(listen: str, tls: TlsFiles | None) -> tuple[grpc.aio.Server, int]:
            return await start_grpc_server(
                engine.limits,
                listen,
                flows=engine.flows,
                watch=engine.watch,
                auth=engine.tokens,
                admin=engine.admin,
                health=health,
                tls=tls,
                on_call=lambda method, code: metrics.grpc_calls.labels(method, code).inc(),
                max_message_bytes=s.grpc.max_message_bytes,
            )

        faces.append(GrpcListener(s.grpc, serve_grpc, health))
    if s.http.listen:
        http = HttpServices(
            flows=engine.flows,
            watch=engine.watch,
            admin=engine.admin,
            auth=HttpAuth(engine.tokens, RateLimiter(s.http.requests_per_s, s.http.burst)),
            limits=engine.limits,
        )
        http.extra[PORTAL] = portal_context(
            store,
            s.portal,
            checks=CheckService(store, engine.cpu.run, engine.limits, s.engine_rules, clock=utcnow),
            return_files=ReturnFiles(store, return_file_reader(outbox.folders)),
        )
        http_tls = HttpTls(s.http.tls_cert, s.http.tls_key) if s.http.tls_cert and s.http.tls_key else None

        async def serve_http(listen: str) -> tuple[HttpServer, int]:
            server = HttpServer(build_app(http), tls=http_tls, grace_s=s.shutdown.grace_s)
            return server, await server.start(listen)

        faces.append(HttpListener(s.http.listen, serve_http, http.closing, http_tls is not None))
    if s.sftp.listen:
        sftp = SftpSettings(
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
        lockouts = auth_settings(sftp)
        credentials = Credentials(PartnerAuthenticator(store, lockouts.lockouts, utcnow), lockouts)
        intake = Intake(engine.deposits, outbox, outbox.folders, intake_settings(sftp), find_partner=store.get_partner)

        async def serve_sftp(listen: str) -> tuple[SftpServer, int]:
            return await start_sftp_server(credentials, intake, sftp, listen)

        faces.append(SftpListener(s.sftp.listen, serve_sftp, metrics))
    hooks = s.webhooks  # every daemon sends webhooks: the store's leases share the deliveries between them
    backoff = Backoff(first_retry_s=hooks.first_retry_s, max_retry_s=hooks.max_retry_s, retry_for_s=hooks.retry_for_s)
    runner = WebhookRunner(
        store,
        renderers(store.get_flow),
        backoff,
        timeout_s=hooks.timeout_s,
        concurrency=hooks.concurrency,
        on_outcome=lambda outcome: metrics.webhook_attempts.labels(outcome).inc(),
    )
    faces.append(WebhookListener(runner, store, retention_s=s.retention.webhooks_days * 86400))
    return faces


def return_file_reader(folders: PartnerFolders) -> ReadReturnFile:
    """Reads a return flow back from its partner's ``out/`` (None once collected or purged); the name is
    one the store recorded on the flow (``engine.services.return_files``)."""

    def read(partner: str, name: str) -> bytes | None:
        try:
            return (folders.outbox(partner) / Path(name).name).read_bytes()
        except FileNotFoundError:
            return None

    async def read_off_loop(partner: str, name: str) -> bytes | None:
        return await asyncio.to_thread(read, partner, name)

    return read_off_loop


def portal_context(
    store: Store, p: PortalSection, *, checks: CheckService | None = None, return_files: ReturnFiles | None = None
) -> PortalContext:
    """The web portal's log-ins and sessions (``[portal]``), its directory reads, Check a file and the
    return flows' downloads."""
    settings = PortalAuthSettings(
        session_idle_s=p.session_idle_s,
        session_absolute_s=p.session_absolute_s,
        max_login_failures=p.max_login_failures,
        max_address_failures=p.max_address_failures,
        max_user_failures=p.max_user_failures,
        first_lockout_s=p.first_lockout_s,
        lockout_s=p.lockout_s,
    )
    return PortalContext.build(
        UserAuthenticator(store, settings, utcnow),
        PortalUsers(store),
        time_zone=p.time_zone,
        checks=checks,
        return_files=return_files,
    )


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        notifier: Notifier | None = None,
        init: bool = False,
    ) -> None:
        self.settings = settings
        self._init = init  # --init: a new SQLite store in a data folder that held one
        self._mark: Mark | None = None
        self._notifier = notifier or Notifier()
        self._stop = asyncio.Event()
        self._signals = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Listener] = []
        self._metrics_server: Any = None
        self.engine: Engine | None = None
        self.processing_healthy = True
        self._lock = DataFolderLock(settings.data_dir)

    # --- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()
        return EX_OK

    def request_stop(self, sig: int = signal.SIGTERM) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("forced_exit", signal=signal.Signals(sig).name)
            os._exit(EX_FORCED)  # second signal: the operator wants out now; every deposit is durable
        log.info("shutdown_requested", signal=signal.Signals(sig).name)
        self._stop.set()

    async def start(self) -> None:
        s = self.settings
        configure_logging(s.logging.level, s.logging.format)
        log.info("starting", config=str(s.source), data_dir=str(s.data_dir), environment=s.environment)
        require_artefacts(s.engine_rules)  # ArtefactsNotInstalled: one line, exit 78 (gateway.cli)
        # Before anything opens: one daemon per folder on SQLite, shared by the daemons of one PostgreSQL.
        shared = not s.store_url.startswith("sqlite:")
        try:
            self._lock.acquire(shared=shared)
        except DataFolderBusy as exc:
            raise StartupError(f"{exc}; stop it first, or give this daemon another --data-dir", EX_TEMPFAIL) from None
        metrics = Metrics()
        db = Path(sqlite_path(s.store_url)) if not shared else None
        try:
            if db is not None:
                await self._check_store(db)
            store = await self._open_store()
            self.engine = engine = Engine(s, store, metrics)
            if db is not None:
                await self._keep_numbers_rising(db)
        except StoreRefused as exc:  # damaged, or missing beside the data it kept: a restart would not help
            raise StartupError(str(exc), EX_DATAERR) from None
        await self._import_directory()
        # A data folder shared by several daemons (PostgreSQL) may hold other daemons' writes in progress.
        await asyncio.to_thread(engine.blobs.sweep_temp, SHARED_TEMP_AGE_S if shared else 0.0)
        await asyncio.to_thread(engine.cpu.warm_up, warm_up)
        await engine.workers.start()
        ready: dict[str, Any] = {"workers": s.workers.count, "processes": s.workers.processes}
        self._listeners = build_faces(engine)
        for listener in self._listeners:
            ready.update(await listener.start())
        if s.metrics.listen:
            try:
                self._metrics_server = metrics.serve(s.metrics.listen)
            except OSError as exc:
                raise cannot_listen("metrics", s.metrics.listen, exc) from None
            ready["metrics"] = "{}:{}".format(*self._metrics_server.server_address[:2])
        watchdog = StuckFlowWatchdog(store, s.stuck_after(), clock=utcnow)
        self._spawn(self._every(s.watchdog.interval_s, lambda: self._watch(watchdog)))
        self._spawn(self._every(15.0, self._refresh_gauges))
        if db is not None:
            self._spawn(self._every(MARK_EVERY_S, lambda: self._refresh_mark(db)))
        if (interval := watchdog_interval_s()) is not None:
            self._spawn(self._every(interval, self._ping_systemd))
        gc.freeze()  # start-up objects live on: full collections skip them (bench.portal: 70-90 ms -> 2-8 ms pauses)
        log.info("ready", **ready)
        self._notifier.ready("serving")
        if s.environment == "demo":
            print(demo_help(ready), file=sys.stderr, flush=True)

    async def shutdown(self) -> None:
        """The ordered, bounded stop; safe to call after a partial start."""
        grace = self.settings.shutdown.grace_s
        self._notifier.stopping()
        await self._set_health("", False)
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await listener.stop_accepting()
        for listener in reversed(self._listeners):
            try:
                await listener.stop(grace)
            except Exception:
                log.exception("listener_stop_failed", listener=listener.name)
        engine = self.engine
        if engine is not None:
            await engine.workers.stop(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if engine is not None:
            await asyncio.to_thread(engine.cpu.close)
            await engine.store.close()
            if self._mark is not None:  # the last numbers handed out, now that nothing deposits
                with contextlib.suppress(OSError, sqlite3.Error):
                    await self._refresh_mark(Path(sqlite_path(self.settings.store_url)))
        self._lock.release()
        log.info("shutdown_complete")

    async def reload(self) -> None:
        """SIGHUP: re-import the directory file and re-read the log level."""
        from gateway.settings import load_settings

        try:
            fresh = load_settings(self.settings.source)
        except SettingsError as exc:
            log.error("reload_failed", problems=exc.problems)
            return
        configure_logging(fresh.logging.level, fresh.logging.format)
        self.settings = self.settings.model_copy(update={"directory": fresh.directory, "logging": fresh.logging})
        try:
            await self._import_directory()
        except SettingsError as exc:
            log.error("reload_failed", problems=exc.problems)
            return
        log.info("reloaded", directory=str(self.settings.directory_file), log_level=fresh.logging.level)

    # --- pieces --------------------------------------------------------------------------------
    async def _check_store(self, db: Path) -> None:
        """The store file's start-up check (``sqlite_guard``), under systemd with more start-up time asked
        for while it reads."""
        started = time.monotonic()

        def check(progress: Callable[[], None]) -> Awaitable[None]:
            return asyncio.to_thread(check_before_open, db, self.settings.data_dir, init=self._init, progress=progress)

        await while_advancing(self._notifier, check, status=f"checking the store {db}")
        log.info("store_checked", path=str(db), duration_s=round(time.monotonic() - started, 2))

    async def _open_store(self) -> Store:
        """Open and migrate the store, under systemd with more start-up time asked for while SQLite
        migrations run (an index over a big store takes seconds)."""
        s = self.settings

        def opening(progress: Callable[[], None]) -> Awaitable[Store]:
            return open_store(s.store_url, pool_min=s.store.pool_min, pool_max=s.store.pool_max, progress=progress)

        return await while_advancing(self._notifier, opening, status="migrating the store")

    async def _keep_numbers_rising(self, db: Path) -> None:
        last, self._mark = await asyncio.to_thread(keep_numbers_rising, db, self.settings.data_dir)
        log.info("flow_numbers", last_issued=last, ceiling=self._mark.ceiling)

    async def _refresh_mark(self, db: Path) -> None:
        if self._mark is not None:
            self._mark = await asyncio.to_thread(refresh_mark, db, self.settings.data_dir, self._mark)

    async def _import_directory(self) -> None:
        path = self.settings.directory_file
        if path is None or self.engine is None:
            return
        if self.settings.environment == "production":
            problems = await asyncio.to_thread(demo_secrets_in, path)
            if problems:
                raise SettingsError(problems)
        try:
            data = await asyncio.to_thread(load_directory, path)
        except DirectoryFileError as exc:
            raise SettingsError([f"{path}: {p}" for p in exc.problems]) from None
        try:
            await self.engine.store.import_directory(data)
        except AlreadyExists as exc:  # e.g. a partner key another partner was given through UpsertPartner
            raise SettingsError([f"{path}: {exc}"]) from None
        log.info(
            "directory_imported",
            file=str(path),
            structures=len(data.structures),
            users=len(data.users),
            technical_users=len(data.technical_users),
            partners=len(data.partners),
        )

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _every(self, interval_s: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic_job_failed", job=getattr(job, "__name__", "job"))
            await asyncio.sleep(interval_s)

    async def _watch(self, watchdog: StuckFlowWatchdog) -> None:
        """One watchdog round, on the daemon holding the ``watchdog`` singleton only (the others report
        processing healthy: stuck flows are the holder's to report)."""
        assert self.engine is not None
        held = await self.engine.store.try_singleton(WATCHDOG_SINGLETON)
        self.engine.metrics.singletons.labels(WATCHDOG_SINGLETON).set(1 if held else 0)
        if not held:
            if not self.processing_healthy:
                self.processing_healthy = True
                await self._set_health("fluxdepot.processing", True)
            return
        counts = await watchdog.check()
        for status, count in counts.items():
            self.engine.metrics.stuck_flows.labels(status.name).set(count)
            if count:
                log.warning("flows_stuck", status=status.name, count=count)
        self.processing_healthy = watchdog.healthy
        await self._set_health("fluxdepot.processing", watchdog.healthy)

    async def _refresh_gauges(self) -> None:
        assert self.engine is not None
        store, metrics = self.engine.store, self.engine.metrics
        metrics.queue_depth.set(await store.queue_depth())
        dashboard = await store.dashboard(DashboardQuery(top_errors=0), Visibility(everything=True))
        for status in FlowStatus:
            metrics.flows.labels(status.name).set(dashboard.totals().get(status, 0))
        now = time.time()
        for status, oldest in dashboard.oldest.items():
            metrics.queue_oldest_age.labels(status.name).set(now - oldest.timestamp())

    async def _ping_systemd(self) -> None:
        self._notifier.watchdog()

    async def _set_health(self, service: str, serving: bool) -> None:
        for listener in self._listeners:
            try:
                await listener.set_health(service, serving)
            except Exception:
                log.exception("health_update_failed", listener=listener.name)


def demo_help(ready: dict[str, Any]) -> str:
    """What to try against the demo daemon (printed once ready, on stderr: stdout stays JSON lines)."""
    grpc = ready.get("grpc", "127.0.0.1:50051")
    sftp_port = str(ready.get("sftp", "127.0.0.1:2222")).rpartition(":")[2]
    http = ready.get("http", "127.0.0.1:8080")
    return f"""
fluxdepot demo is ready (demo secrets: never use them in production). Try, from another terminal:

  export FLUXDEPOT_TOKEN=demo-technical-token
  .venv/bin/fluxdepot-cli --target {grpc} deposit --wait config/demo/invoices/ok/* config/demo/invoices/rejected/*
  .venv/bin/fluxdepot-cli --target {grpc} --token demo-manager-token search
  .venv/bin/fluxdepot-cli --target {grpc} --token demo-manager-token dashboard
  .venv/bin/fluxdepot-cli --target {grpc} --token demo-manager-token report FLOW_NUMBER

  echo "put config/demo/invoices/sftp/ubl_by_sftp.xml in/" | \\
    sftp -b - -i config/demo/AAA001_ed25519 -P {sftp_port} -o StrictHostKeyChecking=no AAA001@127.0.0.1
  echo "ls out/" | sftp -b - -i config/demo/AAA001_ed25519 -P {sftp_port} -o StrictHostKeyChecking=no AAA001@127.0.0.1

  curl -s -u TECH_1_papeterie@demo:demo-technical-token -d grant_type=client_credentials \\
    http://{http}/oauth/token
  curl -s -H "Authorization: Bearer demo-manager-token" "http://{http}/api/v1/flows?page_size=5"

  The web portal: http://{http}/  (log in as manager / demo-manager-password)
  curl -s http://{ready.get("metrics", "127.0.0.1:9464")}/metrics | grep ^fluxdepot_
Stop with Ctrl-C.
"""
