"""SFTP intake: an upload closed complete is one deposit; nothing else is, and nothing leaves the root."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import struct
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest

from engine.model import Channel, Syntax
from engine.status import FlowStatus
from gateway.outbox import report_name
from tests.harness import DEMO_PROVIDER_SIRET, REPO
from tests.integration.sftp_support import (
    SftpEnv,
    asyncssh_connect,
    eventually,
    in_thread,
    kill_group,
    openssh_sftp,
    paramiko_sftp,
    read_xml,
    sftp_env,
    sftp_host_keys,
    sftp_settings,
    start_openssh_sftp,
)

__all__ = ["sftp_env", "sftp_host_keys", "sftp_settings"]  # fixtures used by these tests

OK_INVOICE = REPO / "config" / "demo" / "invoices" / "ok" / "ubl_service_code.xml"
NS = {"r": "urn:fluxdepot:integration-report:1"}


async def flows(env: SftpEnv) -> list[str]:
    return await env.harness.store.all_flow_numbers()


def sftp_packet(kind: int, body: bytes, request_id: int | None = None) -> bytes:
    """One SFTP v3 packet as a client sends it (``request_id`` None: INIT, which has none)."""
    payload = bytes([kind]) + (b"" if request_id is None else struct.pack(">I", request_id)) + body
    return struct.pack(">I", len(payload)) + payload


def sftp_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


async def raw_upload(
    conn: asyncssh.SSHClientConnection, name: str, content: bytes
) -> tuple[asyncssh.SSHWriter[bytes], bytes]:
    """Open an SFTP session on the wire, open ``/in/<name>`` and write ``content``, as a client would,
    without closing it; returns the channel's writer and the file handle."""
    writer, reader, _ = await conn.open_session(subsystem="sftp", encoding=None)

    async def response() -> bytes:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        return await reader.readexactly(size)

    writer.write(sftp_packet(1, struct.pack(">I", 3)))  # INIT, version 3
    await response()
    flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
    writer.write(sftp_packet(3, sftp_string(f"/in/{name}".encode()) + struct.pack(">II", flags, 0), 1))  # OPEN
    opened = await response()
    assert opened[0] == 102, opened  # HANDLE
    handle = opened[9 : 9 + struct.unpack(">I", opened[5:9])[0]]
    writer.write(sftp_packet(6, sftp_string(handle) + struct.pack(">Q", 0) + sftp_string(content), 2))  # WRITE
    written = await response()
    assert written[0] == 101 and written[5:9] == b"\0\0\0\0", written  # STATUS OK
    return writer, handle


async def test_upload_becomes_one_deposit_and_its_report_appears_in_out(sftp_env: SftpEnv) -> None:
    """``put`` into in/ deposits one EDI flow for the partner's structure (syntax from the content); once
    final, its report is in out/ as <interface>_<partner>_<flow>.xml, which the partner reads and deletes."""
    rc, _, err = await openssh_sftp(sftp_env, f"put {OK_INVOICE} /in/\n")
    assert rc == 0, err
    [number] = await flows(sftp_env)
    flow = await sftp_env.harness.store.get_flow(number)
    assert flow is not None
    assert (flow.channel, flow.partner_code, flow.depositor) == (Channel.EDI, "AAA001", "partner:AAA001")
    assert (flow.issuer_siret, flow.file_name, flow.declared_syntax) == (
        DEMO_PROVIDER_SIRET,
        "ubl_service_code.xml",
        False,
    )
    assert flow.size_bytes == OK_INVOICE.stat().st_size

    name = f"FSO1100A_AAA001_{number}.xml"
    assert await sftp_env.settle() == [name]
    flow = await sftp_env.harness.store.get_flow(number)
    assert flow is not None and flow.status is FlowStatus.INTEGRATED and flow.return_flows == (name,)

    local = sftp_env.root / "collected.xml"
    rc, out, err = await openssh_sftp(sftp_env, f"ls /out\nget /out/{name} {local}\nrm /out/{name}\n")
    assert rc == 0, err
    assert name in out
    report = read_xml(local)
    assert report.findtext("r:FlowNumber", namespaces=NS) == number
    assert report.findtext("r:Status", namespaces=NS) == "INTEGRATED"
    assert report.findtext("r:PartnerCode", namespaces=NS) == "AAA001"
    assert report.findtext("r:Channel", namespaces=NS) == "EDI"
    assert sftp_env.out_files() == []


async def test_syntax_sub_folder_declares_the_syntax_and_paramiko_uploads_too(sftp_env: SftpEnv) -> None:
    """A file put in in/<SYNTAX>/ is deposited with that declared syntax (here by paramiko)."""
    transport, sftp = await in_thread(paramiko_sftp, sftp_env.port, "AAA001", sftp_env.keys["AAA001"])
    try:
        await in_thread(sftp.put, str(OK_INVOICE), "/in/IN_DP_E1_UBL_INVOICE/facture.xml")
    finally:
        transport.close()
    [number] = await flows(sftp_env)
    flow = await sftp_env.harness.store.get_flow(number)
    assert flow is not None
    assert (flow.syntax, flow.declared_syntax, flow.file_name) == (Syntax.UBL_INVOICE, True, "facture.xml")
    assert await sftp_env.settle() == [report_name(flow)]


async def test_interrupted_upload_deposits_nothing_and_leaves_nothing(sftp_env: SftpEnv) -> None:
    """An sftp client killed mid-transfer deposits nothing; its bytes vanish and in/ lists nothing."""
    big = sftp_env.root / "big.xml"
    big.write_bytes(os.urandom(4 * 1024 * 1024))
    proc = await start_openssh_sftp(sftp_env, f"put {big} /in/big.xml\n", "-l", "8000")  # ~1 MB/s

    async def spilled() -> bool:  # past 1 MiB the upload is in a hidden file under the data dir
        return any(sftp_env.folders.uploads.iterdir())

    await eventually(spilled)
    kill_group(proc)
    await proc.wait()

    async def gone() -> bool:
        return not any(sftp_env.folders.uploads.iterdir())

    await eventually(gone)
    assert await flows(sftp_env) == []
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        assert "big.xml" not in await sftp.listdir("/in")
    assert sftp_env.out_files() == []


async def test_an_upload_left_open_by_a_dead_sftp_program_deposits_nothing(sftp_env: SftpEnv) -> None:
    """The sftp program killed mid-transfer while its ssh child lives on: the channel is only half-closed
    (EOF, no close), the session ends with the upload open, and nothing is deposited."""
    big = sftp_env.root / "big.xml"
    big.write_bytes(os.urandom(4 * 1024 * 1024))
    proc = await start_openssh_sftp(sftp_env, f"put {big} /in/big.xml\n", "-l", "8000")  # ~1 MB/s
    try:

        async def spilled() -> bool:
            return any(sftp_env.folders.uploads.iterdir())

        await eventually(spilled)
        os.kill(proc.pid, signal.SIGKILL)  # the sftp program only: its ssh child sends EOF and stays
        await proc.wait()

        async def gone() -> bool:
            return not any(sftp_env.folders.uploads.iterdir())

        await eventually(gone)
        await asyncio.sleep(1.0)  # a deposit of what was uploaded would have been committed by now
        assert await flows(sftp_env) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            kill_group(proc)


async def test_a_close_request_sent_just_before_the_client_quits_is_a_deposit(sftp_env: SftpEnv) -> None:
    """A client that sends its close request and closes the channel at once, without waiting for the
    answer (some EDI clients do): the close was asked for, so the upload is deposited; an upload only
    written, then the channel half-closed (EOF), is not."""
    content = OK_INVOICE.read_bytes()
    async with await asyncssh_connect(sftp_env) as conn:
        writer, handle = await raw_upload(conn, "closed.xml", content)
        writer.write(sftp_packet(4, sftp_string(handle), 3))  # CLOSE, its answer never read
        writer.close()

        async def deposited() -> bool:
            return len(await flows(sftp_env)) == 1

        await eventually(deposited)
        writer, _ = await raw_upload(conn, "left-open.xml", content)
        writer.write_eof()
        await writer.channel.wait_closed()
    await asyncio.sleep(0.5)
    [number] = await flows(sftp_env)
    flow = await sftp_env.harness.store.get_flow(number)
    assert flow is not None and (flow.file_name, flow.size_bytes) == ("closed.xml", len(content))


async def test_write_with_a_hole_deposits_nothing(sftp_env: SftpEnv) -> None:
    """Closing a file whose bytes were not all written fails the close and deposits nothing."""
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        f = await sftp.open("/in/holes.xml", "wb")
        await f.write(b"<a/>", 0)
        await f.write(b"<b/>", 1000)
        with pytest.raises(asyncssh.SFTPFailure, match="no data at offset 4"):
            await f.close()
    assert await flows(sftp_env) == []


async def test_path_escapes_are_refused_with_clear_errors(sftp_env: SftpEnv) -> None:
    """'..' above the root, absolute paths outside in/ and out/, links, symlinks planted on disk, reads of
    in/, writes to out/, new folders and renames across in/ and out/ all fail with an SFTP error."""
    secret = sftp_env.root / "secret.txt"
    secret.write_text("not for partners")
    sftp_env.folders.create("AAA001")
    (sftp_env.out_dir() / "planted").symlink_to(secret)
    local = sftp_env.root / "x.xml"
    local.write_bytes(b"<x/>")
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="leave your root"):
            await sftp.get("../../../etc/passwd", str(sftp_env.root / "p"))
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="leave your root"):
            await sftp.listdir("/in/../..")
        with pytest.raises(asyncssh.SFTPNoSuchFile, match="only in/ and out/"):
            await sftp.get("/etc/passwd", str(sftp_env.root / "p"))
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.put(str(local), str(sftp_env.root / "escape.xml"))
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.get("/out/planted", str(sftp_env.root / "p"))
        assert "planted" not in await sftp.listdir("/out")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="links are not allowed"):
            await sftp.symlink("/etc/passwd", "/in/link.xml")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="links are not allowed"):
            await sftp.link("/in/x.xml.part", "/out/x.xml")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="read-only"):
            await sftp.put(str(local), "/out/x.xml")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="folders cannot be created"):
            await sftp.mkdir("/in/sub")
        await sftp.put(str(local), "/in/x.xml.part")
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="write-only"):
            await sftp.get("/in/x.xml.part", str(sftp_env.root / "p"))
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="within in/"):
            await sftp.rename("/in/x.xml.part", "/out/x.xml")
        with pytest.raises(asyncssh.SFTPNoSuchFile, match="only in/ and out/"):
            await sftp.rename("/in/x.xml.part", "/x.xml")
    assert not (sftp_env.root / "escape.xml").exists()
    assert await flows(sftp_env) == []
    rc, _, err = await openssh_sftp(sftp_env, "get /etc/passwd\n")
    assert rc != 0 and "not found" in err
    rc, _, err = await openssh_sftp(sftp_env, "cd ..\n")
    assert rc != 0


async def test_a_partner_never_reaches_another_partners_files(sftp_env: SftpEnv) -> None:
    """BBB002 cannot list, read or delete AAA001's report by any path; its own deposit reports to its out/."""
    rc, _, err = await openssh_sftp(sftp_env, f"put {OK_INVOICE} /in/\n")
    assert rc == 0, err
    [name] = await sftp_env.settle()
    async with await asyncssh_connect(sftp_env, "BBB002") as conn, conn.start_sftp_client() as sftp:
        assert await sftp.listdir("/out") == [".", ".."]
        for path in (f"/out/{name}", f"/AAA001/out/{name}", f"/partners/AAA001/out/{name}"):
            with pytest.raises(asyncssh.SFTPNoSuchFile):
                await sftp.get(path, str(sftp_env.root / "stolen"))
            with pytest.raises(asyncssh.SFTPNoSuchFile):
                await sftp.remove(path)
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.get(f"/out/../../AAA001/out/{name}", str(sftp_env.root / "stolen"))
        await sftp.put(str(OK_INVOICE), "/in/mine.xml")
    assert sftp_env.out_files() == [name]
    await sftp_env.harness.process_all()
    await sftp_env.outbox.drain()
    assert len(sftp_env.out_files("BBB002")) == 1
    assert sftp_env.out_files() == [name]


async def test_quota_on_pending_files_and_bytes(sftp_env: SftpEnv) -> None:
    """Held uploads count against the partner's quota: past it, the upload fails and out/ gets a reject."""
    await sftp_env.restart_server(replace(sftp_env.settings, quota_files=2, quota_bytes=10_000))
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        for n in range(2):
            async with sftp.open(f"/in/part{n}.xml.part", "wb") as f:
                await f.write(b"x" * 1000)
        assert sorted(await sftp.listdir("/in"))[-2:] == ["part0.xml.part", "part1.xml.part"]
        with pytest.raises(asyncssh.SFTPError, match="at most 2 pending files"):
            await sftp.open("/in/third.xml", "wb")
        await sftp.remove("/in/part1.xml.part")
        f = await sftp.open("/in/big.xml", "wb")
        with pytest.raises(asyncssh.SFTPError, match="at most 10000 pending bytes"):
            await f.write(b"y" * 9500, 0)
        with pytest.raises(asyncssh.SFTPError):
            await f.close()
    assert await flows(sftp_env) == []
    rejects = [n for n in sftp_env.out_files() if n.startswith("REJECT_AAA001_")]
    assert len(rejects) == 2
    reasons = {read_xml(sftp_env.out_dir() / n)[2].text for n in rejects}
    assert reasons == {"QUOTA_FILES", "QUOTA_BYTES"}


async def test_flow_size_limit_applies_while_writing(sftp_env: SftpEnv) -> None:
    """The write that passes max_flow_bytes fails at once; nothing is deposited; out/ gets a reject."""
    await sftp_env.restart_server(replace(sftp_env.settings, max_flow_bytes=50_000))
    big = sftp_env.root / "big.xml"
    big.write_bytes(b"z" * 200_000)
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPFailure, match="maximum flow size of 50000 bytes"):
            await sftp.put(str(big), "/in/big.xml", block_size=16384)
        assert "big.xml" not in await sftp.listdir("/in")
    assert await flows(sftp_env) == []
    [reject] = sftp_env.out_files()
    root = read_xml(sftp_env.out_dir() / reject)
    assert [child.text for child in root][:3] == ["AAA001", "big.xml", "FLOW_TOO_LARGE"]
    assert not any(sftp_env.folders.uploads.iterdir())


async def test_bad_name_is_refused_with_a_reject_report(sftp_env: SftpEnv) -> None:
    """A name with control characters is refused at open and reported in out/."""
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPFailure, match="control characters"):
            await sftp.open("/in/bad\x01name.xml", "wb")
    [reject] = sftp_env.out_files()
    assert read_xml(sftp_env.out_dir() / reject)[1].text == "bad\\x01name.xml"


async def test_temporary_names_are_deposited_only_when_renamed_into_place(sftp_env: SftpEnv) -> None:
    """``.part``/``.tmp``/hidden uploads are held and listed as pending; a rename into place (here into a
    syntax sub-folder) deposits them under the new name; a rename to another temporary name does not."""
    rc, out, err = await openssh_sftp(
        sftp_env,
        f"put {OK_INVOICE} /in/facture.xml.part\n"
        f"put {OK_INVOICE} /in/.hidden.xml\n"
        "ls /in\n"
        "rename /in/.hidden.xml /in/still.tmp\n",
    )
    assert rc == 0, err
    assert "facture.xml.part" in out and ".hidden.xml" not in out.split()  # ls hides dot files itself
    assert await flows(sftp_env) == []
    rc, out, err = await openssh_sftp(
        sftp_env,
        "rename /in/facture.xml.part /in/IN_DP_E1_UBL_INVOICE/facture.xml\nrename /in/still.tmp /in/b.xml\nls /in\n",
    )
    assert rc == 0, err
    numbers = await flows(sftp_env)
    assert len(numbers) == 2
    records = [await sftp_env.harness.store.get_flow(n) for n in numbers]
    assert sorted((r.file_name, r.declared_syntax) for r in records if r) == [
        ("b.xml", False),
        ("facture.xml", True),
    ]
    listing = out.split("sftp> ls /in")[1]
    assert "facture" not in listing and "still.tmp" not in listing
    assert not any(sftp_env.folders.inbox("AAA001").glob("*.*"))
    assert not any(sftp_env.folders.inbox("AAA001", Syntax.UBL_INVOICE).iterdir())


async def test_close_is_acknowledged_only_after_the_deposit_is_durable(sftp_env: SftpEnv, tmp_path: Path) -> None:
    """When the client's close returns, the flow is already committed (read back from the store)."""
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/in/durable.xml", "wb") as f:
            await f.write(OK_INVOICE.read_bytes())
        [number] = await flows(sftp_env)
        flow = await sftp_env.harness.store.get_flow(number)
        assert flow is not None and flow.file_name == "durable.xml"


async def test_a_big_upload_becomes_its_flows_blob_and_leaves_nothing_behind(sftp_env: SftpEnv) -> None:
    """An upload past the in-memory size (spilled to a hidden file) is deposited from that file: the flow
    has the upload's size and sha256, its blob holds the same bytes, and no upload file is left."""
    content = OK_INVOICE.read_bytes() + b"<!--" + os.urandom(1536 * 1024).hex().encode() + b"-->"
    async with (
        await asyncssh_connect(sftp_env) as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("/in/big.xml", "wb") as f,
    ):
        await f.write(content)
    [number] = await flows(sftp_env)
    flow = await sftp_env.harness.store.get_flow(number)
    assert flow is not None
    assert (flow.size_bytes, flow.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert sftp_env.harness.blobs.read_bytes(flow.sha256) == content
    assert list(sftp_env.folders.uploads.iterdir()) == []
