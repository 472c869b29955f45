"""Return flows: written once to out/ whatever crashes in between; CPPStatut files; retention; the loop."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

from engine.catalogue import finding
from engine.cpu_pool import CpuPool
from engine.return_flows import has_return_flows
from engine.status import FlowEvent, FlowStatus
from gateway.outbox import OutboxWriter, report_name
from tests.harness import REPO, Harness, now
from tests.integration.sftp_support import (
    SftpEnv,
    asyncssh_connect,
    eventually,
    openssh_sftp,
    read_xml,
    sftp_env,
    sftp_host_keys,
    sftp_settings,
    start_server,
)

__all__ = ["sftp_env", "sftp_host_keys", "sftp_settings"]  # fixtures used by these tests

INVOICES = REPO / "config" / "demo" / "invoices"


async def deposit_and_judge(env: SftpEnv, invoice: str = "ok/ubl_service_code.xml") -> str:
    rc, _, err = await openssh_sftp(env, f"put {INVOICES / invoice} /in/\n")
    assert rc == 0, err
    [flow] = await env.harness.process_all()
    assert flow.status.is_final
    return flow.flow_number


async def test_restart_between_final_status_and_outbox_write_writes_the_report_once(
    sftp_env: SftpEnv, cpu_pool: CpuPool
) -> None:
    """The daemon stops after the verdict but before the outbox ran; after a restart (new store connection,
    new writer, new server) the report appears once, is recorded once, and the partner can collect it."""
    number = await deposit_and_judge(sftp_env)
    assert sftp_env.out_files() == []
    sftp_env.server.close()
    await sftp_env.server.wait_closed()
    await sftp_env.harness.close()

    harness = await Harness.open(sftp_env.root, cpu_pool)
    sftp_env.harness = harness
    outbox = OutboxWriter(harness.store, sftp_env.folders, engine_version="test")
    sftp_env.outbox = outbox
    assert await outbox.drain() == 1
    assert await outbox.drain() == 0
    sftp_env.server, sftp_env.port = await start_server(harness, outbox, sftp_env.settings)
    flow = await harness.store.get_flow(number)
    assert flow is not None
    name = report_name(flow)
    assert flow.return_flows == (name,)
    assert sftp_env.out_files() == [name]
    async with await asyncssh_connect(sftp_env) as conn, conn.start_sftp_client() as sftp:
        assert name in await sftp.listdir("/out")


async def test_crash_after_the_rename_before_the_record_does_not_write_twice(sftp_env: SftpEnv) -> None:
    """A crash after the report was renamed into out/ (and even collected by the partner) but before it was
    recorded: the next writer only records it; a crash before the rename renames the fsynced file once."""
    number = await deposit_and_judge(sftp_env)
    flow = await sftp_env.harness.store.get_flow(number)
    assert flow is not None
    name = report_name(flow)
    sftp_env.outbox._place("AAA001", name, b"<first/>")  # steps 1-3, then the "crash"
    (sftp_env.out_dir() / name).unlink()  # the partner collected and deleted it meanwhile
    writer = OutboxWriter(sftp_env.harness.store, sftp_env.folders, engine_version="test")
    assert await writer.drain() == 1
    assert sftp_env.out_files() == []  # not written a second time
    flow = await sftp_env.harness.store.get_flow(number)
    assert flow is not None and flow.return_flows == (name,)
    assert not any(sftp_env.folders.outbox_work.iterdir())

    second = await deposit_and_judge(sftp_env)
    flow = await sftp_env.harness.store.get_flow(second)
    assert flow is not None
    name = report_name(flow)
    work = sftp_env.folders.outbox_work
    (work / f"{name}.tmp").write_bytes(b"<fsynced/>")  # crash between the marker and the rename
    (work / f"{name}.renaming").touch()
    assert await writer.drain() == 1
    assert (sftp_env.out_dir() / name).read_bytes() == b"<fsynced/>"
    assert await writer.drain() == 0


async def test_cppstatut_file_when_the_partner_asks_for_it(sftp_env: SftpEnv) -> None:
    """With status_files, a rejected flow also gets CPPStatut_<partner>_<flow>.xml: status 93 and one error
    line per error; an integrated one gets 90 and no error lines."""
    partner = await sftp_env.harness.store.get_partner("AAA001")
    assert partner is not None
    await sftp_env.harness.store.upsert_partner(replace(partner, status_files=True))
    rejected = await deposit_and_judge(sftp_env, "rejected/unknown_buyer.xml")
    integrated = await deposit_and_judge(sftp_env)
    await sftp_env.outbox.drain()
    for number, code in ((rejected, "93"), (integrated, "90")):
        flow = await sftp_env.harness.store.get_flow(number)
        assert flow is not None
        status_name = f"CPPStatut_AAA001_{number}.xml"
        assert flow.return_flows == (status_name, report_name(flow))
        doc = read_xml(sftp_env.out_dir() / status_name)
        assert doc.tag == "CPPStatut"
        assert doc.findtext("CPPFluxStatuts/CPPFluxStatutUnitaire/DonneesStatut/IdStatut") == code
        assert doc.findtext("CPPFluxStatuts/CPPFluxStatutUnitaire/DonneesStatut/IdFlux") == number
        lines = doc.findall(".//LigneErreurDetail")
        report = await sftp_env.harness.report(number)
        errors = list(report["errors"]) + [e for i in report["invoices"] for e in i["errors"]]  # type: ignore[attr-defined]
        assert [line.findtext("CodeErreur") for line in lines] == [e["code"] for e in errors]
        assert bool(lines) == (flow.status is FlowStatus.REJECTED)


async def test_purge_deletes_only_files_older_than_the_retention(sftp_env: SftpEnv) -> None:
    """``purge`` removes out/ files older than the retention and keeps the recent ones."""
    sftp_env.folders.create("AAA001")
    old, fresh = sftp_env.out_dir() / "old.xml", sftp_env.out_dir() / "fresh.xml"
    old.write_bytes(b"<old/>")
    fresh.write_bytes(b"<fresh/>")
    long_ago = time.time() - 31 * 86400
    os.utime(old, (long_ago, long_ago))
    assert await sftp_env.outbox.purge() == 1
    assert sftp_env.out_files() == ["fresh.xml"]


async def test_run_loop_writes_reports_when_woken(sftp_env: SftpEnv) -> None:
    """``run()`` drains at start and again once its store records an EDI flow's verdict
    (``Store.wait_for_verdicts``): nothing else wakes it, and it does not wait for its ``poll_s``."""
    writer = OutboxWriter(sftp_env.harness.store, sftp_env.folders, engine_version="test", poll_s=60)
    task = asyncio.create_task(writer.run())
    try:
        number = await deposit_and_judge(sftp_env)

        async def written() -> bool:
            return any(number in name for name in sftp_env.out_files())

        await eventually(written)
    finally:
        writer.stop()
        await asyncio.wait_for(task, 5)
    assert writer.written == 1


async def test_verdicts_close_together_are_written_in_one_batch(sftp_env: SftpEnv) -> None:
    """After a verdict the writer gathers ``gather_s`` before it drains: nothing is written sooner, and the
    verdicts recorded meanwhile go out together, one batch (one set of syncs) for all of them."""
    store = sftp_env.harness.store
    batch = "".join(f"put {INVOICES / 'ok/ubl_service_code.xml'} /in/{name}.xml\n" for name in "abc")
    rc, _, err = await openssh_sftp(sftp_env, batch)
    assert rc == 0, err
    claims = [await store.claim("test-worker", now=now(), lease_s=60) for _ in range(3)]
    numbers = [claim.flow_number for claim in claims if claim is not None]
    assert len(numbers) == 3
    # settle_s: the deposits' own commits would otherwise start a drain before the verdicts.
    writer = OutboxWriter(store, sftp_env.folders, engine_version="test", poll_s=60, settle_s=60, gather_s=0.6)
    task = asyncio.create_task(writer.run())
    try:
        await asyncio.sleep(0.1)  # the writer drained (nothing final yet) and waits
        loop = asyncio.get_running_loop()
        judged = loop.time()
        for number in numbers:  # as the workers record them, 50 ms apart
            await store.record_verdict(
                number,
                FlowStatus.RECEIVED,
                FlowEvent.TECHNICAL_REJECTION,
                actor="worker:test",
                at=now(),
                flow_findings=[finding("FILE_EMPTY")],
                invoices=[],
                ruleset_version="",
            )
            await asyncio.sleep(0.05)
        await asyncio.sleep(max(0.0, judged + 0.3 - loop.time()))
        assert sftp_env.out_files() == []  # still gathering: a writer that drained on the first verdict shows here

        async def written() -> bool:
            return all(any(n in name for name in sftp_env.out_files()) for n in numbers)

        await eventually(written)
    finally:
        writer.stop()
        await asyncio.wait_for(task, 5)
    assert (writer.written, writer.batches) == (3, 1)


async def test_only_an_edi_partners_flow_has_return_flows(sftp_env: SftpEnv) -> None:
    """The store wakes the writer for the verdicts of EDI partners' flows only (``has_return_flows``): a
    flow deposited over the API never gets a report in an outbox, and is never pending."""
    content = (INVOICES / "ok/ubl_service_code.xml").read_bytes()
    api = await sftp_env.harness.deposit_and_process("api.xml", content)
    edi = await sftp_env.harness.store.get_flow(await deposit_and_judge(sftp_env))
    assert edi is not None
    assert (has_return_flows(api), has_return_flows(edi)) == (False, True)
    assert [f.flow_number for f in await sftp_env.harness.store.pending_return_flows()] == [edi.flow_number]
