"""The store port: everything the engine needs to persist, as one Protocol (STYLE rule 4).

Implementations: ``engine.store.sqlite.SqliteStore`` (aiosqlite, the default) and, later, PostgreSQL.
Callers never see driver errors: every method raises ``engine.errors`` types (``StoreError`` and its
children, keeping the driver error as ``__cause__``).

Invariants every implementation keeps:

* ``create_flow`` allocates the flow number (unique, never reused, safe under concurrency), inserts the
  flow row in status RECEIVED, its first (hash-chained) status event, its work-queue job and, for a
  small deposit, its bytes (``NewFlow.content``), in one transaction, durably (committed and synced)
  before returning.
* A flow's bytes are either in the blob store under ``blob_key``, or kept by the store with its row
  (``blob_key`` is then ""): ``claim`` hands them to the worker (``Claim.content``), and they go with
  the flow when it is purged.
* Every status change is compare-and-set on the expected status (zero rows → ``StatusConflict``) and
  appends its hash-chained event (``engine.audit.event_hash``) in the same transaction.
* A flow has a job row exactly while its status is RECEIVED, PROCESSED_SE_CPP, WAITING_FOR_PROCESSING or
  IN_PROGRESS; the store deletes it in the transaction that moves the flow to a final status or to
  WAITING_FOR_REPROCESSING, and recreates it on ADMIN_RELEASE / ADMIN_REPROCESS.
* A job is leased to one worker at a time; an expired lease can be claimed again.
* A singleton (``try_singleton``) is held by at most one process at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine.directory import DirectoryData, DirectorySnapshot, Partner, Role, Structure, User
from engine.model import (
    KEEP,
    Channel,
    Finding,
    FlowRecord,
    InvoiceOutcome,
    RejectionRule,
    Ruleset,
    RulesetChoice,
    StatusChange,
    Syntax,
)
from engine.permissions import Principal, Visibility
from engine.queries import Dashboard, DashboardQuery, EventRecord, FlowQuery, PageKey, RejectRow, SearchPage
from engine.status import FlowEvent, FlowStatus
from engine.webhooks import Attempt, Delivery, DeliveryState, NewSubscription, Subscription


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
    blob_key: str  # the blob store's key; "" when ``content`` is given
    deposited_at: datetime
    tracking_id: str | None = None
    partner_code: str | None = None
    content: bytes | None = None  # the bytes of a small deposit, kept with the row instead of a blob

    def __post_init__(self) -> None:
        if (self.content is None) == (self.blob_key == ""):
            raise ValueError("a new flow has either a blob_key or its content, not both nor neither")


@dataclass(frozen=True)
class Claim:
    """A job leased to a worker."""

    flow_number: str
    status: FlowStatus
    attempts: int  # how many leases on this job expired before this claim
    lease_expires_at: datetime
    blob_key: str  # "" when the store keeps the bytes (``content``)
    content: bytes | None = None  # the flow's bytes, when the store keeps them with its row
    flow: FlowRecord | None = None  # the flow as the claim's transaction read it, when the store does (SQLite)


@dataclass(frozen=True)
class Credential:
    """A bearer token's owner, found by ``engine.secrets.secret_lookup_id`` of the token.

    The caller verifies the token against ``token_hash`` (``engine.secrets.verify_secret``): the store
    never sees a token, only its lookup id.
    """

    kind: str  # "user" or "technical"
    login: str
    token_hash: str


@dataclass(frozen=True)
class SessionRecord:
    """A web portal session (``engine.services.portal_auth``), found by the SHA-256 of its cookie's id."""

    login: str
    created_at: datetime
    last_seen_at: datetime
    csrf_secret: str


@dataclass(frozen=True)
class MemberRecord:
    """A member of a structure, with the profiles they hold on it (Manage user permissions)."""

    login: str
    name: str
    role: Role
    profiles: tuple[str, ...]


@dataclass(frozen=True)
class Recovered:
    """What ``recover_expired_leases`` did to one flow."""

    flow_number: str
    from_status: FlowStatus
    to_status: FlowStatus


@dataclass(frozen=True)
class ReportInputs:
    """What a flow's integration report is built from besides the flow itself (``engine.report.build_report``)."""

    history: tuple[StatusChange, ...]
    flow_findings: tuple[Finding, ...]
    invoices: tuple[InvoiceOutcome, ...]
    ruleset_version: str | None


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

    async def flow_content(self, flow_number: str) -> bytes | None:
        """The bytes of a small deposit kept with its row (``NewFlow.content``); None otherwise."""

    async def history(self, flow_number: str) -> list[StatusChange]:
        """The flow's status events in order (seq 1 is RECEIVED)."""

    async def transition(
        self,
        flow_number: str,
        expected: FlowStatus,
        event: FlowEvent | Sequence[FlowEvent],
        *,
        actor: str,
        at: datetime,
        detail: str | None = None,
    ) -> FlowRecord:
        """Compare-and-set the status along ``engine.status.advance(expected, event)``; append the event.

        ``event`` may be several events (e.g. TRANSPORT_CHECKED, QUEUED, CLAIMED): they are applied in
        order in ONE transaction, each appending its own hash-chained event (all stamped ``at``);
        either all are recorded or none. Raises ``StatusConflict`` when the flow is not in
        ``expected`` (or does not exist), and ``engine.status.InvalidTransition`` (before touching the
        database) when one of the events is not allowed from the status the previous ones lead to.
        """

    async def record_verdict(
        self,
        flow_number: str,
        expected: FlowStatus,
        event: FlowEvent | Sequence[FlowEvent],
        *,
        actor: str,
        at: datetime,
        flow_findings: Sequence[Finding],
        invoices: Sequence[InvoiceOutcome],
        ruleset_version: str,
        detail: str | None = None,
    ) -> FlowRecord:
        """Store invoices and findings and move to the verdict's status, in one transaction.

        ``event`` may be several events, the verdict's last (e.g. TRANSPORT_CHECKED, QUEUED, CLAIMED,
        INTEGRATED): the steps before it are recorded as ``transition`` would, in the same transaction.
        Integrated invoices become visible to ``integrated_invoice_flows`` in that same transaction.
        """

    async def flow_findings(self, flow_number: str) -> list[Finding]: ...

    async def invoices(self, flow_number: str) -> list[InvoiceOutcome]: ...

    async def ruleset_version(self, flow_number: str) -> str | None: ...

    async def report_inputs(self, flow_numbers: Sequence[str]) -> dict[str, ReportInputs]:
        """``history``, ``flow_findings``, ``invoices`` and ``ruleset_version`` of many flows at once, read in
        one snapshot with a constant number of queries; unknown flows are left out."""

    async def add_return_flow(self, flow_number: str, name: str) -> None: ...

    async def add_return_flows(self, pairs: Sequence[tuple[str, str]]) -> None:
        """``add_return_flow`` for each ``(flow number, name)`` in order, in one durable transaction: all
        or none (``FlowNotFound`` for the first unknown flow records nothing)."""

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
        self, *, now: datetime, actor: str, max_attempts: int = 2, every_lease: bool = False
    ) -> list[Recovered]:
        """For every job whose lease expired: count the attempt; an IN_PROGRESS flow goes back to
        WAITING_FOR_PROCESSING (LEASE_EXPIRED); once ``attempts`` reaches ``max_attempts`` the flow is
        held in WAITING_FOR_REPROCESSING (HOLD) with a PROCESSING_INTERRUPTED finding.

        ``every_lease`` treats every lease as expired: a process that owns the store alone (SQLite)
        knows at start that any lease left was held by a worker that died. Events are stamped ``now``.
        """

    async def queue_depth(self) -> int: ...

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a job may have been enqueued (by any process) since this task's last ``claim``,
        or after ``timeout_s``. A hint for idle workers: they claim again either way."""

    # --- singletons ----------------------------------------------------------------------------
    async def try_singleton(self, name: str) -> bool:
        """Hold the singleton ``name`` among every process sharing the store: True when this store object
        holds it (taken now, or still held since an earlier call), False when another process does or the
        store cannot tell. Held until ``release_singleton``, ``close`` or the process's death (its
        connection), then another process's next call gets it. Callers ask before each run of a periodic
        job (and between its steps), so a lost singleton stops the job within one step."""

    async def release_singleton(self, name: str) -> None:
        """Give ``name`` up (no-op when not held)."""

    # --- authentication failures (SFTP lockouts, shared by every process) -------------------------
    async def auth_locked(self, keys: Sequence[str], now: datetime) -> bool:
        """Whether any of ``keys`` is locked at ``now`` (``engine.lockout``)."""

    async def take_auth_attempt(self, limits: Sequence[tuple[str, int]], now: datetime, window_s: float) -> bool:
        """Count one attempt at ``now`` on every ``(key, limit)`` before its credentials are checked, in one
        transaction (``engine.lockout.taken``): it counts as a failure until ``clear_auth_failures``
        forgives it. False, and nothing counted, when a key is locked or its limit is reached by attempts
        counted already (the attempt must then be refused unchecked)."""

    async def record_auth_failures(
        self,
        limits: Sequence[tuple[str, int]],
        now: datetime,
        window_s: float,
        first_lockout_s: float | None = None,
        *,
        taken: bool = False,
    ) -> list[str]:
        """A failed attempt at ``now`` (``engine.lockout.after_failure``), in one transaction: counted on
        every ``(key, limit)`` unless one of them is blocked (or ``taken``: ``take_auth_attempt`` counted
        it), then each key at its limit locked; returns the keys it locked. A key's first lock lasts
        ``first_lockout_s`` (default ``window_s``), each further one twice as long, up to ``window_s``.
        Windows older than ``window_s`` with no lock in the last ``window_s`` are forgotten."""

    async def clear_auth_failures(self, key: str, refund_keys: Sequence[str] = ()) -> None:
        """A success on ``key``: forget its failures and back-off, and take them off each of
        ``refund_keys`` (``engine.lockout.forgiven``); a lock in force stays."""

    # --- directory -----------------------------------------------------------------------------
    async def import_directory(self, data: DirectoryData) -> None:
        """Insert or replace every entry of ``data`` (structures with their services, users, ...)."""

    async def snapshot(self, sirets: Iterable[str]) -> DirectorySnapshot: ...

    async def get_structure(self, siret: str) -> Structure | None: ...

    async def get_partner(self, code: str) -> Partner | None: ...

    async def depositor_rulesets(self) -> dict[str, Ruleset]:
        """The depositors (``tech:<login>``, ``partner:<code>``) whose flows a ruleset of their own judges."""

    async def integrated_invoice_flows(
        self, supplier_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """For ``(year, invoice number)`` keys of one supplier, the flow that integrated each one."""

    # --- monitoring (DESIGN §10: Search, ExportSearch, Dashboard, WatchFlow(s), ListRejects) -------
    # Every query applies ``visibility`` inside SQL: a hidden flow is never returned nor counted.

    async def search(
        self, query: FlowQuery, visibility: Visibility, *, page_size: int, after: PageKey | None = None
    ) -> SearchPage:
        """One page sorted by issuer, then deposit date and flow number newest first; keyset-paged
        after ``after``; ``total_count`` counts every match (all pages)."""

    async def count_flows(self, query: FlowQuery, visibility: Visibility) -> int:
        """``search``'s ``total_count`` alone, without a page (a page of a rare status walks the search
        order's index far)."""

    async def search_changed(self, query: FlowQuery, visibility: Visibility, *, limit: int) -> list[FlowRecord]:
        """Up to ``limit`` matches sorted by status change then flow number, ascending; no count."""

    def iter_search(self, query: FlowQuery, visibility: Visibility, *, batch: int = 1000) -> AsyncIterator[FlowRecord]:
        """Every match in search order, fetched ``batch`` rows at a time (exports: flat memory)."""

    async def dashboard(self, query: DashboardQuery, visibility: Visibility) -> Dashboard:
        """Counts per issuer × status, oldest flow per non-final status, top error codes of the period.
        Must answer in milliseconds on 1,000,000 flows (counts kept incrementally, not scanned)."""

    async def events_after(
        self, cursor: int, visibility: Visibility, *, limit: int = 500, flow_number: str | None = None
    ) -> list[EventRecord]:
        """Status changes after ``cursor``, in commit order (cursor 0: from the start)."""

    async def latest_cursor(self) -> int:
        """The cursor of the last committed status change (0 when none)."""

    async def wait_for_events(self, cursor: int, timeout_s: float) -> None:
        """Return as soon as a status change after ``cursor`` may have been committed, or after
        ``timeout_s``. Wake-ups are hints: callers re-query with ``events_after``."""

    async def list_rejects(
        self,
        visibility: Visibility,
        *,
        issuer_sirets: Sequence[str] = (),
        day_from: datetime | None = None,
        day_to: datetime | None = None,
    ) -> list[RejectRow]:
        """Invoices not integrated, with their flow, deposit date and first error (per issuer and day)."""

    # --- authentication and administration (AdminService) ------------------------------------------
    async def find_credential(self, lookup_id: str) -> Credential | None: ...

    async def principal(self, kind: str, login: str) -> Principal | None:
        """The principal of a user, technical user or partner, with its structures and profiles."""

    async def set_token(self, kind: str, login: str, token_hash: str, lookup_id: str) -> None:
        """Replace the token of a user or technical user (``DirectoryEntryNotFound`` if unknown)."""

    async def upsert_structure(self, structure: Structure) -> None: ...

    async def list_structures(self) -> list[Structure]: ...

    async def upsert_user(self, user: User) -> None: ...

    async def set_membership(self, login: str, siret: str, role: Role | None) -> None:
        """Attach ``login`` to ``siret`` with ``role``, or detach it when ``role`` is None."""

    async def upsert_technical_user(self, login: str, siret: str, *, ruleset: RulesetChoice = KEEP) -> None:
        """Create or move a technical user (its token, if any, kept), its flows judged by ``ruleset`` (None:
        the config's default; KEEP: as they are, the default for a new one)."""

    async def upsert_partner(self, partner: Partner) -> None: ...

    async def set_rejection_rule(self, partner_code: str, syntax: Syntax, rule: RejectionRule) -> None: ...

    async def grant_profile(self, login: str, siret: str, profile: str) -> None:
        """Raise ``ProfileAlreadyGranted`` ("The user already has the selected subscription") when held."""

    async def revoke_profile(self, login: str, siret: str, profile: str) -> None:
        """Raise ``DirectoryEntryNotFound`` when the user does not hold it."""

    async def purge_flows(self, deposited_before: datetime) -> tuple[int, list[str]]:
        """Delete final flows deposited before the date (rows, events, invoices, findings, counters);
        return how many, and the blob keys no remaining flow references (the caller deletes them)."""

    # --- the web portal (engine.services.portal_auth; engine.store.portal_sessions) -----------------
    async def user_password_hash(self, login: str) -> str | None:
        """The user's argon2id password hash; None when unknown or without one."""

    async def create_session(self, id_hash: str, login: str, csrf_secret: str, now: datetime) -> None: ...

    async def get_session(self, id_hash: str) -> SessionRecord | None: ...

    async def touch_session(self, id_hash: str, now: datetime) -> None: ...

    async def delete_session(self, id_hash: str) -> None: ...

    async def delete_expired_sessions(self, idle_before: datetime, created_before: datetime) -> int:
        """Delete sessions last seen before ``idle_before`` or created before ``created_before``."""

    async def structure_members(self, siret: str) -> list[MemberRecord]:
        """The users of a structure with their role and the profiles they hold on it, by login."""

    # --- return flows (SFTP outbox) ----------------------------------------------------------------
    async def pending_return_flows(self, limit: int = 100) -> list[FlowRecord]:
        """EDI flows in a final status whose integration report has not been written to the outbox."""

    # --- wake-ups (engine.store.wakeups) -----------------------------------------------------------
    async def wait_for_verdicts(self, seen: int, timeout_s: float) -> int:
        """How many verdicts giving return flows (``engine.return_flows.has_return_flows``) this store
        object has committed, returned once that count is above ``seen`` or after ``timeout_s`` (at once
        when it already is: ``seen=-1`` reads it). A hint for the outbox, which then looks for pending
        return flows; other processes' verdicts come as status events (``wait_for_events``)."""

    # --- webhooks (engine.webhooks; deliveries are written by the status events' triggers) ------------
    async def add_webhook(self, new: NewSubscription) -> Subscription:
        """Record a subscription; every status event committed afterwards that it wants gets a delivery
        in the event's own transaction."""

    async def list_webhooks(self) -> list[Subscription]: ...

    async def get_webhook(self, subscription_id: int) -> Subscription | None: ...

    async def delete_webhook(self, subscription_id: int) -> bool:
        """Delete a subscription and its deliveries (none is claimed afterwards); False if unknown."""

    async def claim_deliveries(
        self,
        owner: str,
        *,
        now: datetime,
        lease_s: float,
        limit: int,
        per_subscription: int,
        busy: Sequence[int] = (),
    ) -> list[Delivery]:
        """Lease up to ``limit`` due pending deliveries to ``owner`` for ``lease_s`` (at most
        ``per_subscription`` per subscription, none of the subscriptions in ``busy``), never one while an
        earlier delivery of its flow and subscription is pending."""

    async def record_delivery_attempts(self, owner: str, attempts: Sequence[Attempt]) -> int:
        """Settle attempts made by the lease holder ``owner`` in one transaction (``Attempt.state``);
        how many it still held (the others were let go: expired and claimed again, or deleted)."""

    async def list_deliveries(
        self, subscription_ids: Sequence[int], *, state: DeliveryState | None = None, limit: int = 100
    ) -> list[Delivery]:
        """The subscriptions' deliveries, newest first."""

    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    async def redeliver(self, delivery_id: int, *, now: datetime) -> bool:
        """Make a delivered or dead delivery pending again, due ``now``; False if unknown or pending."""

    async def purge_settled_deliveries(self, before: datetime) -> int:
        """Delete delivered and dead deliveries last attempted before ``before``; returns how many."""
