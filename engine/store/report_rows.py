"""Driver-neutral grouping of the rows of ``sql_flows.REPORT_*``: what reports are built from, per flow.

Each query returns the rows of every requested flow, ordered by flow number then by seq (events),
position (findings) or invoice idx then finding position (invoices), so grouping keeps each flow's order.
A flow absent from the ``REPORT_VERSIONS`` rows is unknown and left out of ``report_inputs_from_rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.model import Finding, InvoiceOutcome, InvoiceStatus, StatusChange
from engine.store.port import ReportInputs
from engine.store.rows import Row, facts_from_row, finding_from_row, opt_str


def changes_by_flow(
    change_from_row: Callable[[Row], StatusChange], rows: Iterable[Row]
) -> dict[str, list[StatusChange]]:
    changes: dict[str, list[StatusChange]] = {}
    for row in rows:
        changes.setdefault(str(row["flow_number"]), []).append(change_from_row(row))
    return changes


def findings_by_flow(rows: Iterable[Row]) -> dict[str, list[Finding]]:
    findings: dict[str, list[Finding]] = {}
    for row in rows:
        findings.setdefault(str(row["flow_number"]), []).append(finding_from_row(row))
    return findings


def invoices_by_flow(rows: Iterable[Row]) -> dict[str, list[InvoiceOutcome]]:
    """Invoices with their findings (columns prefixed ``f_``, NULL for an invoice without any)."""
    heads: dict[tuple[str, int], Row] = {}
    invoice_findings: dict[tuple[str, int], list[Finding]] = {}
    for row in rows:
        key = (str(row["flow_number"]), int(row["idx"]))
        heads.setdefault(key, row)
        found = invoice_findings.setdefault(key, [])
        if row["f_code"] is not None:
            found.append(finding_from_row(row, "f_"))
    outcomes: dict[str, list[InvoiceOutcome]] = {}
    for key, row in heads.items():  # in (flow number, idx) order: the rows' order
        status = InvoiceStatus(row["invoice_status"])
        outcomes.setdefault(key[0], []).append(
            InvoiceOutcome(facts_from_row(row), status, tuple(invoice_findings[key]))
        )
    return outcomes


def report_inputs_from_rows(
    change_from_row: Callable[[Row], StatusChange],
    versions: Iterable[Row],
    history: Iterable[Row],
    flow_findings: Iterable[Row],
    invoices: Iterable[Row],
) -> dict[str, ReportInputs]:
    """The report inputs per flow number from the four queries' rows; ``change_from_row`` is the driver's
    status event reader."""
    changes = changes_by_flow(change_from_row, history)
    findings = findings_by_flow(flow_findings)
    outcomes = invoices_by_flow(invoices)
    result: dict[str, ReportInputs] = {}
    for row in versions:
        number = str(row["flow_number"])
        result[number] = ReportInputs(
            history=tuple(changes.get(number, ())),
            flow_findings=tuple(findings.get(number, ())),
            invoices=tuple(outcomes.get(number, ())),
            ruleset_version=opt_str(row["ruleset_version"]),
        )
    return result
