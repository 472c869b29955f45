"""Monitoring queries of ``SqliteStore`` (DESIGN §10): search with keyset pages, exports, the dashboard,
the event feed and rejects. ``SqliteQueries`` is mixed into ``SqliteStore``.

Invariants:

* ``Visibility`` is a WHERE fragment of every statement, pages and counts alike: a hidden flow is never
  returned nor counted; a visibility that names nothing matches nothing (no statement runs).
* Search order is (issuer ASC, deposited_at DESC, flow_number DESC), unique since flow numbers are; a
  page resumes strictly after its ``PageKey`` through the ``flows_search`` index, so every page costs
  what the first does, whatever the page number.
* ``total_count`` and the dashboard read the counters kept by the triggers of migrations 0002 (per
  issuer, syntax, status, deposit day) and 0003 (per issuer and status, per status, per error code)
  whenever the filters are expressible on them: visibility by issuers only (or everything), filters on
  issuers, statuses, syntaxes and whole UTC days; the smallest counter that answers is read. Anything
  else counts rows.
  The dashboard's period is rounded out to whole UTC deposit days (so its counts stay counter-cheap).
* Event cursors are ``event_feed.id``: AUTOINCREMENT, written by a trigger in the status event's own
  transaction; SQLite has one writer, so cursor order is commit order and a cursor is never reused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, aclosing, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from engine.model import FlowRecord
from engine.permissions import Visibility
from engine.queries import Dashboard, DashboardQuery, EventRecord, FlowQuery, PageKey, RejectRow, SearchPage
from engine.status import FlowStatus
from engine.store import sqlite_queries_sql as q
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
from engine.store.sqlite_rows import flow_from_row, from_db_time, to_db_time, utc
from engine.store.sqlite_sql import FLOW_COLUMNS

POLL_S = 0.5  # wait_for_events re-reads the feed at least this often (commits of other processes)


class CommitSignal:
    """Wakes ``wait_for_events`` callers after a write transaction of this process commits."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """Take this before checking the feed: a commit after the check still sets it."""
        return self._event


@dataclass
class _Where:
    """WHERE fragments (constants of ``sqlite_queries_sql``) and their named parameters."""

    fragments: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, fragment: str, **params: Any) -> None:
        self.fragments.append(fragment)
        self.params.update(params)

    def sql(self) -> str:
        # Joins fixed fragments only; every value is a named parameter.
        return " AND ".join(self.fragments) if self.fragments else q.ALWAYS


def _json(values: Sequence[str]) -> str:
    return json.dumps(sorted(set(values)))


def _scope(vis: Visibility, issuer_sirets: Sequence[str]) -> _Where | None:
    """Visibility plus the issuer filter, or None when nothing can match."""
    where = _Where()
    if vis.everything:
        if issuer_sirets:
            where.add(q.ISSUERS, issuers=_json(issuer_sirets))
        return where
    if vis.depositor is None:
        # Issuers only: one IN list (the visible ones, narrowed by the filter), counter-friendly.
        sirets = visible_issuers(vis, issuer_sirets)
        if not sirets:
            return None
        where.add(q.ISSUERS, issuers=_json(list(sirets)))
        return where
    if vis.sirets:
        where.add(q.VIS_EITHER, vis_sirets=_json(list(vis.sirets)), vis_depositor=vis.depositor)
    else:
        where.add(q.VIS_DEPOSITOR, vis_depositor=vis.depositor)
    if issuer_sirets:
        where.add(q.ISSUERS, issuers=_json(issuer_sirets))
    return where


def _by_issuers_only(vis: Visibility) -> bool:
    """Whether the counters (per issuer) can answer for this visibility."""
    return vis.everything or vis.depositor is None


def _day(at: datetime) -> str:
    return utc(at).date().isoformat()


def _add_common(where: _Where, statuses: Sequence[FlowStatus], syntaxes: Sequence[Any]) -> None:
    if statuses:
        where.add(q.STATUSES, statuses=_json([s.code for s in statuses]))
    if syntaxes:
        where.add(q.SYNTAXES, syntaxes=_json([s.value for s in syntaxes]))


def _add_period(where: _Where, start: datetime | None, end: datetime | None, *, days: bool) -> None:
    """Deposit period on ``flows`` (timestamps) or on counters (``days``: both bounds midnights)."""
    if start:
        if days:
            where.add(q.DAY_FROM, day_from=_day(start))
        else:
            where.add(q.DEPOSITED_FROM, deposited_from=to_db_time(start))
    if end:
        if days:
            where.add(q.DAY_TO, day_to=_day(end))
        else:
            where.add(q.DEPOSITED_TO, deposited_to=to_db_time(end))


def _search_where(query: FlowQuery, vis: Visibility) -> _Where | None:
    where = _scope(vis, query.issuer_sirets)
    if where is None:
        return None
    _add_common(where, query.statuses, query.syntaxes)
    _add_period(where, query.deposited_from, query.deposited_to, days=False)
    optional: list[tuple[str, str, Any]] = [
        (q.FLOW_NUMBER, "flow_number", query.flow_number),
        (q.FILE_NAME_CONTAINS, "file_name", query.file_name_contains),
        (q.CHANNEL, "channel", query.channel.value if query.channel else None),
        (q.SHA256, "sha256", query.sha256),
        (q.TRACKING_ID, "tracking_id", query.tracking_id),
        (q.UPDATED_AFTER, "updated_after", to_db_time(query.updated_after) if query.updated_after else None),
        (
            q.UPDATED_BEFORE,
            "updated_before",
            to_db_time(query.updated_before) if query.updated_before else None,
        ),
    ]
    for fragment, name, value in optional:
        if value is not None:
            where.add(fragment, **{name: value})
    return where


async def _rows(conn: aiosqlite.Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    return list(await conn.execute_fetchall(sql, params))


async def search_rows(conn: aiosqlite.Connection, where: _Where, limit: int, after: PageKey | None) -> list[FlowRecord]:
    """Up to ``limit`` matches in search order, strictly after ``after``."""
    head = FLOW_COLUMNS + "WHERE " + where.sql()
    params = {**where.params, "limit": limit}
    if after is None:
        return [flow_from_row(r) for r in await _rows(conn, head + q.SEARCH_ORDER, params)]
    params.update(k_issuer=after.issuer_siret, k_at=to_db_time(after.deposited_at), k_number=after.flow_number)
    rows = await _rows(conn, head + " AND " + q.AFTER_SAME_ISSUER + q.SEARCH_ORDER, params)
    if len(rows) < limit:
        params["limit"] = limit - len(rows)
        rows += await _rows(conn, head + " AND " + q.AFTER_LATER_ISSUERS + q.SEARCH_ORDER, params)
    return [flow_from_row(r) for r in rows]


async def count_matches(conn: aiosqlite.Connection, query: FlowQuery, vis: Visibility, where: _Where) -> int:
    if not countable(query, by_issuers_only=_by_issuers_only(vis)):
        return int((await _rows(conn, q.COUNT_FLOWS + where.sql(), where.params))[0][0])
    counters = _scope(vis, query.issuer_sirets)
    if counters is None:  # unreachable: `where` exists, so the same scope does
        return 0
    all_issuers = not counters.fragments
    _add_common(counters, query.statuses, query.syntaxes)
    by_day = query.deposited_from is not None or query.deposited_to is not None
    _add_period(counters, query.deposited_from, query.deposited_to, days=True)
    if by_day:
        head = q.SUM_DAYS
    elif query.syntaxes:
        head = q.SUM_TOTALS
    else:
        head = q.SUM_STATUS if all_issuers else q.SUM_ISSUER_STATUS
    return int((await _rows(conn, head + counters.sql(), counters.params))[0][0])


async def counter_rows(
    conn: aiosqlite.Connection, where: _Where, *, by_day: bool, by_syntax: bool, all_issuers: bool, top: int
) -> tuple[list[Any], list[Any]]:
    """The dashboard's (issuer_siret, status, n) and (code, rule, n) rows from the smallest counters that
    answer: per day, per syntax (0002), else per (issuer, status) and per (code, rule) (0003)."""
    if by_day or by_syntax:
        head = q.ROWS_DAYS if by_day else q.ROWS_TOTALS
        count_rows = await _rows(conn, head + where.sql() + q.ROWS_GROUP, where.params)
    else:
        count_rows = await _rows(conn, q.ROWS_ISSUER_STATUS + where.sql() + q.ROWS_ISSUER_STATUS_ORDER, where.params)
    if not (by_day or by_syntax) and all_issuers:
        return count_rows, await _rows(conn, q.ERRORS_CODES, {"top": top})
    head = q.ERRORS_DAYS if by_day else q.ERRORS_TOTALS
    return count_rows, await _rows(conn, head + where.sql() + q.ERRORS_GROUP, {**where.params, "top": top})


class SqliteQueries:
    """The monitoring half of ``SqliteStore`` (see the module docstring)."""

    _commits: CommitSignal

    if TYPE_CHECKING:

        def _read(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def search(
        self, query: FlowQuery, visibility: Visibility, *, page_size: int, after: PageKey | None = None
    ) -> SearchPage:
        """One page (``page_size`` clamped to ``MAX_PAGE_SIZE``) after ``after``, and the total count."""
        page_size = page_limit(page_size)
        where = _search_where(query, visibility)
        if where is None:
            return SearchPage((), None, 0)
        async with self._read(snapshot=True) as conn:
            flows = await search_rows(conn, where, page_size + 1, after)
            total = await count_matches(conn, query, visibility, where)
        return page_of(flows, page_size, total)

    async def iter_search(
        self, query: FlowQuery, visibility: Visibility, *, batch: int = 1000
    ) -> AsyncIterator[FlowRecord]:
        """Every match in search order, one keyset batch per read (other readers interleave)."""
        where = _search_where(query, visibility)
        if where is None:
            return

        async def read(size: int, after: PageKey | None) -> list[FlowRecord]:
            async with self._read() as conn:
                return await search_rows(conn, where, size, after)

        async with aclosing(keyset_scan(read, batch)) as flows:
            async for flow in flows:
                yield flow

    async def dashboard(self, query: DashboardQuery, visibility: Visibility) -> Dashboard:
        """Counts per issuer × status and top errors from the counters (whole UTC days), oldest per
        non-final status from ``flows_status_changed``; rows are counted instead for a depositor's view."""
        scope = _scope(visibility, query.issuer_sirets)
        if scope is None:
            return Dashboard((), {}, ())
        start, end = round_out(query.deposited_from, query.deposited_to)
        counters = _by_issuers_only(visibility)
        by_day = start is not None or end is not None

        def where(*, days: bool) -> _Where:
            w = _Where(list(scope.fragments), dict(scope.params))
            _add_common(w, (), query.syntaxes)
            _add_period(w, start, end, days=days)
            return w

        async with self._read(snapshot=True) as conn:
            if counters:
                count_rows, error_rows = await counter_rows(
                    conn,
                    where(days=by_day),
                    by_day=by_day,
                    by_syntax=bool(query.syntaxes),
                    all_issuers=not scope.fragments,
                    top=query.top_errors,
                )
            else:
                w = where(days=False)
                count_rows = await _rows(conn, q.ROWS_SCAN + w.sql() + q.ROWS_SCAN_GROUP, w.params)
                error_rows = await _rows(
                    conn, q.ERRORS_SCAN + w.sql() + q.ERRORS_SCAN_GROUP, {**w.params, "top": query.top_errors}
                )
            oldest: dict[FlowStatus, datetime] = {}
            w = where(days=False)
            for status in NON_FINAL:
                found = await _rows(conn, q.OLDEST + w.sql() + q.OLDEST_ORDER, {**w.params, "status": status.code})
                if found:
                    oldest[status] = from_db_time(found[0][0])
        return dashboard_of(count_rows, oldest, error_rows)

    async def events_after(
        self, cursor: int, visibility: Visibility, *, limit: int = 500, flow_number: str | None = None
    ) -> list[EventRecord]:
        """Visible status changes with a cursor above ``cursor``, in commit order."""
        where = _scope(visibility, ())
        if where is None:
            return []
        if flow_number is not None:
            where.add(q.FLOW_NUMBER, flow_number=flow_number)
        params = {**where.params, "cursor": cursor, "limit": limit}
        async with self._read() as conn:
            rows = await _rows(conn, q.EVENTS_AFTER + where.sql() + q.EVENTS_ORDER, params)
        return [event_from_row(r, cursor=int(r["id"]), read_time=from_db_time) for r in rows]

    async def latest_cursor(self) -> int:
        async with self._read() as conn:
            return int((await _rows(conn, q.LATEST_CURSOR, {}))[0][0])

    async def wait_for_events(self, cursor: int, timeout_s: float) -> None:
        """Return once the feed is past ``cursor`` or ``timeout_s`` elapsed: woken by this process's
        commits, and re-reading the feed every ``POLL_S`` for other processes' commits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            signal = self._commits.current()
            if await self.latest_cursor() > cursor:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), min(remaining, POLL_S))

    async def list_rejects(
        self,
        visibility: Visibility,
        *,
        issuer_sirets: Sequence[str] = (),
        day_from: datetime | None = None,
        day_to: datetime | None = None,
    ) -> list[RejectRow]:
        """Rejected invoices of visible flows deposited in [day_from, day_to), with their first error."""
        where = _scope(visibility, issuer_sirets)
        if where is None:
            return []
        _add_period(where, day_from, day_to, days=False)
        async with self._read() as conn:
            rows = await _rows(conn, q.REJECTS + where.sql() + q.REJECTS_ORDER, where.params)
        return [reject_from_row(r, read_time=from_db_time) for r in rows]
