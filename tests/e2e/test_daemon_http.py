"""The daemon's HTTP listener as an operator meets it: bound at start, named in ``ready``, OAuth2 tokens
signed with a key kept in the data folder (valid across a restart, over gRPC too), an in-flight request
finished when SIGTERM comes, exit 0."""

from __future__ import annotations

import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from clients.client import Client
from tests.e2e.daemon import start_daemon

TECH, TECH_LOGIN = "demo-technical-token", "TECH_1_papeterie@demo"


def test_http_listener_serves_tokens_that_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    daemon = start_daemon(data)
    try:
        base = f"http://{daemon.ready['http']}"
        assert httpx.get(f"{base}/v1/healthcheck", timeout=10).status_code == 200
        issued = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": TECH_LOGIN, "client_secret": TECH},
            timeout=30,
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        key = data / "oauth-signing.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    again = start_daemon(data)
    try:
        with Client(again.ready["grpc"], token=token) as client:  # same key: the token still works, on gRPC
            assert client.search().flows == ()
    finally:
        again.signal(signal.SIGTERM)
        assert again.wait(60) == 0


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    """A slow upload under way when SIGTERM comes is answered (the listener stops accepting, finishes
    what it has within the grace), and the daemon then exits 0."""
    daemon = start_daemon(tmp_path / "data")
    base = f"http://{daemon.ready['http']}"
    started = threading.Event()
    result: dict[str, int] = {}

    def body() -> Iterator[bytes]:
        started.set()
        for _ in range(10):
            yield b"a" * 10  # no grant_type: the answer will be 400, once the whole body is read
            threading.Event().wait(0.2)

    def post() -> None:
        response = httpx.post(
            f"{base}/oauth/token", content=body(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        result["status"] = response.status_code

    worker = threading.Thread(target=post)
    worker.start()
    assert started.wait(10)
    threading.Event().wait(0.5)
    daemon.signal(signal.SIGTERM)
    worker.join(30)
    assert result.get("status") == 400  # answered (an invalid grant), not cut off
    assert daemon.wait(60) == 0
    assert daemon.has_event("shutdown_complete")
