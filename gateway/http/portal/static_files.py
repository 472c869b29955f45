"""``/static/``: the portal's own stylesheet and script, read once from the package and served from
memory (a fixed list: no path from a request ever reaches the file system)."""

from __future__ import annotations

import hashlib
from importlib import resources

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from gateway.http.portal.routing import PortalRoute

router = APIRouter(route_class=PortalRoute)
FILES = {"portal.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}
_CONTENT = {name: resources.files("gateway.http.portal").joinpath("static", name).read_bytes() for name in FILES}
_ETAGS = {name: '"' + hashlib.sha256(body).hexdigest()[:16] + '"' for name, body in _CONTENT.items()}


@router.get("/static/{name}", name="portal_static")
async def static(request: Request, name: str) -> Response:
    if name not in FILES:
        return Response(b"not found", status_code=404, media_type="text/plain")
    headers = {"ETag": _ETAGS[name], "Cache-Control": "public, max-age=3600"}
    if request.headers.get("if-none-match") == _ETAGS[name]:
        return Response(status_code=304, headers=headers)
    return Response(_CONTENT[name], media_type=FILES[name], headers=headers)
