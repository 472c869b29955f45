"""A partner's client writing one-byte writes with a gap after each (a hole per write), in its own process.

Run by ``test_sftp_holes`` as ``python -m tests.integration.sftp_gapped_client PORT KEY PATH WRITES
IN_FLIGHT`` so that the client's own work does not share the server's event loop (nor its GIL): the test
then times another partner's requests against the server alone. It writes ``WRITES`` bytes at offsets 1,
3, 5, ... with ``IN_FLIGHT`` requests outstanding (OpenSSH's ``sftp`` keeps 64), then one more gapped
write and a close, and prints one JSON line: how many writes succeeded, how long they took, and the SFTP
error (code and message) of the extra write and of the close, if any.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import asyncssh


def _error(exc: asyncssh.SFTPError | None) -> dict[str, Any] | None:
    return None if exc is None else {"code": exc.code, "reason": exc.reason}


async def _write(f: asyncssh.SFTPClientFile, offset: int) -> asyncssh.SFTPError | None:
    try:
        await f.write(b"x", offset)
    except asyncssh.SFTPError as exc:
        return exc
    return None


async def gapped_writes(port: int, key: str, path: str, writes: int, in_flight: int) -> dict[str, Any]:
    async with (
        asyncssh.connect(
            "127.0.0.1", port, username="AAA001", client_keys=[key], known_hosts=None, agent_path=None
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        f = await sftp.open(path, "wb")
        started = time.perf_counter()
        failed: list[asyncssh.SFTPError] = []
        for first in range(0, writes, in_flight):
            batch = range(first, min(first + in_flight, writes))
            failed += [e for e in await asyncio.gather(*(_write(f, 2 * i + 1) for i in batch)) if e is not None]
        elapsed_s = time.perf_counter() - started
        extra = await _write(f, 2 * writes + 1)
        close_error = None
        try:
            await f.close()
        except asyncssh.SFTPError as exc:
            close_error = exc
    return {
        "written": writes - len(failed),
        "first_error": _error(failed[0] if failed else None),
        "elapsed_s": round(elapsed_s, 3),
        "extra_write_error": _error(extra),
        "close_error": _error(close_error),
    }


if __name__ == "__main__":
    port, key, path, writes, in_flight = sys.argv[1:6]
    print(json.dumps(asyncio.run(gapped_writes(int(port), key, path, int(writes), int(in_flight)))))
