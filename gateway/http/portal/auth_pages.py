"""Log in, log out and the language switch.

The log-in form is protected against CSRF before any session exists by a double submit: its page sets a
random ``fd_login_csrf`` cookie and the form posts the same value back. A successful log-in always makes a
new session (new id, new CSRF secret) and drops that cookie; log-out deletes the session in the store, so
the old cookie no longer works anywhere.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.http.auth import client_address
from gateway.http.portal.i18n import LANGUAGES
from gateway.http.portal.routing import PortalRoute, optional_session, portal, posted_form, render, require_session
from gateway.http.portal.security import (
    CSRF_FIELD,
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    clear_cookie,
    local_path,
    set_cookie,
)

router = APIRouter(route_class=PortalRoute)
LOGIN_CSRF_MAX_AGE_S = 3600
LANG_MAX_AGE_S = 365 * 86400


def _login_page(request: Request, *, failed: bool = False) -> Response:
    token = secrets.token_urlsafe(32)
    page = render(
        request,
        "login.html",
        None,
        status_code=401 if failed else 200,
        login_csrf=token,
        failed=failed,
        next=local_path(request.query_params.get("next")),
    )
    set_cookie(request, page, LOGIN_CSRF_COOKIE, token, max_age=LOGIN_CSRF_MAX_AGE_S)
    return page


@router.get("/login", name="portal_login")
async def login_page(request: Request) -> Response:
    if await optional_session(request) is not None:
        return RedirectResponse(local_path(request.query_params.get("next")), status_code=303)
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    check_csrf(form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE, ""))
    new = await portal(request).users.login(
        str(form.get("login") or ""), str(form.get("password") or ""), client_address(request)
    )
    if new is None:
        return _login_page(request, failed=True)
    response = RedirectResponse(local_path(str(form.get("next") or "")), status_code=303)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await portal(request).users.logout(old)  # a session from before this log-in ends with it
    set_cookie(request, response, SESSION_COOKIE, new.session_id)
    clear_cookie(request, response, LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout", name="portal_logout")
async def logout(request: Request) -> Response:
    session = await require_session(request)
    await posted_form(request, session)
    await portal(request).users.logout(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response


@router.get("/lang/{lang}", name="portal_lang")
async def switch_language(request: Request, lang: str) -> Response:
    """Remember the language chosen (a preference, not an action: a link, no form) and go back."""
    response = RedirectResponse(local_path(request.query_params.get("next")), status_code=303)
    if lang in LANGUAGES:
        set_cookie(request, response, LANG_COOKIE, lang, max_age=LANG_MAX_AGE_S)
    return response
