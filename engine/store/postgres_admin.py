"""Authentication, administration, retention and the outbox queries of ``PostgresStore``, with the
semantics of ``sqlite_admin``/``sqlite_outbox``: a token is found only through its lookup id and returned
with its hash for the caller to verify; updating a user or technical user without a token keeps its
token; an entry named by a membership, profile, technical user or partner must exist
(``DirectoryEntryNotFound``); granting a held profile raises ``ProfileAlreadyGranted``; a purge deletes
only final flows, with all they own, and takes their counts off the counters in the same transaction.
"""

# ruff: noqa: S608, S105 - statements join SQL constants of this module only, never values; names are not secrets

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.directory import FLOW_FOLLOW_UP, DirectoryData, Partner, Role, Structure, User
from engine.errors import DirectoryEntryNotFound, ProfileAlreadyGranted
from engine.model import FlowRecord, RejectionRule, Syntax
from engine.permissions import Principal, PrincipalKind
from engine.status import FINAL_STATUSES
from engine.store import postgres_directory as directory_sql
from engine.store.directory_rows import attached_principal, structures_from_rows, user_principal
from engine.store.port import Credential, ReportInputs
from engine.store.postgres_auth import PostgresAuthFailures
from engine.store.postgres_db import Tx
from engine.store.postgres_monitoring import PostgresMonitoring
from engine.store.postgres_rows import change_from_row, flow_from_row, utc
from engine.store.postgres_sql import FLOW_COLUMNS
from engine.store.report_rows import report_inputs_from_rows

USER_BY_LOOKUP = "SELECT login, token_hash FROM users WHERE token_lookup = $1 AND token_hash IS NOT NULL"
TECHNICAL_BY_LOOKUP = "SELECT login, token_hash FROM technical_users WHERE token_lookup = $1 AND token_hash IS NOT NULL"
USER_EXISTS = "SELECT EXISTS (SELECT 1 FROM users WHERE login = $1)"
STRUCTURE_EXISTS = "SELECT EXISTS (SELECT 1 FROM structures WHERE siret = $1)"
PARTNER_EXISTS = "SELECT EXISTS (SELECT 1 FROM partners WHERE code = $1)"
USER_MEMBERSHIPS = "SELECT siret, role FROM memberships WHERE login = $1"
USER_PROFILES = "SELECT siret FROM profiles WHERE login = $1 AND profile = $2"
TECHNICAL_PRINCIPAL = """
SELECT t.siret, COALESCE(s.is_provider, false) AS is_provider
FROM technical_users t LEFT JOIN structures s ON s.siret = t.siret WHERE t.login = $1
"""
PARTNER_PRINCIPAL = """
SELECT p.siret, COALESCE(s.is_provider, false) AS is_provider
FROM partners p LEFT JOIN structures s ON s.siret = p.siret WHERE p.code = $1
"""
# $1 login, $2 token_hash, $3 lookup
SET_USER_TOKEN = "UPDATE users SET token_hash = $2, token_lookup = $3 WHERE login = $1"
SET_TECHNICAL_TOKEN = "UPDATE technical_users SET token_hash = $2, token_lookup = $3 WHERE login = $1"
# A user upserted without a token keeps the one it has (tokens change through set_token).
UPSERT_USER_KEEP_TOKEN = """
INSERT INTO users (login, name, token_hash, token_lookup) VALUES ($1, $2, $3, $4)
ON CONFLICT (login) DO UPDATE SET
    name = excluded.name,
    token_hash = CASE WHEN excluded.token_hash IS NULL
                      THEN users.token_hash ELSE excluded.token_hash END,
    token_lookup = CASE WHEN excluded.token_hash IS NULL
                        THEN users.token_lookup ELSE excluded.token_lookup END
"""
UPSERT_TECHNICAL_SIRET = """
INSERT INTO technical_users (login, siret) VALUES ($1, $2)
ON CONFLICT (login) DO UPDATE SET siret = excluded.siret
"""
DELETE_MEMBERSHIP = "DELETE FROM memberships WHERE login = $1 AND siret = $2"
# $1 code, $2 syntax, $3 rule
UPSERT_RULE = """
INSERT INTO partner_rules (code, syntax, rule, position)
VALUES ($1, $2, $3, (SELECT COALESCE(MAX(position) + 1, 0) FROM partner_rules WHERE code = $1))
ON CONFLICT (code, syntax) DO UPDATE SET rule = excluded.rule
"""
INSERT_PROFILE_ONCE = """
INSERT INTO profiles (login, siret, profile) VALUES ($1, $2, $3)
ON CONFLICT (login, siret, profile) DO NOTHING
"""
DELETE_PROFILE = "DELETE FROM profiles WHERE login = $1 AND siret = $2 AND profile = $3"

# --- retention: $1 deposited before, $2 final status codes; rows locked so two purges never overlap ------
PURGEABLE = """
SELECT flow_number, blob_key, issuer_siret, syntax, status, deposited_at FROM flows
WHERE deposited_at < $1 AND status = ANY ($2::text[])
FOR UPDATE SKIP LOCKED
"""
# $1 flow numbers. Children first (foreign keys); error findings come back to be taken off the counters.
PURGE_FINDINGS = """
DELETE FROM findings e USING flows f
WHERE e.flow_number = ANY ($1::text[]) AND f.flow_number = e.flow_number
RETURNING f.issuer_siret, f.deposited_at, f.syntax, e.code, e.rule, e.severity
"""
PURGE = (
    "DELETE FROM invoices WHERE flow_number = ANY ($1::text[])",
    "DELETE FROM status_events WHERE flow_number = ANY ($1::text[])",
    "DELETE FROM jobs WHERE flow_number = ANY ($1::text[])",
    "DELETE FROM flow_contents WHERE flow_number = ANY ($1::text[])",
    "DELETE FROM flows WHERE flow_number = ANY ($1::text[])",
)
UNREFERENCED_BLOBS = """
SELECT DISTINCT k FROM unnest($1::text[]) AS k WHERE NOT EXISTS (SELECT 1 FROM flows WHERE blob_key = k)
ORDER BY k
"""

FINAL_CODES = sorted(s.code for s in FINAL_STATUSES)

# --- outbox: EDI flows in a final status without their integration report (FSO…_<flow number>.xml) ------
# $1 limit. The terms are those of the partial index flows_pending_return (migration 0006), constants
# included: the planner uses a partial index only when the query's terms imply its own.
PENDING_RETURN_FLOWS = (
    "SELECT "
    + FLOW_COLUMNS
    + """ FROM flows
WHERE channel = 'EDI' AND partner_code IS NOT NULL AND NOT report_written
  AND status IN ("""
    + ", ".join(f"'{code}'" for code in FINAL_CODES)
    + """)
ORDER BY seq
LIMIT $1
"""
)


# What a batch of reports is built from: $1 the flow numbers; each query orders by flow number, then as its
# one-flow form in ``postgres_sql`` does.
REPORT_VERSIONS = "SELECT flow_number, ruleset_version FROM flows WHERE flow_number = ANY ($1::text[])"
REPORT_HISTORY = """
SELECT flow_number, seq, status, event, at, actor, detail, prev_hash, hash
FROM status_events WHERE flow_number = ANY ($1::text[]) ORDER BY flow_number, seq
"""
REPORT_FLOW_FINDINGS = """
SELECT flow_number, code, message, severity, rule, business_term, location, document
FROM findings WHERE flow_number = ANY ($1::text[]) AND invoice_idx IS NULL ORDER BY flow_number, position
"""
REPORT_INVOICES = """
SELECT i.flow_number, i.idx, i.document, i.number, i.type_code, i.issue_date, i.currency, i.supplier_id,
       i.supplier_name, i.buyer_id, i.buyer_name, i.service_code, i.engagement_number, i.total_without_vat,
       i.total_with_vat, i.amount_due, i.guideline, i.has_attachment, i.status AS invoice_status,
       f.code AS f_code, f.message AS f_message, f.severity AS f_severity, f.rule AS f_rule,
       f.business_term AS f_business_term, f.location AS f_location, f.document AS f_document
FROM invoices i
LEFT JOIN findings f ON f.flow_number = i.flow_number AND f.invoice_idx = i.idx
WHERE i.flow_number = ANY ($1::text[])
ORDER BY i.flow_number, i.idx, f.position
"""


async def _require(conn: Any, query: str, what: str, key: str) -> None:
    if not await conn.fetchval(query, key):
        raise DirectoryEntryNotFound(what, key)


async def load_principal(conn: Any, kind: str, login: str) -> Principal | None:
    """The principal of a user, technical user or partner (None when unknown or another kind)."""
    if kind == PrincipalKind.USER.value:
        if not await conn.fetchval(USER_EXISTS, login):
            return None
        memberships = await conn.fetch(USER_MEMBERSHIPS, login)
        follows = await conn.fetch(USER_PROFILES, login, FLOW_FOLLOW_UP)
        return user_principal(login, memberships, follows)
    queries = {
        PrincipalKind.TECHNICAL.value: TECHNICAL_PRINCIPAL,
        PrincipalKind.PARTNER.value: PARTNER_PRINCIPAL,
    }
    if kind not in queries:
        return None
    row = await conn.fetchrow(queries[kind], login)
    if row is None:
        return None
    return attached_principal(kind, login, row)


async def purge(tx: Tx, deposited_before: datetime) -> tuple[int, list[str]]:
    rows = await tx.conn.fetch(PURGEABLE, utc(deposited_before), FINAL_CODES)
    if not rows:
        return 0, []
    numbers = [str(r["flow_number"]) for r in rows]
    for e in await tx.conn.fetch(PURGE_FINDINGS, numbers):
        if e["severity"] == "error":
            tx.counts.error(str(e["issuer_siret"]), e["deposited_at"], str(e["syntax"]), str(e["code"]), e["rule"], -1)
    for statement in PURGE:
        await tx.conn.execute(statement, numbers)
    for r in rows:
        tx.counts.flow(str(r["issuer_siret"]), r["deposited_at"], str(r["syntax"]), str(r["status"]), -1)
    keys = [str(r["blob_key"]) for r in rows if r["blob_key"]]  # "": bytes kept in the row
    return len(rows), [str(r[0]) for r in await tx.conn.fetch(UNREFERENCED_BLOBS, keys)]


class PostgresAdmin(PostgresAuthFailures, PostgresMonitoring):
    """The authentication and administration half of ``PostgresStore`` (see the module docstring; the
    lockouts are ``postgres_auth``'s)."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractAsyncContextManager[Tx]: ...

    async def find_credential(self, lookup_id: str) -> Credential | None:
        """The user, else the technical user, whose token has ``lookup_id``."""
        async with self._snapshot() as conn:
            for kind, query in (("user", USER_BY_LOOKUP), ("technical", TECHNICAL_BY_LOOKUP)):
                row = await conn.fetchrow(query, lookup_id)
                if row is not None:
                    return Credential(kind, str(row["login"]), str(row["token_hash"]))
        return None

    async def principal(self, kind: str, login: str) -> Principal | None:
        """The principal of a user, technical user or partner, with its structures and profiles."""
        async with self._snapshot() as conn:
            return await load_principal(conn, kind, login)

    async def set_token(self, kind: str, login: str, token_hash: str, lookup_id: str) -> None:
        queries = {
            PrincipalKind.USER.value: SET_USER_TOKEN,
            PrincipalKind.TECHNICAL.value: SET_TECHNICAL_TOKEN,
        }
        if kind not in queries:
            raise ValueError(f"only users and technical users have tokens, not {kind!r}")
        async with self._write() as tx:
            if await tx.conn.execute(queries[kind], login, token_hash, lookup_id) != "UPDATE 1":
                what = "user" if kind == PrincipalKind.USER.value else "technical user"
                raise DirectoryEntryNotFound(what, login)

    async def upsert_structure(self, structure: Structure) -> None:
        async with self._write() as tx:
            await directory_sql.import_directory(tx.conn, DirectoryData(structures=(structure,)))

    async def list_structures(self) -> list[Structure]:
        rows = await self._fetch(directory_sql.ALL_STRUCTURES)
        return list(structures_from_rows(rows).values())

    async def upsert_user(self, user: User) -> None:
        async with self._write() as tx:
            await tx.conn.execute(UPSERT_USER_KEEP_TOKEN, user.login, user.name, user.token_hash, user.token_lookup)

    async def set_membership(self, login: str, siret: str, role: Role | None) -> None:
        """Attach ``login`` to ``siret`` with ``role``, or detach it when ``role`` is None."""
        async with self._write() as tx:
            if role is None:
                await tx.conn.execute(DELETE_MEMBERSHIP, login, siret)
                return
            await _require(tx.conn, USER_EXISTS, "user", login)
            await _require(tx.conn, STRUCTURE_EXISTS, "structure", siret)
            await tx.conn.execute(directory_sql.UPSERT_MEMBERSHIP, login, siret, role.value)

    async def upsert_technical_user(self, login: str, siret: str) -> None:
        async with self._write() as tx:
            await _require(tx.conn, STRUCTURE_EXISTS, "structure", siret)
            await tx.conn.execute(UPSERT_TECHNICAL_SIRET, login, siret)

    async def upsert_partner(self, partner: Partner) -> None:
        async with self._write() as tx:
            await _require(tx.conn, STRUCTURE_EXISTS, "structure", partner.siret)
            await directory_sql.import_directory(tx.conn, DirectoryData(partners=(partner,)))

    async def set_rejection_rule(self, partner_code: str, syntax: Syntax, rule: RejectionRule) -> None:
        async with self._write() as tx:
            await _require(tx.conn, PARTNER_EXISTS, "partner", partner_code)
            await tx.conn.execute(UPSERT_RULE, partner_code, syntax.value, rule.value)

    async def grant_profile(self, login: str, siret: str, profile: str) -> None:
        """Raise ``ProfileAlreadyGranted`` ("The user already has the selected subscription") when held."""
        async with self._write() as tx:
            await _require(tx.conn, USER_EXISTS, "user", login)
            await _require(tx.conn, STRUCTURE_EXISTS, "structure", siret)
            if await tx.conn.execute(INSERT_PROFILE_ONCE, login, siret, profile) != "INSERT 0 1":
                raise ProfileAlreadyGranted()

    async def revoke_profile(self, login: str, siret: str, profile: str) -> None:
        """Raise ``DirectoryEntryNotFound`` when the user does not hold it."""
        async with self._write() as tx:
            if await tx.conn.execute(DELETE_PROFILE, login, siret, profile) != "DELETE 1":
                raise DirectoryEntryNotFound("profile", f"{profile} of {login} on {siret}")

    async def purge_flows(self, deposited_before: datetime) -> tuple[int, list[str]]:
        """Delete final flows deposited before the date; return the count and the orphaned blob keys."""
        async with self._write() as tx:
            return await purge(tx, deposited_before)

    async def pending_return_flows(self, limit: int = 100) -> list[FlowRecord]:
        """EDI flows in a final status whose integration report has not been written to the outbox."""
        return [flow_from_row(r) for r in await self._fetch(PENDING_RETURN_FLOWS, limit)]

    async def report_inputs(self, flow_numbers: Sequence[str]) -> dict[str, ReportInputs]:
        """The report inputs of many flows, read in one snapshot with four queries."""
        if not flow_numbers:
            return {}
        numbers = list(flow_numbers)
        async with self._snapshot() as conn:
            rows = [
                await conn.fetch(query, numbers)
                for query in (REPORT_VERSIONS, REPORT_HISTORY, REPORT_FLOW_FINDINGS, REPORT_INVOICES)
            ]
        return report_inputs_from_rows(change_from_row, *rows)
