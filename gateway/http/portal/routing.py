"""How every portal route runs: its session, its language, its page, its security headers and its errors.

``PortalRoute`` wraps each route's handler: the response gets the headers of ``security`` whatever it is;
a route needing a log-in that has none redirects to the log-in page; a CSRF failure is a 403 page; an
engine or HTTP error is an HTML page with the status of ``gateway.http.errors`` (a flow the user may not
see is "not found", exactly like a missing one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from engine.errors import EngineError
from engine.permissions import Principal, PrincipalKind
from engine.services.portal_auth import PortalSession
from engine.status import FlowStatus, InvalidTransition
from gateway.http.errors import HttpError, mapped
from gateway.http.portal.context import PORTAL, PortalContext
from gateway.http.portal.i18n import Formats, pick_language
from gateway.http.portal.security import CSRF_FIELD, LANG_COOKIE, SESSION_COOKIE, CsrfRefused, check_csrf, secure
from gateway.http.services import HttpServices

log = structlog.get_logger("fluxdepot.portal")
MAX_CACHED_USERS = 10_000


class LoginRequired(Exception):
    """The page needs a logged-in user and the request has no live session."""


def services(request: Request) -> HttpServices:
    found: HttpServices = request.app.state.services
    return found


def portal(request: Request) -> PortalContext:
    found: PortalContext = services(request).extra[PORTAL]
    return found


NAMES_TTL_S = 5.0  # a structure renamed or joined shows on the portal within this delay


async def structure_names(request: Request, principal: Principal) -> dict[str, str]:
    """SIRET → name of the structures ``principal`` belongs to (``AdminService.list_structures``), kept
    ``NAMES_TTL_S`` per user: every page names structures, and the whole directory need not be read for
    each (it was the largest share of a Search page's server time on the big store, bench/portal.py)."""
    cache = portal(request).names
    now = time.monotonic()
    kept = cache.get(principal.login)
    if kept is not None and now - kept[0] < NAMES_TTL_S and kept[2] == principal:
        return kept[1]
    names = {s.siret: s.name for s in await services(request).admin.list_structures(principal)}
    if len(cache) > MAX_CACHED_USERS:
        cache.clear()
    cache[principal.login] = (now, names, principal)
    return names


def language(request: Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


async def optional_session(request: Request) -> PortalSession | None:
    cached = getattr(request.state, "portal_session", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    found = await portal(request).users.session(request.cookies.get(SESSION_COOKIE, ""))
    request.state.portal_session = found
    return found


async def require_session(request: Request) -> PortalSession:
    found = await optional_session(request)
    if found is None:
        raise LoginRequired()
    return found


async def posted_form(request: Request, session: PortalSession) -> Mapping[str, Any]:
    """The POSTed form, once its CSRF token is the session's (``CsrfRefused`` otherwise)."""
    form = await request.form()
    try:
        check_csrf(form.get(CSRF_FIELD), session.csrf_token)
    except CsrfRefused:
        await form.close()
        raise
    return form


@dataclass(frozen=True)
class Nav:
    """The tabs a user sees: managers also get the users' permissions and the EDI rejects."""

    manages: bool


def render(
    request: Request,
    template: str,
    session: PortalSession | None,
    *,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    lang = language(request)
    ctx = portal(request)
    values.setdefault("tab", "")
    manages = bool(session and session.principal.manages)
    page = (
        ctx.templates[lang]
        .get_template(template)
        .render(
            lang=lang,
            fmt=Formats(lang, ctx.time_zone, ctx.engine_texts.get(lang)),
            session=session,
            csrf=session.csrf_token if session else "",
            csrf_field=CSRF_FIELD,
            nav=Nav(manages=manages),
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            statuses=list(FlowStatus),
            **values,
        )
    )
    return HTMLResponse(page, status_code=status_code)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def _error_page(request: Request, status: int, message: str = "") -> Response:
    try:
        session = await optional_session(request)
    except EngineError:
        session = None
    return render(request, "error.html", session, status_code=status, status=status, message=message)


class PortalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except LoginRequired:
                response = _login_redirect(request)
            except CsrfRefused:
                log.warning("portal_csrf_refused", path=request.url.path)
                response = await _error_page(request, 403, "csrf")
            except RequestValidationError:
                response = await _error_page(request, 400)
            except (HttpError, EngineError, InvalidTransition) as exc:
                found = mapped(exc)
                status = found.status if found else 500
                if status >= 500:
                    log.error("portal_error", path=request.url.path, exc_info=exc)
                response = await _error_page(request, status)
            return secure(response, cacheable=request.url.path.startswith("/static/"))

        return handler


def is_user(session: PortalSession) -> bool:
    return session.principal.kind is PrincipalKind.USER
