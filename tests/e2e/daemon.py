"""Run ``fluxdepot serve`` as a subprocess, the way systemd or an admin runs it, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config" / "fluxdepot.example.toml"
FLUXDEPOT = [sys.executable, "-m", "gateway.cli"]


@dataclass
class RunningDaemon:
    proc: subprocess.Popen[str]
    ready: dict[str, Any]
    lines: list[str] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def has_event(self, name: str) -> bool:
        return any(e.get("event") == name for e in self.events())

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)

    _reader: threading.Thread = field(init=False, repr=False)


def start_daemon(
    data_dir: Path,
    *,
    config: Path = EXAMPLE_CONFIG,
    env: dict[str, str] | None = None,
    timeout_s: float = 60,
    extra_args: tuple[str, ...] = (),
) -> RunningDaemon:
    """Start the daemon on free loopback ports; return once it logged ``ready`` (or fail with its output)."""
    environment = {
        **os.environ,
        "FLUXDEPOT_METRICS__LISTEN": "127.0.0.1:0",
        "FLUXDEPOT_HTTP__LISTEN": "127.0.0.1:0",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [
            *FLUXDEPOT,
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "--grpc-listen",
            "127.0.0.1:0",
            "--sftp-listen",
            "127.0.0.1:0",
            *extra_args,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        start_new_session=True,
    )
    daemon = RunningDaemon(proc, {})
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            daemon.lines.append(line.rstrip("\n"))
            if '"event": "ready"' in line:
                daemon.ready = json.loads(line)
                ready.set()
        proc.stdout.close()
        ready.set()

    daemon._reader = threading.Thread(target=read, daemon=True)
    daemon._reader.start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.1):
        if time.monotonic() > deadline:
            daemon.kill9()
            raise AssertionError("daemon not ready in time:\n" + "\n".join(daemon.lines[-30:]))
    if not daemon.ready:
        daemon.wait(10)
        raise AssertionError(f"daemon exited {proc.returncode} before ready:\n" + "\n".join(daemon.lines[-30:]))
    return daemon
