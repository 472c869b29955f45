"""AdminService end to end: profiles, tokens, partners, held flows and rejects, through the Python client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clients import errors
from engine.cpu_pool import CpuPool
from engine.model import Ruleset, Syntax
from engine.secrets import secret_lookup_id
from engine.status import FlowEvent, FlowStatus
from tests.grpc_support import MANAGER, PROVIDER, SUPPLIER, TECH, VIEWER, GrpcEnv, invoice
from tests.harness import DEMO_DIRECTORY

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3Q3y1y7Q2fKqW5jz0cV0p5b0X9B4m3m9Qw4tJ9m5e2 test@host"
DEMO_KEY_FILE = DEMO_DIRECTORY.parent / "AAA001_ed25519.pub"


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[GrpcEnv]:
    e = await GrpcEnv.start(tmp_path, cpu_pool)
    try:
        yield e
    finally:
        await e.close()


async def test_grant_profile_twice_and_revoke(env: GrpcEnv) -> None:
    """Only a primary manager grants flow follow-up; a second grant is ALREADY_EXISTS with the portal's
    sentence; once granted the viewer sees the structure's flows at once; revoking hides them again."""
    async with env.client(MANAGER) as manager, env.client(VIEWER) as viewer, env.client(TECH) as tech:
        number = (await tech.deposit(invoice(), "a.xml")).flow_number
        with pytest.raises(errors.NotFound):
            await viewer.get_flow(number)
        with pytest.raises(errors.PermissionDenied):
            await viewer.grant_profile("viewer", SUPPLIER)
        await manager.grant_profile("viewer", SUPPLIER)
        with pytest.raises(errors.AlreadyExists, match=r"^The user already has the selected subscription$"):
            await manager.grant_profile("viewer", SUPPLIER)
        assert (await viewer.get_flow(number)).flow_number == number
        await manager.revoke_profile("viewer", SUPPLIER)
        with pytest.raises(errors.NotFound):
            await viewer.get_flow(number)
        with pytest.raises(errors.NotFound):
            await manager.revoke_profile("viewer", SUPPLIER)


async def test_technical_user_and_token_shown_once(env: GrpcEnv) -> None:
    """A manager creates a technical user: the token works at once, is stored only hashed, and a new
    token replaces it (the old one stops working)."""
    async with env.client(MANAGER) as manager:
        token = await manager.create_technical_user("TECH_2", SUPPLIER)
        assert len(token.token) >= 40
        credential = await env.harness.store.find_credential(secret_lookup_id(token.token))
        assert credential is not None and token.token not in credential.token_hash
        async with env.client(token.token) as tech2:
            receipt = await tech2.deposit(invoice(), "t2.xml")
            assert (await tech2.get_flow(receipt.flow_number)).depositor == "tech:TECH_2"
            renewed = await manager.create_token("TECH_2")
            with pytest.raises(errors.Unauthenticated):
                await tech2.get_flow(receipt.flow_number)
        async with env.client(renewed.token) as again:
            assert (await again.get_flow(receipt.flow_number)).flow_number == receipt.flow_number
        with pytest.raises(errors.PermissionDenied):
            await manager.create_technical_user("TECH_3", "73282932000074")


async def test_partners_rules_and_structures(env: GrpcEnv) -> None:
    """A manager saves a partner with its keys and a rejection rule; bad codes and keys name the field."""
    async with env.client(MANAGER) as manager:
        await manager.upsert_partner("BBB002", SUPPLIER, public_keys=[KEY])
        await manager.set_rejection_rule("BBB002", "IN_DP_E1_UBL_INVOICE", "complete")
        partner = await env.harness.store.get_partner("BBB002")
        assert partner is not None and partner.public_keys == (KEY,)
        assert partner.rule_for(Syntax.UBL_INVOICE).value == "complete"
        with pytest.raises(errors.InvalidArgument, match="code"):
            await manager.upsert_partner("bad", SUPPLIER)
        with pytest.raises(errors.InvalidArgument, match="public_keys"):
            await manager.upsert_partner("BBB003", SUPPLIER, public_keys=["not a key"])
        sirets = {s.siret for s in await manager.list_structures()}
    assert sirets == {SUPPLIER, "55210055400013"}


async def test_reprocess_held_flow_and_list_rejects(env: GrpcEnv) -> None:
    """A held flow is released by a manager of its issuer (back to WAITING_FOR_PROCESSING); releasing a
    flow that is not held is FAILED_PRECONDITION with a sentence naming no internal event; the technical user
    may not; rejects list the invoice."""
    store = env.harness.store
    async with env.client(MANAGER) as manager, env.client(TECH) as tech:
        held = (await tech.deposit(invoice("FA-H"), "held.xml")).flow_number
        await store.transition(held, FlowStatus.RECEIVED, FlowEvent.HOLD, actor="operator:test", at=datetime.now(UTC))
        with pytest.raises(errors.PermissionDenied):
            await tech.reprocess_flow(held, "release")
        flow = await manager.reprocess_flow(held, "release", detail="checked by hand")
        assert flow.status == "WAITING_FOR_PROCESSING"
        with pytest.raises(errors.FailedPrecondition) as refused:
            await manager.reprocess_flow(held, "release")
        assert str(refused.value).startswith("a flow in status WAITING_FOR_PROCESSING (En attente de traitement) ")
        assert "cannot be released" in str(refused.value) and "admin_release" not in str(refused.value)
        bad = (await tech.deposit(invoice("FA-R", service_code=None), "bad.xml")).flow_number
        await env.harness.process_all()
        rejects = await manager.list_rejects(issuer_sirets=[SUPPLIER])
    assert [r.flow_number for r in rejects] == [bad] and rejects[0].invoice_number == "FA-R"


async def test_upsert_partner_refuses_another_partners_key(env: GrpcEnv) -> None:
    """UpsertPartner giving BBB002 the key of the demo partner AAA001 (with another comment) is
    ALREADY_EXISTS naming AAA001, and BBB002 is not created; AAA001 may save its own key again."""
    demo_key = DEMO_KEY_FILE.read_text().strip()
    copied = " ".join(demo_key.split()[:2]) + " copied@elsewhere"
    async with env.client(MANAGER) as manager:
        with pytest.raises(errors.AlreadyExists, match=r"already belongs to partner AAA001"):
            await manager.upsert_partner("BBB002", SUPPLIER, public_keys=[KEY, copied])
        assert await env.harness.store.get_partner("BBB002") is None
        await manager.upsert_partner("AAA001", PROVIDER, public_keys=[copied])
    partner = await env.harness.store.get_partner("AAA001")
    assert partner is not None and partner.public_keys == (copied,)


async def test_a_depositors_ruleset_is_set_kept_and_reset(env: GrpcEnv) -> None:
    """CreateTechnicalUser and UpsertPartner set the ruleset a depositor's flows are judged by, at once for
    the next flow: the technical user's flow names en16931+fr-flux2 in its report. A rotated token or an
    UpsertPartner without the field keeps it; "" goes back to the daemon's default (the next flow says
    en16931); an unknown name is INVALID_ARGUMENT listing the accepted ones."""

    async def judged_by(token: str, number: str) -> str:
        async with env.client(token) as tech:
            flow_number = (await tech.deposit(invoice(number), f"{number}.xml")).flow_number
        await env.harness.process_all()
        return str((await env.harness.report(flow_number))["ruleset_version"]).split(":")[0]

    store = env.harness.store
    async with env.client(MANAGER) as manager:
        token = await manager.create_technical_user("TECH_FR", SUPPLIER, ruleset="en16931+fr-flux2")
        assert await judged_by(token.token, "FA-FR-1") == "en16931+fr-flux2"
        token = await manager.create_technical_user("TECH_FR", SUPPLIER, rotate=True)
        assert (await store.depositor_rulesets())["tech:TECH_FR"] is Ruleset.EN16931_FR_FLUX2
        token = await manager.create_technical_user("TECH_FR", SUPPLIER, rotate=True, ruleset="")
        assert "tech:TECH_FR" not in await store.depositor_rulesets()
        assert await judged_by(token.token, "FA-FR-2") == "en16931"

        assert await manager.upsert_partner("BBB002", SUPPLIER, ruleset="en16931+fr-flux2") == "en16931+fr-flux2"
        assert await manager.upsert_partner("BBB002", SUPPLIER, public_keys=[KEY]) == "en16931+fr-flux2"
        assert (await store.depositor_rulesets())["partner:BBB002"] is Ruleset.EN16931_FR_FLUX2
        assert await manager.upsert_partner("BBB002", SUPPLIER, ruleset="") == ""
        assert "partner:BBB002" not in await store.depositor_rulesets()
        accepted = r"^ruleset: unknown ruleset 'fr'; accepted: en16931, en16931\+fr-flux2$"
        with pytest.raises(errors.InvalidArgument, match=accepted):
            await manager.upsert_partner("BBB002", SUPPLIER, ruleset="fr")
        with pytest.raises(errors.InvalidArgument, match=accepted):
            await manager.create_technical_user("TECH_FR2", SUPPLIER, ruleset="fr")
    assert await store.principal("technical", "TECH_FR2") is None
