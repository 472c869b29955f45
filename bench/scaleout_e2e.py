"""End-to-end flows/s of ``fluxdepot serve`` daemons: deposit → final status, on this machine.

Configurations, in one run: one daemon on SQLite (the baseline), then 1, 2 and 3 daemons on one
PostgreSQL database (a private durable cluster, or ``FLUXDEPOT_BENCH_PG_URL`` naming a server whose role
may create databases) sharing one data folder. Each daemon runs with its defaults (workers and validation
processes = the number of cores). ``CONCURRENCY`` gRPC clients, spread round-robin over the daemons,
deposit distinct ~3 KB UBL invoices; the clock runs from the first deposit until every flow is in a final
status (counted in the database every 50 ms). Run through ``bench.scaleout`` (``--parts e2e``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from clients.client import AsyncClient
from engine.status import FINAL_STATUSES
from tests import factory
from tests.e2e.daemon import RunningDaemon, start_daemon
from tests.pg import PgCluster

CONCURRENCY = 12
TOKEN = "demo-technical-token"  # noqa: S105 - the public demo token
FINAL_CODES = sorted(s.code for s in FINAL_STATUSES)
COUNT_FINAL = "SELECT count(*) FROM flows WHERE status = ANY($1::text[])"
COUNT_FINAL_SQLITE = "SELECT count(*) FROM flows WHERE status IN (SELECT value FROM json_each(?))"


def invoice(run: str, i: int) -> bytes:
    spec = factory.InvoiceSpec(
        f"E2E-{run}-{i}", factory.DEMO_SUPPLIER, factory.DEMO_BUYER_SERVICE, service_code="SERV-COMPTA"
    )
    return factory.ubl_invoice(spec)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def measure(
    name: str, daemons: list[RunningDaemon], flows: int, count_final: Callable[[], Awaitable[int]]
) -> float:
    """Deposit ``flows`` invoices over the daemons; seconds until all are final → flows/s."""
    targets = [d.ready["grpc"] for d in daemons]
    queue = list(range(flows))

    async def client(k: int) -> None:
        async with AsyncClient(targets[k % len(targets)], token=TOKEN) as c:
            while queue:
                i = queue.pop()
                await c.deposit(invoice(name, i), f"{name}-{i}.xml")

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(CONCURRENCY)))
    deposited = time.perf_counter() - started
    while await count_final() < flows:  # noqa: ASYNC110 - polling the database is the measurement
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    print(f"  {name:22s} {flows} flows: deposits done in {deposited:.1f} s, all final in {elapsed:.1f} s", flush=True)
    return flows / elapsed


def stop(daemons: list[RunningDaemon]) -> None:
    for d in daemons:
        d.signal(signal.SIGTERM)
    for d in daemons:
        d.wait(60)


async def sqlite_run(flows: int) -> float:
    with tempfile.TemporaryDirectory(prefix="fluxdepot-e2e-") as folder:
        data = Path(folder) / "data"
        daemon = start_daemon(data)
        db = data / "fluxdepot.db"

        async def count_final() -> int:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                return int(conn.execute(COUNT_FINAL_SQLITE, (json.dumps(FINAL_CODES),)).fetchone()[0])

        try:
            return await measure("sqlite x1", [daemon], flows, count_final)
        finally:
            stop([daemon])


async def postgres_run(server_url: str, daemons_n: int, flows: int) -> float:
    name = f"fluxdepot_e2e_{os.getpid()}_{daemons_n}"
    admin = await asyncpg.connect(server_url, timeout=10)
    try:
        await admin.execute("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
        await admin.execute("CREATE DATABASE " + name)
    finally:
        await admin.close()
    url = with_database(server_url, name)
    folder = tempfile.mkdtemp(prefix="fluxdepot-e2e-")
    data = Path(folder) / "data"
    env = {"FLUXDEPOT_STORE__URL": url}
    daemons: list[RunningDaemon] = []
    conn = None
    try:
        daemons = [start_daemon(data, env=env) for _ in range(daemons_n)]
        conn = await asyncpg.connect(url, timeout=10)

        async def count_final() -> int:
            assert conn is not None
            return int(await conn.fetchval(COUNT_FINAL, FINAL_CODES))

        return await measure(f"postgresql x{daemons_n}", daemons, flows, count_final)
    finally:
        if conn is not None:
            await conn.close()
        stop(daemons)
        shutil.rmtree(folder, ignore_errors=True)


async def run_e2e(flows: int) -> dict[str, float]:
    """Run every configuration and print the table; returns flows/s per configuration."""
    print(f"== end to end: {flows} deposits per configuration, {CONCURRENCY} gRPC clients, {os.cpu_count()} cores")
    figures = {"sqlite x1": await sqlite_run(flows)}
    cluster: PgCluster | None = None
    url = os.environ.get("FLUXDEPOT_BENCH_PG_URL")
    if url is None:
        cluster = PgCluster()
        cluster.init()
        cluster.start(durable=True)
        url = cluster.url
    try:
        for n in (1, 2, 3):
            figures[f"postgresql x{n}"] = await postgres_run(url, n, flows)
    finally:
        if cluster is not None:
            cluster.remove()
    base, pg1 = figures["sqlite x1"], figures["postgresql x1"]
    print(f"  {'configuration':22s} {'flows/s':>9s} {'vs SQLite x1':>13s} {'vs PG x1':>9s}")
    for config, rate in figures.items():
        print(f"  {config:22s} {rate:9.1f} {rate / base:12.2f}x {rate / pg1:8.2f}x")
    return figures
