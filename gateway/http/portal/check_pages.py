"""Check a file (any logged-in user): pick one of your structures, upload one invoice, and see the report a
deposit of it would get (``engine.services.check.CheckService``: the worker's pipeline, with the store's
directory), on the report page's own sections. Nothing is stored; integrators fix their files here before
they deposit. A refused check (too big, no structure of yours) shows why, on the same page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from engine.errors import EngineError
from engine.report import Report
from engine.services.portal_auth import PortalSession
from gateway.http.errors import mapped
from gateway.http.portal.routing import (
    PortalRoute,
    portal,
    posted_form,
    render,
    require_session,
    services,
    structure_names,
)

router = APIRouter(route_class=PortalRoute)


async def _page(
    request: Request,
    session: PortalSession,
    *,
    status_code: int = 200,
    chosen: str = "",
    report: Report | None = None,
    refused: tuple[str, str] = ("", ""),
) -> Response:
    structures = list((await structure_names(request, session.principal)).items())
    return render(
        request,
        "check.html",
        session,
        status_code=status_code,
        tab="check",
        structures=structures,
        chosen=chosen,
        report=report,
        issuers=dict(structures),
        refused_code=refused[0],
        refused_detail=refused[1],
        available=portal(request).checks is not None,
    )


@router.get("/check", name="portal_check")
async def check_page(request: Request) -> Response:
    session = await require_session(request)
    return await _page(request, session)


@router.post("/check")
async def check(request: Request) -> Response:
    session = await require_session(request)
    form = await posted_form(request, session)
    try:
        return await _check(request, session, form)
    finally:
        await form.close()  # type: ignore[attr-defined]  # the upload's spooled file


async def _check(request: Request, session: PortalSession, form: Any) -> Response:
    issuer = str(form.get("issuer") or "")
    upload = form.get("file")
    checks = portal(request).checks
    if checks is None or not isinstance(upload, UploadFile) or not upload.filename:
        return await _page(request, session, status_code=400, chosen=issuer, refused=("NO_FILE", ""))
    content = await upload.read(services(request).limits.max_flow_bytes + 1)  # one byte more: FlowTooLarge
    try:
        report = await checks.check(session.principal, issuer, upload.filename, content)
    except EngineError as exc:
        found = mapped(exc)
        status, code, detail = (found.status, found.code, found.message) if found else (500, "INTERNAL_ERROR", "")
        return await _page(request, session, status_code=status, chosen=issuer, refused=(code, detail))
    return await _page(request, session, chosen=issuer, report=report)
