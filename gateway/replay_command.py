"""``fluxdepot admin replay``: what another ruleset would do to the stored flows, changing nothing stored.

The arguments become an ``engine.replay.ReplayRequest`` (``request_of``; a bad one is a usage error, exit
2); ``run_replay`` judges the flows again (``engine.replay``), writes each changed invoice as a CSV or
JSON row as it comes (``--csv`` / ``--json``), shows a progress bar on a terminal (stderr, never when
piped) and ends with a readable summary on stdout: flows and invoices that would change verdict, and the
rules that would newly fail or no longer fail, with counts. Exit 0 when nothing would change, 1 when some
verdict would (or some flow could not be judged), 2 on usage errors. The store is opened read-only by the
caller (``gateway.admin_commands.replay``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from engine.model import Rules, Ruleset
from engine.replay import FlowReplay, InvoiceChange, Replay, ReplayRequest, ReplaySummary, replay_all

EXIT_UNCHANGED, EXIT_CHANGED, EXIT_USAGE = 0, 1, 2
SIRET = re.compile(r"^[0-9]{14}$")
COLUMNS = (
    "flow_number",
    "issuer_siret",
    "deposited_at",
    "document",
    "invoice_number",
    "stored",
    "replayed",
    "flow_stored",
    "flow_replayed",
    "newly_failing",
    "no_longer_failing",
)
MAX_RULES_SHOWN = 20
MAX_NOT_JUDGED_SHOWN = 10


def parse_ruleset(text: str) -> Ruleset:
    """argparse ``type``: a ruleset name (unknown: a usage error naming the accepted ones)."""
    try:
        return Ruleset.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_day(text: str) -> date:
    """argparse ``type``: a day, ``YYYY-MM-DD``."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def request_of(
    rules: Rules, ruleset: Ruleset, issuer: str | None, since: date | None, until: date | None
) -> ReplayRequest:
    """The flows deposited from ``since`` to ``until`` (whole UTC days, both included); ``ValueError`` when
    the window is empty or the SIRET malformed."""
    if issuer is not None and not SIRET.match(issuer):
        raise ValueError(f"--issuer {issuer!r} is not a 14-digit SIRET")
    if since is not None and until is not None and since > until:
        raise ValueError(f"--since {since} is after --until {until}")
    start = datetime.combine(since, time(), UTC) if since else None
    end = datetime.combine(until + timedelta(days=1), time(), UTC) if until else None
    return ReplayRequest(Rules(ruleset, rules.artefacts_dir), issuer, start, end)


@dataclass(frozen=True)
class Output:
    """Where the rows go: a CSV or JSON file, or nowhere (the summary only)."""

    path: Path | None = None
    as_json: bool = False


class RowWriter:
    """Rows written as they come: CSV with a header, or a JSON array closed at the end."""

    def __init__(self, handle: TextIO | None, as_json: bool) -> None:
        self._handle = handle
        self._json = as_json
        self.rows = 0
        self._csv = csv.writer(handle) if handle is not None and not as_json else None
        if self._csv is not None:
            self._csv.writerow(COLUMNS)
        elif handle is not None:
            handle.write("[")

    def write(self, change: InvoiceChange) -> None:
        self.rows += 1
        row = _row(change)
        if self._csv is not None:
            self._csv.writerow(" ".join(v) if isinstance(v, list) else ("" if v is None else v) for v in row.values())
        elif self._handle is not None:
            self._handle.write(("\n" if self.rows == 1 else ",\n") + json.dumps(row, ensure_ascii=False))

    def close(self) -> None:
        if self._json and self._handle is not None:
            self._handle.write("\n]\n" if self.rows else "]\n")


def _row(change: InvoiceChange) -> dict[str, Any]:
    return {
        "flow_number": change.flow_number,
        "issuer_siret": change.issuer_siret,
        "deposited_at": change.deposited_at.isoformat(),
        "document": change.document,
        "invoice_number": change.invoice_number,
        "stored": change.stored.value,
        "replayed": change.replayed.value,
        "flow_stored": change.flow_stored.name,
        "flow_replayed": change.flow_replayed.name,
        "newly_failing": list(change.newly_failing),
        "no_longer_failing": list(change.no_longer_failing),
    }


async def run_replay(replay: Replay, request: ReplayRequest, output: Output, out: TextIO, err: TextIO) -> int:
    """Replay ``request``, write the rows and the summary; the exit status."""
    total = await replay.count(request)
    console = Console(file=err)
    not_judged: list[str] = []
    with ExitStack() as files:
        handle = files.enter_context(output.path.open("w", newline="", encoding="utf-8")) if output.path else None
        rows = RowWriter(handle, output.as_json)
        with _progress(console, total) as progress:
            task = progress.add_task(f"replaying under {request.rules.ruleset.value}", total=total)

            def each(result: FlowReplay) -> None:
                for change in result.changes:
                    rows.write(change)
                if result.replayed is None and len(not_judged) < MAX_NOT_JUDGED_SHOWN:
                    not_judged.append(f"{result.flow.flow_number} ({result.problem})")
                progress.advance(task)

            summary = await replay_all(replay, request, each)
        rows.close()
    out.write(render_summary(summary, request, output, rows.rows, not_judged))
    return EXIT_CHANGED if summary.changed else EXIT_UNCHANGED


def _progress(console: Console, total: int) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TimeRemainingColumn(), console=console, disable=not console.is_terminal or total < 2, transient=True,
    )  # fmt: skip


def render_summary(
    summary: ReplaySummary, request: ReplayRequest, output: Output, rows: int, not_judged: list[str]
) -> str:
    """The readable summary (stdout)."""
    window = _window(request)
    lines = [f"replay under {summary.ruleset}: {summary.flows} flows ({window}), nothing stored was changed"]
    moves = ", ".join(f"{a.name} → {b.name}: {n}" for (a, b), n in sorted(summary.status_changes.items(), key=_key))
    lines.append(f"  flows that would change status: {summary.flows_changed}" + (f" ({moves})" if moves else ""))
    lines.append(
        f"  invoices: {summary.invoices} judged; would change verdict: "
        f"{summary.became_rejected} integrated → rejected, {summary.became_integrated} rejected → integrated"
    )
    if summary.rules_changed:
        lines.append(f"  invoices whose failing rules change, verdict unchanged: {summary.rules_changed}")
    lines += _rules("rules that would newly fail (invoices)", summary.newly_failing)
    lines += _rules("rules that would no longer fail (invoices)", summary.no_longer_failing)
    if summary.not_judged:
        lines.append(f"  flows that could not be judged: {summary.not_judged}")
        lines += [f"    {item}" for item in not_judged]
    if output.path is not None:
        lines.append(f"  rows: {output.path} ({rows} invoices, {'JSON' if output.as_json else 'CSV'})")
    lines.append(f"  {summary.seconds:.1f} s, {summary.flows_per_s:.0f} flows/s")
    lines.append("nothing would change" if not summary.changed else "some verdicts would change")
    return "\n".join(lines) + "\n"


def _key(item: tuple[tuple[Any, Any], int]) -> tuple[int, str]:
    return (-item[1], f"{item[0][0].name}{item[0][1].name}")


def _rules(title: str, counts: Any) -> list[str]:
    if not counts:
        return [f"  {title}: none"]
    lines = [f"  {title}:"]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    width = max(len(rule) for rule, _ in ranked[:MAX_RULES_SHOWN])
    lines += [f"    {rule:<{width}}  {n}" for rule, n in ranked[:MAX_RULES_SHOWN]]
    if len(ranked) > MAX_RULES_SHOWN:
        lines.append(f"    … {len(ranked) - MAX_RULES_SHOWN} more rules (see the rows)")
    return lines


def _window(request: ReplayRequest) -> str:
    issuer = f"issuer {request.issuer_siret}" if request.issuer_siret else "every issuer"
    since = request.deposited_from.date().isoformat() if request.deposited_from else "…"
    until = (request.deposited_to - timedelta(days=1)).date().isoformat() if request.deposited_to else "…"
    dates = "any date" if not (request.deposited_from or request.deposited_to) else f"deposited {since} to {until}"
    return f"{issuer}, {dates}"
