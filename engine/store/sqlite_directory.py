"""Directory persistence for ``SqliteStore``: structures with services, users, memberships, technical users,
partners with keys and rules, profiles.

The functions run inside a transaction the caller holds (``SqliteStore`` takes its locks). Importing
upserts each entry and replaces its owned children (a structure's services, a partner's keys and rules);
entries absent from the imported data are kept. Partners are refused (``AlreadyExists``, nothing written)
when one of their keys belongs to another partner (``engine.directory.check_partner_keys``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import aiosqlite

from engine.directory import DirectoryData, Partner, Structure, check_partner_keys
from engine.store.directory_rows import partner_from_rows, structures_from_rows

UPSERT_STRUCTURE = """
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
"""
DELETE_SERVICES = "DELETE FROM services WHERE siret = :siret"
INSERT_SERVICE = """
INSERT INTO services (siret, code, label, active, position) VALUES (:siret, :code, :label, :active, :position)
"""
UPSERT_USER = """
INSERT INTO users (login, name, token_hash, token_lookup) VALUES (:login, :name, :token_hash, :token_lookup)
ON CONFLICT (login) DO UPDATE SET
    name = excluded.name, token_hash = excluded.token_hash, token_lookup = excluded.token_lookup
"""
UPSERT_MEMBERSHIP = """
INSERT INTO memberships (login, siret, role) VALUES (:login, :siret, :role)
ON CONFLICT (login, siret) DO UPDATE SET role = excluded.role
"""
UPSERT_TECHNICAL_USER = """
INSERT INTO technical_users (login, siret, token_hash, token_lookup)
VALUES (:login, :siret, :token_hash, :token_lookup)
ON CONFLICT (login) DO UPDATE SET
    siret = excluded.siret, token_hash = excluded.token_hash, token_lookup = excluded.token_lookup
"""
UPSERT_PARTNER = """
INSERT INTO partners (code, siret, password_hash, status_files)
VALUES (:code, :siret, :password_hash, :status_files)
ON CONFLICT (code) DO UPDATE SET
    siret = excluded.siret, password_hash = excluded.password_hash, status_files = excluded.status_files
"""
ALL_PARTNER_KEYS = "SELECT code, public_key FROM partner_keys"
DELETE_PARTNER_KEYS = "DELETE FROM partner_keys WHERE code = :code"
DELETE_PARTNER_RULES = "DELETE FROM partner_rules WHERE code = :code"
INSERT_PARTNER_KEY = "INSERT INTO partner_keys (code, position, public_key) VALUES (:code, :position, :public_key)"
INSERT_PARTNER_RULE = (
    "INSERT INTO partner_rules (code, syntax, rule, position) VALUES (:code, :syntax, :rule, :position)"
)
INSERT_PROFILE = """
INSERT INTO profiles (login, siret, profile) VALUES (:login, :siret, :profile)
ON CONFLICT (login, siret, profile) DO NOTHING
"""

# :sirets is a JSON array; one statement so a structure and its services come from one snapshot.
STRUCTURES_WITH_SERVICES = """
SELECT s.siret, s.name, s.active, s.is_public, s.is_provider, s.service_code_required,
       s.engagement_required, s.service_or_engagement_required,
       v.code AS service_code, v.label AS service_label, v.active AS service_active
FROM structures s LEFT JOIN services v ON v.siret = s.siret
WHERE s.siret IN (SELECT value FROM json_each(:sirets))
ORDER BY s.siret, v.position
"""
GET_PARTNER = "SELECT code, siret, password_hash, status_files FROM partners WHERE code = :code"
PARTNER_KEYS = "SELECT public_key FROM partner_keys WHERE code = :code ORDER BY position"
PARTNER_RULES = "SELECT syntax, rule FROM partner_rules WHERE code = :code ORDER BY position"


def _structure_params(s: Structure) -> dict[str, Any]:
    return {
        "siret": s.siret,
        "name": s.name,
        "active": int(s.active),
        "is_public": int(s.is_public),
        "is_provider": int(s.is_provider),
        "service_code_required": int(s.service_code_required),
        "engagement_required": int(s.engagement_required),
        "service_or_engagement_required": int(s.service_or_engagement_required),
    }


async def import_directory(conn: aiosqlite.Connection, data: DirectoryData) -> None:
    """Upsert every entry of ``data`` (inside the caller's write transaction)."""
    if data.partners:  # one key, one partner (the write transaction holds SQLite's only writer lock)
        stored = await conn.execute_fetchall(ALL_PARTNER_KEYS)
        check_partner_keys(((str(r["code"]), str(r["public_key"])) for r in stored), data.partners)
    for s in data.structures:
        await conn.execute(UPSERT_STRUCTURE, _structure_params(s))
        await conn.execute(DELETE_SERVICES, {"siret": s.siret})
        await conn.executemany(
            INSERT_SERVICE,
            [
                {"siret": s.siret, "code": v.code, "label": v.label, "active": int(v.active), "position": i}
                for i, v in enumerate(s.services)
            ],
        )
    await conn.executemany(
        UPSERT_USER,
        [
            {"login": u.login, "name": u.name, "token_hash": u.token_hash, "token_lookup": u.token_lookup}
            for u in data.users
        ],
    )
    await conn.executemany(
        UPSERT_MEMBERSHIP,
        [{"login": m.login, "siret": m.siret, "role": m.role.value} for m in data.memberships],
    )
    await conn.executemany(
        UPSERT_TECHNICAL_USER,
        [
            {"login": t.login, "siret": t.siret, "token_hash": t.token_hash, "token_lookup": t.token_lookup}
            for t in data.technical_users
        ],
    )
    for p in data.partners:
        await conn.execute(
            UPSERT_PARTNER,
            {
                "code": p.code,
                "siret": p.siret,
                "password_hash": p.password_hash,
                "status_files": int(p.status_files),
            },
        )
        await conn.execute(DELETE_PARTNER_KEYS, {"code": p.code})
        await conn.execute(DELETE_PARTNER_RULES, {"code": p.code})
        await conn.executemany(
            INSERT_PARTNER_KEY,
            [{"code": p.code, "position": i, "public_key": key} for i, key in enumerate(p.public_keys)],
        )
        await conn.executemany(
            INSERT_PARTNER_RULE,
            [
                {"code": p.code, "syntax": syntax.value, "rule": rule.value, "position": i}
                for i, (syntax, rule) in enumerate(p.rules)
            ],
        )
    await conn.executemany(
        INSERT_PROFILE,
        [{"login": p.login, "siret": p.siret, "profile": p.profile} for p in data.profiles],
    )


async def load_structures(conn: aiosqlite.Connection, sirets: Iterable[str]) -> dict[str, Structure]:
    rows = await conn.execute_fetchall(STRUCTURES_WITH_SERVICES, {"sirets": json.dumps(sorted(set(sirets)))})
    return structures_from_rows(rows)


async def load_partner(conn: aiosqlite.Connection, code: str) -> Partner | None:
    """Read a partner with its keys and rules (the caller holds a read transaction for consistency)."""
    heads = list(await conn.execute_fetchall(GET_PARTNER, {"code": code}))
    if not heads:
        return None
    head = heads[0]
    keys = await conn.execute_fetchall(PARTNER_KEYS, {"code": code})
    rules = await conn.execute_fetchall(PARTNER_RULES, {"code": code})
    return partner_from_rows(head, keys, rules)
