"""The Homepage, Search, Report and Dashboard tabs: each route reads its form, calls one use case of
``engine.services.flows.FlowsService`` with the logged-in user's ``Principal`` and renders a page; a user
sees exactly what gRPC would show them (no flow, no count, no report of a structure where they lack the
flow follow-up profile)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from engine.queries import DashboardQuery, FlowQuery, IssuerPage
from engine.report import ReportFormat, render_file
from engine.services.flows import DashboardView
from engine.services.portal_auth import PortalSession
from engine.status import FlowStatus
from gateway.http.portal.routing import (
    PortalRoute,
    portal,
    posted_form,
    render,
    require_session,
    services,
    structure_names,
)
from gateway.http.portal.search_form import FLOW_TYPES, SearchForm, flows_of_type, page_key

router = APIRouter(route_class=PortalRoute)
HOME_ROWS = 20
PAGE_ROWS = 50
# Issuer rows per Dashboard page: a manager following 1,000 issuers got one table of 1,000 x 9 linked cells
# (200 ms to render at 1,000,000 flows); a page of them renders in a bounded time, the totals row counts all.
DASHBOARD_ISSUERS = 50


async def _issuers(request: Request, session: PortalSession) -> list[tuple[str, str]]:
    """(SIRET, name) of the structures whose flows the user follows: the Issuer choices."""
    names = await structure_names(request, session.principal)
    return [(siret, names.get(siret, siret)) for siret in sorted(session.principal.follows)]


def _download(name: str, content_type: str, content: bytes) -> Response:
    return Response(content, media_type=content_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/", name="portal_home")
async def home(request: Request) -> Response:
    session = await require_session(request)
    page = await services(request).flows.search(session.principal, FlowQuery(), page_size=HOME_ROWS)
    return render(request, "home.html", session, tab="home", page=page, issuers=dict(await _issuers(request, session)))


@router.get("/search", name="portal_search")
async def search(request: Request) -> Response:
    session = await require_session(request)
    form = SearchForm.read(request.query_params)
    page = None
    if request.query_params.get("run") or any(form.values.values()):
        query = form.query(portal(request).time_zone)
        after = page_key(request.query_params.get("page"))
        page = await services(request).flows.search(session.principal, query, page_size=PAGE_ROWS, after=after)
    return render(
        request,
        "search.html",
        session,
        tab="search",
        form=form,
        page=page,
        issuers=await _issuers(request, session),
        flow_types=FLOW_TYPES,
        # the flows of the type chosen (of every type before a choice), grouped by type
        syntaxes=[(kind, flows_of_type(kind)) for kind in FLOW_TYPES if form.values["flow_type"] in ("", kind)],
    )


@router.get("/search/export.csv", name="portal_export")
async def export(request: Request) -> Response:
    session = await require_session(request)
    form = SearchForm.read(request.query_params)
    out = services(request).flows.export_csv(session.principal, form.query(portal(request).time_zone))
    return StreamingResponse(
        out.chunks, media_type=out.content_type, headers={"Content-Disposition": f'attachment; filename="{out.name}"'}
    )


@router.post("/reports.zip", name="portal_reports_zip")
async def reports_zip(request: Request) -> Response:
    session = await require_session(request)
    form = await posted_form(request, session)
    numbers = [str(n) for n in form.getlist("flow")]  # type: ignore[attr-defined]
    if not numbers:
        return render(request, "error.html", session, status_code=400, status=400, message="no_selection")
    out = await services(request).flows.reports_zip(session.principal, numbers, ReportFormat.JSON)
    return _download(out.name, out.content_type, out.content)


@router.get("/flows/{flow_number}", name="portal_report")
async def report(request: Request, flow_number: str) -> Response:
    session = await require_session(request)
    found = await services(request).flows.report(session.principal, flow_number)
    return render(
        request, "report.html", session, tab="search", report=found, issuers=dict(await _issuers(request, session))
    )


@router.get("/flows/{flow_number}/report.{ext}", name="portal_report_file")
async def report_file(request: Request, flow_number: str, ext: str) -> Response:
    session = await require_session(request)
    fmt = {f.extension: f for f in ReportFormat}.get(ext)
    if fmt is None:
        return render(request, "error.html", session, status_code=404, status=404, message="")
    found = await services(request).flows.report(session.principal, flow_number)
    return _download(f"{found.flow.flow_number}.{fmt.extension}", fmt.content_type, render_file(found, fmt))


@router.get("/flows/{flow_number}/return/{name}", name="portal_return_flow")
async def return_flow(request: Request, flow_number: str, name: str) -> Response:
    """A return flow of the flow, as the partner received it (``engine.services.return_files``)."""
    session = await require_session(request)
    files = portal(request).return_files
    if files is None:
        return render(request, "error.html", session, status_code=404, status=404, message="")
    out = await files.get(session.principal, flow_number, name)
    return _download(out.name, out.content_type, out.content)


@router.get("/dashboard", name="portal_dashboard")
async def dashboard(request: Request) -> Response:
    session = await require_session(request)
    issuers = await _issuers(request, session)
    chosen = (request.query_params.get("issuer") or "").strip()
    number = _page_number(request.query_params.get("page"))
    view = await _dashboard_page(request, session, chosen, number)
    pages = max(1, -(-view.board.issuers() // DASHBOARD_ISSUERS))
    if number > pages:  # past the last page (issuers went away, or a hand-made link): show the last
        number = pages
        view = await _dashboard_page(request, session, chosen, number)
    counts: dict[str, dict[FlowStatus, int]] = {}
    for row in view.board.rows:
        counts.setdefault(row.issuer_siret, {})[row.status] = row.count
    return render(
        request,
        "dashboard.html",
        session,
        tab="dashboard",
        issuers=issuers,
        names=dict(issuers),
        chosen=chosen,
        counts=counts,
        issuer_count=view.board.issuers(),
        first=(number - 1) * DASHBOARD_ISSUERS + 1,
        page=number,
        pages=pages,
        totals=view.board.totals(),
        view=view,
    )


def _page_number(text: str | None) -> int:
    """The Dashboard page asked for, from 1 (1 when absent or not a number)."""
    try:
        return max(int(text or "1"), 1)
    except ValueError:
        return 1


async def _dashboard_page(request: Request, session: PortalSession, issuer: str, number: int) -> DashboardView:
    """The dashboard with the rows of page ``number``'s issuers (the totals cover them all)."""
    page = IssuerPage((number - 1) * DASHBOARD_ISSUERS, DASHBOARD_ISSUERS)
    query = DashboardQuery(issuer_sirets=(issuer,) if issuer else (), issuer_page=page)
    return await services(request).flows.dashboard(session.principal, query)
