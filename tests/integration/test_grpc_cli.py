"""``fluxdepot-cli`` run as a subprocess against a real server: the main journeys of DESIGN §3."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.cpu_pool import CpuPool
from tests.grpc_support import MANAGER, SUPPLIER, TECH, GrpcEnv, invoice

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[GrpcEnv]:
    e = await GrpcEnv.start(tmp_path, cpu_pool, workers=True)
    try:
        yield e
    finally:
        await e.close()


async def cli(env: GrpcEnv, *args: str, token: str | None = TECH) -> tuple[int, str, str]:
    """Run ``fluxdepot-cli`` (the module, as the console script does) while this loop serves."""
    environ = {k: v for k, v in os.environ.items() if k != "FLUXDEPOT_TOKEN"}
    if token:
        environ["FLUXDEPOT_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.cli", "--target", env.target, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environ, cwd=REPO,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_deposit_wait_watch_report(env: GrpcEnv, tmp_path: Path) -> None:
    """deposit --wait follows two files to their final status (exit 1: one is rejected); watch replays a
    flow to its end; report prints the errors with hints, and --out saves the XML report."""
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    good.write_bytes(invoice("FA-C1"))
    bad.write_bytes(invoice("FA-C2", service_code=None))
    code, out, err = await cli(env, "deposit", "--wait", "--json", str(good), str(bad))
    assert code == 1, err
    results = {Path(r["file"]).name: r for r in json.loads(out)}
    assert results["good.xml"]["status"] == "INTEGRATED" and results["bad.xml"]["status"] == "REJECTED"
    rejected = results["bad.xml"]["flow_number"]

    code, out, _ = await cli(env, "watch", rejected)
    assert code == 0 and "RECEIVED" in out and "REJECTED" in out and "(final)" in out

    code, out, _ = await cli(env, "report", rejected)
    assert code == 0 and "hint:" in out and "next:" in out and "FA-C2" in out
    code, _, err = await cli(env, "report", rejected, "--out", str(tmp_path / "r.xml"))
    assert code == 0 and (tmp_path / "r.xml").read_bytes().startswith(b"<?xml")
    code, _, _ = await cli(
        env, "reports", rejected, results["good.xml"]["flow_number"], "--out", str(tmp_path / "r.zip")
    )
    assert code == 0 and (tmp_path / "r.zip").stat().st_size > 0


async def test_search_then_export(env: GrpcEnv, tmp_path: Path) -> None:
    """search prints a table (and --json, --csv); export writes the same matches as CSV."""
    async with env.client(TECH) as client:
        numbers = [(await client.deposit(invoice(f"FA-S{i}"), f"s{i}.xml")).flow_number for i in range(3)]
    code, out, _ = await cli(env, "search", "--file-name", "s1")
    assert code == 0 and numbers[1] in out and "1 flow(s) match" in out
    code, out, _ = await cli(env, "search", "--json", "--page-size", "2")
    page = json.loads(out)
    assert page["total_count"] == 3 and len(page["flows"]) == 2 and page["next_page_token"]
    code, out, _ = await cli(env, "search", "--csv")
    assert code == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 3
    code, _, _err = await cli(env, "export", "--issuer", SUPPLIER, "--out", str(tmp_path / "all.csv"))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "all.csv").read_text())))
    assert code == 0 and sorted(r["flow_number"] for r in rows) == sorted(numbers)


async def test_dashboard_drill_down(env: GrpcEnv) -> None:
    """dashboard shows counts per status; a row's (issuer, status) searched gives exactly its count."""
    async with env.client(TECH) as client:
        for i in range(3):
            await client.wait_final((await client.deposit(invoice(f"FA-D{i}"), f"d{i}.xml")).flow_number)
        await client.wait_final((await client.deposit(invoice("FA-DX", service_code=None), "x.xml")).flow_number)
    code, out, _ = await cli(env, "dashboard", token=MANAGER)
    assert code == 0 and "INTEGRATED" in out and "IN_REJETE" in out and "Intégré" in out
    code, out, _ = await cli(env, "dashboard", "--json", token=MANAGER)
    rows = json.loads(out)["rows"]
    for row in rows:
        code, out, _ = await cli(
            env, "search", "--json", "--issuer", row["issuer_siret"], "--status", row["status"], token=MANAGER
        )
        assert json.loads(out)["total_count"] == row["count"]
    assert {r["status"]: r["count"] for r in rows} == {"INTEGRATED": 3, "REJECTED": 1}


async def test_grant_profile_twice_and_error_exits(env: GrpcEnv) -> None:
    """admin grant-profile works once; the second time exits 6 with the portal's sentence; a wrong token
    exits 3, a missing flow 5, a non-manager 4, an unreachable server 9 — each with a clear message."""
    code, _, err = await cli(env, "admin", "grant-profile", "viewer", SUPPLIER, token=MANAGER)
    assert code == 0, err
    code, _out, err = await cli(env, "admin", "grant-profile", "viewer", SUPPLIER, token=MANAGER)
    assert code == 6 and "The user already has the selected subscription" in err
    code, _, err = await cli(env, "status", "CPP0011100000000000000999", token="wrong")
    assert code == 3 and "token" in err
    code, _, err = await cli(env, "status", "CPP0011100000000000000999")
    assert code == 5 and "not found" in err
    code, _, err = await cli(env, "admin", "grant-profile", "viewer", SUPPLIER, token=TECH)
    assert code == 4 and "primary manager" in err
    code, _, err = await cli(env, "--target", "127.0.0.1:1", "--timeout", "2", "status", "X")
    assert code in (9, 10) and "error" in err
