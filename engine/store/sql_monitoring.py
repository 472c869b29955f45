"""The SQL of the monitoring queries (``engine.store.monitoring``): search, counts, dashboard, feed, rejects.

Every statement is a ``Where`` (``engine.store.sql``): a head shared by both dialects where they agree,
and predicates per dialect over the same named parameters:

* scope: ``issuers`` (issuer in the list), ``not_issuers`` (issuer not in the list), ``depositor``
  (deposited by it), ``vis_depositor`` with ``vis_sirets`` (deposited by it, or issuer in the list);
  unset (None) means no restriction. The last one is an OR that no index serves: ``monitoring`` runs a
  user's view as two disjoint parts (its followed issuers; its own deposits for the other issuers);
* flow filters: ``statuses``, ``syntaxes``, ``deposited_from`` (incl.), ``deposited_to`` (excl.),
  ``flow_number``, ``file_name`` (a substring, no wildcards), ``channel``, ``sha256``, ``tracking_id``,
  ``updated_after``, ``updated_before`` (status change strictly after / before);
* counters (kept by triggers on SQLite, by ``postgres_counters`` on PostgreSQL): ``issuers``,
  ``statuses``, ``syntaxes``, ``day_from`` (incl.), ``day_to`` (excl.), UTC deposit days.

Predicates name bare columns, which mean the same on ``flows``, SQLite's ``event_feed`` and the joins
below. SQLite's coarser counters (migration 0003: per issuer and status, per status, per error code) have
no PostgreSQL twin: there those names run the general counter statement.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.store.sql import Predicate, Statement, Where, per_dialect
from engine.store.sql_flows import FLOWS

# --- predicates ------------------------------------------------------------------------------------
_ISSUERS_SQLITE = Predicate("issuer_siret IN (SELECT value FROM json_each(:issuers))", ("issuers",))
_STATUSES_SQLITE = Predicate("status IN (SELECT value FROM json_each(:statuses))", ("statuses",))
_SYNTAXES_SQLITE = Predicate("syntax IN (SELECT value FROM json_each(:syntaxes))", ("syntaxes",))
_SCOPE_SQLITE = (
    _ISSUERS_SQLITE,
    Predicate("issuer_siret NOT IN (SELECT value FROM json_each(:not_issuers))", ("not_issuers",)),
    Predicate("depositor = :depositor", ("depositor",)),
    Predicate(
        "(issuer_siret IN (SELECT value FROM json_each(:vis_sirets)) OR depositor = :vis_depositor)",
        ("vis_sirets", "vis_depositor"),
    ),
)
_PERIOD_SQLITE = (
    Predicate("deposited_at >= :deposited_from", ("deposited_from",)),
    Predicate("deposited_at < :deposited_to", ("deposited_to",)),
)
_DASHBOARD_SQLITE = (*_SCOPE_SQLITE, _SYNTAXES_SQLITE, *_PERIOD_SQLITE)
_FLOW_NUMBER_SQLITE = Predicate("flow_number = :flow_number", ("flow_number",))
_FLOWS_SQLITE = (
    *_SCOPE_SQLITE,
    _STATUSES_SQLITE,
    _SYNTAXES_SQLITE,
    *_PERIOD_SQLITE,
    _FLOW_NUMBER_SQLITE,
    Predicate("instr(file_name, :file_name) > 0", ("file_name",)),
    Predicate("channel = :channel", ("channel",)),
    Predicate("sha256 = :sha256", ("sha256",)),
    Predicate("tracking_id = :tracking_id", ("tracking_id",)),
    Predicate("status_changed_at > :updated_after", ("updated_after",)),
    Predicate("status_changed_at < :updated_before", ("updated_before",)),
)
_DAYS_SQLITE = (Predicate("day >= :day_from", ("day_from",)), Predicate("day < :day_to", ("day_to",)))

_ISSUERS_POSTGRES = Predicate("(:issuers::text[] IS NULL OR issuer_siret = ANY (:issuers::text[]))")
_STATUSES_POSTGRES = Predicate("(:statuses::text[] IS NULL OR status = ANY (:statuses::text[]))")
_SYNTAXES_POSTGRES = Predicate("(:syntaxes::text[] IS NULL OR syntax = ANY (:syntaxes::text[]))")
_SCOPE_POSTGRES = (
    _ISSUERS_POSTGRES,
    Predicate("(:not_issuers::text[] IS NULL OR issuer_siret <> ALL (:not_issuers::text[]))"),
    Predicate("(:depositor::text IS NULL OR depositor = :depositor::text)"),
    Predicate("""(:vis_depositor::text IS NULL
       OR depositor = :vis_depositor::text OR issuer_siret = ANY (:vis_sirets::text[]))"""),
)
_PERIOD_POSTGRES = (
    Predicate("(:deposited_from::timestamptz IS NULL OR deposited_at >= :deposited_from::timestamptz)"),
    Predicate("(:deposited_to::timestamptz IS NULL OR deposited_at < :deposited_to::timestamptz)"),
)
_DASHBOARD_POSTGRES = (*_SCOPE_POSTGRES, _SYNTAXES_POSTGRES, *_PERIOD_POSTGRES)
_FLOWS_POSTGRES = (
    *_SCOPE_POSTGRES,
    _STATUSES_POSTGRES,
    _SYNTAXES_POSTGRES,
    *_PERIOD_POSTGRES,
    Predicate("(:flow_number::text IS NULL OR flow_number = :flow_number::text)"),
    Predicate("(:file_name::text IS NULL OR strpos(file_name, :file_name::text) > 0)"),
    Predicate("(:channel::text IS NULL OR channel = :channel::text)"),
    Predicate("(:sha256::text IS NULL OR sha256 = :sha256::text)"),
    Predicate("(:tracking_id::text IS NULL OR tracking_id = :tracking_id::text)"),
    Predicate("(:updated_after::timestamptz IS NULL OR status_changed_at > :updated_after::timestamptz)"),
    Predicate("(:updated_before::timestamptz IS NULL OR status_changed_at < :updated_before::timestamptz)"),
)
_DAYS_POSTGRES = (
    Predicate("(:day_from::date IS NULL OR day >= :day_from::date)"),
    Predicate("(:day_to::date IS NULL OR day < :day_to::date)"),
)

# --- search: keyset pages in (issuer ASC, deposited_at DESC, flow_number DESC) order -----------------
# Resuming after key (:k_issuer, :k_at, :k_number) takes two index range scans: the rest of its issuer,
# then the issuers after it. Every page costs what the first does.
_ORDER = "\nORDER BY issuer_siret, deposited_at DESC, flow_number DESC LIMIT :limit"
_SAME_ISSUER = Predicate("issuer_siret = :k_issuer AND (deposited_at, flow_number) < (:k_at, :k_number)")
_LATER_ISSUERS = Predicate("issuer_siret > :k_issuer")
SEARCH_FIRST = per_dialect(FLOWS, _FLOWS_SQLITE, _FLOWS_POSTGRES, _ORDER)
SEARCH_SAME_ISSUER = Statement(
    sqlite=Where(FLOWS, (*_FLOWS_SQLITE, _SAME_ISSUER), _ORDER),
    postgres=Where(
        FLOWS,
        (
            *_FLOWS_POSTGRES,
            Predicate("""issuer_siret = :k_issuer::text
       AND (deposited_at, flow_number) < (:k_at::timestamptz, :k_number::text)"""),
        ),
        _ORDER,
    ),
)
SEARCH_LATER_ISSUERS = per_dialect(
    FLOWS, (*_FLOWS_SQLITE, _LATER_ISSUERS), (*_FLOWS_POSTGRES, Predicate("issuer_siret > :k_issuer::text")), _ORDER
)
# --- search for statuses with few flows: the same pages, read by a status index and sorted ----------
# SQLite plans flows_search for any status filter (it spares the sort), and for a status with almost no
# flows walks all of it: 2.5 s at 1,000,000 flows, for 0 to 3 matches. When the counters say the statuses
# hold few flows in all (``monitoring.FEW_BY_STATUS``), these read them by flows_issuer_status (a list of
# issuers) or flows_status_changed and sort them: 2.5 ms. PostgreSQL's planner sees a status's frequency in
# its statistics: nothing to run there (``FLOWS_OF_STATUSES`` is None), the ordered statements serve.
FLOWS_OF_STATUSES = Statement(
    sqlite=Where("SELECT COALESCE(sum(n), 0) FROM flow_status_totals", (_STATUSES_SQLITE,)),
    postgres=None,
)
_SORTED = "\nORDER BY +issuer_siret, +deposited_at DESC, +flow_number DESC LIMIT :limit"


class SearchStatements(NamedTuple):
    """A search page's statements: the first page, then after a key, its issuer's rest and later issuers
    (a tuple: ``tests/integration/test_store_sql.py`` prepares each)."""

    first: Statement
    same_issuer: Statement
    later_issuers: Statement


def _sorted(head: str) -> SearchStatements:
    return SearchStatements(
        Statement(sqlite=Where(head, _FLOWS_SQLITE, _SORTED), postgres=SEARCH_FIRST.postgres),
        Statement(sqlite=Where(head, (*_FLOWS_SQLITE, _SAME_ISSUER), _SORTED), postgres=SEARCH_SAME_ISSUER.postgres),
        Statement(
            sqlite=Where(head, (*_FLOWS_SQLITE, _LATER_ISSUERS), _SORTED), postgres=SEARCH_LATER_ISSUERS.postgres
        ),
    )


SEARCH_ORDERED = SearchStatements(SEARCH_FIRST, SEARCH_SAME_ISSUER, SEARCH_LATER_ISSUERS)
SEARCH_FEW_OF_ISSUERS = _sorted(FLOWS + " INDEXED BY flows_issuer_status")  # a seek per issuer and status
SEARCH_FEW = _sorted(FLOWS + " INDEXED BY flows_status_changed")  # any issuer: a seek per status

# --- changes: (status_changed_at, flow_number) ascending, oldest change first ("what changed since", the
# AFNOR Flow Service's updatedAfter pages); no count.
SEARCH_CHANGED = per_dialect(
    FLOWS, _FLOWS_SQLITE, _FLOWS_POSTGRES, "\nORDER BY status_changed_at, flow_number LIMIT :limit"
)
COUNT_FLOWS = Statement(
    sqlite=Where("SELECT count(*) FROM flows", _FLOWS_SQLITE),
    postgres=Where("SELECT count(*) FROM flows", _FLOWS_POSTGRES),
)

# --- counts from the counters: all time, per UTC deposit day; SQLite's coarser ones (migration 0003) ----
_COUNTERS_SQLITE = (_ISSUERS_SQLITE, _STATUSES_SQLITE, _SYNTAXES_SQLITE)
_COUNTERS_POSTGRES = (_ISSUERS_POSTGRES, _STATUSES_POSTGRES, _SYNTAXES_POSTGRES)
_SUM_TOTALS = "SELECT COALESCE(sum(n), 0) FROM flow_totals"
_SUM_DAYS = "SELECT COALESCE(sum(n), 0) FROM flow_day_counts"
SUM_TOTALS = per_dialect(_SUM_TOTALS, _COUNTERS_SQLITE, _COUNTERS_POSTGRES)
SUM_DAYS = per_dialect(_SUM_DAYS, (*_COUNTERS_SQLITE, *_DAYS_SQLITE), (*_COUNTERS_POSTGRES, *_DAYS_POSTGRES))
# Without a syntax filter or a period: per (issuer, status), or per status alone when no issuer narrows it.
SUM_ISSUER_STATUS = Statement(
    sqlite=Where("SELECT COALESCE(sum(n), 0) FROM flow_issuer_status_totals", (_ISSUERS_SQLITE, _STATUSES_SQLITE)),
    postgres=SUM_TOTALS.postgres,
)
SUM_STATUS = Statement(
    sqlite=Where("SELECT COALESCE(sum(n), 0) FROM flow_status_totals", (_STATUSES_SQLITE,)),
    postgres=SUM_TOTALS.postgres,
)


# --- dashboard -------------------------------------------------------------------------------------
def _counters(head: str, tail: str, *, days: bool) -> Statement:
    """A statement on counters filtered by issuers and syntaxes, and deposit days when ``days``."""
    sqlite = (_ISSUERS_SQLITE, _SYNTAXES_SQLITE, *(_DAYS_SQLITE if days else ()))
    postgres = (_ISSUERS_POSTGRES, _SYNTAXES_POSTGRES, *(_DAYS_POSTGRES if days else ()))
    return Statement(sqlite=Where(head, sqlite, tail), postgres=Where(head, postgres, tail))


_ROWS_GROUP = "\nGROUP BY issuer_siret, status HAVING sum(n) > 0 ORDER BY issuer_siret, status"
ROWS_TOTALS = _counters("SELECT issuer_siret, status, sum(n) AS n FROM flow_totals", _ROWS_GROUP, days=False)
ROWS_DAYS = _counters("SELECT issuer_siret, status, sum(n) AS n FROM flow_day_counts", _ROWS_GROUP, days=True)
_ERRORS_GROUP = "\nGROUP BY code, rule HAVING sum(n) > 0 ORDER BY n DESC, code, rule LIMIT :top"
ERRORS_TOTALS = _counters("SELECT code, rule, sum(n) AS n FROM error_totals", _ERRORS_GROUP, days=False)
ERRORS_DAYS = _counters("SELECT code, rule, sum(n) AS n FROM error_day_counts", _ERRORS_GROUP, days=True)
# Without a syntax filter or a period: one row per (issuer, status) already, in key order.
ROWS_ISSUER_STATUS = Statement(
    sqlite=Where(
        "SELECT issuer_siret, status, n FROM flow_issuer_status_totals",
        (_ISSUERS_SQLITE, Predicate("n > 0")),
        "\nORDER BY issuer_siret, status",
    ),
    postgres=ROWS_TOTALS.postgres,
)
# A depositor's view has no counters: count its visible rows.
_ROWS_SCAN = "SELECT issuer_siret, status, count(*) AS n FROM flows"
_ROWS_SCAN_GROUP = "\nGROUP BY issuer_siret, status ORDER BY issuer_siret, status"
ROWS_SCAN = per_dialect(_ROWS_SCAN, _DASHBOARD_SQLITE, _DASHBOARD_POSTGRES, _ROWS_SCAN_GROUP)
# One per non-final status: walks flows_status_changed from the oldest and stops at the first match.
_OLDEST = "SELECT status_changed_at FROM flows"
_OLDEST_ORDER = "\nORDER BY status_changed_at LIMIT 1"
_STATUS = Predicate("status = :status")
OLDEST = per_dialect(_OLDEST, (_STATUS, *_DASHBOARD_SQLITE), (_STATUS, *_DASHBOARD_POSTGRES), _OLDEST_ORDER)
# All issuers and syntaxes, all time: one row per (code, rule) already.
ERRORS_CODES = Statement(
    sqlite="SELECT code, rule, n FROM error_code_totals WHERE n > 0 ORDER BY n DESC, code, rule LIMIT :top",
    postgres=ERRORS_TOTALS.postgres,
)
# The portal's Dashboard, every issuer, all time: a page of the issuers with a count, how many there are,
# and every issuer's count per status; the page's rows come from ROWS_ISSUER_STATUS by issuer list
# (1,000 issuers on SQLite: 1 ms, against 4 ms and 8,000 rows to build for every issuer's rows).
ISSUERS_PAGE = Statement(
    sqlite="SELECT DISTINCT issuer_siret FROM flow_issuer_status_totals WHERE n > 0"
    "\nORDER BY issuer_siret LIMIT :size OFFSET :first",
    postgres="SELECT issuer_siret FROM flow_totals GROUP BY issuer_siret HAVING sum(n) > 0"
    "\nORDER BY issuer_siret LIMIT :size OFFSET :first",
)
ISSUERS_WITH_FLOWS = Statement(
    sqlite="SELECT count(DISTINCT issuer_siret) FROM flow_issuer_status_totals WHERE n > 0",
    postgres="SELECT count(*) FROM (SELECT issuer_siret FROM flow_totals GROUP BY issuer_siret HAVING sum(n) > 0) AS i",
)
STATUS_TOTALS = Statement(
    sqlite="SELECT status, n FROM flow_status_totals WHERE n > 0",
    postgres="SELECT status, sum(n) AS n FROM flow_totals GROUP BY status HAVING sum(n) > 0",
)
# The issuers the counters have ever counted (their rows stay, at 0 once emptied): a scope that names them
# all reads the all-issuer counters and indexes, and one that leaves a few out subtracts theirs.
COUNTED_ISSUERS = Statement(
    sqlite="SELECT DISTINCT issuer_siret FROM flow_issuer_status_totals",
    postgres="SELECT DISTINCT issuer_siret FROM flow_totals",
)
# A depositor's view: count the error findings of its visible flows.
_ERRORS_SCAN = """
SELECT e.code, COALESCE(e.rule, '') AS rule, count(*) AS n
FROM findings e JOIN flows ON flows.flow_number = e.flow_number"""
_ERRORS_SCAN_GROUP = "\nGROUP BY e.code, COALESCE(e.rule, '') ORDER BY n DESC, e.code, rule LIMIT :top"
_ERROR = Predicate("e.severity = 'error'")
ERRORS_SCAN = per_dialect(
    _ERRORS_SCAN, (_ERROR, *_DASHBOARD_SQLITE), (_ERROR, *_DASHBOARD_POSTGRES), _ERRORS_SCAN_GROUP
)


# --- event feed: cursors in commit order (SQLite: event_feed.id; PostgreSQL: status_events.cursor) ------
EVENTS_AFTER = Statement(
    sqlite=Where(
        "SELECT id AS cursor, flow_number, issuer_siret, depositor, status, event, at FROM event_feed",
        (Predicate("id > :cursor"), *_SCOPE_SQLITE, _FLOW_NUMBER_SQLITE),
        "\nORDER BY id LIMIT :limit",
    ),
    postgres=Where(
        """
SELECT e.cursor, e.flow_number, f.issuer_siret, f.depositor, e.status, e.event, e.at
FROM status_events e JOIN flows f ON f.flow_number = e.flow_number""",
        (
            Predicate("e.cursor > :cursor::bigint"),
            Predicate("(:flow_number::text IS NULL OR e.flow_number = :flow_number::text)"),
            *_SCOPE_POSTGRES,
        ),
        "\nORDER BY e.cursor\nLIMIT :limit",
    ),
)

# --- rejects: the first error of each rejected invoice of the visible flows ------------------------------
_REJECTS = """
SELECT i.flow_number, flows.issuer_siret, flows.deposited_at, i.number, i.document,
       COALESCE((
           SELECT x.code || ': ' || x.message FROM findings x
           WHERE x.flow_number = i.flow_number AND x.invoice_idx = i.idx AND x.severity = 'error'
           ORDER BY x.position LIMIT 1
       ), '') AS reason
FROM invoices i JOIN flows ON flows.flow_number = i.flow_number"""
_REJECTED = Predicate("i.status = 'rejected'")
_REJECTS_ORDER = "\nORDER BY flows.issuer_siret, flows.deposited_at, i.flow_number, i.idx"
REJECTS = per_dialect(
    _REJECTS,
    (_REJECTED, *_SCOPE_SQLITE, *_PERIOD_SQLITE),
    (_REJECTED, *_SCOPE_POSTGRES, *_PERIOD_POSTGRES),
    _REJECTS_ORDER,
)
