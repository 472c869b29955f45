"""``fluxdepot-cli``'s tables in a terminal of a given width (``COLUMNS``), and ``deposit --wait``'s
overall deadline, run as a subprocess against a real gRPC server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.cpu_pool import CpuPool
from tests.grpc_support import MANAGER, TECH, GrpcEnv, invoice

REPO = Path(__file__).resolve().parents[2]
LONG_NAME = "invoice-2026-{:04d}-long-name.xml"


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[GrpcEnv]:
    e = await GrpcEnv.start(tmp_path, cpu_pool, workers=True)
    try:
        yield e
    finally:
        await e.close()


@pytest.fixture
async def idle_env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[GrpcEnv]:
    """A server with no worker: deposited flows stay RECEIVED, so a wait for their end never ends."""
    e = await GrpcEnv.start(tmp_path, cpu_pool, workers=False)
    try:
        yield e
    finally:
        await e.close()


async def cli(
    env: GrpcEnv, *args: str, columns: int | None = None, token: str = TECH, timeout_s: float = 60
) -> tuple[int, str, str]:
    """Run ``fluxdepot-cli`` with stdout piped, as wide as ``columns`` (``COLUMNS``) when given."""
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES") and not k.startswith("FLUXDEPOT_")}
    environ["FLUXDEPOT_TOKEN"] = token
    if columns:
        environ["COLUMNS"] = str(columns)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.cli", "--target", env.target, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environ, cwd=REPO,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    finally:  # a CLI that hangs fails the test, and does not outlive it
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(), err.decode()


def headers(out: str) -> list[list[str]]:
    """The column headers of each table printed, in order (a header row is drawn between ┃)."""
    return [
        [h.strip() for h in line.strip().strip("┃").split("┃")] for line in out.splitlines() if line.startswith("┃")
    ]


def assert_fits(out: str, columns: int) -> None:
    too_wide = [line for line in out.splitlines() if len(line) > columns]
    assert too_wide == [], f"lines wider than {columns} columns"
    assert "…" not in out, "a cell was truncated"


def files(root: Path) -> list[str]:
    """Three invoices under a deep folder, with long names (one is rejected), and a missing file."""
    folder = root / "a" / "deep" / "folder"
    folder.mkdir(parents=True)
    paths = []
    for i in range(3):
        path = folder / LONG_NAME.format(i)
        path.write_bytes(invoice(f"FA-T{i}", service_code=None) if i == 1 else invoice(f"FA-T{i}"))
        paths.append(str(path))
    return [*paths, str(root / "missing.xml")]


async def test_deposit_search_and_dashboard_fit_80_columns(env: GrpcEnv, tmp_path: Path) -> None:
    """At 80 columns, deposit, search and dashboard print tables no wider than 80, each column headed in
    full, statuses whole (no "…"), files by base name: the Chorus Pro code, channel, issuer and invoice
    columns give way, file names fold. The deposit's title counts what was deposited and refused."""
    code, out, err = await cli(env, "deposit", "--wait", *files(tmp_path), columns=80)
    assert code == 2, err  # the missing file is refused
    assert_fits(out, 80)
    assert headers(out) == [["file", "flow number", "status", "note"]]
    assert "3 deposited, 1 refused" in out
    assert "deep" not in out and "missing.xml" in out and "[Errno 2]" in out
    assert out.count("INTEGRATED") == 2 and out.count("REJECTED") == 1

    code, out, _ = await cli(env, "search", columns=80)
    assert code == 0
    assert_fits(out, 80)
    assert headers(out) == [["flow number", "file", "status", "deposited (UTC)"]]
    _, page, _ = await cli(env, "search", "--json")
    flows = json.loads(page)["flows"]
    assert len(flows) == 3
    for flow in flows:  # the row's first line holds the whole flow number and the whole status
        row = next(line for line in out.splitlines() if flow["flow_number"] in line)
        assert f" {flow['status']} " in row

    code, out, _ = await cli(env, "dashboard", columns=80, token=MANAGER)
    assert code == 0
    assert_fits(out, 80)
    assert headers(out)[:2] == [["status", "label", "flows", "oldest", "stuck"], ["issuer", "status", "flows"]]
    assert "WAITING_FOR_REPROCESSING" in out and "PARTIALLY_INTEGRATED" in out


async def test_deposit_search_and_dashboard_use_160_columns(env: GrpcEnv, tmp_path: Path) -> None:
    """At 160 columns the same tables show every column, file names whole (their base names), and stay
    within 160 columns."""
    code, out, err = await cli(env, "deposit", "--wait", *files(tmp_path), columns=160)
    assert code == 2, err
    assert_fits(out, 160)
    assert headers(out) == [["file", "flow number", "status", "code", "note"]]
    assert all(LONG_NAME.format(i) in out for i in range(3)) and "deep" not in out
    assert "IN_INTEGRE" in out and "IN_REJETE" in out

    code, out, _ = await cli(env, "search", columns=160)
    assert code == 0
    assert_fits(out, 160)
    want = ["flow number", "file", "issuer", "channel", "status", "code", "deposited (UTC)", "invoices"]
    assert headers(out) == [want]
    assert all(LONG_NAME.format(i) in out for i in range(3))

    code, out, _ = await cli(env, "dashboard", columns=160, token=MANAGER)
    assert code == 0
    assert_fits(out, 160)
    assert headers(out)[0] == ["status", "code", "label", "flows", "oldest", "stuck"]
    assert "IN_EN_ATTENTE_RETRAITEMENT_CPP" in out and "En attente de retraitement" in out


async def test_deposit_title_counts_new_and_repeated_deposits(env: GrpcEnv, tmp_path: Path) -> None:
    """The deposit summary counts what happened: a new deposit, then the same tracking id again (already
    deposited, not a second deposit)."""
    path = tmp_path / "once.xml"
    path.write_bytes(invoice("FA-ONCE"))
    code, out, _ = await cli(env, "deposit", "--tracking-id", "T-1", str(path), columns=80)
    assert code == 0 and "1 deposited, 0 refused" in out
    code, out, _ = await cli(env, "deposit", "--tracking-id", "T-1", str(path), columns=160)
    assert code == 0 and "0 deposited, 0 refused, 1 already deposited" in out
    assert "already deposited (same tracking id)" in out


async def test_deposit_wait_ends_at_the_overall_timeout(idle_env: GrpcEnv, tmp_path: Path) -> None:
    """With no worker the flows never end: deposit --wait with --timeout 2 (before or after the command)
    still returns, after 2 seconds and well before a hang, with exit 10, the last status seen and a
    message saying what to do."""
    paths = [tmp_path / "a.xml", tmp_path / "b.xml"]
    for i, path in enumerate(paths):
        path.write_bytes(invoice(f"FA-H{i}"))

    started = time.monotonic()
    code, out, err = await cli(idle_env, "--timeout", "2", "deposit", "--wait", "--json", *map(str, paths))
    elapsed = time.monotonic() - started
    assert code == 10, err
    assert 2 <= elapsed < 15
    rows = json.loads(out)
    assert [(r["status"], r["timed_out"]) for r in rows] == [("RECEIVED", True)] * 2
    assert all(r["error"] == "not final after 2 s (--timeout)" and r["flow_number"] for r in rows)
    assert "2 flow(s) still not final after --timeout 2 s" in err and "fluxdepot-cli watch FLOW" in err

    code, out, err = await cli(idle_env, "deposit", "--wait", "--timeout", "2", str(paths[0]), columns=80)
    assert code == 10 and "still not final" in err
    assert "1 deposited, 0 refused" in out and "RECEIVED" in out and "not final after 2 s" in out
