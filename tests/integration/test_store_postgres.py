"""What only the PostgreSQL store does: several stores (pools) on one database standing for several
daemons, migrations under an advisory lock, the commit-ordered feed, NOTIFY wake-ups, the integrated
invoice unique index, and connection loss and recovery against a real server stopped and restarted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from engine.errors import InvoiceAlreadyIntegrated, StatusConflict, StoreError, StoreUnavailable
from engine.model import InvoiceOutcome, InvoiceStatus
from engine.permissions import Visibility
from engine.status import FlowEvent, FlowStatus
from engine.store import open_store
from engine.store.postgres import PostgresStore
from engine.store.postgres_db import load_migrations
from engine.store.sql_flows import PENDING_RETURN_FLOWS
from tests.integration.test_store_contract import T0, facts, new_flow, walk
from tests.pg import SERVER, PgCluster, find_bin

S = FlowStatus
E = FlowEvent
EVERYTHING = Visibility(everything=True)


@pytest.fixture
async def url() -> str:
    """A fresh, migrated database on the session's server."""
    SERVER.ensure()
    return await SERVER.create_database()


@pytest.fixture
async def two(url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores with their own pools on one database: two daemons."""
    a = PostgresStore(url, pool_min=1, pool_max=6)
    b = PostgresStore(url, pool_min=1, pool_max=6)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_open_store_selects_postgres_by_url(url: str) -> None:
    """``open_store`` opens a PostgreSQL store for a ``postgresql://`` URL, migrated and usable."""
    store = await open_store(url, pool_min=1, pool_max=2)
    try:
        assert isinstance(store, PostgresStore)
        flow = await store.create_flow(new_flow())
        assert await store.get_flow(flow.flow_number) == flow
    finally:
        await store.close()


async def test_racing_claims_from_two_daemons_claim_each_job_once(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """8 workers over two pools claiming 200 jobs (SKIP LOCKED): every job is claimed exactly once."""
    a, b = two
    numbers = {f.flow_number for f in await asyncio.gather(*(a.create_flow(new_flow(i)) for i in range(200)))}
    now = T0 + timedelta(minutes=1)

    async def worker(s: PostgresStore, worker_id: str) -> list[str]:
        got: list[str] = []
        while (c := await s.claim(worker_id, now=now, lease_s=60)) is not None:
            got.append(c.flow_number)
        return got

    results = await asyncio.gather(*(worker(a if i % 2 else b, f"w{i}") for i in range(8)))
    claimed = [n for r in results for n in r]
    assert len(claimed) == 200
    assert set(claimed) == numbers
    assert sum(1 for r in results if r) >= 2  # the work really was shared


async def test_concurrent_create_flow_from_two_daemons_numbers_unique(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """Deposits through two pools at once get distinct numbers from the one database sequence."""
    a, b = two
    flows = await asyncio.gather(*((a if i % 2 else b).create_flow(new_flow(i)) for i in range(200)))
    numbers = [f.flow_number for f in flows]
    assert len(set(numbers)) == 200
    assert sorted(await b.all_flow_numbers()) == sorted(numbers)


async def test_migrations_run_once_when_daemons_open_together() -> None:
    """Four stores opening an empty database at the same time: the advisory lock serialises them and
    every migration is applied and recorded exactly once."""
    SERVER.ensure()
    empty = await SERVER.create_database(migrated=False)
    stores = [PostgresStore(empty, pool_min=1, pool_max=2) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        conn = await asyncpg.connect(empty)
        try:
            versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
        finally:
            await conn.close()
        assert versions == [m.version for m in load_migrations()]
        flow = await stores[3].create_flow(new_flow())
        assert await stores[0].get_flow(flow.flow_number) == flow
    finally:
        for s in stores:
            await s.close()


async def test_newer_schema_is_refused(url: str) -> None:
    """A database migrated by a newer fluxdepot is refused at open rather than misread."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="schema is version 9999"):
        await PostgresStore(url, pool_min=1, pool_max=1).open()


async def test_feed_is_in_commit_order_across_two_writers(two: tuple[PostgresStore, PostgresStore]) -> None:
    """While two daemons change statuses concurrently, a reader following ``events_after`` sees cursors
    without gaps, in order: no event ever appears below a cursor already read (so none is skipped)."""
    a, b = two
    flows = await asyncio.gather(*(a.create_flow(new_flow(i)) for i in range(60)))
    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        cursor = 0
        while True:
            finished = done.is_set()  # read before the query: an empty batch is final only if taken after
            batch = await a.events_after(cursor, EVERYTHING, limit=1000)
            for ev in batch:
                assert ev.cursor == cursor + 1, f"gap or reorder after {cursor}: {ev.cursor}"
                cursor = ev.cursor
                seen.append(ev.cursor)
            if finished and not batch:
                return
            await asyncio.sleep(0)

    async def writer(s: PostgresStore, numbers: list[str]) -> None:
        for n in numbers:
            await walk(s, n, E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED)

    task = asyncio.create_task(reader())
    numbers = [f.flow_number for f in flows]
    await asyncio.gather(*(writer(a if k % 2 else b, numbers[k::6]) for k in range(6)))
    done.set()
    await task
    assert seen == list(range(1, 60 * 4 + 1))
    assert await b.latest_cursor() == 240


async def test_notify_wakes_idle_workers_and_watchers_of_another_daemon(
    two: tuple[PostgresStore, PostgresStore],
) -> None:
    """A deposit through one daemon wakes ``wait_for_work`` and ``wait_for_events`` on the other at once
    (LISTEN/NOTIFY), long before their timeout."""
    a, b = two
    assert await b.claim("w", now=T0, lease_s=10) is None
    cursor = await b.latest_cursor()
    started = time.monotonic()
    waits = asyncio.gather(b.wait_for_work(10), b.wait_for_events(cursor, 10))
    await asyncio.sleep(0.2)
    await a.create_flow(new_flow())
    await asyncio.wait_for(waits, 5)
    assert time.monotonic() - started < 3
    assert await b.claim("w", now=T0 + timedelta(minutes=1), lease_s=10) is not None


async def test_second_integration_of_an_invoice_is_refused(two: tuple[PostgresStore, PostgresStore]) -> None:
    """Two flows carrying the same invoice judged at once on two daemons: one verdict integrates it, the
    other raises InvoiceAlreadyIntegrated (a StatusConflict) and writes nothing; the flow stays
    IN_PROGRESS for the worker to judge again."""
    a, b = two
    first, second = await a.create_flow(new_flow(1)), await a.create_flow(new_flow(2))
    for f in (first, second):
        await walk(a, f.flow_number, E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED)

    async def integrate(s: PostgresStore, number: str) -> object:
        return await s.record_verdict(
            number,
            S.IN_PROGRESS,
            E.ALL_INTEGRATED,
            actor="w",
            at=T0,
            flow_findings=[],
            invoices=[InvoiceOutcome(facts("F-1"), InvoiceStatus.INTEGRATED)],
            ruleset_version="r",
        )

    results = await asyncio.gather(
        integrate(a, first.flow_number), integrate(b, second.flow_number), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], InvoiceAlreadyIntegrated)
    assert isinstance(failures[0], StatusConflict)
    loser = second if results[1] is failures[0] else first
    flow = await a.get_flow(loser.flow_number)
    assert flow is not None and flow.status is S.IN_PROGRESS
    assert await a.invoices(loser.flow_number) == []


@pytest.fixture
def own_cluster() -> PgCluster:
    """A server of this test's own, which it may stop and start."""
    if find_bin("initdb") is None:
        pytest.skip("initdb not found: cannot run a server of our own")
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
    except (RuntimeError, OSError) as exc:
        cluster.remove()
        pytest.skip(f"cannot start PostgreSQL: {exc}")
    yield cluster  # type: ignore[misc]
    cluster.remove()


async def test_connection_loss_raises_unavailable_and_recovers(own_cluster: PgCluster) -> None:
    """With the server stopped, calls raise StoreUnavailable saying the database is unreachable (driver
    error kept as cause) and nothing half-done; once it is back, the same store object works again."""
    store = PostgresStore(own_cluster.url, pool_min=2, pool_max=4)
    await store.open()
    try:
        created = await store.create_flow(new_flow(1))
        own_cluster.stop("fast")
        for call in (lambda: store.get_flow(created.flow_number), lambda: store.create_flow(new_flow(2))):
            with pytest.raises(StoreUnavailable, match="database is unreachable") as info:
                await call()
            assert info.value.__cause__ is not None
        with pytest.raises(StoreUnavailable):
            await store.claim("w", now=T0 + timedelta(minutes=1), lease_s=10)
        await store.wait_for_work(0.1)  # a hint: never raises, even with the server down
        own_cluster.start()
        assert await store.get_flow(created.flow_number) == created
        again = await store.create_flow(new_flow(3))
        assert await store.all_flow_numbers() == [created.flow_number, again.flow_number]
        claim = await store.claim("w", now=T0 + timedelta(minutes=1), lease_s=10)
        assert claim is not None and claim.flow_number == created.flow_number
    finally:
        await store.close()


async def test_singleton_passes_on_when_its_holder_connection_dies(two: tuple[PostgresStore, PostgresStore]) -> None:
    """A daemon killed with -9 loses its session, hence its advisory locks: the other daemon's next ask
    gets the singleton, and the dead holder's store, reconnected, does not get it back."""
    a, b = two
    assert await a.try_singleton("watchdog")
    assert not await b.try_singleton("watchdog")
    conn = await asyncpg.connect(a.url, timeout=10)
    try:  # what the server does when a process dies: its backends end
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    for _ in range(50):
        if await b.try_singleton("watchdog"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the singleton did not pass on")
    await asyncio.sleep(1.1)  # a's reconnection is rate-limited
    assert not await a.try_singleton("watchdog")


async def test_pending_return_flows_use_the_pending_index(url: str) -> None:
    """The outbox's query matches the partial index of pending flows (the planner picks it once sequential
    scans are priced out, which it cannot do when the query's terms do not imply the index's)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            pending = PENDING_RETURN_FLOWS.postgres_positional()
            assert pending is not None
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {pending.text}", *pending.args({"limit": 100})))
    finally:
        await conn.close()
    assert "flows_pending_return" in plan, plan


async def test_migration_marks_the_reports_already_written() -> None:
    """A database from before ``report_written`` (schema version 5) gets the flag from the names already
    recorded: a flow whose report is in ``return_flows`` is no longer pending, one with only its CPPStatut
    file still is."""
    SERVER.ensure()
    url = await SERVER.create_database(migrated=False)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in load_migrations():
            if migration.version <= 5:
                await conn.execute(migration.script)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
        for seq, number, names in (
            (1, "FLOW1", ["CPPStatut_AAA001_FLOW1.xml", "FSO1100A_AAA001_FLOW1.xml"]),
            (2, "FLOW2", ["CPPStatut_AAA001_FLOW2.xml"]),
            (3, "FLOW3", []),
        ):
            await conn.execute(
                "INSERT INTO flows (seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret,"
                " depositor, status, deposited_at, status_changed_at, sha256, size_bytes, blob_key, partner_code,"
                " return_flows) VALUES ($1, $2, 'f.xml', 'IN_DP_E1_UBL_INVOICE', true, 'EDI', '11111111111111',"
                " 'partner:AAA001', 'IN_REJETE', now(), now(), 'x', 1, '', 'AAA001', $3)",
                seq,
                number,
                names,
            )
    finally:
        await conn.close()
    store = PostgresStore(url, pool_min=1, pool_max=2)
    await store.open()
    try:
        assert [f.flow_number for f in await store.pending_return_flows()] == ["FLOW2", "FLOW3"]
    finally:
        await store.close()
