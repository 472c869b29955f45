"""Dashboard counters for ``PostgresStore``: per-transaction deltas, applied in one global lock order.

A transaction that inserts a flow, changes a status or adds/removes error findings records deltas here
(``Deltas``, keyed like the counter tables of migration 0002). ``payload`` turns them into the lists that
``fluxdepot_flush`` (migration 0003) writes at the end of the transaction: rows sorted by key, the table
order fixed (flow totals, flow days, error totals, error days; then the feed counter). Every writer
therefore takes counter row locks in the same order: concurrent daemons never deadlock on them, and the
counts change in the very transaction that changes the rows they count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from engine.store.rows import utc


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


def payload(deltas: Deltas) -> dict[str, list[list[Any]]]:
    """The non-zero deltas as the counter lists of ``fluxdepot_flush`` (migration 0003), each sorted by
    key: every writer locks counter rows in the same order."""
    day_rows = sorted((*k, n) for k, n in deltas.flows.items() if n)
    totals: Counter[tuple[str, str, str]] = Counter()
    for issuer, _day, syntax, status, n in day_rows:
        totals[(issuer, syntax, status)] += n
    error_rows = sorted((*k, n) for k, n in deltas.errors.items() if n)
    etotals: Counter[tuple[str, str, str, str]] = Counter()
    for issuer, _day, syntax, code, rule, n in error_rows:
        etotals[(issuer, syntax, code, rule)] += n
    return {
        "ft": [[*k, n] for k, n in sorted(totals.items()) if n],
        "fd": [[issuer, day.isoformat(), *rest] for issuer, day, *rest in day_rows],
        "et": [[*k, n] for k, n in sorted(etotals.items()) if n],
        "ed": [[issuer, day.isoformat(), *rest] for issuer, day, *rest in error_rows],
    }
