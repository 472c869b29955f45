"""Conversions between asyncpg records and the engine's dataclasses, for ``PostgresStore``.

Invariants: datetimes are timezone-aware UTC both ways (a naive datetime is refused with ``ValueError``,
as on SQLite); enums are stored as their stable values (status codes, syntax names); decimals as exact
text; booleans as booleans. Rows are positional tuples in the column order of ``postgres_sql``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

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

Row = Mapping[str, Any]


def utc(at: datetime) -> datetime:
    """``at`` in UTC; refuses naive datetimes (their meaning depends on the machine)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: the store takes timezone-aware datetimes")
    return at.astimezone(UTC)


def from_db_time(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def flow_from_row(row: Row) -> FlowRecord:
    return FlowRecord(
        flow_number=str(row["flow_number"]),
        file_name=str(row["file_name"]),
        syntax=Syntax(row["syntax"]),
        channel=Channel(row["channel"]),
        issuer_siret=str(row["issuer_siret"]),
        depositor=str(row["depositor"]),
        status=FlowStatus(row["status"]),
        deposited_at=from_db_time(row["deposited_at"]),
        status_changed_at=from_db_time(row["status_changed_at"]),
        sha256=str(row["sha256"]),
        size_bytes=int(row["size_bytes"]),
        tracking_id=_opt_str(row["tracking_id"]),
        declared_syntax=bool(row["declared_syntax"]),
        partner_code=_opt_str(row["partner_code"]),
        invoice_count=int(row["invoice_count"]),
        integrated_count=int(row["integrated_count"]),
        rejected_count=int(row["rejected_count"]),
        return_flows=tuple(str(name) for name in row["return_flows"]),
    )


def change_from_row(row: Row) -> StatusChange:
    return StatusChange(
        flow_number=str(row["flow_number"]),
        seq=int(row["seq"]),
        status=FlowStatus(row["status"]),
        event=FlowEvent(row["event"]) if row["event"] else None,
        at=from_db_time(row["at"]),
        actor=str(row["actor"]),
        detail=_opt_str(row["detail"]),
        prev_hash=str(row["prev_hash"]),
        hash=str(row["hash"]),
    )


def finding_record(flow_number: str, invoice_idx: int | None, position: int, f: Finding) -> tuple[Any, ...]:
    """A finding as a row of ``postgres_sql.FINDING_COLUMNS``."""
    return (
        flow_number,
        invoice_idx,
        position,
        f.code,
        f.message,
        f.severity.value,
        f.rule,
        f.business_term,
        f.location,
        f.document,
    )


def finding_from_row(row: Row, prefix: str = "") -> Finding:
    """A finding from its columns, named ``prefix + field`` (a join aliases them apart)."""
    return Finding(
        code=str(row[prefix + "code"]),
        message=str(row[prefix + "message"]),
        severity=Severity(row[prefix + "severity"]),
        rule=_opt_str(row[prefix + "rule"]),
        business_term=_opt_str(row[prefix + "business_term"]),
        location=_opt_str(row[prefix + "location"]),
        document=_opt_str(row[prefix + "document"]),
    )


def invoice_record(flow_number: str, idx: int, facts: InvoiceFacts, status: InvoiceStatus) -> tuple[Any, ...]:
    """An invoice as a row of ``postgres_sql.INVOICE_COLUMNS``."""
    return (
        flow_number,
        idx,
        facts.document,
        facts.number,
        facts.type_code,
        facts.issue_date,
        facts.issue_date[:4] if facts.issue_date else None,
        facts.currency,
        facts.supplier_id,
        facts.supplier_name,
        facts.buyer_id,
        facts.buyer_name,
        facts.service_code,
        facts.engagement_number,
        _decimal_text(facts.total_without_vat),
        _decimal_text(facts.total_with_vat),
        _decimal_text(facts.amount_due),
        facts.guideline,
        facts.has_attachment,
        status.value,
    )


def facts_from_row(row: Row) -> InvoiceFacts:
    return InvoiceFacts(
        document=str(row["document"]),
        number=_opt_str(row["number"]),
        type_code=_opt_str(row["type_code"]),
        issue_date=_opt_str(row["issue_date"]),
        currency=_opt_str(row["currency"]),
        supplier_id=_opt_str(row["supplier_id"]),
        supplier_name=_opt_str(row["supplier_name"]),
        buyer_id=_opt_str(row["buyer_id"]),
        buyer_name=_opt_str(row["buyer_name"]),
        service_code=_opt_str(row["service_code"]),
        engagement_number=_opt_str(row["engagement_number"]),
        total_without_vat=_opt_decimal(row["total_without_vat"]),
        total_with_vat=_opt_decimal(row["total_with_vat"]),
        amount_due=_opt_decimal(row["amount_due"]),
        guideline=_opt_str(row["guideline"]),
        has_attachment=bool(row["has_attachment"]),
    )
