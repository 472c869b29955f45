"""Live status feeds as Server-Sent Events: gRPC ``WatchFlows`` and ``WatchFlow`` over HTTP.

Each status change is one event whose ``id:`` is its cursor and whose ``data:`` is a ``FlowEvent`` in
JSON. A client that reconnects sends the last id back (``Last-Event-ID``, as browsers' ``EventSource``
do, or ``?cursor=``) and the feed resumes strictly after it, losing and repeating nothing
(``engine.services.watch``). A comment line every ``HEARTBEAT_S`` keeps idle connections and proxies
alive and notices a client that left. Every feed ends when the daemon starts to shut down
(``HttpServices.closing``), so the listener can close within its grace; the per-flow feed also ends after
the flow's final status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from engine.queries import EventRecord
from gateway.http.api_flows import FlowNumberPath
from gateway.http.api_models import event_out
from gateway.http.api_params import Caller, Issuers, Statuses, errors, services_of, statuses

router = APIRouter(prefix="/v1", tags=["events"])

HEARTBEAT_S = 15.0
RETRY_MS = 3000  # how long a browser waits before it reconnects
HEARTBEAT = b": keep-alive\n\n"
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of the feed
_STREAM = {
    "description": "One event per status change: `id:` its cursor, `data:` a FlowEvent (JSON); "
    "`:` lines are heartbeats.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
Cursor = Annotated[
    int | None, Header(alias="Last-Event-ID", ge=0, description="resume after this event (reconnecting clients)")
]


def frame(event: EventRecord) -> bytes:
    return f"id: {event.cursor}\ndata: {event_out(event).model_dump_json()}\n\n".encode()


async def event_stream(
    events: AsyncIterator[EventRecord],
    closing: asyncio.Event,
    *,
    first: EventRecord | None = None,
    after: int = 0,
) -> AsyncIterator[bytes]:
    """``events`` as SSE frames (``first`` before them; none at or below cursor ``after``), a heartbeat
    whenever ``HEARTBEAT_S`` passes without one, until ``events`` ends or ``closing`` is set.

    The next event is awaited in its own task so that a heartbeat does not cancel it (which would end the
    feed's generator); cancelling that task is what ends the generator when we stop.
    """
    yield f"retry: {RETRY_MS}\n\n".encode()
    if first is not None and first.cursor > after:
        yield frame(first)
    closed = asyncio.ensure_future(closing.wait())
    pending: asyncio.Future[Any] | None = None
    try:
        while not closing.is_set():
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending, closed}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
            if pending in done:
                task, pending = pending, None
                try:
                    event = task.result()
                except StopAsyncIteration:
                    return
                if event.cursor > after:
                    yield frame(event)
            elif not done:
                yield HEARTBEAT
    finally:
        # Shielded: a request whose client left is cancelled, and its scope would cancel these awaits too.
        closed.cancel()
        if pending is not None:
            pending.cancel()  # ends the feed's generator where it waits
        with anyio.CancelScope(shield=True):
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            await events.aclose()  # type: ignore[attr-defined]


def _response(stream: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(stream, media_type="text/event-stream; charset=utf-8", headers=_HEADERS)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={**errors(), 200: _STREAM},
    summary="Every status change of every visible flow, live (Server-Sent Events)",
)
async def watch_flows(
    request: Request,
    principal: Caller,
    last_event_id: Cursor = None,
    cursor: Annotated[int, Query(ge=0, description="resume after this event's cursor; 0: from now")] = 0,
    from_start: Annotated[bool, Query(description="with no cursor: replay every visible event first")] = False,
    issuer: Issuers = [],  # noqa: B006 - FastAPI copies parameter defaults
    status: Statuses = [],  # noqa: B006
) -> StreamingResponse:
    """As gRPC ``WatchFlows``: in commit order, only flows the caller sees; ``Last-Event-ID`` (sent by a
    reconnecting ``EventSource``) wins over ``cursor``. Never ends by itself."""
    services = services_of(request)
    events = services.watch.watch_flows(
        principal,
        cursor=last_event_id if last_event_id is not None else cursor,
        from_start=from_start,
        issuer_sirets=tuple(issuer),
        statuses=statuses(status),
    )
    return _response(event_stream(events, services.closing))


@router.get(
    "/flows/{flow_number}/events",
    response_class=StreamingResponse,
    responses={**errors(404), 200: _STREAM},
    summary="One flow's status changes, its history first, until its final status (Server-Sent Events)",
)
async def watch_flow(
    request: Request, principal: Caller, flow_number: FlowNumberPath, last_event_id: Cursor = None
) -> StreamingResponse:
    """As gRPC ``WatchFlow``; with ``Last-Event-ID`` the history up to that event is not sent again."""
    services = services_of(request)
    events = aiter(services.watch.watch_flow(principal, flow_number.strip()))
    first = await anext(events)  # a missing or hidden flow is 404 here, before the stream starts
    return _response(event_stream(events, services.closing, first=first, after=last_event_id or 0))
