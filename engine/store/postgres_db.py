"""PostgreSQL plumbing for ``PostgresStore``: error wrapping, write transactions, numbered migrations.

Invariants:

* Driver errors leave this package only through ``wrap()``, as ``engine.errors.StoreError`` children with
  the driver error as ``__cause__``. A lost or refused connection (server down, restarting, shutting
  down, too many clients) is ``StoreUnavailable`` whose message says the database is unreachable.
* A write transaction (``Tx``) buffers the status events it appends and writes them with its last
  statement, which also takes the feed counter's row lock (``engine.store.postgres_status``): the lock is
  held only for that statement and the ``COMMIT``.
* Migrations are the files ``migrations/postgres/NNNN_name.sql``, applied in order under a session-level
  advisory lock (two daemons starting together run them once, one after the other), each in its own
  transaction together with its ``schema_migrations`` row. A database migrated by a newer fluxdepot is
  refused rather than misread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg

from engine.errors import StorageFull, StoreError, StoreUnavailable
from engine.store.postgres_counters import Deltas

# Advisory lock keys (one bigint namespace per database). Arbitrary but fixed: 'fxd' + purpose.
MIGRATION_LOCK_KEY = 0x66786400_00000001

_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_LOCK = "SELECT pg_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1)"
_APPLIED = "SELECT version FROM schema_migrations ORDER BY version"
_RECORD = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# SQLSTATEs meaning "the server is not there for us right now" (class 08 is matched by prefix).
_UNAVAILABLE_STATES = {
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down)
    "53300",  # too_many_connections
    "25006",  # read_only_sql_transaction (a standby answered: not our primary)
}
_FULL_STATES = {"53100"}  # disk_full

# InternalClientError: a pooled connection left mid-operation by a connection lost under it (asyncpg).
DriverError = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


def unreachable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the database is unreachable: {type(exc).__name__}: {exc}")


def translate(exc: BaseException) -> StoreError:
    """The ``engine.errors`` type for a driver error (the caller chains it as ``__cause__``)."""
    state = str(getattr(exc, "sqlstate", "") or "")
    if isinstance(exc, (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InternalClientError)):
        return unreachable(exc)
    if state.startswith("08") or state in _UNAVAILABLE_STATES:
        return unreachable(exc)
    if state in _FULL_STATES:
        return StorageFull()
    if isinstance(exc, asyncpg.InterfaceError) and (
        "closed" in str(exc) or "closing" in str(exc) or "released" in str(exc)
    ):
        return unreachable(exc)
    return StoreError(f"the store failed: {type(exc).__name__}: {exc}")


@contextmanager
def wrap() -> Iterator[None]:
    """Turn driver errors raised inside the block into ``engine.errors`` types (once: engine errors
    raised inside pass through untouched)."""
    try:
        yield
    except DriverError as exc:
        raise translate(exc) from exc


async def end_open_transaction(conn: Any) -> None:
    """The pool's reset on release, replacing the driver's default reset query (``RESET ALL; UNLISTEN *;
    CLOSE ALL; pg_advisory_unlock_all()``, one more round trip per release) for session state the pool's
    connections never take: LISTEN and session advisory locks live on dedicated connections
    (``postgres_listen``, ``postgres_singletons``; ``migrate`` unlocks its own), settings and cursors are
    transaction-local (``SET LOCAL``). The driver rolls back a transaction left open before calling this;
    the check below only keeps that true should it stop doing so."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def is_unique_violation(exc: BaseException, constraint: str) -> bool:
    return isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == constraint


@dataclass
class PendingEvent:
    """A status event computed in a transaction, written (with its feed cursor) at its end."""

    flow_number: str
    seq: int
    status: str
    event: str | None
    at: datetime
    actor: str
    detail: str | None
    prev_hash: str
    hash: str


@dataclass
class Tx:
    """One write transaction: its connection; the events and counter deltas it writes before ``COMMIT``."""

    conn: Any  # asyncpg.Connection (untyped driver)
    events: list[PendingEvent] = field(default_factory=list)
    counts: Deltas = field(default_factory=Deltas)

    def last_pending(self, flow_number: str) -> PendingEvent | None:
        for ev in reversed(self.events):
            if ev.flow_number == flow_number:
                return ev
        return None


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    script: str


def load_migrations() -> list[Migration]:
    """The packaged PostgreSQL migrations, in version order."""
    folder = resources.files("engine.store").joinpath("migrations", "postgres")
    found: list[Migration] = []
    for entry in folder.iterdir():
        m = _MIGRATION_FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions in {versions}")
    return found


async def migrate(conn: Any) -> list[int]:
    """Apply pending migrations on ``conn`` under the migration advisory lock; return those applied now.

    The lock is session-level (held across the per-migration transactions) and always released, even
    when a migration fails (its transaction rolls back; the next opener retries it).
    """
    migrations = load_migrations()
    known = migrations[-1].version if migrations else 0
    applied_now: list[int] = []
    await conn.execute(_LOCK, MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_MIGRATIONS)
        applied = {int(r["version"]) for r in await conn.fetch(_APPLIED)}
        if applied and max(applied) > known:
            raise StoreError(f"the database schema is version {max(applied)}; this fluxdepot knows up to {known}")
        for mig in migrations:
            if mig.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(mig.script)
                await conn.execute(_RECORD, mig.version, mig.name)
            applied_now.append(mig.version)
    finally:
        if not conn.is_closed():
            await conn.execute(_UNLOCK, MIGRATION_LOCK_KEY)
    return applied_now
