"""The files the flow use cases hand out, as bytes: CSV exports of flows and zips of rendered reports.

Invariants: an export never holds more than one batch of rows and about ``CHUNK_BYTES`` of text in memory
(it reads an async iterator of flows and yields as it goes); a CSV cell that a spreadsheet would run as a
formula is neutralised with a leading quote; zips are built off the event loop.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from collections.abc import AsyncIterator, Sequence

from engine.model import FlowRecord

CHUNK_BYTES = 64 * 1024
CSV_COLUMNS = (
    "flow_number", "file_name", "syntax", "interface_code", "channel", "issuer_siret", "depositor",
    "status", "status_code", "deposited_at", "status_changed_at", "invoice_count", "integrated_count",
    "rejected_count", "size_bytes", "sha256", "tracking_id",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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


async def csv_bytes(rows: AsyncIterator[FlowRecord]) -> AsyncIterator[bytes]:
    """``rows`` as CSV (header first, CRLF lines), in pieces of about ``CHUNK_BYTES``; the last piece is
    always yielded, even empty, so a consumer sees at least one."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    async for flow in rows:
        writer.writerow(csv_row(flow))
        if buffer.tell() >= CHUNK_BYTES:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data


def _zip(files: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


async def zip_files(files: Sequence[tuple[str, bytes]]) -> bytes:
    """A deflated zip of ``(name, data)`` members, in order, built in a thread."""
    return await asyncio.to_thread(_zip, files)
