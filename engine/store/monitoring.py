"""The monitoring queries of both stores (DESIGN §10), once, on a backend's ``Database``: search with keyset
pages, exports, the dashboard, the event feed and rejects. The statements are ``sql_monitoring``'s.

Invariants:

* ``Visibility`` is part of every statement (``Scope``), pages and counts alike: a hidden flow is never
  returned nor counted; a visibility that names nothing matches nothing (no statement runs).
* Search order is (issuer ASC, deposited_at DESC, flow_number DESC), unique since flow numbers are; a
  page resumes strictly after its ``PageKey`` (two index range scans), so every page costs what the
  first does. A page holds at most ``MAX_PAGE_SIZE`` flows, with a next key only when a match follows.
  Statuses the counters show to hold few flows (``FEW_BY_STATUS``) are read by a status index and sorted
  instead: walking the search order for them would read every visible flow.
* ``total_count`` and the dashboard read the counters (per issuer, syntax, status and UTC deposit day;
  SQLite's migration 0003 adds coarser ones, the smallest that answers is read) whenever the filters are
  expressible on them: a visibility by issuers only (or everything), filters on issuers, statuses,
  syntaxes and whole UTC days. Anything else counts rows. The dashboard's period is rounded out to whole
  UTC deposit days, so its counts stay counter-cheap.
* Event cursors are in commit order and never reused (SQLite: ``event_feed.id``, AUTOINCREMENT, one
  writer; PostgreSQL: ``postgres_status``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.model import FlowRecord
from engine.permissions import Visibility
from engine.queries import (
    MAX_PAGE_SIZE,
    Dashboard,
    DashboardQuery,
    DashboardRow,
    ErrorCount,
    EventRecord,
    FlowQuery,
    IssuerPage,
    PageKey,
    RejectRow,
    SearchPage,
)
from engine.status import FlowEvent, FlowStatus
from engine.store import sql_flows
from engine.store import sql_monitoring as sql
from engine.store.database import Connection, Database
from engine.store.rows import Row, utc

NON_FINAL = tuple(s for s in FlowStatus if not s.is_final)
# A dict lookup: ``FlowStatus(code)`` costs ~2x more, which shows on a dashboard's ~8,000 rows.
_STATUS_OF_CODE = {s.code: s for s in FlowStatus}


@dataclass(frozen=True)
class Scope:
    """Visibility plus the issuer filter, as the scope parameters of ``sql_monitoring``."""

    issuers: list[str] | None = None  # None: any issuer
    not_issuers: list[str] | None = None  # None: no issuer excluded
    depositor: str | None = None  # the flows it deposited, only
    vis_depositor: str | None = None  # the flows it deposited, and those of ``vis_sirets``
    vis_sirets: list[str] | None = None

    @property
    def counters_apply(self) -> bool:
        """Whether the per-issuer counters can answer (no depositor restriction)."""
        return self.depositor is None and self.vis_depositor is None

    def split(self) -> tuple[Scope | None, Scope]:
        """A user's view (``vis_depositor``) as two disjoint scopes that indexes serve: the issuers it
        follows (narrowed by the issuer filter; None when none is left), and its own deposits for the
        other issuers. (The OR of both in one statement made SQLite read every visible flow: 2.5-5 s for
        one count at 1,000,000 flows for a user following 1,000 issuers.)"""
        followed = set(self.vis_sirets or ())
        if self.issuers is not None:
            followed &= set(self.issuers)
        own = Scope(issuers=self.issuers, not_issuers=sorted(followed) or None, depositor=self.vis_depositor)
        return (Scope(issuers=sorted(followed)) if followed else None), own

    def params(self) -> dict[str, Any]:
        return {
            "issuers": self.issuers,
            "not_issuers": self.not_issuers,
            "depositor": self.depositor,
            "vis_depositor": self.vis_depositor,
            "vis_sirets": self.vis_sirets,
        }


def scope_of(vis: Visibility, issuer_sirets: Sequence[str]) -> Scope | None:
    """The scope, or None when nothing can match."""
    wanted = sorted(set(issuer_sirets)) or None
    if vis.everything:
        return Scope(issuers=wanted)
    if vis.depositor is None:  # issuers only: one list (the visible ones, narrowed by the filter)
        sirets = visible_issuers(vis, issuer_sirets)
        return Scope(issuers=sorted(sirets)) if sirets else None
    if vis.sirets:
        return Scope(issuers=wanted, vis_depositor=vis.depositor, vis_sirets=sorted(vis.sirets))
    return Scope(issuers=wanted, depositor=vis.depositor)


def visible_issuers(vis: Visibility, issuer_sirets: Sequence[str]) -> set[str]:
    """For a visibility by issuers only: its issuers, narrowed to ``issuer_sirets`` when given."""
    return set(vis.sirets) & set(issuer_sirets) if issuer_sirets else set(vis.sirets)


def _codes(statuses: Sequence[FlowStatus]) -> list[str] | None:
    return [s.code for s in statuses] or None


def _values(items: Sequence[Any]) -> list[str] | None:
    return [i.value for i in items] or None


def flow_filters(query: FlowQuery) -> dict[str, Any]:
    """The flow filter parameters of ``sql_monitoring`` (None: not filtered)."""
    return {
        "statuses": _codes(query.statuses),
        "syntaxes": _values(query.syntaxes),
        "deposited_from": query.deposited_from,
        "deposited_to": query.deposited_to,
        "flow_number": query.flow_number,
        "file_name": query.file_name_contains,
        "channel": query.channel.value if query.channel else None,
        "sha256": query.sha256,
        "tracking_id": query.tracking_id,
        "updated_after": query.updated_after,
        "updated_before": query.updated_before,
    }


def _day(at: datetime | None) -> date | None:
    return utc(at).date() if at else None


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


def dashboard_of(
    count_rows: Iterable[Row],
    oldest: dict[FlowStatus, datetime],
    error_rows: Iterable[Row],
    page: IssuerPage | None = None,
    paged: tuple[dict[FlowStatus, int], int] | None = None,
) -> Dashboard:
    """The dashboard from rows of (issuer_siret, status, n), in issuer order, and (code, rule, n); with a
    ``page``, rows only for its issuers, and the totals and issuer count of them all (a page of a thousand
    issuers' eight thousand rows costs a tenth of building them all). ``paged``: the rows are the page's
    already (read so by the store), with every issuer's totals and count."""
    status_of = _STATUS_OF_CODE
    errors = tuple(ErrorCount(str(r["code"]), str(r["rule"]) or None, int(r["n"])) for r in error_rows)
    if page is None or paged is not None:
        rows = tuple([DashboardRow(str(r["issuer_siret"]), status_of[r["status"]], int(r["n"])) for r in count_rows])
        totals, issuers = paged if paged is not None else (None, None)
        return Dashboard(rows, oldest, errors, totals, issuers)
    by_code: dict[str, int] = {}  # keyed by the stored code: an enum's hash is slow over 8,000 rows
    kept: list[DashboardRow] = []
    issuers, last, first, end = 0, None, page.first, page.first + page.size
    for r in count_rows:
        issuer, code, n = r["issuer_siret"], r["status"], r["n"]
        if issuer != last:
            issuers, last = issuers + 1, issuer
        by_code[code] = by_code.get(code, 0) + n
        if first < issuers <= end:
            kept.append(DashboardRow(str(issuer), status_of[code], int(n)))
    totals = {status_of[code]: int(n) for code, n in by_code.items()}
    return Dashboard(tuple(kept), oldest, errors, totals, issuers)


def event_from_row(row: Row, read_time: Callable[[Any], datetime]) -> EventRecord:
    return EventRecord(
        cursor=int(row["cursor"]),
        flow_number=str(row["flow_number"]),
        issuer_siret=str(row["issuer_siret"]),
        depositor=str(row["depositor"]),
        status=FlowStatus(row["status"]),
        event=FlowEvent(row["event"]) if row["event"] else None,
        at=read_time(row["at"]),
    )


def reject_from_row(row: Row, read_time: Callable[[Any], datetime]) -> RejectRow:
    return RejectRow(
        flow_number=str(row["flow_number"]),
        issuer_siret=str(row["issuer_siret"]),
        deposited_at=read_time(row["deposited_at"]),
        invoice_number=None if row["number"] is None else str(row["number"]),
        document=str(row["document"]),
        reason=str(row["reason"]),
    )


# At most this many flows in the statuses searched (all issuers): a page is read by a status index and
# sorted (``sql_monitoring.SEARCH_FEW``), not by walking the search order (a status of 10,000 flows of
# 1,000,000: 30 ms sorted, 15 ms walked; of 3 flows: 2.5 ms sorted, 2.5 s walked).
FEW_BY_STATUS = 5_000


async def few_by_status(conn: Connection, statuses: list[str] | None) -> bool:
    """Whether ``statuses`` hold at most ``FEW_BY_STATUS`` flows in all (False when the dialect's planner
    judges that itself: no statement there)."""
    if statuses is None:
        return False
    found = await conn.value(sql.FLOWS_OF_STATUSES, {"statuses": statuses})
    return found is not None and int(found) <= FEW_BY_STATUS


async def search_rows(
    conn: Connection, params: dict[str, Any], limit: int, after: PageKey | None, *, few: bool = False
) -> list[FlowRecord]:
    """Up to ``limit`` matches (scope and filter ``params``) in search order, strictly after ``after``;
    ``few``: the statuses filtered on hold few flows (``few_by_status``)."""
    if params["vis_depositor"] is not None:  # a user's view: its two parts, merged by issuer
        found: list[FlowRecord] = []
        for part in _parts(params):
            found += await search_rows(conn, part, limit, after, few=few)
        # Each issuer's rows come from one part, already in order: a stable sort by issuer merges them.
        return sorted(found, key=lambda flow: flow.issuer_siret)[:limit]
    statements = sql.SEARCH_ORDERED
    if few:
        statements = sql.SEARCH_FEW if params["issuers"] is None else sql.SEARCH_FEW_OF_ISSUERS
    if after is None:
        rows = list(await conn.rows(statements.first, {**params, "limit": limit}))
    else:
        key = {"k_issuer": after.issuer_siret, "k_at": after.deposited_at, "k_number": after.flow_number}
        rows = list(await conn.rows(statements.same_issuer, {**params, **key, "limit": limit}))
        if len(rows) < limit:
            rest = {**params, "k_issuer": after.issuer_siret, "limit": limit - len(rows)}
            rows += await conn.rows(statements.later_issuers, rest)
    return [conn.decode.flow(r) for r in rows]


async def count_matches(conn: Connection, query: FlowQuery, scope: Scope, params: dict[str, Any]) -> int:
    """The matches of ``query``: from the smallest counters that answer, else counted. A user's view (the
    issuers it follows, and its own deposits anywhere) is counted as its two disjoint parts."""
    if scope.vis_depositor is not None:
        followed, own = scope.split()
        total = int(await conn.value(sql.COUNT_FLOWS, {**params, **own.params()}))
        if followed is not None:
            total += await count_matches(conn, query, followed, {**params, **followed.params()})
        return total
    if not countable(query, by_issuers_only=scope.counters_apply):
        return int(await conn.value(sql.COUNT_FLOWS, params))
    counters = {"issuers": scope.issuers, "statuses": params["statuses"], "syntaxes": params["syntaxes"]}
    if query.deposited_from is not None or query.deposited_to is not None:
        days = {"day_from": _day(query.deposited_from), "day_to": _day(query.deposited_to)}
        return int(await conn.value(sql.SUM_DAYS, {**counters, **days}))
    if query.syntaxes:
        return int(await conn.value(sql.SUM_TOTALS, counters))
    return int(await conn.value(sql.SUM_STATUS if scope.issuers is None else sql.SUM_ISSUER_STATUS, counters))


class Monitoring:
    """Part of ``engine.store.sql_store.SqlStore``."""

    _db: Database

    async def search(
        self, query: FlowQuery, visibility: Visibility, *, page_size: int, after: PageKey | None = None
    ) -> SearchPage:
        """One page (``page_size`` clamped to ``MAX_PAGE_SIZE``) after ``after``, and the total count."""
        page_size = page_limit(page_size)
        scope = scope_of(visibility, query.issuer_sirets)
        if scope is None:
            return SearchPage((), None, 0)
        params = {**scope.params(), **flow_filters(query)}
        async with self._db.snapshot(custom_plans=True) as conn:
            few = await few_by_status(conn, params["statuses"])
            flows = await search_rows(conn, params, page_size + 1, after, few=few)
            total = await count_matches(conn, query, scope, params)
        return page_of(flows, page_size, total)

    async def count_flows(self, query: FlowQuery, visibility: Visibility) -> int:
        """The matches of ``query`` the visibility allows, counted without reading a page."""
        scope = scope_of(visibility, query.issuer_sirets)
        if scope is None:
            return 0
        async with self._db.snapshot(custom_plans=True) as conn:
            scope, _ = await widened(conn, scope)
            return await count_matches(conn, query, scope, {**scope.params(), **flow_filters(query)})

    async def search_changed(self, query: FlowQuery, visibility: Visibility, *, limit: int) -> list[FlowRecord]:
        """Up to ``limit`` (clamped to ``MAX_PAGE_SIZE``) matches, oldest status change first, then by flow
        number; no count. Pages go on with ``query.updated_after``."""
        scope = scope_of(visibility, query.issuer_sirets)
        if scope is None:
            return []
        params = {**scope.params(), **flow_filters(query), "limit": page_limit(limit)}
        async with self._db.read(custom_plans=True) as conn:
            rows = []
            for part in _parts(params):
                rows += [conn.decode.flow(r) for r in await conn.rows(sql.SEARCH_CHANGED, part)]
        if params["vis_depositor"] is None:
            return rows
        return sorted(rows, key=lambda flow: (flow.status_changed_at, flow.flow_number))[: params["limit"]]

    async def iter_search(
        self, query: FlowQuery, visibility: Visibility, *, batch: int = 1000
    ) -> AsyncIterator[FlowRecord]:
        """Every match in search order, one keyset batch per read (other readers interleave: flat memory)."""
        scope = scope_of(visibility, query.issuer_sirets)
        if scope is None:
            return
        params = {**scope.params(), **flow_filters(query)}
        async with self._db.read() as conn:
            few = await few_by_status(conn, params["statuses"])

        async def read(size: int, after: PageKey | None) -> list[FlowRecord]:
            async with self._db.read(custom_plans=True) as conn:
                return await search_rows(conn, params, size, after, few=few)

        async with aclosing(keyset_scan(read, batch)) as flows:
            async for flow in flows:
                yield flow

    async def dashboard(self, query: DashboardQuery, visibility: Visibility) -> Dashboard:
        """Counts per issuer × status and top errors from the counters (whole UTC days), oldest per
        non-final status from ``flows_status_changed``. A user who also sees its own deposits: the
        issuers it follows from the counters, plus a count of its own deposits for the other issuers (by
        ``flows_depositor_search``); only a view by depositor alone is counted row by row. A long issuer list
        is read as every issuer when it names all those counted (``widened``)."""
        scope = scope_of(visibility, query.issuer_sirets)
        page = query.issuer_page
        if scope is None:
            return Dashboard((), {}, (), {} if page else None, 0 if page else None)
        start, end = round_out(query.deposited_from, query.deposited_to)
        syntaxes = _values(query.syntaxes)
        flows = {**scope.params(), "syntaxes": syntaxes, "deposited_from": start, "deposited_to": end}
        top = query.top_errors
        async with self._db.snapshot(custom_plans=True) as conn:
            paged: tuple[dict[FlowStatus, int], int] | None = None
            if scope.counters_apply:
                scope, left_out = await widened(conn, scope)
                flows = {**flows, **scope.params()}
                if page is not None and scope.issuers is None and not syntaxes and start is None and end is None:
                    count_rows, error_rows, paged = await _issuer_page(conn, page, top)
                else:
                    count_rows, error_rows = await _counted(conn, scope.issuers, syntaxes, start, end, top, left_out)
            elif scope.vis_depositor is None:
                count_rows = list(await conn.rows(sql.ROWS_SCAN, flows))
                error_rows = list(await conn.rows(sql.ERRORS_SCAN, {**flows, "top": top}))
            else:
                count_rows, error_rows = await _followed_and_own(conn, scope, flows, top)
            oldest: dict[FlowStatus, datetime] = {}
            for status in NON_FINAL:
                for part in _parts(flows):  # a user's view: the oldest of its two parts
                    found = await conn.value(sql.OLDEST, {**part, "status": status.code})
                    if found is not None:
                        at = conn.decode.time(found)
                        oldest[status] = min(oldest.get(status, at), at)
        return dashboard_of(count_rows, oldest, error_rows, page, paged)

    async def events_after(
        self, cursor: int, visibility: Visibility, *, limit: int = 500, flow_number: str | None = None
    ) -> list[EventRecord]:
        """Visible status changes with a cursor above ``cursor``, in commit order."""
        scope = scope_of(visibility, ())
        if scope is None:
            return []
        params = {**scope.params(), "cursor": cursor, "flow_number": flow_number, "limit": limit}
        async with self._db.read(custom_plans=True) as conn:
            return [event_from_row(r, conn.decode.time) for r in await conn.rows(sql.EVENTS_AFTER, params)]

    async def latest_cursor(self) -> int:
        """The cursor of the last committed status change (0 when none)."""
        async with self._db.read() as conn:
            return int(await conn.value(sql_flows.LATEST_CURSOR))

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
        params = {**scope.params(), "deposited_from": day_from, "deposited_to": day_to}
        async with self._db.read(custom_plans=True) as conn:
            return [reject_from_row(r, conn.decode.time) for r in await conn.rows(sql.REJECTS, params)]


async def _issuer_page(
    conn: Connection, page: IssuerPage, top: int
) -> tuple[list[Row], list[Row], tuple[dict[FlowStatus, int], int]]:
    """Every issuer, all time, from the counters: the rows (issuer, status, n) of the page's issuers, the
    top errors, and every issuer's totals per status and how many issuers have a flow."""
    bounds = {"first": page.first, "size": page.size}
    issuers = [str(r["issuer_siret"]) for r in await conn.rows(sql.ISSUERS_PAGE, bounds)]
    every = {"issuers": None, "syntaxes": None, "top": top}
    rows = list(await conn.rows(sql.ROWS_ISSUER_STATUS, {**every, "issuers": issuers})) if issuers else []
    errors = list(await conn.rows(sql.ERRORS_CODES, every))
    totals = {_STATUS_OF_CODE[r["status"]]: int(r["n"]) for r in await conn.rows(sql.STATUS_TOTALS)}
    return rows, errors, (totals, int(await conn.value(sql.ISSUERS_WITH_FLOWS)))


ALL_ERRORS = 1_000_000  # "no limit" for a top-errors statement whose rows are merged before the top is taken
# From this many issuers, a scope's list is compared with the counted issuers (``widened``): one seek per
# issuer costs more than reading that list (1,000 issuers, 1,000,000 flows on SQLite: the top errors 15-22 ms
# by the list, 1-2 ms as every issuer; a stuck-flow count 4.5 -> 0.6 ms).
LONG_ISSUER_LIST = 100


async def widened(conn: Connection, scope: Scope) -> tuple[Scope, list[str]]:
    """A scope by a long list of issuers (``LONG_ISSUER_LIST``) as every issuer when it names all those the
    counters ever counted (no other has a flow), else as it is with the counted issuers it leaves out; any
    other scope as it is, with none left out."""
    issuers = scope.issuers
    if not scope.counters_apply or scope.not_issuers is not None or issuers is None or len(issuers) < LONG_ISSUER_LIST:
        return scope, []
    named = set(issuers)
    counted = (str(r["issuer_siret"]) for r in await conn.rows(sql.COUNTED_ISSUERS))
    left_out = sorted(siret for siret in counted if siret not in named)
    return (scope, left_out) if left_out else (Scope(), [])


async def _counted(
    conn: Connection,
    issuers: list[str] | None,
    syntaxes: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    top: int,
    left_out: Sequence[str] = (),
) -> tuple[list[Row], list[Row]]:
    """Rows (issuer, status, n) and the top errors of ``issuers`` (None: every issuer) from the counters;
    all time, the errors of a list that leaves out fewer counted issuers (``left_out``) than it names are
    every issuer's minus theirs."""
    if start is not None or end is not None:
        days = {"issuers": issuers, "syntaxes": syntaxes, "day_from": _day(start), "day_to": _day(end)}
        return list(await conn.rows(sql.ROWS_DAYS, days)), list(await conn.rows(sql.ERRORS_DAYS, {**days, "top": top}))
    totals = {"issuers": issuers, "syntaxes": syntaxes, "top": top}
    count_rows = list(await conn.rows(sql.ROWS_TOTALS if syntaxes else sql.ROWS_ISSUER_STATUS, totals))
    if not syntaxes and issuers is None:
        return count_rows, list(await conn.rows(sql.ERRORS_CODES, totals))
    if not syntaxes and issuers is not None and 0 < len(left_out) < len(issuers):
        return count_rows, await _errors_but(conn, left_out, top)
    return count_rows, list(await conn.rows(sql.ERRORS_TOTALS, totals))


async def _errors_but(conn: Connection, left_out: Sequence[str], top: int) -> list[Row]:
    """The top errors of every issuer but ``left_out``, all time: every issuer's (SQLite: ``error_code_totals``,
    a row per code and rule) minus theirs."""
    every = {"issuers": None, "syntaxes": None, "top": ALL_ERRORS}
    errors = {(str(r["code"]), str(r["rule"])): int(r["n"]) for r in await conn.rows(sql.ERRORS_CODES, every)}
    for r in await conn.rows(sql.ERRORS_TOTALS, {**every, "issuers": list(left_out)}):
        key = (str(r["code"]), str(r["rule"]))
        errors[key] = errors.get(key, 0) - int(r["n"])
    ranked = sorted(((key, n) for key, n in errors.items() if n > 0), key=lambda item: (-item[1], item[0]))[:top]
    return [{"code": code, "rule": rule, "n": n} for (code, rule), n in ranked]


async def _followed_and_own(
    conn: Connection, scope: Scope, flows: dict[str, Any], top: int
) -> tuple[list[Any], list[Any]]:
    """A user's view as its two disjoint parts (``Scope.split``): the issuers it follows from the counters,
    its own deposits for the other issuers counted from their rows; their errors merged, then the top."""
    followed, own = scope.split()
    count_rows: list[Any] = []
    errors: dict[tuple[str, str], int] = {}
    if followed is not None:
        counted, counted_errors = await _counted(
            conn, followed.issuers, flows["syntaxes"], flows["deposited_from"], flows["deposited_to"], ALL_ERRORS
        )
        count_rows.extend(counted)
        for r in counted_errors:
            errors[(str(r["code"]), str(r["rule"]))] = int(r["n"])
    own_flows = {**flows, **own.params()}
    count_rows.extend(await conn.rows(sql.ROWS_SCAN, own_flows))
    count_rows.sort(key=lambda r: (str(r["issuer_siret"]), str(r["status"])))
    for r in await conn.rows(sql.ERRORS_SCAN, {**own_flows, "top": ALL_ERRORS}):
        key = (str(r["code"]), str(r["rule"]))
        errors[key] = errors.get(key, 0) + int(r["n"])
    ranked = sorted(errors.items(), key=lambda item: (-item[1], item[0]))[:top]
    return count_rows, [{"code": code, "rule": rule, "n": n} for (code, rule), n in ranked]


def _parts(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``params`` as the parameters of each part of its scope (``Scope.split``): itself unless it is a
    user's view."""
    if params["vis_depositor"] is None:
        return [params]
    scope = Scope(
        issuers=params["issuers"],
        vis_depositor=params["vis_depositor"],
        vis_sirets=params["vis_sirets"],
    )
    followed, own = scope.split()
    return [{**params, **part.params()} for part in (followed, own) if part is not None]
