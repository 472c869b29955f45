"""The permission matrix of DESIGN §6 over the JSON API: every route × every kind of caller, as
``tests/integration/test_grpc_permissions.py`` does for gRPC.

Callers: the supplier's technical user (deposited the flow), a primary manager holding flow follow-up,
a plain user holding it, a user of the structure without it (the demo viewer), a user of another
structure, an invoicing provider's technical user, a wrong token and no token. A flow a caller may not
see is 404 exactly like a missing one; searches, counts, exports and feeds never show it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from engine.cpu_pool import CpuPool
from tests.callers import CALLERS, SEES, UNAUTHENTICATED, add_callers
from tests.grpc_support import SUPPLIER, invoice
from tests.http_support import MANAGER, TECH, VIEWER, HttpEnv, bearer

API = "/api/v1"
MISSING = "CPP0011100000000000999999"
OK, NOT_FOUND, DENIED, UNAUTH, CONFLICT = 200, 404, 403, 401, 409


def _expected_visibility(caller: str) -> int:
    if caller in UNAUTHENTICATED:
        return UNAUTH
    return OK if caller in SEES else NOT_FOUND


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    e = await HttpEnv.start(tmp_path, cpu_pool)
    try:
        await add_callers(e.harness.store)
        yield e
    finally:
        await e.close()


async def _first_event(http: httpx.AsyncClient) -> str | int:
    """The global feed from the start: OK once an event arrives, NO_EVENT if none comes within 1 s."""
    async with http.stream("GET", f"{API}/events", params={"from_start": "true"}) as response:
        if response.status_code != OK:
            return response.status_code
        try:
            async with asyncio.timeout(1.0):
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        return OK
        except TimeoutError:
            pass
    return "NO_EVENT"


async def _flow_feed(http: httpx.AsyncClient, number: str) -> int:
    """The flow's feed, read to its end (the flow is final, so it ends by itself)."""
    async with http.stream("GET", f"{API}/flows/{number}/events") as response:
        async with asyncio.timeout(10):
            async for _ in response.aiter_bytes():
                pass
        return response.status_code


async def test_read_routes_matrix(env: HttpEnv) -> None:
    """Get, report, zip, one flow's feed and reprocess: only callers who may see the flow get it, others
    get 404 (as for a missing flow); search, export, dashboard and the global feed never include it for
    them (no error: zero results); a bad or no token is 401 everywhere."""
    async with env.client(TECH) as tech:
        response = await tech.post(f"{API}/flows", files={"file": ("a.xml", invoice())})
    number = response.json()["flow_number"]
    await env.harness.process_all()
    got: dict[tuple[str, str], object] = {}
    want: dict[tuple[str, str], object] = {}
    for caller, token in CALLERS.items():
        visible = _expected_visibility(caller)
        headers = bearer(token) if token else {}
        async with httpx.AsyncClient(base_url=env.base_url, headers=headers, timeout=30) as http:
            for route, url in (
                ("GetFlow", f"{API}/flows/{number}"),
                ("GetReport", f"{API}/flows/{number}/report"),
                ("GetReport(text)", f"{API}/flows/{number}/report?format=text"),
            ):
                got[caller, route] = (await http.get(url)).status_code
                want[caller, route] = visible
            got[caller, "GetFlow(missing)"] = (await http.get(f"{API}/flows/{MISSING}")).status_code
            want[caller, "GetFlow(missing)"] = UNAUTH if visible == UNAUTH else NOT_FOUND
            got[caller, "ReportsZip"] = (
                await http.post(f"{API}/reports/zip", json={"flow_numbers": [number]})
            ).status_code
            want[caller, "ReportsZip"] = visible
            got[caller, "WatchFlow"] = await _flow_feed(http, number)
            want[caller, "WatchFlow"] = visible

            page = await http.get(f"{API}/flows", params={"flow_number": number})
            got[caller, "Search"] = (
                f"{page.json()['total_count']} found" if page.status_code == OK else page.status_code
            )
            want[caller, "Search"] = {OK: "1 found", NOT_FOUND: "0 found"}.get(visible, visible)

            export = await http.get(f"{API}/flows/export.csv")
            got[caller, "Export"] = (
                f"{len(export.text.splitlines()) - 1} rows" if export.status_code == OK else export.status_code
            )
            want[caller, "Export"] = {OK: "1 rows", NOT_FOUND: "0 rows"}.get(visible, visible)

            board = await http.get(f"{API}/dashboard", params={"issuer": SUPPLIER})
            got[caller, "Dashboard"] = (
                f"{board.json()['total_count']} counted" if board.status_code == OK else board.status_code
            )
            want[caller, "Dashboard"] = {OK: "1 counted", NOT_FOUND: "0 counted"}.get(visible, visible)

            got[caller, "Events"] = await _first_event(http)
            want[caller, "Events"] = {NOT_FOUND: "NO_EVENT"}.get(visible, visible)

            # Reprocessing an integrated flow: hidden is 404, seen without managing it is 403, and the
            # primary manager reaches the status check (409: an integrated flow cannot be reprocessed).
            moved = await http.post(f"{API}/flows/{number}/reprocess", json={"action": "REPROCESS"})
            got[caller, "Reprocess"] = moved.status_code
            want[caller, "Reprocess"] = {OK: DENIED}.get(visible, visible) if caller != "manager" else CONFLICT
    assert got == want


async def test_deposit_matrix(env: HttpEnv) -> None:
    """Deposit for the supplier: its technical user, its members (with or without the profile) and the
    provider's technical user may; a user of another structure may not (403); a bad or no token is 401.
    The channel says who deposited: API for technical users, PORTAL for users."""
    want = {
        "technical": 202,
        "manager": 202,
        "user_with_profile": 202,
        "user_without_profile": 202,
        "other_structure_user": DENIED,
        "provider_technical": 202,
        "wrong_token": UNAUTH,
        "no_token": UNAUTH,
    }
    got = {}
    for caller, token in CALLERS.items():
        headers = bearer(token) if token else {}
        async with httpx.AsyncClient(base_url=env.base_url, headers=headers, timeout=30) as http:
            response = await http.post(
                f"{API}/flows", files={"file": ("d.xml", invoice())}, data={"issuer_siret": SUPPLIER}
            )
        got[caller] = response.status_code
    assert got == want
    async with env.client(MANAGER) as manager:
        page = (await manager.get(f"{API}/flows")).json()
    channels = {f["depositor"]: f["channel"] for f in page["flows"]}
    assert channels["tech:TECH_1_papeterie@demo"] == "API"
    assert channels["user:viewer"] == "PORTAL"
    assert channels["tech:TECH_provider"] == "API"


async def test_a_viewer_without_the_profile_sees_nothing(env: HttpEnv) -> None:
    """The demo viewer belongs to the supplier but lacks flow follow-up: after flows of the supplier are
    deposited, one by the viewer itself (users see flows by follow-up only, DESIGN §6), its search, export
    and dashboard are empty, and each flow is 404 to it."""
    async with env.client(TECH) as tech:
        number = (await tech.post(f"{API}/flows", files={"file": ("a.xml", invoice())})).json()["flow_number"]
    async with env.client(VIEWER) as viewer:
        own = await viewer.post(f"{API}/flows", files={"file": ("own.xml", invoice("FA-OWN"))})
        assert own.status_code == 202
        await env.harness.process_all()
        search = (await viewer.get(f"{API}/flows")).json()
        export = await viewer.get(f"{API}/flows/export.csv")
        board = (await viewer.get(f"{API}/dashboard")).json()
        flow = await viewer.get(f"{API}/flows/{number}")
    assert search == {"flows": [], "next_page_token": None, "total_count": 0}
    assert len(export.text.splitlines()) == 1  # the header only
    assert board["total_count"] == 0 and board["rows"] == [] and board["stuck"][0]["count"] == 0
    assert flow.status_code == 404 and flow.json()["errorCode"] == "FLOW_NOT_FOUND"
