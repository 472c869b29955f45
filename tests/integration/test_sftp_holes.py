"""SFTP writes with holes: cheap bookkeeping (another partner is not slowed down) and a cap on the holes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest

from gateway.sftp_server import SftpSettings
from tests.harness import REPO
from tests.integration.sftp_support import (
    FAST,
    SftpEnv,
    asyncssh_connect,
    in_thread,
    paramiko_sftp,
    sftp_env,
    sftp_host_keys,
)

__all__ = ["sftp_env", "sftp_host_keys"]  # fixtures used by these tests

GAPPED_WRITES = 40_000


@pytest.fixture
def sftp_settings(sftp_host_keys: Path) -> SftpSettings:
    """The hole cap at exactly the number of gapped writes: each of them is accepted, one more is not."""
    return replace(FAST, host_keys_dir=sftp_host_keys, max_upload_holes=GAPPED_WRITES)


async def flows(env: SftpEnv) -> list[str]:
    return await env.harness.store.all_flow_numbers()


@pytest.mark.slow  # ~15 s each: 40,000 writes through a real client
@pytest.mark.parametrize("in_flight", [64, 4096], ids=["64_in_flight", "flood"])
async def test_gapped_writes_do_not_stall_another_partner(sftp_env: SftpEnv, in_flight: int) -> None:
    """40,000 one-byte writes each leaving a hole (AAA001, a real asyncssh client in its own process, with
    64 requests in flight as OpenSSH's sftp keeps, or 4096: a flood the server reads in bursts) are all
    accepted up to the cap while BBB002's requests on another connection are answered with a p99 latency
    under 100 ms; the write past the cap fails with the documented error (SSH_FX_FAILURE, "too many
    holes"), so does the close, and nothing is deposited or left on disk."""
    async with await asyncssh_connect(sftp_env, "BBB002") as conn, conn.start_sftp_client() as sftp:
        await sftp.stat("/in")
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.sftp_gapped_client", str(sftp_env.port),
            str(sftp_env.keys["AAA001"]), "/in/gaps.xml", str(GAPPED_WRITES), str(in_flight),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        )  # fmt: skip
        done = asyncio.ensure_future(writer.communicate())
        latencies_ms: list[float] = []
        while not done.done():
            started = time.perf_counter()
            await sftp.stat("/in")
            latencies_ms.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)
        out, err = await done
    assert writer.returncode == 0, err.decode()
    result = json.loads(out)
    p99_ms = statistics.quantiles(latencies_ms, n=100)[98]
    median_ms, max_ms = statistics.median(latencies_ms), max(latencies_ms)
    print(
        f"\n{GAPPED_WRITES} gapped writes ({in_flight} in flight) in {result['elapsed_s']} s; other partner:"
        f" {len(latencies_ms)} requests, median {median_ms:.1f} ms, p99 {p99_ms:.1f} ms, max {max_ms:.1f} ms"
    )
    assert len(latencies_ms) >= 100
    assert p99_ms < 100
    assert result["written"] == GAPPED_WRITES, result["first_error"]
    for error in (result["extra_write_error"], result["close_error"]):
        assert error is not None and error["code"] == asyncssh.FX_FAILURE
        assert error["reason"].startswith("too many holes")
    assert await flows(sftp_env) == []
    assert list(sftp_env.folders.uploads.iterdir()) == []


async def test_the_hole_cap_refuses_the_write_and_drops_the_upload(sftp_env: SftpEnv) -> None:
    """With ``max_upload_holes = 3``, writes that fill or extend what is written are accepted at the cap;
    the write opening a fourth hole fails with SSH_FX_FAILURE "too many holes: ...", later writes and the
    close fail the same way, the upload no longer appears in in/, and nothing is deposited."""
    await sftp_env.restart_server(replace(sftp_env.settings, max_upload_holes=3))
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        f = await sftp.open("/in/capped.xml", "wb")
        for offset in (1, 3, 5):  # holes at 0, 2 and 4
            await f.write(b"x", offset)
        await f.write(b"xx", 6)  # extends the last written range: still three holes
        await f.write(b"x", 2)  # fills a hole: two left
        await f.write(b"x", 9)  # a third hole again (at 8)
        assert "capped.xml" in await sftp.listdir("/in")
        with pytest.raises(asyncssh.SFTPFailure, match=r"^too many holes: .*more than 3") as refused:
            await f.write(b"x", 11)
        assert refused.value.code == asyncssh.FX_FAILURE
        assert "capped.xml" not in await sftp.listdir("/in")
        with pytest.raises(asyncssh.SFTPFailure, match=r"^too many holes"):
            await f.write(b"x", 0)
        with pytest.raises(asyncssh.SFTPFailure, match=r"^too many holes"):
            await f.close()
    assert await flows(sftp_env) == []
    assert list(sftp_env.folders.uploads.iterdir()) == []


async def test_holes_filled_in_any_order_make_a_complete_upload(sftp_env: SftpEnv) -> None:
    """Blocks written backwards, then the holes between them filled (paramiko), make one complete upload
    that is deposited byte for byte: the interval bookkeeping merges neighbours on both sides."""
    content = bytes(range(256)) * 40  # 10,240 bytes in 40 blocks of 256
    blocks = [content[i : i + 256] for i in range(0, len(content), 256)]
    transport, sftp = await in_thread(paramiko_sftp, sftp_env.port, "AAA001", sftp_env.keys["AAA001"])
    try:
        f = await in_thread(sftp.open, "/in/IN_DP_E1_UBL_INVOICE/reordered.xml", "wb")
        for order in (range(len(blocks) - 1, -1, -2), range(0, len(blocks), 2)):  # odd blocks, then even ones
            for i in order:
                await in_thread(f.seek, i * 256)
                await in_thread(f.write, blocks[i])
        await in_thread(f.close)
    finally:
        transport.close()
    [number] = await flows(sftp_env)
    flow = await sftp_env.harness.store.get_flow(number)
    assert flow is not None
    assert (flow.size_bytes, flow.sha256) == (len(content), hashlib.sha256(content).hexdigest())
