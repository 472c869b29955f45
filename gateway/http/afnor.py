"""The AFNOR XP Z12-013 Flow Service 1.1.0 under ``/v1``: deposit, search and download flows.

Each route: the caller (``HttpAuth.principal``: bearer token, rate limit), the request's fields checked
(``InvalidField``, 400, naming the field), one use case of ``engine.services.flows``, the answer in the
standard's terms (``gateway.http.afnor_convert``). A flow the caller may not see is 404 like a missing one;
a search never returns one. The standard's own document is served at ``GET /v1/openapi.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from engine.permissions import Principal
from engine.report import render_text
from engine.services.flows import DepositForm
from gateway.http import afnor_convert as conv
from gateway.http.errors import HttpError, InvalidField, NotFoundHere
from gateway.http.services import HttpServices

router = APIRouter()
DOCUMENT = "afnor-flow-service-1.1.0.json"
UPLOAD_CHUNK_BYTES = 256 * 1024
# Up to this size the form parser keeps an upload in memory (Starlette's spooled file), so it is deposited
# whole, as gRPC's Deposit does (a small flow's bytes then go with its row); bigger ones are streamed.
IN_MEMORY_BYTES = 1024 * 1024
MAX_FLOW_INFO_BYTES = 64 * 1024
MAX_ID_CHARS = 36  # NotOnlyUuid
MAX_NAME_CHARS = 255
_SHA256 = re.compile(r"^[a-f0-9]{64}$")
_DATE_TIME = re.compile(  # RFC 3339 date-time, the standard's "format: date-time"
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_ENUMS = {
    "flowSyntax": ("CII", "UBL", "Factur-X", "CDAR", "FRR"),
    "flowProfile": ("Basic", "CIUS", "Extended-CTC-FR"),
    "processingRule": ("B2B", "B2BInt", "B2C", "OutOfScope", "ArchiveOnly", "NotApplicable"),
    "flowType": (
        "CustomerInvoice",
        "SupplierInvoice",
        "StateInvoice",
        "CustomerInvoiceLC",
        "SupplierInvoiceLC",
        "StateCustomerInvoiceLC",
        "StateSupplierInvoiceLC",
        "AggregatedCustomerTransactionReport",
        "UnitaryCustomerTransactionReport",
        "AggregatedCustomerPaymentReport",
        "UnitaryCustomerPaymentReport",
        "UnitarySupplierTransactionReport",
        "MultiFlowReport",
    ),
    "flowDirection": ("In", "Out"),
    "ackStatus": ("Pending", "Ok", "Error"),
}


class Unprocessable(HttpError):
    """A well-formed value the standard allows that fluxdepot has no equivalent for (CDAR, FRR)."""

    status = 422
    code = "UNPROCESSABLE_ENTITY"


async def caller(request: Request) -> Principal:
    services: HttpServices = request.app.state.services
    return await services.auth.principal(request)


def _services(request: Request) -> HttpServices:
    return request.app.state.services  # type: ignore[no-any-return]


@router.get("/v1/healthcheck", include_in_schema=False)
async def healthcheck() -> Response:
    """200 with an empty body while the daemon serves (the standard's ``Ok200EmptyResponse``)."""
    return Response(status_code=200)


@router.get("/v1/openapi.json", include_in_schema=False)
async def openapi_document() -> Response:
    """The standard's document this service implements, as published (shipped as package data)."""
    text = resources.files("gateway.http").joinpath(DOCUMENT).read_bytes()
    return Response(text, media_type="application/json")


# --- POST /v1/flows ---------------------------------------------------------------------------------------


def _text(info: dict[str, Any], name: str, max_chars: int) -> str | None:
    value = info.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidField(f"flowInfo.{name}", "must be a string")
    if len(value) > max_chars:
        raise InvalidField(f"flowInfo.{name}", f"is longer than {max_chars} characters")
    return value


def _choice(info: dict[str, Any], name: str, where: str) -> str | None:
    value = info.get(name)
    if value is None:
        return None
    if value not in _ENUMS[name]:
        raise InvalidField(f"{where}.{name}", "must be one of " + ", ".join(_ENUMS[name]))
    return str(value)


async def _flow_info(part: str | UploadFile | None) -> dict[str, Any]:
    """The ``flowInfo`` part (a form field or a file part of type application/json) as a JSON object."""
    if part is None:
        raise InvalidField("flowInfo", "is required")
    raw = part if isinstance(part, str) else (await part.read(MAX_FLOW_INFO_BYTES + 1)).decode("utf-8", "replace")
    if len(raw) > MAX_FLOW_INFO_BYTES:
        raise InvalidField("flowInfo", f"is larger than {MAX_FLOW_INFO_BYTES} bytes")
    try:
        info = json.loads(raw)
    except ValueError:
        raise InvalidField("flowInfo", "is not JSON") from None
    if not isinstance(info, dict):
        raise InvalidField("flowInfo", "must be a JSON object")
    return info


def _deposit_form(info: dict[str, Any], upload: UploadFile) -> DepositForm:
    syntax = _choice(info, "flowSyntax", "flowInfo")
    if syntax is None:
        raise InvalidField("flowInfo.flowSyntax", "is required")
    profile = _choice(info, "flowProfile", "flowInfo")
    rule = _choice(info, "processingRule", "flowInfo")
    if rule is not None and rule != conv.PROCESSING_RULE:
        raise Unprocessable(f"flowInfo.processingRule: only {conv.PROCESSING_RULE} (e-invoicing) flows are taken")
    sha256 = _text(info, "sha256", 64)
    if sha256 is not None and not _SHA256.match(sha256):
        raise InvalidField("flowInfo.sha256", "must be 64 lower-case hexadecimal characters")
    try:
        declared = conv.declared_syntax(syntax, profile)
    except conv.UnsupportedValue as exc:
        raise Unprocessable(str(exc)) from None
    name = _text(info, "name", MAX_NAME_CHARS) or upload.filename or "flow"
    return DepositForm(
        file_name=name,
        syntax=declared.value,
        tracking_id=_text(info, "trackingId", MAX_ID_CHARS),
        sha256=sha256,
    )


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while piece := await upload.read(UPLOAD_CHUNK_BYTES):
        yield piece


@router.post("/v1/flows", include_in_schema=False)
async def create_flow(request: Request, principal: Principal = Depends(caller)) -> JSONResponse:  # noqa: B008
    """Deposit one flow (multipart: ``flowInfo`` JSON and ``file``); 202 once it is durable. A file past
    ``IN_MEMORY_BYTES`` is spooled to disk by the form parser and handed on in chunks, never whole in memory."""
    form = await request.form(max_files=2, max_fields=4, max_part_size=MAX_FLOW_INFO_BYTES)
    try:
        info = await _flow_info(form.get("flowInfo"))
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidField("file", "is required (a file part)")
        deposit = _deposit_form(info, upload)
        flows = _services(request).flows
        if upload.size is not None and upload.size <= IN_MEMORY_BYTES:  # as gRPC's Deposit: no spool file
            receipt = await flows.deposit(principal, deposit, await upload.read())
        else:
            receipt = await flows.deposit_stream(principal, deposit, _chunks(upload))
    finally:
        await form.close()
    return JSONResponse(conv.full_flow_info(receipt), status_code=202)


# --- POST /v1/flows/search --------------------------------------------------------------------------------


def _date_time(where: dict[str, Any], name: str) -> datetime | None:
    value = where.get(name)
    if value is None and name not in where:
        return None
    match = _DATE_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidField(f"where.{name}", "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00.000Z")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    try:
        return datetime.fromisoformat(
            f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{min(second, 59):02d}"
            + (fraction[:7] if fraction else "")
            + ("+00:00" if offset in ("Z", "z") else offset)
        ).astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise InvalidField(f"where.{name}", "is not a valid date and time") from None


def _choices(where: dict[str, Any], name: str) -> tuple[str, ...]:
    values = where.get(name, [])
    if not isinstance(values, list):
        raise InvalidField(f"where.{name}", "must be an array")
    for value in values:
        if value not in _ENUMS[name]:
            raise InvalidField(f"where.{name}", "values must be among " + ", ".join(_ENUMS[name]))
    return tuple(values)


_CRITERIA = ("updatedAfter", "updatedBefore", "processingRule", "flowType", "flowDirection", "trackingId", "ackStatus")


def search_request(body: Any) -> tuple[int, dict[str, Any], conv.SearchFilters]:
    """The limit, the ``where`` object as given and the filters of a ``SearchFlowParams`` body."""
    if not isinstance(body, dict):
        raise InvalidField("body", "must be a JSON object")
    limit = body.get("limit", conv.DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidField("limit", "must be an integer")
    if not 1 <= limit <= conv.MAX_LIMIT:
        raise InvalidField("limit", f"must be between 1 and {conv.MAX_LIMIT}")
    where = body.get("where")
    if not isinstance(where, dict):
        raise InvalidField("where", "is required: an object with at least one criterion")
    if not any(name in where for name in _CRITERIA):
        raise InvalidField("where", "needs at least one criterion, e.g. updatedAfter")
    tracking = where.get("trackingId")
    if "trackingId" in where and (not isinstance(tracking, str) or len(tracking) > MAX_ID_CHARS):
        raise InvalidField("where.trackingId", f"must be a string of at most {MAX_ID_CHARS} characters")
    ack = where.get("ackStatus")
    if "ackStatus" in where and ack not in _ENUMS["ackStatus"]:
        raise InvalidField("where.ackStatus", "must be one of " + ", ".join(_ENUMS["ackStatus"]))
    filters = conv.SearchFilters(
        updated_after=_date_time(where, "updatedAfter"),
        updated_before=_date_time(where, "updatedBefore"),
        processing_rules=_choices(where, "processingRule"),
        flow_types=_choices(where, "flowType"),
        flow_directions=_choices(where, "flowDirection"),
        tracking_id=tracking,
        ack_status=ack,
    )
    return limit, {k: where[k] for k in _CRITERIA if k in where}, filters


@router.post("/v1/flows/search", include_in_schema=False)
async def search_flows(request: Request, principal: Principal = Depends(caller)) -> JSONResponse:  # noqa: B008
    """The flows the caller sees that match, oldest update first: the next page is asked with
    ``updatedAfter`` = the last result's ``updatedAt``."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidField("body", "is not JSON") from None
    limit, where, filters = search_request(body)
    query = conv.flow_query(filters)
    flows = [] if query is None else await _services(request).flows.search_changed(principal, query, limit=limit + 1)
    return JSONResponse(conv.search_content(limit, where, conv.page_of_changes(flows, limit)))


# --- GET /v1/flows/{flowId} -------------------------------------------------------------------------------


def _attachment(name: str) -> dict[str, str]:
    """``Content-Disposition`` as the standard writes it (``attachment;filename=...``), with the UTF-8 name."""
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return {"Content-Disposition": f"attachment;filename=\"{plain}\";filename*=UTF-8''{quote(name, safe='')}"}


@router.get("/v1/flows/{flow_id}", include_in_schema=False)
async def get_flow(
    request: Request,
    flow_id: str,
    doc_type: Literal["Metadata", "Original", "Converted", "ReadableView"] = Query("Metadata", alias="docType"),
    principal: Principal = Depends(caller),  # noqa: B008
) -> Response:
    """Metadata: the ``Flow`` with its acknowledgement details; Original: the bytes deposited;
    ReadableView: the integration report as text; Converted: 404 (flows are kept as deposited)."""
    number = flow_id.strip()
    if not number or len(number) > MAX_ID_CHARS:
        raise InvalidField("flowId", f"must be 1 to {MAX_ID_CHARS} characters")
    flows = _services(request).flows
    if doc_type == "Original":
        original = await flows.original(principal, number)
        return StreamingResponse(original.chunks, media_type=original.content_type, headers=_attachment(original.name))
    report = await flows.report(principal, number)
    if doc_type == "Converted":
        raise NotFoundHere("no converted document: fluxdepot keeps each flow in the syntax it was deposited in")
    if doc_type == "ReadableView":
        text = render_text(report).encode()
        return Response(text, media_type="application/octet-stream", headers=_attachment(f"{number}.txt"))
    return JSONResponse(conv.afnor_flow(report.flow, report))
