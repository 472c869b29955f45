"""Check a file (the portal's screen 8): the report a deposit of it would get, with nothing stored.

The worker's own steps (``engine.processing``): ``flow_check`` in the validation pool, then
``transport_verdict`` or ``judge_content`` with the store's directory, its duplicate index and the
rejection rule of the channel; the status reached is the one the status machine gives (``advance``). So a
check and a deposit of the same bytes for the same structure can only disagree through what changed in
between (another flow integrating the same invoice number). Like ``fluxdepot check`` offline, the report
has no flow number and no history; unlike it, the structure is one the caller belongs to (the same rule as
a deposit: ``check_can_deposit_for``) and the directory is the store's.

Nothing is written: no flow, no blob, no event; the bytes stay in memory for the one pool call. Size limit
as for deposits (``FlowTooLarge`` past ``Limits.max_flow_bytes``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from engine import ENGINE_VERSION
from engine.business import needed_sirets
from engine.clock import utcnow
from engine.cpu_pool import CheckAborted
from engine.errors import FlowTooLarge, InvalidDepositRequest
from engine.formats.sniff import HEAD_BYTES, sniff_syntax
from engine.model import FlowRecord, FlowVerdict, Limits, Rules, Syntax
from engine.permissions import Principal, check_can_deposit_for
from engine.processing import (
    aborted_finding,
    earlier_integrated,
    judge_content,
    rejection_rule,
    transport_verdict,
)
from engine.report import Report, checked_report
from engine.ruleset_choice import DepositorRulesets
from engine.services.flows import deposit_channel, deposit_issuer
from engine.status import FlowEvent, FlowStatus, advance
from engine.store.port import Store
from engine.technical import flow_check

RunCpu = Callable[..., Awaitable[Any]]
MAX_FILE_NAME_CHARS = 255


class CheckService:
    """``check``: one file judged as a deposit for a structure would be, without depositing it."""

    def __init__(
        self,
        store: Store,
        run_cpu: RunCpu,
        limits: Limits,
        rules: Rules,
        *,
        clock: Callable[[], datetime] = utcnow,
        engine_version: str = ENGINE_VERSION,
    ) -> None:
        self._store = store
        self._run_cpu = run_cpu  # the validation pool's ``CpuPool.run``
        self._limits = limits
        self._rulesets = DepositorRulesets(store.depositor_rulesets, rules)
        self._clock = clock
        self._engine_version = engine_version

    async def check(self, principal: Principal, issuer_siret: str, file_name: str, content: bytes) -> Report:
        """The report ``content`` would get if ``principal`` deposited it for ``issuer_siret`` now."""
        issuer = deposit_issuer(principal, issuer_siret)
        check_can_deposit_for(principal, issuer)
        name = file_name.strip()
        if not name or len(name) > MAX_FILE_NAME_CHARS:
            raise InvalidDepositRequest("file_name", f"is required, at most {MAX_FILE_NAME_CHARS} characters")
        if len(content) > self._limits.max_flow_bytes:
            raise FlowTooLarge(len(content), self._limits.max_flow_bytes)
        now = self._clock()
        flow = FlowRecord(
            flow_number="",
            file_name=name,
            syntax=sniff_syntax(content[:HEAD_BYTES]) or Syntax.UBL_INVOICE,
            channel=deposit_channel(principal),
            issuer_siret=issuer,
            depositor=principal.depositor,
            status=FlowStatus.RECEIVED,
            deposited_at=now,
            status_changed_at=now,
            sha256=hashlib.sha256(content).hexdigest(),
            size_bytes=len(content),
            declared_syntax=False,
        )
        rules = await self._rulesets.rules_for(flow.depositor)
        verdict, status = await self._judge(flow, content, rules)
        return checked_report(flow, verdict, status, engine_version=self._engine_version)

    async def _judge(self, flow: FlowRecord, content: bytes, rules: Rules) -> tuple[FlowVerdict, FlowStatus]:
        """The worker's verdict on ``content`` and the final status it leads to."""
        try:
            transport, checked = await self._run_cpu(
                self._limits.validation_timeout_s, flow_check, content, flow.file_name, None, self._limits, rules
            )
        except CheckAborted as exc:
            failed = FlowVerdict(FlowEvent.SYSTEM_FAILURE, (aborted_finding(exc),), ruleset_version=rules.ruleset.value)
            return failed, advance(FlowStatus.RECEIVED, failed.event)
        refused = transport_verdict(transport, rules)
        if refused is not None or checked is None:
            refused = refused or FlowVerdict(
                FlowEvent.TECHNICAL_REJECTION, transport.findings, ruleset_version=rules.ruleset.value
            )
            return replace(refused, detected_syntax=transport.syntax), advance(FlowStatus.RECEIVED, refused.event)
        syntax = transport.syntax or flow.syntax
        directory = await self._store.snapshot(needed_sirets(checked.documents, flow.issuer_siret))
        verdict = judge_content(
            checked,
            issuer_siret=flow.issuer_siret,
            directory=directory,
            earlier=await earlier_integrated(self._store, checked),
            rule=await rejection_rule(self._store, flow, syntax),
        )
        return replace(verdict, detected_syntax=syntax), advance(FlowStatus.IN_PROGRESS, verdict.event)
