"""The directory, credentials, administration and retention of both stores, once, on a backend's ``Database``.

Invariants: importing upserts each entry and replaces what it owns (a structure's services, a partner's
keys and rules), keeping entries absent from the data; a partner whose key belongs to another partner is
refused (``AlreadyExists``, nothing written). A token is found only through its lookup id and returned
with its hash for the caller to verify; a user upserted without a token keeps its token. An entry named
by a membership, a profile, a technical user or a partner must exist (``DirectoryEntryNotFound``);
granting a profile already held raises ``ProfileAlreadyGranted``. A purge deletes only final flows, with
all they own, and their counts (``Transaction.count_*``) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from engine.directory import (
    FLOW_FOLLOW_UP,
    DirectoryData,
    DirectorySnapshot,
    Partner,
    Role,
    Structure,
    User,
    check_partner_keys,
)
from engine.errors import DirectoryEntryNotFound, ProfileAlreadyGranted
from engine.model import KEEP, RejectionRule, Ruleset, RulesetChoice, Syntax
from engine.permissions import Principal, PrincipalKind
from engine.status import FINAL_STATUSES
from engine.store import sql_directory as sql
from engine.store import sql_portal
from engine.store.database import Connection, Database, Transaction
from engine.store.directory_rows import (
    attached_principal,
    known_ruleset,
    partner_from_rows,
    structures_from_rows,
    user_principal,
)
from engine.store.port import Credential
from engine.store.sql import Statement

FINAL_CODES = sorted(s.code for s in FINAL_STATUSES)
_ATTACHED = {PrincipalKind.TECHNICAL.value: sql.TECHNICAL_PRINCIPAL, PrincipalKind.PARTNER.value: sql.PARTNER_PRINCIPAL}
_TOKENS = {PrincipalKind.USER.value: sql.SET_USER_TOKEN, PrincipalKind.TECHNICAL.value: sql.SET_TECHNICAL_TOKEN}


async def import_directory(tx: Transaction, data: DirectoryData) -> None:
    """Upsert every entry of ``data`` inside ``tx``."""
    if data.partners:  # one key, one partner
        await tx.execute(sql.LOCK_PARTNER_KEYS)
        stored = await tx.rows(sql.ALL_PARTNER_KEYS)
        check_partner_keys(((str(r["code"]), str(r["public_key"])) for r in stored), data.partners)
    for s in data.structures:
        await tx.execute(sql.UPSERT_STRUCTURE, _structure(s))
        await tx.execute(sql.DELETE_SERVICES, {"siret": s.siret})
        services = [
            {"siret": s.siret, "code": v.code, "label": v.label, "active": v.active, "position": i}
            for i, v in enumerate(s.services)
        ]
        await tx.execute_many(sql.INSERT_SERVICE, services)
    await tx.execute_many(sql.UPSERT_USER, [_user(u.login, u.name, u.token_hash, u.token_lookup) for u in data.users])
    await tx.execute_many(
        sql_portal.SET_USER_PASSWORD, [{"login": u.login, "password_hash": u.password_hash} for u in data.users]
    )
    await tx.execute_many(
        sql.UPSERT_MEMBERSHIP, [{"login": m.login, "siret": m.siret, "role": m.role.value} for m in data.memberships]
    )
    await tx.execute_many(
        sql.UPSERT_TECHNICAL_USER,
        [
            {
                "login": t.login,
                "siret": t.siret,
                "token_hash": t.token_hash,
                "token_lookup": t.token_lookup,
                "ruleset": _ruleset_name(t.ruleset),
            }
            for t in data.technical_users
        ],
    )
    for p in data.partners:
        partner = {
            "code": p.code,
            "siret": p.siret,
            "password_hash": p.password_hash,
            "status_files": p.status_files,
            "ruleset": _ruleset_name(p.ruleset),
        }
        await tx.execute(sql.UPSERT_PARTNER, partner)
        await tx.execute(sql.DELETE_PARTNER_KEYS, {"code": p.code})
        await tx.execute(sql.DELETE_PARTNER_RULES, {"code": p.code})
        keys = [{"code": p.code, "position": i, "public_key": key} for i, key in enumerate(p.public_keys)]
        await tx.execute_many(sql.INSERT_PARTNER_KEY, keys)
        rules = [
            {"code": p.code, "syntax": syntax.value, "rule": rule.value, "position": i}
            for i, (syntax, rule) in enumerate(p.rules)
        ]
        await tx.execute_many(sql.INSERT_PARTNER_RULE, rules)
    await tx.execute_many(
        sql.INSERT_PROFILE, [{"login": p.login, "siret": p.siret, "profile": p.profile} for p in data.profiles]
    )


def _structure(s: Structure) -> dict[str, Any]:
    return {
        "siret": s.siret,
        "name": s.name,
        "active": s.active,
        "is_public": s.is_public,
        "is_provider": s.is_provider,
        "service_code_required": s.service_code_required,
        "engagement_required": s.engagement_required,
        "service_or_engagement_required": s.service_or_engagement_required,
    }


def _ruleset_name(ruleset: Ruleset | None) -> str | None:
    return None if ruleset is None else ruleset.value


def _user(login: str, name: str, token_hash: str | None, token_lookup: str | None) -> dict[str, Any]:
    return {"login": login, "name": name, "token_hash": token_hash, "token_lookup": token_lookup}


async def _exists(conn: Connection, statement: Statement, **params: str) -> bool:
    return bool(await conn.value(statement, params))


async def _require_user(conn: Connection, login: str) -> None:
    if not await _exists(conn, sql.USER_EXISTS, login=login):
        raise DirectoryEntryNotFound("user", login)


async def _require_structure(conn: Connection, siret: str) -> None:
    if not await _exists(conn, sql.STRUCTURE_EXISTS, siret=siret):
        raise DirectoryEntryNotFound("structure", siret)


class DirectoryStore:
    """Part of ``engine.store.sql_store.SqlStore``."""

    _db: Database

    # --- directory -----------------------------------------------------------------------------
    async def import_directory(self, data: DirectoryData) -> None:
        """Upsert every entry of ``data`` in one transaction (entries not in ``data`` are kept)."""
        async with self._db.write() as tx:
            await import_directory(tx, data)

    async def _structures(self, sirets: Iterable[str]) -> dict[str, Structure]:
        async with self._db.read() as conn:
            rows = await conn.rows(sql.STRUCTURES_WITH_SERVICES, {"sirets": sorted(set(sirets))})
        return structures_from_rows(rows)

    async def snapshot(self, sirets: Iterable[str]) -> DirectorySnapshot:
        return DirectorySnapshot(await self._structures(sirets))

    async def get_structure(self, siret: str) -> Structure | None:
        return (await self._structures([siret])).get(siret)

    async def get_partner(self, code: str) -> Partner | None:
        """A partner with its keys and rules, read in one snapshot."""
        async with self._db.snapshot() as conn:
            heads = await conn.rows(sql.GET_PARTNER, {"code": code})
            if not heads:
                return None
            keys = await conn.rows(sql.PARTNER_KEYS, {"code": code})
            rules = await conn.rows(sql.PARTNER_RULES, {"code": code})
        return partner_from_rows(heads[0], keys, rules)

    async def depositor_rulesets(self) -> dict[str, Ruleset]:
        """The depositors (``tech:<login>``, ``partner:<code>``) with a ruleset of their own, and that ruleset."""
        async with self._db.read() as conn:
            rows = await conn.rows(sql.DEPOSITOR_RULESETS)
        chosen = {str(r["depositor"]): known_ruleset(r["ruleset"]) for r in rows}
        return {depositor: ruleset for depositor, ruleset in chosen.items() if ruleset is not None}

    async def list_structures(self) -> list[Structure]:
        async with self._db.read() as conn:
            return list(structures_from_rows(await conn.rows(sql.ALL_STRUCTURES)).values())

    # --- credentials and principals ------------------------------------------------------------
    async def find_credential(self, lookup_id: str) -> Credential | None:
        """The user, else the technical user, whose token has ``lookup_id``."""
        async with self._db.snapshot() as conn:
            for kind, statement in (("user", sql.USER_BY_LOOKUP), ("technical", sql.TECHNICAL_BY_LOOKUP)):
                rows = await conn.rows(statement, {"lookup": lookup_id})
                if rows:
                    return Credential(kind, str(rows[0]["login"]), str(rows[0]["token_hash"]))
        return None

    async def principal(self, kind: str, login: str) -> Principal | None:
        """The principal of a user, technical user or partner (None when unknown or another kind)."""
        async with self._db.snapshot() as conn:
            if kind == PrincipalKind.USER.value:
                if not await _exists(conn, sql.USER_EXISTS, login=login):
                    return None
                memberships = await conn.rows(sql.USER_MEMBERSHIPS, {"login": login})
                follows = await conn.rows(sql.USER_PROFILES, {"login": login, "profile": FLOW_FOLLOW_UP})
                return user_principal(login, memberships, follows)
            if kind not in _ATTACHED:
                return None
            rows = await conn.rows(_ATTACHED[kind], {"login": login})
        return attached_principal(kind, login, rows[0]) if rows else None

    async def set_token(self, kind: str, login: str, token_hash: str, lookup_id: str) -> None:
        """Replace the token of a user or technical user (``DirectoryEntryNotFound`` if unknown)."""
        if kind not in _TOKENS:
            raise ValueError(f"only users and technical users have tokens, not {kind!r}")
        async with self._db.write() as tx:
            params = {"login": login, "token_hash": token_hash, "lookup": lookup_id}
            if await tx.execute(_TOKENS[kind], params) != 1:
                raise DirectoryEntryNotFound("user" if kind == PrincipalKind.USER.value else "technical user", login)

    # --- single entries ------------------------------------------------------------------------
    async def upsert_structure(self, structure: Structure) -> None:
        async with self._db.write() as tx:
            await import_directory(tx, DirectoryData(structures=(structure,)))

    async def upsert_user(self, user: User) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                sql.UPSERT_USER_KEEP_TOKEN, _user(user.login, user.name, user.token_hash, user.token_lookup)
            )

    async def set_membership(self, login: str, siret: str, role: Role | None) -> None:
        """Attach ``login`` to ``siret`` with ``role``, or detach it when ``role`` is None."""
        async with self._db.write() as tx:
            if role is None:
                await tx.execute(sql.DELETE_MEMBERSHIP, {"login": login, "siret": siret})
                return
            await _require_user(tx, login)
            await _require_structure(tx, siret)
            await tx.execute(sql.UPSERT_MEMBERSHIP, {"login": login, "siret": siret, "role": role.value})

    async def upsert_technical_user(self, login: str, siret: str, *, ruleset: RulesetChoice = KEEP) -> None:
        async with self._db.write() as tx:
            await _require_structure(tx, siret)
            if ruleset is KEEP:
                await tx.execute(sql.UPSERT_TECHNICAL_SIRET, {"login": login, "siret": siret})
            else:
                params = {"login": login, "siret": siret, "ruleset": ruleset.value if ruleset else None}
                await tx.execute(sql.UPSERT_TECHNICAL_RULESET, params)

    async def upsert_partner(self, partner: Partner) -> None:
        async with self._db.write() as tx:
            await _require_structure(tx, partner.siret)
            await import_directory(tx, DirectoryData(partners=(partner,)))

    async def set_rejection_rule(self, partner_code: str, syntax: Syntax, rule: RejectionRule) -> None:
        async with self._db.write() as tx:
            if not await _exists(tx, sql.PARTNER_EXISTS, code=partner_code):
                raise DirectoryEntryNotFound("partner", partner_code)
            await tx.execute(sql.UPSERT_RULE, {"code": partner_code, "syntax": syntax.value, "rule": rule.value})

    async def grant_profile(self, login: str, siret: str, profile: str) -> None:
        """Raise ``ProfileAlreadyGranted`` ("The user already has the selected subscription") when held."""
        async with self._db.write() as tx:
            await _require_user(tx, login)
            await _require_structure(tx, siret)
            if await tx.execute(sql.INSERT_PROFILE, {"login": login, "siret": siret, "profile": profile}) != 1:
                raise ProfileAlreadyGranted()

    async def revoke_profile(self, login: str, siret: str, profile: str) -> None:
        """Raise ``DirectoryEntryNotFound`` when the user does not hold it."""
        async with self._db.write() as tx:
            if await tx.execute(sql.DELETE_PROFILE, {"login": login, "siret": siret, "profile": profile}) != 1:
                raise DirectoryEntryNotFound("profile", f"{profile} of {login} on {siret}")

    # --- retention -----------------------------------------------------------------------------
    async def purge_flows(self, deposited_before: datetime) -> tuple[int, list[str]]:
        """Delete final flows deposited before the date with everything they own; return how many, and the
        blob keys no remaining flow references (the caller deletes them)."""
        async with self._db.write() as tx:
            rows = await tx.rows(sql.PURGEABLE, {"before": deposited_before, "finals": FINAL_CODES})
            if not rows:
                return 0, []
            numbers = {"numbers": [str(r["flow_number"]) for r in rows]}
            for e in await tx.rows(sql.PURGE_FINDINGS, numbers):  # PostgreSQL's deleted findings
                if e["severity"] == "error":
                    at = tx.decode.time(e["deposited_at"])
                    tx.count_error(str(e["issuer_siret"]), at, str(e["syntax"]), str(e["code"]), e["rule"], -1)
            for statement in sql.PURGE:
                await tx.execute(statement, numbers)
            for r in rows:
                at = tx.decode.time(r["deposited_at"])
                tx.count_flow(str(r["issuer_siret"]), at, str(r["syntax"]), str(r["status"]), -1)
            keys = [str(r["blob_key"]) for r in rows if r["blob_key"]]  # "": bytes kept in the row
            return len(rows), [str(r["blob_key"]) for r in await tx.rows(sql.UNREFERENCED_BLOBS, {"keys": keys})]
