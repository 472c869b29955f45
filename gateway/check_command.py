"""``fluxdepot check``: run the processing pipeline offline on local files (DESIGN §3).

The same functions the workers run (``flow_check``, ``judge_content``) and the
same report builder; with ``--config`` the business checks use that config's directory, without it
they are listed as not run. The ruleset is ``--ruleset``, else the config's ``[rules] ruleset``, else
``en16931``; a missing or altered artefact puts the file in WARNING (``CHECK_FAILED``), as in the daemon.
Exit 0 when every file is integrated, 1 when any is rejected, partly integrated or in WARNING, 2 on usage
or I/O errors.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from engine import ENGINE_VERSION
from engine.directory import DirectorySnapshot
from engine.directory_file import DirectoryFileError, load_directory
from engine.formats.sniff import HEAD_BYTES, sniff_syntax
from engine.model import (
    Channel,
    FlowRecord,
    FlowVerdict,
    Limits,
    RejectionRule,
    Rules,
    Ruleset,
    Syntax,
)
from engine.processing import judge_content, system_failure
from engine.report import Report, checked_report, render_text, report_dict
from engine.status import FlowEvent, FlowStatus, advance
from engine.technical import DEFAULT_RULES, flow_check
from gateway.settings import SettingsError, load_settings

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def run_check(
    files: Sequence[str],
    *,
    syntax: str | None,
    config: str | None,
    as_json: bool,
    issuer: str | None,
    ruleset: str | None = None,
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
    rules = DEFAULT_RULES
    directory: DirectorySnapshot | None = None
    if config:
        try:
            settings = load_settings(Path(config))
            limits = settings.engine_limits
            rules = settings.engine_rules
            if settings.directory_file is not None:
                data = load_directory(settings.directory_file)
                directory = DirectorySnapshot({s.siret: s for s in data.structures})
        except (SettingsError, DirectoryFileError) as exc:
            print(f"fluxdepot check: {exc}", file=err)
            return EXIT_USAGE
    if ruleset:  # --ruleset wins over the config's [rules] ruleset
        try:
            rules = replace(rules, ruleset=Ruleset.parse(ruleset))
        except ValueError as exc:
            print(f"fluxdepot check: --ruleset: {exc}", file=err)
            return EXIT_USAGE
    reports: list[Report] = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            print(f"fluxdepot check: {name}: no such file", file=err)
            return EXIT_USAGE
        reports.append(check_file(path, declared, limits, directory, issuer, rules))
    if as_json:
        out.write(json.dumps([report_dict(r) for r in reports], ensure_ascii=False, indent=2) + "\n")
    else:
        for report in reports:
            out.write(render_text(report) + "\n")
    integrated = all(r.flow.status is FlowStatus.INTEGRATED for r in reports)
    return EXIT_OK if integrated else EXIT_REJECTED


def check_file(
    path: Path,
    declared: Syntax | None,
    limits: Limits,
    directory: DirectorySnapshot | None,
    issuer: str | None,
    rules: Rules = DEFAULT_RULES,
) -> Report:
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
    verdict, status = _evaluate(str(path), flow, declared, limits, directory, issuer, rules)
    return checked_report(flow, verdict, status, engine_version=ENGINE_VERSION)


def _evaluate(
    path: str,
    flow: FlowRecord,
    declared: Syntax | None,
    limits: Limits,
    directory: DirectorySnapshot | None,
    issuer: str | None,
    rules: Rules,
) -> tuple[FlowVerdict, FlowStatus]:
    transport, content = flow_check(path, flow.file_name, declared, limits, rules)
    if system_failure(transport.findings):
        failed = FlowVerdict(FlowEvent.SYSTEM_FAILURE, transport.findings, ruleset_version=rules.ruleset.value)
        return failed, FlowStatus.WARNING
    if transport.rejected or content is None:  # flow_check gives no content only for a rejected flow
        verdict = FlowVerdict(
            FlowEvent.TECHNICAL_REJECTION,
            transport.findings,
            ruleset_version=rules.ruleset.value,
            detected_syntax=transport.syntax,
        )
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
