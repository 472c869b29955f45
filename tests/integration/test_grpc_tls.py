"""The gRPC server's optional TLS and mutual TLS with real certificates: a real grpc.aio server on loopback
(``start_grpc_server`` with ``TlsFiles``), the real engine and store, the Python client as caller.

The certificates are issued here with ``cryptography``: a CA, a server certificate for localhost and
127.0.0.1, a client certificate, and an untrusted CA (same name as the real one, another key) with its own
client certificate, so refusals prove signatures are checked, not just issuer names."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clients.client import AsyncClient
from clients.errors import Unavailable
from clients.models import DepositResult
from gateway.grpc_server import TlsFiles
from tests.grpc_support import SUPPLIER, TECH, invoice, serve
from tests.harness import Harness

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def issue(name: str, signer: Issued | None = None, *, sans: tuple[x509.GeneralName, ...] = ()) -> Issued:
    """A fresh P-256 key and its certificate: a self-signed CA without ``signer``, else a leaf it signs."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer, signing_key = (signer[0].subject, signer[1]) if signer else (subject, key)
    start = datetime.now(UTC) - timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=signer is None, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(signing_key, hashes.SHA256()), key


@dataclass(frozen=True)
class Pki:
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def pem(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def client(self, target: str, *, ca: str | None = None, cert: str | None = None) -> AsyncClient:
        """The demo technical user's client: plaintext without ``ca``, else TLS trusting that CA and, with
        ``cert``, presenting that client certificate (and its ``-key``)."""
        return AsyncClient(
            target,
            TECH,
            root_certificates=self.pem(ca) if ca else None,
            client_certificate=self.pem(cert) if cert else None,
            client_key=self.pem(f"{cert}-key") if cert else None,
            timeout_s=5,
        )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """PEM files: ca, server(-key), client(-key); rogue-ca and rogue-client(-key) from an untrusted CA."""
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = issue("fluxdepot test CA")
    rogue_ca = issue("fluxdepot test CA")
    localhost = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    issued = {
        "ca": ca,
        "server": issue("localhost", ca, sans=localhost),
        "client": issue("depositor", ca),
        "rogue-ca": rogue_ca,
        "rogue-client": issue("depositor", rogue_ca),
    }
    for name, (cert, key) in issued.items():
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}-key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return Pki(folder)


@contextlib.asynccontextmanager
async def serving(harness: Harness, tls: TlsFiles) -> AsyncIterator[int]:
    """The daemon's gRPC server on 127.0.0.1:0 with ``tls``; yields its port, stops it on exit."""
    server, port = await serve(harness, tls=tls)
    try:
        yield port
    finally:
        await server.stop(None)


async def deposit(client: AsyncClient, number: str) -> DepositResult:
    """One deposit through ``client``, closed afterwards."""
    async with client:
        return await client.deposit(invoice(number), f"{number}.xml")


async def test_tls_server_serves_clients_trusting_its_ca_only(harness: Harness, pki: Pki) -> None:
    """A client trusting the CA deposits and reads its flow back over TLS; a plaintext client and a TLS
    client trusting another CA are refused (UNAVAILABLE) and deposit nothing."""
    tls = TlsFiles(pki.path("server"), pki.path("server-key"))
    async with serving(harness, tls) as port, pki.client(f"localhost:{port}", ca="ca") as client:
        deposited = await client.deposit(invoice("FA-TLS-1"), "FA-TLS-1.xml")
        assert len(deposited.flow_number) == 25 and deposited.status == "RECEIVED"
        flow = await client.get_flow(deposited.flow_number)
        assert (flow.flow_number, flow.file_name) == (deposited.flow_number, "FA-TLS-1.xml")
        assert flow.issuer_siret == SUPPLIER

        with pytest.raises(Unavailable):
            await deposit(pki.client(f"127.0.0.1:{port}"), "FA-PLAIN")
        with pytest.raises(Unavailable):
            await deposit(pki.client(f"localhost:{port}", ca="rogue-ca"), "FA-ROGUE")

        assert (await client.search()).total_count == 1


async def test_mutual_tls_requires_a_client_certificate_signed_by_the_client_ca(harness: Harness, pki: Pki) -> None:
    """With a client CA, a client presenting a certificate it signed deposits; a client without a
    certificate, or with one from an untrusted CA (same name, other key), is refused and deposits nothing."""
    tls = TlsFiles(pki.path("server"), pki.path("server-key"), client_ca=pki.path("ca"))
    async with serving(harness, tls) as port:
        target = f"localhost:{port}"
        deposited = await deposit(pki.client(target, ca="ca", cert="client"), "FA-MTLS-1")
        assert len(deposited.flow_number) == 25 and deposited.status == "RECEIVED"

        with pytest.raises(Unavailable):
            await deposit(pki.client(target, ca="ca"), "FA-NO-CERT")
        with pytest.raises(Unavailable):
            await deposit(pki.client(target, ca="ca", cert="rogue-client"), "FA-ROGUE")

        async with pki.client(target, ca="ca", cert="client") as client:
            page = await client.search()
        assert [f.flow_number for f in page.flows] == [deposited.flow_number]
