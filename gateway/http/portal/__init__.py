"""The web portal at ``/``: the "Data flow overview" screens for people (log-in, Homepage, Search, Report,
Dashboard, Deposit with live status, Check a file, Manage user permissions, EDI rejects), server-rendered from Jinja2
templates in French and English, on the same application layer and permissions as gRPC.

``router`` is included last by ``gateway.http.app.build_app`` (``/v1``, ``/api`` and ``/oauth`` match
first); its collaborators (``context.PortalContext``) are in ``HttpServices.extra["portal"]``. Every
response carries the headers of ``security``; ``routing.PortalRoute`` turns errors into HTML pages.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.http.portal import admin_pages, auth_pages, check_pages, deposit_pages, flows_pages, static_files

router = APIRouter()
for _module in (static_files, auth_pages, flows_pages, deposit_pages, check_pages, admin_pages):
    router.include_router(_module.router)
