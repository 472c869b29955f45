"""The validation pool's processes: bounded in memory, recycled, replaced alone when they fail.

The checks here are module-level functions of this file, run in real spawned processes through
``CpuPool``'s public API (a spawned process imports this module to find them).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.cpu_pool import CheckAborted, CheckCrashed, CheckOutOfMemory, CheckTimeout, CpuPool, ProcessLimits
from tests.procs import still_running

MIB = 1024 * 1024
_HOARD: list[bytes] = []  # memory a check keeps, in its process


def allocate(size_bytes: int) -> int:
    """Touch ``size_bytes`` of memory; its size."""
    return len(b"x" * size_bytes)


def fill_to(share: float) -> int:
    """Touch memory until the process's private memory is ``share`` of its limit; the bytes touched."""
    limit = resource.getrlimit(resource.RLIMIT_DATA)[0]
    status = Path("/proc/self/status").read_text()
    used = int(next(line for line in status.splitlines() if line.startswith("VmData:")).split()[1]) * 1024
    return len(b"x" * int(share * limit - used))


def hoard(size_bytes: int) -> int:
    """Keep ``size_bytes`` of touched memory for the process's life (a leak); the pid."""
    _HOARD.append(b"x" * size_bytes)
    return os.getpid()


def pid_after(delay_s: float) -> int:
    time.sleep(delay_s)
    return os.getpid()


def die(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def hang(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


def cannot_start() -> None:
    raise RuntimeError("artefacts missing")


@contextmanager
def pool_of(processes: int, **limits: int) -> Iterator[CpuPool]:
    pool = CpuPool(processes, limits=ProcessLimits(**limits))
    try:
        yield pool
    finally:
        pool.close()


async def test_a_check_past_the_memory_limit_is_out_of_memory_and_the_next_check_runs() -> None:
    """A check allocating 1 GiB in a process limited to 512 MiB raises CheckOutOfMemory (the process
    survives the MemoryError, the daemon is untouched); the pool replaces that process and the next
    check in the same pool succeeds."""
    with pool_of(1, memory_limit_bytes=512 * MIB) as pool:
        first = await pool.run(30, os.getpid)
        assert await pool.run(30, allocate, 64 * MIB) == 64 * MIB  # within the limit: a plain result
        with pytest.raises(CheckOutOfMemory, match="MemoryError"):
            await pool.run(30, allocate, 1024 * MIB)
        after = await pool.run(30, os.getpid)
        assert after != first  # a fresh process: the one that ran out of memory is not trusted again
        assert await still_running([first], timeout_s=10) == []


async def test_a_check_that_nears_the_limit_is_not_trusted_even_if_it_returns() -> None:
    """A check whose peak RSS reached 90% of its process's limit ends CheckOutOfMemory although it
    returned (libxml2 turns a failed allocation into a parse error: such a result could be wrong)."""
    with pool_of(1, memory_limit_bytes=512 * MIB) as pool:
        with pytest.raises(CheckOutOfMemory, match=r"used \d+ MiB of the 512 MiB"):
            await pool.run(30, fill_to, 0.97)
        assert await pool.run(30, allocate, 16 * MIB) == 16 * MIB


async def test_a_process_that_dies_fails_its_check_only(tmp_path: Path) -> None:
    """A process killed during its check gives CheckCrashed with its exit status; the check running
    meanwhile in the other process returns normally, and a new process takes the dead one's place."""
    pid_file = tmp_path / "dead.pid"
    with pool_of(2) as pool:
        await asyncio.gather(pool.run(30, pid_after, 0.2), pool.run(30, pid_after, 0.2))  # both started
        slow = asyncio.ensure_future(pool.run(30, pid_after, 1.0))
        await asyncio.sleep(0.2)
        with pytest.raises(CheckCrashed, match=r"exit status -9"):
            await pool.run(30, die, str(pid_file))
        survivor = await slow
        dead = int(pid_file.read_text())
        assert survivor != dead
        for _ in range(50):  # the replacement starts in the background
            pids = set(await asyncio.gather(*(pool.run(30, pid_after, 0.1) for _ in range(2))))
            if len(pids) == 2:
                break
        assert survivor in pids and dead not in pids and len(pids) == 2


async def test_a_timed_out_check_kills_its_process_only(tmp_path: Path) -> None:
    """A check past its timeout raises CheckTimeout at the deadline, its process is killed and replaced,
    and the check running in the other process is not disturbed."""
    pid_file = tmp_path / "hung.pid"
    with pool_of(2) as pool:
        await asyncio.gather(pool.run(30, os.getpid), pool.run(30, os.getpid))
        other = asyncio.ensure_future(pool.run(30, pid_after, 1.5))
        started = time.monotonic()
        with pytest.raises(CheckTimeout):
            await pool.run(0.5, hang, str(pid_file))
        assert time.monotonic() - started < 2.0
        hung = int(pid_file.read_text())
        assert await still_running([hung], timeout_s=10) == []
        assert await other != hung
        assert await pool.run(30, allocate, MIB) == MIB


async def test_a_call_waiting_for_a_process_has_its_whole_timeout_once_it_runs() -> None:
    """With one process, two 1 s checks submitted together with a 1.6 s timeout both finish: the second's
    timeout runs from when it gets the process, not from when it was submitted (2 s before it ends)."""
    with pool_of(1) as pool:
        await pool.run(30, os.getpid)
        results = await asyncio.gather(pool.run(1.6, pid_after, 1.0), pool.run(1.6, pid_after, 1.0))
        assert results[0] == results[1]


async def test_recycling_after_n_checks_gives_a_new_process() -> None:
    """With recycle_after_checks=2, checks 1-2, 3-4 and 5 each run in a different process."""
    with pool_of(1, recycle_after_checks=2) as pool:
        pids = [await pool.run(30, os.getpid) for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert len(set(pids)) == 3


async def test_a_process_past_its_rss_bound_is_replaced() -> None:
    """A process holding more than recycle_rss_bytes after a check is replaced before the next one;
    one that stays under the bound keeps taking checks."""
    with pool_of(1, recycle_rss_bytes=160 * MIB) as pool:
        small = [await pool.run(30, hoard, MIB) for _ in range(3)]
        assert len(set(small)) == 1
        big = await pool.run(30, hoard, 200 * MIB)
        assert big == small[0]  # the check itself ran and returned normally
        assert await pool.run(30, os.getpid) != big


async def test_a_pool_whose_processes_cannot_start_fails_calls_instead_of_hanging() -> None:
    """When the initializer fails in every process, warm_up and run raise CheckAborted promptly
    (a flow would wait forever otherwise) and close() returns."""
    pool = CpuPool(1, initializer=cannot_start)
    try:
        with pytest.raises(CheckAborted, match="could not start"):
            await asyncio.to_thread(pool.warm_up, os.getpid)
        with pytest.raises(CheckAborted, match="could not start"):
            await asyncio.wait_for(pool.run(30, os.getpid), 10)
    finally:
        started = time.monotonic()
        pool.close()
        assert time.monotonic() - started < 5


def fail(message: str) -> None:
    raise ValueError(message)


async def test_a_check_that_raises_gives_its_exception_and_its_process_takes_the_next() -> None:
    """An exception raised by the check reaches the caller as it was raised, and the same process runs
    the next check (it is not replaced)."""
    with pool_of(1) as pool:
        first = await pool.run(30, os.getpid)
        with pytest.raises(ValueError, match="bad input"):
            await pool.run(30, fail, "bad input")
        assert await pool.run(30, os.getpid) == first


async def test_big_flow_bytes_reach_the_process_whole() -> None:
    """Bytes bigger than what is written from the event loop (sent by a thread instead) and a reply of
    several MiB (read as it arrives) cross whole, and the process goes on serving."""
    with pool_of(1) as pool:
        content = os.urandom(3 * MIB)
        assert await pool.run(30, bytes, content) == content
        assert await pool.run(30, len, b"x" * 10) == 10
