"""The flow reads of both stores (``engine.store.port.Store``), once, on a backend's ``Database``: flows,
their history, verdicts and report inputs, the queue depth, the outbox's pending flows, integrated invoices.

A one-flow read runs the many-flows statement of ``report_inputs`` with one flow number, so a flow's
history, findings and invoices read the same way whether for one report or a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.model import Finding, FlowRecord, InvoiceOutcome, StatusChange
from engine.store import sql_flows as sql
from engine.store.database import Database
from engine.store.port import ReportInputs
from engine.store.report_rows import changes_by_flow, findings_by_flow, invoices_by_flow, report_inputs_from_rows
from engine.store.rows import opt_str
from engine.store.sql import Params, Statement


class FlowReads:
    """Part of ``engine.store.sql_store.SqlStore``."""

    _db: Database

    async def _flow(self, statement: Statement, params: Params) -> FlowRecord | None:
        async with self._db.read() as conn:
            rows = await conn.rows(statement, params)
            return conn.decode.flow(rows[0]) if rows else None

    async def find_by_tracking_id(self, depositor: str, tracking_id: str) -> FlowRecord | None:
        return await self._flow(sql.FIND_BY_TRACKING_ID, {"depositor": depositor, "tracking_id": tracking_id})

    async def get_flow(self, flow_number: str) -> FlowRecord | None:
        return await self._flow(sql.GET_FLOW, {"flow_number": flow_number})

    async def get_blob_key(self, flow_number: str) -> str | None:
        async with self._db.read() as conn:
            rows = await conn.rows(sql.GET_BLOB_KEY, {"flow_number": flow_number})
        return str(rows[0]["blob_key"]) if rows else None

    async def flow_content(self, flow_number: str) -> bytes | None:
        """The bytes of a small deposit kept with its row; None when they are a blob (``get_blob_key``)."""
        async with self._db.read() as conn:
            rows = await conn.rows(sql.GET_CONTENT, {"flow_number": flow_number})
        return bytes(rows[0]["content"]) if rows else None

    async def history(self, flow_number: str) -> list[StatusChange]:
        """The flow's status events in order (seq 1 is RECEIVED)."""
        async with self._db.read() as conn:
            rows = await conn.rows(sql.REPORT_HISTORY, {"numbers": [flow_number]})
            return changes_by_flow(conn.decode.change, rows).get(flow_number, [])

    async def flow_findings(self, flow_number: str) -> list[Finding]:
        async with self._db.read() as conn:
            rows = await conn.rows(sql.REPORT_FLOW_FINDINGS, {"numbers": [flow_number]})
        return findings_by_flow(rows).get(flow_number, [])

    async def invoices(self, flow_number: str) -> list[InvoiceOutcome]:
        async with self._db.read() as conn:
            rows = await conn.rows(sql.REPORT_INVOICES, {"numbers": [flow_number]})
        return invoices_by_flow(rows).get(flow_number, [])

    async def ruleset_version(self, flow_number: str) -> str | None:
        async with self._db.read() as conn:
            rows = await conn.rows(sql.REPORT_VERSIONS, {"numbers": [flow_number]})
        return opt_str(rows[0]["ruleset_version"]) if rows else None

    async def report_inputs(self, flow_numbers: Sequence[str]) -> dict[str, ReportInputs]:
        """The report inputs of many flows, read in one snapshot with four queries."""
        if not flow_numbers:
            return {}
        params = {"numbers": list(flow_numbers)}
        async with self._db.snapshot() as conn:
            rows = [
                await conn.rows(query, params)
                for query in (sql.REPORT_VERSIONS, sql.REPORT_HISTORY, sql.REPORT_FLOW_FINDINGS, sql.REPORT_INVOICES)
            ]
            return report_inputs_from_rows(conn.decode.change, *rows)

    async def all_flow_numbers(self) -> list[str]:
        """Every flow number, oldest first."""
        async with self._db.read() as conn:
            return [str(r["flow_number"]) for r in await conn.rows(sql.ALL_FLOW_NUMBERS)]

    async def queue_depth(self) -> int:
        """Flows with a job: not yet judged, leased or not."""
        async with self._db.read() as conn:
            return int(await conn.value(sql.QUEUE_DEPTH))

    async def pending_return_flows(self, limit: int = 100) -> list[FlowRecord]:
        """The oldest ``limit`` EDI flows in a final status without a recorded integration report."""
        async with self._db.read() as conn:
            return [conn.decode.flow(r) for r in await conn.rows(sql.PENDING_RETURN_FLOWS, {"limit": limit})]

    async def integrated_invoice_flows(
        self, supplier_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """For ``(year, number)`` keys of one supplier, the oldest flow that integrated each one."""
        wanted = sorted({(year, number) for year, number in keys})
        if not wanted:
            return {}
        params = {
            "supplier_id": supplier_id,
            "keys": [list(key) for key in wanted],  # SQLite: one array of pairs
            "years": [year for year, _ in wanted],  # PostgreSQL: two parallel arrays
            "numbers": [number for _, number in wanted],
        }
        found: dict[tuple[str, str], str] = {}
        async with self._db.read() as conn:
            for row in await conn.rows(sql.INTEGRATED_INVOICE_FLOWS, params):
                found.setdefault((str(row["issue_year"]), str(row["number"])), str(row["flow_number"]))
        return found
