"""Administration use cases (DESIGN §6): the directory, tokens, profiles, rejection rules and rejects.

Who may do what: a primary manager of a structure administers that structure — its services, its users'
memberships and profiles, its technical users and their tokens, its partners and their keys and rules
(``engine.permissions.check_can_manage``); operators administer everything. Only an operator creates a
structure or changes its provider/public flags. Only a primary manager grants or revokes a profile, and
granting one held already is ``ProfileAlreadyGranted``. A new token is returned once and only its salted
hash and lookup id are stored. Every change to rights empties the token cache (``TokenAuthenticator``),
so it takes effect on the next call.

Arguments arrive well-formed: each face checks their shape (``LOGIN``, ``PUBLIC_KEY``,
``engine.flownumber.PARTNER_CODE``, a 14-digit SIRET) and names the bad field in its own terms; these use
cases decide what is allowed and what changes.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from engine.directory import FLOW_FOLLOW_UP, Partner, Role, Structure, User
from engine.errors import AlreadyExists, DirectoryEntryNotFound, PermissionDenied, RulesetUnavailable
from engine.model import KEEP, RejectionRule, Ruleset, RulesetChoice, Syntax
from engine.permissions import Principal, PrincipalKind, check_can_manage, visibility_of
from engine.queries import RejectRow
from engine.secrets import hash_secret, secret_lookup_id
from engine.services.auth import TokenAuthenticator
from engine.status import FlowStatus
from engine.store.port import Store
from engine.webhooks import Delivery, DeliveryState, NewSubscription, OwnerKind, Subscription, WebhookFormat

TOKEN_BYTES = 32
WEBHOOK_SECRET_BYTES = 32
LOGIN = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")  # a user's or technical user's login
PUBLIC_KEY = re.compile(r"^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$")  # OpenSSH, one line
TOKEN_KINDS = (PrincipalKind.TECHNICAL, PrincipalKind.USER)  # who holds bearer tokens


@dataclass(frozen=True)
class IssuedToken:
    """A new bearer token, shown this once: the store keeps only its salted hash and lookup id."""

    kind: PrincipalKind
    login: str
    token: str


@dataclass(frozen=True)
class SavedUser:
    """A user created or attached to a structure; ``token`` is set when a new one was asked for."""

    login: str
    token: str | None = None


@dataclass(frozen=True)
class NewWebhook:
    """A new subscription and its signing secret, shown this once."""

    subscription: Subscription
    secret: str


def _is_operator(principal: Principal) -> bool:
    return principal.kind is PrincipalKind.OPERATOR


class AdminService:
    """The administration use cases, each checking the caller's rights before it changes anything."""

    def __init__(
        self,
        store: Store,
        tokens: TokenAuthenticator,
        *,
        ruleset_problem: Callable[[Ruleset], str | None] = lambda ruleset: None,
        rulesets_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._tokens = tokens
        # Why a ruleset cannot run here (its first missing artefact), or None: a depositor is not given it.
        self._ruleset_problem = ruleset_problem
        # Called after a depositor's ruleset changed: this process's workers read the choices again at once
        # (``DepositorRulesets.invalidate``; other processes within its few seconds).
        self._rulesets_changed = rulesets_changed

    async def list_structures(self, principal: Principal) -> tuple[Structure, ...]:
        """Every structure for an operator; otherwise those the caller belongs to."""
        mine = principal.member_of | ({principal.siret} if principal.siret else set())
        return tuple(s for s in await self._store.list_structures() if _is_operator(principal) or s.siret in mine)

    async def upsert_structure(self, principal: Principal, structure: Structure) -> Structure:
        """Create (operators only) or update a structure; a manager's update keeps the provider and public
        flags, which change who may do what. Returns what was saved."""
        existing = await self._store.get_structure(structure.siret)
        if existing is None and not _is_operator(principal):
            raise PermissionDenied("only an operator creates structures")
        check_can_manage(principal, structure.siret)
        if existing is not None and not _is_operator(principal):
            structure = replace(structure, is_provider=existing.is_provider, is_public=existing.is_public)
        await self._store.upsert_structure(structure)
        self._tokens.invalidate()
        return structure

    async def upsert_user(
        self, principal: Principal, login: str, siret: str, *, name: str, role: Role, issue_token: bool
    ) -> SavedUser:
        """Create the user if new and give them ``role`` in ``siret``; with ``issue_token``, a new token
        (which only a manager of every structure of the user may ask for)."""
        check_can_manage(principal, siret)
        if await self._store.principal(PrincipalKind.USER.value, login) is None:
            await self._store.upsert_user(User(login=login, name=name))
        await self._store.set_membership(login, siret, role)
        token = None
        if issue_token:
            await self._check_manages_user(principal, login)
            token = (await self._new_token(PrincipalKind.USER, login)).token
        self._tokens.invalidate()
        return SavedUser(login=login, token=token)

    async def set_membership(self, principal: Principal, login: str, siret: str, role: Role | None) -> None:
        """Give ``login`` ``role`` in ``siret``, or detach them from it when ``role`` is None."""
        check_can_manage(principal, siret)
        await self._store.set_membership(login, siret, role)
        self._tokens.invalidate()

    async def create_technical_user(
        self, principal: Principal, login: str, siret: str, *, rotate: bool, ruleset: RulesetChoice = KEEP
    ) -> IssuedToken:
        """Create a technical user of ``siret`` and its token, its flows judged by ``ruleset``. An existing
        one is refused unless ``rotate`` (a retried or mistyped create must not silently revoke a live
        token), and may only be taken over by a manager of its own structure too."""
        check_can_manage(principal, siret)
        existing = await self._store.principal(PrincipalKind.TECHNICAL.value, login)
        if existing is not None:
            if existing.siret:
                check_can_manage(principal, existing.siret)
            if not rotate:
                raise AlreadyExists(f"technical user {login} already exists (set rotate to replace its token)")
        self._check_runs_here(ruleset)
        await self._store.upsert_technical_user(login, siret, ruleset=ruleset)
        if ruleset is not KEEP:
            self._rulesets_changed()
        return await self._new_token(PrincipalKind.TECHNICAL, login)

    def _check_runs_here(self, ruleset: RulesetChoice) -> None:
        """Refuse a ruleset this gateway cannot run (``RulesetUnavailable``). None is the default, which the
        daemon checked at its start; KEEP gives nothing new."""
        if not isinstance(ruleset, Ruleset):
            return
        problem = self._ruleset_problem(ruleset)
        if problem is not None:
            raise RulesetUnavailable(f"ruleset {ruleset.value} cannot run on this gateway: {problem}")

    async def create_token(self, principal: Principal, kind: PrincipalKind, login: str) -> IssuedToken:
        """A new token for a technical user (by a manager of its structure, or by itself) or a user (by a
        manager of every structure of theirs, or by themselves); the old token stops working."""
        if kind is PrincipalKind.TECHNICAL:
            target = await self._store.principal(kind.value, login)
            if target is None or not target.siret:
                raise DirectoryEntryNotFound("technical user", login)
            if not (principal.kind is PrincipalKind.TECHNICAL and principal.login == login):
                check_can_manage(principal, target.siret)
        elif kind is PrincipalKind.USER:
            await self._check_manages_user(principal, login)
        else:
            raise PermissionDenied("only users and technical users hold tokens")
        return await self._new_token(kind, login)

    async def upsert_partner(
        self,
        principal: Principal,
        code: str,
        siret: str,
        public_keys: Sequence[str],
        *,
        status_files: bool,
        ruleset: RulesetChoice = KEEP,
    ) -> Partner:
        """Create or update an EDI partner of ``siret`` (a manager of its current structure too), its flows
        judged by ``ruleset``. Its password and rejection rules are kept. One key, one partner: the store
        refuses a key another partner code holds (``AlreadyExists`` naming it;
        ``engine.directory.check_partner_keys``)."""
        check_can_manage(principal, siret)
        existing = await self._store.get_partner(code)
        if existing is not None:
            check_can_manage(principal, existing.siret)
        self._check_runs_here(ruleset)
        partner = Partner(
            code=code,
            siret=siret,
            public_keys=tuple(public_keys),
            password_hash=existing.password_hash if existing else None,
            rules=existing.rules if existing else (),
            status_files=status_files,
            ruleset=(existing.ruleset if existing else None) if ruleset is KEEP else ruleset,
        )
        await self._store.upsert_partner(partner)
        if ruleset is not KEEP:
            self._rulesets_changed()
        return partner

    async def set_rejection_rule(
        self, principal: Principal, partner_code: str, syntax: Syntax, rule: RejectionRule
    ) -> None:
        """Set the partner's rule (complete or partial rejection) for flows of ``syntax``."""
        partner = await self._store.get_partner(partner_code)
        if partner is None:
            raise DirectoryEntryNotFound("partner", partner_code)
        check_can_manage(principal, partner.siret)
        await self._store.set_rejection_rule(partner.code, syntax, rule)

    async def grant_profile(self, principal: Principal, login: str, siret: str, profile: str = FLOW_FOLLOW_UP) -> None:
        """Grant ``profile`` on ``siret`` (primary managers only); ``ProfileAlreadyGranted`` when held."""
        check_can_manage(principal, siret)
        await self._store.grant_profile(login, siret, profile)
        self._tokens.invalidate()

    async def revoke_profile(self, principal: Principal, login: str, siret: str, profile: str = FLOW_FOLLOW_UP) -> None:
        """Revoke ``profile`` on ``siret`` (primary managers only); ``DirectoryEntryNotFound`` when not held."""
        check_can_manage(principal, siret)
        await self._store.revoke_profile(login, siret, profile)
        self._tokens.invalidate()

    async def list_rejects(
        self,
        principal: Principal,
        *,
        issuer_sirets: Iterable[str] = (),
        day_from: datetime | None = None,
        day_to: datetime | None = None,
    ) -> tuple[RejectRow, ...]:
        """Invoices not integrated, among the flows the caller may see."""
        rows = await self._store.list_rejects(
            visibility_of(principal), issuer_sirets=tuple(issuer_sirets), day_from=day_from, day_to=day_to
        )
        return tuple(rows)

    # --- webhooks (engine.webhooks) ----------------------------------------------------------------
    async def add_webhook(
        self,
        principal: Principal,
        *,
        owner_kind: OwnerKind | None,
        owner: str | None,
        url: str,
        statuses: Sequence[FlowStatus],
        body_format: WebhookFormat,
        now: datetime,
        secret: str | None = None,
    ) -> NewWebhook:
        """Subscribe ``url`` to the status changes (``statuses``, empty: all) of the flows ``owner`` may
        see. A structure's subscription by a primary manager who follows its flows (or an operator); a
        technical user's by itself or a manager of its structure; a partner's by a manager of its
        structure. Without an owner, a technical user subscribes for itself. The secret (generated when not
        given) is returned this once."""
        if owner_kind is None or owner is None:
            if principal.kind is not PrincipalKind.TECHNICAL:
                raise PermissionDenied("name the structure, technical user or partner the webhook is for")
            owner_kind, owner = OwnerKind.TECHNICAL, principal.login
        siret = await self._webhook_structure(principal, owner_kind, owner)
        new = NewSubscription(
            siret=siret,
            owner_kind=owner_kind,
            owner=owner,
            url=url,
            secret=secret or secrets.token_urlsafe(WEBHOOK_SECRET_BYTES),
            statuses=tuple(dict.fromkeys(statuses)),
            format=body_format,
            created_at=now,
            created_by=principal.depositor,
        )
        saved = await self._store.add_webhook(new)
        return NewWebhook(saved, new.secret)

    async def list_webhooks(self, principal: Principal) -> tuple[Subscription, ...]:
        """The subscriptions the caller may manage (every one for an operator)."""
        return tuple(s for s in await self._store.list_webhooks() if self._may_manage_webhook(principal, s))

    async def remove_webhook(self, principal: Principal, subscription_id: int) -> None:
        """Delete a subscription the caller may manage; its pending deliveries are dropped with it."""
        await self._webhook(principal, subscription_id)
        await self._store.delete_webhook(subscription_id)

    async def webhook_deliveries(
        self, principal: Principal, subscription_id: int | None = None, *, dead_only: bool = False, limit: int = 100
    ) -> tuple[Delivery, ...]:
        """The latest deliveries of one subscription, or of every one the caller manages; newest first."""
        if subscription_id is not None:
            ids = [(await self._webhook(principal, subscription_id)).id]
        else:
            ids = [s.id for s in await self.list_webhooks(principal)]
        state = DeliveryState.DEAD if dead_only else None
        return tuple(await self._store.list_deliveries(ids, state=state, limit=limit)) if ids else ()

    async def redeliver_webhook(self, principal: Principal, delivery_id: int, *, now: datetime) -> None:
        """Send a delivered or dead delivery again (its retries start over); ``AlreadyExists`` while it
        is still pending."""
        delivery = await self._store.get_delivery(delivery_id)
        if delivery is None:
            raise DirectoryEntryNotFound("webhook delivery", str(delivery_id))
        await self._webhook(principal, delivery.subscription_id, what=("webhook delivery", str(delivery_id)))
        if not await self._store.redeliver(delivery_id, now=now):
            raise AlreadyExists(f"webhook delivery {delivery_id} is already pending")

    async def _webhook(
        self, principal: Principal, subscription_id: int, *, what: tuple[str, str] | None = None
    ) -> Subscription:
        """The subscription, when the caller may manage it; one it may not is not found, like a missing one."""
        found = await self._store.get_webhook(subscription_id)
        if found is None or not self._may_manage_webhook(principal, found):
            raise DirectoryEntryNotFound(*(what or ("webhook", str(subscription_id))))
        return found

    @staticmethod
    def _may_manage_webhook(principal: Principal, sub: Subscription) -> bool:
        if _is_operator(principal):
            return True
        if principal.kind is PrincipalKind.TECHNICAL:
            return sub.owner_kind is OwnerKind.TECHNICAL and sub.owner == principal.login
        if principal.kind is PrincipalKind.USER and sub.siret in principal.manages:
            return sub.owner_kind is not OwnerKind.STRUCTURE or sub.siret in principal.follows
        return False

    async def _webhook_structure(self, principal: Principal, kind: OwnerKind, owner: str) -> str:
        """The structure a new subscription of ``owner`` belongs to, once the caller may create it."""
        if kind is OwnerKind.STRUCTURE:
            if await self._store.get_structure(owner) is None:
                raise DirectoryEntryNotFound("structure", owner)
            check_can_manage(principal, owner)
            if not _is_operator(principal) and owner not in principal.follows:
                raise PermissionDenied(f"only a manager who follows the flows of structure {owner} may do this")
            return owner
        if kind is OwnerKind.TECHNICAL:
            target = await self._store.principal(PrincipalKind.TECHNICAL.value, owner)
            if target is None or not target.siret:
                raise DirectoryEntryNotFound("technical user", owner)
            if not (principal.kind is PrincipalKind.TECHNICAL and principal.login == owner):
                check_can_manage(principal, target.siret)
            return target.siret
        partner = await self._store.get_partner(owner)
        if partner is None:
            raise DirectoryEntryNotFound("partner", owner)
        check_can_manage(principal, partner.siret)
        return partner.siret

    async def _new_token(self, kind: PrincipalKind, login: str) -> IssuedToken:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = await asyncio.to_thread(hash_secret, token)
        await self._store.set_token(kind.value, login, digest, secret_lookup_id(token))
        self._tokens.invalidate()
        return IssuedToken(kind=kind, login=login, token=token)

    async def _check_manages_user(self, principal: Principal, login: str) -> None:
        """The caller manages every structure ``login`` belongs to (so may act on the user's account)."""
        target = await self._store.principal(PrincipalKind.USER.value, login)
        if target is None:
            raise DirectoryEntryNotFound("user", login)
        if _is_operator(principal) or (principal.kind is PrincipalKind.USER and principal.login == login):
            return
        if not target.member_of or not target.member_of <= principal.manages:
            raise PermissionDenied(f"only a primary manager of every structure of {login} may do this")
