"""The administration use cases (``engine.services.admin``) called directly, as every face calls them:
principals from the demo directory on a real SQLite store, no server in between."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pytest

from engine.directory import Role, Structure
from engine.directory_file import load_directory
from engine.errors import (
    AlreadyExists,
    DirectoryEntryNotFound,
    PermissionDenied,
    ProfileAlreadyGranted,
    RulesetUnavailable,
)
from engine.model import RejectionRule, Rules, Ruleset, Syntax
from engine.permissions import Principal, PrincipalKind
from engine.services.admin import AdminService
from engine.services.auth import TokenAuthenticator
from engine.store import open_store
from engine.store.port import Store
from engine.validation.rulesets import ruleset_problem
from tests.harness import DEMO_DIRECTORY, DEMO_PROVIDER_SIRET, DEMO_SUPPLIER_SIRET

OTHER_SUPPLIER = "73282932000074"
OPERATOR = Principal(PrincipalKind.OPERATOR, "root")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3Q3y1y7Q2fKqW5jz0cV0p5b0X9B4m3m9Qw4tJ9m5e2 test@host"


@dataclass
class Env:
    store: Store
    tokens: TokenAuthenticator
    admin: AdminService

    async def principal(self, kind: PrincipalKind, login: str) -> Principal:
        found = await self.store.principal(kind.value, login)
        assert found is not None
        return found


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = await open_store(f"sqlite:///{tmp_path / 'fluxdepot.db'}")
    try:
        await store.import_directory(load_directory(DEMO_DIRECTORY))
        tokens = TokenAuthenticator(store)
        yield Env(store, tokens, AdminService(store, tokens))
    finally:
        await store.close()


async def test_profiles_follow_the_primary_manager_rule(env: Env) -> None:
    """Only a primary manager of the structure grants or revokes flow follow-up; a second grant is
    ProfileAlreadyGranted with the portal's sentence; the grant shows in the user's principal at once,
    even through a token cached before it."""
    manager = await env.principal(PrincipalKind.USER, "manager")
    viewer = await env.principal(PrincipalKind.USER, "viewer")
    assert await env.tokens.principal_for_token("demo-viewer-token") == viewer  # cached from now on
    with pytest.raises(PermissionDenied):
        await env.admin.grant_profile(viewer, "viewer", DEMO_SUPPLIER_SIRET)
    await env.admin.grant_profile(manager, "viewer", DEMO_SUPPLIER_SIRET)
    with pytest.raises(ProfileAlreadyGranted, match=r"^The user already has the selected subscription$"):
        await env.admin.grant_profile(manager, "viewer", DEMO_SUPPLIER_SIRET)
    granted = await env.tokens.principal_for_token("demo-viewer-token")
    assert granted is not None and granted.follows == {DEMO_SUPPLIER_SIRET}
    await env.admin.revoke_profile(manager, "viewer", DEMO_SUPPLIER_SIRET)
    with pytest.raises(DirectoryEntryNotFound):
        await env.admin.revoke_profile(manager, "viewer", DEMO_SUPPLIER_SIRET)
    with pytest.raises(PermissionDenied):
        await env.admin.revoke_profile(manager, "viewer", OTHER_SUPPLIER)


async def test_technical_user_is_not_replaced_unless_rotate(env: Env) -> None:
    """Creating an existing technical user is AlreadyExists and its token keeps working; with ``rotate`` a
    new token replaces it; a manager of another structure may not take the account over, even rotating."""
    manager = await env.principal(PrincipalKind.USER, "manager")
    issued = await env.admin.create_technical_user(manager, "TECH_2", DEMO_SUPPLIER_SIRET, rotate=False)
    assert issued.kind is PrincipalKind.TECHNICAL and issued.login == "TECH_2" and len(issued.token) >= 40
    tech2 = await env.principal(PrincipalKind.TECHNICAL, "TECH_2")
    assert await env.tokens.principal_for_token(issued.token) == tech2
    with pytest.raises(AlreadyExists, match="rotate"):
        await env.admin.create_technical_user(manager, "TECH_2", DEMO_SUPPLIER_SIRET, rotate=False)
    assert await env.tokens.principal_for_token(issued.token) is not None
    rotated = await env.admin.create_technical_user(manager, "TECH_2", DEMO_SUPPLIER_SIRET, rotate=True)
    assert await env.tokens.principal_for_token(issued.token) is None
    assert await env.tokens.principal_for_token(rotated.token) is not None
    await env.admin.create_technical_user(OPERATOR, "TECH_other", OTHER_SUPPLIER, rotate=False)
    with pytest.raises(PermissionDenied):
        await env.admin.create_technical_user(manager, "TECH_other", DEMO_SUPPLIER_SIRET, rotate=True)


async def test_tokens_for_oneself_or_for_those_one_manages(env: Env) -> None:
    """A technical user renews its own token; a manager renews a user's token only when managing every
    structure of theirs; an unknown login is DirectoryEntryNotFound; partners hold no token."""
    tech = await env.principal(PrincipalKind.TECHNICAL, "TECH_1_papeterie@demo")
    manager = await env.principal(PrincipalKind.USER, "manager")
    viewer = await env.principal(PrincipalKind.USER, "viewer")
    own = await env.admin.create_token(tech, PrincipalKind.TECHNICAL, tech.login)
    assert await env.tokens.principal_for_token("demo-technical-token") is None
    assert await env.tokens.principal_for_token(own.token) == tech
    assert (await env.admin.create_token(manager, PrincipalKind.USER, "viewer")).login == "viewer"
    with pytest.raises(PermissionDenied):
        await env.admin.create_token(viewer, PrincipalKind.USER, "manager")
    await env.admin.upsert_user(OPERATOR, "viewer", OTHER_SUPPLIER, name="", role=Role.USER, issue_token=False)
    with pytest.raises(PermissionDenied):  # the viewer now also belongs to a structure the manager does not run
        await env.admin.create_token(manager, PrincipalKind.USER, "viewer")
    with pytest.raises(DirectoryEntryNotFound):
        await env.admin.create_token(OPERATOR, PrincipalKind.TECHNICAL, "nobody")
    with pytest.raises(PermissionDenied):
        await env.admin.create_token(OPERATOR, PrincipalKind.PARTNER, "AAA001")


async def test_structures_only_operators_create_and_flags_stay(env: Env) -> None:
    """Only an operator creates a structure; a manager's update keeps the provider and public flags; the
    listing shows a user their own structures only."""
    manager = await env.principal(PrincipalKind.USER, "manager")
    with pytest.raises(PermissionDenied):
        await env.admin.upsert_structure(manager, Structure("11111111111111", "New"))
    supplier = next(s for s in await env.admin.list_structures(OPERATOR) if s.siret == DEMO_SUPPLIER_SIRET)
    saved = await env.admin.upsert_structure(manager, replace(supplier, name="Renamed", is_provider=True))
    assert saved.name == "Renamed" and not saved.is_provider
    assert {s.siret for s in await env.admin.list_structures(manager)} == {DEMO_SUPPLIER_SIRET, DEMO_PROVIDER_SIRET}
    assert len(await env.admin.list_structures(OPERATOR)) == 6


async def test_partner_keeps_its_password_and_rules_and_its_key(env: Env) -> None:
    """Updating a partner keeps its rejection rules; a key of another partner is AlreadyExists; a manager
    may not move a partner of a structure they do not run."""
    manager = await env.principal(PrincipalKind.USER, "manager")
    partner = await env.admin.upsert_partner(manager, "BBB002", DEMO_SUPPLIER_SIRET, [KEY], status_files=True)
    assert partner.public_keys == (KEY,) and partner.status_files
    await env.admin.set_rejection_rule(manager, "BBB002", Syntax.UBL_INVOICE, RejectionRule.COMPLETE)
    again = await env.admin.upsert_partner(manager, "BBB002", DEMO_SUPPLIER_SIRET, [KEY], status_files=False)
    assert again.rule_for(Syntax.UBL_INVOICE) is RejectionRule.COMPLETE
    aaa001 = await env.store.get_partner("AAA001")
    assert aaa001 is not None
    with pytest.raises(AlreadyExists, match="AAA001"):
        await env.admin.upsert_partner(OPERATOR, "CCC003", OTHER_SUPPLIER, aaa001.public_keys, status_files=False)
    await env.admin.upsert_partner(OPERATOR, "DDD004", OTHER_SUPPLIER, [], status_files=False)
    with pytest.raises(PermissionDenied):
        await env.admin.upsert_partner(manager, "DDD004", DEMO_SUPPLIER_SIRET, [], status_files=False)
    with pytest.raises(DirectoryEntryNotFound):
        await env.admin.set_rejection_rule(manager, "ZZZ999", Syntax.UBL_INVOICE, RejectionRule.PARTIAL)


async def test_a_ruleset_whose_artefacts_are_missing_is_not_given(env: Env, tmp_path: Path) -> None:
    """With an empty artefacts folder no ruleset can run: giving one to a technical user or a partner is
    RulesetUnavailable naming the ruleset, the missing artefact and how to install it, and nothing is
    saved; the daemon's default ("" over gRPC, None here) is still accepted."""
    (tmp_path / "empty").mkdir()
    rules = Rules(artefacts_dir=str(tmp_path / "empty"))
    admin = AdminService(env.store, env.tokens, ruleset_problem=partial(ruleset_problem, rules))
    manager = await env.principal(PrincipalKind.USER, "manager")
    expected = (
        r"^ruleset en16931\+fr-flux2 cannot run on this gateway: validation artefact "
        r"EN16931-CII-validation\.xslt not found at .*; install them with `make setup` or "
    )
    with pytest.raises(RulesetUnavailable, match=expected):
        await admin.create_technical_user(
            manager, "TECH_9", DEMO_SUPPLIER_SIRET, rotate=False, ruleset=Ruleset.EN16931_FR_FLUX2
        )
    assert await env.store.principal("technical", "TECH_9") is None
    with pytest.raises(RulesetUnavailable, match=r"^ruleset en16931 cannot run"):
        await admin.upsert_partner(
            manager, "BBB002", DEMO_SUPPLIER_SIRET, [], status_files=False, ruleset=Ruleset.EN16931
        )
    assert await env.store.get_partner("BBB002") is None
    await admin.upsert_partner(manager, "BBB002", DEMO_SUPPLIER_SIRET, [], status_files=False, ruleset=None)
    assert (await env.store.get_partner("BBB002")) is not None
