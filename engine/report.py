"""The integration report of a flow (DESIGN §7): one pure builder, three renderings (JSON, XML, text).

``build_report`` turns a flow, its history, its flow-level findings and its invoice outcomes into a plain
dict of str, int, bool, None, lists and dicts; every rendering reads only that dict, so the API, the
``check --json`` output and the partner's XML return flow can never disagree.

Invariants:

* key order is fixed by the builder and renderings are deterministic (same input, same bytes);
* datetimes are ISO 8601 with an offset (a naive datetime is taken as UTC), to the millisecond;
* amounts are decimal strings, never floats;
* every finding carries its catalogue ``kind`` and ``hint``; error-severity findings go to ``errors``,
  warnings and notes to ``warnings``;
* ``next_action`` always says what the depositor does next: ``NONE``, ``REDEPOSIT_FLOW``,
  ``REDEPOSIT_INVOICES`` (with the invoices to send again) or ``WAIT``; an invoice already integrated by
  an earlier flow is never to be sent again (``next_action`` docstring).

Empty values (``flow_number=""`` for ``fluxdepot check``) are kept as they are.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # builds and serialises trees only; never parses input
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine.catalogue import CATALOGUE
from engine.model import Finding, FlowRecord, InvoiceOutcome, InvoiceStatus, Kind, StatusChange
from engine.status import FlowStatus

REPORT_NAMESPACE = "urn:fluxdepot:integration-report:1"
REPORT_VERSION = "1"

NEXT_NONE = "NONE"
NEXT_REDEPOSIT_FLOW = "REDEPOSIT_FLOW"
NEXT_REDEPOSIT_INVOICES = "REDEPOSIT_INVOICES"
NEXT_WAIT = "WAIT"

ALREADY_INTEGRATED = "DUPLICATE_INVOICE"  # the catalogue's code for an invoice an earlier flow integrated


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.isoformat(timespec="milliseconds")


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _entry(f: Finding) -> dict[str, Any]:
    catalogued = CATALOGUE.get(f.code)
    return {
        "code": f.code,
        "kind": (catalogued.kind if catalogued else Kind.TECHNICAL).value,
        "severity": f.severity.value,
        "message": f.message,
        "rule": f.rule,
        "business_term": f.business_term,
        "location": f.location,
        "document": f.document,
        "hint": catalogued.hint if catalogued else "",
    }


def _errors(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [_entry(f) for f in findings if f.is_error]


def _warnings(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [_entry(f) for f in findings if not f.is_error]


def _invoice(outcome: InvoiceOutcome) -> dict[str, Any]:
    facts = outcome.facts
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
            "total_without_vat": _amount(facts.total_without_vat),
            "total_with_vat": _amount(facts.total_with_vat),
            "amount_due": _amount(facts.amount_due),
        },
        "status": outcome.status.value,
        "errors": _errors(outcome.findings),
        "warnings": _warnings(outcome.findings),
    }


def _change(change: StatusChange) -> dict[str, Any]:
    return {
        "seq": change.seq,
        "status": change.status.name,
        "status_code": change.status.code,
        "at": _iso(change.at),
        "actor": change.actor,
        "event": change.event.value if change.event else None,
        "detail": change.detail,
    }


def _label(outcome: InvoiceOutcome) -> str:
    number = (outcome.facts.number or "").strip()
    return number or outcome.facts.document


def _already_integrated(outcome: InvoiceOutcome) -> bool:
    """The invoice was rejected because an earlier flow integrated it: it must never be deposited again."""
    return any(f.code == ALREADY_INTEGRATED and f.is_error for f in outcome.findings)


def next_action(status: FlowStatus, invoices: Sequence[InvoiceOutcome]) -> dict[str, Any]:
    """What the depositor does next: ``{"code", "message", "invoice_numbers"}`` (the invoices to send
    again, by number or, without one, by document).

    An invoice rejected as already integrated (``DUPLICATE_INVOICE``) is never among the invoices to send
    again, and its flow is never to be deposited whole again: a flow rejected only for such invoices has
    nothing left to deposit (``NONE``); otherwise only the other rejected invoices go again.
    """
    if status is FlowStatus.WAITING_FOR_REPROCESSING:
        return _action(NEXT_WAIT, "The flow is held for an operator; no action is needed from you yet.")
    if not status.is_final:
        return _action(NEXT_WAIT, "The flow is still being processed; check its status again later.")
    if status is FlowStatus.INTEGRATED:
        return _action(NEXT_NONE, "Nothing to do: every invoice was integrated.")
    if status is FlowStatus.WARNING:
        return _action(NEXT_REDEPOSIT_FLOW, "The platform could not process the flow; deposit the whole flow again.")
    rejected = [o for o in invoices if o.status is InvoiceStatus.REJECTED]
    received = [_label(o) for o in rejected if _already_integrated(o)]
    again = [_label(o) for o in rejected if not _already_integrated(o)]
    if received and not again:
        return _action(
            NEXT_NONE,
            "Nothing to deposit again: the rejected invoices were already integrated by an earlier flow ("
            + ", ".join(received)
            + ").",
        )
    if received:
        return _action(
            NEXT_REDEPOSIT_INVOICES,
            "Deposit again, in a new flow, only these invoices, corrected where errors are listed: "
            + ", ".join(again)
            + ". Leave out "
            + ", ".join(received)
            + ": already integrated by an earlier flow.",
            again,
        )
    if status is FlowStatus.PARTIALLY_INTEGRATED:
        return _action(
            NEXT_REDEPOSIT_INVOICES,
            "Correct the rejected invoices and deposit only them again, in a new flow: " + ", ".join(again) + ".",
            again,
        )
    return _action(NEXT_REDEPOSIT_FLOW, "Correct the errors listed and deposit the whole flow again.")


def _action(code: str, message: str, invoices: Sequence[str] = ()) -> dict[str, Any]:
    return {"code": code, "message": message, "invoice_numbers": list(invoices)}


def build_report(
    flow: FlowRecord,
    history: Sequence[StatusChange],
    flow_findings: Sequence[Finding],
    invoices: Sequence[InvoiceOutcome],
    *,
    ruleset_version: str,
    engine_version: str,
) -> dict[str, Any]:
    """The integration report of ``flow`` as a plain, JSON-ready dict (the one source of every rendering)."""
    integrated = sum(o.status is InvoiceStatus.INTEGRATED for o in invoices)
    if invoices:
        counts = (len(invoices), integrated, len(invoices) - integrated)
    else:
        counts = (flow.invoice_count, flow.integrated_count, flow.rejected_count)
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
        "deposited_at": _iso(flow.deposited_at),
        "status_changed_at": _iso(flow.status_changed_at),
        "history": [_change(c) for c in history],
        "sha256": flow.sha256,
        "size_bytes": flow.size_bytes,
        "invoice_count": counts[0],
        "integrated_count": counts[1],
        "rejected_count": counts[2],
        "invoices": [_invoice(o) for o in invoices],
        "errors": _errors(flow_findings),
        "warnings": _warnings(flow_findings),
        "return_flows": list(flow.return_flows),
        "next_action": next_action(flow.status, invoices),
        "engine_version": engine_version,
        "ruleset_version": ruleset_version,
    }


# --- JSON ---------------------------------------------------------------------------------------------


def render_json(report: dict[str, Any]) -> str:
    """The report as JSON: the builder's key order, UTF-8 characters kept, indent 2, final newline."""
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


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
                _append_text(child, item_name, item)
    else:
        child.text = _scalar_text(value)


def _append_text(parent: ET.Element, name: str, value: Any) -> None:
    ET.SubElement(parent, _qualified(name)).text = _scalar_text(value)


def render_xml(report: dict[str, Any]) -> bytes:
    """The report as a namespaced ``IntegrationReport`` XML document: UTF-8, declared, indented.

    One element per field in PascalCase (``flow_number`` → ``FlowNumber``); lists are a wrapper holding
    repeated children (``Invoices/Invoice``, ``Errors/Error``, ``History/StatusChange``,
    ``ReturnFlows/ReturnFlow``, ``NextAction/InvoiceNumbers/InvoiceNumber``); ``None`` fields are omitted.
    """
    root = ET.Element(_qualified("IntegrationReport"))
    for key, value in report.items():
        _append(root, key, value)
    ET.indent(root, space="  ")
    body: bytes = ET.tostring(root, encoding="utf-8", default_namespace=REPORT_NAMESPACE)
    return _XML_DECLARATION + body + b"\n"


# --- text ---------------------------------------------------------------------------------------------


def _finding_lines(entries: Sequence[dict[str, Any]], indent: str) -> list[str]:
    lines: list[str] = []
    for e in entries:
        where = ", ".join(str(part) for part in (e["rule"], e["business_term"], e["location"]) if part)
        suffix = f" [{where}]" if where else ""
        lines.append(f"{indent}{e['severity']} {e['code']}: {e['message']}{suffix}")
        if e["hint"]:
            lines.append(f"{indent}  hint: {e['hint']}")
    return lines


def render_text(report: dict[str, Any]) -> str:
    """A short human summary: the flow, its status, one line per invoice, each error with its hint."""
    title = report["flow_number"] or report["file_name"]
    lines = [
        f"Flow {title} ({report['file_name']}, {report['syntax']})"
        if report["flow_number"]
        else f"File {title} ({report['syntax']})"
    ]
    lines.append(f"Status: {report['status']} ({report['status_code']}, {report['status_label']})")
    lines.append(
        f"Invoices: {report['invoice_count']} ({report['integrated_count']} integrated, "
        f"{report['rejected_count']} rejected)"
    )
    for invoice in report["invoices"]:
        amount = invoice["amount"]["total_with_vat"]
        money = f" {amount} {invoice['currency'] or ''}".rstrip() if amount is not None else ""
        lines.append(
            f"  {invoice['status']:<10} {invoice['number'] or '(no number)'} {invoice['document']}"
            f" supplier {invoice['supplier']['id'] or '-'} buyer {invoice['buyer']['id'] or '-'}{money}"
        )
        lines += _finding_lines(invoice["errors"] + invoice["warnings"], "      ")
    if report["errors"] or report["warnings"]:
        lines.append("Flow errors:")
        lines += _finding_lines(report["errors"] + report["warnings"], "  ")
    action = report["next_action"]
    lines.append(f"Next: {action['code']} - {action['message']}")
    return "\n".join(lines) + "\n"
