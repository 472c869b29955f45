"""The SQL of ``PostgresStore``'s monitoring queries: one constant per statement, positional parameters.

Every statement starts with the scope parameters ``$1`` issuers (text[] or NULL: any), ``$2`` visible
issuers and ``$3`` depositor (NULL: no depositor restriction); flow statements continue with the
``FLOW_FILTERS`` parameters ``$4``..``$14`` (NULL: not filtered). Nothing is built from values (STYLE
rule 4): the only concatenations join these constants.
"""

# ruff: noqa: S608 - statements join SQL constants of this module only, never values; names are not secrets

from __future__ import annotations

from engine.store.postgres_sql import FLOW_COLUMNS

# $1 issuers, $2 visible issuers, $3 visible depositor (columns of ``flows``, unqualified).
SCOPE = """
    ($1::text[] IS NULL OR issuer_siret = ANY ($1::text[]))
AND ($3::text IS NULL OR depositor = $3::text OR issuer_siret = ANY ($2::text[]))"""
# $4 statuses, $5 syntaxes, $6 deposited from (incl.), $7 deposited to (excl.), $8 flow number,
# $9 file name substring, $10 channel, $11 sha256, $12 tracking id, $13 updated after, $14 updated before
FLOW_FILTERS = (
    SCOPE
    + """
AND ($4::text[] IS NULL OR status = ANY ($4::text[]))
AND ($5::text[] IS NULL OR syntax = ANY ($5::text[]))
AND ($6::timestamptz IS NULL OR deposited_at >= $6::timestamptz)
AND ($7::timestamptz IS NULL OR deposited_at < $7::timestamptz)
AND ($8::text IS NULL OR flow_number = $8::text)
AND ($9::text IS NULL OR strpos(file_name, $9::text) > 0)
AND ($10::text IS NULL OR channel = $10::text)
AND ($11::text IS NULL OR sha256 = $11::text)
AND ($12::text IS NULL OR tracking_id = $12::text)
AND ($13::timestamptz IS NULL OR status_changed_at > $13::timestamptz)
AND ($14::timestamptz IS NULL OR status_changed_at < $14::timestamptz)"""
)

# --- search: keyset pages in (issuer ASC, deposited_at DESC, flow_number DESC) order -----------------
_SEARCH_HEAD = "SELECT " + FLOW_COLUMNS + " FROM flows WHERE " + FLOW_FILTERS
_SEARCH_ORDER = "\nORDER BY issuer_siret, deposited_at DESC, flow_number DESC LIMIT $15"
SEARCH_FIRST = _SEARCH_HEAD + _SEARCH_ORDER  # $15 limit
# Resuming after key ($16 issuer, $17 deposited_at, $18 flow number): the rest of its issuer, then the
# issuers after it (two index range scans).
SEARCH_SAME_ISSUER = (
    _SEARCH_HEAD
    + "\nAND issuer_siret = $16::text AND (deposited_at, flow_number) < ($17::timestamptz, $18::text)"
    + _SEARCH_ORDER
)
SEARCH_LATER_ISSUERS = _SEARCH_HEAD + "\nAND issuer_siret > $16::text" + _SEARCH_ORDER
COUNT_FLOWS = "SELECT count(*) FROM flows WHERE " + FLOW_FILTERS

# Counters: $1 issuers, $2 statuses, $3 syntaxes [, $4 day from (incl.), $5 day to (excl.)].
_COUNTER_FILTERS = """
    ($1::text[] IS NULL OR issuer_siret = ANY ($1::text[]))
AND ($2::text[] IS NULL OR status = ANY ($2::text[]))
AND ($3::text[] IS NULL OR syntax = ANY ($3::text[]))"""
_DAYS = """
AND ($4::date IS NULL OR day >= $4::date)
AND ($5::date IS NULL OR day < $5::date)"""
SUM_TOTALS = "SELECT COALESCE(sum(n), 0) FROM flow_totals WHERE " + _COUNTER_FILTERS
SUM_DAYS = "SELECT COALESCE(sum(n), 0) FROM flow_day_counts WHERE " + _COUNTER_FILTERS + _DAYS

# --- dashboard -------------------------------------------------------------------------------------
# $1 issuers, $2 syntaxes [, $3 day from, $4 day to]
_ROWS_FILTERS = """
    ($1::text[] IS NULL OR issuer_siret = ANY ($1::text[]))
AND ($2::text[] IS NULL OR syntax = ANY ($2::text[]))"""
_ROWS_GROUP = "\nGROUP BY issuer_siret, status HAVING sum(n) > 0 ORDER BY issuer_siret, status"
ROWS_TOTALS = "SELECT issuer_siret, status, sum(n) AS n FROM flow_totals WHERE " + _ROWS_FILTERS + _ROWS_GROUP
ROWS_DAYS = (
    "SELECT issuer_siret, status, sum(n) AS n FROM flow_day_counts WHERE "
    + _ROWS_FILTERS
    + """
AND ($3::date IS NULL OR day >= $3::date)
AND ($4::date IS NULL OR day < $4::date)"""
    + _ROWS_GROUP
)
# A depositor's view: count its visible rows (scope + flow filters, $1..$14).
ROWS_SCAN = (
    "SELECT issuer_siret, status, count(*) AS n FROM flows WHERE "
    + FLOW_FILTERS
    + "\nGROUP BY issuer_siret, status ORDER BY issuer_siret, status"
)
# $4..$14 as FLOW_FILTERS with $4 = [one status]: walks flows_status_changed from the oldest.
OLDEST = "SELECT status_changed_at FROM flows WHERE " + FLOW_FILTERS + "\nORDER BY status_changed_at LIMIT 1"
_ERRORS_GROUP = "\nGROUP BY code, rule HAVING sum(n) > 0 ORDER BY n DESC, code, rule LIMIT "
# $1 issuers, $2 syntaxes, $3 top
ERRORS_TOTALS = "SELECT code, rule, sum(n) AS n FROM error_totals WHERE " + _ROWS_FILTERS + _ERRORS_GROUP + "$3"
# $1 issuers, $2 syntaxes, $3 day from, $4 day to, $5 top
ERRORS_DAYS = (
    "SELECT code, rule, sum(n) AS n FROM error_day_counts WHERE "
    + _ROWS_FILTERS
    + "\nAND ($3::date IS NULL OR day >= $3::date) AND ($4::date IS NULL OR day < $4::date)"
    + _ERRORS_GROUP
    + "$5"
)
# A depositor's view: the error findings of its visible flows ($1..$14), $15 top.
ERRORS_SCAN = (
    """
SELECT e.code, COALESCE(e.rule, '') AS rule, count(*) AS n
FROM findings e
WHERE e.severity = 'error' AND e.flow_number IN (SELECT flow_number FROM flows WHERE """
    + FLOW_FILTERS
    + ")\nGROUP BY e.code, COALESCE(e.rule, '') ORDER BY n DESC, e.code, rule LIMIT $15"
)

# --- event feed ------------------------------------------------------------------------------------
# scope $1..$3, $4 after cursor, $5 flow number (NULL: every flow), $6 limit
EVENTS_AFTER = """
SELECT e.cursor, e.flow_number, f.issuer_siret, f.depositor, e.status, e.event, e.at
FROM status_events e JOIN flows f ON f.flow_number = e.flow_number
WHERE e.cursor > $4::bigint
  AND ($5::text IS NULL OR e.flow_number = $5::text)
  AND ($1::text[] IS NULL OR f.issuer_siret = ANY ($1::text[]))
  AND ($3::text IS NULL OR f.depositor = $3::text OR f.issuer_siret = ANY ($2::text[]))
ORDER BY e.cursor
LIMIT $6
"""

# --- rejects ---------------------------------------------------------------------------------------
# scope $1..$3, $4 deposited from (incl.), $5 deposited to (excl.)
REJECTS = """
SELECT i.flow_number, f.issuer_siret, f.deposited_at, i.number, i.document,
       COALESCE((
           SELECT x.code || ': ' || x.message FROM findings x
           WHERE x.flow_number = i.flow_number AND x.invoice_idx = i.idx AND x.severity = 'error'
           ORDER BY x.position LIMIT 1
       ), '') AS reason
FROM invoices i JOIN flows f ON f.flow_number = i.flow_number
WHERE i.status = 'rejected'
  AND ($1::text[] IS NULL OR f.issuer_siret = ANY ($1::text[]))
  AND ($3::text IS NULL OR f.depositor = $3::text OR f.issuer_siret = ANY ($2::text[]))
  AND ($4::timestamptz IS NULL OR f.deposited_at >= $4::timestamptz)
  AND ($5::timestamptz IS NULL OR f.deposited_at < $5::timestamptz)
ORDER BY f.issuer_siret, f.deposited_at, i.flow_number, i.idx
"""
