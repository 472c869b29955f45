"""Driver-neutral conversions between stored rows and the engine's flow dataclasses, for both stores.

A row is anything whose columns read by name (``sqlite3.Row``, ``asyncpg.Record``, a ``Mapping``). What differs
between drivers is only how a stored timestamp and a stored list of names read back; each store gives
that as a ``RowReader`` (``sqlite_database.READER``, ``postgres_db.READER``), and everything else is here.

Invariants: datetimes are timezone-aware UTC both ways (a naive datetime is refused with ``ValueError``);
enums are stored as their stable values (status codes, syntax names); decimals as exact text. The values
written for a finding or an invoice are named by their columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from engine.model import (
    Channel,
    Finding,
    FlowRecord,
    InvoiceFacts,
    InvoiceStatus,
    Severity,
    StatusChange,
    Syntax,
)
from engine.status import FlowEvent, FlowStatus
from engine.store.port import Claim, NewFlow


class Row(Protocol):
    """A row whose columns read by name (``sqlite3.Row``, ``asyncpg.Record``, any ``Mapping[str, Any]``)."""

    def __getitem__(self, column: str, /) -> Any: ...


def utc(at: datetime) -> datetime:
    """``at`` in UTC; refuses naive datetimes (their meaning depends on the machine)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store takes timezone-aware datetimes")
    return at.astimezone(UTC)


def opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class RowReader:
    """Row converters of one driver: ``time`` reads a stored timestamp back as an aware UTC datetime,
    ``names`` reads a stored list of names (``flows.return_flows``) back as an iterable."""

    time: Callable[[Any], datetime]
    names: Callable[[Any], Iterable[Any]]

    def flow(self, row: Row) -> FlowRecord:
        return FlowRecord(
            flow_number=str(row["flow_number"]),
            file_name=str(row["file_name"]),
            syntax=Syntax(row["syntax"]),
            channel=Channel(row["channel"]),
            issuer_siret=str(row["issuer_siret"]),
            depositor=str(row["depositor"]),
            status=FlowStatus(row["status"]),
            deposited_at=self.time(row["deposited_at"]),
            status_changed_at=self.time(row["status_changed_at"]),
            sha256=str(row["sha256"]),
            size_bytes=int(row["size_bytes"]),
            tracking_id=opt_str(row["tracking_id"]),
            declared_syntax=bool(row["declared_syntax"]),
            partner_code=opt_str(row["partner_code"]),
            invoice_count=int(row["invoice_count"]),
            integrated_count=int(row["integrated_count"]),
            rejected_count=int(row["rejected_count"]),
            return_flows=tuple(str(name) for name in self.names(row["return_flows"])),
        )

    def change(self, row: Row) -> StatusChange:
        return StatusChange(
            flow_number=str(row["flow_number"]),
            seq=int(row["seq"]),
            status=FlowStatus(row["status"]),
            event=FlowEvent(row["event"]) if row["event"] else None,
            at=self.time(row["at"]),
            actor=str(row["actor"]),
            detail=opt_str(row["detail"]),
            prev_hash=str(row["prev_hash"]),
            hash=str(row["hash"]),
        )


def finding_from_row(row: Row, prefix: str = "") -> Finding:
    """A finding from its columns, named ``prefix + field`` (a join aliases them apart)."""
    return Finding(
        code=str(row[prefix + "code"]),
        message=str(row[prefix + "message"]),
        severity=Severity(row[prefix + "severity"]),
        rule=opt_str(row[prefix + "rule"]),
        business_term=opt_str(row[prefix + "business_term"]),
        location=opt_str(row[prefix + "location"]),
        document=opt_str(row[prefix + "document"]),
    )


def facts_from_row(row: Row) -> InvoiceFacts:
    return InvoiceFacts(
        document=str(row["document"]),
        number=opt_str(row["number"]),
        type_code=opt_str(row["type_code"]),
        issue_date=opt_str(row["issue_date"]),
        currency=opt_str(row["currency"]),
        supplier_id=opt_str(row["supplier_id"]),
        supplier_name=opt_str(row["supplier_name"]),
        buyer_id=opt_str(row["buyer_id"]),
        buyer_name=opt_str(row["buyer_name"]),
        service_code=opt_str(row["service_code"]),
        engagement_number=opt_str(row["engagement_number"]),
        total_without_vat=opt_decimal(row["total_without_vat"]),
        total_with_vat=opt_decimal(row["total_with_vat"]),
        amount_due=opt_decimal(row["amount_due"]),
        guideline=opt_str(row["guideline"]),
        has_attachment=bool(row["has_attachment"]),
    )


def finding_values(flow_number: str, invoice_idx: int | None, position: int, f: Finding) -> dict[str, Any]:
    """A finding's column values by name, in the stores' finding column order."""
    return {
        "flow_number": flow_number,
        "invoice_idx": invoice_idx,
        "position": position,
        "code": f.code,
        "message": f.message,
        "severity": f.severity.value,
        "rule": f.rule,
        "business_term": f.business_term,
        "location": f.location,
        "document": f.document,
    }


def invoice_values(flow_number: str, idx: int, facts: InvoiceFacts, status: InvoiceStatus) -> dict[str, Any]:
    """An invoice's column values by name, in the stores' invoice column order (``has_attachment`` a bool)."""
    return {
        "flow_number": flow_number,
        "idx": idx,
        "document": facts.document,
        "number": facts.number,
        "type_code": facts.type_code,
        "issue_date": facts.issue_date,
        "issue_year": facts.issue_date[:4] if facts.issue_date else None,
        "currency": facts.currency,
        "supplier_id": facts.supplier_id,
        "supplier_name": facts.supplier_name,
        "buyer_id": facts.buyer_id,
        "buyer_name": facts.buyer_name,
        "service_code": facts.service_code,
        "engagement_number": facts.engagement_number,
        "total_without_vat": decimal_text(facts.total_without_vat),
        "total_with_vat": decimal_text(facts.total_with_vat),
        "amount_due": decimal_text(facts.amount_due),
        "guideline": facts.guideline,
        "has_attachment": facts.has_attachment,
        "status": status.value,
    }


def new_flow_record(number: str, new: NewFlow, deposited_at: datetime) -> FlowRecord:
    """The record of a flow just inserted from ``new`` (status RECEIVED, nothing counted yet), as a
    re-read would give it; ``deposited_at`` is the time as stored (the store's precision)."""
    return FlowRecord(
        flow_number=number,
        file_name=new.file_name,
        syntax=new.syntax,
        channel=new.channel,
        issuer_siret=new.issuer_siret,
        depositor=new.depositor,
        status=FlowStatus.RECEIVED,
        deposited_at=deposited_at,
        status_changed_at=deposited_at,
        sha256=new.sha256,
        size_bytes=new.size_bytes,
        tracking_id=new.tracking_id,
        declared_syntax=new.declared_syntax,
        partner_code=new.partner_code,
        invoice_count=0,
        integrated_count=0,
        rejected_count=0,
        return_flows=(),
    )


def claim_from_row(row: Row, lease_expires_at: datetime) -> Claim:
    """A claim from the job row just leased (``flow_number``, ``status``, ``attempts``, ``blob_key``,
    ``content``)."""
    return Claim(
        flow_number=str(row["flow_number"]),
        status=FlowStatus(row["status"]),
        attempts=int(row["attempts"]),
        lease_expires_at=lease_expires_at,
        blob_key=str(row["blob_key"]),
        content=row["content"],
    )
