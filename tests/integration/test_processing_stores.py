"""The processor on both stores: SQLite judges a checked flow inside its verdict's transaction
(``SqliteStore.record_judged``, group-committed), PostgreSQL reads the directory and the earlier invoices
first; both walk the same statuses, chain the same events and reject the same duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.audit import verify_chain
from engine.blobs import BlobStore
from engine.cpu_pool import CpuPool
from engine.deposit import DepositRequest, DepositService
from engine.directory import DirectorySnapshot
from engine.directory_file import load_directory
from engine.errors import StatusConflict
from engine.model import Channel, FlowRecord, FlowVerdict, Limits
from engine.processing import FlowProcessor, RecordsJudged
from engine.status import FlowEvent, FlowStatus
from engine.store import open_store
from engine.store.port import Store
from engine.store.sqlite import SqliteStore
from tests import factory
from tests.harness import DEMO_DIRECTORY, DEMO_SUPPLIER_SIRET, now
from tests.pg import store_factory_parts

S = FlowStatus
WALK = [S.RECEIVED, S.PROCESSED_SE_CPP, S.WAITING_FOR_PROCESSING, S.IN_PROGRESS]


async def _sqlite(tmp_path: Path) -> Store:
    return await open_store(f"sqlite:///{tmp_path / 'fluxdepot.db'}")


async def _postgres(tmp_path: Path) -> Store:
    open_pg, _ = store_factory_parts()
    store: Store = await open_pg()
    return store


OPENERS: dict[str, Callable[[Path], Any]] = {"sqlite": _sqlite, "postgresql": _postgres}


@pytest.fixture(params=sorted(OPENERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store = await OPENERS[request.param](tmp_path)
    await s.import_directory(load_directory(DEMO_DIRECTORY))
    try:
        yield s
    finally:
        await s.close()


def _services(store: Store, tmp_path: Path, cpu_pool: CpuPool) -> tuple[DepositService, FlowProcessor]:
    blobs = BlobStore(tmp_path / "blobs")
    processor = FlowProcessor(store, blobs, Limits(), cpu_pool.run, clock=now, actor="worker:test")
    return DepositService(store, blobs, Limits()), processor


async def _deposit(deposits: DepositService, name: str, content: bytes) -> str:
    request = DepositRequest(name, content, Channel.API, "tech:TECH_1_papeterie@demo", DEMO_SUPPLIER_SIRET)
    return (await deposits.deposit(request)).flow.flow_number


async def _process_concurrently(store: Store, processor: FlowProcessor, count: int) -> list[FlowRecord]:
    claims = [await store.claim(f"w{i}", now=now(), lease_s=60) for i in range(count)]
    return list(await asyncio.gather(*(processor.process(c) for c in claims if c is not None)))


async def test_flows_walk_every_status_with_a_whole_chain_and_duplicates_are_rejected(
    store: Store, tmp_path: Path, cpu_pool: CpuPool
) -> None:
    """Four flows judged at once, two of them carrying the same invoice: on either store exactly one of
    the pair is integrated and the other rejected as its duplicate, every flow records each status from
    RECEIVED to its verdict, and every history's hash chain is whole."""
    deposits, processor = _services(store, tmp_path, cpu_pool)
    twin = factory.ubl_invoice(factory.integrating("TWIN-0001"))
    numbers = [
        await _deposit(deposits, "twin-a.xml", twin),
        await _deposit(deposits, "twin-b.xml", twin),
        await _deposit(deposits, "c.xml", factory.ubl_invoice(factory.integrating("SOLO-0001"))),
        await _deposit(deposits, "d.xml", factory.ubl_invoice(factory.integrating("SOLO-0002"))),
    ]
    done = {flow.flow_number: flow for flow in await _process_concurrently(store, processor, 4)}
    assert sorted(done) == sorted(numbers)
    twins = sorted((done[numbers[0]], done[numbers[1]]), key=lambda f: f.status is S.REJECTED)
    assert [f.status for f in twins] == [S.INTEGRATED, S.REJECTED]
    findings = await store.invoices(twins[1].flow_number)
    (duplicate,) = [f for f in findings[0].findings if f.code == "DUPLICATE_INVOICE"]
    assert twins[0].flow_number in duplicate.message
    assert done[numbers[2]].status is done[numbers[3]].status is S.INTEGRATED
    for number in numbers:
        history = await store.history(number)
        assert [c.status for c in history] == [*WALK, done[number].status]
        assert verify_chain(history) == []


async def test_only_sqlite_judges_inside_its_verdict_transaction(store: Store) -> None:
    """SQLite offers the in-transaction judging the processor looks for; PostgreSQL does not (its
    processor reads first, under the verdict lock, and its unique index guards other daemons)."""
    assert isinstance(store, RecordsJudged) is isinstance(store, SqliteStore)


async def test_concurrent_sqlite_verdicts_share_transactions_and_a_conflict_fails_only_its_flow(
    tmp_path: Path, cpu_pool: CpuPool
) -> None:
    """Verdicts submitted together are committed in fewer transactions than verdicts, and one whose
    expected status is stale fails with StatusConflict alone: the others of its transaction are recorded."""
    store = await _sqlite(tmp_path)
    assert isinstance(store, SqliteStore)
    try:
        deposits, _ = _services(store, tmp_path, cpu_pool)
        content = factory.ubl_invoice(factory.integrating("BATCH-0001"))
        numbers = [await _deposit(deposits, f"{i}.xml", content) for i in range(6)]

        def judge(directory: DirectorySnapshot, earlier: Any) -> FlowVerdict:
            return FlowVerdict(FlowEvent.TECHNICAL_REJECTION, (), ruleset_version="test")

        received = (S.RECEIVED, (FlowEvent.TRANSPORT_CHECKED, FlowEvent.QUEUED, FlowEvent.CLAIMED))
        stale = (S.WAITING_FOR_PROCESSING, (FlowEvent.CLAIMED,))  # a valid walk, from a status it is not in

        async def record(number: str, walk: tuple[FlowStatus, tuple[FlowEvent, ...]]) -> FlowRecord:
            expected, steps = walk
            return await store.record_judged(
                number, expected, steps, judge, sirets=(), invoice_keys=(), actor="worker:test", at=now()
            )

        outcomes = await asyncio.gather(
            *(record(n, stale if n == numbers[2] else received) for n in numbers), return_exceptions=True
        )
        assert isinstance(outcomes[2], StatusConflict)
        recorded = [o for o in outcomes if not isinstance(o, BaseException)]
        assert [o.status for o in recorded] == [S.REJECTED] * 5
        assert store._verdict_writes.batches < len(numbers)  # its counter is for tests
        untouched = await store.get_flow(numbers[2])
        assert untouched is not None and untouched.status is S.RECEIVED
        assert [c.status for c in await store.history(numbers[2])] == [S.RECEIVED]
    finally:
        await store.close()


async def test_a_sqlite_claim_brings_its_flow(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A claim on SQLite carries its flow as the claim's transaction read it (the processor starts on it
    without reading it again): the same record a read of the flow gives."""
    store = await _sqlite(tmp_path)
    try:
        deposits, _ = _services(store, tmp_path, cpu_pool)
        number = await _deposit(deposits, "a.xml", factory.ubl_invoice(factory.integrating("CLAIM-0001")))
        claim = await store.claim("w", now=now(), lease_s=60)
        assert claim is not None and claim.flow is not None
        assert claim.flow == await store.get_flow(number)
    finally:
        await store.close()
