"""Deposit (portal mode): a user picks one of their structures and uploads one or several files; each flow
number is shown at once, and its status follows live (``/flows/<n>/events``, Server-Sent Events read by
``static/live.js``) until it is final. Without JavaScript the page still lists each flow with its status
and a link to its report."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from engine.errors import EngineError
from engine.model import FlowRecord
from engine.permissions import Principal
from engine.queries import EventRecord
from engine.services.flows import DepositForm
from engine.services.portal_auth import PortalSession
from gateway.http.errors import mapped
from gateway.http.portal.i18n import Formats
from gateway.http.portal.routing import (
    PortalRoute,
    language,
    portal,
    posted_form,
    render,
    require_session,
    services,
    structure_names,
)

router = APIRouter(route_class=PortalRoute)
MAX_FILES = 20
READ_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Deposited:
    file_name: str
    flow: FlowRecord | None = None
    refused: str = ""  # the engine's reason, when the deposit was refused
    refused_code: str = ""  # its error code (gateway.http.errors), which the page words in its language


async def _structures(request: Request, principal: Principal) -> list[tuple[str, str]]:
    """The structures the user belongs to: those they may deposit for."""
    return list((await structure_names(request, principal)).items())


@router.get("/deposit", name="portal_deposit")
async def deposit_page(request: Request) -> Response:
    session = await require_session(request)
    structures = await _structures(request, session.principal)
    return render(request, "deposit.html", session, tab="deposit", structures=structures, results=[], chosen="")


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(READ_CHUNK_BYTES):
        yield chunk


@router.post("/deposit")
async def deposit(request: Request) -> Response:
    session = await require_session(request)
    form = await posted_form(request, session)
    try:
        return await _deposit(request, session, form)
    finally:
        await form.close()  # type: ignore[attr-defined]  # the uploads' spooled files


async def _deposit(request: Request, session: PortalSession, form: Any) -> Response:
    issuer = str(form.get("issuer") or "")
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]  # type: ignore[attr-defined]
    results: list[Deposited] = []
    flows = services(request).flows
    for upload in uploads[:MAX_FILES]:
        name = upload.filename or "flow"
        try:
            receipt = await flows.deposit_stream(
                session.principal, DepositForm(name, issuer_siret=issuer), _chunks(upload)
            )
            results.append(Deposited(name, receipt.flow))
        except EngineError as exc:
            found = mapped(exc)
            results.append(
                Deposited(name, refused=found.message if found else "", refused_code=found.code if found else "")
            )
    structures = await _structures(request, session.principal)
    status = 200 if results else 400
    return render(
        request,
        "deposit.html",
        session,
        status_code=status,
        tab="deposit",
        structures=structures,
        results=results,
        chosen=issuer,
        empty=not results,
    )


def _sse(event: EventRecord, fmt: Formats) -> bytes:
    data = {
        "flow": event.flow_number,
        "status": event.status.code,
        "label": fmt.status(event.status),
        "final": event.status.is_final,
        "at": fmt.when(event.at),
    }
    return f"id: {event.cursor}\nevent: status\ndata: {json.dumps(data)}\n\n".encode()


@router.get("/flows/{flow_number}/events", name="portal_flow_events")
async def flow_events(request: Request, flow_number: str) -> Response:
    """The flow's status changes as Server-Sent Events, until a final status or the daemon stops."""
    session = await require_session(request)
    svc = services(request)
    await svc.flows.get_flow(session.principal, flow_number)  # FlowNotFound (404) before the stream starts
    lang = language(request)
    fmt = Formats(lang, portal(request).time_zone, portal(request).engine_texts.get(lang))
    feed = svc.watch.watch_flow(session.principal, flow_number)

    async def stream() -> AsyncIterator[bytes]:
        closing = asyncio.ensure_future(svc.closing.wait())
        try:
            yield b"retry: 2000\n\n"
            while True:
                step = asyncio.ensure_future(anext(feed))
                done, _ = await asyncio.wait({step, closing}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    return
                try:
                    event = step.result()
                except StopAsyncIteration:
                    yield b"event: end\ndata: {}\n\n"
                    return
                yield _sse(event, fmt)
        finally:
            closing.cancel()
            await feed.aclose()

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})
