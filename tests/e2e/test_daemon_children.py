"""The daemon's child processes die with it, even when it is killed with -9 alone (not its group)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from clients.client import AsyncClient
from tests import factory
from tests.e2e.daemon import RunningDaemon, start_daemon

CHILDREN_GONE_S = 10.0  # the kernel signals them at once; this only allows for a loaded machine
PROCESSES = 2  # validation processes
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    """A process as /proc shows it; ``(pid, started)`` tells it from a later process with its pid."""

    pid: int
    ppid: int
    session: int
    started: int  # clock ticks after boot
    cpu_ticks: int  # user + system
    cmdline: str

    @property
    def kind(self) -> str:
        if "multiprocessing.resource_tracker" in self.cmdline:
            return "resource tracker"
        if "multiprocessing.spawn" in self.cmdline:
            return "validation process"
        if "sqlite_flow_writer" in self.cmdline:
            return "deposits' writer"
        return "other"


def read_proc(pid: int) -> Proc | None:
    """The process ``pid``, or None when it has ended (a zombie has ended too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # fields[0] is field 3 of proc(5), the state
    if fields[0] == "Z":
        return None
    return Proc(pid, int(fields[1]), int(fields[3]), int(fields[19]), int(fields[11]) + int(fields[12]), cmdline)


def all_procs() -> list[Proc]:
    return [p for entry in Path("/proc").iterdir() if entry.name.isdigit() and (p := read_proc(int(entry.name)))]


def descendants(root: int) -> list[Proc]:
    """Every process whose ancestry leads to ``root`` (children, their children...)."""
    procs = all_procs()
    found: list[Proc] = []
    parents = {root}
    while True:
        children = [p for p in procs if p.ppid in parents and p not in found]
        if not children:
            return found
        found.extend(children)
        parents = {p.pid for p in children}


def alive(recorded: list[Proc]) -> list[Proc]:
    """Those of ``recorded`` still running (the same process, not a new one that took its pid)."""
    return [p for p in recorded if (now := read_proc(p.pid)) is not None and now.started == p.started]


async def busy_validation_process(daemon: RunningDaemon, timeout_s: float) -> Proc:
    """A validation process using the CPU (a check running), waited for."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = {p.pid: p for p in descendants(daemon.proc.pid) if p.kind == "validation process"}
        await asyncio.sleep(0.5)
        for p in descendants(daemon.proc.pid):
            if p.pid in before and p.cpu_ticks - before[p.pid].cpu_ticks >= 0.3 * TICKS_PER_S:
                return p
    raise AssertionError("no validation process became busy:\n" + "\n".join(daemon.lines[-10:]))


def element_bomb(number: str, elements: int) -> bytes:
    """A UBL invoice within every door budget whose check keeps a process busy for several seconds."""
    invoice = factory.ubl_invoice(factory.integrating(number))
    return invoice.replace(b"</cbc:ID>", b"</cbc:ID><cbc:Note>" + b"<x/>" * elements + b"</cbc:Note>", 1)


@pytest.mark.timeout(180)
async def test_kill_9_of_the_daemon_alone_leaves_no_child(tmp_path: Path) -> None:
    """After ``kill -9`` of the daemon's pid only (its children get no signal from us), every process
    it started — the validation processes, one of them busy in a check, the multiprocessing resource
    tracker and the deposits' writer — has ended within CHILDREN_GONE_S, and none is left in the
    daemon's session."""
    daemon = start_daemon(tmp_path / "data", env={"FLUXDEPOT_WORKERS__PROCESSES": str(PROCESSES)})
    pid = daemon.proc.pid
    recorded: list[Proc] = []
    try:
        async with AsyncClient(daemon.ready["grpc"], token="demo-technical-token") as client:
            first = await client.deposit(factory.ubl_invoice(factory.integrating("KIDS-1")), "kids-1.xml")
            assert (await asyncio.wait_for(client.wait_final(first.flow_number), 60)).status == "INTEGRATED"
            await client.deposit(element_bomb("KIDS-2", 1_900_000), "kids-2.xml")
        busy = await busy_validation_process(daemon, timeout_s=60)
        recorded = descendants(pid)
        kinds = sorted(p.kind for p in recorded)
        assert kinds.count("validation process") == PROCESSES, kinds
        assert kinds.count("resource tracker") == 1, kinds
        assert kinds.count("deposits' writer") == 1, kinds

        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        assert daemon.wait(10) == -signal.SIGKILL
        while alive(recorded) and time.monotonic() - killed < CHILDREN_GONE_S:  # noqa: ASYNC110 - /proc offers nothing to await
            await asyncio.sleep(0.02)
        gone_s = time.monotonic() - killed
        print(f"children gone {gone_s:.2f} s after kill -9 of the daemon ({len(recorded)} processes)")
        assert alive(recorded) == [], [(p.kind, p.pid) for p in alive(recorded)]
        assert busy not in alive(recorded)
        assert [p for p in all_procs() if p.session == pid] == []
    finally:
        for p in alive(recorded):  # never leave one behind for the next tests
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        if daemon.proc.returncode is None:
            daemon.kill9()


def data_limit_bytes(pid: int) -> int:
    """The RLIMIT_DATA soft limit of process ``pid``, as /proc shows it."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            return int(line.split()[3])
    raise AssertionError(f"no data limit for {pid}")


async def test_the_workers_section_bounds_the_validation_processes(tmp_path: Path) -> None:
    """``[workers] memory_limit_bytes`` is each validation process's RLIMIT_DATA, and with
    ``recycle_after_checks = 1`` the process that checked a flow is replaced by a new one."""
    env = {
        "FLUXDEPOT_WORKERS__PROCESSES": "1",
        "FLUXDEPOT_WORKERS__MEMORY_LIMIT_BYTES": str(1024 * 1024 * 1024),
        "FLUXDEPOT_WORKERS__RECYCLE_AFTER_CHECKS": "1",
    }
    daemon = start_daemon(tmp_path / "data", env=env)
    try:
        (first,) = [p for p in descendants(daemon.proc.pid) if p.kind == "validation process"]
        assert data_limit_bytes(first.pid) == 1024 * 1024 * 1024
        async with AsyncClient(daemon.ready["grpc"], token="demo-technical-token") as client:
            flow = await client.deposit(factory.ubl_invoice(factory.integrating("RECYCLE-1")), "recycle-1.xml")
            assert (await asyncio.wait_for(client.wait_final(flow.flow_number), 60)).status == "INTEGRATED"
        deadline = time.monotonic() + 30
        while first in alive([first]) and time.monotonic() < deadline:  # noqa: ASYNC110 - /proc offers nothing to await
            await asyncio.sleep(0.05)
        assert alive([first]) == []
        assert daemon.has_event("validation_process_recycled")
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
