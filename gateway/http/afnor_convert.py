"""Our flows in the terms of the AFNOR XP Z12-013 Flow Service 1.1.0, and its requests in ours.

Pure functions over engine values: no store, no I/O, nothing of FastAPI, so the webhooks can build the
standard's ``WebhookCallbackContent`` as ``{"flowInfo": afnor_flow(flow)}``. The README's "AFNOR Flow
Service" section prints the tables below; what the standard has no room for (our nine statuses, the
integration report) is in the report (``GET /v1/flows/{flowId}?docType=ReadableView``).

* ``flowId`` is our 25-character flow number; ``submittedAt`` the deposit time, ``updatedAt`` the last
  status change, both ISO 8601 to the millisecond (``engine.report.iso_millis``).
* ``acknowledgement.status`` (``FlowAckStatus``) comes from our status (``ACK_OF_STATUS``), its details
  from the report's findings: the catalogue code becomes a ``reasonCode`` of the standard where one says
  the same (``REASON_OF_CODE``), else it is passed as it is (the standard's reason codes are extensible).
* Every flow we hold is an invoice flow a supplier's software sent us: ``flowType`` ``CustomerInvoice``,
  ``flowDirection`` ``Out``, ``processingRule`` ``B2B`` (e-invoicing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.deposit import DepositReceipt
from engine.model import DocumentFamily, FlowRecord, Severity, Syntax
from engine.queries import FlowQuery
from engine.report import Report, ReportEntry, iso_millis
from engine.status import FlowStatus

FLOW_TYPE = "CustomerInvoice"  # a non-self-billed outgoing invoice, from its depositor's side
FLOW_DIRECTION = "Out"  # from the depositor's software (the OD) to the platform
PROCESSING_RULE = "B2B"  # e-invoicing
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_DETAILS = 500  # acknowledgement details of one flow; the report has them all

S = FlowStatus
ACK_OF_STATUS: dict[FlowStatus, str] = {
    S.RECEIVED: "Pending",
    S.PROCESSED_SE_CPP: "Pending",
    S.WAITING_FOR_PROCESSING: "Pending",
    S.IN_PROGRESS: "Pending",
    S.WAITING_FOR_REPROCESSING: "Pending",  # held for an operator: not yet judged
    S.INTEGRATED: "Ok",
    S.PARTIALLY_INTEGRATED: "Ok",  # the flow passed; its rejected invoices are Error details
    S.REJECTED: "Error",
    S.WARNING: "Error",  # the platform failed: deposit again (OtherTechnicalError)
}
STATUSES_OF_ACK: dict[str, tuple[FlowStatus, ...]] = {
    ack: tuple(s for s in FlowStatus if ACK_OF_STATUS[s] == ack) for ack in ("Pending", "Ok", "Error")
}

# Catalogue code (engine.catalogue) → the standard's ReasonCodeEnum; any other code is sent as it is.
REASON_OF_CODE: dict[str, str] = {
    "FILE_EMPTY": "EmptyFlow",
    "ARCHIVE_EMPTY": "EmptyFlow",
    "FILE_TOO_LARGE": "FileSizeExceeded",
    "ARCHIVE_TOO_LARGE": "FileSizeExceeded",
    "ARCHIVE_MEMBER_TOO_LARGE": "FileSizeExceeded",
    "ARCHIVE_TOO_MANY_DOCUMENTS": "FileSizeExceeded",
    "XML_TOO_LARGE": "FileSizeExceeded",
    "PDF_ATTACHMENT_TOO_LARGE": "FileSizeExceeded",
    "PDF_ATTACHMENTS_TOO_LARGE": "FileSizeExceeded",
    "XML_NOT_WELL_FORMED": "InvalidSchema",
    "XML_FORBIDDEN_CONSTRUCT": "InvalidSchema",
    "XML_TOO_DEEP": "InvalidSchema",
    "XSD_INVALID": "InvalidSchema",
    "FILE_NOT_XML": "FlowTypeError",
    "ARCHIVE_UNREADABLE": "FlowTypeError",
    "ARCHIVE_UNSUPPORTED_MEMBER": "FlowTypeError",
    "PDF_UNREADABLE": "FlowTypeError",
    "PDF_NO_XML": "FlowTypeError",
    "SYNTAX_UNKNOWN": "FlowTypeError",
    "SYNTAX_UNSUPPORTED": "FlowTypeError",
    "SYNTAX_MISMATCH": "FlowTypeError",
    "SYNTAX_MIXED": "FlowTypeError",
    "FACTURX_PROFILE_NOT_ACCEPTED": "FlowTypeError",
    "ATTACHMENT_MISSING": "AttachmentTypeError",
    "ARCHIVE_UNSAFE_PATH": "OtherTechnicalError",
    "ARCHIVE_COMPRESSION_RATIO": "OtherTechnicalError",
    "ARCHIVE_HEADER_TOO_LARGE": "OtherTechnicalError",
    "PDF_TOO_MANY_OBJECTS": "OtherTechnicalError",
    "PDF_STRUCTURE_TOO_LARGE": "OtherTechnicalError",
    "PDF_TOO_MANY_ATTACHMENTS": "OtherTechnicalError",
    "CHECK_FAILED": "OtherTechnicalError",
    "CHECK_TIMEOUT": "OtherTechnicalError",
    "CHECK_OUT_OF_MEMORY": "OtherTechnicalError",
    "PROCESSING_INTERRUPTED": "OtherTechnicalError",
    "DUPLICATE_INVOICE": "AlreadyExistingFlow",
}
_SYSTEM_FAILURE = (
    "The platform could not process the flow (status IN_INCIDENTE, Incidenté); deposit the whole flow again."
)

# Our syntaxes in the standard's words: FlowSyntax by document family, FlowProfile by syntax.
SYNTAX_OF_FAMILY: dict[DocumentFamily, str] = {
    DocumentFamily.UBL: "UBL",
    DocumentFamily.CII: "CII",
    DocumentFamily.FACTURX_PDF: "Factur-X",
}
PROFILE_OF_SYNTAX: dict[Syntax, str] = {
    Syntax.UBL_INVOICE: "CIUS",
    Syntax.CII_16B: "CIUS",
    Syntax.CII_FACTURX: "CIUS",
    Syntax.UBL_INVOICE_MIN: "Basic",
    Syntax.CII_MIN_16B: "Basic",
}
# A declared (flowSyntax, flowProfile) → our syntaxeFlux; a profile not listed takes the None row.
DECLARED_SYNTAX: dict[tuple[str, str | None], Syntax] = {
    ("UBL", None): Syntax.UBL_INVOICE,
    ("UBL", "Basic"): Syntax.UBL_INVOICE_MIN,
    ("CII", None): Syntax.CII_16B,
    ("CII", "Basic"): Syntax.CII_MIN_16B,
    ("Factur-X", None): Syntax.CII_FACTURX,
}
UNSUPPORTED_SYNTAXES = {"CDAR": "lifecycle messages (CDAR)", "FRR": "e-reporting (FRR)"}


def afnor_time(at: datetime) -> str:
    return iso_millis(at)


def ack_status(status: FlowStatus) -> str:
    return ACK_OF_STATUS[status]


def reason_code(code: str) -> str:
    """The standard's reason code for a catalogue code, or the catalogue code itself (an extension)."""
    return REASON_OF_CODE.get(code, code)


def flow_syntax(syntax: Syntax) -> str:
    return SYNTAX_OF_FAMILY[syntax.family]


def flow_profile(syntax: Syntax, guidelines: Sequence[str | None] = ()) -> str:
    """``CIUS`` for EN 16931 invoices, ``Basic`` for our minimal (E2) syntaxes, ``Extended-CTC-FR`` for a
    Factur-X flow whose invoices name the EXTENDED profile (BT-24, known once the flow is processed)."""
    if syntax is Syntax.CII_FACTURX and any(g and ":extended" in g.lower() for g in guidelines):
        return "Extended-CTC-FR"
    return PROFILE_OF_SYNTAX[syntax]


def _detail(level: str, item: str, entry: ReportEntry) -> dict[str, str]:
    return {"level": level, "item": item, "reasonCode": reason_code(entry.code), "reasonMessage": entry.message}


def _noted(entries: Sequence[ReportEntry]) -> list[ReportEntry]:
    """Warnings, without the notes (``Severity.INFO``: e.g. directory checks not run)."""
    return [e for e in entries if e.severity is not Severity.INFO]


def _details(report: Report) -> list[dict[str, str]]:
    """The report's errors and warnings (notes left out), flow-level first, then per invoice."""
    flow = report.flow
    out = [_detail("Error", e.document or flow.file_name, e) for e in report.errors]
    out += [
        _detail("Warning", e.document or flow.file_name, e) for e in report.warnings if e.severity is not Severity.INFO
    ]
    for invoice in report.invoices:
        item = (invoice.facts.number or "").strip() or invoice.facts.document
        out += [_detail("Error", item, e) for e in invoice.errors]
        out += [_detail("Warning", item, e) for e in invoice.warnings if e.severity is not Severity.INFO]
    if not out and flow.status is FlowStatus.WARNING:
        out.append(
            {
                "level": "Error",
                "item": flow.file_name,
                "reasonCode": "OtherTechnicalError",
                "reasonMessage": _SYSTEM_FAILURE,
            }
        )
    return out[:MAX_DETAILS]


def acknowledgement(flow: FlowRecord, report: Report | None = None) -> dict[str, Any]:
    """The standard's ``Acknowledgement``: the status, and the details when the report is given (the
    standard wants at least one detail when there are details, so none is ``details`` left out)."""
    out: dict[str, Any] = {"status": ack_status(flow.status)}
    details = _details(report) if report is not None else []
    if details:
        out["details"] = details
    return out


def afnor_flow(flow: FlowRecord, report: Report | None = None) -> dict[str, Any]:
    """``flow`` as the standard's ``Flow`` object; with its ``report`` (``FlowsService.report``), the
    acknowledgement carries the findings as details and the Factur-X profile is exact."""
    guidelines = [i.facts.guideline for i in report.invoices] if report is not None else []
    out: dict[str, Any] = {
        "flowId": flow.flow_number,
        "submittedAt": afnor_time(flow.deposited_at),
        "updatedAt": afnor_time(flow.status_changed_at),
    }
    if flow.tracking_id:
        out["trackingId"] = flow.tracking_id
    out |= {
        "flowType": FLOW_TYPE,
        "processingRule": PROCESSING_RULE,
        "flowDirection": FLOW_DIRECTION,
        "flowSyntax": flow_syntax(flow.syntax),
        "flowProfile": flow_profile(flow.syntax, guidelines),
        "acknowledgement": acknowledgement(flow, report),
    }
    return out


def full_flow_info(receipt: DepositReceipt) -> dict[str, Any]:
    """The answer to ``POST /v1/flows`` (``FullFlowInfo``): the flow info as recorded, with its id, its
    submission time and its sha256 (computed when the request gave none). A retry with a tracking id
    already used answers the first deposit's flow (same ``flowId`` and ``submittedAt``)."""
    flow = receipt.flow
    out: dict[str, Any] = {"flowId": flow.flow_number, "submittedAt": afnor_time(flow.deposited_at)}
    if flow.tracking_id:
        out["trackingId"] = flow.tracking_id
    out |= {
        "name": flow.file_name,
        "processingRule": PROCESSING_RULE,
        "flowSyntax": flow_syntax(flow.syntax),
        "flowProfile": flow_profile(flow.syntax),
        "sha256": flow.sha256,
    }
    return out


# --- in: the standard's requests → our values -----------------------------------------------------------


class UnsupportedValue(ValueError):
    """A value the standard allows that has no equivalent here (a 422 on the wire)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


def declared_syntax(syntax: str, profile: str | None) -> Syntax:
    """Our syntaxeFlux for a declared ``flowSyntax`` and ``flowProfile`` (``UnsupportedValue`` for CDAR
    and FRR: fluxdepot takes invoices only)."""
    if syntax in UNSUPPORTED_SYNTAXES:
        raise UnsupportedValue("flowSyntax", f"{UNSUPPORTED_SYNTAXES[syntax]} are not taken; deposit invoices")
    found = DECLARED_SYNTAX.get((syntax, profile)) or DECLARED_SYNTAX.get((syntax, None))
    if found is None:
        raise UnsupportedValue("flowSyntax", f"unknown syntax {syntax!r}")
    return found


@dataclass(frozen=True)
class SearchFilters:
    """``SearchFlowFilters`` as parsed (the route checked the shapes)."""

    updated_after: datetime | None = None
    updated_before: datetime | None = None
    processing_rules: tuple[str, ...] = ()
    flow_types: tuple[str, ...] = ()
    flow_directions: tuple[str, ...] = ()
    tracking_id: str | None = None
    ack_status: str | None = None


def after_millisecond(at: datetime) -> datetime:
    """``updatedAfter`` compared at the millisecond, the precision of ``updatedAt``: "after 12:00:00.123"
    means from 12:00:00.124 on, so a flow is never on two pages (the store's bound is strict)."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000) + timedelta(microseconds=999)


def flow_query(filters: SearchFilters) -> FlowQuery | None:
    """The store query for ``filters``; None when nothing we hold can match (another flow type,
    direction or processing rule than ours)."""
    if filters.processing_rules and PROCESSING_RULE not in filters.processing_rules:
        return None
    if filters.flow_types and FLOW_TYPE not in filters.flow_types:
        return None
    if filters.flow_directions and FLOW_DIRECTION not in filters.flow_directions:
        return None
    return FlowQuery(
        statuses=STATUSES_OF_ACK[filters.ack_status] if filters.ack_status else (),
        tracking_id=filters.tracking_id,
        updated_after=after_millisecond(filters.updated_after) if filters.updated_after else None,
        updated_before=filters.updated_before,
    )


def page_of_changes(flows: Sequence[FlowRecord], limit: int) -> list[FlowRecord]:
    """The page from up to ``limit + 1`` flows in update order: when more follow, the flows of the page's
    last millisecond are left to the next page (whose ``updatedAfter`` is that millisecond), unless the
    whole page is one millisecond (then the rest of that millisecond is skipped: README, limits)."""
    if len(flows) <= limit:
        return list(flows)
    page = list(flows[:limit])
    last = _millis(flows[limit].status_changed_at)
    kept = [f for f in page if _millis(f.status_changed_at) < last]
    return kept or page


def _millis(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def search_content(limit: int, where: Mapping[str, Any], flows: Sequence[FlowRecord]) -> dict[str, Any]:
    """The standard's ``SearchFlowContent``: the request's limit and filters, and the flows."""
    return {"limit": limit, "filters": dict(where), "results": [afnor_flow(f) for f in flows]}
