"""The web portal over a real server and a real HTTP client (no browser): log-in, sessions, CSRF, cookie
flags, security headers, lockouts, escaping of partners' file names, and permissions exactly like gRPC."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from engine.cpu_pool import CpuPool
from gateway.http.portal.security import HEADERS
from tests.grpc_support import invoice
from tests.http_support import HttpEnv
from tests.portal import support
from tests.portal.support import MANAGER, VIEWER, csrf_of, logged_in, login

XSS = "<img src=x onerror=alert(1)>.xml"
SUPPLIER = "40483304800022"


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await support.start(tmp_path, cpu_pool, max_login_failures=3, session_idle_s=600)
    yield env
    await env.close()


async def _deposit(client: httpx.AsyncClient, name: str, content: bytes) -> str:
    page = await client.get("/deposit")
    response = await client.post(
        "/deposit",
        data={"csrf_token": csrf_of(page.text), "issuer": SUPPLIER},
        files=[("files", (name, content, "text/xml"))],
    )
    assert response.status_code == 200, response.text
    numbers = re.findall(r'data-flow="([^"]+)"', response.text)
    assert len(numbers) == 1
    return numbers[0]


async def test_login_sets_a_fresh_session_cookie_with_its_flags_and_logout_ends_it(env: HttpEnv) -> None:
    """A log-in redirects with a new HttpOnly, SameSite=Lax session cookie (not Secure over plain HTTP),
    never the id a client had planted before; log-out deletes the session, so its cookie no longer works."""
    async with env.client() as client:
        client.cookies.set("fd_session", "planted-by-an-attacker", domain="127.0.0.1", path="/")
        assert (await client.get("/")).status_code == 303  # not logged in: to the log-in page
        first = await login(client, *MANAGER)
        assert first.status_code == 303
        cookie = first.headers["set-cookie"]
        assert "fd_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie
        session_id = client.cookies["fd_session"]
        assert session_id != "planted-by-an-attacker" and len(session_id) >= 40
        home = await client.get("/")
        assert home.status_code == 200
        logout = await client.post("/logout", data={"csrf_token": csrf_of(home.text)})
        assert logout.status_code == 303
    async with logged_in(env) as other:
        assert other.cookies["fd_session"] != session_id  # every log-in, its own id
    async with env.client(cookies={"fd_session": session_id}) as replay:
        response = await replay.get("/")
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_every_portal_response_carries_the_security_headers(env: HttpEnv) -> None:
    """The CSP (no inline script), nosniff and same-origin referrer are on pages, redirects, errors and
    static files alike; the CSP is the one of security.py."""
    async with logged_in(env) as client:
        for path in (
            "/",
            "/search?run=1",
            "/dashboard",
            "/deposit",
            "/users",
            "/rejects",
            "/flows/NOPE",
            "/static/live.js",
        ):
            response = await client.get(path)
            assert response.headers["content-security-policy"] == HEADERS["Content-Security-Policy"], path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "same-origin"
        csp = HEADERS["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        page = (await client.get("/")).text
        assert "<script>" not in page and " on" + "click=" not in page and "style=" not in page


async def test_forms_without_their_csrf_token_are_refused(env: HttpEnv) -> None:
    """A POST without the session's CSRF token (or with another session's) is 403 and changes nothing;
    the log-in form without its cookie's token is refused too."""
    async with env.client() as anonymous:
        refused = await anonymous.post("/login", data={"login": "manager", "password": "demo-manager-password"})
        assert refused.status_code == 403 and "fd_session" not in anonymous.cookies
    async with logged_in(env) as manager, logged_in(env) as other:
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf_of((await other.get("/")).text)}):
            response = await manager.post("/logout", data=data)
            assert response.status_code == 403
            grant = await manager.post(
                "/users/profiles", data={**data, "siret": SUPPLIER, "login": "viewer", "action": "grant"}
            )
            assert grant.status_code == 403
        assert (await manager.get("/")).status_code == 200  # still logged in
        users = await manager.get("/users", params={"siret": SUPPLIER, "login": "viewer"})
        assert "This user holds no profile" in users.text or "aucun profil" in users.text


async def test_wrong_passwords_lock_the_login_from_that_address_even_for_the_right_one(env: HttpEnv) -> None:
    """Past max_login_failures wrong passwords the (login, address) pair is locked: the right password is
    refused like a wrong one (401, no session); another login from the same address still logs in."""
    async with env.client() as client:
        for _ in range(3):
            assert (await login(client, "manager", "wrong")).status_code == 401
        locked = await login(client, *MANAGER)
        assert locked.status_code == 401 and "fd_session" not in client.cookies
        assert (await login(client, *VIEWER)).status_code == 303


async def test_unknown_login_and_wrong_password_answer_alike(env: HttpEnv) -> None:
    """An unknown login and a wrong password both give the same 401 page."""
    async with env.client() as client:
        unknown = await login(client, "nobody", "whatever")
        wrong = await login(client, "viewer", "whatever")
    assert unknown.status_code == wrong.status_code == 401
    assert re.sub(r'value="[^"]*"', "", unknown.text) == re.sub(r'value="[^"]*"', "", wrong.text)


async def test_idle_session_expires(tmp_path: Path, cpu_pool: CpuPool) -> None:
    """A session unused for session_idle_s ends: its cookie leads back to the log-in page."""
    env = await support.start(tmp_path, cpu_pool, session_idle_s=2)
    try:
        async with logged_in(env) as client:
            assert (await client.get("/")).status_code == 200
            await asyncio.sleep(2.5)
            assert (await client.get("/")).status_code == 303
    finally:
        await env.close()


async def test_a_partner_file_name_shows_as_text_everywhere(env: HttpEnv) -> None:
    """A file named <img src=x onerror=alert(1)>.xml is escaped in the deposit result, the homepage, the
    search results and the report, never markup; the CSV export holds it as plain text."""
    async with logged_in(env) as client:
        number = await _deposit(client, XSS, invoice())
        escaped = "&lt;img src=x onerror=alert(1)&gt;.xml"
        for path in ("/", "/search?run=1&file_name=onerror", f"/flows/{number}"):
            page = await client.get(path)
            assert page.status_code == 200
            assert escaped in page.text and "<img src=x" not in page.text, path
        export = await client.get("/search/export.csv", params={"file_name": "onerror"})
        assert export.headers["content-type"].startswith("text/csv")
        assert XSS in export.text


async def test_a_user_without_the_profile_sees_no_flow_no_count_and_no_report(env: HttpEnv) -> None:
    """The viewer (member of the supplier without flow follow-up) sees none of its flows on any screen,
    and a report URL of one is 'not found', exactly like a missing flow."""
    async with logged_in(env) as manager, logged_in(env, VIEWER) as viewer:
        number = await _deposit(manager, "visible-to-manager.xml", invoice("FA-V-1"))
        assert number in (await manager.get("/")).text
        for path in ("/", "/search?run=1", "/dashboard"):
            page = await viewer.get(path)
            assert page.status_code == 200 and number not in page.text and "visible-to-manager" not in page.text
        assert "0 flux" in (await viewer.get("/search?run=1")).text
        assert (await viewer.get(f"/flows/{number}")).status_code == 404
        assert (await viewer.get(f"/flows/{number}/report.json")).status_code == 404
        assert (await viewer.get(f"/flows/{number}/events")).status_code == 404
        assert (await viewer.get("/users")).text.count("<option") == 1  # manages nothing: no structure


async def test_granting_the_profile_twice_shows_the_red_message_then_it_can_be_revoked(env: HttpEnv) -> None:
    """A primary manager adds flow follow-up to the viewer; the second add answers "The user already has
    the selected subscription" (French: "L'utilisateur possède déjà ...") in the error style; revoking it
    takes it away again; the viewer's rights follow at once."""
    async with logged_in(env, headers={"Accept-Language": "en"}) as manager:
        page = await manager.get("/users", params={"siret": SUPPLIER, "login": "viewer"})
        form = {"csrf_token": csrf_of(page.text), "siret": SUPPLIER, "login": "viewer", "action": "grant"}
        assert (await manager.post("/users/profiles", data=form)).status_code == 303
        again = await manager.post("/users/profiles", data=form)
        assert again.status_code == 409
        assert '<p class="error" role="alert">The user already has the selected subscription</p>' in again.text
        french = await manager.post("/users/profiles", data=form, headers={"Accept-Language": "fr"})
        assert "L'utilisateur possède déjà l'habilitation sélectionnée</p>" in french.text
        async with logged_in(env, VIEWER) as viewer:
            assert (await viewer.get("/dashboard")).status_code == 200
            revoke = await manager.post("/users/profiles", data={**form, "action": "revoke"})
            assert revoke.status_code == 303
            after = await manager.get("/users", params={"siret": SUPPLIER, "login": "viewer"})
            assert "holds no profile" in after.text


async def test_language_follows_accept_language_and_the_switch(env: HttpEnv) -> None:
    """French by default and for fr; English for en; the switch's cookie wins over Accept-Language; status
    labels are Chorus Pro's French ones in French."""
    async with logged_in(env, headers={"Accept-Language": "en-GB,en;q=0.9"}) as client:
        assert 'lang="en"' in (await client.get("/search")).text
        switched = await client.get("/lang/fr", params={"next": "/search"})
        assert switched.status_code == 303 and switched.headers["location"] == "/search"
        page = (await client.get("/search")).text
        assert 'lang="fr"' in page
        for label in ("Reçu", "Traité SE CPP", "En attente de traitement", "En cours de traitement", "Incidenté"):
            assert label in page
        for label in ("Rejeté", "En attente de retraitement", "Intégré", "Intégré partiel"):
            assert label in page
        assert (await client.get("/lang/en", params={"next": "//evil.example/"})).headers["location"] == "/"
