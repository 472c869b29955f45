"""Dashboard counters for ``PostgresStore``: per-transaction deltas, applied in one global lock order.

A transaction that inserts a flow, changes a status or adds/removes error findings records deltas here
(``FlowDelta``/``ErrorDelta`` keyed like the counter tables of migration 0002). ``apply`` writes them at
the end of the transaction, one statement per table, rows sorted by key, and the table order fixed
(flow totals, flow days, error totals, error days; then the feed counter in ``postgres_status``). Every
writer therefore takes counter row locks in the same order: concurrent daemons never deadlock on them,
and the counts change in the very transaction that changes the rows they count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from engine.store.postgres_rows import utc

ADD_FLOW_TOTALS = """
INSERT INTO flow_totals AS t (issuer_siret, syntax, status, n)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
ON CONFLICT (issuer_siret, syntax, status) DO UPDATE SET n = t.n + excluded.n
"""
ADD_FLOW_DAYS = """
INSERT INTO flow_day_counts AS t (issuer_siret, day, syntax, status, n)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[])
ON CONFLICT (issuer_siret, day, syntax, status) DO UPDATE SET n = t.n + excluded.n
"""
ADD_ERROR_TOTALS = """
INSERT INTO error_totals AS t (issuer_siret, syntax, code, rule, n)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
ON CONFLICT (issuer_siret, syntax, code, rule) DO UPDATE SET n = t.n + excluded.n
"""
ADD_ERROR_DAYS = """
INSERT INTO error_day_counts AS t (issuer_siret, day, syntax, code, rule, n)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], $6::bigint[])
ON CONFLICT (issuer_siret, day, syntax, code, rule) DO UPDATE SET n = t.n + excluded.n
"""


def deposit_day(deposited_at: datetime) -> date:
    """The counters' day of a flow: the UTC date of its deposit."""
    return utc(deposited_at).date()


@dataclass
class Deltas:
    """What one transaction changes in the counters."""

    flows: Counter[tuple[str, date, str, str]] = field(default_factory=Counter)  # issuer, day, syntax, status
    errors: Counter[tuple[str, date, str, str, str]] = field(default_factory=Counter)  # + syntax, code, rule

    def flow(self, issuer: str, deposited_at: datetime, syntax: str, status: str, n: int) -> None:
        self.flows[(issuer, deposit_day(deposited_at), syntax, status)] += n

    def error(self, issuer: str, deposited_at: datetime, syntax: str, code: str, rule: str | None, n: int) -> None:
        self.errors[(issuer, deposit_day(deposited_at), syntax, code, rule or "")] += n


def _columns(rows: Iterable[tuple[Any, ...]], width: int) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for i, value in enumerate(row):
            cols[i].append(value)
    return cols


async def apply(conn: Any, deltas: Deltas) -> None:
    """Write the non-zero deltas, tables and rows in the fixed order (see the module docstring)."""
    day_rows = sorted((*k, n) for k, n in deltas.flows.items() if n)
    if day_rows:
        totals: Counter[tuple[str, str, str]] = Counter()
        for issuer, _day, syntax, status, n in day_rows:
            totals[(issuer, syntax, status)] += n
        total_rows = sorted((*k, n) for k, n in totals.items() if n)
        if total_rows:
            await conn.execute(ADD_FLOW_TOTALS, *_columns(total_rows, 4))
        await conn.execute(ADD_FLOW_DAYS, *_columns(day_rows, 5))
    error_rows = sorted((*k, n) for k, n in deltas.errors.items() if n)
    if error_rows:
        etotals: Counter[tuple[str, str, str, str]] = Counter()
        for issuer, _day, syntax, code, rule, n in error_rows:
            etotals[(issuer, syntax, code, rule)] += n
        etotal_rows = sorted((*k, n) for k, n in etotals.items() if n)
        if etotal_rows:
            await conn.execute(ADD_ERROR_TOTALS, *_columns(etotal_rows, 5))
        await conn.execute(ADD_ERROR_DAYS, *_columns(error_rows, 6))
