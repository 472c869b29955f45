"""The integration report of a flow (DESIGN §7): one typed ``Report``, built once, and its renderings.

``build_report`` turns a flow, its history, its flow-level findings and its invoice outcomes into a
``Report`` of frozen dataclasses (datetimes, enums and ``Decimal`` amounts kept as such). Every rendering
reads only that value — JSON (``report_dict``/``render_json``), XML (``render_xml``), text
(``render_text``) here; protobuf and CPPStatut in the gateway — so the API, the ``check --json`` output
and the partner's return flows can never disagree.

Invariants:

* key order is fixed by ``report_dict`` and renderings are deterministic (same input, same bytes);
* datetimes are rendered ISO 8601 with an offset (a naive datetime is taken as UTC), to the millisecond;
* amounts are rendered as decimal strings, never floats;
* every entry carries its catalogue ``kind`` and ``hint``; error-severity findings go to ``errors``,
  warnings and notes to ``warnings``;
* ``next_action`` always says what the depositor does next: ``NONE``, ``REDEPOSIT_FLOW``,
  ``REDEPOSIT_INVOICES`` (with the invoices to send again) or ``WAIT``; an invoice already integrated by
  an earlier flow is never to be sent again (``next_action`` docstring).

Empty values (``flow_number=""`` for ``fluxdepot check``) are kept as they are.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import xml.etree.ElementTree as ET  # builds and serialises trees only; never parses input
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.catalogue import CATALOGUE
from engine.model import (
    Finding,
    FlowRecord,
    FlowVerdict,
    InvoiceFacts,
    InvoiceOutcome,
    InvoiceStatus,
    Kind,
    Severity,
    StatusChange,
)
from engine.status import FlowStatus

REPORT_NAMESPACE = "urn:fluxdepot:integration-report:1"
REPORT_VERSION = "1"

ALREADY_INTEGRATED = "DUPLICATE_INVOICE"  # the catalogue's code for an invoice an earlier flow integrated


class NextStep(enum.Enum):
    """What the depositor does next (``NextAction.code``)."""

    NONE = "NONE"
    REDEPOSIT_FLOW = "REDEPOSIT_FLOW"
    REDEPOSIT_INVOICES = "REDEPOSIT_INVOICES"
    WAIT = "WAIT"


@dataclass(frozen=True)
class ReportEntry:
    """One error or warning of a report: a ``Finding`` with its catalogue ``kind`` and ``hint``."""

    code: str
    kind: Kind
    severity: Severity
    message: str
    rule: str | None
    business_term: str | None
    location: str | None
    document: str | None
    hint: str


@dataclass(frozen=True)
class ReportInvoice:
    facts: InvoiceFacts
    status: InvoiceStatus
    errors: tuple[ReportEntry, ...]
    warnings: tuple[ReportEntry, ...]


@dataclass(frozen=True)
class NextAction:
    code: NextStep
    message: str
    invoice_numbers: tuple[str, ...] = ()  # the invoices to send again, by number or else by document


@dataclass(frozen=True)
class Report:
    """The integration report of ``flow``; the counts come from the invoices when there are any."""

    flow: FlowRecord
    history: tuple[StatusChange, ...]
    invoice_count: int
    integrated_count: int
    rejected_count: int
    invoices: tuple[ReportInvoice, ...]
    errors: tuple[ReportEntry, ...]
    warnings: tuple[ReportEntry, ...]
    next_action: NextAction
    engine_version: str
    ruleset_version: str


# --- building -----------------------------------------------------------------------------------------


def iso_millis(at: datetime) -> str:
    """``at`` as ISO 8601 to the millisecond with its offset (naive means UTC): ``2026-12-06T21:00:48.123+00:00``."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.isoformat(timespec="milliseconds")


def amount_text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _entry(f: Finding) -> ReportEntry:
    catalogued = CATALOGUE.get(f.code)
    return ReportEntry(
        code=f.code,
        kind=catalogued.kind if catalogued else Kind.TECHNICAL,
        severity=f.severity,
        message=f.message,
        rule=f.rule,
        business_term=f.business_term,
        location=f.location,
        document=f.document,
        hint=catalogued.hint if catalogued else "",
    )


def _errors(findings: Sequence[Finding]) -> tuple[ReportEntry, ...]:
    return tuple(_entry(f) for f in findings if f.is_error)


def _warnings(findings: Sequence[Finding]) -> tuple[ReportEntry, ...]:
    return tuple(_entry(f) for f in findings if not f.is_error)


def _invoice(outcome: InvoiceOutcome) -> ReportInvoice:
    return ReportInvoice(outcome.facts, outcome.status, _errors(outcome.findings), _warnings(outcome.findings))


def _label(outcome: InvoiceOutcome) -> str:
    number = (outcome.facts.number or "").strip()
    return number or outcome.facts.document


def _already_integrated(outcome: InvoiceOutcome) -> bool:
    """The invoice was rejected because an earlier flow integrated it: it must never be deposited again."""
    return any(f.code == ALREADY_INTEGRATED and f.is_error for f in outcome.findings)


def next_action(status: FlowStatus, invoices: Sequence[InvoiceOutcome]) -> NextAction:
    """What the depositor does next, with the invoices to send again (by number or, without one, by
    document).

    An invoice rejected as already integrated (``DUPLICATE_INVOICE``) is never among the invoices to send
    again, and its flow is never to be deposited whole again: a flow rejected only for such invoices has
    nothing left to deposit (``NONE``); otherwise only the other rejected invoices go again.
    """
    if status is FlowStatus.WAITING_FOR_REPROCESSING:
        return NextAction(NextStep.WAIT, "The flow is held for an operator; no action is needed from you yet.")
    if not status.is_final:
        return NextAction(NextStep.WAIT, "The flow is still being processed; check its status again later.")
    if status is FlowStatus.INTEGRATED:
        return NextAction(NextStep.NONE, "Nothing to do: every invoice was integrated.")
    if status is FlowStatus.WARNING:
        return NextAction(
            NextStep.REDEPOSIT_FLOW, "The platform could not process the flow; deposit the whole flow again."
        )
    rejected = [o for o in invoices if o.status is InvoiceStatus.REJECTED]
    received = [_label(o) for o in rejected if _already_integrated(o)]
    again = tuple(_label(o) for o in rejected if not _already_integrated(o))
    if received and not again:
        return NextAction(
            NextStep.NONE,
            "Nothing to deposit again: the rejected invoices were already integrated by an earlier flow ("
            + ", ".join(received)
            + ").",
        )
    if received:
        return NextAction(
            NextStep.REDEPOSIT_INVOICES,
            "Deposit again, in a new flow, only these invoices, corrected where errors are listed: "
            + ", ".join(again)
            + ". Leave out "
            + ", ".join(received)
            + ": already integrated by an earlier flow.",
            again,
        )
    if status is FlowStatus.PARTIALLY_INTEGRATED:
        return NextAction(
            NextStep.REDEPOSIT_INVOICES,
            "Correct the rejected invoices and deposit only them again, in a new flow: " + ", ".join(again) + ".",
            again,
        )
    return NextAction(NextStep.REDEPOSIT_FLOW, "Correct the errors listed and deposit the whole flow again.")


def build_report(
    flow: FlowRecord,
    history: Sequence[StatusChange],
    flow_findings: Sequence[Finding],
    invoices: Sequence[InvoiceOutcome],
    *,
    ruleset_version: str,
    engine_version: str,
) -> Report:
    """The integration report of ``flow`` (the one source of every rendering)."""
    if invoices:
        integrated = sum(o.status is InvoiceStatus.INTEGRATED for o in invoices)
        counts = (len(invoices), integrated, len(invoices) - integrated)
    else:
        counts = (flow.invoice_count, flow.integrated_count, flow.rejected_count)
    return Report(
        flow=flow,
        history=tuple(history),
        invoice_count=counts[0],
        integrated_count=counts[1],
        rejected_count=counts[2],
        invoices=tuple(_invoice(o) for o in invoices),
        errors=_errors(flow_findings),
        warnings=_warnings(flow_findings),
        next_action=next_action(flow.status, invoices),
        engine_version=engine_version,
        ruleset_version=ruleset_version,
    )


# --- JSON ---------------------------------------------------------------------------------------------


def checked_report(flow: FlowRecord, verdict: FlowVerdict, status: FlowStatus, *, engine_version: str) -> Report:
    """The report a flow that was checked, not stored, would get (``fluxdepot check``, the portal's Check a
    file): ``flow`` as built for the check, updated with the verdict's status, syntax and counts."""
    flow = dataclasses.replace(
        flow,
        status=status,
        syntax=verdict.detected_syntax or flow.syntax,
        invoice_count=len(verdict.invoices),
        integrated_count=sum(1 for i in verdict.invoices if i.status is InvoiceStatus.INTEGRATED),
        rejected_count=sum(1 for i in verdict.invoices if i.status is InvoiceStatus.REJECTED),
    )
    return build_report(
        flow,
        [],
        verdict.flow_findings,
        verdict.invoices,
        ruleset_version=verdict.ruleset_version,
        engine_version=engine_version,
    )


def _entry_dict(e: ReportEntry) -> dict[str, Any]:
    return {
        "code": e.code,
        "kind": e.kind.value,
        "severity": e.severity.value,
        "message": e.message,
        "rule": e.rule,
        "business_term": e.business_term,
        "location": e.location,
        "document": e.document,
        "hint": e.hint,
    }


def _invoice_dict(invoice: ReportInvoice) -> dict[str, Any]:
    facts = invoice.facts
    return {
        "document": facts.document,
        "number": facts.number,
        "type_code": facts.type_code,
        "issue_date": facts.issue_date,
        "currency": facts.currency,
        "supplier": {"id": facts.supplier_id, "name": facts.supplier_name},
        "buyer": {"id": facts.buyer_id, "name": facts.buyer_name},
        "service_code": facts.service_code,
        "engagement_number": facts.engagement_number,
        "amount": {
            "total_without_vat": amount_text(facts.total_without_vat),
            "total_with_vat": amount_text(facts.total_with_vat),
            "amount_due": amount_text(facts.amount_due),
        },
        "status": invoice.status.value,
        "errors": [_entry_dict(e) for e in invoice.errors],
        "warnings": [_entry_dict(e) for e in invoice.warnings],
    }


def _change_dict(change: StatusChange) -> dict[str, Any]:
    return {
        "seq": change.seq,
        "status": change.status.name,
        "status_code": change.status.code,
        "at": iso_millis(change.at),
        "actor": change.actor,
        "event": change.event.value if change.event else None,
        "detail": change.detail,
    }


def report_dict(report: Report) -> dict[str, Any]:
    """The report as a plain, JSON-ready dict of str, int, bool, None, lists and dicts, keys in the
    documented order (DESIGN §7, the README's report example)."""
    flow = report.flow
    action = report.next_action
    return {
        "report_version": REPORT_VERSION,
        "flow_number": flow.flow_number,
        "file_name": flow.file_name,
        "syntax": flow.syntax.value,
        "interface_code": flow.interface_code,
        "channel": flow.channel.value,
        "issuer": flow.issuer_siret,
        "depositor": flow.depositor,
        "partner_code": flow.partner_code,
        "tracking_id": flow.tracking_id,
        "status": flow.status.name,
        "status_code": flow.status.code,
        "status_label": flow.status.label_fr,
        "final": flow.status.is_final,
        "deposited_at": iso_millis(flow.deposited_at),
        "status_changed_at": iso_millis(flow.status_changed_at),
        "history": [_change_dict(c) for c in report.history],
        "sha256": flow.sha256,
        "size_bytes": flow.size_bytes,
        "invoice_count": report.invoice_count,
        "integrated_count": report.integrated_count,
        "rejected_count": report.rejected_count,
        "invoices": [_invoice_dict(i) for i in report.invoices],
        "errors": [_entry_dict(e) for e in report.errors],
        "warnings": [_entry_dict(e) for e in report.warnings],
        "return_flows": list(flow.return_flows),
        "next_action": {
            "code": action.code.value,
            "message": action.message,
            "invoice_numbers": list(action.invoice_numbers),
        },
        "engine_version": report.engine_version,
        "ruleset_version": report.ruleset_version,
    }


def render_json(report: Report) -> str:
    """The report as JSON: ``report_dict``'s key order, UTF-8 characters kept, indent 2, final newline."""
    return json.dumps(report_dict(report), ensure_ascii=False, indent=2) + "\n"


# --- XML ----------------------------------------------------------------------------------------------

# The element name of one item of each list, by the list's key.
_ITEM_NAMES = {
    "history": "StatusChange",
    "invoices": "Invoice",
    "errors": "Error",
    "warnings": "Warning",
    "return_flows": "ReturnFlow",
    "invoice_numbers": "InvoiceNumber",
}
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _element_name(key: str) -> str:
    """``flow_number`` → ``FlowNumber``; ``sha256`` → ``Sha256``."""
    return "".join(part[:1].upper() + part[1:] for part in key.split("_"))


def _qualified(name: str) -> str:
    return f"{{{REPORT_NAMESPACE}}}{name}"


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _append(parent: ET.Element, key: str, value: Any) -> None:
    """Append ``value`` under ``parent`` as element ``key``; ``None`` is left out (an optional element)."""
    if value is None:
        return
    child = ET.SubElement(parent, _qualified(_element_name(key)))
    if isinstance(value, dict):
        for sub_key, sub_value in value.items():
            _append(child, sub_key, sub_value)
    elif isinstance(value, list):
        item_name = _ITEM_NAMES.get(key, "Item")
        for item in value:
            if isinstance(item, dict):
                node = ET.SubElement(child, _qualified(item_name))
                for sub_key, sub_value in item.items():
                    _append(node, sub_key, sub_value)
            else:
                ET.SubElement(child, _qualified(item_name)).text = _scalar_text(item)
    else:
        child.text = _scalar_text(value)


def render_xml(report: Report) -> bytes:
    """The report as a namespaced ``IntegrationReport`` XML document: UTF-8, declared, indented.

    One element per field of ``report_dict`` in PascalCase (``flow_number`` → ``FlowNumber``), so the XML
    and the JSON always hold the same values; lists are a wrapper holding repeated children
    (``Invoices/Invoice``, ``Errors/Error``, ``History/StatusChange``, ``ReturnFlows/ReturnFlow``,
    ``NextAction/InvoiceNumbers/InvoiceNumber``); ``None`` fields are omitted.
    """
    root = ET.Element(_qualified("IntegrationReport"))
    for key, value in report_dict(report).items():
        _append(root, key, value)
    ET.indent(root, space="  ")
    body: bytes = ET.tostring(root, encoding="utf-8", default_namespace=REPORT_NAMESPACE)
    return _XML_DECLARATION + body + b"\n"


class ReportFormat(enum.Enum):
    """The file renderings a depositor downloads: ``(extension, content type)``."""

    JSON = ("json", "application/json")
    XML = ("xml", "application/xml")

    @property
    def extension(self) -> str:
        return self.value[0]

    @property
    def content_type(self) -> str:
        return self.value[1]


def render_file(report: Report, fmt: ReportFormat) -> bytes:
    """The report rendered as ``fmt`` (``<flow number>.<fmt.extension>`` when saved)."""
    return render_xml(report) if fmt is ReportFormat.XML else render_json(report).encode()


# --- text ---------------------------------------------------------------------------------------------


def _entry_lines(entries: Sequence[ReportEntry], indent: str) -> list[str]:
    lines: list[str] = []
    for e in entries:
        where = ", ".join(part for part in (e.rule, e.business_term, e.location) if part)
        suffix = f" [{where}]" if where else ""
        lines.append(f"{indent}{e.severity.value} {e.code}: {e.message}{suffix}")
        if e.hint:
            lines.append(f"{indent}  hint: {e.hint}")
    return lines


def render_text(report: Report) -> str:
    """A short human summary: the flow, its status, one line per invoice, each error with its hint."""
    flow = report.flow
    if flow.flow_number:
        lines = [f"Flow {flow.flow_number} ({flow.file_name}, {flow.syntax.value})"]
    else:
        lines = [f"File {flow.file_name} ({flow.syntax.value})"]
    lines.append(f"Status: {flow.status.name} ({flow.status.code}, {flow.status.label_fr})")
    lines.append(
        f"Invoices: {report.invoice_count} ({report.integrated_count} integrated, {report.rejected_count} rejected)"
    )
    for invoice in report.invoices:
        facts = invoice.facts
        amount = amount_text(facts.total_with_vat)
        money = f" {amount} {facts.currency or ''}".rstrip() if amount is not None else ""
        lines.append(
            f"  {invoice.status.value:<10} {facts.number or '(no number)'} {facts.document}"
            f" supplier {facts.supplier_id or '-'} buyer {facts.buyer_id or '-'}{money}"
        )
        lines += _entry_lines(invoice.errors + invoice.warnings, "      ")
    if report.errors or report.warnings:
        lines.append("Flow errors:")
        lines += _entry_lines(report.errors + report.warnings, "  ")
    action = report.next_action
    lines.append(f"Next: {action.code.value} - {action.message}")
    return "\n".join(lines) + "\n"
