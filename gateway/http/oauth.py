"""``POST /oauth/token``: OAuth2 client credentials (RFC 6749 §4.4) for technical users.

The client authenticates with HTTP Basic (``client_id:client_secret``, preferred by the RFC) or with the
two form fields; the client secret is the technical user's bearer token. Errors are the RFC's JSON
(``invalid_request``, ``invalid_client``, ``unsupported_grant_type``), never the API's error object.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.http.auth import client_address
from gateway.http.services import HttpServices

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={**NO_STORE, **(headers or {})}
    )


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


@router.post("/oauth/token", include_in_schema=False)
async def token(request: Request) -> JSONResponse:
    services: HttpServices = request.app.state.services
    services.auth.limit("oauth:" + client_address(request))
    form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
    grant = form.get("grant_type")
    if grant != "client_credentials":
        if not grant:
            return _oauth_error(400, "invalid_request", "grant_type is required")
        return _oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    credentials = _basic(request.headers.get("authorization"))
    if credentials is None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
            return _oauth_error(400, "invalid_request", "client_id and client_secret are required (or HTTP Basic)")
        credentials = (client_id, secret)
    issued = await services.auth.tokens.client_credentials(*credentials)
    if issued is None:
        return _oauth_error(
            401, "invalid_client", "unknown client or wrong secret", {"WWW-Authenticate": 'Basic realm="fluxdepot"'}
        )
    request.state.caller = f"tech:{credentials[0]}"
    body = {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}
    return JSONResponse(body, headers=NO_STORE)
