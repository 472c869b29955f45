"""The JSON API's bodies as pydantic models (so the OpenAPI document describes them), and the conversions
from the engine's dataclasses. Pure: no I/O.

The fields are those of ``proto/fluxdepot/v1/flows.proto`` (DESIGN §10), in snake_case, with statuses by
name (``INTEGRATED``) beside Chorus Pro's code (``IN_INTEGRE``), datetimes as RFC 3339 in UTC and amounts as
decimal strings. ``ReportOut`` mirrors ``engine.report.report_dict`` key for key: the report route sends
the engine's own rendering, and a test validates it against this model so the two cannot drift.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from engine.deposit import DepositReceipt
from engine.model import Channel, FlowRecord, Syntax
from engine.queries import EventRecord
from engine.report import NextStep, ReportFormat
from engine.services.flows import MAX_DETAIL_CHARS, MAX_REPORTS_PER_ZIP, DashboardView, Reprocess
from engine.status import FlowStatus

# Enums of the API, by name; built from the engine's so that a new status appears in the document too.
StatusName = enum.Enum("StatusName", [(s.name, s.name) for s in FlowStatus], type=str)  # type: ignore[misc]
ChannelName = enum.Enum("ChannelName", [(c.name, c.value) for c in Channel], type=str)  # type: ignore[misc]
SyntaxName = enum.Enum("SyntaxName", [(s.name, s.value) for s in Syntax], type=str)  # type: ignore[misc]
ReprocessAction = enum.Enum("ReprocessAction", [(a.name, a.name) for a in Reprocess], type=str)  # type: ignore[misc]
ZipFormat = enum.Enum("ZipFormat", [(f.extension, f.extension) for f in ReportFormat], type=str)  # type: ignore[misc]

FlowNumber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


def utc(at: datetime) -> datetime:
    """``at`` with its zone (the store's naive datetimes are UTC)."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class ErrorBody(BaseModel):
    """The AFNOR ``Error`` object, on every error of every HTTP route."""

    errorCode: str  # noqa: N815 - the AFNOR standard's field names
    errorMessage: str  # noqa: N815


class Flow(BaseModel):
    flow_number: str
    file_name: str
    syntax: SyntaxName
    interface_code: str
    channel: ChannelName
    issuer_siret: str
    depositor: str
    status: StatusName
    status_code: str = Field(description="Chorus Pro's code, e.g. IN_INTEGRE")
    status_label: str = Field(description="the French portal label, e.g. « Intégré partiel »")
    final: bool
    deposited_at: datetime
    status_changed_at: datetime
    invoice_count: int
    integrated_count: int
    rejected_count: int
    size_bytes: int
    sha256: str
    tracking_id: str | None
    partner_code: str | None


def flow_out(flow: FlowRecord) -> Flow:
    return Flow(
        flow_number=flow.flow_number,
        file_name=flow.file_name,
        syntax=SyntaxName[flow.syntax.name],
        interface_code=flow.interface_code,
        channel=ChannelName[flow.channel.name],
        issuer_siret=flow.issuer_siret,
        depositor=flow.depositor,
        status=StatusName[flow.status.name],
        status_code=flow.status.code,
        status_label=flow.status.label_fr,
        final=flow.status.is_final,
        deposited_at=utc(flow.deposited_at),
        status_changed_at=utc(flow.status_changed_at),
        invoice_count=flow.invoice_count,
        integrated_count=flow.integrated_count,
        rejected_count=flow.rejected_count,
        size_bytes=flow.size_bytes,
        sha256=flow.sha256,
        tracking_id=flow.tracking_id,
        partner_code=flow.partner_code,
    )


class DepositOut(BaseModel):
    """The receipt of a deposit: the flow is durable and RECEIVED (or was, for a repeated tracking id)."""

    flow_number: str
    deposited_at: datetime
    syntax: SyntaxName
    status: StatusName
    status_code: str
    sha256: str
    already_deposited: bool = Field(description="the tracking id matched an earlier flow, returned here")
    flow: Flow


def deposit_out(receipt: DepositReceipt) -> DepositOut:
    flow = receipt.flow
    return DepositOut(
        flow_number=flow.flow_number,
        deposited_at=utc(flow.deposited_at),
        syntax=SyntaxName[flow.syntax.name],
        status=StatusName[flow.status.name],
        status_code=flow.status.code,
        sha256=flow.sha256,
        already_deposited=receipt.already_deposited,
        flow=flow_out(flow),
    )


class FlowPage(BaseModel):
    flows: list[Flow]
    next_page_token: str | None = Field(description="pass as page_token for the next page; null on the last")
    total_count: int = Field(description="every match, all pages")


class StatusCount(BaseModel):
    issuer_siret: str | None = Field(description="null in totals and stuck counts")
    status: StatusName
    status_code: str
    status_label: str
    count: int


class OldestFlow(BaseModel):
    status: StatusName
    status_code: str
    since: datetime
    age_seconds: float


class ErrorCount(BaseModel):
    code: str
    rule: str | None
    count: int


class DashboardOut(BaseModel):
    rows: list[StatusCount] = Field(description="per issuer and status (non-zero only)")
    totals: list[StatusCount] = Field(description="per status, all issuers")
    oldest: list[OldestFlow] = Field(description="the oldest flow per non-final status")
    top_errors: list[ErrorCount]
    total_count: int
    stuck: list[StatusCount] = Field(description="per watched status: flows in it longer than the watchdog's age")


def _count(siret: str | None, status: FlowStatus, n: int) -> StatusCount:
    return StatusCount(
        issuer_siret=siret,
        status=StatusName[status.name],
        status_code=status.code,
        status_label=status.label_fr,
        count=n,
    )


def dashboard_out(view: DashboardView) -> DashboardOut:
    board, now, order = view.board, view.at, list(FlowStatus)
    totals = board.totals()
    return DashboardOut(
        rows=[_count(r.issuer_siret, r.status, r.count) for r in board.rows],
        totals=[_count(None, s, totals[s]) for s in order if s in totals],
        oldest=[
            OldestFlow(
                status=StatusName[s.name],
                status_code=s.code,
                since=utc(at),
                age_seconds=max(0.0, (now - at).total_seconds()),
            )
            for s, at in sorted(board.oldest.items(), key=lambda item: order.index(item[0]))
        ],
        top_errors=[ErrorCount(code=e.code, rule=e.rule, count=e.count) for e in board.top_errors],
        total_count=sum(totals.values()),
        stuck=[_count(None, s, n) for s, n in view.stuck.items()],
    )


class FlowEventOut(BaseModel):
    """The ``data:`` of one Server-Sent Event; the event's ``id:`` is the same ``cursor``."""

    cursor: int
    flow_number: str
    issuer_siret: str
    status: StatusName
    status_code: str
    event: str | None = Field(description="what happened (engine.status.FlowEvent); null when received")
    at: datetime
    final: bool


def event_out(event: EventRecord) -> FlowEventOut:
    return FlowEventOut(
        cursor=event.cursor,
        flow_number=event.flow_number,
        issuer_siret=event.issuer_siret,
        status=StatusName[event.status.name],
        status_code=event.status.code,
        event=event.event.value if event.event else None,
        at=utc(event.at),
        final=event.status.is_final,
    )


# --- request bodies ------------------------------------------------------------------------------------


class ZipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow_numbers: list[FlowNumber] = Field(min_length=1, max_length=MAX_REPORTS_PER_ZIP)
    format: ZipFormat = ZipFormat["json"]


class ReprocessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ReprocessAction
    detail: str = Field("", max_length=MAX_DETAIL_CHARS, description="why (kept in the flow's history)")


# --- the integration report (engine.report.report_dict) ---------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportEntryOut(_Strict):
    code: str
    kind: Literal["technical", "business"]
    severity: Literal["error", "warning", "info"]
    message: str
    rule: str | None
    business_term: str | None
    location: str | None
    document: str | None
    hint: str


class PartyOut(_Strict):
    id: str | None
    name: str | None


class AmountsOut(_Strict):
    total_without_vat: str | None
    total_with_vat: str | None
    amount_due: str | None


class ReportInvoiceOut(_Strict):
    document: str
    number: str | None
    type_code: str | None
    issue_date: str | None
    currency: str | None
    supplier: PartyOut
    buyer: PartyOut
    service_code: str | None
    engagement_number: str | None
    amount: AmountsOut
    status: Literal["integrated", "rejected"]
    errors: list[ReportEntryOut]
    warnings: list[ReportEntryOut]


class StatusChangeOut(_Strict):
    seq: int
    status: StatusName
    status_code: str
    at: datetime
    actor: str
    event: str | None
    detail: str | None


class NextActionOut(_Strict):
    code: Literal[tuple(n.value for n in NextStep)]  # type: ignore[valid-type]
    message: str
    invoice_numbers: list[str]


class ReportOut(_Strict):
    """The integration report (DESIGN §7), as ``engine.report.render_json`` writes it."""

    report_version: str
    flow_number: str
    file_name: str
    syntax: SyntaxName
    interface_code: str
    channel: ChannelName
    issuer: str
    depositor: str
    partner_code: str | None
    tracking_id: str | None
    status: StatusName
    status_code: str
    status_label: str
    final: bool
    deposited_at: datetime
    status_changed_at: datetime
    history: list[StatusChangeOut]
    sha256: str
    size_bytes: int
    invoice_count: int
    integrated_count: int
    rejected_count: int
    invoices: list[ReportInvoiceOut]
    errors: list[ReportEntryOut]
    warnings: list[ReportEntryOut]
    return_flows: list[str]
    next_action: NextActionOut
    engine_version: str
    ruleset_version: str
