"""The store contract, monitoring and administration half: search, exports, dashboard, event feed,
rejects, credentials, principals and profiles, on every store of ``test_store_contract.FACTORIES``.

Expected results are computed by brute force from ``get_flow``/``invoices``/``flow_findings`` of every
flow, so counters, keyset pages and visibility are checked against the rows themselves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from engine.directory import (
    FLOW_FOLLOW_UP,
    DirectoryData,
    Membership,
    Partner,
    Profile,
    Role,
    Structure,
    TechnicalUser,
    User,
)
from engine.errors import DirectoryEntryNotFound, ProfileAlreadyGranted
from engine.model import (
    Channel,
    Finding,
    FlowRecord,
    InvoiceOutcome,
    InvoiceStatus,
    RejectionRule,
    Ruleset,
    Severity,
    Syntax,
)
from engine.permissions import Principal, PrincipalKind, Visibility
from engine.queries import MAX_PAGE_SIZE, DashboardQuery, FlowQuery, IssuerPage, PageKey
from engine.status import FlowEvent, FlowStatus
from engine.store.monitoring import LONG_ISSUER_LIST
from engine.store.port import Credential, NewFlow, Store
from engine.store.sqlite import SqliteStore
from engine.store.sqlite_db import split_statements
from tests.integration.test_store_contract import StoreFactory, factory, facts, store

__all__ = ["factory", "store"]  # the contract's fixtures: a store per backend

S = FlowStatus
E = FlowEvent
T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)  # a Monday, 08:00 UTC
A, B, C = "11111111111111", "22222222222222", "33333333333333"
EVERYTHING = Visibility(everything=True)
SYNTAXES = (Syntax.UBL_INVOICE, Syntax.CII_16B, Syntax.UBL_INVOICE_MIN)
CHANNELS = (Channel.API, Channel.EDI, Channel.PORTAL)
DEPOSITORS = ("tech:T1", "partner:AAA001", "user:alice")
BAD = Finding("BR_CO_15", "totals do not add up", rule="BR-CO-15", business_term="BT-112")
DUP = Finding("DUPLICATE_INVOICE", "already integrated", rule="CPP-DUPLICATE")
XSD = Finding("XSD_INVALID", "not valid", rule=None)
NOTE = Finding("EN16931_WARNING", "check it", Severity.WARNING, "BR-CL-10")


def deposit(i: int, issuer: str, at: datetime, **overrides: object) -> NewFlow:
    fields: dict[str, object] = {
        "number_prefix": "AAA001",
        "file_name": f"batch-{i:03d}.xml",
        "syntax": SYNTAXES[i % 3],
        "declared_syntax": True,
        "channel": CHANNELS[i % 3],
        "issuer_siret": issuer,
        "depositor": DEPOSITORS[i % 3],
        "sha256": f"{i:064x}",
        "size_bytes": 100 + i,
        "blob_key": f"{i:064x}",
        "deposited_at": at,
        "tracking_id": f"trk-{i}" if i % 4 == 0 else None,
        "partner_code": "AAA001" if CHANNELS[i % 3] is Channel.EDI else None,
    }
    fields.update(overrides)
    return NewFlow(**fields)  # type: ignore[arg-type]


async def to_in_progress(store: Store, number: str, at: datetime) -> None:
    for k, (expected, event) in enumerate(
        (
            (S.RECEIVED, E.TRANSPORT_CHECKED),
            (S.PROCESSED_SE_CPP, E.QUEUED),
            (S.WAITING_FOR_PROCESSING, E.CLAIMED),
        )
    ):
        await store.transition(number, expected, event, actor="worker:w", at=at + timedelta(seconds=k + 1))


async def populate(store: Store, count: int = 36) -> list[str]:
    """``count`` flows over 3 issuers and 3 days (several share a timestamp), walked to a mix of statuses
    with verdicts carrying error findings; returns their numbers."""
    numbers: list[str] = []
    for i in range(count):
        issuer = (A, B, C)[i % 3]
        at = T0 + timedelta(days=i % 3, minutes=(i // 6))  # groups of equal timestamps
        numbers.append((await store.create_flow(deposit(i, issuer, at))).flow_number)
    for i, n in enumerate(numbers):
        flow = await store.get_flow(n)
        assert flow is not None
        at = flow.deposited_at + timedelta(minutes=1)
        match i % 6:
            case 0:
                pass  # stays RECEIVED
            case 1:
                await store.transition(n, S.RECEIVED, E.TECHNICAL_REJECTION, actor="worker:w", at=at)
            case 2:
                await to_in_progress(store, n, at)  # stays IN_PROGRESS
            case 3 | 4 | 5:
                await to_in_progress(store, n, at)
                rejected = i % 6 - 3  # 0, 1 or 2 of 2 invoices rejected
                outcomes = [
                    InvoiceOutcome(
                        facts(f"{n}-{k}"),
                        InvoiceStatus.REJECTED if k < rejected else InvoiceStatus.INTEGRATED,
                        (BAD, NOTE) if k < rejected else (NOTE,),
                    )
                    for k in range(2)
                ]
                event = (E.ALL_INTEGRATED, E.SOME_INTEGRATED, E.NONE_INTEGRATED)[rejected]
                await store.record_verdict(
                    n,
                    S.IN_PROGRESS,
                    event,
                    actor="worker:w",
                    at=at + timedelta(seconds=10),
                    flow_findings=[DUP] if rejected == 2 else [],
                    invoices=outcomes,
                    ruleset_version="r1",
                )
    return numbers


async def all_flows(store: Store, numbers: list[str]) -> list[FlowRecord]:
    flows = [await store.get_flow(n) for n in numbers]
    assert all(f is not None for f in flows)
    return [f for f in flows if f is not None]


def search_order(flows: list[FlowRecord]) -> list[str]:
    ordered = sorted(flows, key=lambda f: (f.deposited_at, f.flow_number), reverse=True)
    ordered.sort(key=lambda f: f.issuer_siret)  # stable: issuer ASC, then date and number DESC
    return [f.flow_number for f in ordered]


async def every_page(store: Store, query: FlowQuery, vis: Visibility, size: int) -> tuple[list[str], set[int]]:
    """Walk every page; return the numbers in order and the total counts seen."""
    seen: list[str] = []
    totals: set[int] = set()
    after: PageKey | None = None
    while True:
        page = await store.search(query, vis, page_size=size, after=after)
        assert len(page.flows) <= size
        seen += [f.flow_number for f in page.flows]
        totals.add(page.total_count)
        if page.next_page is None:
            return seen, totals
        after = PageKey.from_token(page.next_page.token())  # through the client's token


# --- search --------------------------------------------------------------------------------------
async def test_search_pages_in_order_across_equal_timestamps(store: Store) -> None:
    """Keyset pages of any size list every match exactly once in (issuer ASC, deposited_at DESC,
    flow_number DESC) order, even when many flows share a timestamp, with the same total on each page."""
    numbers = await populate(store)
    flows = await all_flows(store, numbers)
    for size in (1, 4, 7, len(numbers), MAX_PAGE_SIZE):
        seen, totals = await every_page(store, FlowQuery(), EVERYTHING, size)
        assert seen == search_order(flows)
        assert totals == {len(numbers)}
    last = await store.search(FlowQuery(), EVERYTHING, page_size=len(numbers))
    assert last.next_page is None  # an exact fit has no empty extra page


async def test_search_clamps_page_size(store: Store) -> None:
    """A page holds at most MAX_PAGE_SIZE flows; a page size below 1 is refused."""
    await populate(store, 6)
    assert len((await store.search(FlowQuery(), EVERYTHING, page_size=10**6)).flows) == 6
    with pytest.raises(ValueError, match="page_size"):
        await store.search(FlowQuery(), EVERYTHING, page_size=0)


FILTERS: list[tuple[str, Callable[[list[FlowRecord]], FlowQuery], Callable[[FlowRecord], bool]]] = [
    ("issuers", lambda fs: FlowQuery(issuer_sirets=(A, C)), lambda f: f.issuer_siret in (A, C)),
    (
        "statuses",
        lambda fs: FlowQuery(statuses=(S.REJECTED, S.RECEIVED)),
        lambda f: f.status in (S.REJECTED, S.RECEIVED),
    ),
    ("syntaxes", lambda fs: FlowQuery(syntaxes=(Syntax.CII_16B,)), lambda f: f.syntax is Syntax.CII_16B),
    (
        "whole days",
        lambda fs: FlowQuery(
            deposited_from=T0.replace(hour=0) + timedelta(days=1),
            deposited_to=T0.replace(hour=0) + timedelta(days=2),
        ),
        lambda f: f.deposited_at.date() == (T0 + timedelta(days=1)).date(),
    ),
    (
        "instants",
        lambda fs: FlowQuery(deposited_from=T0 + timedelta(minutes=2), deposited_to=T0 + timedelta(days=1, minutes=4)),
        lambda f: T0 + timedelta(minutes=2) <= f.deposited_at < T0 + timedelta(days=1, minutes=4),
    ),
    (
        "flow number",
        lambda fs: FlowQuery(flow_number=fs[5].flow_number),
        lambda f: f.flow_number.endswith("06"),
    ),
    ("file name", lambda fs: FlowQuery(file_name_contains="h-01"), lambda f: "h-01" in f.file_name),
    ("file name wildcard", lambda fs: FlowQuery(file_name_contains="%"), lambda f: False),
    ("channel", lambda fs: FlowQuery(channel=Channel.EDI), lambda f: f.channel is Channel.EDI),
    ("sha256", lambda fs: FlowQuery(sha256=f"{7:064x}"), lambda f: f.sha256 == f"{7:064x}"),
    ("tracking id", lambda fs: FlowQuery(tracking_id="trk-8"), lambda f: f.tracking_id == "trk-8"),
    (
        "updated after",
        lambda fs: FlowQuery(updated_after=fs[13].status_changed_at),
        lambda f: f.status_changed_at > T0 + timedelta(days=1, minutes=3),
    ),
    (
        "combined",
        lambda fs: FlowQuery(
            issuer_sirets=(B,),
            statuses=(S.INTEGRATED, S.REJECTED),
            syntaxes=(Syntax.CII_16B, Syntax.UBL_INVOICE_MIN),
        ),
        lambda f: (
            f.issuer_siret == B
            and f.status in (S.INTEGRATED, S.REJECTED)
            and f.syntax in (Syntax.CII_16B, Syntax.UBL_INVOICE_MIN)
        ),
    ),
]


@pytest.mark.parametrize(("name", "make_query", "_predicate"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_search_filters_match_brute_force(
    store: Store,
    name: str,
    make_query: Callable[[list[FlowRecord]], FlowQuery],
    _predicate: Callable[[FlowRecord], bool],
) -> None:
    """Each filter (and a combination) returns, pages and counts exactly the flows it describes."""
    flows = await all_flows(store, await populate(store))
    query = make_query(flows)
    expected = [f for f in flows if _brute_match(query, f)]
    if name not in ("updated after", "flow number"):
        assert expected == [f for f in flows if _predicate(f)]  # the brute force means what it says
    seen, totals = await every_page(store, query, EVERYTHING, 5)
    assert seen == search_order(expected)
    assert totals == {len(expected)}
    if name not in ("file name wildcard",):
        assert expected, "the fixture should exercise the filter"


def _brute_match(q: FlowQuery, f: FlowRecord) -> bool:
    return (
        (not q.issuer_sirets or f.issuer_siret in q.issuer_sirets)
        and (not q.statuses or f.status in q.statuses)
        and (not q.syntaxes or f.syntax in q.syntaxes)
        and (q.deposited_from is None or f.deposited_at >= q.deposited_from)
        and (q.deposited_to is None or f.deposited_at < q.deposited_to)
        and (q.flow_number is None or f.flow_number == q.flow_number)
        and (q.file_name_contains is None or q.file_name_contains in f.file_name)
        and (q.channel is None or f.channel is q.channel)
        and (q.sha256 is None or f.sha256 == q.sha256)
        and (q.tracking_id is None or f.tracking_id == q.tracking_id)
        and (q.updated_after is None or f.status_changed_at > q.updated_after)
        and (q.updated_before is None or f.status_changed_at < q.updated_before)
    )


VISIBILITIES = [
    ("follower of A", Visibility(sirets=frozenset({A}))),
    ("follower of A and C", Visibility(sirets=frozenset({A, C}))),
    ("depositor", Visibility(depositor="partner:AAA001")),
    ("both", Visibility(sirets=frozenset({B}), depositor="tech:T1")),
    ("both, own deposits in a followed issuer", Visibility(sirets=frozenset({A, C}), depositor="tech:T1")),
    ("both, own deposits elsewhere", Visibility(sirets=frozenset({C}), depositor="partner:AAA001")),
    ("nobody", Visibility()),
    ("unknown issuer", Visibility(sirets=frozenset({"99999999999999"}))),
]


@pytest.mark.parametrize("vis", [v for _, v in VISIBILITIES], ids=[n for n, _ in VISIBILITIES])
async def test_visibility_never_leaks(store: Store, vis: Visibility) -> None:
    """Search pages, totals (with and without counter-friendly filters), exports, the changes' order,
    dashboard counts, top errors, oldest flows, events and rejects only ever include flows the visibility
    allows, each once."""
    numbers = await populate(store)
    flows = await all_flows(store, numbers)
    visible = [f for f in flows if vis.allows(f.issuer_siret, f.depositor)]
    visible_numbers = {f.flow_number for f in visible}
    for query in (
        FlowQuery(),
        FlowQuery(issuer_sirets=(A, B)),
        FlowQuery(statuses=(S.REJECTED,)),
        FlowQuery(file_name_contains="batch"),
    ):
        expected = [f for f in visible if _brute_match(query, f)]
        seen, totals = await every_page(store, query, vis, 4)
        assert seen == search_order(expected)
        assert totals == {len(expected)}
        assert await store.count_flows(query, vis) == len(expected)
        assert [f.flow_number async for f in store.iter_search(query, vis, batch=3)] == seen
        by_change = sorted(expected, key=lambda f: (f.status_changed_at, f.flow_number))
        changed = await store.search_changed(query, vis, limit=7)
        assert [f.flow_number for f in changed] == [f.flow_number for f in by_change[:7]]
    board = await store.dashboard(DashboardQuery(), vis)
    assert sum(board.totals().values()) == len(visible)
    assert {r.issuer_siret for r in board.rows} <= {f.issuer_siret for f in visible}
    assert sum(e.count for e in board.top_errors) == sum([await _error_count(store, f) for f in visible])
    events = await store.events_after(0, vis, limit=10_000)
    assert {e.flow_number for e in events} == visible_numbers
    rejects = await store.list_rejects(vis)
    assert {r.flow_number for r in rejects} <= visible_numbers


async def _error_count(store: Store, flow: FlowRecord) -> int:
    findings = list(await store.flow_findings(flow.flow_number))
    for outcome in await store.invoices(flow.flow_number):
        findings += outcome.findings
    return sum(1 for f in findings if f.severity is Severity.ERROR)


async def test_iter_search_streams_every_match_in_order(store: Store) -> None:
    """iter_search yields every match once, in search order, whatever the batch size."""
    flows = await all_flows(store, await populate(store))
    for batch in (1, 5, 36, 1000):
        assert [f.flow_number async for f in store.iter_search(FlowQuery(), EVERYTHING, batch=batch)] == search_order(
            flows
        )
    query = FlowQuery(statuses=(S.IN_PROGRESS,))
    expected = search_order([f for f in flows if f.status is S.IN_PROGRESS])
    assert [f.flow_number async for f in store.iter_search(query, EVERYTHING, batch=2)] == expected


# --- dashboard -----------------------------------------------------------------------------------
async def _brute_board(
    store: Store, flows: list[FlowRecord]
) -> tuple[Counter[tuple[str, FlowStatus]], Counter[tuple[str, str | None]]]:
    counts: Counter[tuple[str, FlowStatus]] = Counter((f.issuer_siret, f.status) for f in flows)
    errors: Counter[tuple[str, str | None]] = Counter()
    for f in flows:
        found = list(await store.flow_findings(f.flow_number))
        for outcome in await store.invoices(f.flow_number):
            found += outcome.findings
        errors.update((x.code, x.rule) for x in found if x.severity is Severity.ERROR)
    return counts, errors


async def test_dashboard_matches_brute_force_after_transitions_and_verdicts(store: Store) -> None:
    """Counts per issuer × status, top errors and the oldest flow per non-final status equal a
    brute-force count, for all time, a period of whole days, a syntax filter and an issuer filter, for
    every kind of visibility (a user's followed issuers plus its own deposits elsewhere included),
    including after a reprocessed flow's new verdict replaced its findings."""
    numbers = await populate(store)
    # Reprocess: a WARNING flow goes back and gets a different verdict (its old findings are replaced).
    n = numbers[2]  # IN_PROGRESS
    await store.transition(n, S.IN_PROGRESS, E.SYSTEM_FAILURE, actor="worker:w", at=T0 + timedelta(hours=1))
    await store.transition(n, S.WARNING, E.ADMIN_REPROCESS, actor="admin:x", at=T0 + timedelta(hours=2))
    await store.transition(n, S.WAITING_FOR_PROCESSING, E.CLAIMED, actor="worker:w", at=T0 + timedelta(hours=3))
    await store.record_verdict(
        n,
        S.IN_PROGRESS,
        E.NONE_INTEGRATED,
        actor="worker:w",
        at=T0 + timedelta(hours=4),
        flow_findings=[XSD],
        invoices=[],
        ruleset_version="r1",
    )
    await store.transition(numbers[6], S.RECEIVED, E.HOLD, actor="admin:x", at=T0 + timedelta(hours=5))
    flows = await all_flows(store, numbers)
    day1 = T0.replace(hour=0) + timedelta(days=1)
    cases = [
        (DashboardQuery(top_errors=50), flows),
        (
            DashboardQuery(deposited_from=day1, deposited_to=day1 + timedelta(days=2), top_errors=50),
            [f for f in flows if f.deposited_at >= day1],
        ),
        (
            DashboardQuery(syntaxes=(Syntax.UBL_INVOICE,), top_errors=50),
            [f for f in flows if f.syntax is Syntax.UBL_INVOICE],
        ),
        (DashboardQuery(issuer_sirets=(B, C), top_errors=50), [f for f in flows if f.issuer_siret in (B, C)]),
    ]
    for query, subset in cases:
        visibilities = (
            EVERYTHING,
            Visibility(sirets=frozenset({A, B, C})),
            Visibility(depositor="tech:T1"),
            Visibility(sirets=frozenset({A}), depositor="tech:T1"),  # a user: followed issuers + own deposits
            Visibility(sirets=frozenset({B, C}), depositor="tech:T1"),
        )
        for vis in visibilities:
            visible = [f for f in subset if vis.allows(f.issuer_siret, f.depositor)]
            board = await store.dashboard(query, vis)
            counts, errors = await _brute_board(store, visible)
            assert {(r.issuer_siret, r.status): r.count for r in board.rows} == dict(counts)
            assert all(r.count > 0 for r in board.rows)
            assert {(e.code, e.rule): e.count for e in board.top_errors} == dict(errors)
            assert [e.count for e in board.top_errors] == sorted((e.count for e in board.top_errors), reverse=True)
            oldest: dict[FlowStatus, datetime] = {}
            for f in visible:
                if not f.status.is_final:
                    oldest[f.status] = min(oldest.get(f.status, f.status_changed_at), f.status_changed_at)
            assert board.oldest == oldest
    top = await store.dashboard(DashboardQuery(top_errors=1), EVERYTHING)
    assert len(top.top_errors) == 1
    assert top.top_errors[0].code == "BR_CO_15"  # the most frequent


async def test_a_users_dashboard_adds_its_own_deposits_elsewhere_once(store: Store) -> None:
    """A user following some issuers who also deposited flows for them and for others: the followed
    issuers are counted once (all their flows, its own among them), its own flows elsewhere are added,
    and their errors are merged into the top errors, as a brute-force count gives."""
    numbers = await populate(store)
    at = T0 + timedelta(hours=7)
    for i, issuer in enumerate((A, A, C, C, C)):  # the partner deposits for A (followed) and C (not)
        flow = await store.create_flow(deposit(100 + i, issuer, at, depositor="partner:AAA001"))
        numbers.append(flow.flow_number)
        await to_in_progress(store, flow.flow_number, at)
        await store.record_verdict(
            flow.flow_number,
            S.IN_PROGRESS,
            E.NONE_INTEGRATED,
            actor="worker:w",
            at=at + timedelta(seconds=5),
            flow_findings=[XSD],
            invoices=[],
            ruleset_version="r1",
        )
    flows = await all_flows(store, numbers)
    vis = Visibility(sirets=frozenset({A}), depositor="partner:AAA001")
    for query in (DashboardQuery(top_errors=50), DashboardQuery(issuer_sirets=(A, C), top_errors=2)):
        subset = [f for f in flows if not query.issuer_sirets or f.issuer_siret in query.issuer_sirets]
        visible = [f for f in subset if vis.allows(f.issuer_siret, f.depositor)]
        board = await store.dashboard(query, vis)
        counts, errors = await _brute_board(store, visible)
        assert {(r.issuer_siret, r.status): r.count for r in board.rows} == dict(counts)
        assert len(board.rows) == len(dict(counts))  # no issuer × status twice
        expected = sorted(dict(errors).items(), key=lambda item: (-item[1], item[0]))[: query.top_errors]
        assert [((e.code, e.rule), e.count) for e in board.top_errors] == expected


async def test_dashboard_and_counts_of_a_long_issuer_list_match_brute_force(store: Store) -> None:
    """A user following many issuers (``LONG_ISSUER_LIST`` or more: read as every issuer when it names all
    those with flows, else as every issuer's errors minus the few it leaves out) gets the counts, top errors,
    oldest flows and stuck-flow counts a brute-force count gives, for all time, a syntax filter and a
    period."""
    flows = await all_flows(store, await populate(store))
    idle = [f"9{k:013d}" for k in range(LONG_ISSUER_LIST)]  # followed, without a flow
    day1 = T0.replace(hour=0) + timedelta(days=1)
    for followed in ({A, B, C}, {A, B}, {C}):
        vis = Visibility(sirets=frozenset({*followed, *idle}))
        visible = [f for f in flows if f.issuer_siret in followed]
        for query, subset in (
            (DashboardQuery(top_errors=50), visible),
            (DashboardQuery(top_errors=1), visible),
            (
                DashboardQuery(syntaxes=(Syntax.UBL_INVOICE,), top_errors=50),
                [f for f in visible if f.syntax is Syntax.UBL_INVOICE],
            ),
            (DashboardQuery(deposited_from=day1, top_errors=50), [f for f in visible if f.deposited_at >= day1]),
        ):
            board = await store.dashboard(query, vis)
            counts, errors = await _brute_board(store, subset)
            assert {(r.issuer_siret, r.status): r.count for r in board.rows} == dict(counts)
            expected = sorted(dict(errors).items(), key=lambda item: (-item[1], item[0]))[: query.top_errors]
            assert [((e.code, e.rule), e.count) for e in board.top_errors] == expected
            oldest: dict[FlowStatus, datetime] = {}
            for f in subset:
                if not f.status.is_final:
                    oldest[f.status] = min(oldest.get(f.status, f.status_changed_at), f.status_changed_at)
            assert board.oldest == oldest
        for count_query in (
            FlowQuery(statuses=(S.RECEIVED,), updated_before=T0 + timedelta(days=1, hours=1)),
            FlowQuery(statuses=(S.IN_PROGRESS, S.REJECTED)),
            FlowQuery(),
        ):
            expected_count = sum(1 for f in visible if _brute_match(count_query, f))
            assert await store.count_flows(count_query, vis) == expected_count


async def test_a_dashboard_page_is_a_slice_of_the_whole_with_every_issuers_totals(store: Store) -> None:
    """A page of issuers (``IssuerPage``) holds exactly the rows of those issuers in the whole dashboard, in
    SIRET order, with the totals per status and the issuer count of every issuer: for every issuer (read
    page by page from the counters), a list of issuers and a syntax filter (the whole, sliced)."""
    await populate(store)
    idle = frozenset(f"9{k:013d}" for k in range(LONG_ISSUER_LIST))  # followed, without a flow
    for vis, query in (
        (Visibility(everything=True), DashboardQuery()),
        (Visibility(sirets=frozenset({A, B, C}) | idle), DashboardQuery()),
        (Visibility(sirets=frozenset({A, C})), DashboardQuery()),
        (Visibility(everything=True), DashboardQuery(syntaxes=(Syntax.UBL_INVOICE,))),
    ):
        whole = await store.dashboard(query, vis)
        issuers = sorted({r.issuer_siret for r in whole.rows})
        assert len(issuers) >= (1 if query.syntaxes else 2), "the fixture should give several issuers"
        for first, size in ((0, 1), (1, 1), (0, 2), (1, 5), (len(issuers), 3)):
            page = await store.dashboard(dataclasses.replace(query, issuer_page=IssuerPage(first, size)), vis)
            kept = set(issuers[first : first + size])
            assert list(page.rows) == [r for r in whole.rows if r.issuer_siret in kept]
            assert page.totals() == whole.totals() and page.issuers() == len(issuers)
            assert page.top_errors == whole.top_errors and page.oldest == whole.oldest


async def test_dashboard_period_is_rounded_to_whole_days(store: Store) -> None:
    """A dashboard period that starts or ends inside a day counts that whole UTC day."""
    flows = await all_flows(store, await populate(store, 12))
    board = await store.dashboard(
        DashboardQuery(deposited_from=T0 + timedelta(days=1, hours=5), deposited_to=T0 + timedelta(days=1, hours=1)),
        EVERYTHING,
    )
    assert sum(board.totals().values()) == sum(
        1 for f in flows if f.deposited_at.date() == (T0 + timedelta(days=1)).date()
    )


# --- event feed ----------------------------------------------------------------------------------
async def test_events_after_in_commit_order_resumable_and_filtered(store: Store) -> None:
    """Every status event appears once in the feed, cursors strictly increasing in commit order;
    resuming from any cursor returns exactly the rest; visibility and flow_number filter it; the latest
    cursor is the last event's."""
    assert await store.latest_cursor() == 0
    assert await store.events_after(0, EVERYTHING) == []
    numbers = await populate(store, 12)
    feed = await store.events_after(0, EVERYTHING, limit=10_000)
    cursors = [e.cursor for e in feed]
    assert cursors == sorted(set(cursors))
    assert await store.latest_cursor() == cursors[-1]
    histories = {n: await store.history(n) for n in numbers}
    assert len(feed) == sum(len(h) for h in histories.values())
    for n, history in histories.items():
        mine = [e for e in feed if e.flow_number == n]
        assert [(e.status, e.event, e.at) for e in mine] == [(h.status, h.event, h.at) for h in history]
        assert await store.events_after(0, EVERYTHING, flow_number=n) == mine
    # Paging by cursor with a small limit rebuilds the feed without loss or repetition.
    rebuilt, cursor = [], 0
    while batch := await store.events_after(cursor, EVERYTHING, limit=5):
        rebuilt += batch
        cursor = batch[-1].cursor
    assert rebuilt == feed
    # A new change after the cursor is the only thing a resumed reader gets.
    flow = await store.get_flow(numbers[0])
    assert flow is not None and flow.status is S.RECEIVED
    await store.transition(numbers[0], S.RECEIVED, E.TECHNICAL_REJECTION, actor="worker:w", at=T0 + timedelta(days=9))
    (new,) = await store.events_after(cursor, EVERYTHING)
    assert (new.flow_number, new.status, new.event, new.issuer_siret, new.depositor) == (
        numbers[0],
        S.REJECTED,
        E.TECHNICAL_REJECTION,
        flow.issuer_siret,
        flow.depositor,
    )
    assert await store.latest_cursor() == new.cursor
    follower = Visibility(sirets=frozenset({B}))
    assert {e.issuer_siret for e in await store.events_after(0, follower, limit=10_000)} == {B}
    assert await store.events_after(0, Visibility(), limit=10_000) == []
    assert await store.events_after(0, follower, flow_number=numbers[0]) == []  # numbers[0] is A's


async def test_wait_for_events_wakes_on_commit_and_on_other_stores(factory: StoreFactory) -> None:
    """wait_for_events returns promptly after a commit of the same store, sees a commit of another
    store on the same database (another process) within its poll interval, returns at once when the
    feed is already past the cursor, and otherwise waits out its timeout."""
    first, second = await factory.open(), await factory.open()
    try:
        flow = await first.create_flow(deposit(0, A, T0))
        cursor = await first.latest_cursor()
        loop = asyncio.get_running_loop()

        started = loop.time()
        await first.wait_for_events(cursor, 0.2)
        assert loop.time() - started >= 0.19  # nothing new: the timeout

        async def change(store: Store, expected: FlowStatus, event: FlowEvent) -> None:
            await asyncio.sleep(0.05)
            await store.transition(flow.flow_number, expected, event, actor="w", at=T0)

        started = loop.time()
        await asyncio.gather(first.wait_for_events(cursor, 5), change(first, S.RECEIVED, E.TRANSPORT_CHECKED))
        assert loop.time() - started < 0.4  # woken by its own commit, not by a poll
        cursor = await first.latest_cursor()

        started = loop.time()
        await asyncio.gather(first.wait_for_events(cursor, 5), change(second, S.PROCESSED_SE_CPP, E.QUEUED))
        assert loop.time() - started < 1.5  # seen by polling: another store committed
        assert await first.latest_cursor() > cursor

        started = loop.time()
        await first.wait_for_events(0, 5)
        assert loop.time() - started < 0.2
    finally:
        await first.close()
        await second.close()


# --- rejects -------------------------------------------------------------------------------------
async def test_list_rejects_lists_rejected_invoices_with_their_first_error(store: Store) -> None:
    """Every rejected invoice of a visible flow appears once, with its flow, deposit date and first
    error; issuer and period filters narrow the list."""
    flows = await all_flows(store, await populate(store))
    expected = []
    for f in flows:
        for outcome in await store.invoices(f.flow_number):
            if outcome.status is InvoiceStatus.REJECTED:
                expected.append(
                    (
                        f.flow_number,
                        f.issuer_siret,
                        f.deposited_at,
                        outcome.facts.number,
                        outcome.facts.document,
                    )
                )
    rejects = await store.list_rejects(EVERYTHING)
    assert sorted(
        (r.flow_number, r.issuer_siret, r.deposited_at, r.invoice_number, r.document) for r in rejects
    ) == sorted(expected)
    assert expected and all(r.reason.startswith("BR_CO_15") and "totals do not add up" in r.reason for r in rejects)
    day1 = T0.replace(hour=0) + timedelta(days=1)
    narrowed = await store.list_rejects(EVERYTHING, issuer_sirets=(B,), day_from=day1, day_to=day1 + timedelta(days=1))
    assert [r.flow_number for r in narrowed] == [
        r.flow_number for r in rejects if r.issuer_siret == B and day1 <= r.deposited_at < day1 + timedelta(days=1)
    ]


# --- authentication and administration -----------------------------------------------------------
DIRECTORY = DirectoryData(
    structures=(Structure(A, "Alpha", is_provider=True), Structure(B, "Beta"), Structure(C, "Gamma")),
    users=(User("alice", "Alice", "hash-a", "lookup-a"), User("bob", "Bob")),
    memberships=(
        Membership("alice", A, Role.PRIMARY_MANAGER),
        Membership("alice", B, Role.USER),
        Membership("bob", B, Role.PRIMARY_MANAGER),
    ),
    technical_users=(TechnicalUser("T1", A, "hash-t", "lookup-t"), TechnicalUser("T2", B)),
    partners=(Partner("AAA001", A), Partner("BBB002", C)),
    profiles=(Profile("alice", A), Profile("alice", B)),
)


async def test_find_credential_by_lookup_id(store: Store) -> None:
    """A token's lookup id finds its owner and hash (imported or set later); a replaced token's old
    lookup id finds nothing; setting a token of an unknown login fails."""
    await store.import_directory(DIRECTORY)
    assert await store.find_credential("lookup-a") == Credential("user", "alice", "hash-a")
    assert await store.find_credential("lookup-t") == Credential("technical", "T1", "hash-t")
    assert await store.find_credential("nope") is None
    await store.set_token("technical", "T2", "hash-t2", "lookup-t2")
    assert await store.find_credential("lookup-t2") == Credential("technical", "T2", "hash-t2")
    await store.set_token("user", "alice", "hash-a2", "lookup-a2")
    assert await store.find_credential("lookup-a") is None
    assert await store.find_credential("lookup-a2") == Credential("user", "alice", "hash-a2")
    await store.upsert_user(User("alice", "Alice Renamed"))  # no token given: the token is kept
    assert await store.find_credential("lookup-a2") == Credential("user", "alice", "hash-a2")
    with pytest.raises(DirectoryEntryNotFound):
        await store.set_token("user", "nobody", "h", "l")
    with pytest.raises(DirectoryEntryNotFound):
        await store.set_token("technical", "nobody", "h", "l")


async def test_principal_building(store: Store) -> None:
    """A user's principal lists member_of / manages / follows from memberships and profiles; a
    technical user's and a partner's carry their structure and its provider flag; unknown → None."""
    await store.import_directory(DIRECTORY)
    assert await store.principal("user", "alice") == Principal(
        PrincipalKind.USER,
        "alice",
        member_of=frozenset({A, B}),
        manages=frozenset({A}),
        follows=frozenset({A, B}),
    )
    assert await store.principal("user", "bob") == Principal(
        PrincipalKind.USER, "bob", member_of=frozenset({B}), manages=frozenset({B})
    )
    assert await store.principal("technical", "T1") == Principal(PrincipalKind.TECHNICAL, "T1", siret=A, provider=True)
    assert await store.principal("technical", "T2") == Principal(PrincipalKind.TECHNICAL, "T2", siret=B)
    assert await store.principal("partner", "BBB002") == Principal(PrincipalKind.PARTNER, "BBB002", siret=C)
    assert await store.principal("partner", "AAA001") == Principal(
        PrincipalKind.PARTNER, "AAA001", siret=A, provider=True
    )
    for kind, login in (
        ("user", "nobody"),
        ("technical", "alice"),
        ("partner", "ZZZ999"),
        ("operator", "root"),
    ):
        assert await store.principal(kind, login) is None


async def test_grant_and_revoke_profiles(store: Store) -> None:
    """Granting a held profile fails with the exact message; revoking removes it (then fails again);
    unknown users and structures are refused; the principal follows."""
    await store.import_directory(DIRECTORY)
    await store.grant_profile("bob", B, FLOW_FOLLOW_UP)
    assert (p := await store.principal("user", "bob")) is not None and p.follows == {B}
    with pytest.raises(ProfileAlreadyGranted) as raised:
        await store.grant_profile("bob", B, FLOW_FOLLOW_UP)
    assert str(raised.value) == "The user already has the selected subscription"
    await store.revoke_profile("bob", B, FLOW_FOLLOW_UP)
    assert (p := await store.principal("user", "bob")) is not None and p.follows == frozenset()
    with pytest.raises(DirectoryEntryNotFound):
        await store.revoke_profile("bob", B, FLOW_FOLLOW_UP)
    with pytest.raises(DirectoryEntryNotFound):
        await store.grant_profile("nobody", B, FLOW_FOLLOW_UP)
    with pytest.raises(DirectoryEntryNotFound):
        await store.grant_profile("bob", "00000000000000", FLOW_FOLLOW_UP)


async def test_directory_administration(store: Store) -> None:
    """Structures upsert and list in SIRET order; memberships attach, change role and detach; technical
    users and partners need an existing structure; rejection rules upsert per syntax."""
    await store.import_directory(DIRECTORY)
    await store.upsert_structure(Structure("44444444444444", "Delta", is_public=True))
    await store.upsert_structure(Structure(B, "Beta SA"))
    listed = await store.list_structures()
    assert [s.siret for s in listed] == sorted([A, B, C, "44444444444444"])
    assert next(s for s in listed if s.siret == B).name == "Beta SA"
    await store.set_membership("bob", A, Role.USER)
    await store.set_membership("bob", B, None)
    assert (p := await store.principal("user", "bob")) is not None
    assert (p.member_of, p.manages) == (frozenset({A}), frozenset())
    with pytest.raises(DirectoryEntryNotFound):
        await store.set_membership("nobody", A, Role.USER)
    await store.upsert_technical_user("T3", C, ruleset=Ruleset.EN16931_FR_FLUX2)
    assert (await store.depositor_rulesets()).get("tech:T3") is Ruleset.EN16931_FR_FLUX2
    await store.upsert_technical_user("T3", C)  # moved again, its ruleset kept
    assert (await store.depositor_rulesets()).get("tech:T3") is Ruleset.EN16931_FR_FLUX2
    await store.upsert_technical_user("T3", C, ruleset=None)  # back to the config's default
    assert "tech:T3" not in await store.depositor_rulesets()
    assert await store.principal("technical", "T3") == Principal(PrincipalKind.TECHNICAL, "T3", siret=C)
    with pytest.raises(DirectoryEntryNotFound):
        await store.upsert_technical_user("T4", "00000000000000", ruleset=None)
    await store.upsert_partner(Partner("CCC003", B, ("ssh-ed25519 AAAA k",)))
    await store.set_rejection_rule("CCC003", Syntax.CII_16B, RejectionRule.COMPLETE)
    await store.set_rejection_rule("CCC003", Syntax.UBL_INVOICE, RejectionRule.COMPLETE)
    await store.set_rejection_rule("CCC003", Syntax.CII_16B, RejectionRule.PARTIAL)
    partner = await store.get_partner("CCC003")
    assert partner is not None
    assert partner.rules == (
        (Syntax.CII_16B, RejectionRule.PARTIAL),
        (Syntax.UBL_INVOICE, RejectionRule.COMPLETE),
    )
    with pytest.raises(DirectoryEntryNotFound):
        await store.set_rejection_rule("ZZZ999", Syntax.CII_16B, RejectionRule.PARTIAL)
    with pytest.raises(DirectoryEntryNotFound):
        await store.upsert_partner(Partner("DDD004", "00000000000000"))


# --- return flows and retention ------------------------------------------------------------------
async def test_pending_return_flows(store: Store) -> None:
    """Final EDI flows without their integration report are pending, oldest first, until the report's
    return flow is recorded; API flows and unfinished flows never are."""
    numbers = await populate(store, 12)
    flows = await all_flows(store, numbers)
    expected = [f.flow_number for f in flows if f.channel is Channel.EDI and f.status.is_final]
    assert expected
    assert [f.flow_number for f in await store.pending_return_flows()] == expected
    first = next(f for f in flows if f.flow_number == expected[0])
    # A CPPStatut file is published before the report: the flow stays pending until the report is recorded.
    await store.add_return_flow(first.flow_number, f"CPPStatut_AAA001_{first.flow_number}.xml")
    # A report name of another flow does not count either.
    await store.add_return_flow(first.flow_number, f"{first.interface_code}_AAA001_{expected[1]}.xml")
    assert [f.flow_number for f in await store.pending_return_flows()] == expected
    await store.add_return_flows([(first.flow_number, f"{first.interface_code}_AAA001_{first.flow_number}.xml")])
    assert [f.flow_number for f in await store.pending_return_flows(limit=100)] == expected[1:]
    assert len(await store.pending_return_flows(limit=1)) == 1
    # Recording the report again changes nothing.
    await store.add_return_flow(first.flow_number, f"{first.interface_code}_AAA001_{first.flow_number}.xml")
    assert [f.flow_number for f in await store.pending_return_flows(limit=100)] == expected[1:]


async def test_purge_keeps_counters_and_feed_consistent(store: Store) -> None:
    """Purging old final flows removes them from search, counts, dashboard and feed (every counter a
    count or a dashboard can read: by status, issuer, syntax), keeps the rest intact, returns only blob
    keys nothing references any more, and never reuses a cursor."""
    numbers = await populate(store, 12)
    before = await store.latest_cursor()
    purged, keys = await store.purge_flows(T0 + timedelta(days=1))
    flows = await all_flows(store, [n for n in numbers if await store.get_flow(n) is not None])
    assert purged == 12 - len(flows) and purged > 0
    assert all(f.status.is_final is False or f.deposited_at >= T0 + timedelta(days=1) for f in flows)
    assert len(keys) == purged
    page = await store.search(FlowQuery(), EVERYTHING, page_size=100)
    assert ([f.flow_number for f in page.flows], page.total_count) == (search_order(flows), len(flows))
    counts, errors = await _brute_board(store, flows)
    board = await store.dashboard(DashboardQuery(top_errors=50), EVERYTHING)
    assert {(r.issuer_siret, r.status): r.count for r in board.rows} == dict(counts)
    assert {(e.code, e.rule): e.count for e in board.top_errors} == dict(errors)
    queries = (
        FlowQuery(),
        FlowQuery(statuses=(S.REJECTED, S.RECEIVED)),
        FlowQuery(issuer_sirets=(B, C), statuses=(S.INTEGRATED,)),
        FlowQuery(syntaxes=(Syntax.UBL_INVOICE,)),
    )
    for vis in (EVERYTHING, Visibility(sirets=frozenset({A, B}))):
        visible = [f for f in flows if vis.allows(f.issuer_siret, f.depositor)]
        for query in queries:
            expected = sum(1 for f in visible if _brute_match(query, f))
            assert (await store.search(query, vis, page_size=1)).total_count == expected
        for board_query, subset in (
            (DashboardQuery(top_errors=50), visible),
            (DashboardQuery(issuer_sirets=(B,), top_errors=50), [f for f in visible if f.issuer_siret == B]),
        ):
            counts, errors = await _brute_board(store, subset)
            board = await store.dashboard(board_query, vis)
            assert {(r.issuer_siret, r.status): r.count for r in board.rows} == dict(counts)
            assert {(e.code, e.rule): e.count for e in board.top_errors} == dict(errors)
    assert {e.flow_number for e in await store.events_after(0, EVERYTHING, limit=10_000)} == {
        f.flow_number for f in flows
    }
    assert await store.latest_cursor() == before  # the high-water mark survives the deletes
    await store.create_flow(deposit(99, A, T0))
    assert (await store.events_after(before, EVERYTHING))[0].cursor == before + 1


# --- SQLite only: migrating an existing database ---------------------------------------------------
async def test_sqlite_migration_backfills_counters_and_feed(tmp_path: Path) -> None:
    """A database created at schema version 1 with flows, events and findings gets counters and an
    event feed equal to what the triggers would have kept, when versions 2 and 3 are applied on open."""
    path = tmp_path / "v1.db"
    folder = resources.files("engine.store").joinpath("migrations", "sqlite")
    v1 = folder.joinpath("0001_init.sql").read_text("utf-8")
    with sqlite3.connect(path) as conn:
        for statement in split_statements(v1):
            conn.execute(statement)
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO schema_migrations VALUES (1, 'init', '2026-01-01')")
        for i, (issuer, status) in enumerate(((A, "IN_REJETE"), (A, "IN_RECU"), (B, "IN_REJETE"))):
            at = (T0 + timedelta(days=i)).isoformat(timespec="microseconds")
            conn.execute(
                "INSERT INTO flows (seq, flow_number, file_name, syntax, declared_syntax, channel,"
                " issuer_siret, depositor, status, deposited_at, status_changed_at, sha256, size_bytes,"
                " blob_key) VALUES (:i, :n, 'f.xml', 'IN_DP_E1_UBL_INVOICE', 1, 'API', :issuer, 'tech:T1',"
                " :status, :at, :at, 'x', 1, 'k')",
                {"i": i + 1, "n": f"FLOW{i}", "issuer": issuer, "status": status, "at": at},
            )
            for seq, st in enumerate(("IN_RECU", status) if status != "IN_RECU" else ("IN_RECU",), start=1):
                conn.execute(
                    "INSERT INTO status_events VALUES (:n, :seq, :st, NULL, :at, 'w', NULL, 'p', 'h')",
                    {"n": f"FLOW{i}", "seq": seq, "st": st, "at": at},
                )
            if status == "IN_REJETE":
                conn.execute(
                    "INSERT INTO findings (flow_number, invoice_idx, position, code, message, severity, rule)"
                    " VALUES (:n, NULL, 0, 'XSD_INVALID', 'bad', 'error', NULL)",
                    {"n": f"FLOW{i}"},
                )
    conn.close()
    store = SqliteStore(str(path))
    await store.open()
    try:
        board = await store.dashboard(DashboardQuery(), EVERYTHING)
        assert {(r.issuer_siret, r.status): r.count for r in board.rows} == {
            (A, S.REJECTED): 1,
            (A, S.RECEIVED): 1,
            (B, S.REJECTED): 1,
        }
        assert [(e.code, e.rule, e.count) for e in board.top_errors] == [("XSD_INVALID", None, 2)]
        feed = await store.events_after(0, EVERYTHING)
        assert [(e.flow_number, e.status) for e in feed] == [
            ("FLOW0", S.RECEIVED),
            ("FLOW0", S.REJECTED),
            ("FLOW1", S.RECEIVED),
            ("FLOW2", S.RECEIVED),
            ("FLOW2", S.REJECTED),
        ]
        assert await store.latest_cursor() == 5
        assert (await store.search(FlowQuery(statuses=(S.REJECTED,)), EVERYTHING, page_size=10)).total_count == 2
        assert (await store.search(FlowQuery(issuer_sirets=(A,)), EVERYTHING, page_size=10)).total_count == 2
        board = await store.dashboard(DashboardQuery(issuer_sirets=(A,)), EVERYTHING)
        assert [(e.code, e.rule, e.count) for e in board.top_errors] == [("XSD_INVALID", None, 1)]
    finally:
        await store.close()
