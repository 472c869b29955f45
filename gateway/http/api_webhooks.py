"""The webhook routes of fluxdepot's JSON API (``/api/v1/webhooks``): the gRPC ``AdminService`` webhook RPCs as
JSON. Each route authenticates (``Caller``), calls one use case of ``engine.services.admin.AdminService``
and renders its answer; who may manage which subscription is the service's (one the caller may not manage
is 404 like a missing one)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from engine.clock import utcnow
from engine.status import FlowStatus
from engine.webhooks import MAX_URL_CHARS, Delivery, OwnerKind, Subscription, WebhookFormat, url_problem
from gateway.http.api_models import StatusName
from gateway.http.api_params import Caller, errors, services_of
from gateway.http.errors import InvalidField

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

OwnerKindName = enum.Enum("OwnerKindName", [(k.name, k.value) for k in OwnerKind], type=str)  # type: ignore[misc]
FormatName = enum.Enum("FormatName", [(f.name, f.value) for f in WebhookFormat], type=str)  # type: ignore[misc]
IdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="the id")]  # a store integer
MAX_DELIVERIES = 1000


class WebhookIn(BaseModel):
    url: str = Field(max_length=MAX_URL_CHARS, description="http:// or https:// URL receiving the POSTs")
    owner_kind: OwnerKindName | None = Field(  # type: ignore[valid-type]
        None, description="structure, technical or partner; none: the calling technical user"
    )
    owner: str | None = Field(None, max_length=128, description="the SIRET, technical login or partner code")
    statuses: list[StatusName] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=len(FlowStatus), description="only changes to these; empty: all"
    )
    format: FormatName = Field(  # type: ignore[valid-type]
        "fluxdepot", description="fluxdepot (our event body) or afnor (WebhookCallbackContent)"
    )
    secret: str | None = Field(None, min_length=16, max_length=256, description="the HMAC key; none: generated")


class WebhookOut(BaseModel):
    id: int
    siret: str
    owner_kind: str
    owner: str
    url: str
    statuses: list[str]
    format: str
    created_at: datetime
    created_by: str


class NewWebhookOut(BaseModel):
    webhook: WebhookOut
    secret: str = Field(description="the signing secret, shown this once")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    flow_number: str
    status: str
    previous_status: str | None
    at: datetime
    state: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_error: str | None
    cursor: int


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


def _webhook_out(s: Subscription) -> WebhookOut:
    return WebhookOut(
        id=s.id,
        siret=s.siret,
        owner_kind=s.owner_kind.value,
        owner=s.owner,
        url=s.url,
        statuses=[st.name for st in s.statuses],
        format=s.format.value,
        created_at=s.created_at,
        created_by=s.created_by,
    )


def _delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        webhook_id=d.subscription_id,
        flow_number=d.flow_number,
        status=d.status.name,
        previous_status=d.previous_status.name if d.previous_status else None,
        at=d.at,
        state=d.state.value,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_attempt_at=d.last_attempt_at,
        last_error=d.last_error,
        cursor=d.cursor,
    )


@router.post("", status_code=201, response_model=NewWebhookOut, responses=errors(403, 404), summary="Add a webhook")
async def add_webhook(request: Request, principal: Caller, body: WebhookIn) -> NewWebhookOut:
    """Subscribe a URL to the status changes of the flows its owner may see; the secret is shown once."""
    if (problem := url_problem(body.url)) is not None:
        raise InvalidField("url", problem)
    added = await services_of(request).admin.add_webhook(
        principal,
        owner_kind=OwnerKind(body.owner_kind.value) if body.owner_kind else None,
        owner=body.owner,
        url=body.url,
        statuses=[FlowStatus[s.value] for s in body.statuses],
        body_format=WebhookFormat(body.format.value if isinstance(body.format, enum.Enum) else body.format),
        now=utcnow(),
        secret=body.secret,
    )
    return NewWebhookOut(webhook=_webhook_out(added.subscription), secret=added.secret)


@router.get("", response_model=WebhookList, responses=errors(), summary="The webhooks you manage")
async def list_webhooks(request: Request, principal: Caller) -> WebhookList:
    return WebhookList(webhooks=[_webhook_out(s) for s in await services_of(request).admin.list_webhooks(principal)])


@router.get("/deliveries", response_model=DeliveryList, responses=errors(404), summary="The latest deliveries")
async def deliveries(
    request: Request,
    principal: Caller,
    webhook: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="of this webhook only")] = None,
    dead: Annotated[bool, Query(description="only dead-lettered deliveries")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES)] = 100,
) -> DeliveryList:
    """Newest first, of one webhook or of every webhook you manage."""
    found = await services_of(request).admin.webhook_deliveries(principal, webhook, dead_only=dead, limit=limit)
    return DeliveryList(deliveries=[_delivery_out(d) for d in found])


@router.delete("/{webhook_id}", status_code=204, responses=errors(404), summary="Remove a webhook")
async def remove_webhook(request: Request, principal: Caller, webhook_id: IdPath) -> Response:
    """Nothing more is sent to it: its pending deliveries are dropped."""
    await services_of(request).admin.remove_webhook(principal, webhook_id)
    return Response(status_code=204)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    responses=errors(404, 409),
    summary="Send a delivered or dead delivery again",
)
async def redeliver(request: Request, principal: Caller, delivery_id: IdPath) -> Response:
    await services_of(request).admin.redeliver_webhook(principal, delivery_id, now=utcnow())
    return Response(status_code=202)
