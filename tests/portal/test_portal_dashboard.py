"""The Dashboard of a user following many issuers, over a real server and store: its issuer rows come a
page at a time (``DASHBOARD_ISSUERS``) with previous/next links, under a totals row over every issuer, and
every count stays a link to the Search tab with its filters."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.cpu_pool import CpuPool
from engine.directory import Membership, Profile, Role, Structure
from engine.directory_file import load_directory
from engine.model import Channel, Syntax
from engine.status import FlowEvent, FlowStatus
from engine.store.port import NewFlow
from gateway.http.portal.flows_pages import DASHBOARD_ISSUERS
from tests.harness import DEMO_DIRECTORY
from tests.http_support import HttpEnv
from tests.portal import support
from tests.portal.support import logged_in

ISSUERS = [f"9{k:013d}" for k in range(DASHBOARD_ISSUERS + 12)]  # two pages: 50 issuers, then 12
ROW = re.compile(r'<tr><th scope="row">Bench issuer \d+<br><small>(\d{14})</small></th>')


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    """The demo directory plus ``ISSUERS``, all followed by the demo manager; issuer k has k % 3 + 1 flows,
    the first of them rejected."""
    env = await support.start(tmp_path, cpu_pool)
    store = env.harness.store
    demo = load_directory(DEMO_DIRECTORY)
    await store.import_directory(
        replace(
            demo,
            structures=demo.structures + tuple(Structure(s, f"Bench issuer {k}") for k, s in enumerate(ISSUERS)),
            memberships=demo.memberships + tuple(Membership("manager", s, Role.PRIMARY_MANAGER) for s in ISSUERS),
            profiles=demo.profiles + tuple(Profile("manager", s) for s in ISSUERS),
        )
    )
    at = datetime(2026, 3, 2, 8, tzinfo=UTC)
    for k, siret in enumerate(ISSUERS):
        for i in range(k % 3 + 1):
            flow = await store.create_flow(
                NewFlow(
                    "CPP001",
                    f"f-{k}-{i}.xml",
                    Syntax.UBL_INVOICE,
                    True,
                    Channel.API,
                    siret,
                    "tech:T1",
                    f"{k:032x}{i:032x}",
                    100,
                    "",
                    at + timedelta(minutes=k),
                    content=b"<x/>",
                )
            )
            if i == 0:
                await store.transition(
                    flow.flow_number, FlowStatus.RECEIVED, FlowEvent.TECHNICAL_REJECTION, actor="w", at=at
                )
    yield env
    await env.close()


async def test_the_dashboard_pages_its_issuer_rows_under_a_totals_row_of_every_issuer(env: HttpEnv) -> None:
    """Page 1 shows the first 50 issuers (by SIRET) and a next link, page 2 the other 12 and a previous
    link; both carry the same totals row over all 62 issuers (each total a link to the Search tab by status);
    an issuer's count links to the Search tab with issuer and status; a page out of range or not a number
    shows the nearest page."""
    received = sum(k % 3 for k in range(len(ISSUERS)))  # every flow but each issuer's first, rejected one
    async with logged_in(env, headers={"Accept-Language": "en"}) as manager:
        first = (await manager.get("/dashboard")).text
        assert ROW.findall(first) == ISSUERS[:DASHBOARD_ISSUERS]
        assert "Issuers 1 to 50 of 62" in first
        assert 'rel="next" href="/dashboard?page=2"' in first and 'rel="prev"' not in first
        assert f'href="/search?run=1&amp;issuer={ISSUERS[4]}&amp;status=IN_RECU"' in first
        assert f'aria-label="1 flows Received for {ISSUERS[4]}">1</a>' in first  # issuer 4: 2 flows, 1 rejected
        assert f'<a href="/search?run=1&amp;status=IN_REJETE" aria-label="{len(ISSUERS)} flows Rejected in all' in first
        for page in (first, second := (await manager.get("/dashboard?page=2")).text):
            totals = page.split("<tfoot>", 1)[1].split("</tfoot>", 1)[0]
            assert 'href="/search?run=1&amp;status=IN_REJETE"' in totals and f">{len(ISSUERS)}</a>" in totals
            assert 'href="/search?run=1&amp;status=IN_RECU"' in totals and f">{received}</a>" in totals
        assert ROW.findall(second) == ISSUERS[DASHBOARD_ISSUERS:]
        assert "Issuers 51 to 62 of 62" in second
        assert 'rel="prev" href="/dashboard?page=1"' in second and 'rel="next"' not in second
        assert ROW.findall((await manager.get("/dashboard?page=99")).text) == ISSUERS[DASHBOARD_ISSUERS:]
        assert ROW.findall((await manager.get("/dashboard?page=x")).text) == ISSUERS[:DASHBOARD_ISSUERS]
        one = (await manager.get("/dashboard", params={"issuer": ISSUERS[7]})).text
        assert ROW.findall(one) == [ISSUERS[7]] and 'rel="next"' not in one
        assert f'href="/search?run=1&amp;status=IN_RECU&amp;issuer={ISSUERS[7]}"' in one.split("<tfoot>", 1)[1]
