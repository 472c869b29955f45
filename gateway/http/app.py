"""The HTTP application: every face's routes on one ASGI app, one error handler for all of them.

``build_app`` takes what the composition root built (``HttpServices``); nothing here constructs a
collaborator. Errors: an ``HttpError`` or an engine error becomes its row of ``gateway.http.errors``; a
malformed request (FastAPI's validation) is 400 naming the field; anything else is 500 with a generic
body and its traceback logged under the request id (``gateway.http.middleware.RequestContext``).
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import EngineError
from engine.status import InvalidTransition
from gateway.http import afnor, oauth, portal
from gateway.http.api import api_app
from gateway.http.errors import GENERIC_INTERNAL, HttpError, error_body, mapped
from gateway.http.middleware import BodyLimit, RequestContext
from gateway.http.services import HttpServices

log = structlog.get_logger("fluxdepot.http")
BODY_OVERHEAD_BYTES = 64 * 1024  # a multipart deposit's headers and metadata, beyond the flow's bytes


def error_response(request: Request, exc: BaseException) -> Response:
    found = mapped(exc)
    if found is None:
        log.error("http_unhandled_error", path=request.url.path, exc_info=exc)
        return JSONResponse(error_body("INTERNAL_ERROR", GENERIC_INTERNAL), status_code=500)
    if found.status >= 500:
        log.error("http_engine_error", path=request.url.path, status=found.status, exc_info=exc)
    return JSONResponse(error_body(found.code, found.message), status_code=found.status, headers=found.headers)


async def _any_error(request: Request, exc: Exception) -> Response:
    return error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header"))
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return JSONResponse(error_body("INVALID_FIELD", message), status_code=400)


async def _starlette_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    return JSONResponse(
        error_body(codes.get(exc.status_code, "INVALID_REQUEST"), str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def install_error_handlers(app: FastAPI) -> None:
    """The same handlers on the root app and on every mounted sub-app (each handles its own routes)."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _starlette_error)
    for cls in (HttpError, EngineError, InvalidTransition):
        app.add_exception_handler(cls, _any_error)
    # Anything else: the generic body; Starlette then re-raises it up to the root app's RequestContext
    # (gateway.http.middleware), which logs it once with the request id. Without this handler, a mounted
    # app's own ServerErrorMiddleware would answer a plain-text 500.
    app.add_exception_handler(Exception, _unexpected)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return JSONResponse(error_body("INTERNAL_ERROR", GENERIC_INTERNAL), status_code=500)


def build_app(services: HttpServices) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)  # the JSON API serves its own document
    app.state.services = services
    install_error_handlers(app)
    app.include_router(oauth.router)
    app.include_router(afnor.router)
    app.mount("/api", api_app(services))  # the JSON API, with its OpenAPI document and error handlers
    app.include_router(portal.router)  # the web portal at "/": last, so /v1, /api and /oauth match first
    # The last added is the outermost: the request id wraps everything, the body limit every route.
    app.add_middleware(BodyLimit, max_bytes=services.limits.max_flow_bytes + BODY_OVERHEAD_BYTES)
    app.add_middleware(RequestContext)
    return app
