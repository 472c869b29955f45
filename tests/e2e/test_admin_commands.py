"""`fluxdepot admin …` run as a process against a real data folder."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from engine.blobs import BlobStore
from engine.deposit import DepositService
from engine.status import FlowStatus
from tests import factory
from tests.e2e.daemon import EXAMPLE_CONFIG
from tests.e2e.test_daemon import run_cli
from tests.harness import Harness


def admin(data: Path, *args: str) -> tuple[int, str]:
    result = run_cli("admin", "--config", str(EXAMPLE_CONFIG), "--data-dir", str(data), *args)
    return result.returncode, result.stdout + result.stderr


async def filled(harness: Harness, count: int = 3) -> list[str]:
    """``count`` integrated flows: the first one's bytes in a blob file, the others' kept in the store."""
    numbers = []
    as_blob = dataclasses.replace(
        harness, deposits=DepositService(harness.store, harness.blobs, harness.limits, inline_max_bytes=0)
    )
    for i in range(count):
        depositor = as_blob if i == 0 else harness
        flow = await depositor.deposit_and_process(f"{i}.xml", factory.ubl_invoice(factory.integrating(f"ADM-{i}")))
        assert flow.status is FlowStatus.INTEGRATED
        numbers.append(flow.flow_number)
    return numbers


async def test_verify_audit_reports_a_tampered_event(harness: Harness) -> None:
    """verify-audit passes on an intact history and reports (exit 1) an event rewritten behind its back."""
    numbers = await filled(harness)
    code, out = admin(harness.root, "verify-audit")
    assert code == 0, out
    assert "verified 3 flows: 0 break(s)" in out
    with sqlite3.connect(harness.root / "fluxdepot.db") as db:
        db.execute("UPDATE status_events SET actor = 'mallory' WHERE flow_number = ? AND seq = 2", (numbers[1],))
    code, out = admin(harness.root, "verify-audit")
    assert code == 1
    assert f"BREAK flow {numbers[1]} event 2: hash does not match the content" in out


async def test_backup_and_restore_round_trip(harness: Harness, tmp_path: Path) -> None:
    """An online backup restored into an empty data folder holds the same flows and their bytes (blob
    files, and those kept in the store)."""
    numbers = await filled(harness)
    code, out = admin(harness.root, "backup", str(tmp_path / "backup"))
    assert code == 0, out
    restored = tmp_path / "restored"
    code, out = admin(restored, "restore", str(tmp_path / "backup"))
    assert code == 0, out
    code, out = admin(restored, "restore", str(tmp_path / "backup"))
    assert code == 2 and "--force" in out  # never overwrites a store by accident
    with sqlite3.connect(restored / "fluxdepot.db") as db:
        rows = db.execute(
            "SELECT f.flow_number, f.blob_key, length(c.content) FROM flows f"
            " LEFT JOIN flow_contents c ON c.flow_number = f.flow_number ORDER BY f.seq"
        ).fetchall()
    assert [r[0] for r in rows] == numbers
    assert rows[0][1] != "" and BlobStore(restored / "blobs").path(rows[0][1]).is_file()
    assert all(key == "" and size > 1000 for _, key, size in rows[1:])
    code, out = admin(restored, "verify-audit")
    assert code == 0, out


def test_import_directory_from_csv(tmp_path: Path) -> None:
    """Structures import from CSV; a bad row is refused with its line number and nothing is imported."""
    good = tmp_path / "structures.csv"
    good.write_text("siret,name,public,service_code_required\n21690123100011,Commune,true,true\n")
    code, out = admin(tmp_path / "data", "import-directory", str(good))
    assert code == 0, out
    assert "imported 1 structures" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("siret,name\n123,Too short\n")
    code, out = admin(tmp_path / "data", "import-directory", str(bad))
    assert code == 2
    assert "line 2: siret must be 14 digits" in out


async def test_purge_deletes_old_final_flows_and_their_blobs(harness: Harness) -> None:
    """purge removes final flows deposited before the retention period, with their bytes (blob file or
    row); recent ones stay."""
    old, old_inline, recent = await filled(harness, 3)
    old_blob = await harness.store.get_blob_key(old)
    assert old_blob and BlobStore(harness.root / "blobs").path(old_blob).exists()
    with sqlite3.connect(harness.root / "fluxdepot.db") as db:
        db.execute(
            "UPDATE flows SET deposited_at = '2000-01-01T00:00:00.000000+00:00' WHERE flow_number IN (?, ?)",
            (old, old_inline),
        )
    code, out = admin(harness.root, "purge")
    assert code == 0, out
    assert "purged 2 final flows" in out
    assert await harness.store.get_flow(old) is None
    assert await harness.store.get_flow(old_inline) is None
    assert await harness.store.get_flow(recent) is not None
    assert not BlobStore(harness.root / "blobs").path(old_blob).exists()
    with sqlite3.connect(harness.root / "fluxdepot.db") as db:
        kept = [r[0] for r in db.execute("SELECT flow_number FROM flow_contents")]
    assert kept == [recent]
    code, out = admin(harness.root, "verify-audit")
    assert code == 0, out
