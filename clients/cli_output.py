"""How ``fluxdepot-cli`` shows things: rich tables for people, JSON and CSV for scripts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from clients.models import FINAL_STATUSES, STATUS_CODES, STATUS_LABELS_FR, Dashboard, Flow, FlowEvent, Report

_STYLE = {
    "INTEGRATED": "green",
    "PARTIALLY_INTEGRATED": "yellow",
    "REJECTED": "red",
    "WARNING": "red",
    "WAITING_FOR_REPROCESSING": "magenta",
}
FLOW_COLUMNS = ("flow_number", "file_name", "issuer_siret", "status", "status_code", "deposited_at")


def consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles; off a terminal, wide enough that tables do not wrap flow numbers."""
    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=200)
    return out, err


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    raise TypeError(type(value).__name__)


def to_json(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, list | tuple):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]  # type: ignore[arg-type]
    return json.dumps(value, default=_default, ensure_ascii=False, indent=2)


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else ""


def status_text(status: str) -> str:
    style = _STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def age(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    if days:
        return f"{days}d {h}h"
    if hours:
        return f"{hours}h {m}m"
    return f"{minutes}m {s}s" if minutes else f"{s}s"


def flows_table(flows: Iterable[Flow], *, title: str | None = None) -> Table:
    table = Table(title=title)
    for name in ("flow number", "file", "issuer", "channel", "status", "code", "deposited (UTC)", "invoices"):
        table.add_column(name, no_wrap=name in ("flow number", "code"))
    for f in flows:
        table.add_row(
            f.flow_number, f.file_name, f.issuer_siret, f.channel, status_text(f.status), f.status_code,
            when(f.deposited_at), f"{f.integrated_count}/{f.invoice_count}" if f.invoice_count else "",
        )  # fmt: skip
    return table


def event_line(e: FlowEvent) -> str:
    mark = " (final)" if e.final else ""
    status = f"{status_text(e.status)} {e.status_code}{mark}"
    return f"{when(e.at)}  #{e.cursor:<8} {e.flow_number}  {e.issuer_siret}  {status}"


def dashboard_tables(board: Dashboard) -> list[Table]:
    totals = Table(title=f"Flows per status ({board.total_count} in all)")
    for name in ("status", "code", "label", "flows", "oldest", "stuck"):
        totals.add_column(name, justify="right" if name in ("flows", "stuck") else "left")
    counts = {t.status: t for t in board.totals}
    for status, code in STATUS_CODES.items():
        row = counts.get(status)
        oldest = board.oldest.get(status)
        totals.add_row(
            status_text(status), code, STATUS_LABELS_FR[status], str(row.count if row else 0),
            age(oldest) if oldest is not None and status not in FINAL_STATUSES else "",
            str(board.stuck[status]) if status in board.stuck else "",
        )  # fmt: skip
    per_issuer = Table(title="Per issuer", caption="drill down: fluxdepot-cli search --issuer SIRET --status STATUS")
    for name in ("issuer", "status", "flows"):
        per_issuer.add_column(name, justify="right" if name == "flows" else "left")
    for r in board.rows:
        per_issuer.add_row(r.issuer_siret, status_text(r.status), str(r.count))
    tables = [totals, per_issuer]
    if board.top_errors:
        errors = Table(title="Most frequent errors")
        for name in ("code", "rule", "count"):
            errors.add_column(name)
        for code, rule, count in board.top_errors:
            errors.add_row(code, rule, str(count))
        tables.append(errors)
    return tables


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
