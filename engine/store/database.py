"""What the shared store code needs from a backend: connections that run named statements (``engine.store.sql``),
and the numbered migrations each backend applies (``migration_files``).

``SqlStore`` (``engine.store.sql_store``) implements the reads, the directory, the administration, the
lockouts and the monitoring once, on a ``Database``; each backend gives its own (``sqlite_database``,
``postgres_db``) and keeps its write paths for flows.

Invariants every backend keeps:

* Parameters are Python values, encoded by the connection: datetimes (aware; a naive one is refused
  with ``ValueError``), dates, booleans, lists (of scalars, or of lists on SQLite), None. Parameters a
  statement does not name are ignored.
* Rows read by column name (``engine.store.rows.Row``); ``decode`` reads their timestamps and name lists.
* Driver errors leave a connection only as ``engine.errors.StoreError`` children, driver error as cause.
* ``write()`` is one transaction, committed when the block ends normally, rolled back otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Protocol

from engine.errors import StoreError
from engine.store.rows import Row, RowReader
from engine.store.sql import NO_PARAMS, Params, Statement


class Connection(Protocol):
    """One connection (or read transaction) of a backend."""

    @property
    def decode(self) -> RowReader: ...

    async def rows(self, statement: Statement, params: Params = NO_PARAMS) -> Sequence[Row]:
        """Every row of ``statement`` (none when the dialect has no text for it)."""

    async def value(self, statement: Statement, params: Params = NO_PARAMS) -> Any:
        """The first column of the first row, None when there is no row."""


class Transaction(Connection, Protocol):
    """One write transaction."""

    async def execute(self, statement: Statement, params: Params = NO_PARAMS) -> int:
        """Run ``statement``; how many rows it changed (0 when the dialect has no text for it)."""

    async def execute_many(self, statement: Statement, params: Sequence[Params]) -> None: ...

    def count_flow(self, issuer: str, deposited_at: datetime, syntax: str, status: str, n: int) -> None:
        """Count ``n`` flows in (or out) of the dashboard counters: PostgreSQL keeps them so; SQLite's
        triggers do it themselves (a no-op there)."""

    def count_error(
        self, issuer: str, deposited_at: datetime, syntax: str, code: str, rule: str | None, n: int
    ) -> None: ...


class Database(Protocol):
    """A backend's connections: ``read`` (one statement is one snapshot), ``snapshot`` (several
    statements, one snapshot), ``write``. ``custom_plans``: PostgreSQL plans each statement for its
    parameters, which the ``Where`` statements' unused filters need (``engine.store.sql``)."""

    def read(self, *, custom_plans: bool = False) -> AbstractAsyncContextManager[Connection]: ...

    def snapshot(self, *, custom_plans: bool = False) -> AbstractAsyncContextManager[Connection]: ...

    def write(self) -> AbstractAsyncContextManager[Transaction]: ...


_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str
    text: str


def migration_files(dialect: str) -> list[MigrationFile]:
    """The packaged migrations ``migrations/<dialect>/NNNN_name.sql``, in version order (two files of one
    version are refused)."""
    folder = resources.files("engine.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        m = _MIGRATION_FILE.match(entry.name)
        if m:
            found.append(MigrationFile(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions in {versions}")
    return found
