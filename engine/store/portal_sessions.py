"""The web portal's part of both stores: users' password hashes, server-side sessions and the members of
a structure (``engine.store.sql_portal``; migration 0009).

Sessions are rows keyed by the SHA-256 of the cookie's random id: reading the table never yields a usable
cookie. Expiry is decided by the caller (``engine.services.portal_auth``) from the row's timestamps;
``delete_expired_sessions`` only tidies the table.
"""

from __future__ import annotations

from datetime import datetime

from engine.directory import Role
from engine.store import sql_portal as sql
from engine.store.database import Database
from engine.store.port import MemberRecord, SessionRecord


class PortalSessions:
    """Part of ``engine.store.sql_store.SqlStore``."""

    _db: Database

    async def user_password_hash(self, login: str) -> str | None:
        async with self._db.read() as conn:
            value = await conn.value(sql.USER_PASSWORD, {"login": login})
        return str(value) if value else None

    async def create_session(self, id_hash: str, login: str, csrf_secret: str, now: datetime) -> None:
        async with self._db.write() as tx:
            await tx.execute(
                sql.INSERT_SESSION, {"id_hash": id_hash, "login": login, "csrf_secret": csrf_secret, "now": now}
            )

    async def get_session(self, id_hash: str) -> SessionRecord | None:
        async with self._db.read() as conn:
            rows = await conn.rows(sql.GET_SESSION, {"id_hash": id_hash})
            if not rows:
                return None
            row, time = rows[0], conn.decode.time
            return SessionRecord(
                login=str(row["login"]),
                created_at=time(row["created_at"]),
                last_seen_at=time(row["last_seen_at"]),
                csrf_secret=str(row["csrf_secret"]),
            )

    async def touch_session(self, id_hash: str, now: datetime) -> None:
        async with self._db.write() as tx:
            await tx.execute(sql.TOUCH_SESSION, {"id_hash": id_hash, "now": now})

    async def delete_session(self, id_hash: str) -> None:
        async with self._db.write() as tx:
            await tx.execute(sql.DELETE_SESSION, {"id_hash": id_hash})

    async def delete_expired_sessions(self, idle_before: datetime, created_before: datetime) -> int:
        async with self._db.write() as tx:
            return await tx.execute(
                sql.DELETE_EXPIRED_SESSIONS, {"idle_before": idle_before, "created_before": created_before}
            )

    async def structure_members(self, siret: str) -> list[MemberRecord]:
        async with self._db.snapshot() as conn:
            members = await conn.rows(sql.STRUCTURE_MEMBERS, {"siret": siret})
            held: dict[str, list[str]] = {}
            for row in await conn.rows(sql.STRUCTURE_PROFILES, {"siret": siret}):
                held.setdefault(str(row["login"]), []).append(str(row["profile"]))
        return [
            MemberRecord(
                login=str(r["login"]),
                name=str(r["name"]),
                role=Role(str(r["role"])),
                profiles=tuple(held.get(str(r["login"]), ())),
            )
            for r in members
        ]
