"""The worker pool: asyncio workers that claim queued flows under a lease and process them.

* A worker claims one job at a time; while it works, a heartbeat extends the lease every third of it.
* An idle worker waits on the store (``Store.wait_for_work``): a job enqueued by any process wakes it
  at once, and it claims again every ``poll_s`` whatever happens. Nothing else wakes it.
* Each verdict a worker records is reported to the pool's observer with the time since its claim
  (``engine.observer``: the metrics).
* On start (and every ``recover_every_s``) expired leases are recovered: the first expiry requeues the
  flow, the second holds it in WAITING_FOR_REPROCESSING (DESIGN §9.2). With ``exclusive=True`` (one
  process owns the store, e.g. SQLite) every lease left by a previous run is dead and is recovered at
  once, without waiting for it to expire.
* The store going away (``StoreError``: e.g. PostgreSQL restarting) pauses the pool rather than killing
  it: claims fail (``claim_failed``) and are retried every ``poll_s``, heartbeats are retried, and a flow
  interrupted mid-way is handed back (``release``, no attempt counted) once the store answers again;
  the next claim resumes it from the status it reached.
* ``stop(grace_s)`` stops claiming, lets running flows finish within the grace, then cancels the rest
  and hands their jobs back: nothing is lost, nothing left leased.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from engine.catalogue import finding
from engine.errors import StatusConflict, StoreError
from engine.observer import FlowObserver
from engine.processing import INTERNAL_ERROR, FlowProcessor
from engine.status import FlowEvent, FlowStatus
from engine.store.port import Claim, Store

log = structlog.get_logger("fluxdepot.worker")


@dataclass(frozen=True)
class WorkerSettings:
    workers: int = 2
    lease_s: float = 30.0
    poll_s: float = 1.0  # the longest idle wait: the store wakes idle workers when work is enqueued
    recover_every_s: float = 10.0
    exclusive: bool = True


class WorkerPool:
    def __init__(
        self,
        store: Store,
        processor: FlowProcessor,
        settings: WorkerSettings,
        *,
        clock: Callable[[], datetime],
        instance: str | None = None,
        observer: FlowObserver | None = None,
    ) -> None:
        self._store = store
        self._processor = processor
        self._settings = settings
        self._clock = clock
        self._instance = instance or uuid.uuid4().hex[:8]
        self._observer = observer
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._current: dict[str, str] = {}  # flow number being processed -> the worker id holding its lease
        self._busy: set[asyncio.Task[None]] = set()
        self.processed = 0

    @property
    def in_flight(self) -> int:
        return len(self._current)

    async def start(self) -> None:
        now = self._clock()
        recovered = await self._store.recover_expired_leases(
            now=now, actor=f"worker:{self._instance}", every_lease=self._settings.exclusive
        )
        for r in recovered:
            log.warning(
                "lease_recovered",
                flow_number=r.flow_number,
                from_status=r.from_status.name,
                status=r.to_status.name,
            )
        self._tasks = [
            asyncio.create_task(self._run(f"{self._instance}-{i}"), name=f"worker-{i}")
            for i in range(self._settings.workers)
        ]
        self._tasks.append(asyncio.create_task(self._recover_periodically(), name="lease-recovery"))

    async def stop(self, grace_s: float) -> None:
        """Stop claiming; finish running flows within ``grace_s``, hand back the rest."""
        self._stopping.set()
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=grace_s)
        unfinished = [t for t in self._busy if not t.done()]
        for task in (*unfinished, *self._tasks):
            task.cancel()
        for task in (*unfinished, *self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for flow_number, worker_id in list(self._current.items()):
            with contextlib.suppress(StoreError):
                await self._store.release(flow_number, worker_id)
                log.info("flow_handed_back", flow_number=flow_number)
        self._current.clear()

    async def _run(self, worker_id: str) -> None:
        while not self._stopping.is_set():
            try:
                claim = await self._store.claim(worker_id, now=self._clock(), lease_s=self._settings.lease_s)
            except StoreError as exc:  # e.g. the database is unreachable: pause, then try again
                log.warning("claim_failed", worker=worker_id, error=str(exc))
                await asyncio.sleep(self._settings.poll_s)
                continue
            if claim is None:
                await self._idle()
                continue
            # stop() decides when to cancel the flow's processing, not this loop's own cancellation.
            await asyncio.shield(self.process_claimed(worker_id, claim))

    def process_claimed(self, worker_id: str, claim: Claim) -> asyncio.Task[None]:
        """Process ``claim``, leased to ``worker_id``, as a worker does (heartbeats, failures, hand-back
        at ``stop``); the flows' pump hands this pool the flows it does not take itself."""
        self._current[claim.flow_number] = worker_id
        task = asyncio.create_task(self._process(worker_id, claim))
        self._busy.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._busy.discard(task)
            if not task.cancelled():
                self._current.pop(claim.flow_number, None)

        task.add_done_callback(done)
        return task

    async def _idle(self) -> None:
        """Wait for the store's hint that a job was enqueued (by any process), at most ``poll_s``: the
        worker claims again either way."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.poll_s):  # even while the store reconnects
                await self._store.wait_for_work(self._settings.poll_s)

    async def _process(self, worker_id: str, claim: Claim) -> None:
        # The first beat is due a third of a lease from now: a timer until then, not a task per flow (most
        # flows are done long before).
        beats: list[asyncio.Task[None]] = []

        def beat() -> None:
            beats.append(asyncio.create_task(self._heartbeat(worker_id, claim.flow_number)))

        first_beat = asyncio.get_running_loop().call_later(self._settings.lease_s / 3, beat)
        started = time.monotonic()
        try:
            done = await self._processor.process(claim)
            self.processed += 1
            if self._observer is not None:
                self._observer.flow_judged(done, time.monotonic() - started)
        except StatusConflict as exc:
            log.warning("flow_status_conflict", flow_number=claim.flow_number, error=str(exc))
        except StoreError as exc:  # the store went away mid-flow: not the flow's fault, hand it back
            log.warning("flow_interrupted", flow_number=claim.flow_number, worker=worker_id, error=str(exc))
            await self._hand_back(worker_id, claim.flow_number)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("flow_processing_failed", flow_number=claim.flow_number)
            await self._mark_failed(claim.flow_number)
        finally:
            first_beat.cancel()
            for heartbeat in beats:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat

    async def _mark_failed(self, flow_number: str) -> None:
        """An unexpected error is the system's fault: the flow goes to WARNING, never stays IN_PROGRESS."""
        try:
            flow = await self._store.get_flow(flow_number)
        except StoreError:
            return  # the lease expires and recovery takes the flow
        if flow is None or flow.status.is_final or flow.status is FlowStatus.WAITING_FOR_REPROCESSING:
            return
        with contextlib.suppress(StoreError):
            await self._store.record_verdict(
                flow_number,
                flow.status,
                FlowEvent.SYSTEM_FAILURE,
                actor=f"worker:{self._instance}",
                at=self._clock(),
                flow_findings=[finding("CHECK_FAILED", INTERNAL_ERROR)],
                invoices=[],
                ruleset_version="",
            )

    async def _hand_back(self, worker_id: str, flow_number: str) -> None:
        """Release the job once the store answers again (no attempt counted; the flow resumes from the
        status it reached). Gives up after a lease: by then lease recovery has taken the job."""
        deadline = asyncio.get_running_loop().time() + self._settings.lease_s
        while True:
            try:
                await self._store.release(flow_number, worker_id)
            except StoreError:
                if asyncio.get_running_loop().time() > deadline:
                    return
                await asyncio.sleep(self._settings.poll_s)
                continue
            log.info("flow_handed_back", flow_number=flow_number)
            return

    async def _heartbeat(self, worker_id: str, flow_number: str) -> None:
        """Extend the lease now, then every third of a lease."""
        while True:
            try:
                held = await self._store.heartbeat(
                    flow_number, worker_id, now=self._clock(), lease_s=self._settings.lease_s
                )
            except StoreError as exc:  # unreachable for now: try again at the next beat
                log.warning("heartbeat_failed", flow_number=flow_number, worker=worker_id, error=str(exc))
            else:
                if not held:
                    log.warning("lease_lost", flow_number=flow_number, worker=worker_id)
                    return
            await asyncio.sleep(self._settings.lease_s / 3)

    async def _recover_periodically(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self._settings.recover_every_s)
            try:
                for r in await self._store.recover_expired_leases(now=self._clock(), actor=f"worker:{self._instance}"):
                    log.warning("lease_recovered", flow_number=r.flow_number, status=r.to_status.name)
            except StoreError:
                log.exception("lease_recovery_failed")
