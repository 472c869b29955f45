"""SFTP authentication: keys and passwords, uniform rejections, lockouts, and nothing but SFTP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import asyncssh
import paramiko
import pytest

from gateway.sftp_server import SftpSettings, start_sftp_server
from tests.integration.sftp_support import (
    BBB002_PASSWORD,
    SftpEnv,
    asyncssh_connect,
    in_thread,
    openssh_sftp,
    paramiko_sftp,
    sftp_env,
    sftp_host_keys,
)

__all__ = ["sftp_env", "sftp_host_keys"]  # fixtures used by these tests


@pytest.fixture
def sftp_settings(sftp_host_keys: Path) -> SftpSettings:
    """Three failures lock a partner for one second (the portal's 5 failures, 1 hour, made fast)."""
    return SftpSettings(
        auth_delay_s=0.05,
        rsa_host_key=False,
        host_keys_dir=sftp_host_keys,
        max_auth_failures=3,
        lockout_s=1.0,
    )


async def test_key_auth_with_the_three_clients(sftp_env: SftpEnv) -> None:
    """The demo partner logs in with its key from OpenSSH's sftp, paramiko and asyncssh; sees in/ and out/."""
    rc, out, err = await openssh_sftp(sftp_env, "ls /\n")
    assert rc == 0, err
    assert "/in" in out.split() and "/out" in out.split()

    transport, sftp = await in_thread(paramiko_sftp, sftp_env.port, "AAA001", sftp_env.keys["AAA001"])
    try:
        assert sorted(await in_thread(sftp.listdir, "/")) == ["in", "out"]
    finally:
        transport.close()

    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        assert sorted(await sftp.listdir("/")) == [".", "..", "in", "out"]


async def test_password_auth_when_enabled(sftp_env: SftpEnv) -> None:
    """With passwords enabled, a partner with a password hash logs in with it; a wrong one or a partner
    without a password is refused."""
    await sftp_env.restart_server(replace(sftp_env.settings, password_auth=True))
    transport, sftp = await in_thread(paramiko_sftp, sftp_env.port, "BBB002", None, BBB002_PASSWORD)
    try:
        assert sorted(await in_thread(sftp.listdir, "/")) == ["in", "out"]
    finally:
        transport.close()
    async with await asyncssh_connect(sftp_env, "BBB002", password=BBB002_PASSWORD) as conn:
        assert conn.get_extra_info("username") == "BBB002"
    with pytest.raises(paramiko.AuthenticationException):
        await in_thread(paramiko_sftp, sftp_env.port, "BBB002", None, "wrong password")
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh_connect(sftp_env, "AAA001", password=BBB002_PASSWORD)  # AAA001 has no password


async def test_passwords_are_off_by_default(sftp_env: SftpEnv) -> None:
    """Without ``password_auth`` the right password is refused: keys only."""
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh_connect(sftp_env, "BBB002", password=BBB002_PASSWORD)


async def test_wrong_key_and_unknown_user_get_the_same_answer_in_the_same_time(sftp_env: SftpEnv) -> None:
    """A known partner with another partner's key and an unknown user are both refused, after the same
    delay, with the same error; OpenSSH's sftp fails too."""
    timings = {}
    for case, user, key in (
        ("wrong_key", "AAA001", sftp_env.keys["BBB002"]),
        ("unknown_user", "ZZZ999", sftp_env.keys["AAA001"]),
        ("not_a_partner_code", "root", sftp_env.keys["AAA001"]),
    ):
        started = time.monotonic()
        with pytest.raises(asyncssh.PermissionDenied) as refused:
            await asyncssh_connect(sftp_env, user, key)
        timings[case] = (time.monotonic() - started, (type(refused.value), refused.value.code))
    answers = {answer for _, answer in timings.values()}
    assert len(answers) == 1
    durations = [d for d, _ in timings.values()]
    assert min(durations) >= sftp_env.settings.auth_delay_s
    assert max(durations) - min(durations) < 0.15
    rc, _, err = await openssh_sftp(sftp_env, "ls\n", "AAA001", sftp_env.keys["BBB002"])
    assert rc != 0 and "Permission denied" in err


async def test_lockout_after_repeated_failures_then_unlock(sftp_env: SftpEnv) -> None:
    """After ``max_auth_failures`` failed connections the partner is refused even with its right key, another
    partner is not affected, and the lock lifts after ``lockout_s``."""
    for _ in range(3):
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh_connect(sftp_env, "AAA001", sftp_env.keys["BBB002"])
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh_connect(sftp_env, "AAA001")  # the right key, but locked
    async with await asyncssh_connect(sftp_env, "BBB002") as conn:
        assert conn.get_extra_info("username") == "BBB002"
    await asyncio.sleep(1.1)
    async with await asyncssh_connect(sftp_env, "AAA001") as conn:
        assert conn.get_extra_info("username") == "AAA001"


async def test_no_shell_exec_or_forwarding(sftp_env: SftpEnv) -> None:
    """Only the SFTP subsystem is served: exec, shell, scp and TCP forwarding are all refused."""
    async with await asyncssh_connect(sftp_env) as conn:
        for command in ("id", "scp -t /in/x.xml", None):  # None: an interactive shell
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.run(command)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", sftp_env.port)
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)


async def test_a_lockout_holds_on_every_server_sharing_the_store(sftp_env: SftpEnv) -> None:
    """Two SFTP servers on one store (two daemons behind a load balancer): failures through the first lock
    the partner on the second too, and the lock survives a restart of the first."""
    other, other_port = await start_sftp_server(
        sftp_env.harness.store, sftp_env.harness.deposits, sftp_env.outbox, sftp_env.settings, ("127.0.0.1", 0)
    )
    try:
        for _ in range(3):
            with pytest.raises(asyncssh.PermissionDenied):
                await asyncssh_connect(sftp_env, "AAA001", sftp_env.keys["BBB002"])
        await sftp_env.restart_server()
        for port in (other_port, sftp_env.port):
            with pytest.raises(asyncssh.PermissionDenied):
                await asyncssh.connect(
                    "127.0.0.1", port, username="AAA001", client_keys=[str(sftp_env.keys["AAA001"])],
                    known_hosts=None, agent_path=None,
                )  # fmt: skip
    finally:
        other.close()
        await other.wait_closed()
