"""The store port: everything the engine needs to persist, as one Protocol (STYLE rule 4).

Implementations: ``engine.store.sqlite.SqliteStore`` (aiosqlite, the default) and, later, PostgreSQL.
Callers never see driver errors: every method raises ``engine.errors`` types (``StoreError`` and its
children, keeping the driver error as ``__cause__``).

Invariants every implementation keeps:

* ``create_flow`` allocates the flow number (unique, never reused, safe under concurrency), inserts the
  flow row in status RECEIVED, its first (hash-chained) status event and its work-queue job, in one
  transaction, durably (committed and synced) before returning.
* Every status change is compare-and-set on the expected status (zero rows → ``StatusConflict``) and
  appends its hash-chained event (``engine.audit.event_hash``) in the same transaction.
* A flow has a job row exactly while its status is RECEIVED, PROCESSED_SE_CPP, WAITING_FOR_PROCESSING or
  IN_PROGRESS; the store deletes it in the transaction that moves the flow to a final status or to
  WAITING_FOR_REPROCESSING, and recreates it on ADMIN_RELEASE / ADMIN_REPROCESS.
* A job is leased to one worker at a time; an expired lease can be claimed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine.directory import DirectoryData, DirectorySnapshot, Partner, Structure
from engine.model import Channel, Finding, FlowRecord, InvoiceOutcome, StatusChange, Syntax
from engine.status import FlowEvent, FlowStatus


@dataclass(frozen=True)
class NewFlow:
    """A deposit to record. The store allocates the number from ``number_prefix`` (partner code)."""

    number_prefix: str  # 6-character partner code: EDI partner, or the gateway's own code (CPP001)
    file_name: str
    syntax: Syntax
    declared_syntax: bool
    channel: Channel
    issuer_siret: str
    depositor: str
    sha256: str
    size_bytes: int
    blob_key: str
    deposited_at: datetime
    tracking_id: str | None = None
    partner_code: str | None = None


@dataclass(frozen=True)
class Claim:
    """A job leased to a worker."""

    flow_number: str
    status: FlowStatus
    attempts: int  # how many leases on this job expired before this claim
    lease_expires_at: datetime
    blob_key: str


@dataclass(frozen=True)
class Recovered:
    """What ``recover_expired_leases`` did to one flow."""

    flow_number: str
    from_status: FlowStatus
    to_status: FlowStatus


class Store(Protocol):
    # --- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and apply pending numbered migrations."""

    async def close(self) -> None: ...

    # --- flows ---------------------------------------------------------------------------------
    async def create_flow(self, new: NewFlow) -> FlowRecord:
        """Allocate the number and insert flow + first event + job, durably (see module invariants)."""

    async def find_by_tracking_id(self, depositor: str, tracking_id: str) -> FlowRecord | None: ...

    async def get_flow(self, flow_number: str) -> FlowRecord | None: ...

    async def get_blob_key(self, flow_number: str) -> str | None: ...

    async def history(self, flow_number: str) -> list[StatusChange]:
        """The flow's status events in order (seq 1 is RECEIVED)."""

    async def transition(
        self,
        flow_number: str,
        expected: FlowStatus,
        event: FlowEvent,
        *,
        actor: str,
        at: datetime,
        detail: str | None = None,
    ) -> FlowRecord:
        """Compare-and-set the status along ``engine.status.advance(expected, event)``; append the event.

        Raises ``StatusConflict`` when the flow is not in ``expected`` (or does not exist), and
        ``engine.status.InvalidTransition`` when the event is not allowed from ``expected``.
        """

    async def record_verdict(
        self,
        flow_number: str,
        expected: FlowStatus,
        event: FlowEvent,
        *,
        actor: str,
        at: datetime,
        flow_findings: Sequence[Finding],
        invoices: Sequence[InvoiceOutcome],
        ruleset_version: str,
        detail: str | None = None,
    ) -> FlowRecord:
        """Store invoices and findings and move to the verdict's status, in one transaction.

        Integrated invoices become visible to ``integrated_invoice_flows`` in that same transaction.
        """

    async def flow_findings(self, flow_number: str) -> list[Finding]: ...

    async def invoices(self, flow_number: str) -> list[InvoiceOutcome]: ...

    async def ruleset_version(self, flow_number: str) -> str | None: ...

    async def add_return_flow(self, flow_number: str, name: str) -> None: ...

    async def all_flow_numbers(self) -> list[str]:
        """Every flow number, oldest first (audit walks, tests)."""

    # --- work queue ----------------------------------------------------------------------------
    async def claim(self, worker_id: str, *, now: datetime, lease_s: float) -> Claim | None:
        """Lease the oldest available job (never leased, or lease expired) to ``worker_id``."""

    async def heartbeat(self, flow_number: str, worker_id: str, *, now: datetime, lease_s: float) -> bool:
        """Extend the lease; False when the worker no longer holds it."""

    async def release(self, flow_number: str, worker_id: str) -> None:
        """Hand the job back without counting an attempt (orderly shutdown)."""

    async def recover_expired_leases(
        self, *, now: datetime, actor: str, max_attempts: int = 2
    ) -> list[Recovered]:
        """For every job whose lease expired: count the attempt; an IN_PROGRESS flow goes back to
        WAITING_FOR_PROCESSING (LEASE_EXPIRED); once ``attempts`` reaches ``max_attempts`` the flow is
        held in WAITING_FOR_REPROCESSING (HOLD) with a PROCESSING_INTERRUPTED finding."""

    async def queue_depth(self) -> int: ...

    # --- directory -----------------------------------------------------------------------------
    async def import_directory(self, data: DirectoryData) -> None:
        """Insert or replace every entry of ``data`` (structures with their services, users, ...)."""

    async def snapshot(self, sirets: Iterable[str]) -> DirectorySnapshot: ...

    async def get_structure(self, siret: str) -> Structure | None: ...

    async def get_partner(self, code: str) -> Partner | None: ...

    async def integrated_invoice_flows(
        self, supplier_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """For ``(year, invoice number)`` keys of one supplier, the flow that integrated each one."""
