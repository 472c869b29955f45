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
from engine.store import open_store
from engine.store.port import NewFlow
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
