"""Monitoring queries of ``PostgresStore`` (DESIGN §10), with the semantics of ``sqlite_queries``: search
with keyset pages, exports, the dashboard, the event feed and rejects.

Invariants (as on SQLite):

* ``Visibility`` is part of every statement's WHERE, pages and counts alike; a visibility naming nothing
  matches nothing (no statement runs).
* Search order is (issuer ASC, deposited_at DESC, flow_number DESC); a page resumes strictly after its
  ``PageKey`` through ``flows_issuer_deposited``: every page costs what the first does.
* ``total_count`` and the dashboard read the counters (``postgres_counters``) whenever the filters are
  expressible on them (visibility by issuers only, filters on issuers, statuses, syntaxes, whole UTC
  days); the dashboard's period is rounded out to whole UTC days. Anything else counts rows.
* Event cursors are ``status_events.cursor``, assigned in commit order (``postgres_status``).

Each statement is one constant text whose unused filters are NULL parameters (``$n IS NULL OR …``);
they run in ``_planned`` transactions, which plan every execution for its actual parameters
(``plan_cache_mode = force_custom_plan``), so the unused filters fold away and the indexes apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from engine.model import FlowRecord
from engine.permissions import Visibility
from engine.queries import Dashboard, DashboardQuery, EventRecord, FlowQuery, PageKey, RejectRow, SearchPage
from engine.status import FlowStatus
from engine.store import postgres_monitoring_sql as q
from engine.store import postgres_sql as sql
from engine.store.monitoring import (
    NON_FINAL,
    countable,
    dashboard_of,
    event_from_row,
    keyset_scan,
    page_limit,
    page_of,
    reject_from_row,
    round_out,
    visible_issuers,
)
from engine.store.postgres_base import PostgresBase
from engine.store.postgres_rows import flow_from_row, from_db_time, utc


@dataclass(frozen=True)
class Scope:
    """Visibility plus the issuer filter, as the three scope parameters of every statement."""

    issuers: list[str] | None  # $1: issuer_siret = ANY (None: any issuer)
    vis_sirets: list[str] | None  # $2: with $3, issuers visible besides the depositor's own flows
    vis_depositor: str | None  # $3: when set, a flow must be deposited by it or in $2

    @property
    def counters_apply(self) -> bool:
        """Whether the per-issuer counters can answer (no depositor restriction)."""
        return self.vis_depositor is None

    def args(self) -> tuple[Any, ...]:
        return (self.issuers, self.vis_sirets, self.vis_depositor)


def scope_of(vis: Visibility, issuer_sirets: Sequence[str]) -> Scope | None:
    """The scope, or None when nothing can match."""
    wanted = sorted(set(issuer_sirets)) or None
    if vis.everything:
        return Scope(wanted, None, None)
    if vis.depositor is None:
        sirets = visible_issuers(vis, issuer_sirets)
        return Scope(sorted(sirets), None, None) if sirets else None
    return Scope(wanted, sorted(vis.sirets), vis.depositor)


def _codes(statuses: Sequence[FlowStatus]) -> list[str] | None:
    return [s.code for s in statuses] or None


def _values(items: Sequence[Any]) -> list[str] | None:
    return [i.value for i in items] or None


def _filter_args(query: FlowQuery) -> tuple[Any, ...]:
    """$4..$14 of ``q.FLOW_FILTERS``."""
    return (
        _codes(query.statuses),
        _values(query.syntaxes),
        utc(query.deposited_from) if query.deposited_from else None,
        utc(query.deposited_to) if query.deposited_to else None,
        query.flow_number,
        query.file_name_contains,
        query.channel.value if query.channel else None,
        query.sha256,
        query.tracking_id,
        utc(query.updated_after) if query.updated_after else None,
        utc(query.updated_before) if query.updated_before else None,
    )


def _day(at: datetime | None) -> date | None:
    return utc(at).date() if at else None


async def search_rows(conn: Any, scope: Scope, query: FlowQuery, limit: int, after: PageKey | None) -> list[FlowRecord]:
    """Up to ``limit`` matches in search order, strictly after ``after``."""
    args = (*scope.args(), *_filter_args(query), limit)
    if after is None:
        return [flow_from_row(r) for r in await conn.fetch(q.SEARCH_FIRST, *args)]
    key = (after.issuer_siret, utc(after.deposited_at), after.flow_number)
    rows = list(await conn.fetch(q.SEARCH_SAME_ISSUER, *args, *key))
    if len(rows) < limit:
        rest = (*scope.args(), *_filter_args(query), limit - len(rows), after.issuer_siret)
        rows += await conn.fetch(q.SEARCH_LATER_ISSUERS, *rest)
    return [flow_from_row(r) for r in rows]


async def count_matches(conn: Any, query: FlowQuery, scope: Scope) -> int:
    if not countable(query, by_issuers_only=scope.counters_apply):
        return int(await conn.fetchval(q.COUNT_FLOWS, *scope.args(), *_filter_args(query)))
    args = (scope.issuers, _codes(query.statuses), _values(query.syntaxes))
    if query.deposited_from is None and query.deposited_to is None:
        return int(await conn.fetchval(q.SUM_TOTALS, *args))
    return int(await conn.fetchval(q.SUM_DAYS, *args, _day(query.deposited_from), _day(query.deposited_to)))


class PostgresMonitoring(PostgresBase):
    """The monitoring half of ``PostgresStore`` (see the module docstring)."""

    async def search(
        self, query: FlowQuery, visibility: Visibility, *, page_size: int, after: PageKey | None = None
    ) -> SearchPage:
        """One page (``page_size`` clamped to ``MAX_PAGE_SIZE``) after ``after``, and the total count."""
        page_size = page_limit(page_size)
        scope = scope_of(visibility, query.issuer_sirets)
        if scope is None:
            return SearchPage((), None, 0)
        async with self._planned() as conn:
            flows = await search_rows(conn, scope, query, page_size + 1, after)
            total = await count_matches(conn, query, scope)
        return page_of(flows, page_size, total)

    async def iter_search(
        self, query: FlowQuery, visibility: Visibility, *, batch: int = 1000
    ) -> AsyncIterator[FlowRecord]:
        """Every match in search order, one keyset batch per statement (flat memory)."""
        scope = scope_of(visibility, query.issuer_sirets)
        if scope is None:
            return

        async def read(size: int, after: PageKey | None) -> list[FlowRecord]:
            async with self._planned() as conn:
                return await search_rows(conn, scope, query, size, after)

        async with aclosing(keyset_scan(read, batch)) as flows:
            async for flow in flows:
                yield flow

    async def dashboard(self, query: DashboardQuery, visibility: Visibility) -> Dashboard:
        """Counts per issuer × status and top errors from the counters (whole UTC days), oldest per
        non-final status from ``flows_status_changed``; rows are counted instead for a depositor's view."""
        scope = scope_of(visibility, query.issuer_sirets)
        if scope is None:
            return Dashboard((), {}, ())
        start, end = round_out(query.deposited_from, query.deposited_to)
        syntaxes = _values(query.syntaxes)
        flow_filter = FlowQuery(syntaxes=query.syntaxes, deposited_from=start, deposited_to=end)
        async with self._planned() as conn:
            if scope.counters_apply:
                if start is None and end is None:
                    count_rows = await conn.fetch(q.ROWS_TOTALS, scope.issuers, syntaxes)
                    error_rows = await conn.fetch(q.ERRORS_TOTALS, scope.issuers, syntaxes, query.top_errors)
                else:
                    period = (_day(start), _day(end))
                    count_rows = await conn.fetch(q.ROWS_DAYS, scope.issuers, syntaxes, *period)
                    error_rows = await conn.fetch(q.ERRORS_DAYS, scope.issuers, syntaxes, *period, query.top_errors)
            else:
                args = (*scope.args(), *_filter_args(flow_filter))
                count_rows = await conn.fetch(q.ROWS_SCAN, *args)
                error_rows = await conn.fetch(q.ERRORS_SCAN, *args, query.top_errors)
            oldest: dict[FlowStatus, datetime] = {}
            for status in NON_FINAL:
                one = FlowQuery(statuses=(status,), syntaxes=query.syntaxes, deposited_from=start, deposited_to=end)
                found = await conn.fetchval(q.OLDEST, *scope.args(), *_filter_args(one))
                if found is not None:
                    oldest[status] = from_db_time(found)
        return dashboard_of(count_rows, oldest, error_rows)

    async def events_after(
        self, cursor: int, visibility: Visibility, *, limit: int = 500, flow_number: str | None = None
    ) -> list[EventRecord]:
        """Visible status changes with a cursor above ``cursor``, in commit order."""
        scope = scope_of(visibility, ())
        if scope is None:
            return []
        async with self._planned() as conn:
            rows = await conn.fetch(q.EVENTS_AFTER, *scope.args(), cursor, flow_number, limit)
        return [event_from_row(r, cursor=int(r["cursor"]), read_time=from_db_time) for r in rows]

    async def latest_cursor(self) -> int:
        """The cursor of the last committed status change (0 when none)."""
        return int(await self._fetchval(sql.LATEST_CURSOR))

    async def list_rejects(
        self,
        visibility: Visibility,
        *,
        issuer_sirets: Sequence[str] = (),
        day_from: datetime | None = None,
        day_to: datetime | None = None,
    ) -> list[RejectRow]:
        """Rejected invoices of visible flows deposited in [day_from, day_to), with their first error."""
        scope = scope_of(visibility, issuer_sirets)
        if scope is None:
            return []
        args = (*scope.args(), utc(day_from) if day_from else None, utc(day_to) if day_to else None)
        async with self._planned() as conn:
            rows = await conn.fetch(q.REJECTS, *args)
        return [reject_from_row(r, read_time=from_db_time) for r in rows]
