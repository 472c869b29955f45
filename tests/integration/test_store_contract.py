"""The store contract: what every ``engine.store.port.Store`` implementation must do, on a real database.

Each implementation is one ``StoreFactory`` in ``FACTORIES`` (SQLite in a temp folder today; a
PostgreSQL factory is one more entry). A factory opens as many stores on the same database as a test
asks for (two stores stand for two processes) and runs raw SQL for the tamper test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.audit import GENESIS, verify_chain
from engine.directory import (
    DirectoryData,
    Membership,
    Partner,
    Profile,
    Role,
    Service,
    Structure,
    TechnicalUser,
    User,
)
from engine.errors import AlreadyExists, FlowNotFound, StatusConflict
from engine.flownumber import FLOW_NUMBER, parse_flow_number
from engine.model import (
    Channel,
    Finding,
    InvoiceFacts,
    InvoiceOutcome,
    InvoiceStatus,
    RejectionRule,
    Severity,
    Syntax,
)
from engine.status import FlowEvent, FlowStatus, InvalidTransition
from engine.store.port import NewFlow, Store
from engine.store.sqlite import SqliteStore
from tests.pg import store_factory_parts

S = FlowStatus
E = FlowEvent
T0 = datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC)
SUPPLIER = "40483304800022"
BUYER = "11000201100044"


@dataclass
class StoreFactory:
    """Opens stores on one database and runs raw SQL against it (named ``:param`` parameters)."""

    open: Callable[[], Awaitable[Store]]
    execute_raw: Callable[[str, dict[str, Any]], Awaitable[None]]


def sqlite_factory(tmp_path: Path) -> StoreFactory:
    path = str(tmp_path / "fluxdepot.db")

    async def open_store() -> Store:
        store = SqliteStore(path)
        await store.open()
        return store

    async def execute_raw(query: str, params: dict[str, Any]) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(query, params)
        conn.close()

    return StoreFactory(open_store, execute_raw)


def postgres_factory(tmp_path: Path) -> StoreFactory:
    """A fresh database on the session's PostgreSQL (``tests/pg.py``; skipped when there is none)."""
    return StoreFactory(*store_factory_parts())


FACTORIES: dict[str, Callable[[Path], StoreFactory]] = {
    "sqlite": sqlite_factory,
    "postgresql": postgres_factory,
}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    return FACTORIES[request.param](tmp_path)


@pytest.fixture
async def store(factory: StoreFactory) -> AsyncIterator[Store]:
    s = await factory.open()
    try:
        yield s
    finally:
        await s.close()


def new_flow(
    i: int = 0,
    *,
    tracking_id: str | None = None,
    depositor: str = "tech:TECH_1",
    at: datetime = T0,
    prefix: str = "CPP001",
    syntax: Syntax = Syntax.UBL_INVOICE,
) -> NewFlow:
    return NewFlow(
        number_prefix=prefix,
        file_name=f"flow-{i}.xml",
        syntax=syntax,
        declared_syntax=True,
        channel=Channel.API,
        issuer_siret=SUPPLIER,
        depositor=depositor,
        sha256=f"{i:064x}",
        size_bytes=100 + i,
        blob_key=f"{i:064x}",
        deposited_at=at,
        tracking_id=tracking_id,
    )


async def walk(store: Store, number: str, *events: FlowEvent, at: datetime = T0) -> None:
    """Apply ``events`` in order from RECEIVED (each step compare-and-set on the previous status)."""
    flow = await store.get_flow(number)
    assert flow is not None
    status = flow.status
    for k, event in enumerate(events, start=1):
        status = (await store.transition(number, status, event, actor="worker:w", at=at + timedelta(seconds=k))).status


def facts(number: str, *, year: str = "2026", supplier: str = SUPPLIER) -> InvoiceFacts:
    return InvoiceFacts(
        document=f"{number}.xml",
        number=number,
        type_code="380",
        issue_date=f"{year}-03-04",
        currency="EUR",
        supplier_id=supplier,
        supplier_name="Papeterie",
        buyer_id=BUYER,
        buyer_name="Ministère",
        service_code="SERV1",
        engagement_number=None,
        total_without_vat=Decimal("100.00"),
        total_with_vat=Decimal("120.00"),
        amount_due=Decimal("120.005"),
        guideline="urn:cen.eu:en16931:2017",
        has_attachment=True,
    )


# --- lifecycle -------------------------------------------------------------------------------------
async def test_open_twice_applies_migrations_once(factory: StoreFactory) -> None:
    """Opening an existing database again (and two openers at once) migrates nothing twice, loses nothing."""
    first, second = await asyncio.gather(factory.open(), factory.open())
    created = await first.create_flow(new_flow())
    await first.close()
    await second.close()
    again = await factory.open()
    try:
        assert await again.get_flow(created.flow_number) == created
        assert await again.all_flow_numbers() == [created.flow_number]
    finally:
        await again.close()


async def test_flow_is_durable_across_reopen(factory: StoreFactory) -> None:
    """A flow returned by create_flow, its history and later transitions are there after close and reopen."""
    store = await factory.open()
    created = await store.create_flow(new_flow(tracking_id="t-1"))
    await walk(store, created.flow_number, E.TRANSPORT_CHECKED)
    history = await store.history(created.flow_number)
    await store.close()
    store = await factory.open()
    try:
        flow = await store.get_flow(created.flow_number)
        assert flow is not None and flow.status is S.PROCESSED_SE_CPP
        assert await store.history(created.flow_number) == history
        assert await store.find_by_tracking_id("tech:TECH_1", "t-1") == flow
        assert await store.get_blob_key(created.flow_number) == f"{0:064x}"
    finally:
        await store.close()


# --- create_flow ---------------------------------------------------------------------------------
async def test_create_flow_records_received_flow_event_and_job(store: Store) -> None:
    """create_flow stores every field, status RECEIVED, a first event (seq 1, GENESIS) and one job."""
    new = NewFlow(
        number_prefix="AAA001",
        file_name="factures.zip",
        syntax=Syntax.CII_16B,
        declared_syntax=False,
        channel=Channel.EDI,
        issuer_siret=SUPPLIER,
        depositor="partner:AAA001",
        sha256="ab" * 32,
        size_bytes=4096,
        blob_key="ab" * 32,
        deposited_at=T0,
        tracking_id="abc",
        partner_code="AAA001",
    )
    flow = await store.create_flow(new)
    assert re.fullmatch(r"AAA0011106\d{15}", flow.flow_number)
    assert (flow.file_name, flow.syntax, flow.declared_syntax, flow.channel) == (
        "factures.zip",
        Syntax.CII_16B,
        False,
        Channel.EDI,
    )
    assert (flow.issuer_siret, flow.depositor, flow.partner_code, flow.tracking_id) == (
        SUPPLIER,
        "partner:AAA001",
        "AAA001",
        "abc",
    )
    assert (flow.sha256, flow.size_bytes, flow.status) == ("ab" * 32, 4096, S.RECEIVED)
    assert flow.deposited_at == flow.status_changed_at == T0
    assert (flow.invoice_count, flow.integrated_count, flow.rejected_count, flow.return_flows) == (
        0,
        0,
        0,
        (),
    )
    assert await store.get_flow(flow.flow_number) == flow
    [first] = await store.history(flow.flow_number)
    assert (first.seq, first.status, first.event, first.actor, first.prev_hash) == (
        1,
        S.RECEIVED,
        None,
        "partner:AAA001",
        GENESIS,
    )
    assert first.at == T0
    assert await store.queue_depth() == 1
    assert await store.get_flow("CPP0011100999999999999999") is None


async def test_datetimes_are_utc_aware_in_and_out(store: Store) -> None:
    """A deposit time in another zone comes back as the same instant, timezone-aware in UTC."""
    paris = timezone(timedelta(hours=2))
    flow = await store.create_flow(new_flow(at=T0.astimezone(paris)))
    assert flow.deposited_at == T0
    assert flow.deposited_at.utcoffset() == timedelta(0)
    [event] = await store.history(flow.flow_number)
    assert event.at.utcoffset() == timedelta(0)


async def test_concurrent_create_flow_numbers_are_unique_and_well_formed(store: Store) -> None:
    """200 concurrent deposits get 200 distinct, well-formed numbers carrying prefix and interface code."""
    flows = await asyncio.gather(*(store.create_flow(new_flow(i)) for i in range(200)))
    numbers = [f.flow_number for f in flows]
    assert len(set(numbers)) == 200
    for number in numbers:
        assert FLOW_NUMBER.fullmatch(number)
        parsed = parse_flow_number(number)
        assert (parsed.partner_code, parsed.interface_number) == ("CPP001", "1100")
    assert len({parse_flow_number(n).sequence for n in numbers}) == 200
    assert sorted(await store.all_flow_numbers()) == sorted(numbers)
    assert await store.queue_depth() == 200


async def test_flow_number_sequence_is_global_across_prefixes(store: Store) -> None:
    """Numbers of different partners and syntaxes share one counter: a sequence is never reused."""
    a = await store.create_flow(new_flow(1, prefix="AAA001"))
    b = await store.create_flow(new_flow(2, prefix="BBB002", syntax=Syntax.CII_FACTURX))
    assert b.flow_number.startswith("BBB0021117")
    assert parse_flow_number(b.flow_number).sequence > parse_flow_number(a.flow_number).sequence
    assert await store.all_flow_numbers() == [a.flow_number, b.flow_number]


async def test_tracking_id_is_unique_per_depositor(store: Store) -> None:
    """A second flow with one (depositor, tracking id) raises AlreadyExists; other depositors may reuse it."""
    first = await store.create_flow(new_flow(1, tracking_id="retry-me"))
    with pytest.raises(AlreadyExists):
        await store.create_flow(new_flow(2, tracking_id="retry-me"))
    assert await store.find_by_tracking_id("tech:TECH_1", "retry-me") == first
    other = await store.create_flow(new_flow(3, tracking_id="retry-me", depositor="tech:TECH_2"))
    assert other.flow_number != first.flow_number
    assert await store.find_by_tracking_id("tech:TECH_1", "unknown") is None
    assert len(await store.all_flow_numbers()) == 2
    assert await store.queue_depth() == 2


async def test_concurrent_duplicate_tracking_ids_create_one_flow(factory: StoreFactory) -> None:
    """Ten concurrent deposits with one tracking id, through two stores: one flow, nine AlreadyExists."""
    a, b = await factory.open(), await factory.open()
    try:
        results = await asyncio.gather(
            *((a if i % 2 else b).create_flow(new_flow(i, tracking_id="same")) for i in range(10)),
            return_exceptions=True,
        )
        created = [r for r in results if not isinstance(r, BaseException)]
        assert len(created) == 1
        assert all(isinstance(r, AlreadyExists) for r in results if isinstance(r, BaseException))
        assert await a.all_flow_numbers() == [created[0].flow_number]
    finally:
        await a.close()
        await b.close()


# --- transitions ---------------------------------------------------------------------------------
async def test_transition_is_compare_and_set(store: Store) -> None:
    """A transition from the actual status succeeds and is recorded; from a stale one it is StatusConflict."""
    flow = await store.create_flow(new_flow())
    at = T0 + timedelta(seconds=5)
    moved = await store.transition(flow.flow_number, S.RECEIVED, E.TRANSPORT_CHECKED, actor="worker:1", at=at)
    assert moved.status is S.PROCESSED_SE_CPP and moved.status_changed_at == at
    with pytest.raises(StatusConflict) as info:
        await store.transition(flow.flow_number, S.RECEIVED, E.TRANSPORT_CHECKED, actor="worker:2", at=at)
    assert info.value.actual == S.PROCESSED_SE_CPP.name
    history = await store.history(flow.flow_number)
    assert [(h.seq, h.status, h.event, h.actor) for h in history] == [
        (1, S.RECEIVED, None, "tech:TECH_1"),
        (2, S.PROCESSED_SE_CPP, E.TRANSPORT_CHECKED, "worker:1"),
    ]


async def test_transition_applies_several_events_in_one_call(store: Store) -> None:
    """Several events in one transition are applied in order: one hash-chained event each, the flow in
    the last status, its job kept; the chain verifies."""
    flow = await store.create_flow(new_flow())
    at = T0 + timedelta(seconds=5)
    steps = [E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED]
    moved = await store.transition(flow.flow_number, S.RECEIVED, steps, actor="worker:1", at=at)
    assert moved.status is S.IN_PROGRESS and moved.status_changed_at == at
    history = await store.history(flow.flow_number)
    assert [(h.seq, h.status, h.event, h.actor) for h in history] == [
        (1, S.RECEIVED, None, "tech:TECH_1"),
        (2, S.PROCESSED_SE_CPP, E.TRANSPORT_CHECKED, "worker:1"),
        (3, S.WAITING_FOR_PROCESSING, E.QUEUED, "worker:1"),
        (4, S.IN_PROGRESS, E.CLAIMED, "worker:1"),
    ]
    assert verify_chain(history) == []
    assert await store.queue_depth() == 1
    done = await store.transition(flow.flow_number, S.IN_PROGRESS, [E.HOLD, E.ADMIN_CLOSE], actor="op", at=at)
    assert done.status is S.WARNING
    assert await store.queue_depth() == 0
    assert verify_chain(await store.history(flow.flow_number)) == []


async def test_multi_event_transition_is_all_or_nothing(store: Store) -> None:
    """A sequence with a step not allowed is refused before anything is written (InvalidTransition); a
    sequence from a stale status is StatusConflict and records none of its events."""
    flow = await store.create_flow(new_flow())
    with pytest.raises(InvalidTransition):
        await store.transition(flow.flow_number, S.RECEIVED, [E.TRANSPORT_CHECKED, E.CLAIMED], actor="w", at=T0)
    with pytest.raises(StatusConflict) as info:
        await store.transition(flow.flow_number, S.PROCESSED_SE_CPP, [E.QUEUED, E.CLAIMED], actor="w", at=T0)
    assert info.value.actual == S.RECEIVED.name
    assert [h.seq for h in await store.history(flow.flow_number)] == [1]
    assert (await store.get_flow(flow.flow_number)).status is S.RECEIVED  # type: ignore[union-attr]


async def test_transition_of_unknown_flow_is_a_conflict(store: Store) -> None:
    """A transition on a flow that does not exist raises StatusConflict with no actual status."""
    with pytest.raises(StatusConflict) as info:
        await store.transition("CPP0011100000000000000001", S.RECEIVED, E.TRANSPORT_CHECKED, actor="w", at=T0)
    assert info.value.actual is None


async def test_concurrent_transitions_only_one_wins(factory: StoreFactory) -> None:
    """Two stores racing the same compare-and-set: exactly one succeeds, the other gets StatusConflict."""
    a, b = await factory.open(), await factory.open()
    try:
        flow = await a.create_flow(new_flow())
        results = await asyncio.gather(
            a.transition(flow.flow_number, S.RECEIVED, E.TRANSPORT_CHECKED, actor="a", at=T0),
            b.transition(flow.flow_number, S.RECEIVED, E.TECHNICAL_REJECTION, actor="b", at=T0),
            return_exceptions=True,
        )
        assert sum(isinstance(r, StatusConflict) for r in results) == 1
        assert len(await a.history(flow.flow_number)) == 2
    finally:
        await a.close()
        await b.close()


async def test_invalid_transition_is_refused_without_change(store: Store) -> None:
    """An event not allowed from the expected status raises InvalidTransition and records nothing."""
    flow = await store.create_flow(new_flow())
    with pytest.raises(InvalidTransition):
        await store.transition(flow.flow_number, S.RECEIVED, E.ALL_INTEGRATED, actor="w", at=T0)
    assert (await store.get_flow(flow.flow_number)) == flow
    assert len(await store.history(flow.flow_number)) == 1


async def test_final_status_removes_job_and_admin_reprocess_recreates_it(store: Store) -> None:
    """The job follows the status: gone on WARNING, back on ADMIN_REPROCESS, gone on HOLD, back on release."""
    flow = await store.create_flow(new_flow())
    n = flow.flow_number
    await store.transition(n, S.RECEIVED, E.SYSTEM_FAILURE, actor="w", at=T0)
    assert await store.queue_depth() == 0
    assert await store.claim("w1", now=T0 + timedelta(hours=1), lease_s=30) is None
    await store.transition(n, S.WARNING, E.ADMIN_REPROCESS, actor="admin:root", at=T0 + timedelta(minutes=1))
    assert await store.queue_depth() == 1
    claim = await store.claim("w1", now=T0 + timedelta(hours=1), lease_s=30)
    assert claim is not None and claim.flow_number == n and claim.status is S.WAITING_FOR_PROCESSING
    await store.transition(n, S.WAITING_FOR_PROCESSING, E.HOLD, actor="admin:root", at=T0 + timedelta(minutes=2))
    assert await store.queue_depth() == 0
    await store.transition(
        n, S.WAITING_FOR_REPROCESSING, E.ADMIN_RELEASE, actor="admin:root", at=T0 + timedelta(minutes=3)
    )
    claim = await store.claim("w2", now=T0 + timedelta(hours=1), lease_s=30)
    assert claim is not None and claim.attempts == 0 and claim.status is S.WAITING_FOR_PROCESSING


async def test_record_verdict_records_the_steps_before_it_in_the_same_transaction(store: Store) -> None:
    """A verdict given with the steps that lead to IN_PROGRESS records each step as its own chained event,
    then the verdict, in one transaction: the job is gone, and a step not allowed from the expected status
    is refused before anything is written (the flow is still RECEIVED for the real verdict)."""
    flow = await store.create_flow(new_flow())
    n = flow.flow_number
    claim = await store.claim("w1", now=T0, lease_s=30)
    assert claim is not None and claim.flow_number == n
    with pytest.raises(InvalidTransition):
        await store.record_verdict(
            n, S.RECEIVED, (E.QUEUED, E.ALL_INTEGRATED), actor="worker:1", at=T0,
            flow_findings=[], invoices=[], ruleset_version="x",
        )  # fmt: skip
    outcome = InvoiceOutcome(facts("F-9"), InvoiceStatus.INTEGRATED)
    done = await store.record_verdict(
        n, S.RECEIVED, (E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED, E.ALL_INTEGRATED), actor="worker:1",
        at=T0 + timedelta(seconds=1), flow_findings=[], invoices=[outcome], ruleset_version="r",
    )  # fmt: skip
    assert done.status is S.INTEGRATED and done.integrated_count == 1
    history = await store.history(n)
    assert [h.status for h in history] == [
        S.RECEIVED, S.PROCESSED_SE_CPP, S.WAITING_FOR_PROCESSING, S.IN_PROGRESS, S.INTEGRATED,
    ]  # fmt: skip
    assert [h.event for h in history[1:]] == [E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED, E.ALL_INTEGRATED]
    assert verify_chain(history) == []
    assert await store.queue_depth() == 0
    assert await store.invoices(n) == [outcome]


# --- audit chain ---------------------------------------------------------------------------------
async def test_history_hash_chain_verifies_and_detects_tampering(store: Store, factory: StoreFactory) -> None:
    """The events of a flow form a valid hash chain; rewriting one row in the database breaks it."""
    flow = await store.create_flow(new_flow())
    # Whole-second times too: their isoformat() has no fraction, and the chain must still verify.
    whole_second = T0.replace(microsecond=0)
    await walk(store, flow.flow_number, E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED, E.SYSTEM_FAILURE, at=whole_second)
    history = await store.history(flow.flow_number)
    assert [h.seq for h in history] == [1, 2, 3, 4, 5]
    assert history[1].at == whole_second + timedelta(seconds=1)
    assert verify_chain(history) == []
    await factory.execute_raw(
        "UPDATE status_events SET actor = :actor WHERE flow_number = :n AND seq = :seq",
        {"actor": "someone-else", "n": flow.flow_number, "seq": 3},
    )
    breaks = verify_chain(await store.history(flow.flow_number))
    assert [(b.seq, b.reason) for b in breaks] == [(3, "hash does not match the content")]


# --- verdicts ------------------------------------------------------------------------------------
async def test_record_verdict_stores_invoices_findings_counts_and_removes_job(store: Store) -> None:
    """record_verdict stores invoices with findings, flow findings, counts and ruleset; the job is gone."""
    flow = await store.create_flow(new_flow())
    n = flow.flow_number
    await walk(store, n, E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED)
    warning = Finding("EN16931_WARNING", "check it", Severity.WARNING, "BR-CL-10", "BT-5", "a.xml; /Invoice", "a.xml")
    bad = Finding("DUPLICATE_INVOICE", "already integrated", rule="CPP-DUPLICATE", business_term="BT-1")
    note = Finding("DIRECTORY_CHECKS_NOT_RUN", "no directory", Severity.INFO)
    outcomes = [
        InvoiceOutcome(facts("F-1"), InvoiceStatus.INTEGRATED, (warning,)),
        InvoiceOutcome(facts("F-2"), InvoiceStatus.REJECTED, (bad, warning)),
        InvoiceOutcome(facts("F-3"), InvoiceStatus.INTEGRATED),
    ]
    done = await store.record_verdict(
        n,
        S.IN_PROGRESS,
        E.SOME_INTEGRATED,
        actor="worker:1",
        at=T0 + timedelta(minutes=1),
        flow_findings=[note],
        invoices=outcomes,
        ruleset_version="en16931-1.3.13",
    )
    assert done.status is S.PARTIALLY_INTEGRATED
    assert (done.invoice_count, done.integrated_count, done.rejected_count) == (3, 2, 1)
    assert await store.invoices(n) == outcomes
    assert await store.flow_findings(n) == [note]
    assert await store.ruleset_version(n) == "en16931-1.3.13"
    assert await store.get_flow(n) == done
    assert await store.queue_depth() == 0
    assert verify_chain(await store.history(n)) == []
    with pytest.raises(StatusConflict):
        await store.record_verdict(
            n,
            S.IN_PROGRESS,
            E.ALL_INTEGRATED,
            actor="worker:2",
            at=T0,
            flow_findings=[],
            invoices=[],
            ruleset_version="x",
        )
    assert await store.invoices(n) == outcomes  # the losing verdict wrote nothing


async def test_integrated_invoice_flows_finds_integrated_invoices_only(store: Store) -> None:
    """The duplicate lookup returns the flow that integrated each (year, number), ignoring rejected ones."""
    first = await store.create_flow(new_flow(1))
    await walk(store, first.flow_number, E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED)
    await store.record_verdict(
        first.flow_number,
        S.IN_PROGRESS,
        E.SOME_INTEGRATED,
        actor="w",
        at=T0,
        flow_findings=[],
        invoices=[
            InvoiceOutcome(facts("F-1"), InvoiceStatus.INTEGRATED),
            InvoiceOutcome(facts("F-2"), InvoiceStatus.REJECTED),
            InvoiceOutcome(facts("F-3", year="2025"), InvoiceStatus.INTEGRATED),
        ],
        ruleset_version="r",
    )
    second = await store.create_flow(new_flow(2))
    await walk(store, second.flow_number, E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED)
    await store.record_verdict(
        second.flow_number,
        S.IN_PROGRESS,
        E.ALL_INTEGRATED,
        actor="w",
        at=T0,
        flow_findings=[],
        # F-2 was rejected in the first flow; an invoice is integrated at most once (PostgreSQL enforces it).
        invoices=[InvoiceOutcome(facts("F-2"), InvoiceStatus.INTEGRATED)],
        ruleset_version="r",
    )
    found = await store.integrated_invoice_flows(
        SUPPLIER, [("2026", "F-1"), ("2026", "F-2"), ("2026", "F-3"), ("2025", "F-3"), ("2026", "F-9")]
    )
    assert found == {
        ("2026", "F-1"): first.flow_number,
        ("2026", "F-2"): second.flow_number,
        ("2025", "F-3"): first.flow_number,
    }
    assert await store.integrated_invoice_flows("99999999999999", [("2026", "F-1")]) == {}
    assert await store.integrated_invoice_flows(SUPPLIER, []) == {}


async def test_return_flows_are_recorded_once_in_order(store: Store) -> None:
    """add_return_flow appends a name once (a retry adds nothing); an unknown flow is FlowNotFound."""
    flow = await store.create_flow(new_flow())
    await store.add_return_flow(flow.flow_number, "FSO1100A_AAA001_1.xml")
    await store.add_return_flow(flow.flow_number, "status.xml")
    await store.add_return_flow(flow.flow_number, "FSO1100A_AAA001_1.xml")
    got = await store.get_flow(flow.flow_number)
    assert got is not None and got.return_flows == ("FSO1100A_AAA001_1.xml", "status.xml")
    with pytest.raises(FlowNotFound):
        await store.add_return_flow("CPP0011100999999999999999", "x.xml")


async def judged_flows(store: Store) -> list[str]:
    """Three flows: two judged with invoices and findings of their own, one not judged yet."""
    numbers = []
    for i, (first, second) in enumerate(((Severity.WARNING, Severity.ERROR), (Severity.INFO, Severity.WARNING))):
        n = (await store.create_flow(new_flow(i))).flow_number
        await walk(store, n, E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED)
        one, two = Finding(f"CODE_{i}_A", "a", first), Finding(f"CODE_{i}_B", "b", second, rule="R-1")
        await store.record_verdict(
            n,
            S.IN_PROGRESS,
            E.SOME_INTEGRATED,
            actor="worker:1",
            at=T0 + timedelta(minutes=1),
            flow_findings=[two, one],
            invoices=[
                InvoiceOutcome(facts(f"F-{i}-1"), InvoiceStatus.INTEGRATED, (one,)),
                InvoiceOutcome(facts(f"F-{i}-2"), InvoiceStatus.REJECTED, (two, one)),
                InvoiceOutcome(facts(f"F-{i}-3"), InvoiceStatus.INTEGRATED),
            ],
            ruleset_version=f"ruleset-{i}",
        )
        numbers.append(n)
    numbers.append((await store.create_flow(new_flow(9))).flow_number)
    return numbers


async def test_report_inputs_of_a_batch_match_the_one_flow_reads(store: Store) -> None:
    """report_inputs reads history, flow findings, invoices (with their findings) and ruleset version of many
    flows at once, each in the order the one-flow reads give; unknown flows are left out."""
    numbers = await judged_flows(store)
    got = await store.report_inputs([*numbers, "CPP0011100999999999999999"])
    assert sorted(got) == sorted(numbers)
    for number in numbers:
        one = got[number]
        assert list(one.history) == await store.history(number)
        assert list(one.flow_findings) == await store.flow_findings(number)
        assert list(one.invoices) == await store.invoices(number)
        assert one.ruleset_version == await store.ruleset_version(number)
    assert await store.report_inputs([]) == {}


async def test_return_flows_are_recorded_in_batches_all_or_none(store: Store) -> None:
    """add_return_flows records every pair in order, once each; one unknown flow records none of them."""
    first, second = await store.create_flow(new_flow(1)), await store.create_flow(new_flow(2))
    await store.add_return_flows([])
    await store.add_return_flows(
        [(first.flow_number, "status_1.xml"), (first.flow_number, "report_1.xml"), (second.flow_number, "report_2.xml")]
    )
    await store.add_return_flows([(first.flow_number, "report_1.xml")])
    got = [await store.get_flow(f.flow_number) for f in (first, second)]
    assert [g.return_flows if g else None for g in got] == [("status_1.xml", "report_1.xml"), ("report_2.xml",)]
    with pytest.raises(FlowNotFound):
        await store.add_return_flows([(second.flow_number, "more.xml"), ("CPP0011100999999999999999", "x.xml")])
    again = await store.get_flow(second.flow_number)
    assert again is not None and again.return_flows == ("report_2.xml",)


# --- work queue ----------------------------------------------------------------------------------
async def test_claim_leases_oldest_available_job(store: Store) -> None:
    """claim hands out jobs oldest first, each to one worker, with its status, blob key and lease end."""
    flows = [await store.create_flow(new_flow(i, at=T0 + timedelta(seconds=i))) for i in range(3)]
    now = T0 + timedelta(minutes=1)
    assert await store.claim("w", now=T0 - timedelta(seconds=1), lease_s=30) is None  # nothing available yet
    claims = [await store.claim(f"w{i}", now=now, lease_s=30) for i in range(4)]
    assert [c.flow_number if c else None for c in claims] == [f.flow_number for f in flows] + [None]
    first = claims[0]
    assert first is not None
    assert (first.status, first.attempts, first.blob_key) == (S.RECEIVED, 0, f"{0:064x}")
    assert first.lease_expires_at == now + timedelta(seconds=30)


async def test_bytes_kept_with_the_row_come_with_the_claim_and_go_with_the_purge(store: Store) -> None:
    """A flow created with its content (blob_key "") hands those exact bytes to the worker that claims
    it, on every claim; a flow with a blob key gets no content; purging the flow removes its bytes and
    reports no blob key for it. Several flows in one batch each keep their own bytes."""
    contents = {i: bytes(range(256)) * 4 + str(i).encode() for i in range(3)}  # any bytes, not only text
    made = await asyncio.gather(
        *(store.create_flow(dataclasses.replace(new_flow(i), blob_key="", content=contents[i])) for i in range(3))
    )
    with_blob = await store.create_flow(new_flow(3, at=T0 + timedelta(seconds=1)))
    assert await store.get_blob_key(made[0].flow_number) == ""
    now = T0 + timedelta(minutes=1)
    claims = [await store.claim(f"w{i}", now=now, lease_s=30) for i in range(4)]
    by_number = {c.flow_number: c for c in claims if c is not None}
    for i, flow in enumerate(made):
        assert (by_number[flow.flow_number].blob_key, by_number[flow.flow_number].content) == ("", contents[i])
    assert (by_number[with_blob.flow_number].blob_key, by_number[with_blob.flow_number].content) == (f"{3:064x}", None)
    with pytest.raises(ValueError):
        dataclasses.replace(new_flow(9), content=b"both a blob and bytes")
    for flow in [*made, with_blob]:
        await walk(store, flow.flow_number, E.TECHNICAL_REJECTION, at=now)
    purged, keys = await store.purge_flows(now + timedelta(days=1))
    assert (purged, keys) == (4, [f"{3:064x}"])
    assert await store.claim("w9", now=now + timedelta(days=2), lease_s=30) is None


async def test_two_workers_racing_claim_each_job_exactly_once(factory: StoreFactory) -> None:
    """Two stores on one database (two processes) claiming 50 jobs concurrently: each job is claimed once."""
    a, b = await factory.open(), await factory.open()
    try:
        numbers = {f.flow_number for f in await asyncio.gather(*(a.create_flow(new_flow(i)) for i in range(50)))}
        now = T0 + timedelta(minutes=1)

        async def worker(s: Store, worker_id: str) -> list[str]:
            got: list[str] = []
            while (c := await s.claim(worker_id, now=now, lease_s=60)) is not None:
                got.append(c.flow_number)
                await asyncio.sleep(0)
            return got

        results = await asyncio.gather(worker(a, "a1"), worker(b, "b1"), worker(a, "a2"), worker(b, "b2"))
        claimed = [n for r in results for n in r]
        assert len(claimed) == 50
        assert set(claimed) == numbers
    finally:
        await a.close()
        await b.close()


async def test_heartbeat_and_release(store: Store) -> None:
    """Only the holder extends a lease; release hands the job back with no attempt counted."""
    flow = await store.create_flow(new_flow())
    now = T0 + timedelta(minutes=1)
    claim = await store.claim("w1", now=now, lease_s=10)
    assert claim is not None
    assert await store.heartbeat(flow.flow_number, "w1", now=now + timedelta(seconds=5), lease_s=10)
    assert not await store.heartbeat(flow.flow_number, "w2", now=now, lease_s=10)
    # Extended to now+15s: a recovery at now+12s finds nothing expired.
    assert await store.recover_expired_leases(now=now + timedelta(seconds=12), actor="w") == []
    assert await store.claim("w2", now=now, lease_s=10) is None
    await store.release(flow.flow_number, "w2")  # not the holder: no effect
    assert await store.claim("w2", now=now, lease_s=10) is None
    await store.release(flow.flow_number, "w1")
    again = await store.claim("w2", now=now, lease_s=10)
    assert again is not None and again.flow_number == flow.flow_number and again.attempts == 0
    assert not await store.heartbeat(flow.flow_number, "w1", now=now, lease_s=10)


async def test_recover_expired_leases_requeues_then_holds(store: Store) -> None:
    """First expiry puts an IN_PROGRESS flow back to WAITING_FOR_PROCESSING; the second holds it in
    WAITING_FOR_REPROCESSING with a PROCESSING_INTERRUPTED finding and no job."""
    flow = await store.create_flow(new_flow())
    n = flow.flow_number
    now = T0 + timedelta(minutes=1)
    assert await store.claim("w1", now=now, lease_s=10) is not None
    await walk(store, n, E.TRANSPORT_CHECKED, E.QUEUED, E.CLAIMED, at=now)
    assert await store.recover_expired_leases(now=now + timedelta(seconds=5), actor="recovery") == []

    later = now + timedelta(seconds=11)
    [first] = await store.recover_expired_leases(now=later, actor="recovery")
    assert (first.flow_number, first.from_status, first.to_status) == (
        n,
        S.IN_PROGRESS,
        S.WAITING_FOR_PROCESSING,
    )
    last = (await store.history(n))[-1]
    assert (last.event, last.actor, last.at) == (E.LEASE_EXPIRED, "recovery", later)

    claim = await store.claim("w2", now=later, lease_s=10)
    assert claim is not None and claim.attempts == 1 and claim.status is S.WAITING_FOR_PROCESSING
    await store.transition(n, S.WAITING_FOR_PROCESSING, E.CLAIMED, actor="w2", at=later)
    [second] = await store.recover_expired_leases(now=later + timedelta(seconds=11), actor="recovery")
    assert (second.from_status, second.to_status) == (S.IN_PROGRESS, S.WAITING_FOR_REPROCESSING)
    held = await store.get_flow(n)
    assert held is not None and held.status is S.WAITING_FOR_REPROCESSING
    assert [f.code for f in await store.flow_findings(n)] == ["PROCESSING_INTERRUPTED"]
    assert await store.queue_depth() == 0
    assert await store.recover_expired_leases(now=later + timedelta(hours=1), actor="recovery") == []
    assert verify_chain(await store.history(n)) == []


async def test_recover_clears_expired_lease_of_unstarted_flow(store: Store) -> None:
    """A RECEIVED flow whose lease expired keeps its status; the lease is cleared, the attempt counted."""
    flow = await store.create_flow(new_flow())
    now = T0 + timedelta(minutes=1)
    assert await store.claim("w1", now=now, lease_s=10) is not None
    [r] = await store.recover_expired_leases(now=now + timedelta(seconds=11), actor="recovery")
    assert (r.from_status, r.to_status) == (S.RECEIVED, S.RECEIVED)
    assert len(await store.history(flow.flow_number)) == 1
    claim = await store.claim("w2", now=now + timedelta(seconds=11), lease_s=10)
    assert claim is not None and claim.attempts == 1
    [held] = await store.recover_expired_leases(now=now + timedelta(seconds=30), actor="recovery")
    assert (held.from_status, held.to_status) == (S.RECEIVED, S.WAITING_FOR_REPROCESSING)


# --- directory -----------------------------------------------------------------------------------
DIRECTORY = DirectoryData(
    structures=(
        Structure(
            SUPPLIER,
            "Papeterie",
            is_provider=True,
            services=(Service("S1", "Achats"), Service("S0", "Old", False)),
        ),
        Structure(BUYER, "Ministère", is_public=True, service_code_required=True, engagement_required=True),
        Structure("22222222222222", "Fermée", active=False, service_or_engagement_required=True),
    ),
    users=(User("alice", "Alice", "hash-a"), User("bob")),
    memberships=(Membership("alice", SUPPLIER, Role.PRIMARY_MANAGER), Membership("bob", SUPPLIER, Role.USER)),
    technical_users=(TechnicalUser("TECH_1", SUPPLIER, "hash-t"),),
    partners=(
        Partner(
            "AAA001",
            SUPPLIER,
            ("ssh-ed25519 AAAA one", "ssh-ed25519 AAAA two"),
            "pw-hash",
            ((Syntax.UBL_INVOICE, RejectionRule.COMPLETE), (Syntax.CII_16B, RejectionRule.PARTIAL)),
            True,
        ),
        Partner("BBB002", BUYER),
    ),
    profiles=(Profile("alice", SUPPLIER),),
)


async def test_singleton_is_held_by_one_store_at_a_time(factory: StoreFactory) -> None:
    """The first store to ask holds a singleton (asking again keeps it); another store on the same database
    does not get it while the first is open (SQLite: one process owns the file, so it always holds), and
    gets it once the first released it or closed."""
    first = await factory.open()
    assert await first.try_singleton("watchdog")
    assert await first.try_singleton("watchdog")
    assert await first.try_singleton("outbox")
    if isinstance(first, SqliteStore):
        await first.release_singleton("watchdog")
        assert await first.try_singleton("watchdog")
        await first.close()
        return
    second = await factory.open()
    try:
        assert not await second.try_singleton("watchdog")
        assert await second.try_singleton("other")
        await first.release_singleton("watchdog")
        assert await second.try_singleton("watchdog")
        assert not await first.try_singleton("watchdog")
        assert not await second.try_singleton("outbox")
        await first.close()
        assert await second.try_singleton("outbox")
    finally:
        await second.close()


async def test_directory_round_trip(store: Store) -> None:
    """Imported structures (with services) and partners (with keys and rules) read back equal."""
    await store.import_directory(DIRECTORY)
    for s in DIRECTORY.structures:
        assert await store.get_structure(s.siret) == s
    for p in DIRECTORY.partners:
        assert await store.get_partner(p.code) == p
    snap = await store.snapshot([SUPPLIER, BUYER, "00000000000000"])
    assert snap.structures == {SUPPLIER: DIRECTORY.structures[0], BUYER: DIRECTORY.structures[1]}
    assert await store.get_structure("00000000000000") is None
    assert await store.get_partner("ZZZ999") is None


async def test_directory_reimport_replaces_entries(store: Store) -> None:
    """Importing an entry again replaces it with its children (services, keys, rules); others are kept."""
    await store.import_directory(DIRECTORY)
    changed = DirectoryData(
        structures=(Structure(SUPPLIER, "Papeterie SA", services=(Service("S2", "Neuf"),)),),
        partners=(Partner("AAA001", SUPPLIER, ("ssh-ed25519 AAAA three",)),),
    )
    await store.import_directory(changed)
    assert await store.get_structure(SUPPLIER) == changed.structures[0]
    assert await store.get_partner("AAA001") == changed.partners[0]
    assert await store.get_structure(BUYER) == DIRECTORY.structures[1]
    await store.import_directory(DIRECTORY)  # idempotent: users, memberships and profiles upsert cleanly


async def test_auth_failures_lock_a_key_for_every_store_on_the_database(factory: StoreFactory) -> None:
    """Failures counted through one store lock the key for every store on the same database (two daemons);
    other keys stay open; a success forgets the count but not a lock in force; the lock lifts after the
    window."""
    first = await factory.open()
    second = await factory.open() if not isinstance(first, SqliteStore) else first
    try:
        limits = [("partner:AAA001", 3), ("addr:10.0.0.1", 10)]
        assert await first.record_auth_failures(limits, T0, 3600) == []
        assert await second.record_auth_failures(limits, T0 + timedelta(minutes=1), 3600) == []
        assert not await first.auth_locked(["partner:AAA001"], T0 + timedelta(minutes=1))
        await first.clear_auth_failures("partner:AAA001")  # a success: counting starts again
        for minute in (2, 3):
            assert await second.record_auth_failures(limits, T0 + timedelta(minutes=minute), 3600) == []
        locked_at = T0 + timedelta(minutes=4)
        assert await first.record_auth_failures(limits, locked_at, 3600) == ["partner:AAA001"]
        for store in (first, second):
            assert await store.auth_locked(["addr:10.0.0.2", "partner:AAA001"], locked_at)
            assert not await store.auth_locked(["addr:10.0.0.1", "partner:BBB002"], locked_at)
        await second.clear_auth_failures("partner:AAA001")
        assert await first.auth_locked(["partner:AAA001"], locked_at + timedelta(minutes=59))
        assert not await first.auth_locked(["partner:AAA001"], locked_at + timedelta(hours=1))
    finally:
        if second is not first:
            await second.close()
        await first.close()
