"""ASGI middleware around every HTTP route: the request id and its log line, and the body size limit.

* ``X-Request-Id``: the caller's (when it is a short token of safe characters) or a new one; echoed in the
  response and bound to every log line written while the request runs (structlog context variables).
  One ``http_request`` line per request: method, path, status, duration, caller.
* The body limit: a ``Content-Length`` over the limit is answered 413 before anything is read; a chunked
  body is counted as it arrives and cut at the limit (``BodyTooLarge``, a 413 from the error handler).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.errors import GENERIC_INTERNAL, BodyTooLarge, error_body

log = structlog.get_logger("fluxdepot.http")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                # Not in the error table (gateway.http.errors): logged here, once, and the caller learns
                # nothing of the inside. It stops here, so uvicorn does not print it a second time.
                log.error("http_unhandled_error", path=scope["path"], exc_info=exc)
                if status == 0:
                    status = 500
                    await _send_json(send_with_id, 500, error_body("INTERNAL_ERROR", GENERIC_INTERNAL))
            finally:
                state: dict[str, Any] = scope.get("state", {})
                log.info(
                    "http_request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                    caller=state.get("caller"),
                )


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, BodyTooLarge(self.max_bytes))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, exc: BodyTooLarge) -> None:
    await _send_json(send, exc.status, error_body(exc.code, exc.message), close=True)


async def _send_json(send: Send, status: int, payload: dict[str, str], *, close: bool = False) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the unread body would otherwise be parsed as the next request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
