"""The flow and watch use cases (``engine.services``) called directly, as every face calls them, on a real
SQLite store with the demo directory (``tests.harness``): who may deposit for whom, what a caller sees,
the files handed out, the dashboard's stuck flows, reprocessing and the live feeds."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from engine.errors import FlowNotFound, InvalidDepositRequest, PermissionDenied
from engine.model import Channel, FlowRecord
from engine.permissions import Principal
from engine.queries import DashboardQuery, EventRecord, FlowQuery
from engine.report import NextStep, ReportFormat
from engine.services.flows import DepositForm, FlowsService, Reprocess
from engine.services.watch import WatchService
from engine.status import FlowEvent, FlowStatus
from tests.factory import integrating, ubl_invoice
from tests.harness import DEMO_PROVIDER_SIRET, DEMO_SUPPLIER_SIRET, Harness, now

OTHER_SUPPLIER = "73282932000074"
AT = datetime(2026, 12, 6, 21, 0, 48, tzinfo=UTC)
STUCK_AFTER_S = 3600.0


async def _principal(harness: Harness, kind: str, login: str) -> Principal:
    principal = await harness.store.principal(kind, login)
    assert principal is not None
    return principal


@pytest.fixture
async def tech(harness: Harness) -> Principal:
    """The demo technical user of the first supplier (not a provider)."""
    return await _principal(harness, "technical", "TECH_1_papeterie@demo")


@pytest.fixture
async def manager(harness: Harness) -> Principal:
    """Primary manager of the supplier and the provider, following both."""
    return await _principal(harness, "user", "manager")


@pytest.fixture
async def viewer(harness: Harness) -> Principal:
    """A user of the supplier without flow follow-up: sees only what they deposit."""
    return await _principal(harness, "user", "viewer")


def _flows(harness: Harness, clock: datetime | None = None) -> FlowsService:
    return FlowsService(
        harness.store,
        harness.deposits,
        stuck_after_s={FlowStatus.RECEIVED: STUCK_AFTER_S},
        clock=(lambda: clock) if clock else now,
        engine_version="test",
    )


async def _deposit(flows: FlowsService, principal: Principal, number: str, **form: object) -> FlowRecord:
    receipt = await flows.deposit(principal, DepositForm(f"{number}.xml", **form), ubl_invoice(integrating(number)))  # type: ignore[arg-type]
    return receipt.flow


async def test_a_deposit_is_for_the_callers_structure_on_the_callers_channel(
    harness: Harness, tech: Principal, viewer: Principal, manager: Principal
) -> None:
    """A technical user deposits on the API channel for its structure, a portal user on the PORTAL channel
    for their only structure; the declared checksum is read in any case; a user of two structures must
    name one, of a well-formed SIRET; nobody deposits for a structure that is not theirs. A refused deposit
    creates nothing."""
    flows = _flows(harness)
    content = ubl_invoice(integrating("SVC-0001"))
    sha256 = hashlib.sha256(content).hexdigest().upper()
    api = (await flows.deposit(tech, DepositForm("a.xml", sha256=f" {sha256} "), content)).flow
    portal = await _deposit(flows, viewer, "SVC-0002")
    assert (api.channel, api.issuer_siret, api.depositor) == (Channel.API, DEMO_SUPPLIER_SIRET, tech.depositor)
    assert (portal.channel, portal.issuer_siret) == (Channel.PORTAL, DEMO_SUPPLIER_SIRET)
    before = await harness.store.all_flow_numbers()
    with pytest.raises(InvalidDepositRequest, match="several structures") as info:
        await _deposit(flows, manager, "SVC-0003")
    assert info.value.field == "issuer_siret"
    with pytest.raises(InvalidDepositRequest, match="14-digit SIRET"):
        await _deposit(flows, manager, "SVC-0004", issuer_siret="4048330480002")
    with pytest.raises(PermissionDenied):
        await _deposit(flows, tech, "SVC-0005", issuer_siret=OTHER_SUPPLIER)
    assert await harness.store.all_flow_numbers() == before
    on_provider = await _deposit(flows, manager, "SVC-0006", issuer_siret=f" {DEMO_PROVIDER_SIRET} ")
    assert on_provider.issuer_siret == DEMO_PROVIDER_SIRET


async def test_a_deposit_streamed_in_pieces_is_the_same_flow(harness: Harness, tech: Principal) -> None:
    """``deposit_stream`` takes the bytes as they come and decides issuer and channel as ``deposit`` does."""
    content = ubl_invoice(integrating("SVC-0010"))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 1000):
            yield content[start : start + 1000]

    receipt = await _flows(harness).deposit_stream(tech, DepositForm("s.xml"), pieces())
    flow = receipt.flow
    assert (flow.channel, flow.issuer_siret, flow.size_bytes) == (Channel.API, DEMO_SUPPLIER_SIRET, len(content))


async def test_a_hidden_flow_is_not_found_like_a_missing_one(
    harness: Harness, tech: Principal, manager: Principal, viewer: Principal
) -> None:
    """The depositor and the users following the issuer get the flow and its typed report; anyone else
    gets ``FlowNotFound`` with the same message as for a number that does not exist."""
    flows = _flows(harness)
    number = (await _deposit(flows, tech, "SVC-0020")).flow_number
    await harness.process_all()
    for who in (tech, manager):
        assert (await flows.get_flow(who, number)).status is FlowStatus.INTEGRATED
        report = await flows.report(who, number)
        assert report.flow.flow_number == number and report.next_action.code is NextStep.NONE
        assert report.engine_version == "test" and report.history[0].status is FlowStatus.RECEIVED
    missing = "CPP0011100000000000999999"
    for call in (flows.get_flow, flows.report):
        with pytest.raises(FlowNotFound) as hidden:
            await call(viewer, number)
        with pytest.raises(FlowNotFound) as absent:
            await call(viewer, missing)
        assert str(hidden.value).replace(number, "N") == str(absent.value).replace(missing, "N")


async def test_reports_zip_holds_each_named_report_once(harness: Harness, tech: Principal, viewer: Principal) -> None:
    """The zip holds the rendered report of each flow named, in order, once; its name carries the
    service's clock; one hidden flow refuses the whole zip."""
    flows = _flows(harness, clock=AT)
    first = (await _deposit(flows, tech, "SVC-0030")).flow_number
    second = (await _deposit(flows, tech, "SVC-0031")).flow_number
    await harness.process_all()
    zipped = await flows.reports_zip(tech, [second, first, second], ReportFormat.XML)
    assert (zipped.name, zipped.content_type) == ("reports_20261206T210048Z.zip", "application/zip")
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert archive.namelist() == [f"{second}.xml", f"{first}.xml"]
        assert archive.read(f"{first}.xml").startswith(b"<?xml")
    with pytest.raises(FlowNotFound):
        await flows.reports_zip(viewer, [first], ReportFormat.JSON)


async def test_search_and_export_return_only_visible_flows(
    harness: Harness, tech: Principal, manager: Principal, viewer: Principal
) -> None:
    """Search pages and the CSV export hold the flows the caller sees and count only those (a portal user
    without flow follow-up sees none, not even their own deposit); a cell a spreadsheet would run as a
    formula is neutralised."""
    flows = _flows(harness, clock=AT)
    portal = (await flows.deposit(viewer, DepositForm("=sum.xml"), ubl_invoice(integrating("SVC-0040")))).flow
    api = await _deposit(flows, tech, "SVC-0041")
    page = await flows.search(tech, FlowQuery(), page_size=10)
    assert [f.flow_number for f in page.flows] == [api.flow_number] and page.total_count == 1
    assert (await flows.search(viewer, FlowQuery(), page_size=10)).total_count == 0
    first = await flows.search(manager, FlowQuery(), page_size=1)
    assert first.total_count == 2 and first.next_page is not None
    rest = await flows.search(manager, FlowQuery(), page_size=1, after=first.next_page)
    assert {f.flow_number for f in first.flows + rest.flows} == {portal.flow_number, api.flow_number}
    export = flows.export_csv(manager, FlowQuery(channel=Channel.PORTAL))
    assert (export.name, export.content_type) == ("flows_20261206T210048Z.csv", "text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join([c async for c in export.chunks]).decode())))
    assert [(r["flow_number"], r["file_name"]) for r in rows] == [(portal.flow_number, "'=sum.xml")]
    hidden = flows.export_csv(viewer, FlowQuery())
    assert b"".join([c async for c in hidden.chunks]).count(b"\r\n") == 1  # the header only


async def test_dashboard_counts_stuck_flows_from_the_services_clock(
    harness: Harness, tech: Principal, manager: Principal, viewer: Principal
) -> None:
    """The dashboard counts what the caller sees; a flow RECEIVED longer ago than the watchdog's age is
    stuck, measured from the service's clock, which the view carries."""
    await _deposit(_flows(harness), tech, "SVC-0050")
    today = _flows(harness, clock=now() + timedelta(seconds=60))
    later = _flows(harness, clock=now() + timedelta(seconds=STUCK_AFTER_S + 60))
    view = await today.dashboard(manager, DashboardQuery())
    assert view.board.totals() == {FlowStatus.RECEIVED: 1} and view.stuck == {FlowStatus.RECEIVED: 0}
    assert (await later.dashboard(manager, DashboardQuery())).stuck == {FlowStatus.RECEIVED: 1}
    hidden = await later.dashboard(viewer, DashboardQuery())
    assert hidden.board.rows == () and hidden.stuck == {FlowStatus.RECEIVED: 0}
    assert hidden.at > view.at


async def test_reprocessing_is_for_managers_of_the_issuer(
    harness: Harness, tech: Principal, manager: Principal, viewer: Principal
) -> None:
    """A held flow is released by a primary manager of its issuer, recorded with them as actor, the
    service's time and the note; its depositor (not a manager) is refused; a user who cannot see it is
    told it does not exist."""
    flows = _flows(harness, clock=AT)
    flow = await _deposit(flows, tech, "SVC-0060")
    await harness.store.transition(flow.flow_number, flow.status, FlowEvent.HOLD, actor="test", at=now())
    with pytest.raises(PermissionDenied):
        await flows.reprocess(tech, flow.flow_number, Reprocess.RELEASE, "")
    with pytest.raises(FlowNotFound):
        await flows.reprocess(viewer, flow.flow_number, Reprocess.RELEASE, "")
    moved = await flows.reprocess(manager, flow.flow_number, Reprocess.RELEASE, "  checked by hand  ")
    assert moved.status is FlowStatus.WAITING_FOR_PROCESSING
    last = (await harness.store.history(flow.flow_number))[-1]
    assert (last.event, last.actor, last.detail) == (FlowEvent.ADMIN_RELEASE, manager.depositor, "checked by hand")
    assert last.at == AT


async def _take(events: AsyncIterator[EventRecord], n: int) -> list[EventRecord]:
    async with asyncio.timeout(10):
        return [await anext(events) for _ in range(n)]


async def test_watch_flow_replays_then_follows_until_final(
    harness: Harness, tech: Principal, viewer: Principal
) -> None:
    """``watch_flow`` gives the flow's history, then its changes as they commit, and ends after its final
    status; a flow the caller may not see is ``FlowNotFound`` when the feed starts."""
    watch = WatchService(harness.store, wait_s=0.2)
    number = (await _deposit(_flows(harness), tech, "SVC-0070")).flow_number
    with pytest.raises(FlowNotFound):
        await anext(watch.watch_flow(viewer, number))
    feed = watch.watch_flow(tech, number)
    assert [e.status for e in await _take(feed, 1)] == [FlowStatus.RECEIVED]
    await harness.process_all()
    async with asyncio.timeout(10):
        rest = [e.status async for e in feed]
    assert rest[-1] is FlowStatus.INTEGRATED and len(rest) == 4


async def test_watch_flows_skips_hidden_events_and_waits(harness: Harness, tech: Principal, manager: Principal) -> None:
    """``watch_flows`` gives the visible changes after the cursor (filtered by issuer and status when
    asked); while only hidden events are newer it waits on the store (little CPU) instead of spinning,
    and the next visible event still arrives."""
    flows, watch = _flows(harness), WatchService(harness.store, wait_s=0.2)
    first = (await _deposit(flows, tech, "SVC-0080")).flow_number
    received = watch.watch_flows(manager, from_start=True, statuses=[FlowStatus.RECEIVED])
    assert [(e.flow_number, e.status) for e in await _take(received, 1)] == [(first, FlowStatus.RECEIVED)]
    await harness.deposit("h.xml", ubl_invoice(integrating("SVC-H")), issuer=OTHER_SUPPLIER, depositor="tech:x@y")
    await harness.process_all()  # only the first flow's later changes are visible, and not RECEIVED
    pending = asyncio.ensure_future(anext(received))
    started = time.process_time()
    done, _ = await asyncio.wait({pending}, timeout=1.0)
    cpu_s = time.process_time() - started
    assert not done and cpu_s < 0.3, f"{cpu_s:.2f} s of CPU in 1 s idle"
    second = (await _deposit(flows, tech, "SVC-0081")).flow_number
    async with asyncio.timeout(10):
        assert (await pending).flow_number == second
    await received.aclose()  # type: ignore[attr-defined]
    others = watch.watch_flows(manager, from_start=True, issuer_sirets=[OTHER_SUPPLIER])
    pending = asyncio.ensure_future(anext(others))
    done, _ = await asyncio.wait({pending}, timeout=0.5)
    assert not done  # the other supplier's events exist but the manager may not see them
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
