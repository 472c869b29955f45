"""The JSON API's OpenAPI document: served at ``/api/openapi.json`` with a docs page at ``/api/docs``, in
step with the routes (every route documented with its answers, every documented operation routed), and
the live server conforming to it under schemathesis."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from engine.cpu_pool import CpuPool
from gateway.http.api import ROUTERS, api_app
from tests.grpc_support import invoice
from tests.http_support import MANAGER, HttpEnv

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SCHEMATHESIS_BUDGET_S = 30  # the whole run, generation included (the test stays under 60 s)


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await HttpEnv.start(tmp_path, cpu_pool)
    yield env
    await env.close()


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op for path, ops in doc["paths"].items() for method, op in ops.items()}


async def test_the_served_document_is_the_generated_one_and_lists_every_route(env: HttpEnv) -> None:
    """``/api/openapi.json`` is the document ``api_app`` generates; it holds exactly the API routers'
    routes, each with a success answer and the AFNOR error body for 400, 401 and 429 (never FastAPI's 422),
    bearer security, and every schema it references."""
    async with env.client() as http:
        served = (await http.get("/api/openapi.json")).json()
    doc = api_app(env.services).openapi()
    assert served == doc
    assert doc["servers"] == [{"url": "/api"}]
    routes = {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    operations = _operations(doc)
    assert set(operations) == routes
    for key, op in operations.items():
        answers = op["responses"]
        assert any(code.startswith("2") for code in answers), key
        assert "422" not in answers, key
        for code in ("400", "401", "429"):
            assert answers[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
        assert op["security"] == [{"HTTPBearer": []}], key
    text = str(doc)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in doc["components"]["schemas"], name
    assert "FlowEvent" in doc["components"]["schemas"]  # the data of the Server-Sent Events


async def test_every_documented_operation_is_routed(env: HttpEnv) -> None:
    """Each operation of the document, called under ``/api`` without a token, reaches its route: 401 with
    the error body and a Bearer challenge (an unrouted path would be 404, a wrong method 405)."""
    doc = api_app(env.services).openapi()
    async with env.client() as http:
        for method, path in _operations(doc):
            url = "/api" + path.replace("{flow_number}", "CPP0011100000000000999999")
            response = await http.request(method, url)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["errorCode"] == "UNAUTHENTICATED"
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_docs_page_is_served(env: HttpEnv) -> None:
    """``/api/docs`` is an HTML page pointing at the document (its scripts come from a CDN, which an
    offline browser cannot load; the page and the document are ours)."""
    async with env.client() as http:
        page = await http.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/openapi.json" in page.text


async def test_schemathesis_finds_no_server_error_and_no_nonconformance(env: HttpEnv) -> None:
    """schemathesis generates requests from our document (valid and invalid ones, with the technical
    primary manager's token) against the live server for at most ``SCHEMATHESIS_BUDGET_S`` seconds: no 5xx, and every
    status, content type, header and body is one the document declares. The live feeds are left out
    (they never end by themselves); tests/http/test_api_events.py covers them."""
    async with env.client(MANAGER) as http:  # a flow to find among the generated searches
        await http.post("/api/v1/flows", files={"file": ("a.xml", invoice())})
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{env.base_url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {MANAGER}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth",
        "--exclude-path-regex",
        "/events$",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "20",
        "--max-time",
        str(SCHEMATHESIS_BUDGET_S),
        "--seed",
        "1",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=env.harness.root,  # anything it writes stays in the test's folder
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), SCHEMATHESIS_BUDGET_S + 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode(errors="replace")[-6000:]
