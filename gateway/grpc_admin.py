"""``AdminService``: the directory, tokens, profiles, rejection rules, held flows and rejects (DESIGN §6).

Who may do what: a primary manager of a structure administers that structure — its services, its users'
memberships and profiles, its technical users and their tokens, its partners and their keys and rules,
and the held flows it issued (``engine.permissions.check_can_manage``); operators administer everything.
Only an operator creates a structure or changes its provider/public flags. A new token is returned once
and only its salted hash and lookup id are stored. Every change to rights empties the token cache, so it
takes effect on the next call.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable

import grpc

from engine.clock import utcnow
from engine.directory import FLOW_FOLLOW_UP, Partner, Role, Service, Structure, User
from engine.errors import AlreadyExists, DirectoryEntryNotFound, PermissionDenied
from engine.model import RejectionRule
from engine.permissions import Principal, PrincipalKind, check_can_manage, visibility_of
from engine.secrets import hash_secret, secret_lookup_id
from engine.status import FlowEvent
from engine.store.port import Store
from fluxdepot.v1 import admin_pb2 as pb
from fluxdepot.v1 import admin_pb2_grpc as pb_grpc
from fluxdepot.v1 import flows_pb2 as flows_pb
from gateway import grpc_convert as conv
from gateway.grpc_auth import Authenticator, unary
from gateway.grpc_errors import InvalidArgument
from gateway.grpc_flows import visible_flow

TOKEN_BYTES = 32
_LOGIN = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")
_PARTNER_CODE = re.compile(r"^[A-Z]{3}[0-9]{3}$")
_PUBLIC_KEY = re.compile(r"^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$")
_ROLES = {pb.ROLE_PRIMARY_MANAGER: Role.PRIMARY_MANAGER, pb.ROLE_USER: Role.USER}
_ACTIONS = {
    pb.REPROCESS_ACTION_RELEASE: FlowEvent.ADMIN_RELEASE,
    pb.REPROCESS_ACTION_CLOSE: FlowEvent.ADMIN_CLOSE,
    pb.REPROCESS_ACTION_REPROCESS: FlowEvent.ADMIN_REPROCESS,
}


def _login(value: str, field: str = "login") -> str:
    if not _LOGIN.match(value):
        raise InvalidArgument(field, "must be 1 to 128 letters, digits or . _ @ + -")
    return value


def _siret(value: str, field: str = "siret") -> str:
    return conv.sirets(field, [value])[0]


def _is_operator(principal: Principal) -> bool:
    return principal.kind is PrincipalKind.OPERATOR


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


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, store: Store, auth: Authenticator, *, on_requeue: Callable[[], None] | None = None) -> None:
        self.store = store
        self.auth = auth
        self.on_requeue = on_requeue

    async def _new_token(self, kind: str, login: str) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = await asyncio.to_thread(hash_secret, token)
        await self.store.set_token(kind, login, digest, secret_lookup_id(token))
        self.auth.invalidate()
        return token

    async def _check_manages_user(self, principal: Principal, login: str) -> None:
        """The caller manages every structure ``login`` belongs to (so may act on the user's account)."""
        target = await self.store.principal(PrincipalKind.USER.value, login)
        if target is None:
            raise DirectoryEntryNotFound("user", login)
        if _is_operator(principal) or (principal.kind is PrincipalKind.USER and principal.login == login):
            return
        if not target.member_of or not target.member_of <= principal.manages:
            raise PermissionDenied(f"only a primary manager of every structure of {login} may do this")

    @unary
    async def ListStructures(  # noqa: N802 - gRPC method names are CamelCase
        self, request: pb.ListStructuresRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListStructuresResponse:
        mine = principal.member_of | ({principal.siret} if principal.siret else set())
        return pb.ListStructuresResponse(
            structures=[
                structure_message(s)
                for s in await self.store.list_structures()
                if _is_operator(principal) or s.siret in mine
            ]
        )

    @unary
    async def UpsertStructure(  # noqa: N802
        self, request: pb.Structure, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Structure:
        siret = _siret(request.siret)
        if not request.name.strip():
            raise InvalidArgument("name", "is required")
        existing = await self.store.get_structure(siret)
        if existing is None and not _is_operator(principal):
            raise PermissionDenied("only an operator creates structures")
        check_can_manage(principal, siret)
        structure = Structure(
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
        if existing is not None and not _is_operator(principal):  # flags that change who may do what
            structure = Structure(
                **{**structure.__dict__, "is_provider": existing.is_provider, "is_public": existing.is_public}
            )
        await self.store.upsert_structure(structure)
        self.auth.invalidate()
        return structure_message(structure)

    @unary
    async def UpsertUser(  # noqa: N802
        self, request: pb.UpsertUserRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.UpsertUserResponse:
        login, siret = _login(request.login), _siret(request.siret)
        check_can_manage(principal, siret)
        existing = await self.store.principal(PrincipalKind.USER.value, login)
        if existing is None:
            await self.store.upsert_user(User(login=login, name=request.name.strip()))
        await self.store.set_membership(login, siret, _ROLES.get(request.role, Role.USER))
        token = ""
        if request.issue_token:
            await self._check_manages_user(principal, login)
            token = await self._new_token(PrincipalKind.USER.value, login)
        self.auth.invalidate()
        return pb.UpsertUserResponse(login=login, token=token)

    @unary
    async def SetMembership(  # noqa: N802
        self, request: pb.SetMembershipRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        login, siret = _login(request.login), _siret(request.siret)
        check_can_manage(principal, siret)
        await self.store.set_membership(login, siret, _ROLES.get(request.role))
        self.auth.invalidate()
        return pb.Empty()

    @unary
    async def CreateTechnicalUser(  # noqa: N802
        self, request: pb.CreateTechnicalUserRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.TokenResponse:
        login, siret = _login(request.login), _siret(request.siret)
        check_can_manage(principal, siret)
        existing = await self.store.principal(PrincipalKind.TECHNICAL.value, login)
        if existing is not None:
            if existing.siret:
                check_can_manage(principal, existing.siret)  # no taking over another structure's account
            if not request.rotate:  # a retried or mistyped create must not silently revoke a live token
                raise AlreadyExists(f"technical user {login} already exists (set rotate to replace its token)")
        await self.store.upsert_technical_user(login, siret)
        token = await self._new_token(PrincipalKind.TECHNICAL.value, login)
        return pb.TokenResponse(kind=PrincipalKind.TECHNICAL.value, login=login, token=token)

    @unary
    async def CreateToken(  # noqa: N802
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.TokenResponse:
        login = _login(request.login)
        kind = request.kind or PrincipalKind.TECHNICAL.value
        if kind == PrincipalKind.TECHNICAL.value:
            target = await self.store.principal(kind, login)
            if target is None or not target.siret:
                raise DirectoryEntryNotFound("technical user", login)
            if not (principal.kind is PrincipalKind.TECHNICAL and principal.login == login):
                check_can_manage(principal, target.siret)
        elif kind == PrincipalKind.USER.value:
            await self._check_manages_user(principal, login)
        else:
            raise InvalidArgument("kind", "must be 'technical' or 'user'")
        token = await self._new_token(kind, login)
        return pb.TokenResponse(kind=kind, login=login, token=token)

    @unary
    async def UpsertPartner(  # noqa: N802
        self, request: pb.Partner, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Partner:
        if not _PARTNER_CODE.match(request.code):
            raise InvalidArgument("code", "must match ^[A-Z]{3}[0-9]{3}$ (e.g. AAA001)")
        siret = _siret(request.siret)
        keys = tuple(k.strip() for k in request.public_keys if k.strip())
        for key in keys:
            if not _PUBLIC_KEY.match(key):
                raise InvalidArgument("public_keys", f"not an OpenSSH one-line public key: {key[:40]!r}")
        check_can_manage(principal, siret)
        existing = await self.store.get_partner(request.code)
        if existing is not None:
            check_can_manage(principal, existing.siret)
        partner = Partner(
            code=request.code,
            siret=siret,
            public_keys=keys,
            password_hash=existing.password_hash if existing else None,
            rules=existing.rules if existing else (),
            status_files=request.status_files,
        )
        # One key, one partner: the store refuses a key another partner code holds (ALREADY_EXISTS naming
        # it), with the check the directory import runs (``engine.directory.check_partner_keys``).
        await self.store.upsert_partner(partner)
        return pb.Partner(code=partner.code, siret=siret, public_keys=keys, status_files=partner.status_files)

    @unary
    async def SetRejectionRule(  # noqa: N802
        self, request: pb.SetRejectionRuleRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        partner = await self.store.get_partner(request.partner_code)
        if partner is None:
            raise DirectoryEntryNotFound("partner", request.partner_code)
        check_can_manage(principal, partner.siret)
        (syntax,) = conv.syntaxes("syntax", [request.syntax])
        try:
            rule = RejectionRule(request.rule.strip().lower())
        except ValueError:
            raise InvalidArgument("rule", "must be 'complete' or 'partial'") from None
        await self.store.set_rejection_rule(partner.code, syntax, rule)
        return pb.Empty()

    @unary
    async def GrantProfile(  # noqa: N802
        self, request: pb.ProfileRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        login, siret = _login(request.login), _siret(request.siret)
        check_can_manage(principal, siret)
        await self.store.grant_profile(login, siret, request.profile or FLOW_FOLLOW_UP)
        self.auth.invalidate()
        return pb.Empty()

    @unary
    async def RevokeProfile(  # noqa: N802
        self, request: pb.ProfileRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.Empty:
        login, siret = _login(request.login), _siret(request.siret)
        check_can_manage(principal, siret)
        await self.store.revoke_profile(login, siret, request.profile or FLOW_FOLLOW_UP)
        self.auth.invalidate()
        return pb.Empty()

    @unary
    async def ReprocessFlow(  # noqa: N802
        self, request: pb.ReprocessFlowRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> flows_pb.Flow:
        event = _ACTIONS.get(request.action)
        if event is None:
            raise InvalidArgument("action", "must be RELEASE, CLOSE or REPROCESS")
        flow = await visible_flow(self.store, principal, request.flow_number)
        check_can_manage(principal, flow.issuer_siret)
        moved = await self.store.transition(
            flow.flow_number,
            flow.status,
            event,
            actor=principal.depositor,
            at=utcnow(),
            detail=request.detail.strip()[:500] or None,
        )
        if self.on_requeue is not None and not moved.status.is_final:
            self.on_requeue()
        return conv.flow_message(moved)

    @unary
    async def ListRejects(  # noqa: N802
        self, request: pb.ListRejectsRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListRejectsResponse:
        rows = await self.store.list_rejects(
            visibility_of(principal),
            issuer_sirets=conv.sirets("issuer_sirets", request.issuer_sirets),
            day_from=conv.optional_time(request, "day_from"),
            day_to=conv.optional_time(request, "day_to"),
        )
        return pb.ListRejectsResponse(
            rejects=[
                pb.Reject(
                    flow_number=r.flow_number,
                    issuer_siret=r.issuer_siret,
                    deposited_at=conv.timestamp(r.deposited_at),
                    invoice_number=r.invoice_number or "",
                    document=r.document,
                    reason=r.reason,
                )
                for r in rows
            ]
        )
