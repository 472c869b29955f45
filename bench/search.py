"""Search and dashboard latency of ``SqliteStore`` on 1,000,000 flows over 1,000 issuers.

Builds (or reuses) ``bench/out/search-<flows>.db``: a store opened once (so every migration, index and
trigger exists), then flows and their error findings bulk-inserted through SQL in large transactions;
the triggers of migration 0002 keep the counters exactly as the store would. (Status events are not
generated: search and dashboard never read them.) Then measures, for a user following 5 issuers and for
an operator who sees everything: the first page, a later page (through its page token) and the
dashboard, each through ``SqliteStore`` and as plain SQL on the same file (the baseline: the obvious
statements, ``COUNT(*)``/``GROUP BY`` over ``flows``, run synchronously with ``sqlite3``). Last, the SFTP
outbox's drain (the oldest 100 final EDI flows whose integration report is not written, among a third of
the flows that are EDI with their reports written) against the return-flow test on every flow.

Then the operator's CSV export through ``ExportSearch``'s own pipeline (``store.iter_search`` in keyset
batches, ``engine.services.exports.csv_bytes``), of 10,000 flows and of all of them: rows/s and the peak
growth of the process's resident memory (``/proc/self/statm`` sampled every 5 ms), which must not grow
with the row count. The baseline is one plain ``SELECT`` in the same order, written with ``csv``.

    .venv/bin/python -m bench.search [--flows 1000000] [--runs 200] [--rebuild] [--no-export]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.model import FlowRecord
from engine.permissions import Visibility
from engine.queries import DashboardQuery, FlowQuery, PageKey
from engine.services.exports import CSV_COLUMNS, csv_bytes
from engine.status import FINAL_STATUSES
from engine.store.sqlite import SqliteStore

OUT = Path(__file__).resolve().parent / "out"
ISSUERS = [f"{100000000 + i:09d}00011" for i in range(1000)]
SYNTAXES = ["IN_DP_E1_UBL_INVOICE", "IN_DP_E1_CII_16B", "IN_DP_E2_UBL_INVOICE_MIN", "IN_DP_E2_CII_FACTURX"]
STATUSES = [  # (code, weight): mostly final, a few in flight
    ("IN_INTEGRE", 70),
    ("IN_INTEGRE_PARTIEL", 10),
    ("IN_REJETE", 12),
    ("IN_INCIDENTE", 3),
    ("IN_RECU", 1),
    ("IN_EN_ATTENTE_TRAITEMENT_CPP", 2),
    ("IN_EN_COURS_TRAITEMENT_CPP", 1),
    ("IN_EN_ATTENTE_RETRAITEMENT_CPP", 1),
]
ERROR_CODES = [(f"BR_CO_{k}", f"BR-CO-{k}") for k in range(10, 26)] + [("XSD_INVALID", None)]
START = datetime(2025, 9, 1, tzinfo=UTC)
DAYS = 180
PAGE = 50
BATCH = 100_000

INSERT_FLOW = """
INSERT INTO flows (seq, flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor,
                   status, deposited_at, status_changed_at, sha256, size_bytes, blob_key, partner_code,
                   return_flows, report_written)
VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
FINAL = {s.code for s in FINAL_STATUSES}
PENDING_REPORTS = 100  # final EDI flows, the newest, whose integration report the outbox has still to write
INSERT_FINDING = """
INSERT INTO findings (flow_number, invoice_idx, position, code, message, severity, rule)
VALUES (?, NULL, ?, ?, 'bench', 'error', ?)
"""


# The baseline of the outbox's drain: the obvious statement, a test on each flow's recorded return flows
# (what the store itself ran before the report_written flag and its partial index, migration 0006).
SCAN_PENDING_REPORTS = """
SELECT flow_number FROM flows
WHERE channel = 'EDI' AND partner_code IS NOT NULL
  AND status IN ('IN_INCIDENTE', 'IN_INTEGRE', 'IN_INTEGRE_PARTIEL', 'IN_REJETE')
  AND NOT EXISTS (
      SELECT 1 FROM json_each(flows.return_flows)
      WHERE json_each.value GLOB ('FSO*_' || flows.flow_number || '.xml')
  )
ORDER BY seq LIMIT :limit
"""


def _rows(count: int) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    rng = random.Random(7)
    codes, weights = zip(*STATUSES, strict=True)
    times = sorted(rng.random() * DAYS * 86400 for _ in range(count))
    for seq, offset in enumerate(times, start=1):
        issuer = rng.randrange(len(ISSUERS))
        at = START + timedelta(seconds=offset)
        status = rng.choices(codes, weights)[0]
        changed = at + timedelta(seconds=rng.randrange(1, 600))
        number = f"CPP0011100{seq:010d}"
        channel = ("API", "EDI", "PORTAL")[seq % 3]
        partner = f"P{issuer:05d}" if channel == "EDI" else None
        written = partner is not None and status in FINAL and seq <= count - 3 * PENDING_REPORTS
        flow = (
            seq,
            number,
            f"invoices-{seq}.xml",
            SYNTAXES[seq % len(SYNTAXES)],
            channel,
            ISSUERS[issuer],
            f"tech:T{issuer}",
            status,
            at.isoformat(timespec="microseconds"),
            changed.isoformat(timespec="microseconds"),
            f"{seq:064x}",
            1000 + seq % 5000,
            f"{seq:064x}",
            partner,
            f'["FSO1100A_{partner}_{number}.xml"]' if written else "[]",
            int(written),
        )
        findings = []
        if status in ("IN_REJETE", "IN_INTEGRE_PARTIEL"):
            for pos in range(rng.randrange(1, 3)):
                code, rule = ERROR_CODES[min(int(rng.expovariate(0.3)), len(ERROR_CODES) - 1)]
                findings.append((number, pos, code, rule))
        yield flow, findings


def build(path: Path, count: int) -> None:
    """A fresh store file with ``count`` flows (bulk SQL; the triggers keep the counters)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

    async def create() -> None:
        store = SqliteStore(str(path))
        await store.open()
        await store.close()

    asyncio.run(create())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    rows = _rows(count)
    done = 0
    while done < count:
        flows, findings = [], []
        for flow, found in (next(rows) for _ in range(min(BATCH, count - done))):
            flows.append(flow)
            findings.extend(found)
        conn.execute("BEGIN")
        conn.executemany(INSERT_FLOW, flows)
        conn.executemany(INSERT_FINDING, findings)
        conn.execute("UPDATE flow_sequence SET last_value = ?", (done + len(flows),))
        conn.execute("COMMIT")
        done += len(flows)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def timed_async(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


COLS = "flow_number, file_name, syntax, issuer_siret, depositor, status, deposited_at, status_changed_at"
ORDER = " ORDER BY issuer_siret, deposited_at DESC, flow_number DESC LIMIT 51"


def raw_queries(conn: sqlite3.Connection, sirets: list[str] | None, key: PageKey) -> dict[str, Callable[[], Any]]:
    """The obvious SQL for the same answers (the IN list joins only "?" placeholders, one per value)."""
    where = f"issuer_siret IN ({','.join('?' * len(sirets))})" if sirets else "1 = 1"
    args: list[Any] = list(sirets or [])
    k = [key.issuer_siret, key.deposited_at.isoformat(timespec="microseconds"), key.flow_number]
    after = " AND (issuer_siret > ? OR (issuer_siret = ? AND (deposited_at, flow_number) < (?, ?)))"
    non_final = "('IN_RECU', 'IN_TRAITE_SE_CPP', 'IN_EN_ATTENTE_TRAITEMENT_CPP', 'IN_EN_COURS_TRAITEMENT_CPP',"
    non_final += " 'IN_EN_ATTENTE_RETRAITEMENT_CPP')"
    # Statements from fixed text and `where` above (placeholders only): no value is ever formatted in.
    page = "SELECT " + COLS + " FROM flows WHERE " + where + ORDER  # noqa: S608
    later_page = "SELECT " + COLS + " FROM flows WHERE " + where + after + ORDER  # noqa: S608
    count = "SELECT COUNT(*) FROM flows WHERE " + where  # noqa: S608
    rows = (
        "SELECT issuer_siret, status, COUNT(*) FROM flows WHERE " + where + " GROUP BY issuer_siret, status"  # noqa: S608
    )
    oldest = "SELECT status, MIN(status_changed_at) FROM flows WHERE status IN " + non_final  # noqa: S608
    oldest += " AND " + where + " GROUP BY status"
    errors = "SELECT e.code, e.rule, COUNT(*) AS n FROM findings e JOIN flows ON flows.flow_number = e.flow_number"
    errors += " WHERE e.severity = 'error' AND " + where + " GROUP BY e.code, e.rule ORDER BY n DESC LIMIT 10"

    def first() -> None:
        conn.execute(page, args).fetchall()
        conn.execute(count, args).fetchall()

    def later() -> None:
        conn.execute(later_page, [*args, k[0], *k]).fetchall()
        conn.execute(count, args).fetchall()

    def board() -> None:
        for statement in (rows, oldest, errors):
            conn.execute(statement, args).fetchall()

    return {"first page": first, "later page": later, "dashboard": board}


async def measure(path: Path, runs: int) -> list[tuple[str, str, list[float], list[float]]]:
    rng = random.Random(11)
    store = SqliteStore(str(path))
    await store.open()
    conn = sqlite3.connect(path)
    results = []
    try:
        followed = rng.sample(ISSUERS, 5)
        cases = {
            "user (5 issuers)": (Visibility(sirets=frozenset(followed)), sorted(followed)),
            "operator (all)": (Visibility(everything=True), None),
        }
        for who, (vis, sirets) in cases.items():
            query = FlowQuery()
            # A later page: the token of page 10 for the user, of a page in the middle of the operator's list.
            if sirets:
                after: PageKey | None = None
                for _ in range(10):
                    page = await store.search(query, vis, page_size=PAGE, after=after)
                    after = page.next_page
                assert after is not None
                key = after
            else:
                middle = ISSUERS[500]
                page = await store.search(FlowQuery(issuer_sirets=(middle,)), vis, page_size=PAGE)
                key = PageKey.of(page.flows[20])
            total = (await store.search(query, vis, page_size=1)).total_count

            async def first() -> None:
                await store.search(query, vis, page_size=PAGE)  # noqa: B023 - measured in this iteration

            async def later() -> None:
                await store.search(query, vis, page_size=PAGE, after=key)  # noqa: B023

            async def board() -> None:
                await store.dashboard(DashboardQuery(), vis)  # noqa: B023

            raw = raw_queries(conn, sirets, key)
            for name, fn in (("first page", first), ("later page", later), ("dashboard", board)):
                await fn()  # warm
                raw[name]()
                ours = await timed_async(fn, runs)
                base = timed(raw[name], 5 if sirets is None else runs)  # the raw operator scans take seconds
                results.append((f"{who}, {total} flows", name, ours, base))

        async def drain() -> None:
            await store.pending_return_flows(PENDING_REPORTS)

        def scan_drain() -> None:
            conn.execute(SCAN_PENDING_REPORTS, {"limit": PENDING_REPORTS}).fetchall()

        pending = len(await store.pending_return_flows(10 * PENDING_REPORTS))
        await drain()
        scan_drain()
        results.append(
            (f"outbox, {pending} of {total} pending", "drain", await timed_async(drain, runs), timed(scan_drain, 5))
        )
    finally:
        conn.close()
        await store.close()
    return results


class PeakRss:
    """The peak growth of this process's resident memory while the block runs, sampled every 5 ms."""

    def __init__(self) -> None:
        self.growth_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        start = peak = self._rss()
        while not self._stop.wait(0.005):
            peak = max(peak, self._rss())
        self.growth_mb = (max(peak, self._rss()) - start) / 2**20

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _first(flows: AsyncIterator[FlowRecord], limit: int | None) -> AsyncIterator[FlowRecord]:
    """The first ``limit`` flows (``limit`` >= 1; all when None); the store's iterator is closed when
    stopped early. It stops right after the last flow wanted: reading one more would fetch a whole keyset
    batch more when ``limit`` falls on a batch boundary (10,000 rows: an 11th batch of 1,000)."""
    count = 0
    try:
        async for flow in flows:
            yield flow
            count += 1
            if limit is not None and count >= limit:
                return
    finally:
        close = getattr(flows, "aclose", None)
        if close is not None:
            await close()


EXPORT_COLUMNS = (
    "flow_number, file_name, syntax, channel, issuer_siret, depositor, status, deposited_at, status_changed_at,"
    " size_bytes, sha256, tracking_id"
)
EXPORT_ALL = (  # fixed text only
    "SELECT " + EXPORT_COLUMNS + " FROM flows ORDER BY issuer_siret, deposited_at DESC, flow_number DESC"  # noqa: S608
)


async def measure_export(path: Path, limits: list[int | None]) -> list[tuple[int, float, float, float, float]]:
    """For each limit (None: every flow): rows, seconds and peak RSS growth of the export, then the
    same for the raw statement."""
    store = SqliteStore(str(path))
    await store.open()
    conn = sqlite3.connect(path)
    results = []
    try:
        everyone = Visibility(everything=True)
        for limit in limits:
            rows = 0
            started = time.perf_counter()
            with PeakRss() as ours:
                async for data in csv_bytes(_first(store.iter_search(FlowQuery(), everyone), limit)):
                    rows += data.count(b"\n")
            seconds = time.perf_counter() - started
            rows -= 1  # the header
            started = time.perf_counter()
            with PeakRss() as raw:
                _raw_export(conn, rows)
            results.append((rows, seconds, ours.growth_mb, time.perf_counter() - started, raw.growth_mb))
    finally:
        conn.close()
        await store.close()
    return results


def _raw_export(conn: sqlite3.Connection, rows: int) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in conn.execute(EXPORT_ALL + " LIMIT ?", (rows,)):
        writer.writerow(row)
        if buffer.tell() >= 64 * 1024:
            buffer.seek(0)
            buffer.truncate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--no-export", action="store_true", help="skip the CSV export measure")
    args = parser.parse_args()
    path = OUT / f"search-v2-{args.flows}.db"  # v2: EDI flows have partners and written reports
    if args.rebuild or not path.exists():
        started = time.perf_counter()
        build(path, args.flows)
        print(f"built {path} with {args.flows} flows in {time.perf_counter() - started:.0f} s")
    rows = asyncio.run(measure(path, args.runs))
    columns = ("store p50", "store p99", "raw p50", "raw p99", "p50 ratio")
    header = f"{'who':<34} {'query':<11} " + " ".join(f"{c:>10}" for c in columns)
    print(header)
    print("-" * len(header))
    for who, name, ours, base in rows:
        p50, p99, b50, b99 = pct(ours, 0.5), pct(ours, 0.99), pct(base, 0.5), pct(base, 0.99)
        print(f"{who:<34} {name:<11} {p50:>8.2f}ms {p99:>8.2f}ms {b50:>8.2f}ms {b99:>8.2f}ms {p50 / b50:>9.2f}x")
    print(
        f"(store: SqliteStore, {args.runs} runs; raw: sqlite3, COUNT(*)/GROUP BY over flows;"
        " outbox drain raw: the return-flow test on every flow, before migration 0006)"
    )
    if args.no_export:
        return
    print()
    print("operator's CSV export (ExportSearch's pipeline: store.iter_search -> csv_bytes)")
    print(f"{'rows':>10} {'rows/s':>10} {'peak RSS +MB':>13} | {'raw rows/s':>10} {'raw RSS +MB':>12} {'ratio':>6}")
    for count, seconds, growth, raw_seconds, raw_growth in asyncio.run(measure_export(path, [10_000, None])):
        rate, raw_rate = count / seconds, count / raw_seconds
        print(
            f"{count:>10,} {rate:>10,.0f} {growth:>13.1f} | {raw_rate:>10,.0f} {raw_growth:>12.1f}"
            f" {rate / raw_rate:>5.2f}x"
        )


if __name__ == "__main__":
    main()
