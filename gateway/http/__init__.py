"""The HTTP faces, on one listener (``[http] listen``) served by uvicorn inside the daemon's event loop.

``app.build_app`` assembles them: the AFNOR XP Z12-013 Flow Service under ``/v1``, fluxdepot's own JSON
API under ``/api/v1`` (with its OpenAPI document), the OAuth2 token endpoint at ``/oauth/token`` and the
web portal at ``/``. Like the gRPC servicers, each route converts, authorises (``auth``), calls the
engine's application layer (``engine.services``) and maps errors through the one table of ``errors``.
"""
