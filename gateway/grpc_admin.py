"""``AdminService`` over gRPC (DESIGN §6): each method converts the request, calls one use case of
``engine.services.admin.AdminService`` and converts the answer back. Who may do what is decided there.

Request fields are checked on the way in and a malformed one is ``INVALID_ARGUMENT`` naming the field.
"""

from __future__ import annotations

import grpc

from engine.clock import utcnow
from engine.directory import FLOW_FOLLOW_UP, Partner, Role, Service, Structure
from engine.flownumber import PARTNER_CODE
from engine.model import KEEP, RejectionRule, Ruleset, RulesetChoice
from engine.permissions import Principal, PrincipalKind
from engine.queries import RejectRow
from engine.services.admin import LOGIN, PUBLIC_KEY, AdminService
from engine.services.auth import TokenAuthenticator
from engine.services.flows import FlowsService, Reprocess
from engine.webhooks import (
    Delivery,
    OwnerKind,
    Subscription,
    WebhookFormat,
    parse_format,
    parse_owner_kind,
    url_problem,
)
from fluxdepot.v1 import admin_pb2 as pb
from fluxdepot.v1 import admin_pb2_grpc as pb_grpc
from fluxdepot.v1 import flows_pb2 as flows_pb
from gateway import grpc_convert as conv
from gateway.grpc_auth import unary
from gateway.grpc_errors import InvalidArgument

_ROLES = {pb.ROLE_PRIMARY_MANAGER: Role.PRIMARY_MANAGER, pb.ROLE_USER: Role.USER}
_TOKEN_KINDS = {"": PrincipalKind.TECHNICAL, "technical": PrincipalKind.TECHNICAL, "user": PrincipalKind.USER}
MAX_DELIVERIES = 1000
_ACTIONS = {
    pb.REPROCESS_ACTION_RELEASE: Reprocess.RELEASE,
    pb.REPROCESS_ACTION_CLOSE: Reprocess.CLOSE,
    pb.REPROCESS_ACTION_REPROCESS: Reprocess.REPROCESS,
}


# --- in: request fields → arguments ---------------------------------------------------------------------


def _login(value: str, field: str = "login") -> str:
    if not LOGIN.match(value):
        raise InvalidArgument(field, "must be 1 to 128 letters, digits or . _ @ + -")
    return value


def _siret(value: str, field: str = "siret") -> str:
    return conv.sirets(field, [value])[0]


def _structure(request: pb.Structure) -> Structure:
    siret = _siret(request.siret)
    if not request.name.strip():
        raise InvalidArgument("name", "is required")
    return Structure(
        siret=siret,
        name=request.name.strip(),
        active=request.active,
        is_public=request.is_public,
        is_provider=request.is_provider,
        service_code_required=request.service_code_required,
        engagement_required=request.engagement_required,
        service_or_engagement_required=request.service_or_engagement_required,
        services=tuple(Service(v.code, v.label, v.active) for v in request.services),
    )


def _partner_code(value: str) -> str:
    if not PARTNER_CODE.match(value):
        raise InvalidArgument("code", "must match ^[A-Z]{3}[0-9]{3}$ (e.g. AAA001)")
    return value


def _public_keys(values: list[str]) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in values if k.strip())
    for key in keys:
        if not PUBLIC_KEY.match(key):
            raise InvalidArgument("public_keys", f"not an OpenSSH one-line public key: {key[:40]!r}")
    return keys


def _rule(value: str) -> RejectionRule:
    try:
        return RejectionRule(value.strip().lower())
    except ValueError:
        raise InvalidArgument("rule", "must be 'complete' or 'partial'") from None


def _webhook_url(value: str) -> str:
    if (problem := url_problem(value)) is not None:
        raise InvalidArgument("url", problem)
    return value


def _webhook_format(value: str) -> WebhookFormat:
    try:
        return parse_format(value)
    except ValueError as exc:
        raise InvalidArgument("format", str(exc)) from None


def _webhook_owner_kind(value: str) -> OwnerKind | None:
    try:
        return parse_owner_kind(value)
    except ValueError as exc:
        raise InvalidArgument("owner_kind", str(exc)) from None


def _ruleset(request: pb.CreateTechnicalUserRequest | pb.Partner) -> RulesetChoice:
    """An unset ``ruleset`` keeps the depositor's; "" is the config's default; else a ruleset's name."""
    if not request.HasField("ruleset"):
        return KEEP
    if not request.ruleset:
        return None
    try:
        return Ruleset.parse(request.ruleset)
    except ValueError as exc:
        raise InvalidArgument("ruleset", str(exc)) from None


def _limit(value: int) -> int:
    if not 0 <= value <= MAX_DELIVERIES:
        raise InvalidArgument("limit", f"must be between 1 and {MAX_DELIVERIES} (0: 100)")
    return value or 100


# --- out: engine → messages ------------------------------------------------------------------------------


def structure_message(s: Structure) -> pb.Structure:
    return pb.Structure(
        siret=s.siret,
        name=s.name,
        active=s.active,
        is_public=s.is_public,
        is_provider=s.is_provider,
        service_code_required=s.service_code_required,
        engagement_required=s.engagement_required,
        service_or_engagement_required=s.service_or_engagement_required,
        services=[pb.Service(code=v.code, label=v.label, active=v.active) for v in s.services],
    )


def _partner_message(p: Partner) -> pb.Partner:
    return pb.Partner(
        code=p.code,
        siret=p.siret,
        public_keys=p.public_keys,
        status_files=p.status_files,
        ruleset=p.ruleset.value if p.ruleset else "",
    )


def _reject_message(r: RejectRow) -> pb.Reject:
    return pb.Reject(
        flow_number=r.flow_number,
        issuer_siret=r.issuer_siret,
        deposited_at=conv.timestamp(r.deposited_at),
        invoice_number=r.invoice_number or "",
        document=r.document,
        reason=r.reason,
    )


def _webhook_message(s: Subscription) -> pb.Webhook:
    return pb.Webhook(
        id=s.id,
        siret=s.siret,
        owner_kind=s.owner_kind.value,
        owner=s.owner,
        url=s.url,
        statuses=[conv.STATUS_TO_PB[st] for st in s.statuses],
        format=s.format.value,
        created_at=conv.timestamp(s.created_at),
        created_by=s.created_by,
    )


def _delivery_message(d: Delivery) -> pb.WebhookDelivery:
    message = pb.WebhookDelivery(
        id=d.id,
        webhook_id=d.subscription_id,
        flow_number=d.flow_number,
        status=conv.STATUS_TO_PB[d.status],
        at=conv.timestamp(d.at),
        state=d.state.value,
        attempts=d.attempts,
        next_attempt_at=conv.timestamp(d.next_attempt_at),
        last_error=d.last_error or "",
        cursor=d.cursor,
    )
    if d.previous_status is not None:
        message.previous_status = conv.STATUS_TO_PB[d.previous_status]
    if d.last_attempt_at is not None:
        message.last_attempt_at.CopyFrom(conv.timestamp(d.last_attempt_at))
    return message


class AdminServicer(pb_grpc.AdminServiceServicer):
    """Every method: authenticate (``unary``), convert, call one use case, convert back."""

    def __init__(self, admin: AdminService, flows: FlowsService, auth: TokenAuthenticator) -> None:
        self.admin = admin
        self.flows = flows
        self.auth = auth

    @unary
    async def ListStructures(  # noqa: N802 - gRPC method names are CamelCase
        self, request: pb.ListStructuresRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListStructuresResponse:
        structures = await self.admin.list_structures(principal)
        return pb.ListStructuresResponse(structures=[structure_message(s) for s in structures])

    @unary
    async def UpsertStructure(  # noqa: N802
        self, request: pb.Structure, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Structure:
        return structure_message(await self.admin.upsert_structure(principal, _structure(request)))

    @unary
    async def UpsertUser(  # noqa: N802
        self, request: pb.UpsertUserRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.UpsertUserResponse:
        saved = await self.admin.upsert_user(
            principal,
            _login(request.login),
            _siret(request.siret),
            name=request.name.strip(),
            role=_ROLES.get(request.role, Role.USER),
            issue_token=request.issue_token,
        )
        return pb.UpsertUserResponse(login=saved.login, token=saved.token or "")

    @unary
    async def SetMembership(  # noqa: N802
        self, request: pb.SetMembershipRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        login, siret = _login(request.login), _siret(request.siret)
        await self.admin.set_membership(principal, login, siret, _ROLES.get(request.role))
        return pb.Empty()

    @unary
    async def CreateTechnicalUser(  # noqa: N802
        self, request: pb.CreateTechnicalUserRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.TokenResponse:
        login, siret = _login(request.login), _siret(request.siret)
        issued = await self.admin.create_technical_user(
            principal, login, siret, rotate=request.rotate, ruleset=_ruleset(request)
        )
        return pb.TokenResponse(kind=issued.kind.value, login=issued.login, token=issued.token)

    @unary
    async def CreateToken(  # noqa: N802
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.TokenResponse:
        login = _login(request.login)
        kind = _TOKEN_KINDS.get(request.kind)
        if kind is None:
            raise InvalidArgument("kind", "must be 'technical' or 'user'")
        issued = await self.admin.create_token(principal, kind, login)
        return pb.TokenResponse(kind=issued.kind.value, login=issued.login, token=issued.token)

    @unary
    async def UpsertPartner(  # noqa: N802
        self, request: pb.Partner, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Partner:
        code, siret = _partner_code(request.code), _siret(request.siret)
        keys = _public_keys(list(request.public_keys))
        partner = await self.admin.upsert_partner(
            principal, code, siret, keys, status_files=request.status_files, ruleset=_ruleset(request)
        )
        return _partner_message(partner)

    @unary
    async def SetRejectionRule(  # noqa: N802
        self, request: pb.SetRejectionRuleRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        (syntax,) = conv.syntaxes("syntax", [request.syntax])
        await self.admin.set_rejection_rule(principal, request.partner_code, syntax, _rule(request.rule))
        return pb.Empty()

    @unary
    async def GrantProfile(  # noqa: N802
        self, request: pb.ProfileRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        login, siret = _login(request.login), _siret(request.siret)
        await self.admin.grant_profile(principal, login, siret, request.profile or FLOW_FOLLOW_UP)
        return pb.Empty()

    @unary
    async def RevokeProfile(  # noqa: N802
        self, request: pb.ProfileRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        login, siret = _login(request.login), _siret(request.siret)
        await self.admin.revoke_profile(principal, login, siret, request.profile or FLOW_FOLLOW_UP)
        return pb.Empty()

    @unary
    async def ReprocessFlow(  # noqa: N802
        self, request: pb.ReprocessFlowRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> flows_pb.Flow:
        action = _ACTIONS.get(request.action)
        if action is None:
            raise InvalidArgument("action", "must be RELEASE, CLOSE or REPROCESS")
        moved = await self.flows.reprocess(principal, conv.flow_number(request.flow_number), action, request.detail)
        return conv.flow_message(moved)

    @unary
    async def ListRejects(  # noqa: N802
        self, request: pb.ListRejectsRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListRejectsResponse:
        rows = await self.admin.list_rejects(
            principal,
            issuer_sirets=conv.sirets("issuer_sirets", request.issuer_sirets),
            day_from=conv.optional_time(request, "day_from"),
            day_to=conv.optional_time(request, "day_to"),
        )
        return pb.ListRejectsResponse(rejects=[_reject_message(r) for r in rows])

    @unary
    async def AddWebhook(  # noqa: N802
        self, request: pb.AddWebhookRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.AddWebhookResponse:
        added = await self.admin.add_webhook(
            principal,
            owner_kind=_webhook_owner_kind(request.owner_kind),
            owner=request.owner or None,
            url=_webhook_url(request.url),
            statuses=conv.statuses("statuses", request.statuses),
            body_format=_webhook_format(request.format),
            now=utcnow(),
            secret=request.secret or None,
        )
        return pb.AddWebhookResponse(webhook=_webhook_message(added.subscription), secret=added.secret)

    @unary
    async def ListWebhooks(  # noqa: N802
        self, request: pb.ListWebhooksRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListWebhooksResponse:
        return pb.ListWebhooksResponse(
            webhooks=[_webhook_message(s) for s in await self.admin.list_webhooks(principal)]
        )

    @unary
    async def RemoveWebhook(  # noqa: N802
        self, request: pb.RemoveWebhookRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        await self.admin.remove_webhook(principal, request.id)
        return pb.Empty()

    @unary
    async def ListWebhookDeliveries(  # noqa: N802
        self, request: pb.ListWebhookDeliveriesRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListWebhookDeliveriesResponse:
        found = await self.admin.webhook_deliveries(
            principal, request.webhook_id or None, dead_only=request.dead_only, limit=_limit(request.limit)
        )
        return pb.ListWebhookDeliveriesResponse(deliveries=[_delivery_message(d) for d in found])

    @unary
    async def RedeliverWebhook(  # noqa: N802
        self, request: pb.RedeliverWebhookRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        await self.admin.redeliver_webhook(principal, request.delivery_id, now=utcnow())
        return pb.Empty()
