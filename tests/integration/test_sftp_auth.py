"""SFTP authentication: keys and passwords, uniform rejections, lockouts, and nothing but SFTP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import asyncssh
import paramiko
import pytest

from gateway.sftp_server import SftpSettings
from tests.integration.sftp_support import (
    BBB002_PASSWORD,
    SftpEnv,
    asyncssh_connect,
    in_thread,
    openssh_sftp,
    paramiko_sftp,
    sftp_env,
    sftp_host_keys,
    start_server,
)

__all__ = ["sftp_env", "sftp_host_keys"]  # fixtures used by these tests


@pytest.fixture
def sftp_settings(sftp_host_keys: Path) -> SftpSettings:
    """Three failures lock a (partner, address) pair, ten a partner everywhere, for one second at first
    (the defaults, 5 and 50 failures and 1 minute doubling up to 1 hour, made fast)."""
    return SftpSettings(
        auth_delay_s=0.05,
        rsa_host_key=False,
        host_keys_dir=sftp_host_keys,
        max_auth_failures=3,
        max_partner_failures=10,
        first_lockout_s=1.0,
        lockout_s=30.0,
    )


class PasswordGuesser(asyncssh.SSHClient):
    """An asyncssh client offering its passwords one after the other on one connection."""

    def __init__(self, passwords: list[str]) -> None:
        self._passwords = iter(passwords)

    def password_auth_requested(self) -> str | None:
        return next(self._passwords, None)


async def refused(
    env: SftpEnv, user: str, source: str, *, keys: list[Path] | None = None, passwords: list[str] | None = None
) -> None:
    """One connection from ``source`` offering ``keys`` (or ``passwords``) in turn, every one refused."""
    with pytest.raises(asyncssh.PermissionDenied):
        if passwords is not None:
            await asyncssh.connect(
                "127.0.0.1", env.port, username=user, client_keys=None, known_hosts=None, agent_path=None,
                preferred_auth="password", local_addr=(source, 0), client_factory=lambda: PasswordGuesser(passwords),
            )  # fmt: skip
        else:
            await asyncssh.connect(
                "127.0.0.1", env.port, username=user, client_keys=[str(k) for k in keys or []], known_hosts=None,
                agent_path=None, preferred_auth="publickey", local_addr=(source, 0),
            )  # fmt: skip


async def logs_in(env: SftpEnv, user: str = "AAA001", source: str = "127.0.0.1") -> bool:
    """Whether ``user`` gets in with its valid key from ``source``."""
    try:
        async with await asyncssh_connect(env, user, source=source) as conn:
            return bool(conn.get_extra_info("username") == user)
    except asyncssh.PermissionDenied:
        return False


def wrong_keys(tmp_path: Path, count: int) -> list[Path]:
    """``count`` fresh ed25519 keys that no partner has."""
    paths = []
    for n in range(count):
        path = tmp_path / f"wrong_{n}_ed25519"
        if not path.exists():
            path.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
            path.chmod(0o600)
        paths.append(path)
    return paths


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
    """After ``max_auth_failures`` failed connections from one address the partner is refused from there even
    with its right key, another partner from the same address is not affected, and the lock lifts after
    ``first_lockout_s``."""
    for _ in range(3):
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh_connect(sftp_env, "AAA001", sftp_env.keys["BBB002"])
    assert not await logs_in(sftp_env)  # the right key, but locked
    assert await logs_in(sftp_env, "BBB002")
    await asyncio.sleep(1.1)
    assert await logs_in(sftp_env)


async def test_wrong_keys_from_another_address_do_not_lock_out_the_partner(sftp_env: SftpEnv, tmp_path: Path) -> None:
    """Wrong keys for AAA001 from 127.0.0.2, far past its pair's limit, lock AAA001 at 127.0.0.2 only: its
    valid key is refused there, accepted from 127.0.0.1 by asyncssh and by OpenSSH's sftp."""
    for key in wrong_keys(tmp_path, 6):
        await refused(sftp_env, "AAA001", "127.0.0.2", keys=[key])
    assert not await logs_in(sftp_env, source="127.0.0.2")
    assert await logs_in(sftp_env, source="127.0.0.1")
    rc, _, err = await openssh_sftp(sftp_env, "ls /\n", "AAA001", None, "-o", "BindAddress=127.0.0.1")
    assert rc == 0, err


async def test_each_wrong_key_counts_not_each_connection(sftp_env: SftpEnv, tmp_path: Path) -> None:
    """One connection offering three wrong keys in turn spends the pair's three failures: the valid key from
    that address is refused next, although only one connection failed."""
    await refused(sftp_env, "AAA001", "127.0.0.2", keys=wrong_keys(tmp_path, 3))
    assert not await logs_in(sftp_env, source="127.0.0.2")
    assert await logs_in(sftp_env, source="127.0.0.3")


@pytest.mark.parametrize("credential", ["key", "password"])
async def test_parallel_connections_cannot_pass_the_address_budget(
    sftp_env: SftpEnv, tmp_path: Path, credential: str
) -> None:
    """15 parallel connections from 127.0.0.2, each offering 5 wrong keys (or passwords): 75 guesses, of
    which only the pair's budget (5) counts. Proof by the partner's every-address limit of 10: BBB002 still
    logs in from 127.0.0.1, then 4 more failures from 127.0.0.3 leave it open, and one from 127.0.0.4
    locks it everywhere (5 + 4 + 1 = 10)."""
    settings = replace(sftp_env.settings, password_auth=True, max_auth_failures=5, max_partner_failures=10)
    await sftp_env.restart_server(settings)
    keys = wrong_keys(tmp_path, 5)
    guesses = [f"guess {n}" for n in range(5)]

    async def attack(source: str, tries: int) -> None:
        if credential == "key":
            await refused(sftp_env, "BBB002", source, keys=keys[:tries])
        else:
            await refused(sftp_env, "BBB002", source, passwords=guesses[:tries])

    await asyncio.gather(*(attack("127.0.0.2", 5) for _ in range(15)))
    assert not await logs_in(sftp_env, "BBB002", "127.0.0.2")
    assert await logs_in(sftp_env, "BBB002", "127.0.0.1")
    await attack("127.0.0.3", 4)
    assert await logs_in(sftp_env, "BBB002", "127.0.0.1")
    await attack("127.0.0.4", 1)
    assert not await logs_in(sftp_env, "BBB002", "127.0.0.1")
    assert await logs_in(sftp_env, "AAA001", "127.0.0.2")


async def test_lockouts_back_off(sftp_env: SftpEnv, tmp_path: Path) -> None:
    """The pair's second lock lasts twice its first (1 s, then 2 s): refused 1.4 s into the second lock,
    in again after 2.2 s."""
    await sftp_env.restart_server(replace(sftp_env.settings, max_auth_failures=2))
    keys = wrong_keys(tmp_path, 2)
    await refused(sftp_env, "AAA001", "127.0.0.2", keys=keys)
    assert not await logs_in(sftp_env, source="127.0.0.2")  # refused while locked: neither counted nor forgiven
    await asyncio.sleep(1.2)
    await refused(sftp_env, "AAA001", "127.0.0.2", keys=keys)  # counted again: the lock had ended
    second_lock = time.monotonic()
    await asyncio.sleep(1.4)
    assert not await logs_in(sftp_env, source="127.0.0.2")
    await asyncio.sleep(max(0.0, second_lock + 2.2 - time.monotonic()))
    assert await logs_in(sftp_env, source="127.0.0.2")


async def test_the_partner_limit_locks_every_address(sftp_env: SftpEnv, tmp_path: Path) -> None:
    """Wrong keys for AAA001 from several addresses, none past its pair's limit (3), add up to the partner's
    (10): AAA001 is then refused from an address that never failed; BBB002 is not affected."""
    keys = wrong_keys(tmp_path, 2)
    for n in range(5):
        await refused(sftp_env, "AAA001", f"127.0.1.{n}", keys=keys)
    assert not await logs_in(sftp_env, source="127.0.0.1")
    assert await logs_in(sftp_env, "BBB002", "127.0.0.1")


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
    the partner (from that address) on the second too, and the lock survives a restart of the first."""
    other, other_port = await start_server(sftp_env.harness, sftp_env.outbox, sftp_env.settings, ("127.0.0.1", 0))
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
