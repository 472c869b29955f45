"""The portal's smaller promises over a real server and client: the session cookie is Secure under TLS,
the report page serves the partner's return flow itself, Add / Revoke say they were done, the Search's
data flow type narrows its flows, and refusals read in the page's language."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.cpu_pool import CpuPool
from engine.model import Channel
from gateway.http.server import HttpServer, HttpTls
from gateway.outbox import OutboxWriter
from tests.grpc_support import invoice
from tests.http_support import HttpEnv
from tests.portal import support
from tests.portal.support import MANAGER, VIEWER, csrf_of, logged_in, login

SUPPLIER = "40483304800022"
PROVIDER = "55210055400013"  # the demo EDI partner AAA001's structure


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await support.start(tmp_path, cpu_pool)
    yield env
    await env.close()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "portal.crt", folder / "portal.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_the_session_cookie_is_secure_under_tls(env: HttpEnv, tmp_path: Path) -> None:
    """Served over TLS (HttpServer with HttpTls, a self-signed certificate the client trusts), the log-in
    sets the session cookie (and the log-in page its CSRF cookie) with Secure, HttpOnly and SameSite=Lax;
    the session then works over that TLS connection."""
    cert, key = _self_signed(tmp_path)
    server = HttpServer(env.app, tls=HttpTls(cert, key), grace_s=5)
    port = await server.start("127.0.0.1:0")
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=30) as client:
            page = await client.get("/login")
            assert "Secure" in page.headers["set-cookie"] and "fd_login_csrf=" in page.headers["set-cookie"]
            response = await login(client, *MANAGER)
            assert response.status_code == 303
            session = next(c for c in response.headers.get_list("set-cookie") if c.startswith("fd_session="))
            assert "; Secure" in session and "HttpOnly" in session and "SameSite=lax" in session
            assert (await client.get("/")).status_code == 200
    finally:
        await server.stop(5)


async def test_the_report_page_links_the_partners_return_flow_and_serves_it(env: HttpEnv, tmp_path: Path) -> None:
    """An EDI partner's flow, once final, has its return flow written by the outbox; the report page links
    it and the link serves the very bytes of the partner's out/ file; the viewer (no profile) gets 404 for
    it like for a missing flow; once the partner collected it, the link says it is gone (404), and a name
    the flow does not record is never read from disk."""
    harness = env.harness
    flow = await harness.deposit_and_process(
        "edi.xml",
        invoice("FA-EDI-1"),
        issuer=PROVIDER,
        channel=Channel.EDI,
        depositor="partner:AAA001",
        partner_code="AAA001",
    )
    folders = support.folders(tmp_path)
    await OutboxWriter(harness.store, folders, engine_version="test").drain()
    stored = await harness.store.get_flow(flow.flow_number)
    assert stored is not None and len(stored.return_flows) == 1
    name = stored.return_flows[0]
    on_disk = (folders.outbox("AAA001") / name).read_bytes()
    link = f"/flows/{flow.flow_number}/return/{name}"
    async with logged_in(env, headers={"Accept-Language": "en"}) as manager, logged_in(env, VIEWER) as viewer:
        page = await manager.get(f"/flows/{flow.flow_number}")
        assert f'href="{link}"' in page.text and f"Download the return flow {name}" in page.text
        served = await manager.get(link)
        assert served.status_code == 200 and served.content == on_disk
        assert served.headers["content-type"].startswith("application/xml")
        assert f'filename="{name}"' in served.headers["content-disposition"]
        assert (await viewer.get(link)).status_code == 404
        assert (await manager.get(f"/flows/{flow.flow_number}/return/..%2F..%2Ffluxdepot.db")).status_code == 404
        (folders.outbox("AAA001") / name).unlink()  # the partner collected it
        assert (await manager.get(link)).status_code == 404


async def test_add_and_revoke_say_they_were_done_in_french_and_english(env: HttpEnv) -> None:
    """After Add, the redirected page says the profile was added (role=status, not the error style); after
    Revoke, that it was revoked; in English and in French."""
    async with logged_in(env, headers={"Accept-Language": "en"}) as manager:
        page = await manager.get("/users", params={"siret": SUPPLIER, "login": "viewer"})
        form = {"csrf_token": csrf_of(page.text), "siret": SUPPLIER, "login": "viewer", "action": "grant"}
        added = await manager.post("/users/profiles", data=form, follow_redirects=True)
        assert '<p class="success" role="status">The profile "Follow-up of consultation flows" was added.</p>' in (
            added.text.replace("&#34;", '"')
        )
        revoked = await manager.post(
            "/users/profiles", data={**form, "action": "revoke"}, headers={"Accept-Language": "fr"}
        )
        french = await manager.get(revoked.headers["location"], headers={"Accept-Language": "fr"})
        assert "Le profil « Suivi des flux de consultation » a été retiré." in french.text
        assert "aucun profil" in french.text
        plain = await manager.get("/users", params={"siret": SUPPLIER, "login": "viewer"})
        assert 'class="success"' not in plain.text  # only on the page a change redirected to


async def test_the_data_flow_type_then_the_flows_of_that_type(env: HttpEnv) -> None:
    """The Search offers the data flow types (E1 structured, E2 mixed); once E2 is chosen, the flows
    offered are the E2 syntaxes only; a UBL invoice (E1) is found by E1 and by its own flow, not by E2; a
    flow of another type than the one chosen is ignored."""
    await env.harness.deposit_and_process("typed.xml", invoice("FA-TYPE-1"))
    async with logged_in(env, headers={"Accept-Language": "en"}) as client:
        page = await client.get("/search")
        assert '<option value="E1">E1 – structured invoice</option>' in page.text
        assert 'value="IN_DP_E1_UBL_INVOICE" data-type="E1"' in page.text
        e2 = await client.get("/search", params={"run": "1", "flow_type": "E2"})
        assert "0 flows found." in e2.text
        assert 'data-type="E1"' not in e2.text and 'value="IN_DP_E2_CII_FACTURX" data-type="E2"' in e2.text
        for params in (
            {"flow_type": "E1"},
            {"flow_type": "E1", "syntax": "IN_DP_E1_UBL_INVOICE"},
            {"flow_type": "E1", "syntax": "IN_DP_E2_CII_FACTURX"},
        ):
            found = await client.get("/search", params={"run": "1", **params})
            assert "1 flows found." in found.text and "typed.xml" in found.text, params
        other = await client.get("/search", params={"run": "1", "flow_type": "E1", "syntax": "IN_DP_E1_CII_16B"})
        assert "0 flows found." in other.text


async def test_a_deposit_refusal_reads_in_the_pages_language(env: HttpEnv) -> None:
    """The viewer depositing for a structure they do not belong to is refused, and the deposit page says
    why in French (the engine's reason worded by its error code)."""
    async with logged_in(env, VIEWER, headers={"Accept-Language": "fr"}) as viewer:
        page = await viewer.get("/deposit")
        response = await viewer.post(
            "/deposit",
            data={"csrf_token": csrf_of(page.text), "issuer": PROVIDER},
            files=[("files", ("a.xml", invoice("FA-REF-1"), "text/xml"))],
        )
    assert "Vous ne pouvez pas déposer pour cette structure." in response.text
