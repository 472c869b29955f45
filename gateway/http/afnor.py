"""The AFNOR XP Z12-013 Flow Service 1.1.0 (``../shared/standards``), under ``/v1``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter()


@router.get("/v1/healthcheck", include_in_schema=False)
async def healthcheck() -> Response:
    """200 with an empty body while the daemon serves (the standard's ``Ok200EmptyResponse``)."""
    return Response(status_code=200)
