"""Directory persistence for ``PostgresStore`` (as ``sqlite_directory``): structures with services, users,
memberships, technical users, partners with keys and rules, profiles.

The functions run on a connection inside a transaction the caller holds. Importing upserts each entry and
replaces its owned children (a structure's services, a partner's keys and rules); entries absent from
the imported data are kept. Partners are refused (``AlreadyExists``, nothing written) when one of their
keys belongs to another partner (``engine.directory.check_partner_keys``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.directory import DirectoryData, Partner, Structure, check_partner_keys
from engine.store.directory_rows import partner_from_rows, structures_from_rows

# $1 siret, $2 name, $3 active, $4 is_public, $5 is_provider, $6 service_code_required,
# $7 engagement_required, $8 service_or_engagement_required
UPSERT_STRUCTURE = """
INSERT INTO structures (
    siret, name, active, is_public, is_provider, service_code_required, engagement_required,
    service_or_engagement_required
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (siret) DO UPDATE SET
    name = excluded.name, active = excluded.active, is_public = excluded.is_public,
    is_provider = excluded.is_provider, service_code_required = excluded.service_code_required,
    engagement_required = excluded.engagement_required,
    service_or_engagement_required = excluded.service_or_engagement_required
"""
DELETE_SERVICES = "DELETE FROM services WHERE siret = $1"
INSERT_SERVICE = "INSERT INTO services (siret, code, label, active, position) VALUES ($1, $2, $3, $4, $5)"
# $1 login, $2 name, $3 token_hash, $4 token_lookup
UPSERT_USER = """
INSERT INTO users (login, name, token_hash, token_lookup) VALUES ($1, $2, $3, $4)
ON CONFLICT (login) DO UPDATE SET
    name = excluded.name, token_hash = excluded.token_hash, token_lookup = excluded.token_lookup
"""
UPSERT_MEMBERSHIP = """
INSERT INTO memberships (login, siret, role) VALUES ($1, $2, $3)
ON CONFLICT (login, siret) DO UPDATE SET role = excluded.role
"""
# $1 login, $2 siret, $3 token_hash, $4 token_lookup
UPSERT_TECHNICAL_USER = """
INSERT INTO technical_users (login, siret, token_hash, token_lookup) VALUES ($1, $2, $3, $4)
ON CONFLICT (login) DO UPDATE SET
    siret = excluded.siret, token_hash = excluded.token_hash, token_lookup = excluded.token_lookup
"""
UPSERT_PARTNER = """
INSERT INTO partners (code, siret, password_hash, status_files) VALUES ($1, $2, $3, $4)
ON CONFLICT (code) DO UPDATE SET
    siret = excluded.siret, password_hash = excluded.password_hash, status_files = excluded.status_files
"""
# Self-conflicting, so two transactions writing partners check their keys one after the other; SFTP logins
# still read the keys meanwhile.
LOCK_PARTNER_KEYS = "LOCK TABLE partner_keys IN SHARE ROW EXCLUSIVE MODE"
ALL_PARTNER_KEYS = "SELECT code, public_key FROM partner_keys"
DELETE_PARTNER_KEYS = "DELETE FROM partner_keys WHERE code = $1"
DELETE_PARTNER_RULES = "DELETE FROM partner_rules WHERE code = $1"
INSERT_PARTNER_KEY = "INSERT INTO partner_keys (code, position, public_key) VALUES ($1, $2, $3)"
INSERT_PARTNER_RULE = "INSERT INTO partner_rules (code, syntax, rule, position) VALUES ($1, $2, $3, $4)"
INSERT_PROFILE = """
INSERT INTO profiles (login, siret, profile) VALUES ($1, $2, $3)
ON CONFLICT (login, siret, profile) DO NOTHING
"""

_STRUCTURE_COLUMNS = """
SELECT s.siret, s.name, s.active, s.is_public, s.is_provider, s.service_code_required,
       s.engagement_required, s.service_or_engagement_required,
       v.code AS service_code, v.label AS service_label, v.active AS service_active
FROM structures s LEFT JOIN services v ON v.siret = s.siret
"""
# $1 sirets; one statement, so a structure and its services come from one snapshot.
STRUCTURES_WITH_SERVICES = _STRUCTURE_COLUMNS + "WHERE s.siret = ANY ($1::text[]) ORDER BY s.siret, v.position"
ALL_STRUCTURES = _STRUCTURE_COLUMNS + "ORDER BY s.siret, v.position"
GET_PARTNER = "SELECT code, siret, password_hash, status_files FROM partners WHERE code = $1"
PARTNER_KEYS = "SELECT public_key FROM partner_keys WHERE code = $1 ORDER BY position"
PARTNER_RULES = "SELECT syntax, rule FROM partner_rules WHERE code = $1 ORDER BY position"


def structure_args(s: Structure) -> tuple[Any, ...]:
    return (
        s.siret,
        s.name,
        s.active,
        s.is_public,
        s.is_provider,
        s.service_code_required,
        s.engagement_required,
        s.service_or_engagement_required,
    )


async def import_directory(conn: Any, data: DirectoryData) -> None:
    """Upsert every entry of ``data`` (inside the caller's transaction)."""
    if data.partners:  # one key, one partner; locked before any row, so writers queue here
        await conn.execute(LOCK_PARTNER_KEYS)
        stored = await conn.fetch(ALL_PARTNER_KEYS)
        check_partner_keys(((str(r["code"]), str(r["public_key"])) for r in stored), data.partners)
    for s in data.structures:
        await conn.execute(UPSERT_STRUCTURE, *structure_args(s))
        await conn.execute(DELETE_SERVICES, s.siret)
        if s.services:
            await conn.executemany(
                INSERT_SERVICE, [(s.siret, v.code, v.label, v.active, i) for i, v in enumerate(s.services)]
            )
    if data.users:
        await conn.executemany(UPSERT_USER, [(u.login, u.name, u.token_hash, u.token_lookup) for u in data.users])
    if data.memberships:
        await conn.executemany(UPSERT_MEMBERSHIP, [(m.login, m.siret, m.role.value) for m in data.memberships])
    if data.technical_users:
        await conn.executemany(
            UPSERT_TECHNICAL_USER,
            [(t.login, t.siret, t.token_hash, t.token_lookup) for t in data.technical_users],
        )
    for p in data.partners:
        await conn.execute(UPSERT_PARTNER, p.code, p.siret, p.password_hash, p.status_files)
        await conn.execute(DELETE_PARTNER_KEYS, p.code)
        await conn.execute(DELETE_PARTNER_RULES, p.code)
        if p.public_keys:
            await conn.executemany(INSERT_PARTNER_KEY, [(p.code, i, key) for i, key in enumerate(p.public_keys)])
        if p.rules:
            await conn.executemany(
                INSERT_PARTNER_RULE,
                [(p.code, syntax.value, rule.value, i) for i, (syntax, rule) in enumerate(p.rules)],
            )
    if data.profiles:
        await conn.executemany(INSERT_PROFILE, [(p.login, p.siret, p.profile) for p in data.profiles])


async def load_structures(conn: Any, sirets: Iterable[str]) -> dict[str, Structure]:
    return structures_from_rows(await conn.fetch(STRUCTURES_WITH_SERVICES, sorted(set(sirets))))


async def load_partner(conn: Any, code: str) -> Partner | None:
    """Read a partner with its keys and rules in one statement snapshot each (keys and rules are
    replaced together in one transaction, so a reader may at worst see them one import apart)."""
    head = await conn.fetchrow(GET_PARTNER, code)
    if head is None:
        return None
    keys = await conn.fetch(PARTNER_KEYS, code)
    rules = await conn.fetch(PARTNER_RULES, code)
    return partner_from_rows(head, keys, rules)
