"""What the client returns: plain, frozen dataclasses built from ``fluxdepot.v1`` messages.

Statuses are strings: ``status`` is the English name (``INTEGRATED``), ``status_code`` Chorus Pro's code
(``IN_INTEGRE``). Times are timezone-aware ``datetime``s in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fluxdepot.v1 import admin_pb2 as admin_pb
from fluxdepot.v1 import flows_pb2 as pb

STATUS_CODES = {
    "RECEIVED": "IN_RECU",
    "PROCESSED_SE_CPP": "IN_TRAITE_SE_CPP",
    "WAITING_FOR_PROCESSING": "IN_EN_ATTENTE_TRAITEMENT_CPP",
    "IN_PROGRESS": "IN_EN_COURS_TRAITEMENT_CPP",
    "WARNING": "IN_INCIDENTE",
    "REJECTED": "IN_REJETE",
    "WAITING_FOR_REPROCESSING": "IN_EN_ATTENTE_RETRAITEMENT_CPP",
    "INTEGRATED": "IN_INTEGRE",
    "PARTIALLY_INTEGRATED": "IN_INTEGRE_PARTIEL",
}
STATUS_LABELS_FR = {
    "RECEIVED": "Reçu",
    "PROCESSED_SE_CPP": "Traité SE CPP",
    "WAITING_FOR_PROCESSING": "En attente de traitement",
    "IN_PROGRESS": "En cours de traitement",
    "WARNING": "Incidenté",
    "REJECTED": "Rejeté",
    "WAITING_FOR_REPROCESSING": "En attente de retraitement",
    "INTEGRATED": "Intégré",
    "PARTIALLY_INTEGRATED": "Intégré partiel",
}
FINAL_STATUSES = frozenset({"WARNING", "REJECTED", "INTEGRATED", "PARTIALLY_INTEGRATED"})
_BY_CODE = {code: name for name, code in STATUS_CODES.items()}


def status_value(text: str) -> int:
    """A ``FlowStatus`` value from a name (``INTEGRATED``), a code (``IN_INTEGRE``) or a protobuf name."""
    key = text.strip().upper().removeprefix("FLOW_STATUS_")
    key = _BY_CODE.get(key, key)
    if key not in STATUS_CODES:
        raise ValueError(f"unknown status {text!r}; use one of {', '.join(STATUS_CODES)} or their codes")
    return pb.FlowStatus.Value(f"FLOW_STATUS_{key}")


def status_name(value: int) -> str:
    return pb.FlowStatus.Name(value).removeprefix("FLOW_STATUS_")  # type: ignore[arg-type]


def _time(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Flow:
    flow_number: str
    file_name: str
    syntax: str
    interface_code: str
    channel: str
    issuer_siret: str
    depositor: str
    status: str
    status_code: str
    status_label: str
    final: bool
    deposited_at: datetime | None
    status_changed_at: datetime | None
    invoice_count: int
    integrated_count: int
    rejected_count: int
    size_bytes: int
    sha256: str
    tracking_id: str

    @classmethod
    def from_pb(cls, m: pb.Flow) -> Flow:
        return cls(
            flow_number=m.flow_number,
            file_name=m.file_name,
            syntax=m.syntax,
            interface_code=m.interface_code,
            channel=pb.Channel.Name(m.channel).removeprefix("CHANNEL_"),
            issuer_siret=m.issuer_siret,
            depositor=m.depositor,
            status=status_name(m.status),
            status_code=m.status_code,
            status_label=m.status_label,
            final=m.final,
            deposited_at=_time(m, "deposited_at"),
            status_changed_at=_time(m, "status_changed_at"),
            invoice_count=m.invoice_count,
            integrated_count=m.integrated_count,
            rejected_count=m.rejected_count,
            size_bytes=m.size_bytes,
            sha256=m.sha256,
            tracking_id=m.tracking_id,
        )


@dataclass(frozen=True)
class DepositResult:
    flow_number: str
    deposited_at: datetime | None
    syntax: str
    status: str
    status_code: str
    sha256: str
    already_deposited: bool

    @classmethod
    def from_pb(cls, m: pb.DepositResponse) -> DepositResult:
        return cls(
            flow_number=m.flow_number,
            deposited_at=_time(m, "deposited_at"),
            syntax=m.syntax,
            status=status_name(m.status),
            status_code=m.status_code,
            sha256=m.sha256,
            already_deposited=m.already_deposited,
        )


@dataclass(frozen=True)
class ReportError:
    code: str
    kind: str
    message: str
    rule: str
    business_term: str
    location: str
    document: str
    hint: str

    @classmethod
    def from_pb(cls, m: pb.ReportError) -> ReportError:
        return cls(m.code, m.kind, m.message, m.rule, m.business_term, m.location, m.document, m.hint)


@dataclass(frozen=True)
class ReportInvoice:
    document: str
    number: str
    supplier: str
    buyer: str
    amount: str
    status: str
    errors: tuple[ReportError, ...]


def _invoice(i: pb.ReportInvoice) -> ReportInvoice:
    errors = tuple(ReportError.from_pb(e) for e in i.errors)
    return ReportInvoice(i.document, i.number, i.supplier, i.buyer, i.amount, i.status, errors)


@dataclass(frozen=True)
class Report:
    flow: Flow
    invoices: tuple[ReportInvoice, ...]
    errors: tuple[ReportError, ...]
    warnings: tuple[ReportError, ...]
    next_action: str
    next_action_message: str
    invoices_to_redeposit: tuple[str, ...]
    content: bytes  # the rendered report (JSON or XML)
    content_type: str
    file_name: str
    history: tuple[tuple[str, datetime | None, str], ...] = ()  # (status, at, actor)

    @classmethod
    def from_pb(cls, m: pb.Report) -> Report:
        return cls(
            flow=Flow.from_pb(m.flow),
            invoices=tuple(_invoice(i) for i in m.invoices),
            errors=tuple(ReportError.from_pb(e) for e in m.errors),
            warnings=tuple(ReportError.from_pb(e) for e in m.warnings),
            next_action=m.next_action.code,
            next_action_message=m.next_action.message,
            invoices_to_redeposit=tuple(m.next_action.invoice_numbers),
            content=m.content,
            content_type=m.content_type,
            file_name=m.file_name,
            history=tuple((status_name(h.status), _time(h, "at"), h.actor) for h in m.history),
        )


@dataclass(frozen=True)
class SearchPage:
    flows: tuple[Flow, ...]
    next_page_token: str
    total_count: int


@dataclass(frozen=True)
class StatusCount:
    issuer_siret: str
    status: str
    status_code: str
    status_label: str
    count: int

    @classmethod
    def from_pb(cls, m: pb.StatusCount) -> StatusCount:
        return cls(m.issuer_siret, status_name(m.status), m.status_code, m.status_label, m.count)


@dataclass(frozen=True)
class Dashboard:
    rows: tuple[StatusCount, ...]
    totals: tuple[StatusCount, ...]
    oldest: dict[str, float]  # status -> age in seconds of the oldest flow in it
    top_errors: tuple[tuple[str, str, int], ...]  # (code, rule, count)
    total_count: int
    stuck: dict[str, int] = field(default_factory=dict)  # status -> flows past the watchdog's age

    @classmethod
    def from_pb(cls, m: pb.DashboardResponse) -> Dashboard:
        return cls(
            rows=tuple(StatusCount.from_pb(r) for r in m.rows),
            totals=tuple(StatusCount.from_pb(r) for r in m.totals),
            oldest={status_name(o.status): o.age_seconds for o in m.oldest},
            top_errors=tuple((e.code, e.rule, e.count) for e in m.top_errors),
            total_count=m.total_count,
            stuck={status_name(c.status): c.count for c in m.stuck},
        )


@dataclass(frozen=True)
class FlowEvent:
    cursor: int
    flow_number: str
    issuer_siret: str
    status: str
    status_code: str
    event: str
    at: datetime | None
    final: bool

    @classmethod
    def from_pb(cls, m: pb.FlowEvent) -> FlowEvent:
        return cls(
            m.cursor, m.flow_number, m.issuer_siret, status_name(m.status), m.status_code, m.event,
            _time(m, "at"), m.final,
        )  # fmt: skip


@dataclass(frozen=True)
class Token:
    kind: str
    login: str
    token: str  # shown once: the server keeps only its salted hash


@dataclass(frozen=True)
class Reject:
    flow_number: str
    issuer_siret: str
    deposited_at: datetime | None
    invoice_number: str
    document: str
    reason: str

    @classmethod
    def from_pb(cls, m: admin_pb.Reject) -> Reject:
        return cls(m.flow_number, m.issuer_siret, _time(m, "deposited_at"), m.invoice_number, m.document, m.reason)


@dataclass(frozen=True)
class Structure:
    siret: str
    name: str
    is_provider: bool
    services: tuple[str, ...] = field(default=())

    @classmethod
    def from_pb(cls, m: admin_pb.Structure) -> Structure:
        return cls(m.siret, m.name, m.is_provider, tuple(s.code for s in m.services))


@dataclass(frozen=True)
class Webhook:
    """A webhook subscription (its secret is only shown when it is added)."""

    id: int
    siret: str
    owner_kind: str
    owner: str
    url: str
    statuses: tuple[str, ...]  # empty: every status
    format: str
    created_at: datetime | None
    created_by: str

    @classmethod
    def from_pb(cls, m: admin_pb.Webhook) -> Webhook:
        statuses = tuple(status_name(s) for s in m.statuses)
        created = _time(m, "created_at")
        return cls(m.id, m.siret, m.owner_kind, m.owner, m.url, statuses, m.format, created, m.created_by)


@dataclass(frozen=True)
class WebhookDelivery:
    id: int
    webhook_id: int
    flow_number: str
    status: str
    previous_status: str | None
    at: datetime | None
    state: str  # pending, delivered or dead
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str

    @classmethod
    def from_pb(cls, m: admin_pb.WebhookDelivery) -> WebhookDelivery:
        previous = status_name(m.previous_status) if m.previous_status else None
        return cls(
            m.id,
            m.webhook_id,
            m.flow_number,
            status_name(m.status),
            previous,
            _time(m, "at"),
            m.state,
            m.attempts,
            _time(m, "next_attempt_at"),
            _time(m, "last_attempt_at"),
            m.last_error,
        )
