"""SFTP intake: uploads being written, per-partner quota, and the hand-off of a finished upload to the engine.

Invariants (DESIGN §8, §9.1):

* An upload is written to a private buffer (memory up to ``memory_upload_bytes``, then a hidden file
  under ``<data dir>/sftp/uploads``); nothing of it is visible in the partner's root while it is written.
* ``max_flow_bytes`` is enforced at each write: the write that would pass it fails and the upload is
  dead. So is ``max_upload_holes``: the write that leaves more gaps than that below the upload's end
  fails with "too many holes" (SSH_FX_FAILURE) and the upload is dropped; the written ranges are kept by
  ``sftp_ranges.WrittenRanges``, O(1) for sequential writes and O(log n) searches otherwise. The quota
  (pending bytes and files: held files plus uploads in progress) is enforced at open and at each write.
* ``finish`` is the only way an upload leaves: a complete upload with a flow name is handed to
  ``DepositService.deposit`` (a spilled one as its file, which the blob store adopts rather than copies:
  ``deposit_file``) and ``finish`` returns only once the deposit is durable; a temporary name is
  held in ``in/`` (fsynced) until renamed into place. ``discard`` (dropped connection, failed write)
  removes every trace. The intake never reads the content: the engine decides what the bytes are.
* A file refused at the door (over-size, over quota, bad name, refused deposit) gets a reject report in
  the partner's ``out/`` (``OutboxWriter.write_reject``). The intake raises its own refusals
  (``IntakeRefused``) and lets the engine's errors through: ``gateway.sftp_errors`` turns both into SFTP
  statuses.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from engine.blobs import fsync_dir
from engine.deposit import DepositRequest, DepositService
from engine.directory import Partner
from engine.errors import DepositRefused, StorageFull, StoreError, StoreUnavailable
from engine.model import Channel, Limits, Syntax
from gateway.outbox import OutboxWriter
from gateway.sftp_paths import PartnerFolders, VirtualPath, check_file_name, is_temporary_name
from gateway.sftp_ranges import WrittenRanges

log = structlog.get_logger("fluxdepot.sftp")

PARTNER_CACHE_S = 2.0
FindPartner = Callable[[str], Awaitable[Partner | None]]  # a partner's directory entry by its code


@dataclass(frozen=True)
class IntakeSettings:
    max_flow_bytes: int = Limits.max_flow_bytes
    quota_bytes: int = 1024**3  # pending bytes in a partner's in/
    quota_files: int = 1000  # pending files in a partner's in/
    memory_upload_bytes: int = 1024 * 1024  # smaller uploads never touch the disk before the deposit
    max_upload_holes: int = 1024  # gaps below an upload's end; past it the write fails and the upload is dropped


class IntakeRefused(Exception):
    """An upload refused; ``reason`` is a stable code, the message is for the partner."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Upload:
    """One file being written in ``in/``; bytes are tracked so a write with holes is never deposited."""

    _ids = itertools.count(1)

    def __init__(self, partner: str, where: VirtualPath, spill_dir: Path, memory_bytes: int, append: bool):
        self.partner = partner
        self.where = where
        self.append = append
        self.size = 0
        self.failed: IntakeRefused | None = None
        self._id = next(self._ids)
        # Unique across daemons sharing the data folder, even on several machines (pids may repeat).
        self._tag = f"{secrets.token_hex(8)}-{self._id}"
        self._spill_dir = spill_dir
        self._memory_bytes = memory_bytes
        self._buf: bytearray | None = bytearray()
        self._fd: int | None = None
        self._path: Path | None = None
        self._written = WrittenRanges()

    def write(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if self._buf is not None and end > self._memory_bytes:
            self._spill()
        if self._buf is not None:
            if offset > len(self._buf):
                self._buf.extend(bytes(offset - len(self._buf)))
            self._buf[offset:end] = data
        else:
            assert self._fd is not None
            os.pwrite(self._fd, data, offset)
        self.size = max(self.size, end)
        self._written.add(offset, end)

    @property
    def holes(self) -> int:
        return self._written.holes

    def first_missing_byte(self) -> int | None:
        """The first offset never written below the file's end, or None when the write is complete."""
        gap = self._written.first_gap()
        return gap if gap < self.size else None

    def content(self) -> bytes:
        if self._buf is not None:
            return bytes(self._buf)
        assert self._path is not None
        return self._path.read_bytes()

    def take_file(self) -> Path | None:
        """The spilled file holding the upload, handed over to the caller (closed, no longer removed by
        ``discard``); None while the upload is still in memory."""
        if self._path is None:
            return None
        assert self._fd is not None
        os.close(self._fd)
        path, self._fd, self._path = self._path, None, None
        return path

    def save_to(self, target: Path) -> None:
        """Write the upload to ``target`` durably (a held, temporarily named file), then drop the buffer."""
        tmp = self._spill_dir / f".held-{self._tag}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = self.content()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(target)
        fsync_dir(target.parent)
        self.discard()

    def discard(self) -> None:
        self._buf = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None

    def _spill(self) -> None:
        assert self._buf is not None
        self._path = self._spill_dir / f".upload-{self._tag}"
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        if self._buf:
            os.pwrite(self._fd, self._buf, 0)
        self._buf = None


class Intake:
    """Shared by every SFTP session: uploads in progress, quota, deposits, rejects. ``find_partner`` reads
    a partner's directory entry (the issuer of its deposits)."""

    def __init__(
        self,
        deposits: DepositService,
        outbox: OutboxWriter,
        folders: PartnerFolders,
        settings: IntakeSettings,
        *,
        find_partner: FindPartner,
    ) -> None:
        self._find_partner = find_partner
        self._deposits = deposits
        self._outbox = outbox
        self.folders = folders
        self.settings = settings
        self._uploads: dict[str, set[Upload]] = {}
        self._held: dict[str, dict[Path, int]] = {}
        self._partners: dict[str, tuple[float, Partner | None]] = {}  # partner -> held file -> size (see _held_sizes)

    # --- listing -------------------------------------------------------------------------------
    def held_files(self, partner: str, syntax: Syntax | None) -> Iterator[os.DirEntry[str]]:
        """The held (temporarily named) files of one in/ folder."""
        try:
            with os.scandir(self.folders.inbox(partner, syntax)) as entries:
                yield from (e for e in entries if e.is_file(follow_symlinks=False))
        except FileNotFoundError:
            return

    def uploading(self, partner: str) -> list[Upload]:
        return list(self._uploads.get(partner, ()))

    def _held_sizes(self, partner: str) -> dict[Path, int]:
        """Held files and their sizes: read from disk once per partner, then kept up to date in memory."""
        sizes = self._held.get(partner)
        if sizes is None:
            sizes = {
                Path(entry.path): entry.stat(follow_symlinks=False).st_size
                for syntax in (None, *Syntax)
                for entry in self.held_files(partner, syntax)
            }
            self._held[partner] = sizes
        return sizes

    def forget_held(self, partner: str, path: Path) -> None:
        self._held_sizes(partner).pop(path, None)

    def pending(self, partner: str) -> tuple[int, int]:
        """Pending (files, bytes) in ``in/``: held files and uploads in progress."""
        held = self._held_sizes(partner)
        files, total = len(held), sum(held.values())
        for upload in self._uploads.get(partner, ()):
            files += 1
            total += upload.size
        return files, total

    # --- uploads -------------------------------------------------------------------------------
    async def begin(self, partner: str, where: VirtualPath, *, append: bool) -> Upload:
        assert where.name is not None
        problem = check_file_name(where.name)
        if problem is not None:
            raise await self.rejected(partner, where.name, IntakeRefused("BAD_NAME", f"{where.name!r}: {problem}"))
        files, _ = self.pending(partner)
        if files + 1 > self.settings.quota_files:
            raise await self.rejected(
                partner,
                where.name,
                IntakeRefused(
                    "QUOTA_FILES", f"quota exceeded: at most {self.settings.quota_files} pending files in in/"
                ),
            )
        upload = Upload(partner, where, self.folders.uploads, self.settings.memory_upload_bytes, append)
        self._uploads.setdefault(partner, set()).add(upload)
        return upload

    async def write(self, upload: Upload, offset: int, data: bytes) -> None:
        if upload.failed is not None:
            raise upload.failed
        if upload.append:
            offset = upload.size
        end = offset + len(data)
        limit = self.settings.max_flow_bytes
        refusal = None
        if end > limit:
            refusal = IntakeRefused(
                "FLOW_TOO_LARGE",
                f"the flow is larger than the maximum flow size of {limit} bytes; nothing was deposited",
            )
        elif end > upload.size:
            _, pending_bytes = self.pending(upload.partner)
            if pending_bytes + end - upload.size > self.settings.quota_bytes:
                refusal = IntakeRefused(
                    "QUOTA_BYTES",
                    f"quota exceeded: at most {self.settings.quota_bytes} pending bytes in in/; nothing was deposited",
                )
        if refusal is not None:
            self.drop(upload)
            upload.failed = refusal
            raise await self.rejected(upload.partner, upload.where.name or "", refusal)
        upload.write(offset, data)
        if upload.holes > self.settings.max_upload_holes:
            self.drop(upload)
            upload.failed = IntakeRefused(
                "TOO_MANY_HOLES",
                f"too many holes: the upload has more than {self.settings.max_upload_holes} unwritten gaps;"
                " write the file in order. Nothing was deposited",
            )
            log.info(
                "sftp_upload_refused", partner=upload.partner, file_name=upload.where.name, reason="TOO_MANY_HOLES"
            )
            raise upload.failed

    def drop(self, upload: Upload) -> None:
        """Forget an upload and remove its bytes (dropped connection, failed write)."""
        self._uploads.get(upload.partner, set()).discard(upload)
        upload.discard()

    async def finish(self, upload: Upload) -> str | None:
        """The client closed ``upload``: deposit it (returns the flow number) or hold a temporary name."""
        try:
            if upload.failed is not None:
                raise upload.failed
            missing = upload.first_missing_byte()
            if missing is not None:
                raise IntakeRefused("INCOMPLETE", f"the upload has no data at offset {missing}; nothing was deposited")
            where = upload.where
            assert where.name is not None
            if is_temporary_name(where.name):
                target = self.folders.held(upload.partner, where)
                await asyncio.to_thread(upload.save_to, target)
                self._held_sizes(upload.partner)[target] = upload.size
                log.info("sftp_upload_held", partner=upload.partner, file_name=where.name, size_bytes=upload.size)
                return None
            spilled = upload.take_file()
            if spilled is None:
                return await self.deposit(upload.partner, where, upload.content())
            try:  # a big upload: the blob store adopts its file, the bytes are not copied
                return await self.deposit(upload.partner, where, spilled)
            finally:
                await asyncio.to_thread(spilled.unlink, missing_ok=True)  # refused before the blob store took it
        finally:
            self.drop(upload)

    async def deposit_held(self, partner: str, held: VirtualPath, target: VirtualPath) -> str | None:
        """A held file renamed: deposit it under its new name, or move it when the name is still temporary."""
        source = self.folders.held(partner, held)
        assert target.name is not None
        problem = check_file_name(target.name)
        if problem is not None:
            raise await self.rejected(partner, target.name, IntakeRefused("BAD_NAME", f"{target.name!r}: {problem}"))
        if is_temporary_name(target.name):
            destination = self.folders.held(partner, target)
            await asyncio.to_thread(source.replace, destination)
            held = self._held_sizes(partner)
            held[destination] = held.pop(source, 0)
            return None
        content = await asyncio.to_thread(source.read_bytes)
        flow_number = await self.deposit(partner, target, content)
        await asyncio.to_thread(source.unlink, missing_ok=True)
        self.forget_held(partner, source)
        return flow_number

    async def deposit(self, partner_code: str, where: VirtualPath, content: bytes | Path) -> str:
        """Deposit ``content``: bytes, or a complete file the blob store takes over (``deposit_file``)."""
        assert where.name is not None
        started = time.perf_counter()
        try:
            partner = await self._partner(partner_code)
            if partner is None:
                raise IntakeRefused("UNKNOWN_PARTNER", f"partner {partner_code} is no longer in the directory")
            request = DepositRequest(
                file_name=where.name,
                content=content if isinstance(content, bytes) else b"",
                channel=Channel.EDI,
                depositor=f"partner:{partner_code}",
                issuer_siret=partner.siret,
                syntax=where.syntax.value if where.syntax is not None else None,
                partner_code=partner_code,
            )
            if isinstance(content, bytes):
                receipt = await self._deposits.deposit(request)
            else:
                receipt = await self._deposits.deposit_file(request, content)
        except DepositRefused as exc:
            await self.rejected(partner_code, where.name, IntakeRefused(type(exc).__name__, exc.message))
            raise
        except StorageFull:  # the partner is told to upload again later; nothing for an operator to read
            raise
        except StoreUnavailable as exc:
            log.warning("sftp_deposit_failed", partner=partner_code, file_name=where.name, error=str(exc))
            raise
        except StoreError:
            log.exception("sftp_deposit_failed", partner=partner_code, file_name=where.name)
            raise
        flow = receipt.flow
        log.info(
            "flow_received",
            flow_number=flow.flow_number,
            partner=partner_code,
            file_name=where.name,
            size_bytes=flow.size_bytes,
            channel=Channel.EDI.value,
            deposit_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return flow.flow_number

    async def _partner(self, code: str) -> Partner | None:
        """The partner's directory entry, cached ``PARTNER_CACHE_S`` (a reload shows within that delay)."""
        now = time.monotonic()
        cached = self._partners.get(code)
        if cached is not None and cached[0] > now:
            return cached[1]
        partner = await self._find_partner(code)
        self._partners[code] = (now + PARTNER_CACHE_S, partner)
        return partner

    async def rejected(self, partner: str, file_name: str, refusal: IntakeRefused) -> IntakeRefused:
        """Record a refusal at the door in the partner's ``out/``; returns it for the caller to raise."""
        log.info("sftp_upload_refused", partner=partner, file_name=file_name, reason=refusal.reason)
        try:
            await self._outbox.write_reject(partner, file_name, refusal.reason, refusal.message)
        except OSError:
            log.exception("sftp_reject_report_failed", partner=partner, reason=refusal.reason)
        return refusal

    def abandon_all(self, partner: str, uploads: set[Upload]) -> None:
        for upload in uploads:
            self.drop(upload)
