"""The validation pool: CPU-heavy checks run in worker processes, never on the event loop (DESIGN §9.5).

Each process loads its compiled schemas and XSLTs once (module-level caches in ``engine.validation``)
and keeps them until it is replaced. Invariants:

* One check per process at a time. A call waits for an idle, started process; its timeout runs from
  then (a call does not time out because the checks before it were slow, nor while a process warms up).
* A check that does not finish in time, runs out of memory or whose process dies raises
  ``CheckTimeout``, ``CheckOutOfMemory`` or ``CheckCrashed``. Only that process is replaced (killed
  first when it hangs): each process has its own pipe, so checks running in the others go on. A
  call handed a process that had died while idle runs on another one (the check had not started).
* Each process is bounded (``ProcessLimits``): the kernel refuses it more than ``memory_limit_bytes``
  of private memory (``RLIMIT_DATA``; not ``RLIMIT_AS``, which Saxon's runtime exceeds at start by
  reserving 32 GiB of address space it never touches). A check that raises ``MemoryError``, or whose
  peak RSS came within ``NEAR_LIMIT`` of the limit, is not trusted: libxml2 reports a failed allocation
  as a parse error, so its verdict could be wrong (Saxon's runtime, for its part, ends the process with
  status 99 when its heap cannot grow: ``CheckCrashed``). Its process is replaced, as is a process after
  ``recycle_after_checks`` checks or once its RSS exceeds ``recycle_rss_bytes``; a replacement is
  started and warmed before it takes a check.
* Each process has a pipe of its own, and a call is one request and one reply on it, read by the
  caller's event loop (``add_reader``): no executor threads, no queue feeder, no wake-up of another
  thread between a check's end and its caller (they cost the daemon ~0.5 ms of CPU per check, measured
  with ``bench.pipeline``). A pipe at end-of-file is a process that died.
* The processes die with the daemon, even on ``kill -9`` (Linux): each asks the kernel for SIGKILL
  when its parent thread ends (``PR_SET_PDEATHSIG``), then checks that the daemon was still there
  when it asked. Their parent thread is the pool's own spawner, which lives until ``close()``: a
  process started from a short-lived thread (``asyncio.to_thread``) would die with that thread. Once
  they are gone the multiprocessing resource tracker reads end-of-file on its pipe and exits too.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import pickle
import resource
import signal
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

import structlog

T = TypeVar("T")
MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_MEMORY_LIMIT_BYTES = 512 * MiB  # a warm process uses ~250 MiB and a check needs room besides
NEAR_LIMIT = 0.9  # a check whose peak RSS reached this share of the memory limit is not trusted
START_RETRY_S = (0.5, 30.0)  # a process that fails to start is started again after 0.5 s, doubling to 30 s
EXIT_STATUS_WAIT_S = 10.0  # a loaded machine may take seconds to let the reaping thread run
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
SEND_ON_LOOP_MAX_BYTES = 1024 * 1024  # bigger flow bytes are pickled and written by a thread, off the loop
_HEADER = struct.Struct("!Q")  # the byte length of the pickle that follows, on a process's pipe
_READY = "ready"  # a process's first message: its initializer ran
# A pipe holds 64 KiB (Linux's default): a bigger read buffer only costs its allocation, ~15 µs of CPU per
# reply for 1 MiB against ~1 µs for 64 KiB (a reply is ~1 KB).
_READ_BYTES = 64 * 1024
log = structlog.get_logger("fluxdepot.cpu_pool")


class CheckAborted(Exception):
    """A check gave no result; the flow is not judged."""


class CheckTimeout(CheckAborted):
    """The check did not finish in time."""


class CheckCrashed(CheckAborted):
    """The process running the check died."""


class CheckOutOfMemory(CheckAborted):
    """The check needed more memory than a validation process may use."""


@dataclass(frozen=True)
class ProcessLimits:
    """Bounds of each validation process (``[workers]`` in the config); 0 turns a bound off."""

    memory_limit_bytes: int = 2 * GiB  # private memory (RLIMIT_DATA); a warm process uses ~250 MiB
    recycle_after_checks: int = 10_000  # a process starts (~1.6 s of CPU) for every this many checks
    recycle_rss_bytes: int = 1 * GiB  # a process this big after a check is replaced (memory is not given back)


# In the process ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    """What a process sends back for one check."""

    value: Any
    rss_bytes: int  # the process's resident memory after the check
    out_of_memory: str | None  # why the check is not trusted; None when it ran within its memory


def _start_process(parent_pid: int, memory_limit_bytes: int, initializer: Callable[[], None] | None) -> None:
    """A pool process dies with the daemon, is bounded, and ignores SIGINT: a terminal's Ctrl-C reaches
    the whole process group, and the daemon that handles it stops the pool in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    _limit_memory(memory_limit_bytes)
    if initializer is not None:
        initializer()


def _serve(conn: Connection, parent_pid: int, memory_limit_bytes: int, initializer: Callable[[], None] | None) -> None:
    """The process's life: start, say ready, then answer each request ``(fn, args)`` with ``(True,
    _Outcome)``, or ``(False, exception)`` when ``fn`` raised, until the daemon closes the pipe."""
    _start_process(parent_pid, memory_limit_bytes, initializer)
    fd = conn.fileno()
    _write_frame(fd, pickle.dumps(_READY))
    while (request := _read_frame(fd)) is not None:
        try:
            fn, args = pickle.loads(request)  # noqa: S301 - written by the daemon that started us, on our pipe
            reply: tuple[bool, Any] = (True, _call(fn, args))
        except Exception as exc:  # fn raised (or could not be found): the caller gets the exception
            reply = (False, exc)
        try:
            body = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle: its text at least
            body = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
        _write_frame(fd, body)


def _write_frame(fd: int, body: bytes) -> None:
    """One length-prefixed message on a blocking pipe."""
    view = memoryview(_HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts: list[bytes] = []
    while size:
        part = os.read(fd, size)
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _read_frame(fd: int) -> bytes | None:
    """The next message on a blocking pipe; None at end of file."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(fd, _HEADER.unpack(header)[0])


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent thread ends (Linux; elsewhere a no-op)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:  # the daemon died before prctl: no signal will come
        os._exit(1)


def _limit_memory(limit_bytes: int) -> None:
    if not limit_bytes or sys.platform != "linux":
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)  # the daemon's own limit (e.g. systemd LimitDATA=) is lower
    resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # no /proc: the peak is the best figure there is
        return _peak_rss_bytes()


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> _Outcome:
    """Run one check and measure its memory against the process's limit. A process whose peak reached
    ``NEAR_LIMIT`` of it is replaced, so a peak above that now was reached by this check."""
    peak_before = _peak_rss_bytes()
    try:
        value = fn(*args)
    except MemoryError:
        return _Outcome(None, _rss_bytes(), "the check ran out of memory (MemoryError)")
    peak = _peak_rss_bytes()
    limit = resource.getrlimit(resource.RLIMIT_DATA)[0]
    if limit != resource.RLIM_INFINITY and peak > peak_before and peak >= NEAR_LIMIT * limit:
        return _Outcome(
            None,
            _rss_bytes(),
            f"the check used {peak // MiB} MiB of the {limit // MiB} MiB a validation process may use",
        )
    return _Outcome(value, _rss_bytes(), None)


# In the daemon -------------------------------------------------------------------------------------


class _Process:
    """One validation process and the daemon's end of its pipe (one check at a time)."""

    def __init__(self, context: SpawnContext, initargs: tuple[Any, ...]) -> None:
        self.conn, theirs = context.Pipe(duplex=True)
        self.handle: BaseProcess = context.Process(target=_serve, args=(theirs, *initargs), name="fluxdepot-check")
        try:
            self.handle.start()  # from the spawner thread: its parent thread
        finally:
            theirs.close()
        self.started = False  # its initializer ran: it can take checks
        self.checks = 0
        self._buffer = bytearray()
        self._closing = threading.Lock()  # the pool and the thread waiting for its start may both stop it

    @property
    def pid(self) -> int | None:
        return self.handle.pid

    def send(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Send one request; ``OSError`` when the process is gone."""
        _write_frame(self.conn.fileno(), pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL))

    def receive(self) -> tuple[bool, Any]:
        """Wait for the reply, blocking (warm-up, off the event loop); ``EOFError`` when the process died."""
        body = _read_frame(self.conn.fileno())
        if body is None:
            raise EOFError("the validation process closed its pipe")
        reply: tuple[bool, Any] = pickle.loads(body)  # noqa: S301 - our child, on its own pipe
        return reply

    async def reply(self) -> tuple[bool, Any]:
        """The reply, read by this event loop as its bytes arrive; ``EOFError`` when the process died."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        fd = self.conn.fileno()

        def readable() -> None:
            try:
                data = os.read(fd, _READ_BYTES)  # what is there: select said readable
            except OSError:  # e.g. a reset: as dead as end of file
                data = b""
            if not data:
                loop.remove_reader(fd)
                if not waiter.done():
                    waiter.set_exception(EOFError("the validation process closed its pipe"))
                return
            self._buffer += data
            if len(self._buffer) < _HEADER.size:
                return
            end = _HEADER.size + _HEADER.unpack_from(self._buffer)[0]
            if len(self._buffer) < end:
                return
            body, self._buffer = bytes(self._buffer[_HEADER.size : end]), bytearray()
            loop.remove_reader(fd)
            if not waiter.done():
                waiter.set_result(pickle.loads(body))  # noqa: S301 - our child, on its own pipe

        loop.add_reader(fd, readable)
        try:
            return await waiter
        finally:
            loop.remove_reader(fd)

    def wait_ready(self) -> bool:
        """Block until the process says it started; False when it died first."""
        try:
            body = _read_frame(self.conn.fileno())
        except OSError:
            return False
        return body is not None and pickle.loads(body) == _READY  # noqa: S301 - our child

    def exit_status(self) -> int | None:
        """The exit status of a process that died (-N: killed by signal N); None if not known in time."""
        self.handle.join(EXIT_STATUS_WAIT_S)
        return self.handle.exitcode

    def stop(self, *, kill: bool = False) -> None:
        """Close the pipe (an idle process sees end of file and exits), killing the process first if ``kill``."""
        with self._closing:
            if kill and self.handle.exitcode is None:
                self.handle.kill()
            self.conn.close()

    def join(self) -> None:
        """Wait for the process to exit (after ``stop``)."""
        self.handle.join()


class CpuPool:
    """``processes`` validation processes, each started with ``initializer`` and bounded by ``limits``.

    ``run`` may be awaited from any event loop (the test suite shares one pool between the loops of its
    tests); the bookkeeping is guarded by a thread lock.
    """

    def __init__(
        self,
        processes: int,
        *,
        initializer: Callable[[], None] | None = None,
        limits: ProcessLimits = ProcessLimits(),
    ) -> None:
        self._size = max(1, processes)
        self._limits = limits
        # spawn: a forked child would inherit the parent's event loop and driver threads.
        self._context = multiprocessing.get_context("spawn")
        self._initargs = (os.getpid(), limits.memory_limit_bytes, initializer)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a process became idle, or failed to start
        self._idle: deque[_Process] = deque()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[_Process]]] = deque()
        self._live: set[_Process] = set()  # starting, idle or busy
        self._start_failure: str | None = None
        self._closed = threading.Event()
        # The processes' parent thread: it must outlive them (PR_SET_PDEATHSIG fires when it ends).
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fluxdepot-cpu-spawner")
        for _ in range(self._size):
            self._spawner.submit(self._start, 0.0)

    # --- checks --------------------------------------------------------------------------------
    async def run(self, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a validation process; raise ``CheckTimeout``, ``CheckOutOfMemory`` or
        ``CheckCrashed``. ``fn`` must be a module-level function (it is pickled by name)."""
        for _ in range(self._size + 1):
            process = await self._acquire()
            try:
                if sum(len(a) for a in args if isinstance(a, bytes)) > SEND_ON_LOOP_MAX_BYTES:
                    await asyncio.to_thread(process.send, fn, args)  # a big flow is not copied on the loop
                else:
                    process.send(fn, args)
            except OSError:  # it died while idle: the check never started, another process takes it
                self._retire(process, "died_idle")
                continue
            except asyncio.CancelledError:  # part of the request may have been sent
                self._retire(process, "abandoned", kill=True)
                raise
            except BaseException:  # e.g. an argument that does not pickle: nothing was sent
                self._release(process)
                raise
            try:
                async with asyncio.timeout(timeout_s):
                    ok, value = await process.reply()
            except TimeoutError:
                self._retire(process, "died", kill=True)  # the only way to stop a running check
                raise CheckTimeout(f"check did not finish within {timeout_s:g} s") from None
            except EOFError:
                status = await asyncio.to_thread(process.exit_status)
                self._retire(process, "died")
                raise CheckCrashed(f"the validation process died during the check (exit status {status})") from None
            except BaseException:  # cancelled: the check would answer the next caller; end it
                self._retire(process, "abandoned", kill=True)
                raise
            if not ok:  # fn raised: the process itself is fine
                self._release(process)
                raise value
            outcome: _Outcome = value
            self._checked(process, outcome)
            if outcome.out_of_memory is not None:
                raise CheckOutOfMemory(outcome.out_of_memory)
            result: T = outcome.value
            return result
        raise CheckCrashed("no validation process could take the check")

    def warm_up(self, fn: Callable[[], object]) -> None:
        """Wait until every process has started, and run ``fn`` in each (the first flows are then not
        slow). Raises ``CheckAborted`` when a process cannot start (e.g. its memory limit is below what
        its initializer needs)."""
        with self._changed:
            while len(self._idle) < self._size and self._start_failure is None:
                self._changed.wait()
            if self._start_failure is not None:
                raise CheckAborted(self._start_failure)
            processes = list(self._idle)
            self._idle.clear()
        pending = deque(processes)  # sent a request whose reply is not read yet
        try:
            for process in processes:
                process.send(fn, ())
            while pending:
                ok, value = pending[0].receive()
                self._release(pending.popleft())
                if not ok:
                    raise value
        except (OSError, EOFError):
            raise CheckCrashed("a validation process died while warming up") from None
        finally:
            for process in pending:  # its reply would answer the next caller
                self._retire(process, "died", kill=True)

    def close(self) -> None:
        """Stop the processes, killing any still busy (the check was abandoned), then the spawner."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._spawner.submit(lambda: None).result()  # no process is being started after this
        with self._lock:
            idle, live, waiters = set(self._idle), list(self._live), list(self._waiters)
            self._idle.clear()
            self._live.clear()
            self._waiters.clear()
        for loop, waiter in waiters:
            _call_soon(loop, _fail, waiter, RuntimeError("the validation pool is closed"))
        for process in live:  # an idle one sees end of file and exits; a busy or starting one is killed
            if process in idle:
                process.stop()
            else:  # whoever waits on its pipe (a check, or the thread waiting for its start) reads end of
                process.handle.kill()  # file, then closes the pipe
        for process in live:
            process.join()
        self._spawner.shutdown(wait=True)

    # --- processes -----------------------------------------------------------------------------
    async def _acquire(self) -> _Process:
        """An idle process, waited for (cancellable) when all are busy."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("the validation pool is closed")
            if self._idle:
                return self._idle.popleft()
            if self._start_failure is not None and not any(p.started for p in self._live):
                raise CheckAborted(self._start_failure)  # none will come soon: do not wait for one
            waiter: asyncio.Future[_Process] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed one just as we were cancelled
                self._release(waiter.result())
            raise

    def _release(self, process: _Process) -> None:
        """``process`` is idle: hand it to the first live waiter, else keep it (any thread)."""
        with self._lock:
            if self._closed.is_set():
                process.stop()
                return
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                if not waiter.done() and _call_soon(loop, self._hand, waiter, process):
                    return
            self._idle.append(process)
            self._changed.notify_all()

    def _hand(self, waiter: asyncio.Future[_Process], process: _Process) -> None:
        """In the waiter's loop: give it the process, or take it back if the waiter gave up meanwhile."""
        if waiter.done():
            self._release(process)
        else:
            waiter.set_result(process)

    def _checked(self, process: _Process, outcome: _Outcome) -> None:
        """A check ended with an outcome: keep the process, or replace it."""
        reason = self.counted(process, outcome)
        if reason is None:
            self._release(process)
        else:
            self._retire(process, reason, rss_bytes=outcome.rss_bytes)

    def counted(self, process: _Process, outcome: _Outcome) -> str | None:
        """Count a check ``process`` ended with ``outcome``; why the process is to be replaced, or None."""
        process.checks += 1
        limits = self._limits
        if outcome.out_of_memory is not None:
            return "out_of_memory"
        if limits.recycle_rss_bytes and outcome.rss_bytes > limits.recycle_rss_bytes:
            return "rss"
        if limits.recycle_after_checks and process.checks >= limits.recycle_after_checks:
            return "checks"
        return None

    # --- processes lent to a thread (the flows' pump, engine.pump) -------------------------------
    # The borrower sends requests on a lent process's pipe and reads its replies itself (several may be
    # queued: the process answers them in order), then gives it back idle, or has it replaced.
    @property
    def size(self) -> int:
        return self._size

    @property
    def wanted(self) -> bool:
        """A caller of ``run`` is waiting for a process."""
        return bool(self._waiters)

    def lend(self, timeout_s: float) -> list[_Process]:
        """Every idle process, waiting up to ``timeout_s`` for one; [] when none came or the pool is closed."""
        with self._changed:
            if not self._idle and not self._closed.is_set():
                self._changed.wait(timeout_s)
            if self._closed.is_set():
                return []
            lent = list(self._idle)
            self._idle.clear()
        return lent

    def give_back(self, process: _Process) -> None:
        """A lent process, idle (every reply read)."""
        self._release(process)

    def replace(self, process: _Process, reason: str, *, kill: bool = False) -> None:
        """A lent process is done with (recycled, dead, or killed now if ``kill``); another is started."""
        self._retire(process, reason, kill=kill)

    def _retire(self, process: _Process, reason: str, *, kill: bool = False, **details: int) -> None:
        """Stop ``process`` (ended, dead, or killed now if ``kill``) and start its replacement. The next
        process start reaps it (``multiprocessing``), as does ``close``."""
        process.stop(kill=kill)
        with self._lock:
            self._live.discard(process)
            if self._closed.is_set():
                return
            self._spawner.submit(self._start, 0.0)
        if reason in ("checks", "rss", "abandoned"):
            log.info("validation_process_recycled", pid=process.pid, reason=reason, checks=process.checks, **details)
        else:  # died, died_idle, out_of_memory
            log.warning("validation_process_replaced", pid=process.pid, reason=reason, checks=process.checks, **details)

    def _start(self, retry_s: float) -> None:
        """Start one process (on the spawner thread, its parent); it takes checks once started."""
        if self._closed.wait(retry_s):
            return
        try:
            process = _Process(self._context, self._initargs)
        except Exception as exc:  # e.g. out of file descriptors or memory in the daemon
            self._start_failed(f"a validation process could not be started ({exc})", retry_s)
            return
        with self._lock:
            self._live.add(process)
        # Its initializer takes a second or more: waited for apart, so processes start side by side.
        threading.Thread(target=self._started, args=(process, retry_s), name="fluxdepot-cpu-start", daemon=True).start()

    def _started(self, process: _Process, retry_s: float) -> None:
        if process.wait_ready():
            with self._lock:
                process.started = True
                self._start_failure = None
            self._release(process)
            return
        process.stop()
        with self._lock:
            self._live.discard(process)
        if not self._closed.is_set():
            self._start_failed(f"a validation process could not start (exit status {process.exit_status()})", retry_s)

    def _start_failed(self, problem: str, retry_s: float) -> None:
        """Try again later, doubling the delay; meanwhile calls fail at once if no process can take them."""
        retry_s = min(max(2 * retry_s, START_RETRY_S[0]), START_RETRY_S[1])
        with self._changed:
            self._start_failure = problem
            self._changed.notify_all()
            if self._closed.is_set():
                return
            self._spawner.submit(self._start, retry_s)
            waiters = [] if any(p.started for p in self._live) else list(self._waiters)
            for loop, waiter in waiters:  # they would wait for nothing
                _call_soon(loop, _fail, waiter, CheckAborted(problem))
            if waiters:
                self._waiters.clear()
        log.error("validation_process_start_failed", problem=problem, retry_s=retry_s)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> bool:
    """Schedule ``callback`` in ``loop`` from any thread; False when that loop is closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        return False
    return True


def _fail(waiter: asyncio.Future[Any], error: Exception) -> None:
    if not waiter.done():
        waiter.set_exception(error)
