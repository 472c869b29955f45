"""SQLite queries for the SFTP outbox: EDI flows in a final status whose integration report is not written,
and what their reports are built from, for a whole batch in one snapshot (``report_inputs``).

A flow's integration report is the return flow named ``<interface code>_<partner>_<flow number>.xml``
(every interface code starts with ``FSO``); other return flows (the optional CPPStatut file) are written
before it, so a flow is pending exactly while that name is missing from ``return_flows``: recording it
sets ``report_written`` (``sqlite_sql.ADD_RETURN_FLOW``), and the partial index ``flows_report_pending``
(migration 0006) holds the pending flows alone, so a drain reads those and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from engine.model import Channel, FlowRecord
from engine.status import FINAL_STATUSES
from engine.store.port import ReportInputs
from engine.store.report_rows import report_inputs_from_rows
from engine.store.sqlite_rows import change_from_row, flow_from_row

_FINAL_CODES = ", ".join(f"'{s.code}'" for s in sorted(FINAL_STATUSES, key=lambda s: s.code))

PENDING_RETURN_FLOWS = f"""
SELECT flow_number, file_name, syntax, declared_syntax, channel, issuer_siret, depositor, status,
       deposited_at, status_changed_at, sha256, size_bytes, tracking_id, partner_code,
       invoice_count, integrated_count, rejected_count, return_flows
FROM flows INDEXED BY flows_report_pending  -- an error, not a scan, should the terms stop matching the index
WHERE channel = '{Channel.EDI.value}' AND partner_code IS NOT NULL AND report_written = 0
      AND status IN ({_FINAL_CODES})
ORDER BY seq
LIMIT :limit
"""  # noqa: S608 - built from enum constants only, never from input


async def pending_return_flows(
    fetch: Callable[[str, dict[str, Any]], Awaitable[list[Any]]], limit: int
) -> list[FlowRecord]:
    """The oldest ``limit`` EDI flows in a final status without a recorded integration report."""
    return [flow_from_row(row) for row in await fetch(PENDING_RETURN_FLOWS, {"limit": limit})]


# :numbers is a JSON array of flow numbers; each query orders by flow number, then as its one-flow form does.
_IN_BATCH = "flow_number IN (SELECT value FROM json_each(:numbers))"
REPORT_VERSIONS = f"SELECT flow_number, ruleset_version FROM flows WHERE {_IN_BATCH}"  # noqa: S608 - constant
REPORT_HISTORY = f"""
SELECT flow_number, seq, status, event, at, actor, detail, prev_hash, hash
FROM status_events WHERE {_IN_BATCH} ORDER BY flow_number, seq
"""  # noqa: S608 - constant
REPORT_FLOW_FINDINGS = f"""
SELECT flow_number, code, message, severity, rule, business_term, location, document
FROM findings WHERE {_IN_BATCH} AND invoice_idx IS NULL ORDER BY flow_number, position
"""  # noqa: S608 - constant
REPORT_INVOICES = """
SELECT i.flow_number, i.idx, i.document, i.number, i.type_code, i.issue_date, i.currency, i.supplier_id,
       i.supplier_name, i.buyer_id, i.buyer_name, i.service_code, i.engagement_number, i.total_without_vat,
       i.total_with_vat, i.amount_due, i.guideline, i.has_attachment, i.status AS invoice_status,
       f.code AS f_code, f.message AS f_message, f.severity AS f_severity, f.rule AS f_rule,
       f.business_term AS f_business_term, f.location AS f_location, f.document AS f_document
FROM invoices i
LEFT JOIN findings f ON f.flow_number = i.flow_number AND f.invoice_idx = i.idx
WHERE i.flow_number IN (SELECT value FROM json_each(:numbers))
ORDER BY i.flow_number, i.idx, f.position
"""


async def report_inputs(conn: aiosqlite.Connection, flow_numbers: list[str]) -> dict[str, ReportInputs]:
    """The report inputs of ``flow_numbers`` (unknown ones left out), on a connection inside one read
    transaction."""
    params = {"numbers": json.dumps(flow_numbers)}
    rows = [
        list(await conn.execute_fetchall(query, params))
        for query in (REPORT_VERSIONS, REPORT_HISTORY, REPORT_FLOW_FINDINGS, REPORT_INVOICES)
    ]
    return report_inputs_from_rows(change_from_row, *rows)
