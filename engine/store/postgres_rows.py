"""Conversions between asyncpg records and the engine's dataclasses, for ``PostgresStore``: the shared
converters of ``rows`` with asyncpg's values (``timestamptz`` comes back as an aware datetime, ``text[]``
as a list), and the values of an insert as a positional tuple in the column order of ``postgres_sql``.

Invariants: as in ``rows``; booleans are stored as booleans.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.model import Finding, InvoiceFacts, InvoiceStatus
from engine.store import postgres_sql as sql
from engine.store.rows import RowReader, facts_from_row, finding_from_row, finding_values, invoice_values, utc

__all__ = [
    "READER",
    "change_from_row",
    "facts_from_row",
    "finding_from_row",
    "finding_record",
    "flow_from_row",
    "from_db_time",
    "invoice_record",
    "utc",
]


def from_db_time(value: datetime) -> datetime:
    return value.astimezone(UTC)


READER = RowReader(time=from_db_time, names=lambda names: names)
flow_from_row = READER.flow
change_from_row = READER.change


def finding_record(flow_number: str, invoice_idx: int | None, position: int, f: Finding) -> tuple[Any, ...]:
    """A finding as a row of ``postgres_sql.FINDING_COLUMNS``."""
    values = finding_values(flow_number, invoice_idx, position, f)
    return tuple(values[column] for column in sql.FINDING_COLUMNS)


def invoice_record(flow_number: str, idx: int, facts: InvoiceFacts, status: InvoiceStatus) -> tuple[Any, ...]:
    """An invoice as a row of ``postgres_sql.INVOICE_COLUMNS``."""
    values = invoice_values(flow_number, idx, facts, status)
    return tuple(values[column] for column in sql.INVOICE_COLUMNS)
