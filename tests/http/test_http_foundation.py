"""The HTTP listener's common ground, over a real uvicorn server and a real HTTP client: request ids,
bearer tokens and OAuth2 client credentials, rate limits, body limits, unexpected errors."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Request

from engine.cpu_pool import CpuPool
from engine.model import Limits
from gateway.http.services import HttpServices
from tests.http_support import TECH, TECH_LOGIN, HttpEnv, bearer

boom = APIRouter()


@boom.get("/test/boom")
async def _boom() -> None:
    raise RuntimeError("secret detail that must not reach the caller")


@boom.get("/test/whoami")
async def _whoami(request: Request) -> dict[str, str]:
    services: HttpServices = request.app.state.services
    principal = await services.auth.principal(request)
    return {"login": principal.login, "kind": principal.kind.value}


@boom.post("/test/read")
async def _read(request: Request) -> dict[str, int]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size}


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await HttpEnv.start(tmp_path, cpu_pool, rate=(1.0, 5))
    env.app.include_router(boom)  # test-only routes on the real app
    yield env
    await env.close()


async def test_request_id_is_echoed_or_made(env: HttpEnv) -> None:
    async with env.client() as http:
        given = await http.get("/v1/healthcheck", headers={"X-Request-Id": "abc-123"})
        made = await http.get("/v1/healthcheck")
        hostile = await http.get("/v1/healthcheck", headers={"X-Request-Id": "a b\u00e9".encode("latin-1") * 100})
    assert given.status_code == 200 and given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert len(hostile.headers["x-request-id"]) == 32  # replaced, not echoed


async def test_an_unexpected_error_is_a_generic_500_logged_with_its_request_id(
    env: HttpEnv, logs: list[MutableMapping[str, Any]]
) -> None:
    async with env.client() as http:
        response = await http.get("/test/boom", headers={"X-Request-Id": "req-boom"})
    assert response.status_code == 500
    assert response.json()["errorCode"] == "INTERNAL_ERROR"
    assert "secret detail" not in response.text
    errors = [e for e in logs if e["event"] == "http_unhandled_error"]
    assert errors and errors[0]["request_id"] == "req-boom" and errors[0]["path"] == "/test/boom"


async def test_missing_and_wrong_tokens_are_401_with_a_challenge(env: HttpEnv) -> None:
    async with env.client() as http:
        missing = await http.get("/test/whoami")
        wrong = await http.get("/test/whoami", headers=bearer("not-a-token"))
        malformed = await http.get("/test/whoami", headers={"Authorization": "Token x"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="fluxdepot"'
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert malformed.status_code == 401 and 'error="invalid_request"' in malformed.headers["www-authenticate"]
    assert wrong.json() == {"errorCode": "UNAUTHENTICATED", "errorMessage": "invalid or expired token"}


async def test_client_credentials_give_an_access_token_accepted_like_the_static_one(env: HttpEnv) -> None:
    async with env.client() as http:
        basic = base64.b64encode(f"{TECH_LOGIN}:{TECH}".encode()).decode()
        by_basic = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
        )
        by_form = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials", "client_id": TECH_LOGIN, "client_secret": TECH}
        )
        assert by_basic.status_code == 200 and by_form.status_code == 200, by_basic.text
        body = by_basic.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 900
        assert by_basic.headers["cache-control"] == "no-store"
        me = await http.get("/test/whoami", headers=bearer(body["access_token"]))
        assert me.json() == {"login": TECH_LOGIN, "kind": "technical"}
        # The access token is not a client secret, and a user's token is not a client.
        again = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": TECH_LOGIN, "client_secret": body["access_token"]},
        )
        assert again.status_code == 401 and again.json()["error"] == "invalid_client"


async def test_token_endpoint_errors_follow_rfc_6749(env: HttpEnv) -> None:
    async with env.client() as http:
        wrong = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials", "client_id": TECH_LOGIN, "client_secret": "x"}
        )
        other_login = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials", "client_id": "someone", "client_secret": TECH}
        )
        grant = await http.post("/oauth/token", data={"grant_type": "password"})
        missing = await http.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    assert other_login.status_code == 401
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_an_expired_access_token_is_401(tmp_path: Path, cpu_pool: CpuPool) -> None:
    clock = [1_000_000.0]
    env = await HttpEnv.start(tmp_path, cpu_pool, token_ttl_s=60, clock=lambda: clock[0])
    env.app.include_router(boom)
    try:
        async with env.client() as http:
            issued = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials", "client_id": TECH_LOGIN, "client_secret": TECH},
            )
            token = issued.json()["access_token"]
            env.services.auth.tokens.invalidate()
            clock[0] += 120  # past expiry (and the leeway)
            expired = await http.get("/test/whoami", headers=bearer(token))
        assert expired.status_code == 401 and 'error="invalid_token"' in expired.headers["www-authenticate"]
    finally:
        await env.close()


async def test_a_caller_past_its_rate_gets_429_with_retry_after(env: HttpEnv) -> None:
    async with env.client(TECH) as http:
        statuses = [(await http.get("/test/whoami")).status_code for _ in range(8)]
        refused = await http.get("/test/whoami")
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["errorCode"] == "TOO_MANY_REQUESTS"


async def test_a_body_over_the_limit_is_413_before_it_is_read(tmp_path: Path, cpu_pool: CpuPool) -> None:
    env = await HttpEnv.start(tmp_path, cpu_pool, limits=Limits(max_flow_bytes=100_000))
    limit = 100_000 + 64 * 1024
    try:
        # Declared too large: answered from the headers alone, before a byte of the body is sent.
        reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
        writer.write(
            f"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: {limit + 1}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.close()
        assert head.startswith(b"HTTP/1.1 413"), head

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(limit // 16384 + 2):
                yield b"y" * 16384

        env.app.include_router(boom)
        async with env.client() as http:
            chunked = await http.post("/test/read", content=chunks())
            small = await http.post("/test/read", content=b"z" * 1000)
        assert chunked.status_code == 413, chunked.text
        assert chunked.json()["errorCode"] == "PAYLOAD_TOO_LARGE"
        assert small.json() == {"size": 1000}
    finally:
        await env.close()


async def test_one_log_line_per_request_with_its_id(env: HttpEnv, logs: list[MutableMapping[str, Any]]) -> None:
    async with env.client(TECH) as http:
        await http.get("/test/whoami", headers={"X-Request-Id": "line-1"})
    lines = [e for e in logs if e["event"] == "http_request"]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "line-1" and lines[0]["status"] == 200
    assert lines[0]["caller"] == f"tech:{TECH_LOGIN}" and lines[0]["path"] == "/test/whoami"
    json.dumps(lines[0])  # serialisable as the JSON log line it becomes
