"""What only the SQLite store does: its pragmas, its migration bookkeeping, a full disk, a newer schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.errors import StorageFull, StoreError, StoreUnavailable
from engine.model import Channel, Syntax
from engine.status import FINAL_STATUSES
from engine.store import open_store
from engine.store.port import NewFlow
from engine.store.sql_flows import PENDING_RETURN_FLOWS as PENDING
from engine.store.sqlite import SqliteStore
from engine.store.sqlite_db import load_migrations
from tests.tmpfs import mounted_tmpfs

NEW = NewFlow(
    number_prefix="CPP001",
    file_name="f.xml",
    syntax=Syntax.UBL_INVOICE,
    declared_syntax=True,
    channel=Channel.API,
    issuer_siret="40483304800022",
    depositor="tech:T",
    sha256="0" * 64,
    size_bytes=1,
    blob_key="0" * 64,
    deposited_at=datetime(2026, 1, 5, tzinfo=UTC),
)


async def test_open_sets_wal_full_sync_and_records_migrations(tmp_path: Path) -> None:
    """The database is in WAL mode and every packaged migration is recorded once, even after reopening."""
    path = tmp_path / "db.sqlite"
    for _ in range(2):
        store = await open_store(f"sqlite:///{path}")
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    conn.close()
    assert versions == [m.version for m in load_migrations()]
    assert versions[0] == 1


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database migrated by a newer fluxdepot is refused at open rather than misread."""
    path = str(tmp_path / "db.sqlite")
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', '2030-01-01T00:00:00+00:00')")
    conn.close()
    with pytest.raises(StoreError, match="schema is version 9999"):
        await SqliteStore(path).open()


async def test_closed_store_raises_store_unavailable(tmp_path: Path) -> None:
    """Calling a closed store raises StoreUnavailable, not a driver error."""
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get_flow("CPP0011100000000000000001")
    with pytest.raises(StoreUnavailable):
        await store.create_flow(NEW)


async def test_naive_datetime_is_refused(tmp_path: Path) -> None:
    """A naive datetime is refused (ValueError) and creates nothing."""
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    try:
        with pytest.raises(ValueError, match="naive"):
            await store.create_flow(replace(NEW, deposited_at=datetime(2026, 1, 5)))
        assert await store.all_flow_numbers() == []
    finally:
        await store.close()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and mount); skipped where it cannot be mounted."""
    with mounted_tmpfs(tmp_path / "small", "1m") as mount_point:
        yield mount_point


async def test_full_disk_raises_storage_full_and_keeps_earlier_flows(small_fs: Path) -> None:
    """When the disk fills, create_flow raises StorageFull (driver error as cause), nothing half-created,
    earlier flows readable and the store still usable for reads."""
    store = SqliteStore(str(small_fs / "db.sqlite"))
    await store.open()
    try:
        created: list[str] = []
        with pytest.raises(StorageFull) as info:
            for i in range(10_000):
                flow = await store.create_flow(replace(NEW, file_name=f"{i:06d}" + "x" * 4000))
                created.append(flow.flow_number)
        assert isinstance(info.value.__cause__, sqlite3.Error)
        assert created
        assert await store.all_flow_numbers() == created
        assert await store.queue_depth() == len(created)
        with pytest.raises(StorageFull):  # still full, still a clean error (no stuck transaction)
            await store.create_flow(replace(NEW, file_name="y" * 4000))
        assert len(await store.history(created[-1])) == 1
    finally:
        await store.close()


async def test_pending_return_flows_read_only_the_pending_flows(tmp_path: Path) -> None:
    """The outbox's query walks the partial index of pending flows, not the flows table: with thousands of
    flows whose reports are written, a drain reads the one pending flow and nothing else."""
    path = tmp_path / "db.sqlite"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    pending_return_flows = str(PENDING.sqlite_text())
    with sqlite3.connect(path) as conn:
        plan = " | ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {pending_return_flows}", {"limit": 100}))
        assert plan == "SCAN flows USING INDEX flows_report_pending", plan
        # 5,000 final EDI flows whose reports are written, and one whose report is not.
        conn.executemany(
            "INSERT INTO flows (seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret,"
            " depositor, status, deposited_at, status_changed_at, sha256, size_bytes, blob_key, partner_code,"
            " report_written) VALUES (?, ?, 'f.xml', 'IN_DP_E1_UBL_INVOICE', 1, 'EDI', '11111111111111',"
            " 'partner:AAA001', 'IN_INTEGRE', '2026-01-01T00:00:00.000000+00:00',"
            " '2026-01-01T00:00:00.000000+00:00', 'x', 1, '', 'AAA001', ?)",
            [(i, f"FLOW{i:05d}", int(i != 4_000)) for i in range(1, 5_001)],
        )
        steps = sqlite3_vm_steps(conn, pending_return_flows, {"limit": 100})
        assert [r[0] for r in conn.execute(pending_return_flows, {"limit": 100})] == ["FLOW04000"]
    conn.close()
    assert steps < 200, f"{steps} virtual machine steps for one pending flow among 5,000"


def sqlite3_vm_steps(conn: sqlite3.Connection, query: str, params: dict[str, object]) -> int:
    """How many virtual machine instructions SQLite runs for ``query`` (its progress handler, called
    every instruction): the work done, counted rather than timed."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        conn.execute(query, params).fetchall()
    finally:
        conn.set_progress_handler(None, 1)
    return steps


async def test_migration_marks_the_reports_already_written(tmp_path: Path) -> None:
    """A database from before ``report_written`` (schema version 5) gets the flag from the names already
    recorded: a flow whose report is in ``return_flows`` is no longer pending, a flow with only its
    CPPStatut file still is."""
    path = tmp_path / "v5.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for migration in load_migrations():
            if migration.version <= 5:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01')", (migration.version, migration.name)
                )
        for seq, number, names in (
            (1, "FLOW1", '["CPPStatut_AAA001_FLOW1.xml", "FSO1100A_AAA001_FLOW1.xml"]'),
            (2, "FLOW2", '["CPPStatut_AAA001_FLOW2.xml"]'),
            (3, "FLOW3", "[]"),
        ):
            conn.execute(
                "INSERT INTO flows (seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret,"
                " depositor, status, deposited_at, status_changed_at, sha256, size_bytes, blob_key, partner_code,"
                " return_flows) VALUES (?, ?, 'f.xml', 'IN_DP_E1_UBL_INVOICE', 1, 'EDI', '11111111111111',"
                " 'partner:AAA001', 'IN_REJETE', '2026-01-01T00:00:00.000000+00:00',"
                " '2026-01-01T00:00:00.000000+00:00', 'x', 1, '', 'AAA001', ?)",
                (seq, number, names),
            )
    conn.close()
    store = await open_store(f"sqlite:///{path}")
    try:
        assert [f.flow_number for f in await store.pending_return_flows()] == ["FLOW2", "FLOW3"]
    finally:
        await store.close()


def test_the_outbox_statement_lists_the_final_statuses() -> None:
    """The outbox's statement names the final statuses literally, as the partial index of migration 0006
    does (a planner uses the index only when the query's terms imply its own): in both dialects, the list
    is ``FINAL_STATUSES``."""
    codes = ", ".join(f"'{code}'" for code in sorted(s.code for s in FINAL_STATUSES))
    for text in (PENDING.sqlite_text(), PENDING.postgres):
        assert f"status IN ({codes})" in str(text)
