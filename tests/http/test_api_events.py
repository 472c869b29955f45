"""The JSON API's live feeds as Server-Sent Events, over a real server and a real streaming client:
resumable by ``Last-Event-ID`` without loss or repeat, one flow's feed ending at its final status,
heartbeats while idle, and every feed ending when the daemon shuts down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.cpu_pool import CpuPool
from engine.permissions import Visibility
from gateway.http import api_events
from gateway.http.api_models import FlowEventOut
from tests.grpc_support import invoice
from tests.http_support import MANAGER, TECH, HttpEnv

API = "/api/v1"


class Sse:
    """What a client read from one feed: events (cursor, data), comment lines and the retry field."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()  # one iterator: a response's body is streamed once
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.comments: list[str] = []
        self.retry: str | None = None

    async def read(self, *, events: int | None = None, comments: int = 0) -> Sse:
        """Read until ``events`` events and ``comments`` comments are held, or else until the stream ends."""
        fields: dict[str, str] = {}
        async for line in self.lines:
            if line.startswith(":"):
                self.comments.append(line)
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif fields:
                self._dispatch(fields)
                fields = {}
            if (
                (events is not None or comments)
                and len(self.events) >= (events or 0)
                and len(self.comments) >= comments
            ):
                break
        return self

    def _dispatch(self, fields: dict[str, str]) -> None:
        if "retry" in fields:
            self.retry = fields["retry"]
        if "data" in fields:
            data = json.loads(fields["data"])
            FlowEventOut.model_validate(data)  # the documented FlowEvent
            assert int(fields["id"]) == data["cursor"]
            self.events.append((data["cursor"], data))


async def deposit(http: httpx.AsyncClient, number: str) -> str:
    response = await http.post(f"{API}/flows", files={"file": (f"{number}.xml", invoice(number))})
    assert response.status_code == 202, response.text
    return str(response.json()["flow_number"])


async def all_final(env: HttpEnv, numbers: list[str]) -> None:
    while True:
        flows = [await env.harness.store.get_flow(n) for n in numbers]
        if all(f is not None and f.status.is_final for f in flows):
            return
        await asyncio.sleep(0.05)


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await HttpEnv.start(tmp_path, cpu_pool)
    yield env
    await env.close()


async def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A watcher reads part of the feed while real workers process flows, disconnects, and reconnects
    with ``Last-Event-ID`` (with a stale ``cursor`` in the query, which the header overrides): the two
    connections together hold every status change exactly once, in commit order, each event's ``id`` its
    cursor."""
    env = await HttpEnv.start(tmp_path, cpu_pool, workers=True)
    try:
        async with env.client(TECH) as tech, env.client(MANAGER) as watcher:
            numbers = [await deposit(tech, f"FA-L{i}") for i in range(4)]
            async with watcher.stream("GET", f"{API}/events", params={"from_start": "true"}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
                first = await asyncio.wait_for(Sse(response).read(events=6), 30)
            assert first.retry == "3000"
            await asyncio.wait_for(all_final(env, numbers), timeout=60)
            expected = await env.harness.store.events_after(0, Visibility(everything=True), limit=10_000)
            headers = {"Last-Event-ID": str(first.events[-1][0])}
            async with watcher.stream("GET", f"{API}/events", params={"cursor": 1}, headers=headers) as response:
                rest = len(expected) - len(first.events)
                second = await asyncio.wait_for(Sse(response).read(events=rest), 30)
    finally:
        await env.close()
    got = [(c, e["flow_number"], e["status"]) for c, e in first.events + second.events]
    assert got == [(e.cursor, e.flow_number, e.status.name) for e in expected]


async def test_filters_and_cursor_in_the_query(env: HttpEnv) -> None:
    """``cursor`` resumes after that event; ``status`` and ``issuer`` keep only matching events; a bad
    ``Last-Event-ID`` or cursor is 400 naming it."""
    async with env.client(TECH) as http:
        await deposit(http, "FA-F1")
        await env.harness.process_all()
        async with http.stream("GET", f"{API}/events", params={"from_start": "true"}) as response:
            everything = await asyncio.wait_for(Sse(response).read(events=5), 10)
        second_cursor = everything.events[1][0]
        async with http.stream("GET", f"{API}/events", params={"cursor": second_cursor}) as response:
            after = await asyncio.wait_for(Sse(response).read(events=3), 10)
        params = {"from_start": "true", "status": "INTEGRATED", "issuer": "40483304800022"}
        async with http.stream("GET", f"{API}/events", params=params) as response:
            final = await asyncio.wait_for(Sse(response).read(events=1), 10)
        bad_header = await http.get(f"{API}/events", headers={"Last-Event-ID": "abc"})
        bad_cursor = await http.get(f"{API}/events", params={"cursor": -1})
    assert [e["status"] for _, e in everything.events][-1] == "INTEGRATED"
    assert after.events == everything.events[2:]
    assert [e["status"] for _, e in final.events] == ["INTEGRATED"] and final.events[0][1]["final"] is True
    assert bad_header.status_code == 400 and bad_header.json()["errorMessage"].lower().startswith("last-event-id")
    assert bad_cursor.status_code == 400 and bad_cursor.json()["errorMessage"].startswith("cursor")


async def test_one_flows_feed_sends_its_history_then_ends_after_its_final_status(env: HttpEnv) -> None:
    """Watching one flow: its history first (RECEIVED), then its changes as they happen; the stream ends
    by itself after the final status; with ``Last-Event-ID`` only the later events are sent again; a
    missing flow is 404 before any stream starts."""
    async with env.client(TECH) as http:
        number = await deposit(http, "FA-O1")
        async with http.stream("GET", f"{API}/flows/{number}/events") as response:
            assert response.status_code == 200
            live = await asyncio.wait_for(Sse(response).read(events=1), 10)
            await env.harness.process_all()
            await asyncio.wait_for(live.read(), 10)  # returns: the stream ended by itself
        headers = {"Last-Event-ID": str(live.events[1][0])}
        async with http.stream("GET", f"{API}/flows/{number}/events", headers=headers) as response:
            resumed = await asyncio.wait_for(Sse(response).read(), 10)
        missing = await http.get(f"{API}/flows/CPP0011100000000000999999/events")
    statuses = [e["status"] for _, e in live.events]
    assert statuses[0] == "RECEIVED" and statuses[-1] == "INTEGRATED" and len(statuses) == 5
    assert resumed.events == live.events[2:]
    assert missing.status_code == 404 and missing.json()["errorCode"] == "FLOW_NOT_FOUND"


async def test_an_idle_feed_sends_heartbeats(env: HttpEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """While nothing happens, the feed sends a comment line every HEARTBEAT_S (shortened here), and an
    event still arrives after them."""
    monkeypatch.setattr(api_events, "HEARTBEAT_S", 0.2)
    async with env.client(TECH) as http, http.stream("GET", f"{API}/events") as response:
        sse = await asyncio.wait_for(Sse(response).read(comments=3), 10)
        assert sse.comments[:3] == [": keep-alive"] * 3 and not sse.events
        await env.harness.deposit("later.xml", invoice("FA-H1"))
        await asyncio.wait_for(sse.read(events=1), 10)
    assert sse.events[0][1]["status"] == "RECEIVED"


async def test_feeds_end_when_the_daemon_starts_to_shut_down(env: HttpEnv) -> None:
    """Setting ``closing`` (the daemon's first shutdown step) ends every open feed, the global one and a
    non-final flow's, so the listener can stop within its grace."""
    async with env.client(TECH) as http:
        number = await deposit(http, "FA-C1")
        async with (
            http.stream("GET", f"{API}/events") as everything,
            http.stream("GET", f"{API}/flows/{number}/events") as one,
        ):
            one_feed = await asyncio.wait_for(Sse(one).read(events=1), 10)
            env.services.closing.set()
            await asyncio.wait_for(Sse(everything).read(), 5)  # returns: the stream ended
            await asyncio.wait_for(one_feed.read(), 5)
    assert [e["status"] for _, e in one_feed.events] == ["RECEIVED"]
