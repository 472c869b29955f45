"""Files the gRPC API streams: rendered reports, zips of reports, CSV exports — cut into chunks.

Invariants: an export never holds more than one batch of rows and one chunk of text in memory (it reads
``Store.iter_search`` and yields as it goes); a CSV cell that a spreadsheet would run as a formula is
neutralised with a leading quote; zips are built off the event loop.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from engine import ENGINE_VERSION
from engine.errors import FlowNotFound
from engine.model import FlowRecord
from engine.report import build_report, render_json, render_xml
from engine.store.port import Store
from fluxdepot.v1 import flows_pb2 as pb

CHUNK_BYTES = 64 * 1024
CSV_COLUMNS = (
    "flow_number", "file_name", "syntax", "interface_code", "channel", "issuer_siret", "depositor",
    "status", "status_code", "deposited_at", "status_changed_at", "invoice_count", "integrated_count",
    "rejected_count", "size_bytes", "sha256", "tracking_id",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


async def load_report(store: Store, flow: FlowRecord, *, engine_version: str = ENGINE_VERSION) -> dict[str, Any]:
    """``engine.report.build_report`` for a stored flow."""
    number = flow.flow_number
    return build_report(
        flow,
        await store.history(number),
        await store.flow_findings(number),
        await store.invoices(number),
        ruleset_version=await store.ruleset_version(number) or "",
        engine_version=engine_version,
    )


def render(report: dict[str, Any], fmt: int) -> tuple[bytes, str, str]:
    """The rendered report, its content type and file extension (``fmt``: a ``ReportFormat``)."""
    if fmt == pb.REPORT_FORMAT_XML:
        return render_xml(report), "application/xml", "xml"
    return render_json(report).encode(), "application/json", "json"


def chunks(data: bytes, file_name: str, content_type: str) -> Iterator[pb.FileChunk]:
    """``data`` as ``FileChunk``s of at most ``CHUNK_BYTES``; the first names the file (even if empty)."""
    for start in range(0, max(len(data), 1), CHUNK_BYTES):
        first = start == 0
        yield pb.FileChunk(
            data=data[start : start + CHUNK_BYTES],
            file_name=file_name if first else "",
            content_type=content_type if first else "",
        )


def _zip(files: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


async def reports_zip(store: Store, flows: Sequence[FlowRecord], fmt: int) -> bytes:
    """A zip holding the rendered report of each of ``flows`` (``<flow number>.<json|xml>``)."""
    files = []
    for flow in flows:
        data, _, ext = render(await load_report(store, flow), fmt)
        files.append((f"{flow.flow_number}.{ext}", data))
    return await asyncio.to_thread(_zip, files)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(flow: FlowRecord) -> list[str]:
    values = (
        flow.flow_number, flow.file_name, flow.syntax.value, flow.interface_code, flow.channel.value,
        flow.issuer_siret, flow.depositor, flow.status.name, flow.status.code,
        flow.deposited_at.isoformat(), flow.status_changed_at.isoformat(), flow.invoice_count,
        flow.integrated_count, flow.rejected_count, flow.size_bytes, flow.sha256, flow.tracking_id,
    )  # fmt: skip
    return [_cell(v) for v in values]


async def csv_chunks(rows: AsyncIterator[FlowRecord], file_name: str) -> AsyncIterator[pb.FileChunk]:
    """Stream ``rows`` as CSV chunks: header first, then about ``CHUNK_BYTES`` of rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    first = True
    async for flow in rows:
        writer.writerow(csv_row(flow))
        if buffer.tell() >= CHUNK_BYTES:
            yield _text_chunk(buffer, file_name if first else "")
            first = False
    yield _text_chunk(buffer, file_name if first else "")


def _text_chunk(buffer: io.StringIO, file_name: str) -> pb.FileChunk:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return pb.FileChunk(data=data, file_name=file_name, content_type="text/csv" if file_name else "")


async def visible_flows(store: Store, numbers: Sequence[str], allows: Any, *, limit: int) -> list[FlowRecord]:
    """The flows named, in order, deduplicated; a missing or hidden one raises ``FlowNotFound``."""
    out: list[FlowRecord] = []
    seen: set[str] = set()
    for number in numbers:
        if number in seen:
            continue
        seen.add(number)
        flow = await store.get_flow(number)
        if flow is None or not allows(flow.issuer_siret, flow.depositor):
            raise FlowNotFound(number)
        out.append(flow)
    return out[:limit]
