"""The README's first command on a fresh clone: ``make run`` installs from the lock, starts the demo with no
warning, and the commands it prints work as printed (a gRPC deposit, then an SFTP upload whose report
integrates: the printed SFTP invoice is not one the gRPC example already deposited). Ctrl-C stops it.

The clone is of the committed HEAD: uncommitted changes are not part of what a newcomer gets.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TextIO

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not (REPO / ".git").exists() or not shutil.which("git"), reason="needs a git checkout"),
]


def sh(command: str, cwd: Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout_s)


def test_make_run_on_a_fresh_clone_serves_the_printed_examples(tmp_path: Path) -> None:
    """Clone, ``make run`` (setup from the lock, then the demo daemon), run the printed deposit and SFTP
    commands, and stop with Ctrl-C: exit 0, no warning and no traceback anywhere."""
    clone = tmp_path / "fluxdepot"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    # Free ports, so that the test runs beside a developer's own `make run`; the printout names them.
    env = {
        **os.environ,
        "FLUXDEPOT_GRPC__LISTEN": "127.0.0.1:0",
        "FLUXDEPOT_SFTP__LISTEN": "127.0.0.1:0",
        "FLUXDEPOT_METRICS__LISTEN": "127.0.0.1:0",
        "FLUXDEPOT_HTTP__LISTEN": "127.0.0.1:0",
        "HOME": str(tmp_path),  # sftp's known_hosts
    }
    run = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=_read, args=(s, lines), daemon=True)
        for s, lines in ((run.stdout, out), (run.stderr, err))
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 600
        while not any("Stop with Ctrl-C." in line for line in err):
            assert run.poll() is None, "make run ended:\n" + "\n".join(out[-20:] + err[-20:])
            assert time.monotonic() < deadline, "not ready:\n" + "\n".join(err[-20:])
            time.sleep(0.2)
        printed = "\n".join(err)
        assert "Warning" not in printed and "warning" not in "\n".join(out), printed

        commands = _printed_commands(printed)
        deposit = sh(f"{commands['export']}\n{commands['deposit']}", clone, 300)
        assert deposit.returncode == 1, deposit.stderr  # the printed example includes rejected invoices
        assert re.search(r"\b15 deposited, 0 refused\b", deposit.stdout), deposit.stdout  # ok/ and rejected/

        put = sh(commands["sftp put"], clone, 60)
        assert put.returncode == 0, put.stderr
        reports = clone / "var" / "sftp" / "partners" / "AAA001" / "out"
        deadline = time.monotonic() + 120
        while not list(reports.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        listed = sh(commands["sftp ls"], clone, 60)
        assert listed.returncode == 0 and "out/" in listed.stdout, listed.stderr
        (report,) = [p for p in reports.iterdir() if not p.name.startswith(".")]
        text = report.read_text(encoding="utf-8")
        assert "<FileName>ubl_by_sftp.xml</FileName>" in text and "<Status>INTEGRATED</Status>" in text, text
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C reaches make and the daemon, as in a terminal
        run.wait(timeout=120)
        for reader in readers:
            reader.join(timeout=10)
    logs = "\n".join(out + err)
    assert '"event": "shutdown_complete"' in logs or "shutdown_complete" in logs, logs[-2000:]
    assert "Traceback" not in logs, logs[-4000:]


def _read(stream: TextIO, lines: list[str]) -> None:
    with stream:
        for line in stream:
            lines.append(line.rstrip("\n"))


def _printed_commands(printed: str) -> dict[str, str]:
    """The commands of the demo printout, by what they do (a command continued with ``\\`` is joined)."""
    text = printed.replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return {
        "export": next(line for line in lines if line.startswith("export FLUXDEPOT_TOKEN=")),
        "deposit": next(line for line in lines if " deposit --wait " in line),
        "sftp put": next(line for line in lines if line.startswith('echo "put ')),
        "sftp ls": next(line for line in lines if line.startswith('echo "ls out/"')),
    }
