"""The whole daemon over gRPC, with the Python client and the CLI as callers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clients.client import AsyncClient
from clients.errors import ResourceExhausted
from tests import factory
from tests.e2e.daemon import REPO, start_daemon
from tests.procs import still_running

OK = REPO / "config" / "demo" / "invoices" / "ok"


async def test_deposit_to_report_through_the_daemon(tmp_path: Path) -> None:
    """A deposit over gRPC is processed by the daemon's workers and its report says INTEGRATED."""
    daemon = start_daemon(tmp_path / "data")
    try:
        async with AsyncClient(daemon.ready["grpc"], token="demo-technical-token") as client:
            result = await client.deposit_file(OK / "ubl_service_code.xml")
            flow = await asyncio.wait_for(client.wait_final(result.flow_number), 60)
            assert flow.status == "INTEGRATED"
            report = await client.get_report(result.flow_number)
            assert report.flow.status == "INTEGRATED" and report.next_action == "NONE"
        async with AsyncClient(daemon.ready["grpc"], token="demo-manager-token") as manager:
            page = await manager.search()
            assert [f.flow_number for f in page.flows] == [result.flow_number]
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0


async def test_ctrl_c_stops_the_daemon_and_its_children_without_a_traceback(tmp_path: Path) -> None:
    """A terminal's Ctrl-C sends SIGINT to the whole process group: the daemon, its validation processes
    and its deposits' writer. The daemon stops in order and exits 0; its children stop with it, and
    none prints a traceback."""
    daemon = start_daemon(tmp_path / "data")
    try:
        async with AsyncClient(daemon.ready["grpc"], token="demo-technical-token") as client:
            result = await client.deposit_file(OK / "ubl_service_code.xml")  # starts the deposits' writer
            assert (await asyncio.wait_for(client.wait_final(result.flow_number), 60)).status == "INTEGRATED"
        children = [  # every thread's: the validation processes are started from the pool's own thread
            int(c)
            for task in Path(f"/proc/{daemon.proc.pid}/task").iterdir()
            for c in (task / "children").read_text().split()
        ]
        assert len(children) >= 2  # the validation pool's processes and the writer (+ multiprocessing's helpers)
        os.killpg(daemon.proc.pid, signal.SIGINT)
        assert daemon.wait(30) == 0
    finally:
        if daemon.proc.returncode is None:
            daemon.kill9()
    assert daemon.has_event("shutdown_complete")
    output = "\n".join(daemon.lines)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    # A child sees its parent go and exits on its own (multiprocessing's resource tracker too).
    left = await still_running(children, 10)
    assert not left, [Path(f"/proc/{c}/cmdline").read_bytes() for c in left]


async def test_oversized_deposit_is_refused_with_the_limit(tmp_path: Path) -> None:
    """A deposit over [limits] max_flow_bytes is RESOURCE_EXHAUSTED, naming the limit."""
    daemon = start_daemon(tmp_path / "data", env={"FLUXDEPOT_LIMITS__MAX_FLOW_BYTES": "2000"})
    try:
        async with AsyncClient(daemon.ready["grpc"], token="demo-technical-token") as client:
            with pytest.raises(ResourceExhausted, match="2000 bytes"):
                await client.deposit(b"<a>" + b"x" * 5000 + b"</a>", "big.xml")
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0


async def test_sigterm_under_load_exits_0_and_loses_nothing(tmp_path: Path) -> None:
    """SIGTERM while clients deposit: exit 0 within the grace, `shutdown_complete` logged, and every
    acknowledged deposit is there after a restart and reaches a final status."""
    daemon = start_daemon(tmp_path / "data")
    acknowledged: list[str] = []

    async def depositor(client: AsyncClient, worker: int) -> None:
        for i in range(1000):
            try:
                result = await client.deposit(
                    factory.ubl_invoice(factory.integrating(f"LOAD-{worker}-{i}")), f"{worker}-{i}.xml"
                )
            except Exception:
                return  # the daemon is going away: unacknowledged deposits may fail
            acknowledged.append(result.flow_number)

    async with AsyncClient(daemon.ready["grpc"], token="demo-technical-token") as client:
        tasks = [asyncio.create_task(depositor(client, w)) for w in range(4)]
        await asyncio.sleep(3)
        daemon.signal(signal.SIGTERM)
        code = await asyncio.to_thread(daemon.wait, 40)
        await asyncio.gather(*tasks)
    assert code == 0
    assert daemon.has_event("shutdown_complete")
    assert acknowledged, "no deposit went through before the signal"

    again = start_daemon(tmp_path / "data")
    try:
        async with AsyncClient(again.ready["grpc"], token="demo-technical-token") as client:
            for number in acknowledged:
                flow = await asyncio.wait_for(client.wait_final(number), 120)
                assert flow.status in ("INTEGRATED", "REJECTED"), (number, flow.status)
    finally:
        again.signal(signal.SIGTERM)
        assert again.wait(30) == 0


def test_cli_talks_to_the_daemon(tmp_path: Path) -> None:
    """`fluxdepot-cli deposit --wait` against the running daemon prints the flow and exits 0."""
    daemon = start_daemon(tmp_path / "data")
    try:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "fluxdepot-cli"),
                "--target",
                daemon.ready["grpc"],
                "--token",
                "demo-technical-token",
                "deposit",
                "--wait",
                str(OK / "cii_service_code.xml"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "INTEGRATED" in result.stdout
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
