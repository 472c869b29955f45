"""Organisation → Users → Manage user permissions, and Access to EDI rejects (primary managers).

Permissions: pick a structure the user manages, then one of its users; their profiles are listed; "Add"
grants the flow follow-up profile and "Revoke" takes it back (``AdminService``: only a primary manager of
the structure may). Adding it twice shows, in red, "The user already has the selected subscription" and the
form is ready for another choice.

EDI rejects: the invoices of a managed structure that were not integrated, per day of deposit (in the
portal's time zone), each day downloadable as one CSV file (flow number, invoice number, deposit date,
reason).
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from engine.directory import FLOW_FOLLOW_UP
from engine.errors import DirectoryEntryNotFound, ProfileAlreadyGranted
from engine.queries import RejectRow
from engine.services.portal_auth import PortalSession
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
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


async def _managed(request: Request, session: PortalSession) -> list[tuple[str, str]]:
    names = await structure_names(request, session.principal)
    return [(siret, names.get(siret, siret)) for siret in sorted(session.principal.manages)]


async def _users_page(
    request: Request, session: PortalSession, siret: str, login: str, *, outcome: str = ""
) -> Response:
    structures = await _managed(request, session)
    if not siret and structures:
        siret = structures[0][0]
    members = await portal(request).members.members(session.principal, siret) if siret else []
    member = next((m for m in members if m.login == login), None)
    return render(
        request,
        "users.html",
        session,
        status_code=409 if outcome == "already" else 200,
        tab="users",
        structures=structures,
        siret=siret,
        members=members,
        member=member,
        profile=FLOW_FOLLOW_UP,
        outcome=outcome,
    )


@router.get("/users", name="portal_users")
async def users(request: Request) -> Response:
    session = await require_session(request)
    q = request.query_params
    done = q.get("done") or ""  # the redirect after a change says which (flash-style, on this page only)
    outcome = done if done in ("granted", "revoked") else ""
    siret, login = (q.get("siret") or "").strip(), (q.get("login") or "").strip()
    return await _users_page(request, session, siret, login, outcome=outcome)


@router.post("/users/profiles")
async def change_profile(request: Request) -> Response:
    session = await require_session(request)
    form = await posted_form(request, session)
    siret, login, action = (str(form.get(k) or "").strip() for k in ("siret", "login", "action"))
    admin = services(request).admin
    try:
        if action == "revoke":
            await admin.revoke_profile(session.principal, login, siret)
        else:
            await admin.grant_profile(session.principal, login, siret)
    except ProfileAlreadyGranted:
        return await _users_page(request, session, siret, login, outcome="already")
    except DirectoryEntryNotFound:
        return await _users_page(request, session, siret, login, outcome="not_held")
    done = "revoked" if action == "revoke" else "granted"
    query = urlencode({"siret": siret, "login": login, "done": done})
    return RedirectResponse(f"/users?{query}", status_code=303)


def _day_bounds(day: date, request: Request) -> tuple[datetime, datetime]:
    zone = portal(request).time_zone
    return datetime.combine(day, time(), zone), datetime.combine(day + timedelta(days=1), time(), zone)


async def _rejects(
    request: Request, session: PortalSession, siret: str, start: datetime | None = None, end: datetime | None = None
) -> tuple[RejectRow, ...]:
    return await services(request).admin.list_rejects(
        session.principal, issuer_sirets=(siret,), day_from=start, day_to=end
    )


@router.get("/rejects", name="portal_rejects")
async def rejects(request: Request) -> Response:
    session = await require_session(request)
    structures = await _managed(request, session)
    siret = (request.query_params.get("siret") or "").strip() or (structures[0][0] if structures else "")
    days: dict[date, list[RejectRow]] = {}
    if siret and siret in session.principal.manages:
        zone = portal(request).time_zone
        for row in await _rejects(request, session, siret):
            days.setdefault(row.deposited_at.astimezone(zone).date(), []).append(row)
    return render(
        request,
        "rejects.html",
        session,
        tab="rejects",
        structures=structures,
        siret=siret,
        days=dict(sorted(days.items(), reverse=True)),
    )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@router.get("/rejects/{siret}/{day}.csv", name="portal_rejects_day")
async def rejects_day(request: Request, siret: str, day: str) -> Response:
    session = await require_session(request)
    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        return render(request, "error.html", session, status_code=404, status=404, message="")
    if siret not in session.principal.manages:
        return render(request, "error.html", session, status_code=404, status=404, message="")
    rows = await _rejects(request, session, siret, *_day_bounds(wanted, request))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["flow_number", "invoice_number", "deposited_at", "document", "reason"])
    for row in rows:
        writer.writerow(
            [
                _cell(v)
                for v in (row.flow_number, row.invoice_number, row.deposited_at.isoformat(), row.document, row.reason)
            ]
        )
    name = f"rejects_{siret}_{wanted.isoformat()}.csv"
    return Response(
        out.getvalue().encode(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
