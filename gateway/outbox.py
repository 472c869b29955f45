"""Return flows: integration reports (and optional CPPStatut files) written to EDI partners' ``out/``.

``OutboxWriter.run()`` drains ``store.pending_return_flows()`` (EDI flows in a final status whose
integration report is not recorded), then sleeps until its store commits the verdict of an EDI partner's
flow (``store.wait_for_verdicts``; then ``gather_s`` more, so the verdicts of the same moment go out in
one batch), a status change committed by any daemon (``store.wait_for_events``, coalesced over
``settle_s``), ``poll_s``, or ``stop()``. Nothing calls into it to wake it: it learns of new verdicts from
the store, like the workers of new work (``engine.store.wakeups``).

Daemons sharing one store and one data folder write through ONE writer: ``run()`` drains only while its
store holds the ``outbox`` singleton (``Store.try_singleton``, checked again before each batch), and the
others ask for it every ``standby_s``; when the holder dies its singleton passes on and the new holder
finishes what the dead one left (the repair below). So two daemons never write the same return flow.
Each file is published exactly once, even across crashes (DESIGN §7). Files go in batches of up to
``batch`` flows, with a constant number of syncs per batch:

1. render every file and write ``<data>/sftp/outbox/<name>.tmp``; ONE sync pass makes them all durable
   (``syncfs`` where ``engine.blobs.syncfs_function`` trusts it, else ``fsync`` of each file back to back);
2. create every intent marker ``<name>.renaming`` beside them, fsync the folder once;
3. rename every temporary file to ``out/<name>`` (atomic: never half-visible), fsync each touched ``out/``
   once;
4. ``store.add_return_flows`` records every name in one transaction; remove the markers.

A restart finds an unrecorded flow again: with a marker, the rename either happened (the file is in
``out/``, or the partner already collected it) and only the record is missing, or the fsynced temporary
file is still there and is renamed; without a marker nothing reached ``out/`` and the file is written from
scratch. The CPPStatut file, when the partner asked for it, is published before the report, so a flow is
pending exactly while its report is unrecorded. Files refused at the door get a reject report
(``write_reject``); ``purge`` deletes files older than the retention from every ``out/``.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
import xml.etree.ElementTree as ET  # builds and serialises only; never parses input
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from engine.blobs import fsync_dir, syncfs_function
from engine.clock import utcnow
from engine.directory import Partner
from engine.errors import StoreError, StoreUnavailable
from engine.model import FlowRecord
from engine.report import build_report, render_xml
from engine.return_flows import ReturnFlowStore
from gateway.cppstatut import cppstatut_name, render_cppstatut
from gateway.sftp_paths import PartnerFolders

log = structlog.get_logger("fluxdepot.outbox")

REJECT_NAMESPACE = "urn:fluxdepot:deposit-reject:1"
OUTBOX_SINGLETON = "outbox"  # the one daemon writing return flows (and repairing interrupted writes)
PURGE_SINGLETON = "outbox_purge"  # the one daemon purging partners' out/ folders
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def report_name(flow: FlowRecord) -> str:
    """``<interface code>_<partner code>_<flow number>.xml`` (domain.md §4.4)."""
    return f"{flow.interface_code}_{flow.partner_code}_{flow.flow_number}.xml"


@dataclass(frozen=True)
class ReturnFile:
    """One return flow to publish: ``content`` as ``name`` in ``partner``'s ``out/``, recorded on the flow."""

    flow_number: str
    partner: str
    name: str
    content: bytes


class OutboxWriter:
    """Writes return flows to partners' ``out/`` (see the module docstring)."""

    def __init__(
        self,
        store: ReturnFlowStore,
        folders: PartnerFolders,
        *,
        engine_version: str,
        gateway_code: str = "CPP001",
        retention_s: float = 30 * 86400,
        poll_s: float = 30.0,
        standby_s: float = 2.0,
        settle_s: float = 0.2,
        gather_s: float = 0.05,
        batch: int = 100,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self.folders = folders
        self._engine_version = engine_version
        self._gateway_code = gateway_code
        self._retention_s = retention_s
        self._poll_s = poll_s
        self._standby_s = standby_s
        self._settle_s = settle_s
        self._gather_s = gather_s
        self._batch = batch
        self._clock = clock
        self._stopped = asyncio.Event()
        self.written = 0
        self.batches = 0  # publish() calls that wrote files (tests and benchmarks read it)
        self.holding = False  # whether run() holds the outbox singleton (a metric)

    def stop(self) -> None:
        """End ``run()`` (at once if it waits)."""
        self._stopped.set()

    async def run(self) -> None:
        """Holding the ``outbox`` singleton: drain, then wait for a verdict; otherwise ask for it again
        every ``standby_s``. Until ``stop()``; store and file errors are logged and retried."""
        while not self._stopped.is_set():
            # The verdicts counted so far: one committed from here on (during the drain too) ends the wait.
            seen = await self._store.wait_for_verdicts(-1, 0.0)
            cursor: int | None = None
            try:
                self.holding = await self._store.try_singleton(OUTBOX_SINGLETON)
                if self.holding:
                    cursor = await self._store.latest_cursor()
                    await self.drain(singleton=True)
            except StoreUnavailable as exc:
                log.warning("outbox_drain_failed", error=str(exc))
            except (StoreError, OSError):
                log.exception("outbox_drain_failed")
            await self._wait(cursor, seen)

    async def _wait(self, cursor: int | None, seen: int) -> None:
        """Without the singleton (``cursor`` None): a verdict or ``standby_s``. With it: a verdict of this
        store's, a status change after ``cursor`` committed by any daemon (then up to ``settle_s`` more,
        cut short by a verdict), or ``poll_s``; after a verdict, ``gather_s`` more. The pauses write in
        batches: a drain per verdict cost more than the reports themselves (reads, thread hops, syncs)."""
        if cursor is None:
            await self._verdict_within(seen, self._standby_s)
            return
        verdict = asyncio.ensure_future(self._store.wait_for_verdicts(seen, self._poll_s))
        remote = asyncio.ensure_future(self._store.wait_for_events(cursor, self._poll_s))
        done = await self._first(verdict, remote, timeout_s=self._poll_s)
        judged = verdict in done and verdict.result() > seen
        if remote in done and not judged and not self._stopped.is_set():
            judged = await self._verdict_within(seen, self._settle_s)
        if judged and not self._stopped.is_set():
            await asyncio.sleep(self._gather_s)

    async def _verdict_within(self, seen: int, timeout_s: float) -> bool:
        """Whether the store counts a verdict past ``seen`` within ``timeout_s`` (False on ``stop()``)."""
        verdict = asyncio.ensure_future(self._store.wait_for_verdicts(seen, timeout_s))
        return verdict in await self._first(verdict, timeout_s=timeout_s) and verdict.result() > seen

    async def _first(self, *waits: asyncio.Future[Any], timeout_s: float) -> set[asyncio.Future[Any]]:
        """Those of ``waits`` done once the first of them, ``stop()`` or ``timeout_s`` came; the others
        are cancelled."""
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            done, _ = await asyncio.wait({*waits, stopped}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*waits, stopped):
                task.cancel()
            await asyncio.gather(*waits, stopped, return_exceptions=True)
        return {task for task in waits if task in done}

    async def drain(self, *, singleton: bool = False) -> int:
        """Publish the return flows of every pending flow, ``batch`` flows at a time; returns how many flows
        were completed. ``singleton``: stop as soon as the store no longer holds the ``outbox`` singleton
        (asked again before each batch is written)."""
        done = 0
        while True:
            pending = await self._store.pending_return_flows(self._batch)
            if pending:
                if singleton and not await self._store.try_singleton(OUTBOX_SINGLETON):
                    log.warning("outbox_singleton_lost", written=done)
                    return done
                await self.publish(pending)
                done += len(pending)
            if len(pending) < self._batch:
                return done

    async def publish(self, flows: Sequence[FlowRecord]) -> None:
        """Write the return flows of ``flows`` that are not recorded yet (each flow's CPPStatut file before
        its report), durable together, then record them all in one transaction."""
        files = await self._render(flows)
        if not files:
            return
        await asyncio.to_thread(self._place_all, files)
        await self._store.add_return_flows([(f.flow_number, f.name) for f in files])
        await asyncio.to_thread(self._unmark, files)
        self.batches += 1
        reports = {report_name(flow) for flow in flows}
        for f in files:
            if f.name in reports:
                self.written += 1
                log.info("return_flow_written", flow_number=f.flow_number, partner=f.partner, file_name=f.name)

    async def _render(self, flows: Sequence[FlowRecord]) -> list[ReturnFile]:
        """The files ``flows`` still need, in publishing order: one read for every report's inputs, one per
        partner. A flow purged meanwhile is skipped (it is no longer pending)."""
        inputs = await self._store.report_inputs([flow.flow_number for flow in flows])
        partners: dict[str, Partner | None] = {}
        files: list[ReturnFile] = []
        for flow in flows:
            code = flow.partner_code
            assert code is not None
            found = inputs.get(flow.flow_number)
            if found is None:
                continue
            if code not in partners:
                partners[code] = await self._store.get_partner(code)
            partner = partners[code]
            report = build_report(
                flow,
                found.history,
                found.flow_findings,
                found.invoices,
                ruleset_version=found.ruleset_version or "",
                engine_version=self._engine_version,
            )
            if partner is not None and partner.status_files:
                name = cppstatut_name(code, flow.flow_number)
                if name not in flow.return_flows:
                    content = render_cppstatut(report, sender_id=self._gateway_code, produced_at=_iso(self._clock()))
                    files.append(ReturnFile(flow.flow_number, code, name, content))
            name = report_name(flow)
            if name not in flow.return_flows:
                files.append(ReturnFile(flow.flow_number, code, name, render_xml(report)))
        return files

    def _place(self, partner: str, name: str, content: bytes) -> None:
        """Steps 1-3 of the module docstring for one file."""
        self._place_all([ReturnFile("", partner, name, content)])

    def _place_all(self, files: Sequence[ReturnFile]) -> None:
        """Steps 1-3 of the module docstring for a batch, resuming after a crash at any point: a file with
        a marker was made durable before the crash, and is renamed if its temporary file is still there
        (else it was renamed, and maybe collected already: only the record is missing)."""
        work = self.folders.outbox_work
        for partner in sorted({f.partner for f in files}):
            self.folders.create(partner)
        fresh = [f for f in files if not (work / f"{f.name}.renaming").exists()]
        if fresh:
            write_all_synced([(work / f"{f.name}.tmp", f.content) for f in fresh])
            for f in fresh:
                (work / f"{f.name}.renaming").touch()
            fsync_dir(work)
        touched: dict[Path, None] = {}
        for f in files:  # in order: a flow's CPPStatut file appears before its report
            tmp = work / f"{f.name}.tmp"
            if tmp.exists():
                out = self.folders.outbox(f.partner)
                tmp.replace(out / f.name)
                touched[out] = None
        for out in touched:
            fsync_dir(out)

    def _unmark(self, files: Sequence[ReturnFile]) -> None:
        for f in files:
            (self.folders.outbox_work / f"{f.name}.renaming").unlink(missing_ok=True)

    async def write_reject(self, partner: str, file_name: str, reason: str, message: str) -> str:
        """A reject report for a file refused at the door; returns its name in ``out/``."""
        now = self._clock()
        name = f"REJECT_{partner}_{now.strftime('%Y%m%dT%H%M%S%f')}_{secrets.token_hex(3)}.xml"
        root = ET.Element(f"{{{REJECT_NAMESPACE}}}DepositRejected")
        for tag, value in (
            ("PartnerCode", partner),
            ("FileName", _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", file_name)),
            ("Reason", reason),
            ("Message", _CONTROL.sub("?", message)),
            ("RejectedAt", _iso(now)),
            ("NextAction", "Correct the file and upload it again; nothing was deposited."),
        ):
            ET.SubElement(root, f"{{{REJECT_NAMESPACE}}}{tag}").text = value
        ET.indent(root, space="  ")
        body = ET.tostring(root, encoding="utf-8", default_namespace=REJECT_NAMESPACE)
        content = b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"
        await asyncio.to_thread(self._write_atomic, partner, name, content)
        log.info("reject_report_written", partner=partner, file_name=name, reason=reason)
        return name

    def _write_atomic(self, partner: str, name: str, content: bytes) -> None:
        self.folders.create(partner)
        tmp = self.folders.outbox_work / f"{name}.tmp"
        write_synced(tmp, content)
        out = self.folders.outbox(partner)
        tmp.replace(out / name)
        fsync_dir(out)

    async def purge(self, now: float | None = None) -> int:
        """Delete files older than the retention from every partner's ``out/``; returns how many."""
        return await asyncio.to_thread(self._purge, time.time() if now is None else now)

    def _purge(self, now: float) -> int:
        cutoff = now - self._retention_s
        removed = 0
        partners = self.folders.root / "partners"
        if not partners.is_dir():
            return 0
        for partner in partners.iterdir():
            out = partner / "out"
            if not out.is_dir():
                continue
            with os.scandir(out) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    if entry.is_file(follow_symlinks=False) and st.st_mtime < cutoff:
                        Path(entry.path).unlink(missing_ok=True)
                        removed += 1
        if removed:
            log.info("outbox_purged", files=removed, retention_s=self._retention_s)
        return removed


def write_synced(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all_synced(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write every file, then make them all durable in one pass: ``syncfs`` once where it reports write-back
    errors (its file descriptor is opened before any write), else ``fsync`` of each file back to back."""
    fds: list[int] = []
    try:
        for path, content in files:
            fds.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            view = memoryview(content)
            while view:
                view = view[os.write(fds[-1], view) :]
        syncfs = syncfs_function()
        if syncfs is not None and fds:
            syncfs(fds[0])
        else:
            for fd in fds:
                os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds")
