"""The flow routes of fluxdepot's JSON API (``/api/v1``): gRPC ``FlowService`` (and ``ReprocessFlow``) as
JSON. Each route authenticates (``Caller``), calls one use case of ``engine.services.flows.FlowsService``
and renders its answer; permissions are the service's (a hidden flow is 404 like a missing one).

A deposit is read after the caller is known (an unknown caller's upload is refused before its body is
parsed); one past ``IN_MEMORY_BYTES`` is handed to ``deposit_stream`` from the spooled upload, never whole in
memory, a smaller one (already in memory) to ``deposit``; the CSV export is
streamed from ``export_csv`` as it is produced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from engine.report import ReportFormat, render_file, render_text
from engine.services.flows import DepositForm, Reprocess
from gateway.http.api_models import (
    DashboardOut,
    DepositOut,
    Flow,
    FlowPage,
    ReportOut,
    ReprocessRequest,
    ZipRequest,
    dashboard_out,
    deposit_out,
    flow_out,
)
from gateway.http.api_params import (
    DEFAULT_PAGE_SIZE,
    Caller,
    DashboardFilters,
    FlowFilters,
    PageAfter,
    PageSize,
    errors,
    services_of,
)
from gateway.http.errors import InvalidField

router = APIRouter(prefix="/v1", tags=["flows"])

UPLOAD_CHUNK_BYTES = 1024 * 1024
# Up to this size the form parser keeps an upload in memory (Starlette's spooled file): it is deposited whole,
# its bytes then going with its row, as gRPC's Deposit does; spooling it to a blob file again cost ~2 ms of
# server CPU per 20 KB deposit (bench.http). Bigger ones are streamed from the spooled upload.
IN_MEMORY_BYTES = 1024 * 1024
FORM_FIELDS = ("issuer_siret", "syntax", "tracking_id", "sha256", "with_signature", "file_name")
MAX_FIELD_CHARS = 1024
FlowNumberPath = Annotated[str, Path(min_length=1, max_length=64, description="the flow number")]

_DEPOSIT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "the flow: XML, PDF or zip"},
                    "issuer_siret": {"type": "string", "description": "default: the caller's structure"},
                    "syntax": {"type": "string", "description": "syntaxeFlux; detected from the content if empty"},
                    "tracking_id": {"type": "string", "description": "makes the deposit idempotent per depositor"},
                    "sha256": {"type": "string", "description": "lower-case hex; checked against the file"},
                    "with_signature": {"type": "boolean", "default": False},
                    "file_name": {"type": "string", "description": "default: the uploaded file's name"},
                },
            }
        }
    },
}


def _text_field(form: Any, name: str) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidField(name, "must be a text field, not a file")
    if len(value) > MAX_FIELD_CHARS:
        raise InvalidField(name, f"is longer than {MAX_FIELD_CHARS} characters")
    return value


def _deposit_form(form: Any, upload: UploadFile) -> DepositForm:
    signature = _text_field(form, "with_signature")
    if signature not in ("", "true", "false"):
        raise InvalidField("with_signature", "must be true or false")
    return DepositForm(
        file_name=_text_field(form, "file_name") or upload.filename or "",
        issuer_siret=_text_field(form, "issuer_siret"),
        syntax=_text_field(form, "syntax") or None,
        tracking_id=_text_field(form, "tracking_id") or None,
        sha256=_text_field(form, "sha256") or None,
        with_signature=signature == "true",
    )


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while data := await upload.read(UPLOAD_CHUNK_BYTES):
        yield data


@router.post(
    "/flows",
    status_code=202,
    response_model=DepositOut,
    responses={
        **errors(403, 413, 507),
        202: {
            "description": "The flow is durable and RECEIVED.",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
    },
    openapi_extra={"requestBody": _DEPOSIT_BODY},
    summary="Deposit a flow (deposerFluxFacture)",
)
async def deposit(request: Request, principal: Caller) -> Response:
    """Multipart upload: ``file`` and optional ``issuer_siret``, ``syntax``, ``tracking_id``, ``sha256``,
    ``with_signature``, ``file_name``. Answers once the flow is durable; processing follows."""
    async with request.form(max_files=1, max_fields=len(FORM_FIELDS) + 1) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidField("file", "is required (a multipart/form-data file part)")
        flows, deposit = services_of(request).flows, _deposit_form(form, upload)
        if upload.size is not None and upload.size <= IN_MEMORY_BYTES:  # as gRPC's Deposit: no spool file
            receipt = await flows.deposit(principal, deposit, await upload.read())
        else:
            receipt = await flows.deposit_stream(principal, deposit, _upload_chunks(upload))
    body = deposit_out(receipt)
    # A path (RFC 9110 allows it): Starlette's url_for walks every route, ~0.15 ms of each deposit.
    location = f"{request.scope.get('root_path', '')}/v1/flows/{quote(body.flow_number, safe='')}"
    return Response(body.model_dump_json(), 202, {"Location": location}, media_type="application/json")


# Declared before /flows/{flow_number}, which would otherwise take "export.csv" for a flow number.
@router.get(
    "/flows/export.csv",
    response_class=StreamingResponse,
    responses={
        **errors(),
        200: {"description": "Every match, one row per flow.", "content": {"text/csv": {"schema": {"type": "string"}}}},
    },
    summary="Export every matching flow as CSV",
)
async def export_csv(request: Request, principal: Caller, query: FlowFilters) -> StreamingResponse:
    """The filters of the search; every match (no pages), streamed as it is read."""
    export = services_of(request).flows.export_csv(principal, query)
    return StreamingResponse(
        export.chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.name}"'},
    )


@router.get("/flows", response_model=FlowPage, responses=errors(), summary="Search flows, one page at a time")
async def search(
    request: Request,
    principal: Caller,
    query: FlowFilters,
    after: PageAfter,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
) -> FlowPage:
    """Flows sorted by issuer, then deposit date (newest first); ``next_page_token`` gives the next page."""
    page = await services_of(request).flows.search(principal, query, page_size=page_size, after=after)
    return FlowPage(
        flows=[flow_out(f) for f in page.flows],
        next_page_token=page.next_page.token() if page.next_page else None,
        total_count=page.total_count,
    )


@router.get("/flows/{flow_number}", response_model=Flow, responses=errors(404), summary="A flow (consulterCR)")
async def get_flow(request: Request, principal: Caller, flow_number: FlowNumberPath) -> Flow:
    return flow_out(await services_of(request).flows.get_flow(principal, flow_number.strip()))


_REPORT_TYPES = {
    "json": "application/json",
    "xml": "application/xml",
    "text": "text/plain; charset=utf-8",
}
_ACCEPTED = {"application/json": "json", "application/xml": "xml", "text/xml": "xml", "text/plain": "text"}


def negotiated(accept: str) -> str:
    """The report format ``accept`` prefers (by q-value, then order); JSON when it names none we have."""
    ranked: list[tuple[float, int, str]] = []
    for i, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        fmt = _ACCEPTED.get(media.lower())
        if fmt and q > 0:
            ranked.append((-q, i, fmt))
    return min(ranked)[2] if ranked else "json"


@router.get(
    "/flows/{flow_number}/report",
    response_model=ReportOut,
    responses={
        **errors(404),
        200: {
            "description": "The integration report: JSON, XML or readable text.",
            "content": {
                "application/xml": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
    },
    summary="A flow's integration report (consulterCRDetaille)",
)
async def get_report(
    request: Request,
    principal: Caller,
    flow_number: FlowNumberPath,
    format: Annotated[  # the parameter's public name (shadows the builtin here only)
        str | None, Query(pattern="^(json|xml|text)$", description="default: from the Accept header, else json")
    ] = None,
) -> Response:
    report = await services_of(request).flows.report(principal, flow_number.strip())
    chosen = format or negotiated(request.headers.get("accept", ""))
    if chosen == "text":
        content = render_text(report).encode()
    else:
        content = render_file(report, ReportFormat.XML if chosen == "xml" else ReportFormat.JSON)
    return Response(content, media_type=_REPORT_TYPES[chosen], headers={"Vary": "Accept"})


@router.post(
    "/reports/zip",
    response_class=Response,
    responses={
        **errors(404),
        200: {
            "description": "A zip of the reports, one <flow number>.<format> file each.",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
    },
    summary="Several reports as one zip",
)
async def reports_zip(request: Request, principal: Caller, body: ZipRequest) -> Response:
    """One missing or hidden flow is 404 for the whole zip."""
    fmt = ReportFormat.XML if body.format.value == "xml" else ReportFormat.JSON
    zipped = await services_of(request).flows.reports_zip(principal, body.flow_numbers, fmt)
    return Response(
        zipped.content,
        media_type=zipped.content_type,
        headers={"Content-Disposition": f'attachment; filename="{zipped.name}"'},
    )


@router.get("/dashboard", response_model=DashboardOut, responses=errors(), summary="Counts, stuck flows, top errors")
async def dashboard(request: Request, principal: Caller, query: DashboardFilters) -> DashboardOut:
    """Counts per issuer and status, the oldest flow per non-final status, the stuck flows and the most
    frequent errors, of the flows the caller sees."""
    return dashboard_out(await services_of(request).flows.dashboard(principal, query))


@router.post(
    "/flows/{flow_number}/reprocess",
    response_model=Flow,
    responses=errors(403, 404, 409),
    summary="Release, close or reprocess a flow (primary managers and operators)",
)
async def reprocess(request: Request, principal: Caller, flow_number: FlowNumberPath, body: ReprocessRequest) -> Flow:
    """RELEASE: held → waiting for processing; CLOSE: held → WARNING; REPROCESS: WARNING → judged again."""
    action = Reprocess[body.action.value]
    moved = await services_of(request).flows.reprocess(principal, flow_number.strip(), action, body.detail)
    return flow_out(moved)
