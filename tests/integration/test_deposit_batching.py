"""Batched durability of deposits: blobs of concurrent deposits share their syncs, small deposits are
kept with their rows, and every invariant of a lone deposit still holds (DESIGN §9.1), on a real file
system and a real SQLite store. ``inline_max_bytes=0`` sends even small deposits to the blob store."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.blobs import TEMP_DIR, BlobStore, syncfs_function
from engine.deposit import DepositRequest, DepositService
from engine.errors import ChecksumMismatch, FlowTooLarge, StoreUnavailable
from engine.model import Channel, Limits
from engine.store.sqlite import SqliteStore

SIRET = "40483304800022"
SYNC_MODES = ["fsync", *(["syncfs"] if syncfs_function() is not None else [])]


def request(i: int, content: bytes | None = None) -> DepositRequest:
    body = content if content is not None else f"<Invoice>{i}</Invoice>".encode()
    return DepositRequest(f"f{i}.xml", body, Channel.API, "tech:TECH_1", SIRET, syntax="IN_DP_E1_UBL_INVOICE")


@pytest.mark.parametrize("sync", SYNC_MODES)
def test_put_many_stores_a_batch_with_two_barriers(tmp_path: Path, sync: str) -> None:
    """A batch of 20 blobs costs two durability barriers (syncfs) or one pass of fsyncs per phase; each
    blob lands complete under its final name, duplicates inside the batch are stored once, no temp
    file is left."""
    blobs = BlobStore(tmp_path, sync=sync)  # type: ignore[arg-type]
    contents = [f"blob {i % 15}".encode() for i in range(20)]
    outcomes = blobs.put_many(contents)
    assert blobs.barriers == 2
    for data, outcome in zip(contents, outcomes, strict=True):
        assert not isinstance(outcome, BaseException)
        key, sha, size = outcome
        assert key == sha == hashlib.sha256(data).hexdigest() and size == len(data)
        assert blobs.read_bytes(key) == data
    assert list((tmp_path / TEMP_DIR).iterdir()) == []
    assert len({p for p in tmp_path.rglob("*") if p.is_file()}) == 15


@pytest.mark.parametrize("sync", SYNC_MODES)
def test_dedupe_never_reuses_a_partial_blob(tmp_path: Path, sync: str) -> None:
    """A final name holding partial or wrong bytes (as a crash could leave behind a name no flow
    references) is not mistaken for the blob: it is replaced by the complete content. An intact one
    is reused."""
    blobs = BlobStore(tmp_path, sync=sync)  # type: ignore[arg-type]
    data = b"<Invoice>complete</Invoice>" * 100
    key = hashlib.sha256(data).hexdigest()
    final = blobs.path(key)
    final.parent.mkdir(parents=True)
    final.write_bytes(data[:100])  # truncated
    assert blobs.put_bytes(data)[0] == key
    assert final.read_bytes() == data
    final.write_bytes(b"x" * len(data))  # right size, wrong bytes
    assert blobs.put_many([data]) == [(key, key, len(data))]
    assert final.read_bytes() == data
    inode = final.stat().st_ino
    assert blobs.put_bytes(data)[0] == key
    assert final.stat().st_ino == inode  # intact: reused, not rewritten


async def test_concurrent_deposits_share_batches_and_each_is_durable(tmp_path: Path) -> None:
    """32 concurrent deposits are written in fewer blob batches than deposits; each returns only when
    its blob is under its final name and its row is committed (readable by another connection)."""
    store = SqliteStore(str(tmp_path / "fluxdepot.db"))
    await store.open()
    blobs = BlobStore(tmp_path / "blobs")
    deposits = DepositService(store, blobs, Limits(), inline_max_bytes=0)
    seen_by_other_connection: list[bool] = []

    async def deposit_and_check(i: int) -> None:
        receipt = await deposits.deposit(request(i))
        assert blobs.read_bytes(receipt.flow.sha256) == f"<Invoice>{i}</Invoice>".encode()
        with sqlite3.connect(tmp_path / "fluxdepot.db") as other:
            row = other.execute(
                "SELECT blob_key FROM flows WHERE flow_number = ?", (receipt.flow.flow_number,)
            ).fetchone()
        other.close()
        seen_by_other_connection.append(row is not None and row[0] == receipt.flow.sha256)

    try:
        await asyncio.gather(*(deposit_and_check(i) for i in range(32)))
        assert seen_by_other_connection == [True] * 32
        assert blobs.barriers < 2 * 32  # batched: two barriers per batch, not per deposit
        assert len(await store.all_flow_numbers()) == 32
    finally:
        await store.close()


async def test_failure_between_blob_and_row_leaves_no_row(tmp_path: Path) -> None:
    """When the row cannot be committed after the blob was written (here the store is gone, as after a
    crash between the two), the deposit fails and no flow exists: at most an unreferenced blob."""
    path = str(tmp_path / "fluxdepot.db")
    store = SqliteStore(path)
    await store.open()
    blobs = BlobStore(tmp_path / "blobs")
    deposits = DepositService(store, blobs, Limits(), inline_max_bytes=0)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await deposits.deposit(request(1))
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        assert await reopened.all_flow_numbers() == []
    finally:
        await reopened.close()
    assert blobs.exists(hashlib.sha256(b"<Invoice>1</Invoice>").hexdigest())  # unreferenced, harmless


@pytest.mark.parametrize("inline_max_bytes", [0, 1024], ids=["blob", "kept-in-store"])
async def test_door_checks_refuse_before_any_write(tmp_path: Path, inline_max_bytes: int) -> None:
    """A request refused at the door (bad checksum) writes no blob and no row, batching or not."""
    store = SqliteStore(str(tmp_path / "fluxdepot.db"))
    await store.open()
    blobs = BlobStore(tmp_path / "blobs")
    deposits = DepositService(store, blobs, Limits(), inline_max_bytes=inline_max_bytes)
    bad = DepositRequest(
        "f.xml",
        b"<Invoice/>",
        Channel.API,
        "tech:TECH_1",
        SIRET,
        sha256="0" * 64,
        syntax="IN_DP_E1_UBL_INVOICE",
    )
    try:
        results = await asyncio.gather(deposits.deposit(bad), deposits.deposit(request(2)), return_exceptions=True)
        assert isinstance(results[0], Exception) and not isinstance(results[1], BaseException)
        assert blobs.barriers == (2 if inline_max_bytes == 0 else 0)
        assert len(await store.all_flow_numbers()) == 1
        assert not blobs.exists(hashlib.sha256(b"<Invoice/>").hexdigest())
        with sqlite3.connect(tmp_path / "fluxdepot.db") as other:
            kept = other.execute("SELECT count(*) FROM flow_contents").fetchone()[0]
        other.close()
        assert kept == (0 if inline_max_bytes == 0 else 1)
    finally:
        await store.close()


async def test_small_deposits_are_kept_with_their_rows_and_given_to_the_worker(tmp_path: Path) -> None:
    """Concurrent deposits up to ``inline_max_bytes`` write no blob file: each returns once its row and
    its bytes are committed (read back by another connection), and the worker's claim carries the bytes.
    One byte more goes to the blob store."""
    store = SqliteStore(str(tmp_path / "fluxdepot.db"))
    await store.open()
    blobs = BlobStore(tmp_path / "blobs")
    limit = 64
    deposits = DepositService(store, blobs, Limits(), inline_max_bytes=limit)
    bodies = {i: f"<Invoice>{i}</Invoice>".encode().ljust(limit, b" ") for i in range(32)}
    committed: dict[str, bytes] = {}

    async def deposit_and_check(i: int) -> None:
        receipt = await deposits.deposit(request(i, bodies[i]))
        assert receipt.flow.sha256 == hashlib.sha256(bodies[i]).hexdigest()
        with sqlite3.connect(tmp_path / "fluxdepot.db") as other:
            row = other.execute(
                "SELECT f.blob_key, c.content FROM flows f JOIN flow_contents c USING (flow_number)"
                " WHERE f.flow_number = ?",
                (receipt.flow.flow_number,),
            ).fetchone()
        other.close()
        assert row is not None and row[0] == ""
        committed[receipt.flow.flow_number] = row[1]

    try:
        await asyncio.gather(*(deposit_and_check(i) for i in range(32)))
        assert sorted(committed.values()) == sorted(bodies.values())
        assert blobs.barriers == 0 and not (tmp_path / "blobs").exists()
        claim = await store.claim("w1", now=datetime.now(UTC), lease_s=30)
        assert claim is not None and claim.blob_key == "" and claim.content == committed[claim.flow_number]
        big = await deposits.deposit(request(99, b"<Invoice>99</Invoice>".ljust(limit + 1, b" ")))
        assert blobs.exists(big.flow.sha256) and blobs.barriers == 2
    finally:
        await store.close()


async def test_deposit_file_adopts_a_big_file_and_refuses_at_the_door_leaving_it(tmp_path: Path) -> None:
    """deposit_file() makes the file the flow's blob (same bytes, no copy left behind); a file over the
    size limit or with a wrong declared checksum is refused before the blob store takes it, and stays
    where it was for the caller to remove."""
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open()
    try:
        blobs = BlobStore(tmp_path / "blobs")
        data = b"<Invoice>" + b"x" * (2 * 1024 * 1024) + b"</Invoice>"
        deposits = DepositService(store, blobs, Limits(max_flow_bytes=4 * 1024 * 1024))
        spilled = tmp_path / "upload"
        spilled.write_bytes(data)
        receipt = await deposits.deposit_file(request(1, b""), spilled)
        flow = receipt.flow
        assert (flow.size_bytes, flow.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert blobs.read_bytes(flow.sha256) == data and not spilled.exists()
        assert await store.get_flow(flow.flow_number) == flow

        wrong = replace(request(2, b""), sha256="0" * 64)
        spilled.write_bytes(data)
        with pytest.raises(ChecksumMismatch):
            await deposits.deposit_file(wrong, spilled)
        assert spilled.read_bytes() == data
        small = DepositService(store, blobs, Limits(max_flow_bytes=1024 * 1024))
        with pytest.raises(FlowTooLarge):
            await small.deposit_file(request(3, b""), spilled)
        assert spilled.exists()
        assert len(await store.all_flow_numbers()) == 1
    finally:
        await store.close()
