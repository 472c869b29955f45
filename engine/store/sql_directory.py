"""The SQL of the directory, credentials and administration, SFTP lockouts and retention, for both dialects.

Run by ``engine.store.directory_store`` and ``engine.store.lockouts`` on either backend; named parameters
(``engine.store.sql``). Lists: a JSON array read with ``json_each`` on SQLite, an array on PostgreSQL.
Booleans are 0/1 on SQLite, booleans on PostgreSQL; ``FALSE`` and ``EXISTS`` read alike in both.
"""

from __future__ import annotations

from engine.store.sql import Predicate, Statement, both, per_dialect

# --- directory entries (an import upserts each entry and replaces what it owns) -----------------------
UPSERT_STRUCTURE = both("""
INSERT INTO structures (
    siret, name, active, is_public, is_provider, service_code_required, engagement_required,
    service_or_engagement_required
) VALUES (
    :siret, :name, :active, :is_public, :is_provider, :service_code_required, :engagement_required,
    :service_or_engagement_required
)
ON CONFLICT (siret) DO UPDATE SET
    name = excluded.name, active = excluded.active, is_public = excluded.is_public,
    is_provider = excluded.is_provider, service_code_required = excluded.service_code_required,
    engagement_required = excluded.engagement_required,
    service_or_engagement_required = excluded.service_or_engagement_required
""")
DELETE_SERVICES = both("DELETE FROM services WHERE siret = :siret")
INSERT_SERVICE = both("""
INSERT INTO services (siret, code, label, active, position) VALUES (:siret, :code, :label, :active, :position)
""")
UPSERT_USER = both("""
INSERT INTO users (login, name, token_hash, token_lookup) VALUES (:login, :name, :token_hash, :token_lookup)
ON CONFLICT (login) DO UPDATE SET
    name = excluded.name, token_hash = excluded.token_hash, token_lookup = excluded.token_lookup
""")
# A user upserted alone without a token keeps the one it has (tokens change through set_token).
UPSERT_USER_KEEP_TOKEN = both("""
INSERT INTO users (login, name, token_hash, token_lookup) VALUES (:login, :name, :token_hash, :token_lookup)
ON CONFLICT (login) DO UPDATE SET
    name = excluded.name,
    token_hash = CASE WHEN excluded.token_hash IS NULL THEN users.token_hash ELSE excluded.token_hash END,
    token_lookup = CASE WHEN excluded.token_hash IS NULL THEN users.token_lookup ELSE excluded.token_lookup END
""")
UPSERT_MEMBERSHIP = both("""
INSERT INTO memberships (login, siret, role) VALUES (:login, :siret, :role)
ON CONFLICT (login, siret) DO UPDATE SET role = excluded.role
""")
DELETE_MEMBERSHIP = both("DELETE FROM memberships WHERE login = :login AND siret = :siret")
UPSERT_TECHNICAL_USER = both("""
INSERT INTO technical_users (login, siret, token_hash, token_lookup, ruleset)
VALUES (:login, :siret, :token_hash, :token_lookup, :ruleset)
ON CONFLICT (login) DO UPDATE SET
    siret = excluded.siret, token_hash = excluded.token_hash, token_lookup = excluded.token_lookup,
    ruleset = excluded.ruleset
""")
# A technical user created or moved, its token (if any) kept: its ruleset kept too, or set.
UPSERT_TECHNICAL_SIRET = both("""
INSERT INTO technical_users (login, siret) VALUES (:login, :siret)
ON CONFLICT (login) DO UPDATE SET siret = excluded.siret
""")
UPSERT_TECHNICAL_RULESET = both("""
INSERT INTO technical_users (login, siret, ruleset) VALUES (:login, :siret, :ruleset)
ON CONFLICT (login) DO UPDATE SET siret = excluded.siret, ruleset = excluded.ruleset
""")
UPSERT_PARTNER = both("""
INSERT INTO partners (code, siret, password_hash, status_files, ruleset)
VALUES (:code, :siret, :password_hash, :status_files, :ruleset)
ON CONFLICT (code) DO UPDATE SET
    siret = excluded.siret, password_hash = excluded.password_hash, status_files = excluded.status_files,
    ruleset = excluded.ruleset
""")
# One key, one partner: PostgreSQL writers of partners check the keys one after the other (the lock
# conflicts with itself; SFTP logins still read the keys). SQLite's write transaction is the only writer.
LOCK_PARTNER_KEYS = Statement(sqlite=None, postgres="LOCK TABLE partner_keys IN SHARE ROW EXCLUSIVE MODE")
ALL_PARTNER_KEYS = both("SELECT code, public_key FROM partner_keys")
DELETE_PARTNER_KEYS = both("DELETE FROM partner_keys WHERE code = :code")
DELETE_PARTNER_RULES = both("DELETE FROM partner_rules WHERE code = :code")
INSERT_PARTNER_KEY = both(
    "INSERT INTO partner_keys (code, position, public_key) VALUES (:code, :position, :public_key)"
)
INSERT_PARTNER_RULE = both(
    "INSERT INTO partner_rules (code, syntax, rule, position) VALUES (:code, :syntax, :rule, :position)"
)
# A rule set alone goes after the partner's others.
UPSERT_RULE = both("""
INSERT INTO partner_rules (code, syntax, rule, position)
VALUES (:code, :syntax, :rule, (SELECT COALESCE(MAX(position) + 1, 0) FROM partner_rules WHERE code = :code))
ON CONFLICT (code, syntax) DO UPDATE SET rule = excluded.rule
""")
INSERT_PROFILE = both("""
INSERT INTO profiles (login, siret, profile) VALUES (:login, :siret, :profile)
ON CONFLICT (login, siret, profile) DO NOTHING
""")
DELETE_PROFILE = both("DELETE FROM profiles WHERE login = :login AND siret = :siret AND profile = :profile")

# --- reading entries -------------------------------------------------------------------------------
# One statement, so a structure and its services come from one snapshot.
_STRUCTURES = """
SELECT s.siret, s.name, s.active, s.is_public, s.is_provider, s.service_code_required,
       s.engagement_required, s.service_or_engagement_required,
       v.code AS service_code, v.label AS service_label, v.active AS service_active
FROM structures s LEFT JOIN services v ON v.siret = s.siret"""
_STRUCTURES_ORDER = "\nORDER BY s.siret, v.position"
STRUCTURES_WITH_SERVICES = per_dialect(
    _STRUCTURES,
    (Predicate("s.siret IN (SELECT value FROM json_each(:sirets))"),),
    (Predicate("s.siret = ANY (:sirets::text[])"),),
    _STRUCTURES_ORDER,
)
ALL_STRUCTURES = per_dialect(_STRUCTURES, (), (), _STRUCTURES_ORDER)
GET_PARTNER = both("SELECT code, siret, password_hash, status_files, ruleset FROM partners WHERE code = :code")
PARTNER_KEYS = both("SELECT public_key FROM partner_keys WHERE code = :code ORDER BY position")
PARTNER_RULES = both("SELECT syntax, rule FROM partner_rules WHERE code = :code ORDER BY position")
# The depositors ("tech:<login>", "partner:<code>") that have a ruleset of their own (migration 0010).
DEPOSITOR_RULESETS = both("""
SELECT 'tech:' || login AS depositor, ruleset FROM technical_users WHERE ruleset IS NOT NULL
UNION ALL
SELECT 'partner:' || code AS depositor, ruleset FROM partners WHERE ruleset IS NOT NULL
""")

# --- credentials and principals --------------------------------------------------------------------
USER_BY_LOOKUP = both("SELECT login, token_hash FROM users WHERE token_lookup = :lookup AND token_hash IS NOT NULL")
TECHNICAL_BY_LOOKUP = both(
    "SELECT login, token_hash FROM technical_users WHERE token_lookup = :lookup AND token_hash IS NOT NULL"
)
SET_USER_TOKEN = both("UPDATE users SET token_hash = :token_hash, token_lookup = :lookup WHERE login = :login")
SET_TECHNICAL_TOKEN = both(
    "UPDATE technical_users SET token_hash = :token_hash, token_lookup = :lookup WHERE login = :login"
)
USER_EXISTS = both("SELECT EXISTS (SELECT 1 FROM users WHERE login = :login)")
STRUCTURE_EXISTS = both("SELECT EXISTS (SELECT 1 FROM structures WHERE siret = :siret)")
PARTNER_EXISTS = both("SELECT EXISTS (SELECT 1 FROM partners WHERE code = :code)")
USER_MEMBERSHIPS = both("SELECT siret, role FROM memberships WHERE login = :login")
USER_PROFILES = both("SELECT siret FROM profiles WHERE login = :login AND profile = :profile")
TECHNICAL_PRINCIPAL = both("""
SELECT t.siret, COALESCE(s.is_provider, FALSE) AS is_provider
FROM technical_users t LEFT JOIN structures s ON s.siret = t.siret WHERE t.login = :login
""")
PARTNER_PRINCIPAL = both("""
SELECT p.siret, COALESCE(s.is_provider, FALSE) AS is_provider
FROM partners p LEFT JOIN structures s ON s.siret = p.siret WHERE p.code = :login
""")

# --- retention: final flows deposited before :before (:finals, the final status codes) -----------------
# PostgreSQL locks them so two purges never overlap, and takes their counts off its counters.
PURGEABLE = Statement(
    sqlite="""
SELECT flow_number, blob_key, issuer_siret, syntax, status, deposited_at FROM flows
WHERE deposited_at < :before AND status IN (SELECT value FROM json_each(:finals))
""",
    postgres="""
SELECT flow_number, blob_key, issuer_siret, syntax, status, deposited_at FROM flows
WHERE deposited_at < :before AND status = ANY (:finals::text[])
FOR UPDATE SKIP LOCKED
""",
)
# :numbers, the flows purged. Children first (foreign keys; SQLite's findings trigger reads the flow row
# to count down its errors); PostgreSQL returns the error findings for its counters.
PURGE_FINDINGS = Statement(
    sqlite="DELETE FROM findings WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
    postgres="""
DELETE FROM findings e USING flows f
WHERE e.flow_number = ANY (:numbers::text[]) AND f.flow_number = e.flow_number
RETURNING f.issuer_siret, f.deposited_at, f.syntax, e.code, e.rule, e.severity
""",
)
PURGE = (
    Statement(
        sqlite="DELETE FROM invoices WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
        postgres="DELETE FROM invoices WHERE flow_number = ANY (:numbers::text[])",
    ),
    Statement(
        sqlite="DELETE FROM status_events WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
        postgres="DELETE FROM status_events WHERE flow_number = ANY (:numbers::text[])",
    ),
    Statement(  # PostgreSQL's feed is status_events itself
        sqlite="DELETE FROM event_feed WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
        postgres=None,
    ),
    Statement(
        sqlite="DELETE FROM webhook_deliveries WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
        postgres="DELETE FROM webhook_deliveries WHERE flow_number = ANY (:numbers::text[])",
    ),
    Statement(
        sqlite="DELETE FROM jobs WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
        postgres="DELETE FROM jobs WHERE flow_number = ANY (:numbers::text[])",
    ),
    Statement(
        sqlite="DELETE FROM flow_contents WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
        postgres="DELETE FROM flow_contents WHERE flow_number = ANY (:numbers::text[])",
    ),
    Statement(
        sqlite="DELETE FROM flows WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
        postgres="DELETE FROM flows WHERE flow_number = ANY (:numbers::text[])",
    ),
)
# Of the blob keys :keys of the purged flows, those no remaining flow references.
UNREFERENCED_BLOBS = Statement(
    sqlite="""
SELECT DISTINCT value AS blob_key FROM json_each(:keys) WHERE value NOT IN (SELECT blob_key FROM flows)
ORDER BY value
""",
    postgres="""
SELECT DISTINCT k AS blob_key FROM unnest(:keys::text[]) AS k
WHERE NOT EXISTS (SELECT 1 FROM flows WHERE blob_key = k)
ORDER BY k
""",
)

# --- SFTP authentication failures: one row per key (engine.lockout) -------------------------------------
AUTH_LOCKED = Statement(
    sqlite="""
SELECT EXISTS (
    SELECT 1 FROM auth_failures WHERE key IN (SELECT value FROM json_each(:keys)) AND locked_until > :now
)""",
    postgres="""
SELECT EXISTS (SELECT 1 FROM auth_failures WHERE key = ANY (:keys::text[]) AND locked_until > :now)""",
)
# ``held``: the row holds something. PostgreSQL creates missing rows empty (AUTH_ENSURE) to lock them in
# key order (FOR UPDATE: daemons counting the same keys wait for each other, and never deadlock).
AUTH_ROWS = Statement(
    sqlite="""
SELECT key, failures, window_start, locked_until, strikes, TRUE AS held FROM auth_failures
WHERE key IN (SELECT value FROM json_each(:keys))""",
    postgres="""
SELECT key, failures, window_start, locked_until, strikes,
       (failures <> 0 OR strikes <> 0 OR locked_until IS NOT NULL) AS held
FROM auth_failures WHERE key = ANY (:keys::text[])""",
)
AUTH_ENSURE = Statement(
    sqlite=None,
    postgres="""
INSERT INTO auth_failures (key, failures, window_start)
SELECT k, 0, :at FROM unnest(:keys::text[]) AS k ORDER BY k ON CONFLICT DO NOTHING""",
)
AUTH_LOCK_ROWS = Statement(
    sqlite=AUTH_ROWS.sqlite,
    postgres="""
SELECT key, failures, window_start, locked_until, strikes,
       (failures <> 0 OR strikes <> 0 OR locked_until IS NOT NULL) AS held
FROM auth_failures WHERE key = ANY (:keys::text[])
ORDER BY key FOR UPDATE""",
)
AUTH_SAVE = both("""
INSERT INTO auth_failures (key, failures, window_start, locked_until, strikes)
VALUES (:key, :failures, :window_start, :locked_until, :strikes)
ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start,
    locked_until = excluded.locked_until, strikes = excluded.strikes""")
AUTH_DROP = both("DELETE FROM auth_failures WHERE key = :key")
# Windows and locks older than :cutoff. PostgreSQL skips rows another transaction holds: forgetting never
# waits, so it cannot deadlock with counting.
AUTH_FORGET = Statement(
    sqlite="""
DELETE FROM auth_failures
WHERE window_start <= :cutoff AND (locked_until IS NULL OR locked_until <= :cutoff)""",
    postgres="""
DELETE FROM auth_failures WHERE key IN (
    SELECT key FROM auth_failures WHERE window_start <= :cutoff AND (locked_until IS NULL OR locked_until <= :cutoff)
    FOR UPDATE SKIP LOCKED)""",
)
