"""The daemon as a process: configuration errors, ready, signals, reload, metrics, systemd notifications."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from engine.store import open_store
from tests.e2e.daemon import EXAMPLE_CONFIG, FLUXDEPOT, REPO, start_daemon

DEMO = REPO / "config" / "demo"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLUXDEPOT, *args], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)


def demo_config_copy(tmp_path: Path, **replacements: str) -> Path:
    """The example config and demo directory copied to tmp_path, with text replacements applied."""
    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns("invoices"))
    text = EXAMPLE_CONFIG.read_text()
    for old, new in replacements.items():
        text = text.replace(old, new)
    config = tmp_path / "fluxdepot.toml"
    config.write_text(text)
    return config


def test_config_errors_are_all_reported_and_exit_78(tmp_path: Path) -> None:
    """A bad config exits 78 before anything listens, naming every bad key with its source."""
    config = demo_config_copy(tmp_path, **{'code = "CPP001"': 'code = "nope"', "lease_s = 30": "lease_s = -1"})
    result = run_cli("serve", "--config", str(config), env={"FLUXDEPOT_LIMITS__MAX_DOCUMENTS": "many", "PATH": ""})
    assert result.returncode == 78, result.stderr
    assert f"{config}: gateway.code" in result.stderr
    assert f"{config}: workers.lease_s" in result.stderr
    assert "FLUXDEPOT_LIMITS__MAX_DOCUMENTS: limits.max_documents" in result.stderr
    assert not (tmp_path / "var").exists()


def test_production_refuses_demo_secrets(tmp_path: Path) -> None:
    """In production, the demo directory's plaintext tokens and demo key are refused (exit 78)."""
    config = demo_config_copy(tmp_path, **{'environment = "demo"': 'environment = "production"'})
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 78, result.stdout + result.stderr
    assert "plaintext secrets are refused in production" in result.stderr
    assert "the demo key pair is refused in production" in result.stderr


def test_ready_then_sigterm_exits_0_with_shutdown_complete(tmp_path: Path) -> None:
    """The daemon logs JSON `ready`, serves metrics, and exits 0 after SIGTERM with `shutdown_complete`."""
    daemon = start_daemon(tmp_path / "data")
    try:
        metrics_url = f"http://{daemon.ready['metrics']}/metrics"
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            body = response.read().decode()
        assert "fluxdepot_deposits_total" in body
    finally:
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(30)
    assert code == 0
    assert daemon.has_event("shutdown_complete")
    assert (tmp_path / "data" / "fluxdepot.db").exists()


async def test_sighup_reloads_the_directory(tmp_path: Path) -> None:
    """SIGHUP re-imports the directory file into the store without stopping the daemon."""
    config = demo_config_copy(tmp_path)
    daemon = start_daemon(tmp_path / "data", config=config)
    try:
        with (tmp_path / "demo" / "directory.toml").open("a") as fh:
            fh.write('\n[[structures]]\nsiret = "35600000000048"\nname = "Added by reload"\n')
        daemon.signal(signal.SIGHUP)
        store = await open_store(f"sqlite:///{tmp_path / 'data' / 'fluxdepot.db'}")
        try:
            for _ in range(100):
                if await store.get_structure("35600000000048") is not None:
                    break
                await asyncio.sleep(0.1)
            structure = await store.get_structure("35600000000048")
        finally:
            await store.close()
        assert structure is not None and structure.name == "Added by reload"
        assert daemon.has_event("reloaded") and daemon.proc.poll() is None
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0


def test_systemd_notifications(tmp_path: Path) -> None:
    """Under systemd (NOTIFY_SOCKET set) the daemon sends READY=1, then STOPPING=1 on SIGTERM."""
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        daemon = start_daemon(tmp_path / "data", env={"NOTIFY_SOCKET": path})
        first = sock.recv(4096).decode()
        daemon.signal(signal.SIGTERM)
        second = sock.recv(4096).decode()
        assert daemon.wait(30) == 0
    assert first.startswith("READY=1")
    assert second == "STOPPING=1"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit (with ExecStart pointing at this checkout's binary)."""
    unit = (REPO / "systemd" / "fluxdepot.service").read_text()
    binary = Path(sys.executable).parent / "fluxdepot"
    assert "/opt/fluxdepot/.venv/bin/fluxdepot" in unit
    target = tmp_path / "fluxdepot.service"
    target.write_text(unit.replace("/opt/fluxdepot/.venv/bin/fluxdepot", str(binary)))
    result = subprocess.run(["systemd-analyze", "verify", str(target)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for setting in (
        "Type=notify",
        "RestartPreventExitStatus=78 65",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "StateDirectory=fluxdepot",
    ):
        assert setting in unit
