"""How ``fluxdepot-cli`` shows things: rich tables for people, JSON and CSV for scripts.

Tables fit the console (``clients.cli_tables``): 80 columns show the essentials, a wider terminal (or
``COLUMNS``) shows more. Every JSON output writes times one way: ISO 8601 to the second, with the offset
(``2026-12-06T21:00:48+00:00``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from clients.cli_tables import Cell, Col, fitted_table
from clients.models import (
    FINAL_STATUSES,
    STATUS_CODES,
    STATUS_LABELS_FR,
    Dashboard,
    Flow,
    FlowEvent,
    Reject,
    Report,
    Structure,
)

_STYLE = {
    "INTEGRATED": "green",
    "PARTIALLY_INTEGRATED": "yellow",
    "REJECTED": "red",
    "WARNING": "red",
    "WAITING_FOR_REPROCESSING": "magenta",
}
FLOW_COLUMNS = ("flow_number", "file_name", "issuer_siret", "status", "status_code", "deposited_at")


def consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles as wide as the terminal, or ``COLUMNS``; piped with no ``COLUMNS``, 200
    columns, so that a file or a pager gets whole tables."""
    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    if not out.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        out = Console(highlight=False, width=200)
    return out, err


def iso_time(at: datetime) -> str:
    """The one way JSON outputs write a time, as the server's reports do: ``2026-12-06T21:00:48.123+00:00``
    (milliseconds, as Chorus Pro dates a deposit)."""
    return at.isoformat(timespec="milliseconds")


def _plain(value: Any) -> Any:
    """``value`` with dataclasses as dicts and times as ``iso_time`` strings, for ``json.dumps``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def to_json(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, indent=indent)


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else ""


def status_text(status: str) -> str:
    style = _STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def status_cell(status: str) -> Text:
    return Text(status, style=_STYLE.get(status, ""))


def age(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    if days:
        return f"{days}d {h}h"
    if hours:
        return f"{hours}h {m}m"
    return f"{minutes}m {s}s" if minutes else f"{s}s"


FLOWS_TABLE = (
    Col("flow number"), Col("file", fold=True, min_width=12), Col("issuer", drop=3), Col("channel", drop=5),
    Col("status"), Col("code", drop=4), Col("deposited (UTC)", drop=1), Col("invoices", drop=2),
)  # fmt: skip


def flows_table(flows: Iterable[Flow], width: int, *, title: str | None = None) -> Table:
    """At 80 columns: flow number, file (folded) and status, then the date when it fits; with more room
    the invoices, issuer, Chorus Pro code and channel too."""
    return fitted_table(width, FLOWS_TABLE, [_flow_row(f) for f in flows], title=title)


def _flow_row(f: Flow) -> tuple[Cell, ...]:
    invoices = f"{f.integrated_count}/{f.invoice_count}" if f.invoice_count else ""
    return (
        f.flow_number, f.file_name, f.issuer_siret, f.channel, status_cell(f.status), f.status_code,
        when(f.deposited_at), invoices,
    )  # fmt: skip


DEPOSIT_TABLE = (Col("file", fold=True, min_width=10), Col("flow number"), Col("status"), Col("code", drop=1))


def deposit_table(results: Sequence[Mapping[str, Any]], width: int, *, title: str) -> Table:
    """One row per file (its base name; --json keeps the path given), with a note column when some file
    has one (an error, or a tracking id already used)."""
    cols: tuple[Col, ...] = DEPOSIT_TABLE
    rows: list[list[Cell]] = []
    for r in results:
        status = status_cell(r.get("status", "FAILED"))
        rows.append([Path(r["file"]).name, r.get("flow_number", ""), status, r.get("status_code", "")])
    notes = [r.get("error") or ("already deposited (same tracking id)" if r.get("already_deposited") else "")
             for r in results]  # fmt: skip
    if any(notes):
        cols += (Col("note", fold=True, min_width=10),)
        rows = [[*row, note] for row, note in zip(rows, notes, strict=True)]
    return fitted_table(width, cols, rows, title=title)


def event_line(e: FlowEvent) -> str:
    mark = " (final)" if e.final else ""
    status = f"{status_text(e.status)} {e.status_code}{mark}"
    return f"{when(e.at)}  #{e.cursor:<8} {e.flow_number}  {e.issuer_siret}  {status}"


TOTALS_TABLE = (
    Col("status"), Col("code", drop=3), Col("label", fold=True, min_width=12), Col("flows", justify="right"),
    Col("oldest", drop=2), Col("stuck", drop=1, justify="right"),
)  # fmt: skip
PER_ISSUER_TABLE = (Col("issuer"), Col("status"), Col("flows", justify="right"))
ERRORS_TABLE = (Col("code"), Col("rule", fold=True, min_width=12), Col("count", justify="right"))


def dashboard_tables(board: Dashboard, width: int) -> list[RenderableType]:
    """Counts per status (at 80 columns the Chorus Pro code gives way; the French label folds), per
    issuer, and the most frequent errors."""
    counts = {t.status: t for t in board.totals}
    totals = []
    for status, code in STATUS_CODES.items():
        row = counts.get(status)
        oldest = board.oldest.get(status)
        totals.append((
            status_cell(status), code, STATUS_LABELS_FR[status], str(row.count if row else 0),
            age(oldest) if oldest is not None and status not in FINAL_STATUSES else "",
            str(board.stuck[status]) if status in board.stuck else "",
        ))  # fmt: skip
    per_issuer = [(r.issuer_siret, status_cell(r.status), str(r.count)) for r in board.rows]
    tables: list[RenderableType] = [
        fitted_table(width, TOTALS_TABLE, totals, title=f"Flows per status ({board.total_count} in all)"),
        fitted_table(width, PER_ISSUER_TABLE, per_issuer, title="Per issuer"),
        Text("drill down: fluxdepot-cli search --issuer SIRET --status STATUS"),
    ]
    if board.top_errors:
        errors = [(code, rule, str(count)) for code, rule, count in board.top_errors]
        tables.append(fitted_table(width, ERRORS_TABLE, errors, title="Most frequent errors"))
    return tables


REJECTS_TABLE = (
    Col("day", drop=2), Col("issuer", drop=1), Col("flow number"), Col("invoice", fold=True, min_width=10),
    Col("reason", fold=True, min_width=12),
)  # fmt: skip
STRUCTURES_TABLE = (
    Col("siret"), Col("name", fold=True, min_width=12), Col("provider"), Col("services", fold=True, min_width=12),
)  # fmt: skip


def rejects_table(rejects: Sequence[Reject], width: int) -> Table:
    rows = [
        (r.deposited_at.date().isoformat() if r.deposited_at else "", r.issuer_siret, r.flow_number,
         r.invoice_number or r.document, r.reason)
        for r in rejects
    ]  # fmt: skip
    return fitted_table(width, REJECTS_TABLE, rows, title=f"{len(rejects)} invoice(s) not integrated")


def structures_table(structures: Sequence[Structure], width: int) -> Table:
    rows = [(s.siret, s.name, "yes" if s.is_provider else "", ", ".join(s.services)) for s in structures]
    return fitted_table(width, STRUCTURES_TABLE, rows, title="structures")


def report_lines(report: Report) -> list[str]:
    f = report.flow
    lines = [
        f"[bold]{f.flow_number}[/]  {f.file_name}  ({f.syntax}, {f.interface_code})",
        f"issuer {f.issuer_siret} · deposited {when(f.deposited_at)} UTC by {f.depositor}",
        f"status {status_text(f.status)} ({f.status_code}, {f.status_label})"
        + (f" · invoices {f.integrated_count}/{f.invoice_count} integrated" if f.invoice_count else ""),
    ]
    if report.errors:
        lines.append("[bold]flow errors[/]")
        lines += _error_lines(report.errors, "  ")
    for inv in report.invoices:
        label = inv.number or inv.document
        lines.append(f"invoice {label}: {status_text(inv.status.upper())}" + (f" ({inv.amount})" if inv.amount else ""))
        lines += _error_lines(inv.errors, "  ")
    lines.append(f"[bold]next:[/] {report.next_action_message}")
    return lines


def _error_lines(errors: Sequence[Any], indent: str) -> list[str]:
    out = []
    for e in errors:
        where = " · ".join(x for x in (e.rule, e.business_term, e.location) if x)
        out.append(f"{indent}[red]{e.code}[/] {e.message}" + (f" [{where}]" if where else ""))
        if e.hint:
            out.append(f"{indent}  hint: {e.hint}")
    return out
