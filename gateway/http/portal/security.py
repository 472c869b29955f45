"""The portal's security headers, as data, set on every portal response (STYLE rule 20; pypi/warehouse
``csp.py``), and the CSRF and cookie rules.

* Content-Security-Policy: only our own scripts, styles and images (no inline script or style anywhere),
  never framed, forms post to us only, no ``<base>``.
* A CSRF token in every POST form: the session's secret (``engine.services.portal_auth``), compared in
  constant time; the log-in form, before any session, posts back the random value of a short-lived
  cookie instead (double submit).
* Cookies: ``HttpOnly``, ``SameSite=Lax``, ``Secure`` when the request came over TLS.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'none'"],
}
HEADERS = {
    "Content-Security-Policy": "; ".join(f"{name} {' '.join(values)}" for name, values in CSP.items()),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
SESSION_COOKIE = "fd_session"
LOGIN_CSRF_COOKIE = "fd_login_csrf"
LANG_COOKIE = "fd_lang"
CSRF_FIELD = "csrf_token"


class CsrfRefused(Exception):
    """A form posted without the token of its session (or of its log-in page)."""


def secure(response: Response, *, cacheable: bool = False) -> Response:
    for name, value in HEADERS.items():
        if name == "Cache-Control" and cacheable:
            continue
        response.headers.setdefault(name, value)
    return response


def same_token(sent: object, expected: str) -> bool:
    return isinstance(sent, str) and bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def check_csrf(sent: object, expected: str) -> None:
    if not same_token(sent, expected):
        raise CsrfRefused()


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path of this site (``/...``, not ``//host``), else ``default``: no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
