"""Driver-neutral grouping of the rows ``Store.report_inputs`` reads for many flows at once.

Each query returns the rows of every requested flow, ordered by flow number then by the order a single
flow's query uses (event seq; finding position; invoice idx, then finding position), so grouping keeps
each flow's order. A flow absent from the ``flows`` rows is unknown and left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.model import Finding, InvoiceOutcome, InvoiceStatus, StatusChange
from engine.store.port import ReportInputs
from engine.store.rows import Row, facts_from_row, finding_from_row, opt_str


def report_inputs_from_rows(
    change_from_row: Callable[[Row], StatusChange],
    versions: Iterable[Row],
    history: Iterable[Row],
    flow_findings: Iterable[Row],
    invoices: Iterable[Row],
) -> dict[str, ReportInputs]:
    """The report inputs per flow number from the four batch queries' rows (see the module docstring);
    ``change_from_row`` is the driver's status event reader."""
    changes: dict[str, list[StatusChange]] = {}
    for row in history:
        changes.setdefault(str(row["flow_number"]), []).append(change_from_row(row))
    findings: dict[str, list[Finding]] = {}
    for row in flow_findings:
        findings.setdefault(str(row["flow_number"]), []).append(finding_from_row(row))
    heads: dict[tuple[str, int], Row] = {}
    invoice_findings: dict[tuple[str, int], list[Finding]] = {}
    for row in invoices:
        key = (str(row["flow_number"]), int(row["idx"]))
        heads.setdefault(key, row)
        found = invoice_findings.setdefault(key, [])
        if row["f_code"] is not None:
            found.append(finding_from_row(row, "f_"))
    outcomes: dict[str, list[InvoiceOutcome]] = {}
    for key, row in heads.items():  # in (flow number, idx) order: the rows' order
        status = InvoiceStatus(row["invoice_status"])
        outcome = InvoiceOutcome(facts_from_row(row), status, tuple(invoice_findings[key]))
        outcomes.setdefault(key[0], []).append(outcome)
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
