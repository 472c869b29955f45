"""Authentication and administration for ``SqliteStore``: credentials by token lookup id, principals,
tokens, single directory entries, profiles.

The functions run on a connection the caller holds (``SqliteStore`` takes its locks and, for writes, the
write transaction). Invariants: a token is found only through its lookup id and returned with its hash
for the caller to verify; updating a user or technical user without a token keeps its current token;
an entry named by a membership, a profile, a technical user or a partner must exist
(``DirectoryEntryNotFound`` otherwise), and granting a profile already held raises
``ProfileAlreadyGranted``; a purge deletes only final flows, with all they own.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING

import aiosqlite

from engine.directory import FLOW_FOLLOW_UP, DirectoryData, Partner, Role, Structure, User
from engine.errors import DirectoryEntryNotFound, ProfileAlreadyGranted
from engine.model import RejectionRule, Syntax
from engine.permissions import Principal, PrincipalKind
from engine.status import FINAL_STATUSES
from engine.store import sqlite_directory as directory_sql
from engine.store.directory_rows import attached_principal, structures_from_rows, user_principal
from engine.store.port import Credential
from engine.store.sqlite_auth import SqliteAuthFailures
from engine.store.sqlite_rows import to_db_time

USER_BY_LOOKUP = "SELECT login, token_hash FROM users WHERE token_lookup = :lookup AND token_hash IS NOT NULL"
TECHNICAL_BY_LOOKUP = """
SELECT login, token_hash FROM technical_users WHERE token_lookup = :lookup AND token_hash IS NOT NULL
"""
USER_EXISTS = "SELECT 1 FROM users WHERE login = :login"
STRUCTURE_EXISTS = "SELECT 1 FROM structures WHERE siret = :siret"
PARTNER_EXISTS = "SELECT 1 FROM partners WHERE code = :code"
USER_MEMBERSHIPS = "SELECT siret, role FROM memberships WHERE login = :login"
USER_PROFILES = "SELECT siret FROM profiles WHERE login = :login AND profile = :profile"
TECHNICAL_PRINCIPAL = """
SELECT t.siret, COALESCE(s.is_provider, 0) AS is_provider
FROM technical_users t LEFT JOIN structures s ON s.siret = t.siret
WHERE t.login = :login
"""
PARTNER_PRINCIPAL = """
SELECT p.siret, COALESCE(s.is_provider, 0) AS is_provider
FROM partners p LEFT JOIN structures s ON s.siret = p.siret
WHERE p.code = :login
"""
SET_USER_CREDENTIAL = "UPDATE users SET token_hash = :token_hash, token_lookup = :lookup WHERE login = :login"
SET_TECHNICAL_CREDENTIAL = """
UPDATE technical_users SET token_hash = :token_hash, token_lookup = :lookup WHERE login = :login
"""
ALL_STRUCTURES = """
SELECT s.siret, s.name, s.active, s.is_public, s.is_provider, s.service_code_required,
       s.engagement_required, s.service_or_engagement_required,
       v.code AS service_code, v.label AS service_label, v.active AS service_active
FROM structures s LEFT JOIN services v ON v.siret = s.siret
ORDER BY s.siret, v.position
"""
# A user upserted without a token keeps the one it has (tokens change through set_token).
UPSERT_USER_KEEP_CREDENTIAL = """
INSERT INTO users (login, name, token_hash, token_lookup) VALUES (:login, :name, :token_hash, :token_lookup)
ON CONFLICT (login) DO UPDATE SET
    name = excluded.name,
    token_hash = CASE WHEN excluded.token_hash IS NULL
                      THEN users.token_hash ELSE excluded.token_hash END,
    token_lookup = CASE WHEN excluded.token_hash IS NULL
                        THEN users.token_lookup ELSE excluded.token_lookup END
"""
UPSERT_TECHNICAL_SIRET = """
INSERT INTO technical_users (login, siret) VALUES (:login, :siret)
ON CONFLICT (login) DO UPDATE SET siret = excluded.siret
"""
DELETE_MEMBERSHIP = "DELETE FROM memberships WHERE login = :login AND siret = :siret"
UPSERT_RULE = """
INSERT INTO partner_rules (code, syntax, rule, position)
VALUES (:code, :syntax, :rule,
        (SELECT COALESCE(MAX(position) + 1, 0) FROM partner_rules WHERE code = :code))
ON CONFLICT (code, syntax) DO UPDATE SET rule = excluded.rule
"""
INSERT_PROFILE_ONCE = """
INSERT INTO profiles (login, siret, profile) VALUES (:login, :siret, :profile)
ON CONFLICT (login, siret, profile) DO NOTHING
"""
DELETE_PROFILE = "DELETE FROM profiles WHERE login = :login AND siret = :siret AND profile = :profile"

# --- retention (purge_flows): :finals and :numbers are JSON arrays ------------------------------------
PURGEABLE = """
SELECT flow_number, blob_key FROM flows
WHERE deposited_at < :before AND status IN (SELECT value FROM json_each(:finals))
"""
# Children first: the findings trigger reads the flow row to decrement its error counters.
PURGE = (
    "DELETE FROM findings WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
    "DELETE FROM invoices WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
    "DELETE FROM status_events WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
    "DELETE FROM event_feed WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
    "DELETE FROM jobs WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
    "DELETE FROM flow_contents WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
    "DELETE FROM flows WHERE flow_number IN (SELECT value FROM json_each(:numbers))",
)
UNREFERENCED_BLOBS = """
SELECT DISTINCT value FROM json_each(:keys) WHERE value NOT IN (SELECT blob_key FROM flows) ORDER BY value
"""


async def _exists(conn: aiosqlite.Connection, query: str, params: dict[str, str]) -> bool:
    return bool(list(await conn.execute_fetchall(query, params)))


async def _require_user(conn: aiosqlite.Connection, login: str) -> None:
    if not await _exists(conn, USER_EXISTS, {"login": login}):
        raise DirectoryEntryNotFound("user", login)


async def _require_structure(conn: aiosqlite.Connection, siret: str) -> None:
    if not await _exists(conn, STRUCTURE_EXISTS, {"siret": siret}):
        raise DirectoryEntryNotFound("structure", siret)


async def find_credential(conn: aiosqlite.Connection, lookup_id: str) -> Credential | None:
    """The user, else the technical user, whose token has ``lookup_id``."""
    for kind, query in (("user", USER_BY_LOOKUP), ("technical", TECHNICAL_BY_LOOKUP)):
        rows = list(await conn.execute_fetchall(query, {"lookup": lookup_id}))
        if rows:
            return Credential(kind, str(rows[0]["login"]), str(rows[0]["token_hash"]))
    return None


async def principal(conn: aiosqlite.Connection, kind: str, login: str) -> Principal | None:
    """The principal of a user, technical user or partner (None when unknown or another kind)."""
    if kind == PrincipalKind.USER.value:
        if not await _exists(conn, USER_EXISTS, {"login": login}):
            return None
        memberships = await conn.execute_fetchall(USER_MEMBERSHIPS, {"login": login})
        follows = await conn.execute_fetchall(USER_PROFILES, {"login": login, "profile": FLOW_FOLLOW_UP})
        return user_principal(login, memberships, follows)
    queries = {
        PrincipalKind.TECHNICAL.value: TECHNICAL_PRINCIPAL,
        PrincipalKind.PARTNER.value: PARTNER_PRINCIPAL,
    }
    if kind not in queries:
        return None
    rows = list(await conn.execute_fetchall(queries[kind], {"login": login}))
    if not rows:
        return None
    return attached_principal(kind, login, rows[0])


async def set_token(conn: aiosqlite.Connection, kind: str, login: str, token_hash: str, lookup_id: str) -> None:
    queries = {
        PrincipalKind.USER.value: SET_USER_CREDENTIAL,
        PrincipalKind.TECHNICAL.value: SET_TECHNICAL_CREDENTIAL,
    }
    if kind not in queries:
        raise ValueError(f"only users and technical users have tokens, not {kind!r}")
    cursor = await conn.execute(queries[kind], {"login": login, "token_hash": token_hash, "lookup": lookup_id})
    if cursor.rowcount != 1:
        raise DirectoryEntryNotFound("user" if kind == PrincipalKind.USER.value else "technical user", login)


async def upsert_structure(conn: aiosqlite.Connection, structure: Structure) -> None:
    await directory_sql.import_directory(conn, DirectoryData(structures=(structure,)))


async def list_structures(conn: aiosqlite.Connection) -> list[Structure]:
    rows: list[sqlite3.Row] = list(await conn.execute_fetchall(ALL_STRUCTURES))
    return list(structures_from_rows(rows).values())


async def upsert_user(conn: aiosqlite.Connection, user: User) -> None:
    params = {
        "login": user.login,
        "name": user.name,
        "token_hash": user.token_hash,
        "token_lookup": user.token_lookup,
    }
    await conn.execute(UPSERT_USER_KEEP_CREDENTIAL, params)


async def set_membership(conn: aiosqlite.Connection, login: str, siret: str, role: Role | None) -> None:
    if role is None:
        await conn.execute(DELETE_MEMBERSHIP, {"login": login, "siret": siret})
        return
    await _require_user(conn, login)
    await _require_structure(conn, siret)
    await conn.execute(directory_sql.UPSERT_MEMBERSHIP, {"login": login, "siret": siret, "role": role.value})


async def upsert_technical_user(conn: aiosqlite.Connection, login: str, siret: str) -> None:
    await _require_structure(conn, siret)
    await conn.execute(UPSERT_TECHNICAL_SIRET, {"login": login, "siret": siret})


async def upsert_partner(conn: aiosqlite.Connection, partner: Partner) -> None:
    await _require_structure(conn, partner.siret)
    await directory_sql.import_directory(conn, DirectoryData(partners=(partner,)))


async def set_rejection_rule(
    conn: aiosqlite.Connection, partner_code: str, syntax: Syntax, rule: RejectionRule
) -> None:
    if not await _exists(conn, PARTNER_EXISTS, {"code": partner_code}):
        raise DirectoryEntryNotFound("partner", partner_code)
    await conn.execute(UPSERT_RULE, {"code": partner_code, "syntax": syntax.value, "rule": rule.value})


async def grant_profile(conn: aiosqlite.Connection, login: str, siret: str, profile: str) -> None:
    await _require_user(conn, login)
    await _require_structure(conn, siret)
    cursor = await conn.execute(INSERT_PROFILE_ONCE, {"login": login, "siret": siret, "profile": profile})
    if cursor.rowcount != 1:
        raise ProfileAlreadyGranted()


async def purge_flows(conn: aiosqlite.Connection, deposited_before: datetime) -> tuple[int, list[str]]:
    """Delete final flows deposited before the date with everything they own (the counters follow by
    trigger); return how many, and the blob keys no remaining flow references."""
    finals = json.dumps(sorted(s.code for s in FINAL_STATUSES))
    rows = list(await conn.execute_fetchall(PURGEABLE, {"before": to_db_time(deposited_before), "finals": finals}))
    if not rows:
        return 0, []
    numbers = json.dumps([str(r["flow_number"]) for r in rows])
    for statement in PURGE:
        await conn.execute(statement, {"numbers": numbers})
    keys = json.dumps([str(r["blob_key"]) for r in rows if r["blob_key"]])  # "": bytes kept in the row
    return len(rows), [str(r[0]) for r in await conn.execute_fetchall(UNREFERENCED_BLOBS, {"keys": keys})]


async def revoke_profile(conn: aiosqlite.Connection, login: str, siret: str, profile: str) -> None:
    cursor = await conn.execute(DELETE_PROFILE, {"login": login, "siret": siret, "profile": profile})
    if cursor.rowcount != 1:
        raise DirectoryEntryNotFound("profile", f"{profile} of {login} on {siret}")


class SqliteAdmin(SqliteAuthFailures):
    """The authentication and administration half of ``SqliteStore`` (see the module docstring; the
    lockouts are ``sqlite_auth``'s)."""

    if TYPE_CHECKING:

        def _read(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

        def _write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def find_credential(self, lookup_id: str) -> Credential | None:
        async with self._read(snapshot=True) as conn:
            return await find_credential(conn, lookup_id)

    async def principal(self, kind: str, login: str) -> Principal | None:
        """The principal of a user, technical user or partner, with its structures and profiles."""
        async with self._read(snapshot=True) as conn:
            return await principal(conn, kind, login)

    async def set_token(self, kind: str, login: str, token_hash: str, lookup_id: str) -> None:
        async with self._write() as conn:
            await set_token(conn, kind, login, token_hash, lookup_id)

    async def upsert_structure(self, structure: Structure) -> None:
        async with self._write() as conn:
            await upsert_structure(conn, structure)

    async def list_structures(self) -> list[Structure]:
        async with self._read() as conn:
            return await list_structures(conn)

    async def upsert_user(self, user: User) -> None:
        async with self._write() as conn:
            await upsert_user(conn, user)

    async def set_membership(self, login: str, siret: str, role: Role | None) -> None:
        async with self._write() as conn:
            await set_membership(conn, login, siret, role)

    async def upsert_technical_user(self, login: str, siret: str) -> None:
        async with self._write() as conn:
            await upsert_technical_user(conn, login, siret)

    async def upsert_partner(self, partner: Partner) -> None:
        async with self._write() as conn:
            await upsert_partner(conn, partner)

    async def set_rejection_rule(self, partner_code: str, syntax: Syntax, rule: RejectionRule) -> None:
        async with self._write() as conn:
            await set_rejection_rule(conn, partner_code, syntax, rule)

    async def grant_profile(self, login: str, siret: str, profile: str) -> None:
        async with self._write() as conn:
            await grant_profile(conn, login, siret, profile)

    async def revoke_profile(self, login: str, siret: str, profile: str) -> None:
        async with self._write() as conn:
            await revoke_profile(conn, login, siret, profile)

    async def purge_flows(self, deposited_before: datetime) -> tuple[int, list[str]]:
        """Delete final flows deposited before the date; return the count and the orphaned blob keys."""
        async with self._write() as conn:
            return await purge_flows(conn, deposited_before)
