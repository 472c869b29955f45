"""The AFNOR Flow Service under /v1 over a real server, real workers and a real HTTP client: deposits
(sha256, tracking ids, syntaxes, limits), the acknowledgement of processed flows, search with
``updatedAfter`` pages, the four downloads, permissions, and the request id on every route."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.cpu_pool import CpuPool
from engine.model import Limits
from tests.grpc_support import invoice
from tests.http_support import MANAGER, TECH, VIEWER, HttpEnv

UBL = {"flowSyntax": "UBL"}


def parts(content: bytes, info: dict[str, Any] | None = None, name: str = "invoice.xml") -> dict[str, Any]:
    """The multipart body of ``POST /v1/flows``: ``flowInfo`` as a JSON part, the file as a file part."""
    return {
        "flowInfo": (None, json.dumps(UBL if info is None else info), "application/json"),
        "file": (name, content, "application/xml"),
    }


async def deposit(http: httpx.AsyncClient, content: bytes, info: dict[str, Any] | None = None) -> httpx.Response:
    return await http.post("/v1/flows", files=parts(content, info))


async def settled(http: httpx.AsyncClient, flow_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The flow's metadata once its acknowledgement is no longer Pending."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        body = (await http.get(f"/v1/flows/{flow_id}")).json()
        if body["acknowledgement"]["status"] != "Pending":
            return body  # type: ignore[no-any-return]
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await HttpEnv.start(tmp_path, cpu_pool, workers=True)
    yield env
    await env.close()


async def test_a_deposit_is_acknowledged_202_with_its_computed_sha256_and_integrates(env: HttpEnv) -> None:
    """202 with FullFlowInfo (25-character flowId, sha256 computed), then Metadata says Ok once integrated."""
    content = invoice("AF-1")
    async with env.client(TECH) as http:
        response = await deposit(http, content, {"flowSyntax": "UBL", "name": "af-1.xml"})
        assert response.status_code == 202, response.text
        info = response.json()
        assert len(info["flowId"]) == 25 and info["name"] == "af-1.xml"
        assert info["sha256"] == hashlib.sha256(content).hexdigest()
        assert info["flowSyntax"] == "UBL" and info["flowProfile"] == "CIUS" and info["processingRule"] == "B2B"
        flow = await settled(http, info["flowId"])
    assert flow["acknowledgement"] == {"status": "Ok"} or all(
        d["level"] == "Warning" for d in flow["acknowledgement"]["details"]
    )
    assert flow["flowId"] == info["flowId"] and flow["submittedAt"] == info["submittedAt"]
    assert flow["flowType"] == "CustomerInvoice" and flow["flowDirection"] == "Out"
    assert flow["updatedAt"] >= flow["submittedAt"]


async def test_a_given_sha256_is_checked(env: HttpEnv) -> None:
    """A sha256 that matches is accepted; one that does not is refused before anything is recorded."""
    content = invoice("AF-2")
    good = hashlib.sha256(content).hexdigest()
    async with env.client(TECH) as http:
        ok = await deposit(http, content, {**UBL, "sha256": good})
        bad = await deposit(http, content, {**UBL, "sha256": "0" * 64})
        upper = await deposit(http, content, {**UBL, "sha256": good.upper()})
    assert ok.status_code == 202 and ok.json()["sha256"] == good
    assert bad.status_code == 400 and bad.json()["errorCode"] == "CHECKSUM_MISMATCH"
    assert upper.status_code == 400 and upper.json()["errorCode"] == "INVALID_FIELD"  # the standard's pattern


async def test_a_tracking_id_makes_the_deposit_idempotent(env: HttpEnv) -> None:
    """The same trackingId again answers the first flow (same flowId and submittedAt), not a new one."""
    async with env.client(TECH) as http:
        first = await deposit(http, invoice("AF-3"), {**UBL, "trackingId": "order-42"})
        again = await deposit(http, invoice("AF-3"), {**UBL, "trackingId": "order-42"})
        found = await http.post("/v1/flows/search", json={"where": {"trackingId": "order-42"}})
    assert first.status_code == again.status_code == 202
    assert again.json()["flowId"] == first.json()["flowId"]
    assert again.json()["submittedAt"] == first.json()["submittedAt"]
    assert [f["flowId"] for f in found.json()["results"]] == [first.json()["flowId"]]
    assert found.json()["results"][0]["trackingId"] == "order-42"


async def test_syntaxes_without_equivalent_and_bad_flow_info_are_refused(env: HttpEnv) -> None:
    """CDAR and FRR are 422 (well-formed, no equivalent here); a missing or malformed flowInfo is 400."""
    async with env.client(TECH) as http:
        cdar = await deposit(http, b"<x/>", {"flowSyntax": "CDAR"})
        rule = await deposit(http, b"<x/>", {"flowSyntax": "UBL", "processingRule": "B2C"})
        unknown = await deposit(http, b"<x/>", {"flowSyntax": "EDIFACT"})
        missing = await deposit(http, b"<x/>", {"name": "x.xml"})
        not_json = await http.post("/v1/flows", files={"flowInfo": (None, "{"), "file": ("a.xml", b"<x/>")})
        no_file = await http.post("/v1/flows", files={"flowInfo": (None, json.dumps(UBL))})
        not_multipart = await http.post("/v1/flows", json={"flowInfo": UBL})
    assert cdar.status_code == 422 and cdar.json()["errorCode"] == "UNPROCESSABLE_ENTITY"
    assert rule.status_code == 422
    for response in (unknown, missing, not_json, no_file, not_multipart):
        assert response.status_code == 400, response.text
        assert response.json()["errorCode"] in ("INVALID_FIELD", "INVALID_REQUEST")
    assert "flowSyntax" in missing.json()["errorMessage"]


async def test_a_rejected_flow_is_error_with_reason_codes(env: HttpEnv) -> None:
    """An empty file becomes Error with reasonCode EmptyFlow; an XML that is not an invoice FlowTypeError."""
    async with env.client(TECH) as http:
        empty = (await deposit(http, b"")).json()["flowId"]
        other = (await deposit(http, b"<note>hello</note>", {"flowSyntax": "CII"})).json()["flowId"]
        empty_flow = await settled(http, empty)
        other_flow = await settled(http, other)
    assert empty_flow["acknowledgement"]["status"] == "Error"
    assert [d["reasonCode"] for d in empty_flow["acknowledgement"]["details"]] == ["EmptyFlow"]
    detail = other_flow["acknowledgement"]["details"][0]
    assert other_flow["acknowledgement"]["status"] == "Error" and detail["level"] == "Error"
    assert detail["reasonCode"] in ("FlowTypeError", "InvalidSchema") and detail["reasonMessage"]


async def test_downloads_original_readable_view_and_converted(env: HttpEnv) -> None:
    """Original gives back the deposited bytes, ReadableView the report as text, Converted a 404 Error."""
    content = invoice("AF-4")
    async with env.client(TECH) as http:
        flow_id = (await deposit(http, content)).json()["flowId"]
        await settled(http, flow_id)
        original = await http.get(f"/v1/flows/{flow_id}", params={"docType": "Original"})
        readable = await http.get(f"/v1/flows/{flow_id}", params={"docType": "ReadableView"})
        converted = await http.get(f"/v1/flows/{flow_id}", params={"docType": "Converted"})
        bad = await http.get(f"/v1/flows/{flow_id}", params={"docType": "Pdf"})
    assert original.status_code == 200 and original.content == content
    assert original.headers["content-disposition"].startswith('attachment;filename="invoice.xml"')
    assert readable.status_code == 200 and f"Flow {flow_id}" in readable.text and "IN_INTEGRE" in readable.text
    assert readable.headers["content-type"] == "application/octet-stream"
    assert converted.status_code == 404 and converted.json()["errorCode"] == "NOT_FOUND"
    assert bad.status_code == 400


async def test_a_big_original_is_streamed_back_whole(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A deposit bigger than the form parser's memory (1 MB) and the store's inline size comes back intact."""
    env = await HttpEnv.start(tmp_path, cpu_pool)
    content = invoice("AF-5").replace(b"</Invoice>", b"<!--" + b"p" * 3_000_000 + b"--></Invoice>")
    try:
        async with env.client(TECH) as http:
            response = await deposit(http, content)
            assert response.status_code == 202, response.text
            original = await http.get(f"/v1/flows/{response.json()['flowId']}", params={"docType": "Original"})
        assert original.content == content
        assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()
    finally:
        await env.close()


async def test_search_pages_with_updated_after_in_update_order(env: HttpEnv) -> None:
    """Each page is sorted by updatedAt; asking again after the last updatedAt walks every flow once."""
    async with env.client(TECH) as http:
        ids = {(await deposit(http, invoice(f"AF-P{i}"))).json()["flowId"] for i in range(7)}
        for flow_id in ids:
            await settled(http, flow_id)
        seen: list[dict[str, Any]] = []
        after = "2000-01-01T00:00:00Z"
        while True:
            page = await http.post("/v1/flows/search", json={"limit": 3, "where": {"updatedAfter": after}})
            assert page.status_code == 200, page.text
            results = page.json()["results"]
            assert page.json()["limit"] == 3 and len(results) <= 3
            if not results:
                break
            seen += results
            after = results[-1]["updatedAt"]
    assert [f["flowId"] for f in seen if f["flowId"] in ids] and {f["flowId"] for f in seen} == ids
    assert len(seen) == len(ids)
    stamps = [f["updatedAt"] for f in seen]
    assert stamps == sorted(stamps)


async def test_search_filters(env: HttpEnv) -> None:
    """ackStatus, flowDirection, flowType and processingRule filter; at least one criterion is needed;
    limit is at most 100."""
    async with env.client(TECH) as http:
        good = (await deposit(http, invoice("AF-F1"))).json()["flowId"]
        bad = (await deposit(http, b"")).json()["flowId"]
        await settled(http, good)
        await settled(http, bad)

        async def ids(where: dict[str, Any]) -> set[str]:
            response = await http.post("/v1/flows/search", json={"where": where})
            assert response.status_code == 200, response.text
            return {f["flowId"] for f in response.json()["results"]}

        assert await ids({"ackStatus": "Error"}) == {bad}
        assert await ids({"ackStatus": "Ok"}) == {good}
        assert await ids({"ackStatus": "Pending"}) == set()
        assert await ids({"flowDirection": ["In"]}) == set()
        assert await ids({"flowDirection": ["In", "Out"], "flowType": ["CustomerInvoice"]}) == {good, bad}
        assert await ids({"processingRule": ["B2C"]}) == set()
        assert await ids({"updatedBefore": "2000-01-01T00:00:00+01:00"}) == set()
        empty = await http.post("/v1/flows/search", json={"where": {}})
        too_many = await http.post("/v1/flows/search", json={"limit": 101, "where": {"ackStatus": "Ok"}})
        no_date = await http.post("/v1/flows/search", json={"where": {"updatedAfter": "yesterday"}})
        before_year_1 = await http.post(
            "/v1/flows/search", json={"where": {"updatedAfter": "0001-01-01T00:00:00+14:00"}}
        )
    assert empty.status_code == too_many.status_code == no_date.status_code == before_year_1.status_code == 400
    assert "limit" in too_many.json()["errorMessage"]


async def test_hidden_flows_are_404_and_never_searched(env: HttpEnv) -> None:
    """A user who may not see the technical user's flows gets 404 for each download and finds nothing;
    the primary manager of the issuer sees them."""
    async with env.client(TECH) as http:
        flow_id = (await deposit(http, invoice("AF-H1"), {**UBL, "trackingId": "hidden-1"})).json()["flowId"]
    async with env.client(VIEWER) as viewer, env.client(MANAGER) as manager:
        for doc in ("Metadata", "Original", "ReadableView", "Converted"):
            hidden = await viewer.get(f"/v1/flows/{flow_id}", params={"docType": doc})
            assert hidden.status_code == 404, (doc, hidden.text)
            assert hidden.json()["errorCode"] == "FLOW_NOT_FOUND"
        missing = await viewer.get("/v1/flows/FSO1100A-CPP001-0000000001")
        searched = await viewer.post("/v1/flows/search", json={"where": {"trackingId": "hidden-1"}})
        seen = await manager.get(f"/v1/flows/{flow_id}")
    assert missing.json() == hidden.json() | {"errorMessage": missing.json()["errorMessage"]}
    assert searched.json()["results"] == []
    assert seen.status_code == 200


async def test_an_oauth_access_token_works_and_no_token_is_401(env: HttpEnv) -> None:
    """The /oauth/token access token is accepted on /v1; no token is 401 with the Error object."""
    async with env.client() as http:
        token = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": "TECH_1_papeterie@demo", "client_secret": TECH},
        )
        access = token.json()["access_token"]
        ok = await http.post("/v1/flows", files=parts(invoice("AF-O1")), headers={"Authorization": f"Bearer {access}"})
        anonymous = await http.post("/v1/flows/search", json={"where": {"ackStatus": "Ok"}})
    assert ok.status_code == 202
    assert anonymous.status_code == 401 and anonymous.json()["errorCode"] == "UNAUTHENTICATED"


async def test_rate_limit_is_429_with_retry_after_on_v1(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """Past its rate, a caller of /v1 gets 429 with Retry-After and the standard's Error object."""
    env = await HttpEnv.start(tmp_path, cpu_pool, rate=(0.5, 3))
    try:
        async with env.client(TECH) as http:
            statuses = [
                (await http.post("/v1/flows/search", json={"where": {"ackStatus": "Ok"}})).status_code for _ in range(5)
            ]
            refused = await http.get("/v1/flows/FSO1100A-CPP001-0000000001")
        assert statuses[:3] == [200] * 3 and statuses[3:] == [429, 429]
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["errorCode"] == "TOO_MANY_REQUESTS"
    finally:
        await env.close()


async def test_a_deposit_past_the_size_limit_is_413(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A file over max_flow_bytes is 413 FILE_SIZE_EXCEEDED, the standard's example code (a body over the
    body limit is 413 before it is read: tests/http/test_http_foundation.py)."""
    env = await HttpEnv.start(tmp_path, cpu_pool, limits=Limits(max_flow_bytes=50_000))
    try:
        async with env.client(TECH) as http:
            over = await deposit(http, b"x" * 60_000)
            under = await deposit(http, b"x" * 40_000)
        assert over.status_code == 413 and over.json()["errorCode"] == "FILE_SIZE_EXCEEDED"
        assert under.status_code == 202
    finally:
        await env.close()


async def test_request_id_is_echoed_and_bound_to_the_logs_of_v1_routes(
    env: HttpEnv, logs: list[MutableMapping[str, Any]]
) -> None:
    """X-Request-Id comes back on every /v1 route and is on the request's log lines, with the caller."""
    rid = "3f2b1c9e-8d7a-4e6f-9a0b-1c2d3e4f5a6b"
    async with env.client(TECH) as http:
        posted = await deposit(http, invoice("AF-R1"))
        flow_id = posted.json()["flowId"]
        responses = [
            await http.post("/v1/flows", files=parts(invoice("AF-R2")), headers={"X-Request-Id": rid}),
            await http.post("/v1/flows/search", json={"where": {"ackStatus": "Ok"}}, headers={"X-Request-Id": rid}),
            await http.get(f"/v1/flows/{flow_id}", headers={"X-Request-Id": rid}),
            await http.get("/v1/healthcheck", headers={"X-Request-Id": rid}),
        ]
    assert all(r.headers["x-request-id"] == rid for r in responses)
    lines = [e for e in logs if e.get("request_id") == rid and e["event"] == "http_request"]
    assert len(lines) == 4 and all(line["caller"] in (None, "tech:TECH_1_papeterie@demo") for line in lines)
    assert {line["path"] for line in lines} == {
        "/v1/flows",
        "/v1/flows/search",
        f"/v1/flows/{flow_id}",
        "/v1/healthcheck",
    }


async def test_the_standard_document_is_served(env: HttpEnv) -> None:
    """GET /v1/openapi.json is the AFNOR document this service implements, shipped with the package."""
    async with env.client() as http:
        response = await http.get("/v1/openapi.json")
    assert response.status_code == 200 and response.json()["info"]["version"] == "1.1.0"
    assert "/v1/flows/search" in response.json()["paths"]
