"""The daemon refuses to start, in one line and with a documented exit code, rather than start wrong:
a data folder held by another daemon, a listener's port in use, a misspelled environment variable; and
an offline admin command refuses to write a store that a live daemon holds."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from clients.client import Client
from tests.e2e.daemon import EXAMPLE_CONFIG, REPO, start_daemon
from tests.e2e.test_daemon import run_cli

EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 69, 75, 78
INVOICE = REPO / "config/demo/invoices/ok/ubl_service_code.xml"


def serve(data: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run ``fluxdepot serve`` on free ports (overridable by ``flags``); its exit code and stderr lines."""
    defaults = {
        "--grpc-listen": "127.0.0.1:0",
        "--sftp-listen": "127.0.0.1:0",
        "--metrics-listen": "127.0.0.1:0",
        "--http-listen": "127.0.0.1:0",
    }
    given = dict(zip(flags[::2], flags[1::2], strict=True))
    args = [a for pair in {**defaults, **given}.items() for a in pair]
    result = run_cli("serve", "--config", str(EXAMPLE_CONFIG), "--data-dir", str(data), *args, env=env)
    return result.returncode, result.stderr.splitlines()


@contextmanager
def taken_port() -> Iterator[str]:
    """A loopback port held by a plain listening socket (another program)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_a_second_daemon_on_the_same_data_folder_exits_75_naming_the_holder(tmp_path: Path) -> None:
    """A second daemon on a held data folder exits at once with one line naming the first one's pid, and the
    first keeps serving its flows."""
    first = start_daemon(tmp_path / "data")
    try:
        code, err = serve(tmp_path / "data")
        assert code == EX_TEMPFAIL, err
        assert err == [
            f"fluxdepot: error: data folder {tmp_path / 'data'} is in use by fluxdepot "
            f"(pid {first.proc.pid}); stop it first, or give this daemon another --data-dir"
        ]
        with Client(first.ready["grpc"], token="demo-technical-token") as fd:
            assert fd.deposit_file(INVOICE).flow_number
    finally:
        first.signal(signal.SIGTERM)
        assert first.wait(60) == 0
    code, err = serve(tmp_path / "other", "--grpc-listen", "not-an-address")  # the lock is free again
    assert code == EX_CONFIG


@pytest.mark.parametrize("section", ["grpc", "http", "sftp", "metrics"])
def test_a_listener_port_in_use_is_one_line_and_exit_69(tmp_path: Path, section: str) -> None:
    """Each listener whose port is taken gives one line naming the address, the file key, the variable and
    the flag, and exit 69; the daemon stops what it had started (no other output on stderr)."""
    with taken_port() as address:
        code, err = serve(tmp_path / "data", f"--{section}-listen", address)
    assert code == EX_UNAVAILABLE, err
    key = f"[{section}] listen, FLUXDEPOT_{section.upper()}__LISTEN, --{section}-listen"
    assert err == [f"fluxdepot: error: cannot listen on {address} ({key}): address already in use"]


def test_grpc_does_not_share_its_port_with_another_daemon(tmp_path: Path) -> None:
    """Two daemons on two data folders cannot both listen on one gRPC port (grpc would share it)."""
    first = start_daemon(tmp_path / "one")
    try:
        code, err = serve(tmp_path / "two", "--grpc-listen", first.ready["grpc"])
        assert code == EX_UNAVAILABLE
        assert err[-1].endswith("address already in use")
    finally:
        first.signal(signal.SIGTERM)
        assert first.wait(60) == 0


def test_a_misspelled_environment_variable_is_a_configuration_error(tmp_path: Path) -> None:
    """``FLUXDEPOT_LOGGIN__LEVEL`` names no setting: exit 78 naming it, before anything is created."""
    env = {**os.environ, "FLUXDEPOT_LOGGIN__LEVEL": "debug", "FLUXDEPOT_GRPC__LISTN": "127.0.0.1:1"}
    code, err = serve(tmp_path / "data", env=env)
    assert code == EX_CONFIG
    assert "  FLUXDEPOT_GRPC__LISTN: no such setting (variables are FLUXDEPOT_<SECTION>__<KEY>)" in err
    assert "  FLUXDEPOT_LOGGIN__LEVEL: no such setting (variables are FLUXDEPOT_<SECTION>__<KEY>)" in err
    assert len(err) == 3, err  # the heading and one line each: pydantic's own "extra input" is not repeated
    assert not (tmp_path / "data").exists()


def test_admin_restore_refuses_a_live_daemon_and_no_flow_is_lost(tmp_path: Path) -> None:
    """``admin restore --force`` (and the other writing commands) refuse while the daemon holds the data
    folder: the flow acknowledged after the backup is still there, during and after a restart."""
    data = tmp_path / "data"
    daemon = start_daemon(data)
    try:
        assert admin(data, "backup", str(tmp_path / "backup"))[0] == 0  # online by design
        with Client(daemon.ready["grpc"], token="demo-technical-token") as fd:
            acknowledged = fd.deposit_file(INVOICE).flow_number
        for task in (["restore", "--force", str(tmp_path / "backup")], ["purge"], ["migrate"]):
            code, err = admin(data, *task)
            assert code == EX_TEMPFAIL, (task, err)
            assert f"is in use by fluxdepot (pid {daemon.proc.pid}); stop the daemon first" in err
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    again = start_daemon(data)
    try:
        with Client(again.ready["grpc"], token="demo-manager-token") as fd:
            assert fd.get_flow(acknowledged).flow_number == acknowledged
    finally:
        again.signal(signal.SIGTERM)
        assert again.wait(60) == 0
    assert admin(data, "restore", "--force", str(tmp_path / "backup"))[0] == 0  # stopped: allowed


def admin(data: Path, *args: str) -> tuple[int, str]:
    result = run_cli("admin", "--config", str(EXAMPLE_CONFIG), "--data-dir", str(data), *args)
    return result.returncode, result.stdout + result.stderr
