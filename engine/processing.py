"""Processing one claimed flow: technical checks, business checks, the rejection rule, the verdict.

``judge_content`` is the pure decision shared with ``fluxdepot check``; ``FlowProcessor`` walks a flow
through its statuses (RECEIVED → PROCESSED_SE_CPP → WAITING_FOR_PROCESSING → IN_PROGRESS → verdict),
recording each step in the store, with the CPU work in the validation pool. A RECEIVED flow takes one
pool call (``flow_check``: transport and content checks, each document parsed once); the three steps
that follow a passed transport check are then recorded in the verdict's own transaction (each step its
own chained event), so a flow costs one write transaction from its claim to its verdict. A flow
claimed later in its life (transport checked before a restart) records IN_PROGRESS before its content
check runs.

Where the store allows it (SQLite), a claim brings its flow (``Claim.flow``: no read before the check),
and the flow is judged inside its verdict's write transaction (``RecordsJudged``): the directory entries
and the earlier integrated invoices are read there, in the same call to the store's writer as the
verdict; otherwise they are read first and the verdict lock below applies.

The ruleset is the depositor's own (a technical user's or EDI partner's ``ruleset`` in the directory),
else the config's default (``engine.ruleset_choice``, read from the store at most every few seconds).

A check that could not run (timeout, memory limit, its process died, missing artefact) yields
SYSTEM_FAILURE → WARNING, never INTEGRATED. The duplicate-invoice lookup and the verdict are recorded
under one lock so two flows carrying the same invoice number cannot both integrate it (one process; the
store's unique index guards across processes).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import structlog

from engine.blobs import BlobStore
from engine.business import check_invoices, duplicate_keys, needed_sirets
from engine.catalogue import finding
from engine.cpu_pool import CheckAborted, CheckCrashed, CheckOutOfMemory, CheckTimeout
from engine.directory import DirectorySnapshot, Partner
from engine.errors import InvoiceAlreadyIntegrated
from engine.integration import judge, rule_for
from engine.model import Finding, FlowRecord, FlowVerdict, Limits, RejectionRule, Rules, Syntax
from engine.ruleset_choice import DepositorRulesets
from engine.status import FlowEvent, FlowStatus
from engine.store.port import Claim, Store
from engine.technical import DEFAULT_RULES, ContentResult, TransportResult, content_check, flow_check

T = TypeVar("T")
RunCpu = Callable[..., Awaitable[Any]]
SYSTEM_CODES = frozenset({"CHECK_FAILED", "CHECK_TIMEOUT", "CHECK_OUT_OF_MEMORY"})
JUDGE_ATTEMPTS = 3
# CHECK_FAILED's message when the walk itself failed on a flow (the workers' and the pump's).
INTERNAL_ERROR = "internal error while processing"
log = structlog.get_logger("fluxdepot.processing")
E = FlowEvent
# A pool failure as a flow outcome: a check that died with its process is counted with those that ran
# out of memory (the likeliest cause under the process's memory limit; the message gives the exit status).
_ABORTED_CODES: dict[type[CheckAborted], str] = {
    CheckTimeout: "CHECK_TIMEOUT",
    CheckOutOfMemory: "CHECK_OUT_OF_MEMORY",
    CheckCrashed: "CHECK_OUT_OF_MEMORY",
}
# The steps from a status before IN_PROGRESS to IN_PROGRESS, recorded in one transaction (the verdict's,
# when the checks already ran).
STEPS_TO_IN_PROGRESS: dict[FlowStatus, tuple[FlowEvent, ...]] = {
    FlowStatus.RECEIVED: (E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED),
    FlowStatus.PROCESSED_SE_CPP: (E.QUEUED, E.CLAIMED),
    FlowStatus.WAITING_FOR_PROCESSING: (E.CLAIMED,),
}


def system_failure(findings: Sequence[Finding]) -> bool:
    return any(f.code in SYSTEM_CODES for f in findings)


def transport_verdict(transport: TransportResult, rules: Rules) -> FlowVerdict | None:
    """The verdict on a flow that failed its transport check (pure); None when it passed."""
    if system_failure(transport.findings):
        return FlowVerdict(FlowEvent.SYSTEM_FAILURE, transport.findings, ruleset_version=rules.ruleset.value)
    if transport.rejected:
        return FlowVerdict(FlowEvent.TECHNICAL_REJECTION, transport.findings, ruleset_version=rules.ruleset.value)
    return None


def aborted_finding(exc: CheckAborted) -> Finding:
    """The finding of a check the pool could not finish (timeout, memory, a dead process)."""
    return finding(_ABORTED_CODES.get(type(exc), "CHECK_FAILED"), str(exc))  # CHECK_FAILED: no process started


def judge_content(
    content: ContentResult,
    *,
    issuer_siret: str,
    directory: DirectorySnapshot | None,
    earlier: Mapping[tuple[str, str, str], str],
    rule: RejectionRule,
) -> FlowVerdict:
    """The verdict on a flow whose content was checked (pure)."""
    doc_findings = [f for d in content.documents for f in d.findings]
    if system_failure(content.flow_findings) or system_failure(doc_findings):
        failures = tuple(f for f in (*content.flow_findings, *doc_findings) if f.code in SYSTEM_CODES)
        return FlowVerdict(FlowEvent.SYSTEM_FAILURE, failures, ruleset_version=content.ruleset_version)
    if any(f.is_error for f in content.flow_findings):
        return FlowVerdict(
            FlowEvent.TECHNICAL_REJECTION, content.flow_findings, ruleset_version=content.ruleset_version
        )
    checked = check_invoices(content.documents, issuer_siret=issuer_siret, directory=directory, earlier=earlier)
    event, outcomes = judge(checked, rule)
    return FlowVerdict(event, content.flow_findings, outcomes, ruleset_version=content.ruleset_version)


def judged_by(
    content: ContentResult, issuer_siret: str, rule: RejectionRule
) -> Callable[[DirectorySnapshot, Mapping[tuple[str, str, str], str]], FlowVerdict]:
    """``judge_content`` on ``content`` as a store's verdict transaction calls it (``RecordsJudged``), with
    the directory entries and earlier invoices it reads there."""

    def judge(directory: DirectorySnapshot, earlier: Mapping[tuple[str, str, str], str]) -> FlowVerdict:
        return judge_content(content, issuer_siret=issuer_siret, directory=directory, earlier=earlier, rule=rule)

    return judge


class JudgingReads(Protocol):
    """What judging a checked flow reads from the store (the daemon's store, or a read-only one)."""

    async def snapshot(self, sirets: Iterable[str]) -> DirectorySnapshot: ...

    async def get_partner(self, code: str) -> Partner | None: ...

    async def integrated_invoice_flows(
        self, supplier_id: str, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]: ...


@runtime_checkable
class RecordsJudged(Protocol):
    """A store that judges a checked flow inside its verdict's own write transaction
    (``SqliteStore.record_judged``): ``judge`` is pure and gets the directory entries of ``sirets`` and
    the integrated invoices among ``invoice_keys``, as they are in that transaction."""

    async def record_judged(
        self,
        flow_number: str,
        expected: FlowStatus,
        steps: Sequence[FlowEvent],
        judge: Callable[[DirectorySnapshot, Mapping[tuple[str, str, str], str]], FlowVerdict],
        *,
        sirets: Collection[str],
        invoice_keys: Collection[tuple[str, str, str]],
        actor: str,
        at: datetime,
    ) -> FlowRecord: ...


async def earlier_integrated(
    reads: JudgingReads, content: ContentResult, *, besides: str | None = None
) -> dict[tuple[str, str, str], str]:
    """Integrated invoices of other flows (not ``besides``) with the same (supplier, year, number) keys."""
    by_supplier: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for supplier, year, number in duplicate_keys(content.documents):
        by_supplier[supplier].append((year, number))
    earlier: dict[tuple[str, str, str], str] = {}
    for supplier, keys in by_supplier.items():
        found = await reads.integrated_invoice_flows(supplier, keys)
        earlier.update({(supplier, year, number): fn for (year, number), fn in found.items() if fn != besides})
    return earlier


async def rejection_rule(reads: JudgingReads, flow: FlowRecord, syntax: Syntax) -> RejectionRule:
    """The flow's rejection rule: its EDI partner's for ``syntax``, else PARTIAL (``engine.integration``)."""
    partner = await reads.get_partner(flow.partner_code) if flow.partner_code else None
    return rule_for(flow.channel, partner, syntax)


class FlowProcessor:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        limits: Limits,
        run_cpu: RunCpu,
        *,
        clock: Callable[[], datetime],
        actor: str,
        rules: Rules = DEFAULT_RULES,
        rulesets: DepositorRulesets | None = None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._limits = limits
        self._run_cpu = run_cpu
        self._clock = clock
        self._actor = actor
        # The default ruleset and where the artefacts are ([rules]); a depositor may have its own ruleset.
        self.rulesets = rulesets or DepositorRulesets(store.depositor_rulesets, rules)
        self._verdict_lock = asyncio.Lock()
        self._judging_store = store if isinstance(store, RecordsJudged) else None

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    @property
    def actor(self) -> str:
        return self._actor

    async def process(self, claim: Claim) -> FlowRecord:
        """Take a claimed flow from wherever it stands to a final status (or a recorded failure)."""
        started = time.monotonic()
        flow = claim.flow  # as the claim read it, when the store does: no read of it then
        if flow is None:
            flow = await self._store.get_flow(claim.flow_number)
        if flow is None:  # pragma: no cover - the job exists only with its flow
            raise LookupError(claim.flow_number)
        # A small flow's bytes came with the claim; a big one's blob is read by the check from its path.
        source = claim.content if claim.content is not None else str(self._blobs.path(claim.blob_key))
        syntax = flow.syntax
        status = flow.status
        rules = await self.rulesets.rules_for(flow.depositor)
        content: ContentResult | None = None
        if status is FlowStatus.RECEIVED:
            declared = flow.syntax if flow.declared_syntax else None
            try:
                transport, content = await self._cpu(flow_check, source, flow.file_name, declared, self._limits, rules)
            except CheckAborted as exc:
                return await self._fail(flow, status, exc, started, rules)
            failed = transport_verdict(transport, rules)
            if failed is not None:
                return await self._verdict(flow, status, failed, started)
            syntax = transport.syntax or syntax
        steps = STEPS_TO_IN_PROGRESS.get(status, ())
        if content is not None:
            # Checked already: the steps up to IN_PROGRESS go in the verdict's transaction (one write less).
            return await self._judge_and_record(flow, status, content, syntax, started, steps)
        if steps:  # the content check is still to run: IN_PROGRESS is recorded before it
            updated = await self._store.transition(flow.flow_number, status, steps, actor=self._actor, at=self._clock())
            status = updated.status
        try:
            content = await self._cpu(content_check, source, flow.file_name, syntax, self._limits, rules)
        except CheckAborted as exc:
            return await self._fail(flow, status, exc, started, rules)
        return await self._judge_and_record(flow, status, content, syntax, started)

    async def _judge_and_record(
        self,
        flow: FlowRecord,
        status: FlowStatus,
        content: ContentResult,
        syntax: Syntax,
        started: float,
        steps: Sequence[FlowEvent] = (),
    ) -> FlowRecord:
        rule = await self._rule(flow, syntax)
        sirets = needed_sirets(content.documents, flow.issuer_siret)
        if self._judging_store is not None:
            return await self._record_judged(self._judging_store, flow, status, content, rule, sirets, started, steps)
        directory = await self._store.snapshot(sirets)
        for attempt in range(1, JUDGE_ATTEMPTS + 1):
            async with self._verdict_lock:
                earlier = await self._earlier(content)
                verdict = judge_content(
                    content, issuer_siret=flow.issuer_siret, directory=directory, earlier=earlier, rule=rule
                )
                try:
                    return await self._verdict(flow, status, verdict, started, steps)
                except InvoiceAlreadyIntegrated:
                    # Another process integrated one of these invoices meanwhile: judge again, and the
                    # duplicate check now sees it. The lock makes this impossible within one process.
                    if attempt == JUDGE_ATTEMPTS:
                        raise
                    log.info("flow_judged_again", flow_number=flow.flow_number, attempt=attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _record_judged(
        self,
        store: RecordsJudged,
        flow: FlowRecord,
        status: FlowStatus,
        content: ContentResult,
        rule: RejectionRule,
        sirets: Collection[str],
        started: float,
        steps: Sequence[FlowEvent],
    ) -> FlowRecord:
        """Judge and record in the store's verdict transaction (no lock needed: nothing else writes there)."""
        done = await store.record_judged(
            flow.flow_number,
            status,
            steps,
            judged_by(content, flow.issuer_siret, rule),
            sirets=sirets,
            invoice_keys=duplicate_keys(content.documents),
            actor=self._actor,
            at=self._clock(),
        )
        log_processed(done, started)
        return done

    async def _earlier(self, content: ContentResult) -> dict[tuple[str, str, str], str]:
        """Integrated invoices of earlier flows with the same (supplier, year, number) keys."""
        return await earlier_integrated(self._store, content)

    async def _rule(self, flow: FlowRecord, syntax: Syntax) -> RejectionRule:
        return await rejection_rule(self._store, flow, syntax)

    async def _cpu(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._run_cpu(self._limits.validation_timeout_s, fn, *args)
        return result

    async def _fail(
        self, flow: FlowRecord, status: FlowStatus, exc: CheckAborted, started: float, rules: Rules
    ) -> FlowRecord:
        """The check gave no result: SYSTEM_FAILURE (WARNING) with the code saying why."""
        verdict = FlowVerdict(FlowEvent.SYSTEM_FAILURE, (aborted_finding(exc),), ruleset_version=rules.ruleset.value)
        return await self._verdict(flow, status, verdict, started)

    async def _verdict(
        self,
        flow: FlowRecord,
        status: FlowStatus,
        verdict: FlowVerdict,
        started: float,
        steps: Sequence[FlowEvent] = (),
    ) -> FlowRecord:
        """Record ``verdict`` from ``status``, after ``steps`` (the way to IN_PROGRESS) in the same transaction."""
        done = await self._store.record_verdict(
            flow.flow_number,
            status,
            (*steps, verdict.event),
            actor=self._actor,
            at=self._clock(),
            flow_findings=verdict.flow_findings,
            invoices=verdict.invoices,
            ruleset_version=verdict.ruleset_version,
        )
        log_processed(done, started)
        return done


def log_processed(done: FlowRecord, started: float) -> None:
    """The line a verdict leaves in the log (``started``: the claim's ``time.monotonic()``)."""
    log.info(
        "flow_processed",
        flow_number=done.flow_number,
        status=done.status.name,
        invoices=done.invoice_count,
        integrated=done.integrated_count,
        rejected=done.rejected_count,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
