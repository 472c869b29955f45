"""What both backends' flow writes compute alike: the change and verdict to record, which statuses keep a
job, and the hash-chained events.

Each backend runs its own write path (SQLite's writer thread and deposits' writer process, PostgreSQL's
transactions with their counters); the rows they write are made here, once.

Invariants: a flow has a job row exactly while its status is in ``JOB_STATUSES``; event ``seq`` of a
flow hashes (``engine.audit.event_hash``) the previous event's hash (``GENESIS`` for seq 1) and
``at.isoformat()`` of its UTC time, exactly what ``Store.history`` gives back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from engine.audit import GENESIS, event_hash
from engine.model import Finding, InvoiceOutcome, InvoiceStatus
from engine.status import FlowEvent, FlowStatus, advance
from engine.store.rows import finding_values, invoice_values, utc

S = FlowStatus

# Waiting for, or in, processing: the statuses a worker takes a flow out of.
JOB_STATUSES = frozenset({S.RECEIVED, S.PROCESSED_SE_CPP, S.WAITING_FOR_PROCESSING, S.IN_PROGRESS})


@dataclass(frozen=True)
class Change:
    """Status steps to record in one transaction: from ``expected`` along ``events`` (already checked
    with ``engine.status.walk``), each stamped ``at`` and signed ``actor``."""

    flow_number: str
    expected: FlowStatus
    events: tuple[FlowEvent, ...]
    at: datetime
    actor: str
    detail: str | None = None

    def statuses(self) -> list[FlowStatus]:
        """The status after each event; the last is the flow's new status."""
        return list(itertools.accumulate(self.events, advance, initial=self.expected))[1:]

    def steps(self) -> list[tuple[FlowStatus, FlowEvent | None]]:
        return list(zip(self.statuses(), self.events, strict=True))


@dataclass(frozen=True)
class Verdict:
    """The invoices and findings a verdict replaces the flow's with."""

    flow_findings: tuple[Finding, ...]
    invoices: tuple[InvoiceOutcome, ...]
    ruleset_version: str

    def finding_rows(self, flow_number: str) -> list[dict[str, Any]]:
        """Every finding's columns: the flow's first, then each invoice's, numbered in that order."""
        rows = [finding_values(flow_number, None, pos, f) for pos, f in enumerate(self.flow_findings)]
        for idx, outcome in enumerate(self.invoices):
            base = len(rows)  # taken once: extend() would see the list grow under a generator
            rows.extend(finding_values(flow_number, idx, base + k, f) for k, f in enumerate(outcome.findings))
        return rows

    def invoice_rows(self, flow_number: str) -> list[dict[str, Any]]:
        return [invoice_values(flow_number, idx, o.facts, o.status) for idx, o in enumerate(self.invoices)]

    def counts(self, flow_number: str) -> dict[str, Any]:
        """The parameters of ``sql_flows.SET_VERDICT_COUNTS``."""
        integrated = sum(1 for o in self.invoices if o.status is InvoiceStatus.INTEGRATED)
        return {
            "flow_number": flow_number,
            "invoice_count": len(self.invoices),
            "integrated_count": integrated,
            "rejected_count": len(self.invoices) - integrated,
            "ruleset_version": self.ruleset_version,
        }


class ChainedEvent(NamedTuple):
    """A status event row, hash-chained to the one before (column names of ``status_events``)."""

    flow_number: str
    seq: int
    status: str  # the status code
    event: str | None  # the event's value; None for the creating event
    at: datetime  # UTC
    actor: str
    detail: str | None
    prev_hash: str
    hash: str


def chain(
    flow_number: str,
    last: tuple[int, str] | None,
    steps: Iterable[tuple[FlowStatus, FlowEvent | None]],
    *,
    at: datetime,
    actor: str,
    detail: str | None,
) -> list[ChainedEvent]:
    """The events of ``steps`` (the status each leads to, and its event), after the flow's ``last``
    event (seq, hash), or from seq 1 when it has none."""
    seq, prev_hash = last if last is not None else (0, GENESIS)
    at_utc = utc(at)
    stamp = at_utc.isoformat()
    events = []
    for status, event in steps:
        seq += 1
        value = event.value if event is not None else None
        digest = event_hash(prev_hash, flow_number, seq, status.code, value or "", stamp, actor, detail)
        events.append(ChainedEvent(flow_number, seq, status.code, value, at_utc, actor, detail, prev_hash, digest))
        prev_hash = digest
    return events
