"""Engine dataclasses ↔ ``fluxdepot.v1`` messages, and request fields checked on the way in.

Pure conversions: no store, no I/O. A malformed request field raises ``InvalidArgument`` naming the
field (``INVALID_ARGUMENT`` on the wire).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from engine.deposit import DepositReceipt
from engine.model import Channel, FlowRecord, Syntax
from engine.queries import MAX_PAGE_SIZE, DashboardQuery, EventRecord, FlowQuery, PageKey
from engine.report import Report, ReportEntry, ReportFormat, ReportInvoice, amount_text
from engine.services.flows import MAX_REPORTS_PER_ZIP, DashboardView, DepositForm
from engine.status import FlowStatus
from fluxdepot.v1 import flows_pb2 as pb
from gateway.grpc_errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
DEFAULT_TOP_ERRORS = 10
MAX_TOP_ERRORS = 100
MAX_FILTER_VALUES = 1000
_SIRET = re.compile(r"^[0-9]{14}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

STATUS_TO_PB: dict[FlowStatus, int] = {s: pb.FlowStatus.Value(f"FLOW_STATUS_{s.name}") for s in FlowStatus}
PB_TO_STATUS: dict[int, FlowStatus] = {v: k for k, v in STATUS_TO_PB.items()}
CHANNEL_TO_PB: dict[Channel, int] = {c: pb.Channel.Value(f"CHANNEL_{c.name}") for c in Channel}
PB_TO_CHANNEL: dict[int, Channel] = {v: k for k, v in CHANNEL_TO_PB.items()}


# --- out: engine → messages ----------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(at: datetime) -> Timestamp:
    """``at`` (naive means UTC) as a Timestamp, by integer arithmetic: ``Timestamp.FromDatetime`` costs
    several times more, and every flow message carries two of them."""
    delta = (at if at.tzinfo else at.replace(tzinfo=UTC)) - _EPOCH
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1_000)


def flow_message(flow: FlowRecord) -> pb.Flow:
    return pb.Flow(
        flow_number=flow.flow_number,
        file_name=flow.file_name,
        syntax=flow.syntax.value,
        interface_code=flow.interface_code,
        channel=CHANNEL_TO_PB[flow.channel],  # type: ignore[arg-type]
        issuer_siret=flow.issuer_siret,
        depositor=flow.depositor,
        status=STATUS_TO_PB[flow.status],  # type: ignore[arg-type]
        status_code=flow.status.code,
        status_label=flow.status.label_fr,
        final=flow.status.is_final,
        deposited_at=timestamp(flow.deposited_at),
        status_changed_at=timestamp(flow.status_changed_at),
        invoice_count=flow.invoice_count,
        integrated_count=flow.integrated_count,
        rejected_count=flow.rejected_count,
        size_bytes=flow.size_bytes,
        sha256=flow.sha256,
        tracking_id=flow.tracking_id or "",
        partner_code=flow.partner_code or "",
    )


def event_message(event: EventRecord) -> pb.FlowEvent:
    return pb.FlowEvent(
        cursor=event.cursor,
        flow_number=event.flow_number,
        issuer_siret=event.issuer_siret,
        status=STATUS_TO_PB[event.status],  # type: ignore[arg-type]
        status_code=event.status.code,
        event=event.event.value if event.event else "",
        at=timestamp(event.at),
        final=event.status.is_final,
    )


def status_count(siret: str, status: FlowStatus, n: int) -> pb.StatusCount:
    return pb.StatusCount(
        issuer_siret=siret,
        status=STATUS_TO_PB[status],  # type: ignore[arg-type]
        status_code=status.code,
        status_label=status.label_fr,
        count=n,
    )


def dashboard_message(view: DashboardView) -> pb.DashboardResponse:
    board, now = view.board, view.at
    count = status_count
    order = list(FlowStatus)
    totals = board.totals()
    return pb.DashboardResponse(
        rows=[count(r.issuer_siret, r.status, r.count) for r in board.rows],
        totals=[count("", s, totals[s]) for s in order if s in totals],
        oldest=[
            pb.OldestFlow(
                status=STATUS_TO_PB[s],  # type: ignore[arg-type]
                status_code=s.code,
                since=timestamp(at),
                age_seconds=max(0.0, (now - at).total_seconds()),
            )
            for s, at in sorted(board.oldest.items(), key=lambda item: order.index(item[0]))
        ],
        top_errors=[pb.ErrorCount(code=e.code, rule=e.rule or "", count=e.count) for e in board.top_errors],
        total_count=sum(totals.values()),
        stuck=[count("", s, n) for s, n in view.stuck.items()],
    )


def deposit_response(receipt: DepositReceipt) -> pb.DepositResponse:
    flow = receipt.flow
    return pb.DepositResponse(
        flow_number=flow.flow_number,
        deposited_at=timestamp(flow.deposited_at),
        syntax=flow.syntax.value,
        status=STATUS_TO_PB[flow.status],  # type: ignore[arg-type]
        status_code=flow.status.code,
        sha256=flow.sha256,
        already_deposited=receipt.already_deposited,
        flow=flow_message(flow),
    )


def _text(value: str | None) -> str:
    return "" if value is None else value


def _error(e: ReportEntry) -> pb.ReportError:
    return pb.ReportError(
        code=e.code,
        kind=e.kind.value,
        severity=e.severity.value,
        message=e.message,
        rule=_text(e.rule),
        business_term=_text(e.business_term),
        location=_text(e.location),
        document=_text(e.document),
        hint=e.hint,
    )


def _invoice(invoice: ReportInvoice) -> pb.ReportInvoice:
    facts = invoice.facts
    return pb.ReportInvoice(
        document=facts.document,
        number=_text(facts.number),
        supplier=_text(facts.supplier_id),
        buyer=_text(facts.buyer_id),
        service_code=_text(facts.service_code),
        engagement_number=_text(facts.engagement_number),
        amount=_text(amount_text(facts.total_with_vat)),
        currency=_text(facts.currency),
        status=invoice.status.value,
        errors=[_error(e) for e in invoice.errors],
    )


def report_message(report: Report) -> pb.Report:
    """The structured part of ``GetReport``'s answer: a rendering of ``engine.report.Report``."""
    action = report.next_action
    return pb.Report(
        flow=flow_message(report.flow),
        history=[
            pb.StatusChange(
                status=STATUS_TO_PB[c.status],  # type: ignore[arg-type]
                status_code=c.status.code,
                event=c.event.value if c.event else "",
                at=timestamp(c.at),
                actor=c.actor,
                detail=_text(c.detail),
            )
            for c in report.history
        ],
        invoices=[_invoice(i) for i in report.invoices],
        errors=[_error(e) for e in report.errors],
        warnings=[_error(e) for e in report.warnings],
        return_flows=report.flow.return_flows,
        next_action=pb.NextAction(
            code=action.code.value, message=action.message, invoice_numbers=action.invoice_numbers
        ),
        engine_version=report.engine_version,
        ruleset_version=report.ruleset_version,
    )


def report_format(value: int) -> ReportFormat:
    """A ``ReportFormat`` of the API (unspecified: JSON)."""
    return ReportFormat.XML if value == pb.REPORT_FORMAT_XML else ReportFormat.JSON


FORMAT_TO_PB = {ReportFormat.JSON: pb.REPORT_FORMAT_JSON, ReportFormat.XML: pb.REPORT_FORMAT_XML}


# --- in: request fields → engine values ------------------------------------------------------------------


def _limit(name: str, values: Iterable[Any]) -> list[Any]:
    out = list(values)
    if len(out) > MAX_FILTER_VALUES:
        raise InvalidArgument(name, f"at most {MAX_FILTER_VALUES} values")
    return out


def sirets(name: str, values: Iterable[str]) -> tuple[str, ...]:
    out = tuple(v.strip() for v in _limit(name, values))
    for v in out:
        if not _SIRET.match(v):
            raise InvalidArgument(name, f"{v!r} is not a 14-digit SIRET")
    return out


def statuses(name: str, values: Iterable[int]) -> tuple[FlowStatus, ...]:
    out = []
    for v in _limit(name, values):
        if v not in PB_TO_STATUS:
            raise InvalidArgument(name, f"unknown status {v}")
        out.append(PB_TO_STATUS[v])
    return tuple(out)


def syntaxes(name: str, values: Iterable[str]) -> tuple[Syntax, ...]:
    try:
        return tuple(Syntax.parse(v) for v in _limit(name, values))
    except ValueError as exc:
        raise InvalidArgument(name, str(exc)) from None


def optional_time(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def flow_query(request: pb.SearchRequest) -> FlowQuery:
    if request.sha256 and not _SHA256.match(request.sha256):
        raise InvalidArgument("sha256", "must be 64 lower-case hexadecimal characters")
    if request.channel and request.channel not in PB_TO_CHANNEL:
        raise InvalidArgument("channel", f"unknown channel {request.channel}")
    return FlowQuery(
        issuer_sirets=sirets("issuer_sirets", request.issuer_sirets),
        statuses=statuses("statuses", request.statuses),
        syntaxes=syntaxes("syntaxes", request.syntaxes),
        deposited_from=optional_time(request, "deposited_from"),
        deposited_to=optional_time(request, "deposited_to"),
        flow_number=request.flow_number.strip() or None,
        file_name_contains=request.file_name or None,
        channel=PB_TO_CHANNEL.get(request.channel),
        sha256=request.sha256 or None,
        tracking_id=request.tracking_id or None,
        updated_after=optional_time(request, "updated_after"),
    )


def page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0: {DEFAULT_PAGE_SIZE})")
    return value or DEFAULT_PAGE_SIZE


def page_key(token: str) -> PageKey | None:
    if not token:
        return None
    try:
        return PageKey.from_token(token)
    except ValueError:
        raise InvalidArgument("page_token", "is not a token this server issued") from None


def dashboard_query(request: pb.DashboardRequest) -> DashboardQuery:
    if request.top_errors < 0 or request.top_errors > MAX_TOP_ERRORS:
        raise InvalidArgument("top_errors", f"must be between 0 and {MAX_TOP_ERRORS}")
    return DashboardQuery(
        issuer_sirets=sirets("issuer_sirets", request.issuer_sirets),
        syntaxes=syntaxes("syntaxes", request.syntaxes),
        deposited_from=optional_time(request, "deposited_from"),
        deposited_to=optional_time(request, "deposited_to"),
        top_errors=request.top_errors or DEFAULT_TOP_ERRORS,
    )


def deposit_form(request: pb.DepositRequest) -> DepositForm:
    """What a ``Deposit`` or a ``DepositStream`` header says besides the bytes."""
    return DepositForm(
        file_name=request.file_name,
        issuer_siret=request.issuer_siret,
        syntax=request.syntax or None,
        tracking_id=request.tracking_id or None,
        sha256=request.sha256 or None,
        with_signature=request.with_signature,
    )


def flow_numbers(values: Iterable[str]) -> list[str]:
    """The flows of a zip of reports: at least one, at most ``MAX_REPORTS_PER_ZIP`` different ones."""
    numbers = [flow_number(n) for n in values]
    if not numbers:
        raise InvalidArgument("flow_numbers", "name at least one flow")
    if len(set(numbers)) > MAX_REPORTS_PER_ZIP:
        raise InvalidArgument("flow_numbers", f"at most {MAX_REPORTS_PER_ZIP} flows per zip")
    return numbers


def flow_number(value: str) -> str:
    number = value.strip()
    if not number:
        raise InvalidArgument("flow_number", "is required")
    if len(number) > 64:
        raise InvalidArgument("flow_number", "is longer than 64 characters")
    return number
