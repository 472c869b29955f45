"""The driver-neutral half of the monitoring queries (DESIGN §10), shared by ``sqlite_queries`` and
``postgres_monitoring``: which issuers a visibility lets through, when the counters can answer a count,
the dashboard's whole-day period, keyset paging, and the results built from rows. The SQL stays per
driver; nothing here does I/O but call the batch reader it is given.

Invariants: a page holds at most ``MAX_PAGE_SIZE`` flows and has a next key only when a further match
exists; the counters answer only for a visibility by issuers and whole UTC days without row filters.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from engine.model import FlowRecord
from engine.permissions import Visibility
from engine.queries import (
    MAX_PAGE_SIZE,
    Dashboard,
    DashboardRow,
    ErrorCount,
    EventRecord,
    FlowQuery,
    PageKey,
    RejectRow,
    SearchPage,
)
from engine.status import FlowEvent, FlowStatus
from engine.store.rows import Row, utc

NON_FINAL = tuple(s for s in FlowStatus if not s.is_final)
# A dict lookup: ``FlowStatus(code)`` costs ~2x more, which shows on a dashboard's ~8,000 rows.
_STATUS_OF_CODE = {s.code: s for s in FlowStatus}

ReadTime = Callable[[Any], datetime]  # a driver's stored timestamp to an aware UTC datetime


def visible_issuers(vis: Visibility, issuer_sirets: Sequence[str]) -> set[str]:
    """For a visibility by issuers only: its issuers, narrowed to ``issuer_sirets`` when given."""
    return set(vis.sirets) & set(issuer_sirets) if issuer_sirets else set(vis.sirets)


def midnight(at: datetime) -> bool:
    return utc(at).time() == time(0)


def round_out(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The period widened to whole UTC days: [midnight of start, first midnight >= end)."""
    lo = datetime.combine(utc(start).date(), time(0), UTC) if start else None
    hi = None
    if end:
        hi = datetime.combine(utc(end).date(), time(0), UTC)
        if hi < utc(end):
            hi += timedelta(days=1)
    return lo, hi


def countable(query: FlowQuery, *, by_issuers_only: bool) -> bool:
    """Whether ``total_count`` can be summed from the counters instead of counting rows."""
    row_filters = (
        query.flow_number,
        query.file_name_contains,
        query.channel,
        query.sha256,
        query.tracking_id,
        query.updated_after,
        query.updated_before,
    )
    whole_days = all(at is None or midnight(at) for at in (query.deposited_from, query.deposited_to))
    return by_issuers_only and whole_days and all(f is None for f in row_filters)


def page_limit(page_size: int) -> int:
    """``page_size`` clamped to ``MAX_PAGE_SIZE``; refuses sizes below 1."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    return min(page_size, MAX_PAGE_SIZE)


def page_of(flows: Sequence[FlowRecord], page_size: int, total: int) -> SearchPage:
    """The page from up to ``page_size + 1`` matches (one more tells a next page exists)."""
    more = len(flows) > page_size
    flows = flows[:page_size]
    return SearchPage(tuple(flows), PageKey.of(flows[-1]) if more else None, total)


async def keyset_scan(
    read: Callable[[int, PageKey | None], Awaitable[list[FlowRecord]]], batch: int
) -> AsyncGenerator[FlowRecord, None]:
    """Every match in search order: ``read(size, after)`` returns up to ``size`` matches after ``after``."""
    size = max(batch, 1)
    after: PageKey | None = None
    while True:
        flows = await read(size, after)
        for flow in flows:
            yield flow
        if len(flows) < size:
            return
        after = PageKey.of(flows[-1])


def dashboard_of(count_rows: Iterable[Row], oldest: dict[FlowStatus, datetime], error_rows: Iterable[Row]) -> Dashboard:
    """The dashboard from rows of (issuer_siret, status, n) and (code, rule, n)."""
    status_of = _STATUS_OF_CODE
    return Dashboard(
        rows=tuple([DashboardRow(str(r["issuer_siret"]), status_of[r["status"]], int(r["n"])) for r in count_rows]),
        oldest=oldest,
        top_errors=tuple(ErrorCount(str(r["code"]), str(r["rule"]) or None, int(r["n"])) for r in error_rows),
    )


def event_from_row(row: Row, *, cursor: int, read_time: ReadTime) -> EventRecord:
    return EventRecord(
        cursor=cursor,
        flow_number=str(row["flow_number"]),
        issuer_siret=str(row["issuer_siret"]),
        depositor=str(row["depositor"]),
        status=FlowStatus(row["status"]),
        event=FlowEvent(row["event"]) if row["event"] else None,
        at=read_time(row["at"]),
    )


def reject_from_row(row: Row, *, read_time: ReadTime) -> RejectRow:
    return RejectRow(
        flow_number=str(row["flow_number"]),
        issuer_siret=str(row["issuer_siret"]),
        deposited_at=read_time(row["deposited_at"]),
        invoice_number=None if row["number"] is None else str(row["number"]),
        document=str(row["document"]),
        reason=str(row["reason"]),
    )
