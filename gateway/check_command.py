"""``fluxdepot check``: run the processing pipeline offline on local files (DESIGN §3).

The same functions the workers run (``flow_check``, ``judge_content``) and the
same report builder; with ``--config`` the business checks use that config's directory, without it
they are listed as not run. Exit 0 when every file is integrated, 1 when any is rejected, partly
integrated or in WARNING, 2 on usage or I/O errors.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from engine import ENGINE_VERSION
from engine.directory import DirectorySnapshot
from engine.directory_file import DirectoryFileError, load_directory
from engine.formats.sniff import HEAD_BYTES, sniff_syntax
from engine.model import Channel, FlowRecord, FlowVerdict, InvoiceStatus, Limits, RejectionRule, Syntax
from engine.processing import judge_content, system_failure
from engine.report import build_report, render_json, render_text
from engine.status import FlowEvent, FlowStatus, advance
from engine.technical import flow_check
from gateway.settings import SettingsError, load_settings

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def run_check(
    files: Sequence[str],
    *,
    syntax: str | None,
    config: str | None,
    as_json: bool,
    issuer: str | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    declared: Syntax | None = None
    if syntax:
        try:
            declared = Syntax.parse(syntax)
        except ValueError as exc:
            print(f"fluxdepot check: --syntax: {exc}", file=err)
            return EXIT_USAGE
    limits = Limits()
    directory: DirectorySnapshot | None = None
    if config:
        try:
            settings = load_settings(Path(config))
            limits = settings.engine_limits
            if settings.directory_file is not None:
                data = load_directory(settings.directory_file)
                directory = DirectorySnapshot({s.siret: s for s in data.structures})
        except (SettingsError, DirectoryFileError) as exc:
            print(f"fluxdepot check: {exc}", file=err)
            return EXIT_USAGE
    reports: list[dict[str, Any]] = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            print(f"fluxdepot check: {name}: no such file", file=err)
            return EXIT_USAGE
        reports.append(check_file(path, declared, limits, directory, issuer))
    if as_json:
        out.write(json.dumps(reports, ensure_ascii=False, indent=2) + "\n")
    else:
        for report in reports:
            out.write(render_text(report) + "\n")
    integrated = all(r["status"] == FlowStatus.INTEGRATED.name for r in reports)
    return EXIT_OK if integrated else EXIT_REJECTED


def check_file(
    path: Path,
    declared: Syntax | None,
    limits: Limits,
    directory: DirectorySnapshot | None,
    issuer: str | None,
) -> dict[str, Any]:
    """One file's report, as the daemon would produce it for a deposit of that file."""
    stat = path.stat()
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    digest = _sha256(path)
    now = datetime.now(UTC)
    syntax = declared or sniff_syntax(head) or Syntax.UBL_INVOICE
    flow = FlowRecord(
        flow_number="",
        file_name=path.name,
        syntax=syntax,
        channel=Channel.API,
        issuer_siret=issuer or "",
        depositor="local",
        status=FlowStatus.RECEIVED,
        deposited_at=now,
        status_changed_at=now,
        sha256=digest,
        size_bytes=stat.st_size,
        declared_syntax=declared is not None,
    )
    verdict, status = _evaluate(str(path), flow, declared, limits, directory, issuer)
    flow = replace(
        flow,
        status=status,
        syntax=verdict.detected_syntax or syntax,
        invoice_count=len(verdict.invoices),
        integrated_count=sum(1 for i in verdict.invoices if i.status is InvoiceStatus.INTEGRATED),
        rejected_count=sum(1 for i in verdict.invoices if i.status is InvoiceStatus.REJECTED),
    )
    report = build_report(
        flow,
        [],
        verdict.flow_findings,
        verdict.invoices,
        ruleset_version=verdict.ruleset_version,
        engine_version=ENGINE_VERSION,
    )
    return json.loads(render_json(report))  # type: ignore[no-any-return]


def _evaluate(
    path: str,
    flow: FlowRecord,
    declared: Syntax | None,
    limits: Limits,
    directory: DirectorySnapshot | None,
    issuer: str | None,
) -> tuple[FlowVerdict, FlowStatus]:
    transport, content = flow_check(path, flow.file_name, declared, limits)
    if system_failure(transport.findings):
        return FlowVerdict(FlowEvent.SYSTEM_FAILURE, transport.findings), FlowStatus.WARNING
    if transport.rejected or content is None:  # flow_check gives no content only for a rejected flow
        verdict = FlowVerdict(FlowEvent.TECHNICAL_REJECTION, transport.findings, detected_syntax=transport.syntax)
        return verdict, advance(FlowStatus.RECEIVED, verdict.event)
    syntax = transport.syntax or flow.syntax
    # Offline, the file is judged as if its own supplier deposited it, unless --issuer says otherwise.
    supplier = next((d.facts.supplier_id for d in content.documents if d.facts.supplier_id), None)
    verdict = judge_content(
        content,
        issuer_siret=issuer or supplier or "",
        directory=directory,
        earlier={},
        rule=RejectionRule.PARTIAL,
    )
    verdict = replace(verdict, detected_syntax=syntax)
    return verdict, advance(FlowStatus.IN_PROGRESS, verdict.event)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
