"""Conversions between ``sqlite3.Row`` values and the engine's dataclasses, for ``SqliteStore``: the
shared converters of ``rows`` with SQLite's encodings, and the values of an insert as named parameters.

Invariants: as in ``rows``; datetimes are stored as fixed-width ISO 8601 text with microseconds, so text
order is time order; lists of names as JSON arrays; booleans as 0/1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from engine.model import Finding, InvoiceFacts, InvoiceStatus
from engine.store.rows import RowReader, facts_from_row, finding_from_row, finding_values, invoice_values, utc

__all__ = [
    "READER",
    "change_from_row",
    "facts_from_row",
    "finding_from_row",
    "finding_params",
    "flow_from_row",
    "from_db_time",
    "invoice_params",
    "to_db_time",
    "utc",
]


def to_db_time(at: datetime) -> str:
    return utc(at).isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


READER = RowReader(time=from_db_time, names=json.loads)
flow_from_row = READER.flow
change_from_row = READER.change


def finding_params(flow_number: str, invoice_idx: int | None, position: int, f: Finding) -> dict[str, Any]:
    return finding_values(flow_number, invoice_idx, position, f)


def invoice_params(flow_number: str, idx: int, facts: InvoiceFacts, status: InvoiceStatus) -> dict[str, Any]:
    values = invoice_values(flow_number, idx, facts, status)
    values["has_attachment"] = int(facts.has_attachment)
    return values
