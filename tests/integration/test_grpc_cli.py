"""``fluxdepot-cli`` run as a subprocess against a real server: the main journeys of DESIGN §3."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shlex
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clients.client import with_default_port
from engine.cpu_pool import CpuPool
from tests.grpc_support import MANAGER, SUPPLIER, TECH, GrpcEnv, invoice, serve
from tests.harness import Harness

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
    environ = {k: v for k, v in os.environ.items() if k not in ("FLUXDEPOT_TOKEN", "COLUMNS")}
    if token:
        environ["FLUXDEPOT_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clients.cli", "--target", env.target, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environ, cwd=REPO,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:  # a CLI that hangs fails the test, and does not outlive it
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
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


async def test_watch_prints_the_cursor_that_resumes_exactly(env: GrpcEnv) -> None:
    """watch ends by printing the command that resumes after the last event it received, filters
    included: running it gives exactly the events that followed, none lost and none repeated."""
    async with env.client(TECH) as client:
        for i in range(2):
            await client.wait_final((await client.deposit(invoice(f"FA-W{i}"), f"w{i}.xml")).flow_number)
    _, out, _ = await cli(env, "watch", "--from-start", "--json", "--count", "6")
    everything = [json.loads(line) for line in out.splitlines()]
    assert len(everything) == 6

    code, out, err = await cli(env, "watch", "--from-start", "--count", "3")
    assert code == 0 and f"#{everything[2]['cursor']}" in out
    assert err.strip() == f"resume with: fluxdepot-cli watch --cursor {everything[2]['cursor']}"
    resume = shlex.split(err.strip().removeprefix("resume with: "))[1:]
    _, out, _ = await cli(env, *resume, "--json", "--count", "3")
    assert [json.loads(line) for line in out.splitlines()] == everything[3:]

    code, out, err = await cli(env, "watch", "--from-start", "--status", "INTEGRATED", "--count", "1")
    first = re.search(r"#(\d+)", out)
    assert code == 0 and first is not None
    assert err.strip() == f"resume with: fluxdepot-cli watch --cursor {first[1]} --status INTEGRATED"
    resume = shlex.split(err.strip().removeprefix("resume with: "))[1:]
    _, out, _ = await cli(env, *resume, "--json", "--count", "1")
    (event,) = [json.loads(line) for line in out.splitlines()]
    assert event["status"] == "INTEGRATED" and event["cursor"] > int(first[1])


ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")  # as the server's reports


def _times(value: Any) -> list[str]:
    """Every string in ``value`` (parsed JSON) that starts like a date."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _times(v)]
    if isinstance(value, list):
        return [t for v in value for t in _times(v)]
    return [value] if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\d", value) else []


async def test_every_json_output_writes_times_one_way(env: GrpcEnv, tmp_path: Path) -> None:
    """deposit, status, search, watch and admin rejects with --json write every time as the reports do: ISO
    8601 to the millisecond with its offset (2026-12-06T21:00:48.123+00:00)."""
    bad = tmp_path / "bad.xml"
    bad.write_bytes(invoice("FA-J1", service_code=None))
    code, out, _ = await cli(env, "deposit", "--wait", "--json", str(bad))
    assert code == 1
    (row,) = json.loads(out)
    outputs = [row]
    for args, token in [
        (("status", "--json", row["flow_number"]), TECH),
        (("search", "--json"), TECH),
        (("watch", "--json", row["flow_number"]), TECH),
        (("admin", "rejects", "--json"), MANAGER),
    ]:
        code, out, err = await cli(env, *args, token=token)
        assert code == 0, err
        outputs += [json.loads(line) for line in out.splitlines()] if args[0] == "watch" else [json.loads(out)]
    times = [t for o in outputs for t in _times(o)]
    assert len(times) >= 9  # deposited_at and status_changed_at twice, an event per status, a reject's day
    assert [t for t in times if not ISO_TIME.fullmatch(t)] == []


async def test_create_technical_user_twice_refuses_unless_rotate(env: GrpcEnv) -> None:
    """admin create-technical-user on an existing login exits 6 with a message and a --rotate hint, and
    the token in use keeps working; with --rotate a new token replaces it and the old one is refused."""
    code, first, err = await cli(env, "admin", "create-technical-user", "TECH_9", SUPPLIER, token=MANAGER)
    assert code == 0, err
    first = first.strip()
    code, out, err = await cli(env, "admin", "create-technical-user", "TECH_9", SUPPLIER, token=MANAGER)
    assert code == 6 and out == ""
    assert "technical user TECH_9 already exists" in err and "--rotate" in err
    assert (await cli(env, "search", "--json", token=first))[0] == 0

    code, second, err = await cli(env, "admin", "create-technical-user", "--rotate", "TECH_9", SUPPLIER, token=MANAGER)
    assert code == 0, err
    second = second.strip()
    assert second != first
    assert (await cli(env, "search", "--json", token=first))[0] == 3
    assert (await cli(env, "search", "--json", token=second))[0] == 0


async def test_admin_sets_a_partners_ruleset(env: GrpcEnv) -> None:
    """admin partner --ruleset NAME judges the partner's flows by NAME; "default" goes back to the daemon's
    own; an unknown name exits 2 naming the field and the accepted names."""
    flux2 = ("--ruleset", "en16931+fr-flux2")
    code, out, err = await cli(env, "admin", "partner", "BBB002", SUPPLIER, *flux2, token=MANAGER)
    assert code == 0, err
    assert out.strip() == f"partner BBB002 of {SUPPLIER} saved with 0 key(s); its flows are judged by en16931+fr-flux2"
    code, out, err = await cli(env, "admin", "partner", "BBB002", SUPPLIER, token=MANAGER)
    assert code == 0 and out.strip().endswith("judged by en16931+fr-flux2"), err
    code, out, err = await cli(env, "admin", "partner", "BBB002", SUPPLIER, "--ruleset", "default", token=MANAGER)
    assert code == 0 and out.strip().endswith("judged by the daemon's default ruleset"), err
    code, out, err = await cli(env, "admin", "partner", "BBB002", SUPPLIER, "--ruleset", "fr", token=MANAGER)
    assert code == 2 and out == ""
    assert "ruleset: unknown ruleset 'fr'; accepted: en16931, en16931+fr-flux2" in " ".join(err.split())


def test_a_target_without_port_gets_50051() -> None:
    """A target naming no port gets fluxdepot's 50051 (gRPC alone would use 443); ports, bracketed IPv6
    and gRPC URIs are kept."""
    assert with_default_port("localhost") == "localhost:50051"
    assert with_default_port("fluxdepot.example.org") == "fluxdepot.example.org:50051"
    assert with_default_port("localhost:7000") == "localhost:7000"
    assert with_default_port("[::1]") == "[::1]:50051"
    assert with_default_port("[::1]:7000") == "[::1]:7000"
    assert with_default_port("::1") == "[::1]:50051"
    assert with_default_port("unix:/run/fluxdepot.sock") == "unix:/run/fluxdepot.sock"
    assert with_default_port("dns:///localhost:7000") == "dns:///localhost:7000"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_target_localhost_reaches_a_server_on_50051(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """--target localhost reaches the server listening on localhost:50051 (a flow it does not have:
    not found, exit 5, rather than unavailable, exit 9)."""
    if not _port_free(50051):
        pytest.skip("port 50051 is in use on this machine")
    harness = await Harness.open(tmp_path, cpu_pool)
    server, _ = await serve(harness, "127.0.0.1:50051")
    try:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("FLUXDEPOT_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clients.cli", "--target", "localhost", "--token", TECH, "--timeout", "10",
            "status", "CPP0011100000000000000999",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environ, cwd=REPO,
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 5, err.decode()
        assert "not found" in err.decode()
    finally:
        await server.stop(0)
        await harness.close()
