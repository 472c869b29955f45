"""The deposits' writer alone: the CPU a new flow's rows cost in one durable transaction, by batch size.

The same inserts the writer process runs (``engine.store.sqlite_flow_writer.insert_new_flows``: the flow
row and its indexes, first event and feed entry, job, counters, the ~20 KB invoice's bytes), each batch
one ``BEGIN IMMEDIATE`` … ``COMMIT`` with ``synchronous=FULL`` on a fresh store file, in this process. The
baseline, in the same run and on the same disk, is the physical limit of that durability: the same bytes
as one row each of a bare table, committed the same way. For each batch size: wall and CPU time per flow
(user and system, from ``getrusage``), the WAL pages written per transaction, and the ratio of the
CPU to the baseline's.

    .venv/bin/python -m bench.writer [--flows 3000] [--batch 1 2 4 8 16]

No target of its own: it shows where a durable deposit's time goes (README "Benchmarks").
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from bench.deposit import _invoice
from engine.store.port import NewFlow
from engine.store.sqlite import SqliteStore
from engine.store.sqlite_db import connect_writer
from engine.store.sqlite_flow_writer import insert_new_flows
from tests.factory import new_flow

_WAL_FRAME_HEADER = 24
_WAL_HEADER = 32
PAGE_COUNT_BATCHES = 20


@dataclass(frozen=True)
class Cost:
    wall_ms: float
    user_ms: float
    system_ms: float
    wal_pages: float  # per transaction

    @property
    def cpu_ms(self) -> float:
        return self.user_ms + self.system_ms


def _wal_pages(conn: sqlite3.Connection, path: Path) -> int:
    """Frames in the WAL file (each a page written since it was truncated), counted from its size."""
    wal = Path(f"{path}-wal")
    if not wal.exists():
        return 0
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return max(0, wal.stat().st_size - _WAL_HEADER) // (page_size + _WAL_FRAME_HEADER)


def _measure(conn: sqlite3.Connection, batches: Sequence[Callable[[], object]]) -> tuple[float, float, float]:
    """Wall, user and system seconds of running each batch as one durable transaction, the WAL
    checkpointed as SQLite does by default (every 1,000 pages)."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for run in batches:
        conn.execute("BEGIN IMMEDIATE")
        run()
        conn.execute("COMMIT")
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def _cost(conn: sqlite3.Connection, path: Path, batches: Sequence[Callable[[], object]], flows: int) -> Cost:
    """The timed run over all batches but the last ``PAGE_COUNT_BATCHES``, which then count the WAL pages
    a transaction writes (checkpoints off, so the WAL keeps them; a growing WAL syncs slower, so those
    batches are not timed)."""
    timed, counted = batches[:-PAGE_COUNT_BATCHES], batches[-PAGE_COUNT_BATCHES:]
    timed_flows = flows * len(timed) // len(batches)
    wall, user, system = _measure(conn, timed)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    _measure(conn, counted)
    pages = _wal_pages(conn, path)
    conn.execute("PRAGMA wal_autocheckpoint = 1000")
    per_flow = 1000 / timed_flows
    return Cost(wall * per_flow, user * per_flow, system * per_flow, pages / len(counted))


def _fluxdepot(root: Path, contents: list[bytes], batch: int) -> Cost:
    path = root / f"fluxdepot-{batch}.db"

    async def create() -> None:
        store = SqliteStore(str(path))
        await store.open()  # the schema, as the daemon migrates it
        await store.close()

    asyncio.run(create())
    conn = connect_writer(str(path))
    news = [new_flow(i, content=content, at=datetime.now(UTC)) for i, content in enumerate(contents)]
    chunks = [news[i : i + batch] for i in range(0, len(news), batch)]
    cost = _cost(conn, path, [partial(_insert, conn, chunk) for chunk in chunks], len(news))
    conn.close()
    return cost


def _insert(conn: sqlite3.Connection, batch: Sequence[NewFlow]) -> None:
    outcomes = insert_new_flows(conn, batch)
    if any(not isinstance(o, str) for o in outcomes):
        raise RuntimeError(f"a flow was refused: {outcomes}")


def _bare(root: Path, contents: list[bytes], batch: int) -> Cost:
    path = root / f"bare-{batch}.db"
    conn = connect_writer(str(path))
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE contents (id INTEGER PRIMARY KEY, content BLOB NOT NULL)")
    rows = [(content,) for content in contents]
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    insert = "INSERT INTO contents (content) VALUES (?)"
    cost = _cost(conn, path, [partial(conn.executemany, insert, chunk) for chunk in chunks], len(rows))
    conn.close()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=3000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    payloads = [_invoice(i) for i in range(64)]
    contents = [payloads[i % len(payloads)] + str(i).encode() for i in range(args.flows)]
    print(
        f"{args.flows} new flows of ~{len(contents[0]) // 1024} KB,"
        " one durable transaction per batch (synchronous=FULL)"
    )
    print(
        f"{'batch':>5} {'wall ms':>8} {'user ms':>8} {'sys ms':>7} {'CPU ms':>7} {'pages/tx':>9}"
        f" | bare {'wall':>6} {'CPU':>6} {'pages/tx':>9} | CPU ratio"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for batch in args.batch:
            ours, bare = _fluxdepot(root, contents, batch), _bare(root, contents, batch)
            print(
                f"{batch:>5} {ours.wall_ms:>8.3f} {ours.user_ms:>8.3f} {ours.system_ms:>7.3f} {ours.cpu_ms:>7.3f}"
                f" {ours.wal_pages:>9.1f} | {'':>4} {bare.wall_ms:>6.3f} {bare.cpu_ms:>6.3f} {bare.wal_pages:>9.1f}"
                f" | {ours.cpu_ms / bare.cpu_ms:>8.1f}×"
            )
    print("  per flow; pages/tx: WAL pages written per transaction; bare: the same bytes, one row each of a bare table")


if __name__ == "__main__":
    main()
