"""Replay: the stored flows judged again under another ruleset, compared with their stored verdicts, without
changing anything stored (``fluxdepot admin replay``).

Each flow whose verdict was a judgement of its content (INTEGRATED, PARTIALLY_INTEGRATED, REJECTED; not
WARNING, nor a flow still on its way) goes through the worker's own code: ``flow_check`` in the validation
pool, then ``transport_verdict`` / ``judge_content`` with the store's directory, its duplicate index and
the partner's rejection rule (``engine.processing``). The store is only read (open it with
``engine.store.readonly.open_read_only``) and the blobs are only read, by the pool.

What is compared, per invoice (matched by position in the flow): its verdict (integrated or rejected; an
invoice of a flow rejected as a whole is rejected) and its failing rules (each error's rule, else its
code; with the flow's own errors when the flow is rejected as a whole); per flow, its status. Each flow is
judged against the others as stored: an invoice integrated by the flow itself is not its own duplicate,
and a directory changed since the flow was judged shows as the business rule it changes.

Flows stream in keyset pages and at most ``in_flight`` are judged at once, in search order: memory stays
flat whatever the number of flows.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from engine.blobs import BlobStore
from engine.business import needed_sirets
from engine.catalogue import finding
from engine.cpu_pool import CheckAborted
from engine.model import Finding, FlowRecord, FlowVerdict, InvoiceOutcome, InvoiceStatus, Limits, Rules
from engine.permissions import Visibility
from engine.processing import (
    JudgingReads,
    aborted_finding,
    earlier_integrated,
    judge_content,
    rejection_rule,
    transport_verdict,
)
from engine.queries import FlowQuery
from engine.status import FlowEvent, FlowStatus, advance
from engine.technical import flow_check

REPLAYED = (FlowStatus.INTEGRATED, FlowStatus.PARTIALLY_INTEGRATED, FlowStatus.REJECTED)
RunCpu = Callable[..., Awaitable[Any]]
EVERYTHING = Visibility(everything=True)


class ReplayReads(JudgingReads, Protocol):
    """The store reads a replay makes (``SqlStore`` and its read-only form have them all)."""

    def iter_search(self, query: FlowQuery, visibility: Visibility, *, batch: int = 1000) -> AsyncIterator[FlowRecord]:
        """Every match, one keyset batch per read."""

    async def count_flows(self, query: FlowQuery, visibility: Visibility) -> int: ...

    async def flow_content(self, flow_number: str) -> bytes | None: ...

    async def get_blob_key(self, flow_number: str) -> str | None: ...

    async def flow_findings(self, flow_number: str) -> list[Finding]: ...

    async def invoices(self, flow_number: str) -> list[InvoiceOutcome]: ...


@dataclass(frozen=True)
class ReplayRequest:
    """Which flows to judge again, and under which rules."""

    rules: Rules
    issuer_siret: str | None = None
    deposited_from: datetime | None = None  # inclusive
    deposited_to: datetime | None = None  # exclusive

    def query(self) -> FlowQuery:
        issuers = (self.issuer_siret,) if self.issuer_siret else ()
        return FlowQuery(issuers, REPLAYED, deposited_from=self.deposited_from, deposited_to=self.deposited_to)


@dataclass(frozen=True)
class InvoiceChange:
    """One invoice whose verdict or failing rules would change (a row of the CSV or JSON output)."""

    flow_number: str
    issuer_siret: str
    deposited_at: datetime
    document: str
    invoice_number: str | None
    stored: InvoiceStatus
    replayed: InvoiceStatus
    flow_stored: FlowStatus
    flow_replayed: FlowStatus
    newly_failing: tuple[str, ...]  # rules failing under the new ruleset only
    no_longer_failing: tuple[str, ...]  # rules failing in the stored verdict only

    @property
    def verdict_changed(self) -> bool:
        return self.stored is not self.replayed


@dataclass(frozen=True)
class FlowReplay:
    """One flow judged again: its status under the new rules (None: the check could not run) and the
    invoices that would change."""

    flow: FlowRecord
    replayed: FlowStatus | None
    changes: tuple[InvoiceChange, ...] = ()
    invoices: int = 0
    problem: str | None = None  # why it could not be judged (CHECK_FAILED, CHECK_TIMEOUT ...)

    @property
    def status_changed(self) -> bool:
        return self.replayed is not None and self.replayed is not self.flow.status


@dataclass
class ReplaySummary:
    """The diff in numbers, added to flow by flow."""

    ruleset: str
    flows: int = 0
    invoices: int = 0
    not_judged: int = 0
    status_changes: Counter[tuple[FlowStatus, FlowStatus]] = field(default_factory=Counter)
    became_rejected: int = 0
    became_integrated: int = 0
    rules_changed: int = 0  # invoices whose failing rules change, verdict unchanged
    newly_failing: Counter[str] = field(default_factory=Counter)  # rule → invoices
    no_longer_failing: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, replay: FlowReplay) -> None:
        self.flows += 1
        self.invoices += replay.invoices
        if replay.replayed is None:
            self.not_judged += 1
        elif replay.status_changed:
            self.status_changes[(replay.flow.status, replay.replayed)] += 1
        for change in replay.changes:
            if change.replayed is InvoiceStatus.REJECTED and change.verdict_changed:
                self.became_rejected += 1
            elif change.verdict_changed:
                self.became_integrated += 1
            else:
                self.rules_changed += 1
            self.newly_failing.update(change.newly_failing)
            self.no_longer_failing.update(change.no_longer_failing)

    @property
    def flows_changed(self) -> int:
        return sum(self.status_changes.values())

    @property
    def changed(self) -> bool:
        """Some verdict would change, or some flow could not be judged (nothing is then proven unchanged)."""
        return bool(self.flows_changed or self.became_rejected or self.became_integrated or self.not_judged)

    @property
    def flows_per_s(self) -> float:
        return self.flows / self.seconds if self.seconds > 0 else 0.0


def _rule_key(finding: Finding) -> str:
    return finding.rule or finding.code


def _failing(own: Iterable[Finding], flow_errors: set[str]) -> set[str]:
    return {_rule_key(f) for f in own if f.is_error} | flow_errors


def compare(
    flow: FlowRecord,
    stored_findings: Sequence[Finding],
    stored_invoices: Sequence[InvoiceOutcome],
    verdict: FlowVerdict,
    replayed: FlowStatus,
) -> tuple[InvoiceChange, ...]:
    """The invoices whose verdict or failing rules differ between the stored verdict and ``verdict`` (pure)."""
    sides = []
    for status, findings, invoices in (
        (flow.status, stored_findings, stored_invoices),
        (replayed, verdict.flow_findings, verdict.invoices),
    ):
        whole = status is FlowStatus.REJECTED and not any(i.status is InvoiceStatus.INTEGRATED for i in invoices)
        flow_errors = {_rule_key(f) for f in findings if f.is_error} if whole else set()
        sides.append((invoices, flow_errors))
    (old, old_errors), (new, new_errors) = sides
    changes = []
    for i in range(max(len(old), len(new))):
        before = old[i] if i < len(old) else None
        after = new[i] if i < len(new) else None
        facts = before.facts if before is not None else after.facts if after is not None else None
        assert facts is not None  # i is below one side's length
        was = before.status if before else InvoiceStatus.REJECTED  # no invoice: the flow was rejected whole
        now = after.status if after else InvoiceStatus.REJECTED
        failing_before = _failing(before.findings if before else (), old_errors)
        failing_after = _failing(after.findings if after else (), new_errors)
        if was is now and failing_before == failing_after:
            continue
        changes.append(
            InvoiceChange(
                flow_number=flow.flow_number,
                issuer_siret=flow.issuer_siret,
                deposited_at=flow.deposited_at,
                document=facts.document,
                invoice_number=facts.number,
                stored=was,
                replayed=now,
                flow_stored=flow.status,
                flow_replayed=replayed,
                newly_failing=tuple(sorted(failing_after - failing_before)),
                no_longer_failing=tuple(sorted(failing_before - failing_after)),
            )
        )
    return tuple(changes)


class Replay:
    """Judge stored flows again under ``request.rules`` (see the module docstring)."""

    def __init__(
        self,
        reads: ReplayReads,
        blobs: BlobStore,
        limits: Limits,
        run_cpu: RunCpu,
        *,
        in_flight: int = 4,
    ) -> None:
        self._reads = reads
        self._blobs = blobs
        self._limits = limits
        self._run_cpu = run_cpu
        self._in_flight = max(1, in_flight)

    async def count(self, request: ReplayRequest) -> int:
        """How many flows ``request`` replays (for a progress bar)."""
        return await self._reads.count_flows(request.query(), EVERYTHING)

    async def run(self, request: ReplayRequest) -> AsyncIterator[FlowReplay]:
        """Each flow judged again, in search order, with at most ``in_flight`` judged at once."""
        pending: deque[asyncio.Task[FlowReplay]] = deque()
        try:
            async for flow in self._reads.iter_search(request.query(), EVERYTHING):
                pending.append(asyncio.create_task(self.replay(flow, request.rules)))
                if len(pending) >= self._in_flight:
                    yield await pending.popleft()
            while pending:
                yield await pending.popleft()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def replay(self, flow: FlowRecord, rules: Rules) -> FlowReplay:
        """One flow judged under ``rules`` and compared with its stored verdict."""
        verdict = await self._judge(flow, rules)
        if verdict.event is FlowEvent.SYSTEM_FAILURE:
            problem = "; ".join(f"{f.code}: {f.message}" for f in verdict.flow_findings)
            return FlowReplay(flow, None, problem=problem)
        start = FlowStatus.RECEIVED if verdict.event is FlowEvent.TECHNICAL_REJECTION else FlowStatus.IN_PROGRESS
        replayed = advance(start, verdict.event)
        stored_findings = await self._reads.flow_findings(flow.flow_number)
        stored_invoices = await self._reads.invoices(flow.flow_number)
        changes = compare(flow, stored_findings, stored_invoices, verdict, replayed)
        return FlowReplay(flow, replayed, changes, max(len(stored_invoices), len(verdict.invoices)))

    async def _judge(self, flow: FlowRecord, rules: Rules) -> FlowVerdict:
        """The verdict the worker would record for ``flow`` under ``rules`` (``engine.processing``'s code)."""
        source: str | bytes | None = await self._reads.flow_content(flow.flow_number)
        if source is None:
            key = await self._reads.get_blob_key(flow.flow_number)
            if not key:
                missing = finding("CHECK_FAILED", "The flow's bytes are not in the store.")
                return FlowVerdict(FlowEvent.SYSTEM_FAILURE, (missing,), ruleset_version=rules.ruleset.value)
            source = str(self._blobs.path(key))  # read by the check, in the pool
        declared = flow.syntax if flow.declared_syntax else None
        try:
            transport, content = await self._run_cpu(
                self._limits.validation_timeout_s, flow_check, source, flow.file_name, declared, self._limits, rules
            )
        except CheckAborted as exc:
            return FlowVerdict(FlowEvent.SYSTEM_FAILURE, (aborted_finding(exc),), ruleset_version=rules.ruleset.value)
        failed = transport_verdict(transport, rules)
        if failed is not None or content is None:
            return failed or FlowVerdict(FlowEvent.TECHNICAL_REJECTION, transport.findings)
        syntax = transport.syntax or flow.syntax
        directory = await self._reads.snapshot(needed_sirets(content.documents, flow.issuer_siret))
        earlier = await earlier_integrated(self._reads, content, besides=flow.flow_number)
        rule = await rejection_rule(self._reads, flow, syntax)
        return judge_content(content, issuer_siret=flow.issuer_siret, directory=directory, earlier=earlier, rule=rule)


async def replay_all(replay: Replay, request: ReplayRequest, each: Callable[[FlowReplay], None]) -> ReplaySummary:
    """Run ``replay`` over ``request``, calling ``each`` with every flow as it comes; the summary."""
    summary = ReplaySummary(request.rules.ruleset.value)
    started = time.monotonic()
    async for result in replay.run(request):
        summary.add(result)
        each(result)
    summary.seconds = time.monotonic() - started
    return summary
