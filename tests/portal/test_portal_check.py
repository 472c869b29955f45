"""Check a file (screen 8) over a real server and client: the report a deposit would get, judged by the
worker's pipeline in the validation pool with the store's directory, and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from engine.cpu_pool import CpuPool
from engine.model import Limits
from engine.permissions import Visibility
from engine.queries import FlowQuery
from tests.grpc_support import invoice
from tests.http_support import HttpEnv
from tests.portal import support
from tests.portal.support import VIEWER, csrf_of, logged_in

SUPPLIER = "40483304800022"
PROVIDER = "55210055400013"
REJECTED = Path(__file__).resolve().parents[2] / "config" / "demo" / "invoices" / "rejected" / "unknown_buyer.xml"


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await support.start(tmp_path, cpu_pool, limits=Limits(max_flow_bytes=64 * 1024))
    yield env
    await env.close()


async def _stored(env: HttpEnv) -> tuple[int, int]:
    """How many flows the store holds, and its last event cursor."""
    store = env.harness.store
    page = await store.search(FlowQuery(), Visibility(everything=True), page_size=1)
    return page.total_count, await store.latest_cursor()


async def _check(client: httpx.AsyncClient, name: str, content: bytes, issuer: str = SUPPLIER) -> httpx.Response:
    page = await client.get("/check")
    assert page.status_code == 200
    return await client.post(
        "/check",
        data={"csrf_token": csrf_of(page.text), "issuer": issuer},
        files=[("file", (name, content, "text/xml"))],
    )


async def test_check_shows_the_verdict_of_an_integrating_and_a_rejected_invoice_and_stores_nothing(
    env: HttpEnv,
) -> None:
    """An integrating invoice reads "would end: Integrated"; an invoice to a recipient the directory does
    not know reads Rejected with BUYER_UNKNOWN (the store's directory was used); neither left a flow nor an
    event in the store; the file name is shown escaped."""
    before = await _stored(env)
    async with logged_in(env, headers={"Accept-Language": "en"}) as client:
        ok = await _check(client, "<b>ok</b>.xml", invoice("FA-CHECK-1"))
        assert ok.status_code == 200, ok.text
        assert "A deposit of this file would end:" in ok.text
        assert 'class="status s-in_integre" data-status>Integrated</span>' in ok.text
        assert "1 of 1 invoices integrated, 0 rejected." in ok.text
        assert "&lt;b&gt;ok&lt;/b&gt;.xml" in ok.text and "<b>ok</b>" not in ok.text
        bad = await _check(client, "unknown_buyer.xml", REJECTED.read_bytes())
        assert bad.status_code == 200
        assert "data-status>Rejected</span>" in bad.text and "BUYER_UNKNOWN" in bad.text
        assert "Check the recipient&#39;s SIRET in the public structures directory." in bad.text
    assert await _stored(env) == before == (0, 0)


async def test_check_words_the_engine_texts_in_french(env: HttpEnv) -> None:
    """In French the status label, the catalogue's message and hint and the next action are the French
    ones (gateway/http/portal/locale/fr/LC_MESSAGES/engine.po)."""
    async with logged_in(env, headers={"Accept-Language": "fr"}) as client:
        bad = await _check(client, "unknown_buyer.xml", REJECTED.read_bytes())
    assert "Un dépôt de ce fichier finirait" in bad.text and "data-status>Rejeté</span>" in bad.text
    assert "Le destinataire n&#39;est pas connu de la plateforme." in bad.text
    assert "Vérifiez le SIRET du destinataire dans l&#39;annuaire des structures publiques." in bad.text
    assert "Corrigez les erreurs listées et déposez de nouveau le flux entier." in bad.text


async def test_check_refuses_a_file_too_big_and_a_structure_not_the_users(env: HttpEnv) -> None:
    """Past max_flow_bytes the check is refused (413) as a deposit would be; the viewer may not check for
    a structure they do not belong to (403); each says why in the page's language; nothing is stored."""
    async with logged_in(env, headers={"Accept-Language": "en"}) as client:
        big = await _check(client, "big.xml", b"<x>" + b" " * (64 * 1024) + b"</x>")
        assert big.status_code == 413
        assert "The file exceeds the maximum flow size." in big.text
    async with logged_in(env, VIEWER, headers={"Accept-Language": "fr"}) as viewer:
        page = await viewer.get("/check")
        assert f'value="{PROVIDER}"' not in page.text  # only the viewer's own structure is offered
        foreign = await _check(viewer, "ok.xml", invoice("FA-CHECK-2"), issuer=PROVIDER)
        assert foreign.status_code == 403
        assert "Vous ne pouvez pas déposer pour cette structure." in foreign.text
    assert (await _stored(env))[0] == 0


async def test_check_needs_a_log_in_and_its_csrf_token(env: HttpEnv) -> None:
    """Without a session the check page leads to the log-in page; a POST without the CSRF token is 403."""
    async with env.client() as anonymous:
        response = await anonymous.get("/check")
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    async with logged_in(env) as client:
        refused = await client.post(
            "/check", data={"issuer": SUPPLIER}, files=[("file", ("a.xml", invoice("FA-CHECK-3"), "text/xml"))]
        )
        assert refused.status_code == 403
