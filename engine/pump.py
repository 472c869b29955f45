"""The flows' pump: on SQLite, one thread takes new flows from their claim to their verdict (issue 20).

Why a thread: per flow, the asyncio workers (``engine.worker``) cost the daemon 1.2–1.7 ms of CPU around a
4–5 ms check: a task, futures and a reader registration per check, a hand-off to the flows' writer thread
per transaction, 1.7 transactions per flow. The store's own statements take 0.4–0.8 ms of it. The pump
drives the same store functions (``sqlite.claim_next``, ``sqlite.write_judged``) and the same validation
processes from one thread with ``select``, and pays the per-flow costs once per turn (figures in README
"Benchmarks", ``bench.pipeline`` (c)).

A turn is one write transaction on the pump's own connection, under the store's write lock (``WriteLock``,
shared with the event loop's writers): the verdicts of the checks answered so far (a savepoint each),
the heartbeats due, then claims for every free place in the processes' queues. Then the claimed flows are
sent to the processes lent by the validation pool (``CpuPool.lend``), up to ``QUEUED_PER_PROCESS`` each:
a process that finishes a check finds the next one on its pipe. A reply waits up to ``LINGER_S`` for
another, so that verdicts share a transaction.

Invariants:

* Each check keeps its bounds: its deadline (``Limits.validation_timeout_s``) runs from the moment its
  process starts it (the previous reply read), and a reply read after it is late; a check past it, or
  whose process died or ran out of memory, gets the pool's ``CheckAborted`` verdict (SYSTEM_FAILURE, as
  ``FlowProcessor``), never to run again, and the checks queued behind it go to another process (they
  had not started). A process is replaced as the
  pool has it (``CpuPool.counted``); one due for recycling takes no more checks and is replaced once idle.
* The pump takes only the hot path, flows claimed in RECEIVED (one ``flow_check``). A flow claimed in a
  later status (a restart interrupted it) is handed to the event loop's ``WorkerPool`` (``process_claimed``),
  as is every flow when the depositors' rulesets cannot be read.
* Its writes are the workers' (``synchronous=NORMAL``, see ``engine.store.sqlite``); after each commit the
  event loop is told (``SqliteStore.committed_elsewhere``: the feed's waiters, the outbox).
* A transaction that fails (e.g. the disk is full) is retried every ``poll_s`` with the same verdicts;
  one flow's failure (a status changed meanwhile) is that flow's alone (its savepoint); an unexpected
  error while judging a flow records SYSTEM_FAILURE (CHECK_FAILED), as the workers do.
* An error the pump does not expect (a bug) is logged (``flow_pump_failed``) and its walk starts again
  ``poll_s`` later: the processes it held are replaced and its flows released first.
* ``stop(grace_s)``: no more claims; checks running finish within the grace and get their verdict; the
  rest are abandoned (their processes killed) and their jobs released, without an attempt counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from engine.business import duplicate_keys, needed_sirets
from engine.catalogue import finding
from engine.cpu_pool import CheckAborted, CheckCrashed, CheckOutOfMemory, CheckTimeout, CpuPool, _Outcome, _Process
from engine.errors import StatusConflict, StoreError
from engine.integration import rule_for
from engine.model import Channel, FlowRecord, FlowVerdict, Rules
from engine.observer import FlowObserver
from engine.processing import (
    INTERNAL_ERROR,
    STEPS_TO_IN_PROGRESS,
    FlowProcessor,
    aborted_finding,
    judged_by,
    log_processed,
    transport_verdict,
)
from engine.status import FlowEvent, FlowStatus
from engine.store import sql_flows as sql
from engine.store.port import Claim
from engine.store.rows import utc
from engine.store.sqlite import SqliteStore, claim_next, read_partner, write_judged
from engine.store.sqlite_database import SqliteSync
from engine.store.sqlite_db import connect_writer, write_transaction
from engine.technical import ContentResult, TransportResult, flow_check
from engine.worker import WorkerPool, WorkerSettings

log = structlog.get_logger("fluxdepot.pump")
QUEUED_PER_PROCESS = 6  # checks sent to a process ahead of its replies (measured: 2, 3, 4 and 6)
GATHER = 6  # verdicts a turn waits for, LINGER_S at most, so that they share a transaction
LINGER_S = 0.008
RULESETS_WAIT_S = 10.0  # the event loop's read of the depositors' rulesets
_SAVEPOINT, _ROLLBACK_TO, _RELEASE = "SAVEPOINT pumped", "ROLLBACK TO pumped", "RELEASE pumped"
Checked = tuple[TransportResult, ContentResult | None]  # flow_check's: no content when transport failed


@dataclass
class _Job:
    """A flow the pump holds: claimed, maybe sent to a process."""

    claim: Claim
    flow: FlowRecord
    rules: Rules
    args: tuple[Any, ...]  # flow_check's
    size: int  # bytes on the pipe
    claimed: float  # time.monotonic()
    beat: float  # when its lease was last extended (time.monotonic())


@dataclass
class _Lane:
    """A validation process lent to the pump and the checks sent to it, in the order it answers them.

    The checks queued behind the running one wait unread in the process's socket pair; they are kept
    under half its send buffer (``budget``: 104 KiB with Linux's default ``net.core.wmem_default``), so a
    send never blocks the thread, even when the running check hangs.
    """

    process: _Process
    sent: deque[_Job] = field(default_factory=deque)
    deadline: float = float("inf")  # of the check at the head, which the process is running
    retiring: str | None = None  # replaced once its queue is empty (recycled by the pool's rules)
    budget: int = 0  # bytes that may wait unread on its socket pair

    def __post_init__(self) -> None:
        with socket.socket(fileno=os.dup(self.process.conn.fileno())) as end:
            # Half of what the socket reports: 208 KiB by default, of which ~215 KB of 20 KB requests fit.
            self.budget = end.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2

    @property
    def waiting_bytes(self) -> int:
        """Bytes of the checks queued behind the running one: at most what its socket pair holds unread."""
        return sum(job.size for job in list(self.sent)[1:])


Outcome = Checked | CheckAborted | BaseException


def record_checked(
    db: SqliteSync, flow: FlowRecord, rules: Rules, checked: Checked, *, actor: str, at: datetime
) -> FlowRecord:
    """In the caller's write transaction: the verdict on a RECEIVED ``flow`` from its ``flow_check``, judged
    on the directory, the partner's rejection rule and the earlier invoices as they are there (the steps
    to IN_PROGRESS recorded with it when the transport check passed)."""
    transport, content = checked
    failed = transport_verdict(transport, rules)
    if failed is not None:
        return record_verdict(db, flow, failed, actor=actor, at=at)
    assert content is not None, "flow_check checks the content of a flow that passed transport"
    syntax = transport.syntax or flow.syntax
    partner = read_partner(db, flow.partner_code) if flow.channel is Channel.EDI and flow.partner_code else None
    return write_judged(
        db,
        flow.flow_number,
        flow.status,
        STEPS_TO_IN_PROGRESS[flow.status],
        judged_by(content, flow.issuer_siret, rule_for(flow.channel, partner, syntax)),
        sirets=needed_sirets(content.documents, flow.issuer_siret),
        invoice_keys=duplicate_keys(content.documents),
        actor=actor,
        at=at,
    )


def record_verdict(db: SqliteSync, flow: FlowRecord, verdict: FlowVerdict, *, actor: str, at: datetime) -> FlowRecord:
    """In the caller's write transaction: a verdict that needs no reads (a failed check or transport
    check), from the flow's status."""
    return write_judged(
        db, flow.flow_number, flow.status, (), lambda _d, _e: verdict, sirets=(), invoice_keys=(), actor=actor, at=at
    )


class FlowPump:
    """The flows' walk on SQLite (see the module docstring): ``start`` and ``stop`` as ``WorkerPool``'s."""

    def __init__(
        self,
        store: SqliteStore,
        processor: FlowProcessor,
        cpu: CpuPool,
        settings: WorkerSettings,
        *,
        clock: Callable[[], datetime],
        observer: FlowObserver | None = None,
        check: Callable[..., Checked] = flow_check,  # what a process runs on a flow (bench.pipeline's cache)
    ) -> None:
        self._store = store
        self._cpu = cpu
        # The event loop's side: no tasks of its own; it recovers leases and takes the flows handed to it.
        self._loop_side = WorkerPool(store, processor, replace(settings, workers=0), clock=clock, observer=observer)
        self._settings = settings
        self._limits = processor.limits
        self._rulesets = processor.rulesets
        self._blob_path = processor.blobs.path
        self._clock = clock
        self._actor = processor.actor
        self._observer = observer
        self._check = check
        self._worker_id = f"pump-{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._grace_until = float("inf")
        self._wake_r = self._wake_w = -1  # the thread's wake-up pipe, from start() to stop()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: asyncio.Task[None] | None = None
        self.processed = 0
        self.transactions = 0
        self.holding = 0  # flows claimed and not yet recorded (the thread's count, for tests and metrics)

    # --- on the event loop -------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover leases (the loop-side pool), then start the thread and the task that wakes it."""
        self._loop = asyncio.get_running_loop()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        await self._loop_side.start()
        self._thread = threading.Thread(target=self._run, name="fluxdepot-pump", daemon=True)
        self._thread.start()
        self._waker = asyncio.create_task(self._wake_on_work(), name="pump-wakeups")

    async def stop(self, grace_s: float) -> None:
        """Stop claiming, finish what runs within ``grace_s``, hand back the rest (the module docstring)."""
        self._grace_until = time.monotonic() + grace_s
        self._stopping.set()
        self._wake()
        if self._waker is not None:
            self._waker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waker
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        await self._loop_side.stop(max(0.0, self._grace_until - time.monotonic()))
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    async def _wake_on_work(self) -> None:
        """Wake the thread whenever a flow is enqueued (it claims again; between wake-ups it polls)."""
        seen = self._store.work_count
        while True:
            count = await self._store.wait_for_work_past(seen, self._settings.poll_s)
            if count != seen:
                seen = count
                self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe is awake already
            os.write(self._wake_w, b"!")

    # --- in the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        conn = connect_writer(self._store.path)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")  # the workers' writes (engine.store.sqlite)
            while True:
                walk = _Walk(self, SqliteSync(conn))
                try:
                    walk.run()
                    return
                except Exception:  # a bug: start again, the processes it held replaced, its flows released
                    log.critical("flow_pump_failed", exc_info=True)
                    with contextlib.suppress(Exception):
                        walk.abandon()
                    if self._stopping.wait(self._settings.poll_s):
                        return
        finally:
            conn.close()


class _Walk:
    """The pump thread's state and turns (one instance per thread run)."""

    def __init__(self, pump: FlowPump, db: SqliteSync) -> None:
        self.p = pump
        self.db = db
        self.lanes: list[_Lane] = []
        self.unsent: deque[_Job] = deque()
        self.replies: list[tuple[_Job, Outcome]] = []
        self.first_reply_at = 0.0
        self.exhausted = False  # the last claim found nothing: claim again when woken, or poll_s later
        self.claim_again_at = 0.0

    # --- the loop ----------------------------------------------------------------------------------
    def run(self) -> None:
        p = self.p
        while True:
            now = time.monotonic()
            stopping = p._stopping.is_set()
            running = any(lane.sent for lane in self.lanes)
            if stopping and (now >= p._grace_until or not (running or self.replies)):
                break
            if stopping:
                self.unsent_back_to_queue()
            wanted = 0 if stopping else self.free_places()
            claim = wanted > 0 and (not self.exhausted or now >= self.claim_again_at)
            lingered = bool(self.replies) and (now - self.first_reply_at >= LINGER_S or not running)
            beats = self.beats_due(now)
            due = (self.replies and (len(self.replies) >= GATHER or lingered)) or (claim and not self.replies) or beats
            if due and not self.turn(wanted if claim else 0, beats):
                self.pause()
                continue
            self.dispatch()
            self.give_back_idle(stopping)
            p.holding = len(self.unsent) + sum(len(lane.sent) for lane in self.lanes) + len(self.replies)
            self.wait()
        self.abandon()

    def free_places(self) -> int:
        """Claims that would fill the queues: lanes lent now or idle in the pool, less the flows waiting."""
        demand = self.unsent or not self.exhausted or time.monotonic() >= self.claim_again_at
        if len(self.lanes) < self.p._cpu.size and demand and not self.p._cpu.wanted:
            self.lanes.extend(_Lane(process) for process in self.p._cpu.lend(0.0))
        places = sum(QUEUED_PER_PROCESS - len(lane.sent) for lane in self.lanes if lane.retiring is None)
        return max(0, places - len(self.unsent))

    def beats_due(self, now: float) -> list[_Job]:
        every = self.p._settings.lease_s / 3
        return [job for job in self.held() if now - job.beat >= every]

    def held(self) -> list[_Job]:
        return [*self.unsent, *(job for lane in self.lanes for job in lane.sent)]

    # --- a turn: one transaction -----------------------------------------------------------------------
    def turn(self, wanted: int, beats: Sequence[_Job]) -> bool:
        """Record the replies, extend the leases due, claim up to ``wanted``; False when the transaction failed."""
        p, conn = self.p, self.db.conn
        at = p._clock()
        expires = utc(at) + timedelta(seconds=p._settings.lease_s)
        recorded: list[tuple[_Job, FlowRecord]] = []
        claims: list[Claim] = []
        try:
            with p._store.database.thread_writes(), write_transaction(conn):
                for job, outcome in self.replies:
                    done = self.record(job, outcome, at)
                    if done is not None:
                        recorded.append((job, done))
                for job in beats:
                    params = {"flow_number": job.claim.flow_number, "worker_id": p._worker_id}
                    self.db.execute(sql.HEARTBEAT, {**params, "lease_expires_at": expires})
                for _ in range(wanted):
                    leased = claim_next(self.db, p._worker_id, now=at, expires=expires)
                    if leased is None:
                        break
                    claims.append(leased)
        except sqlite3.Error as exc:
            log.warning("pump_turn_failed", error=str(exc), verdicts=len(self.replies), retry_s=p._settings.poll_s)
            return False
        p.transactions += 1
        now = time.monotonic()
        for job in beats:
            job.beat = now
        self.replies = []
        self.exhausted = len(claims) < wanted
        if self.exhausted:
            self.claim_again_at = now + p._settings.poll_s
        self.told(recorded)
        for leased in claims:
            self.take(leased, now)
        return True

    def record(self, job: _Job, outcome: Outcome, at: datetime) -> FlowRecord | None:
        """One flow's verdict in its own savepoint; None when it could not be recorded (logged)."""
        conn, number = self.db.conn, job.claim.flow_number
        conn.execute(_SAVEPOINT)
        try:
            return self.write(job, outcome, at)
        except StatusConflict as exc:  # changed meanwhile (e.g. by an operator): its lease expires
            conn.execute(_ROLLBACK_TO)
            log.warning("flow_status_conflict", flow_number=number, error=str(exc))
        except Exception as exc:
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                raise  # the transaction's failure (e.g. the disk is full), not this flow's
            conn.execute(_ROLLBACK_TO)  # a bug, or a row of this flow's refused
            log.exception("flow_processing_failed", flow_number=number)
            return self.failed(job, at)
        finally:
            conn.execute(_RELEASE)
        return None

    def failed(self, job: _Job, at: datetime) -> FlowRecord | None:
        """An unexpected error is the system's fault: SYSTEM_FAILURE (WARNING), never left RECEIVED."""
        failure = FlowVerdict(FlowEvent.SYSTEM_FAILURE, (finding("CHECK_FAILED", INTERNAL_ERROR),))
        try:
            return record_verdict(self.db, job.flow, failure, actor=self.p._actor, at=at)
        except (StatusConflict, sqlite3.IntegrityError):
            return None  # its lease expires and recovery takes it

    def write(self, job: _Job, outcome: Outcome, at: datetime) -> FlowRecord:
        """The verdict on a RECEIVED flow from its ``flow_check`` (as ``FlowProcessor.process``)."""
        if isinstance(outcome, CheckAborted):
            aborted = (aborted_finding(outcome),)
            verdict = FlowVerdict(FlowEvent.SYSTEM_FAILURE, aborted, ruleset_version=job.rules.ruleset.value)
            return record_verdict(self.db, job.flow, verdict, actor=self.p._actor, at=at)
        if isinstance(outcome, BaseException):
            raise outcome  # flow_check itself raised: recorded as an internal error
        return record_checked(self.db, job.flow, job.rules, outcome, actor=self.p._actor, at=at)

    def told(self, recorded: Sequence[tuple[_Job, FlowRecord]]) -> None:
        """After a commit: the event loop's waiters, the metrics and the log."""
        p = self.p
        assert p._loop is not None
        if recorded:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
                p._loop.call_soon_threadsafe(p._store.committed_elsewhere, [done for _, done in recorded])
        now = time.monotonic()
        for job, done in recorded:
            p.processed += 1
            if p._observer is not None:
                p._observer.flow_judged(done, now - job.claimed)
            log_processed(done, job.claimed)

    def pause(self) -> None:
        """After a failed transaction: wait ``poll_s`` (or a stop) before the next turn."""
        self.p._stopping.wait(self.p._settings.poll_s)

    # --- claims --------------------------------------------------------------------------------------
    def take(self, claim: Claim, now: float) -> None:
        """Queue a RECEIVED flow for a check; hand any other to the event loop's workers."""
        flow = claim.flow
        rules = self.rules_for(flow.depositor) if flow is not None and claim.status is FlowStatus.RECEIVED else None
        if flow is None or rules is None:
            self.elsewhere(claim)
            return
        declared = flow.syntax if flow.declared_syntax else None
        source = claim.content if claim.content is not None else str(self.p._blob_path(claim.blob_key))
        size = len(source) if isinstance(source, bytes) else len(source.encode())
        args = (source, flow.file_name, declared, self.p._limits, rules)
        self.unsent.append(_Job(claim, flow, rules, args, size, now, now))

    def rules_for(self, depositor: str) -> Rules | None:
        """The depositor's rules; the choices are read by the event loop when stale (None: not readable)."""
        p = self.p
        choices = p._rulesets.fresh()
        if choices is None:
            assert p._loop is not None
            try:
                reading = asyncio.run_coroutine_threadsafe(p._rulesets.current(), p._loop)
                choices = reading.result(RULESETS_WAIT_S)
            except (StoreError, FutureTimeout, RuntimeError) as exc:
                log.warning("pump_rulesets_unreadable", error=str(exc))
                return None
        return p._rulesets.among(choices, depositor)

    def elsewhere(self, claim: Claim) -> None:
        p = self.p
        assert p._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closing: the lease expires, recovery takes it
            p._loop.call_soon_threadsafe(p._loop_side.process_claimed, p._worker_id, claim)

    # --- the processes -------------------------------------------------------------------------------
    def dispatch(self) -> None:
        """Send the waiting flows to the lanes with room, the shortest queue first."""
        # Another caller waits for a process (a portal check): the emptiest lane takes nothing more, so that
        # it drains and goes back to the pool (give_back_idle).
        draining = min(self.lanes, key=lambda lane: len(lane.sent)) if self.lanes and self.p._cpu.wanted else None
        while self.unsent:
            job = self.unsent[0]
            room = [
                lane
                for lane in self.lanes
                if lane.retiring is None
                and lane is not draining
                and len(lane.sent) < QUEUED_PER_PROCESS
                and (not lane.sent or lane.waiting_bytes + job.size <= lane.budget)
            ]
            if not room:
                return
            lane = min(room, key=lambda lane: len(lane.sent))
            try:
                lane.process.send(self.p._check, job.args)
            except OSError:  # it died: its running check failed; the others, this one too, go elsewhere
                if lane.sent:
                    self.lost(lane, "died", self.crashed(lane))
                else:
                    self.lost(lane, "died_idle", None)
                continue
            self.unsent.popleft()
            if not lane.sent:
                lane.deadline = time.monotonic() + self.p._limits.validation_timeout_s
            lane.sent.append(job)

    def wait(self) -> None:
        """Until a reply, a wake-up, a deadline, the linger's end or the next poll."""
        now = time.monotonic()
        busy = {lane.process.conn.fileno(): lane for lane in self.lanes if lane.sent}
        until = min((lane.deadline for lane in busy.values()), default=now + self.p._settings.poll_s)
        if self.replies:
            until = min(until, self.first_reply_at + LINGER_S)
        if self.exhausted:
            until = min(until, self.claim_again_at)
        if self.p._stopping.is_set():
            until = min(until, self.p._grace_until)
        if self.unsent and not self.lanes:
            until = min(until, now + 0.05)  # no process lent: look again soon
        held = self.held()
        if held:  # the next lease to extend
            until = min(until, min(job.beat for job in held) + self.p._settings.lease_s / 3)
        try:
            readable, _, _ = select.select([self.p._wake_r, *busy], [], [], max(0.0, until - now))
        except OSError:  # a pipe closed under us (a process replaced): the next look sees it
            readable = []
        for fd in readable:
            if fd == self.p._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 4096)
                self.exhausted = False
            else:
                self.read_reply(busy[fd])
        now = time.monotonic()
        for lane in list(self.lanes):
            if lane.sent and now >= lane.deadline:
                self.lost(lane, "died", self.timed_out(), kill=True)
        if self.unsent and not self.lanes and not self.p._stopping.is_set():
            self.lanes.extend(_Lane(process) for process in self.p._cpu.lend(0.05))

    def read_reply(self, lane: _Lane) -> None:
        try:
            ok, value = lane.process.receive()
        except (EOFError, OSError):
            self.lost(lane, "died", self.crashed(lane))
            return
        job = lane.sent.popleft()
        now = time.monotonic()
        # A reply read after the deadline is late, whatever kept the pump from reading it sooner (the pool's
        # timer wins such a race too); the process answered, so it stays.
        late = now > lane.deadline
        lane.deadline = now + self.p._limits.validation_timeout_s if lane.sent else float("inf")
        outcome: _Outcome | None = value if ok else None
        reason = self.p._cpu.counted(lane.process, outcome) if outcome is not None else None
        if outcome is not None and outcome.out_of_memory is not None:
            self.replied(job, CheckOutOfMemory(outcome.out_of_memory), now)
            self.lost(lane, "out_of_memory", None, kill=bool(lane.sent))
            return
        lane.retiring = lane.retiring or reason
        if late:
            self.replied(job, self.timed_out(), now)
        else:  # flow_check's result, or the exception it raised (the process itself is fine)
            self.replied(job, outcome.value if outcome is not None else value, now)

    def timed_out(self) -> CheckTimeout:
        return CheckTimeout(f"check did not finish within {self.p._limits.validation_timeout_s:g} s")

    @staticmethod
    def crashed(lane: _Lane) -> CheckCrashed:
        """What the running check of a process that died gets (never run again: it may be what killed it)."""
        status = lane.process.exit_status()
        return CheckCrashed(f"the validation process died during the check (exit status {status})")

    def replied(self, job: _Job, outcome: Outcome, now: float) -> None:
        if not self.replies:
            self.first_reply_at = now
        self.replies.append((job, outcome))

    def lost(self, lane: _Lane, reason: str, head: CheckAborted | None, *, kill: bool = False) -> None:
        """``lane``'s process is gone or replaced now: the check at its head gets ``head`` (when given),
        the checks behind it, which had not started, go to other processes first."""
        if head is not None and lane.sent:
            self.replied(lane.sent.popleft(), head, time.monotonic())
        self.unsent.extendleft(reversed(lane.sent))
        lane.sent.clear()
        self.lanes.remove(lane)
        self.p._cpu.replace(lane.process, reason, kill=kill)

    def give_back_idle(self, stopping: bool) -> None:
        """Idle lanes go back to the pool when nothing waits for them, someone else waits for a process,
        or they are due for recycling."""
        nothing_to_do = stopping or (not self.unsent and self.exhausted)
        for lane in list(self.lanes):
            if lane.sent:
                continue
            if lane.retiring is not None:
                self.lanes.remove(lane)
                self.p._cpu.replace(lane.process, lane.retiring)
            elif nothing_to_do or self.p._cpu.wanted:
                self.lanes.remove(lane)
                self.p._cpu.give_back(lane.process)

    # --- the end -------------------------------------------------------------------------------------
    def unsent_back_to_queue(self) -> None:
        """While stopping, flows not sent yet are released at once (the next start takes them)."""
        if self.unsent:
            self.release(list(self.unsent))
            self.unsent.clear()

    def abandon(self) -> None:
        """After the grace: the checks still running are abandoned (processes killed), their jobs released;
        the verdicts read are recorded first."""
        if self.replies and not self.turn(0, ()):
            log.warning("pump_verdicts_lost", flows=len(self.replies))  # their leases expire: checked again
        held = self.held()
        for lane in list(self.lanes):
            if lane.sent:
                self.lanes.remove(lane)
                self.p._cpu.replace(lane.process, "abandoned", kill=True)
        self.give_back_idle(True)
        self.unsent.clear()
        self.release(held)
        self.p.holding = 0

    def release(self, jobs: Sequence[_Job]) -> None:
        if not jobs:
            return
        p, conn = self.p, self.db.conn
        try:
            with p._store.database.thread_writes(), write_transaction(conn):
                for job in jobs:
                    self.db.execute(sql.RELEASE, {"flow_number": job.claim.flow_number, "worker_id": p._worker_id})
        except sqlite3.Error as exc:  # their leases expire and recovery takes them (an attempt counted)
            log.warning("pump_release_failed", error=str(exc), flows=len(jobs))
            return
        for job in jobs:
            log.info("flow_handed_back", flow_number=job.claim.flow_number)
