"""fluxdepot's JSON API (``/api/v1``), flow routes, over a real server and client: deposit, look-up,
reports in three formats, zips, searches by page, CSV export, dashboard, reprocessing, and 400s that name
the bad parameter."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from starlette.routing import Mount

from engine.cpu_pool import CpuPool
from engine.model import Limits
from engine.permissions import Principal, PrincipalKind
from engine.report import render_json
from engine.status import FlowEvent, FlowStatus
from gateway.http.api_models import ReportOut
from gateway.http.errors import GENERIC_INTERNAL
from tests.grpc_support import SUPPLIER, invoice
from tests.http_support import MANAGER, TECH, TECH_LOGIN, HttpEnv

API = "/api/v1"


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await HttpEnv.start(tmp_path, cpu_pool)
    yield env
    await env.close()


async def deposit(http: httpx.AsyncClient, content: bytes, name: str = "a.xml", **fields: str) -> httpx.Response:
    return await http.post(f"{API}/flows", files={"file": (name, content, "application/xml")}, data=fields)


async def deposited(http: httpx.AsyncClient, content: bytes, name: str = "a.xml", **fields: str) -> str:
    response = await deposit(http, content, name, **fields)
    assert response.status_code == 202, response.text
    return str(response.json()["flow_number"])


async def test_deposit_answers_202_with_the_receipt_and_is_idempotent_by_tracking_id(env: HttpEnv) -> None:
    """A multipart deposit is 202 with the receipt (RECEIVED, the content's sha256, the flow) and a
    Location to the flow; the same tracking id again returns the same flow, already_deposited."""
    content = invoice()
    async with env.client(TECH) as http:
        first = await deposit(http, content, "inv.xml", tracking_id="T-1", issuer_siret=SUPPLIER)
        again = await deposit(http, content, "inv.xml", tracking_id="T-1")
        assert first.status_code == 202, first.text
        receipt = first.json()
        assert receipt["status"] == "RECEIVED" and receipt["status_code"] == "IN_RECU"
        assert receipt["already_deposited"] is False and receipt["syntax"] == "IN_DP_E1_UBL_INVOICE"
        flow = receipt["flow"]
        assert flow["file_name"] == "inv.xml" and flow["channel"] == "API" and flow["issuer_siret"] == SUPPLIER
        assert flow["depositor"] == f"tech:{TECH_LOGIN}" and flow["tracking_id"] == "T-1"
        assert len(receipt["sha256"]) == 64
        assert again.status_code == 202 and again.json()["already_deposited"] is True
        assert again.json()["flow_number"] == receipt["flow_number"]
        location = first.headers["location"]
        assert location.endswith(f"/api/v1/flows/{receipt['flow_number']}")
        got = await http.get(location)
    assert got.status_code == 200 and got.json()["flow_number"] == receipt["flow_number"]


async def test_deposit_refusals_name_the_field(env: HttpEnv) -> None:
    """No file part, a bad SIRET, a wrong checksum, a non-boolean with_signature and a form that is not
    multipart are 400 with the AFNOR error body naming what is wrong; a structure the caller may not
    deposit for is 403."""
    async with env.client(TECH) as http:
        no_file = await http.post(f"{API}/flows", data={"issuer_siret": SUPPLIER}, files={"other": ("x", b"x")})
        not_form = await http.post(f"{API}/flows", json={"file": "x"})
        bad_siret = await deposit(http, invoice(), issuer_siret="123")
        checksum = await deposit(http, invoice(), sha256="0" * 64)
        signature = await deposit(http, invoice(), with_signature="maybe")
        other = await deposit(http, invoice(), issuer_siret="73282932000074")
    assert no_file.status_code == 400 and no_file.json()["errorMessage"].startswith("file:")
    assert not_form.status_code == 400 and not_form.json()["errorMessage"].startswith("file:")
    assert bad_siret.status_code == 400 and "issuer_siret" in bad_siret.json()["errorMessage"]
    assert checksum.status_code == 400 and checksum.json()["errorCode"] == "CHECKSUM_MISMATCH"
    assert signature.status_code == 400 and signature.json()["errorMessage"].startswith("with_signature:")
    assert other.status_code == 403, other.text


async def test_a_deposit_is_handed_on_without_holding_the_whole_file(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A flow over the size limit is 413 FILE_SIZE_EXCEEDED (counted by the engine as it streams the
    upload), and one within it is accepted."""
    env = await HttpEnv.start(tmp_path, cpu_pool, limits=Limits(max_flow_bytes=200_000))
    try:
        async with env.client(TECH) as http:
            big = await deposit(http, invoice() + b"<!--" + b"x" * 200_000 + b"-->")
            small = await deposit(http, invoice())
        assert big.status_code == 413 and big.json()["errorCode"] == "FILE_SIZE_EXCEEDED", big.text
        assert small.status_code == 202
    finally:
        await env.close()


async def test_report_in_json_xml_and_text_by_parameter_or_accept(env: HttpEnv) -> None:
    """The report is the engine's rendering (JSON equal to render_json, valid against the documented
    ReportOut model), XML or readable text, chosen by ``format`` or else by the Accept header."""
    async with env.client(TECH) as http:
        number = await deposited(http, invoice())
        await env.harness.process_all()
        as_json = await http.get(f"{API}/flows/{number}/report")
        as_xml = await http.get(f"{API}/flows/{number}/report", params={"format": "xml"})
        as_text = await http.get(f"{API}/flows/{number}/report", params={"format": "text"})
        by_accept = await http.get(f"{API}/flows/{number}/report", headers={"Accept": "text/xml;q=0.9, text/plain"})
        xml_accept = await http.get(f"{API}/flows/{number}/report", headers={"Accept": "application/xml"})
        bad = await http.get(f"{API}/flows/{number}/report", params={"format": "pdf"})
    report = await env.services.flows.report(Principal(PrincipalKind.OPERATOR, "test"), number)
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.text == render_json(report)
    ReportOut.model_validate_json(as_json.content)  # the document describes exactly what is sent
    assert as_json.json()["status"] == "INTEGRATED"
    assert as_xml.headers["content-type"] == "application/xml"
    assert (
        as_xml.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>') and b"IntegrationReport" in as_xml.content
    )
    assert as_text.headers["content-type"] == "text/plain; charset=utf-8"
    assert as_text.text.startswith(f"Flow {number} (a.xml, IN_DP_E1_UBL_INVOICE)")
    assert by_accept.text == as_text.text and by_accept.headers["vary"] == "Accept"
    assert xml_accept.content == as_xml.content
    assert bad.status_code == 400 and bad.json()["errorMessage"].startswith("format:")


async def test_reports_zip_holds_each_report_once(env: HttpEnv) -> None:
    """POST /reports/zip answers a zip with one <flow number>.<format> member per flow named (repeats
    once); a missing flow makes the whole zip 404; an empty list is 400."""
    async with env.client(TECH) as http:
        a = await deposited(http, invoice("FA-Z1"))
        b = await deposited(http, invoice("FA-Z2"))
        await env.harness.process_all()
        zipped = await http.post(f"{API}/reports/zip", json={"flow_numbers": [a, b, a], "format": "xml"})
        missing = await http.post(f"{API}/reports/zip", json={"flow_numbers": [a, "CPP0011100000000000999999"]})
        empty = await http.post(f"{API}/reports/zip", json={"flow_numbers": []})
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    assert zipped.headers["content-disposition"].startswith('attachment; filename="reports_')
    names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
    assert names == [f"{a}.xml", f"{b}.xml"]
    assert missing.status_code == 404 and missing.json()["errorCode"] == "FLOW_NOT_FOUND"
    assert empty.status_code == 400 and empty.json()["errorMessage"].startswith("flow_numbers:")


async def test_search_pages_by_token_and_filters(env: HttpEnv) -> None:
    """Search returns pages of page_size with a next_page_token until the last page (null); together the
    pages hold every flow once; status and file_name filters apply; total_count counts every match."""
    async with env.client(TECH) as http:
        numbers = {await deposited(http, invoice(f"FA-S{i}"), f"s{i}.xml") for i in range(5)}
        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"page_size": 2, **({"page_token": token} if token else {})}
            page = (await http.get(f"{API}/flows", params=params)).json()
            assert page["total_count"] == 5
            seen += [f["flow_number"] for f in page["flows"]]
            pages += 1
            token = page["next_page_token"]
            if token is None:
                break
        by_name = (await http.get(f"{API}/flows", params={"file_name": "s3"})).json()
        received = await http.get(f"{API}/flows", params=[("status", "RECEIVED"), ("status", "REJECTED")])
        integrated = (await http.get(f"{API}/flows", params={"status": "INTEGRATED"})).json()
        by_issuer = (await http.get(f"{API}/flows", params={"issuer": SUPPLIER, "from": "2000-01-01T00:00"})).json()
    assert pages == 3 and sorted(seen) == sorted(numbers)
    assert [f["file_name"] for f in by_name["flows"]] == ["s3.xml"]
    assert received.json()["total_count"] == 5 and integrated["total_count"] == 0
    assert by_issuer["total_count"] == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1001"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"status": "DONE"}, "status"),
        ({"issuer": "1234"}, "issuer"),
        ({"from": "yesterday"}, "from"),
        ({"sha256": "ABC"}, "sha256"),
        ({"channel": "FAX"}, "channel"),
        ({"syntax": "PDF"}, "syntax"),
    ],
)
async def test_bad_search_parameters_are_400_naming_the_field(env: HttpEnv, params: dict[str, str], field: str) -> None:
    """Each malformed query parameter of the search is 400 INVALID_FIELD, the message starting with it."""
    async with env.client(TECH) as http:
        response = await http.get(f"{API}/flows", params=params)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_FIELD"
    assert response.json()["errorMessage"].startswith(field), response.text


async def test_export_csv_streams_every_match(env: HttpEnv) -> None:
    """The CSV export has a header and one row per matching flow (the search's filters, no pages), as an
    attachment, sent in chunks as it is produced."""
    async with env.client(TECH) as http:
        for i in range(3):
            await deposited(http, invoice(f"FA-E{i}"), f"e{i}.xml")
        async with http.stream("GET", f"{API}/flows/export.csv", params={"page_size": 1}) as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers  # streamed, not built whole
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
        one = await http.get(f"{API}/flows/export.csv", params={"file_name": "e1"})
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="flows_')
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0][:2] == ["flow_number", "file_name"] and len(rows) == 4
    assert len(one.text.splitlines()) == 2


async def test_dashboard_counts_and_stuck_flows(env: HttpEnv) -> None:
    """The dashboard counts per issuer and status, totals, the oldest waiting flow and the stuck count
    per watched status, for the caller's flows; top_errors out of range is 400."""
    async with env.client(TECH) as http:
        await deposited(http, invoice("FA-D1"))
        await deposited(http, invoice("FA-D2", service_code=None))
        board = (await http.get(f"{API}/dashboard")).json()
        bad = await http.get(f"{API}/dashboard", params={"top_errors": 0})
    assert board["total_count"] == 2
    assert board["rows"] == [
        {"issuer_siret": SUPPLIER, "status": "RECEIVED", "status_code": "IN_RECU", "status_label": "Reçu", "count": 2}
    ]
    assert board["totals"][0]["issuer_siret"] is None and board["totals"][0]["count"] == 2
    assert [o["status"] for o in board["oldest"]] == ["RECEIVED"]
    assert board["stuck"] == [
        {"issuer_siret": None, "status": "RECEIVED", "status_code": "IN_RECU", "status_label": "Reçu", "count": 0}
    ]
    assert bad.status_code == 400 and bad.json()["errorMessage"].startswith("top_errors:")


async def test_reprocess_is_for_managers_of_the_issuer(env: HttpEnv, logs: list[MutableMapping[str, Any]]) -> None:
    """A held flow is released by a primary manager of its issuer (back to WAITING_FOR_PROCESSING, the
    note in its history); the technical user who deposited it is 403; releasing it again is 409; an
    unknown action is 400 naming ``action``; none of these is an unhandled error."""
    async with env.client(TECH) as tech, env.client(MANAGER) as manager:
        number = await deposited(tech, invoice())
        await env.harness.store.transition(
            number, FlowStatus.RECEIVED, FlowEvent.HOLD, actor="operator:test", at=datetime.now(UTC)
        )
        url = f"{API}/flows/{number}/reprocess"
        denied = await tech.post(url, json={"action": "RELEASE"})
        released = await manager.post(url, json={"action": "RELEASE", "detail": "checked by hand"})
        again = await manager.post(url, json={"action": "RELEASE"})
        unknown = await manager.post(url, json={"action": "DELETE"})
        report = (await manager.get(f"{API}/flows/{number}/report")).json()
    assert denied.status_code == 403 and denied.json()["errorCode"] == "FORBIDDEN"
    assert released.status_code == 200 and released.json()["status"] == "WAITING_FOR_PROCESSING"
    assert report["history"][-1]["detail"] == "checked by hand"
    assert again.status_code == 409 and again.json()["errorCode"] == "STATUS_CONFLICT"
    assert unknown.status_code == 400 and unknown.json()["errorMessage"].startswith("action:")
    assert not [e for e in logs if e["event"] == "http_unhandled_error"]


async def test_unknown_flow_and_route_are_404_with_the_error_body(env: HttpEnv) -> None:
    """A flow that does not exist is 404 FLOW_NOT_FOUND; a path the API does not have is 404 NOT_FOUND;
    both with the AFNOR error body."""
    async with env.client(TECH) as http:
        flow = await http.get(f"{API}/flows/CPP0011100000000000999999")
        route = await http.get(f"{API}/nothing-here")
    assert flow.status_code == 404 and flow.json()["errorCode"] == "FLOW_NOT_FOUND"
    assert route.status_code == 404 and set(route.json()) == {"errorCode", "errorMessage"}
    json.dumps(flow.json())


async def test_an_unexpected_error_is_the_generic_json_500_logged_once(
    env: HttpEnv, logs: list[MutableMapping[str, Any]]
) -> None:
    """A route of the mounted API failing unexpectedly answers the AFNOR body with the generic message
    (not the mounted app's plain-text 500, nor the detail), and the error is logged once with the request
    id."""
    boom = APIRouter()

    @boom.get("/test/boom")
    async def _boom() -> None:
        raise RuntimeError("secret detail that must not reach the caller")

    mounted = next(r for r in env.app.routes if isinstance(r, Mount) and r.path == "/api")
    mounted.app.include_router(boom)  # type: ignore[attr-defined]
    async with env.client(TECH) as http:
        response = await http.get("/api/test/boom", headers={"X-Request-Id": "req-api-boom"})
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    assert response.json() == {"errorCode": "INTERNAL_ERROR", "errorMessage": GENERIC_INTERNAL}
    errors = [e for e in logs if e["event"] == "http_unhandled_error"]
    assert len(errors) == 1 and errors[0]["request_id"] == "req-api-boom"
