"""Scale-out store figures (issue 6), PostgreSQL next to SQLite in the same run:

* claims/s of the work queue with 8 concurrent workers (target on PostgreSQL: >= 1,000/s);
* Search first page p99 (target <= 10 ms) and Dashboard (target <= 50 ms) with ``--flows`` flows
  (default 1,000,000), bulk-loaded (COPY on PostgreSQL), counters backfilled as the migrations do.

PostgreSQL is a private, durable cluster (fsync and synchronous_commit on) started in a temp folder,
or ``FLUXDEPOT_BENCH_PG_URL`` (an empty database the run may fill).

End to end (``bench.scaleout_e2e``): flows/s from deposit to final status with 1, 2 and 3 ``fluxdepot
serve`` daemons on this machine against one PostgreSQL (one shared data folder), next to one daemon on
SQLite in the same run, with ratios.

    .venv/bin/python -m bench.scaleout [--flows 1000000] [--jobs 20000] [--workers 8] [--parts store e2e]
        [--e2e-flows 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from engine.permissions import Visibility
from engine.queries import DashboardQuery, FlowQuery
from engine.status import FlowStatus
from engine.store.port import Store
from engine.store.postgres import PostgresStore
from engine.store.sqlite import SqliteStore
from tests.pg import PgCluster

CLAIMS_TARGET_PER_S = 1000
SEARCH_P99_TARGET_MS = 10
DASHBOARD_TARGET_MS = 50
ISSUERS = [f"{i:014d}" for i in range(1, 51)]
SYNTAXES = ["IN_DP_E1_UBL_INVOICE", "IN_DP_E1_CII_16B", "IN_DP_E2_CII_FACTURX"]
FINAL = ["IN_INTEGRE"] * 80 + ["IN_REJETE"] * 12 + ["IN_INTEGRE_PARTIEL"] * 5 + ["IN_INCIDENTE"] * 2
NOT_FINAL = ["IN_EN_ATTENTE_TRAITEMENT_CPP", "IN_EN_COURS_TRAITEMENT_CPP", "IN_RECU"]
END = datetime(2026, 6, 1, tzinfo=UTC)

PG_COLUMNS = (
    "seq",
    "flow_number",
    "file_name",
    "syntax",
    "declared_syntax",
    "channel",
    "issuer_siret",
    "depositor",
    "status",
    "deposited_at",
    "status_changed_at",
    "sha256",
    "size_bytes",
    "blob_key",
)
PG_BACKFILL = (
    "INSERT INTO flow_totals (issuer_siret, syntax, status, n) "
    "SELECT issuer_siret, syntax, status, count(*) FROM flows GROUP BY 1, 2, 3",
    "INSERT INTO flow_day_counts (issuer_siret, day, syntax, status, n) "
    "SELECT issuer_siret, (deposited_at AT TIME ZONE 'UTC')::date, syntax, status, count(*) FROM flows "
    "GROUP BY 1, 2, 3, 4",
    "SELECT setval('flow_seq', (SELECT max(seq) FROM flows))",
    "VACUUM ANALYZE",
)
# Measure the store, not the bulk load's aftermath: flush its dirty pages first (needs a superuser or
# pg_checkpoint; skipped otherwise).
PG_CHECKPOINT = "CHECKPOINT"
PG_JOBS = "INSERT INTO jobs (flow_number, available_at) SELECT flow_number, deposited_at FROM flows WHERE seq <= $1"
SQLITE_INSERT = (
    "INSERT INTO flows (seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret,"
    " depositor, status, deposited_at, status_changed_at, sha256, size_bytes, blob_key)"
    " VALUES (?, ?, ?, ?, 1, 'API', ?, ?, ?, ?, ?, ?, 100, ?)"
)
SQLITE_JOBS = (
    "INSERT INTO jobs (flow_number, available_at, attempts)"
    " SELECT flow_number, deposited_at, 0 FROM flows WHERE seq <= ?"
)


def synthetic(n: int, jobs: int) -> Iterator[tuple[Any, ...]]:
    """``n`` flows over a year, 50 issuers; the first ``jobs`` are not final (they get a job)."""
    rnd = random.Random(42)
    for seq in range(1, n + 1):
        at = END - timedelta(seconds=rnd.randrange(365 * 86400), microseconds=rnd.randrange(10**6))
        status = rnd.choice(NOT_FINAL) if seq <= jobs else rnd.choice(FINAL)
        issuer = ISSUERS[rnd.randrange(len(ISSUERS))]
        number = f"CPP0011100{seq:015d}"
        yield (
            seq,
            number,
            f"f{seq}.xml",
            rnd.choice(SYNTAXES),
            issuer,
            f"tech:T{seq % 7}",
            status,
            at,
            f"{seq:064x}",
        )


def pg_rows(n: int, jobs: int) -> Iterator[tuple[Any, ...]]:
    for seq, number, name, syntax, issuer, depositor, status, at, digest in synthetic(n, jobs):
        yield (seq, number, name, syntax, True, "API", issuer, depositor, status, at, at, digest, 100, digest)


def sqlite_rows(n: int, jobs: int) -> Iterator[tuple[Any, ...]]:
    for seq, number, name, syntax, issuer, depositor, status, at, digest in synthetic(n, jobs):
        iso = at.isoformat(timespec="microseconds")
        yield (seq, number, name, syntax, issuer, depositor, status, iso, iso, digest, digest)


async def load_pg(url: str, n: int, jobs: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table("flows", records=pg_rows(n, jobs), columns=PG_COLUMNS)
        await conn.execute(PG_JOBS, jobs)
        for statement in PG_BACKFILL:
            await conn.execute(statement)
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute(PG_CHECKPOINT)
    finally:
        await conn.close()


def load_sqlite(path: str, n: int, jobs: int) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(SQLITE_INSERT, sqlite_rows(n, jobs))
            conn.execute(SQLITE_JOBS, (jobs,))
            conn.execute("UPDATE flow_sequence SET last_value = ?", (n,))
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def claims_per_s(store: Store, workers: int) -> tuple[int, float]:
    now = END + timedelta(days=1)

    async def worker(i: int) -> int:
        got = 0
        while await store.claim(f"bench-{i}", now=now, lease_s=300) is not None:
            got += 1
        return got

    started = time.perf_counter()
    counts = await asyncio.gather(*(worker(i) for i in range(workers)))
    elapsed = time.perf_counter() - started
    return sum(counts), sum(counts) / elapsed


async def timed(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    await call()  # warm
    out: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t) * 1000)
    return out


def p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.99) - 1)]


async def query_figures(store: Store) -> dict[str, float]:
    everything = Visibility(everything=True)
    follower = Visibility(sirets=frozenset(ISSUERS[:3]))
    queries = [
        (FlowQuery(), everything),
        (FlowQuery(issuer_sirets=(ISSUERS[7],)), everything),
        (FlowQuery(statuses=(FlowStatus.REJECTED,)), everything),
        (FlowQuery(issuer_sirets=(ISSUERS[1],), statuses=(FlowStatus.INTEGRATED,)), everything),
        (FlowQuery(), follower),
    ]
    search: list[float] = []
    for query, vis in queries:
        search += await timed(lambda q=query, v=vis: store.search(q, v, page_size=50), 60)
    month = END - timedelta(days=30)
    board = await timed(lambda: store.dashboard(DashboardQuery(), everything), 20)
    board_month = await timed(lambda: store.dashboard(DashboardQuery(deposited_from=month), everything), 20)
    return {
        "search_p50_ms": statistics.median(search),
        "search_p99_ms": p99(search),
        "dashboard_ms": statistics.median(board),
        "dashboard_max_ms": max(board),
        "dashboard_30d_ms": statistics.median(board_month),
    }


async def run_pg(url: str, flows: int, jobs: int, workers: int) -> dict[str, float]:
    store = PostgresStore(url, pool_min=workers, pool_max=workers + 2)
    await store.open()
    try:
        t = time.perf_counter()
        await load_pg(url, flows, jobs)
        load_s = time.perf_counter() - t
        claimed, rate = await claims_per_s(store, workers)
        figures = await query_figures(store)
    finally:
        await store.close()
    return {"load_s": load_s, "claimed": claimed, "claims_per_s": rate, **figures}


async def run_sqlite(folder: Path, flows: int, jobs: int, workers: int) -> dict[str, float]:
    path = str(folder / "bench.db")
    store = SqliteStore(path)
    await store.open()
    await store.close()
    t = time.perf_counter()
    load_sqlite(path, flows, jobs)
    load_s = time.perf_counter() - t
    store = SqliteStore(path)
    await store.open()
    try:
        claimed, rate = await claims_per_s(store, workers)
        figures = await query_figures(store)
    finally:
        await store.close()
    return {"load_s": load_s, "claimed": claimed, "claims_per_s": rate, **figures}


def report(name: str, figures: dict[str, float]) -> None:
    print(f"== {name}")
    for key, value in figures.items():
        print(f"  {key:18s} {value:12.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--only", choices=("postgresql", "sqlite"), help="run one store only")
    parser.add_argument("--parts", nargs="+", choices=("store", "e2e"), default=["store", "e2e"])
    parser.add_argument("--e2e-flows", type=int, default=600, help="deposits per end-to-end configuration")
    args = parser.parse_args()
    if "e2e" in args.parts:
        from bench.scaleout_e2e import run_e2e

        await run_e2e(args.e2e_flows)
    if "store" not in args.parts:
        return
    pg: dict[str, float] = {}
    lite: dict[str, float] = {}
    if args.only != "sqlite":
        cluster: PgCluster | None = None
        url = os.environ.get("FLUXDEPOT_BENCH_PG_URL")
        if url is None:
            cluster = PgCluster()
            cluster.init()
            cluster.start(durable=True)
            url = cluster.url
        try:
            pg = await run_pg(url, args.flows, args.jobs, args.workers)
        finally:
            if cluster is not None:
                cluster.remove()
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory(prefix="fluxdepot-bench-") as folder:
            lite = await run_sqlite(Path(folder), args.flows, args.jobs, args.workers)
    print(f"flows={args.flows} jobs={args.jobs} workers={args.workers} (PostgreSQL durable: fsync on)")
    for name, figures in (("PostgreSQL", pg), ("SQLite", lite)):
        if figures:
            report(name, figures)
    if not (pg and lite):
        return
    print(
        f"PostgreSQL claims/s {pg['claims_per_s']:.0f} (target >= {CLAIMS_TARGET_PER_S}), "
        f"search p99 {pg['search_p99_ms']:.1f} ms (<= {SEARCH_P99_TARGET_MS}), "
        f"dashboard {pg['dashboard_ms']:.1f} ms (<= {DASHBOARD_TARGET_MS}); "
        f"ratio PG/SQLite claims/s {pg['claims_per_s'] / lite['claims_per_s']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
