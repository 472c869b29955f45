"""The SQL of ``SqliteStore``'s monitoring queries: statement heads, and WHERE fragments with named
parameters that ``engine.store.sqlite_queries`` joins with `` AND ``.

Nothing here holds a value: lists travel as one JSON array parameter read with ``json_each``, so a
statement's text depends only on which filters are set, never on what they contain (STYLE rule 4).
Fragments name bare columns that exist, with the same meaning, on ``flows`` and ``event_feed``.
"""

from __future__ import annotations

# --- visibility (engine.permissions.Visibility) ----------------------------------------------------
VIS_SIRETS = "issuer_siret IN (SELECT value FROM json_each(:vis_sirets))"
VIS_DEPOSITOR = "depositor = :vis_depositor"
VIS_EITHER = "(issuer_siret IN (SELECT value FROM json_each(:vis_sirets)) OR depositor = :vis_depositor)"

# --- filters (engine.queries.FlowQuery / DashboardQuery) -------------------------------------------
ISSUERS = "issuer_siret IN (SELECT value FROM json_each(:issuers))"
STATUSES = "status IN (SELECT value FROM json_each(:statuses))"
SYNTAXES = "syntax IN (SELECT value FROM json_each(:syntaxes))"
DEPOSITED_FROM = "deposited_at >= :deposited_from"
DEPOSITED_TO = "deposited_at < :deposited_to"
FLOW_NUMBER = "flow_number = :flow_number"
FILE_NAME_CONTAINS = "instr(file_name, :file_name) > 0"  # a substring, no LIKE wildcards to escape
CHANNEL = "channel = :channel"
SHA256 = "sha256 = :sha256"
TRACKING_ID = "tracking_id = :tracking_id"
UPDATED_AFTER = "status_changed_at > :updated_after"
UPDATED_BEFORE = "status_changed_at < :updated_before"
DAY_FROM = "day >= :day_from"
DAY_TO = "day < :day_to"
ALWAYS = "1 = 1"

# --- search: keyset pages in (issuer ASC, deposited_at DESC, flow_number DESC) order -----------------
# Resuming after key K takes two index range scans: the rest of K's issuer, then the issuers after it.
AFTER_SAME_ISSUER = "issuer_siret = :k_issuer AND (deposited_at, flow_number) < (:k_at, :k_number)"
AFTER_LATER_ISSUERS = "issuer_siret > :k_issuer"
SEARCH_ORDER = " ORDER BY issuer_siret, deposited_at DESC, flow_number DESC LIMIT :limit"
COUNT_FLOWS = "SELECT COUNT(*) FROM flows WHERE "
# Counters (kept by triggers, see migration 0002): all time, or per UTC deposit day.
SUM_TOTALS = "SELECT COALESCE(SUM(n), 0) FROM flow_totals WHERE "
SUM_DAYS = "SELECT COALESCE(SUM(n), 0) FROM flow_day_counts WHERE "
# Coarser counters (migration 0003) for counts without a syntax filter or a period: per (issuer, status),
# and per status alone when no issuer narrows the count either.
SUM_ISSUER_STATUS = "SELECT COALESCE(SUM(n), 0) FROM flow_issuer_status_totals WHERE "
SUM_STATUS = "SELECT COALESCE(SUM(n), 0) FROM flow_status_totals WHERE "

# --- dashboard -------------------------------------------------------------------------------------
_GROUP = " GROUP BY issuer_siret, status HAVING SUM(n) > 0 ORDER BY issuer_siret, status"
ROWS_TOTALS = "SELECT issuer_siret, status, SUM(n) AS n FROM flow_totals WHERE "
ROWS_DAYS = "SELECT issuer_siret, status, SUM(n) AS n FROM flow_day_counts WHERE "
ROWS_GROUP = _GROUP
# Without a syntax filter or a period: one row per (issuer, status) already, in key order.
ROWS_ISSUER_STATUS = "SELECT issuer_siret, status, n FROM flow_issuer_status_totals WHERE "
ROWS_ISSUER_STATUS_ORDER = " AND n > 0 ORDER BY issuer_siret, status"
ROWS_SCAN = "SELECT issuer_siret, status, COUNT(*) AS n FROM flows WHERE "
ROWS_SCAN_GROUP = " GROUP BY issuer_siret, status ORDER BY issuer_siret, status"
# One per non-final status: walks flows_status_changed from the oldest and stops at the first match.
OLDEST = "SELECT status_changed_at FROM flows WHERE status = :status AND "
OLDEST_ORDER = " ORDER BY status_changed_at LIMIT 1"
ERRORS_TOTALS = "SELECT code, rule, SUM(n) AS n FROM error_totals WHERE "
ERRORS_DAYS = "SELECT code, rule, SUM(n) AS n FROM error_day_counts WHERE "
ERRORS_GROUP = " GROUP BY code, rule HAVING SUM(n) > 0 ORDER BY n DESC, code, rule LIMIT :top"
# All issuers and syntaxes, all time: one row per (code, rule) already.
ERRORS_CODES = "SELECT code, rule, n FROM error_code_totals WHERE n > 0 ORDER BY n DESC, code, rule LIMIT :top"
# Without counters (a depositor's visibility): count the error findings of the visible flows.
ERRORS_SCAN = """
SELECT e.code, COALESCE(e.rule, '') AS rule, COUNT(*) AS n
FROM findings e JOIN flows ON flows.flow_number = e.flow_number
WHERE e.severity = 'error' AND """
ERRORS_SCAN_GROUP = " GROUP BY e.code, COALESCE(e.rule, '') ORDER BY n DESC, e.code, rule LIMIT :top"

# --- event feed ------------------------------------------------------------------------------------
EVENTS_AFTER = """
SELECT id, flow_number, issuer_siret, depositor, status, event, at FROM event_feed WHERE id > :cursor AND """
EVENTS_ORDER = " ORDER BY id LIMIT :limit"
# The AUTOINCREMENT high-water mark: survives deletes of feed rows (a cursor is never reused).
LATEST_CURSOR = """
SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'event_feed'), 0)
"""

# --- rejects ---------------------------------------------------------------------------------------
# The first error of each rejected invoice; fragments here name flows' columns (invoices has neither
# issuer_siret, depositor nor deposited_at).
REJECTS = """
SELECT i.flow_number, flows.issuer_siret, flows.deposited_at, i.number, i.document,
       COALESCE((
           SELECT f.code || ': ' || f.message FROM findings f
           WHERE f.flow_number = i.flow_number AND f.invoice_idx = i.idx AND f.severity = 'error'
           ORDER BY f.position LIMIT 1
       ), '') AS reason
FROM invoices i JOIN flows ON flows.flow_number = i.flow_number
WHERE i.status = 'rejected' AND """
REJECTS_ORDER = " ORDER BY flows.issuer_siret, flows.deposited_at, i.flow_number, i.idx"
