"""fluxdepot's own JSON API, a FastAPI application mounted at ``/api`` by ``gateway.http.app.build_app``.

Its routes are ``ROUTERS``' (paths under ``/v1``); its OpenAPI document is served at
``/api/openapi.json`` and browsable at ``/api/docs``. The document is generated from the routes, their
pydantic models and their documented errors: FastAPI's default 422 answers are removed, since a malformed
request is 400 with the AFNOR ``Error`` body here (``gateway.http.app``'s handlers, installed on this app
too), and ``FlowEvent``, the data of the Server-Sent Events, is added to its schemas.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from engine import ENGINE_VERSION
from gateway.http import api_events, api_flows, api_webhooks
from gateway.http.api_models import FlowEventOut
from gateway.http.services import HttpServices

# Every router of the API, in order; another face's routes (webhook subscriptions, …) are one more entry.
ROUTERS: tuple[APIRouter, ...] = (api_flows.router, api_events.router, api_webhooks.router)

TITLE = "fluxdepot API"
DESCRIPTION = """\
fluxdepot's own JSON API: everything the gRPC `FlowService` offers, as JSON, and live status feeds as
Server-Sent Events with the same resumable cursor as `WatchFlows`.

Authenticate with `Authorization: Bearer <token>`: a technical user's or user's token, or an access token
from `POST /oauth/token` (OAuth2 client credentials). A flow the caller may not see answers 404 exactly like
a missing one; searches, counts, exports and feeds never include it. Errors carry the AFNOR `Error` body
`{"errorCode": ..., "errorMessage": ...}`.
"""
SERVERS = [{"url": "/api"}]  # where build_app mounts this app; the paths below are relative to it


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The API's OpenAPI document, generated once from ``app``'s routes."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=TITLE, version=ENGINE_VERSION, description=DESCRIPTION, routes=app.routes, servers=SERVERS
        )
        for operations in doc.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        event = FlowEventOut.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(event.pop("$defs", {}))
        schemas["FlowEvent"] = event
        app.openapi_schema = doc
    return app.openapi_schema


def api_app(services: HttpServices) -> FastAPI:
    # Imported here: gateway.http.app imports this module to mount the app.
    from gateway.http.app import install_error_handlers

    app = FastAPI(
        title=TITLE,
        version=ENGINE_VERSION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        servers=SERVERS,
        root_path_in_servers=False,
    )
    app.state.services = services
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app
