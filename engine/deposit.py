"""The deposit service: the one entry point every channel (gRPC API, portal, SFTP) calls.

Invariants (DESIGN §9):

* Door checks happen before anything is written: request fields, size, declared checksum.
* A deposit returns only once its bytes and its flow row, first status event and queue job are durable:
  an acknowledged deposit survives any crash, and a crash before the acknowledgement leaves at most an
  unreferenced blob (content-addressed, harmless), never a half-created flow.
* Where the bytes go: a small deposit (up to ``inline_max_bytes``, most invoices) is kept by the store
  with its row (``NewFlow.content``), so ONE commit makes row and bytes durable together; a bigger one
  becomes a blob (fsynced and renamed into place) before its row is committed.
* Concurrent deposits share their syncs: their blobs are written as one batch
  (``BlobStore.put_many``: two durability barriers per batch, whatever its size), and their rows are
  group-committed by the store. A deposit with a blob still waits for BOTH its blob's batch and its
  row's commit before it returns, in that order, so batching never acknowledges anything earlier.
* ``tracking_id`` makes a deposit idempotent per depositor: a retry returns the original flow.
* Without a tracking id the same bytes deposited twice are two flows (Chorus Pro behaviour).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from engine.blobs import BlobStore, file_sha256
from engine.clock import utcnow
from engine.errors import AlreadyExists, ChecksumMismatch, FlowTooLarge, InvalidDepositRequest
from engine.flownumber import PARTNER_CODE
from engine.formats.sniff import HEAD_BYTES, sniff_file, sniff_syntax
from engine.model import Channel, FlowRecord, Limits, Syntax
from engine.observer import FlowObserver
from engine.store.group_commit import GroupCommit
from engine.store.port import NewFlow, Store

T = TypeVar("T")
MAX_FILE_NAME_CHARS = 200  # nomFichier is varchar(200) (domain.md §1.2)
MAX_TRACKING_ID_CHARS = 128
_SIRET = re.compile(r"^[0-9]{14}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRACKING_ID = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
ON_LOOP_MAX_BYTES = 256 * 1024  # hashing or sniffing less than this on the loop costs less than a thread hop
# Deposits up to this size are kept in the store with their row rather than as blob files: a file costs
# a create, a rename and two file-system syncs, an extra row a few pages in a commit that happens anyway
# (SQLite's own measurements find small blobs faster read from the database than from files).
INLINE_CONTENT_BYTES = 128 * 1024
DEFAULT_SYNTAX = Syntax.UBL_INVOICE  # when nothing can be told at the door; the transport check decides


@dataclass(frozen=True)
class DepositRequest:
    file_name: str
    content: bytes
    channel: Channel
    depositor: str  # "tech:<login>", "user:<login>" or "partner:<code>"
    issuer_siret: str
    syntax: str | None = None  # declared syntaxeFlux; detected when empty
    tracking_id: str | None = None
    sha256: str | None = None  # lower-case hex; checked against the content when given
    partner_code: str | None = None  # the EDI partner (numbers its flows); None for API and portal
    with_signature: bool = False


@dataclass(frozen=True)
class DepositReceipt:
    flow: FlowRecord
    already_deposited: bool = False


class DepositService:
    """Check at the door, store the bytes durably, create the flow (the store wakes the workers)."""

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        limits: Limits,
        *,
        gateway_code: str = "CPP001",
        clock: Callable[[], datetime] = utcnow,
        observer: FlowObserver | None = None,
        inline_max_bytes: int = INLINE_CONTENT_BYTES,
    ) -> None:
        """``inline_max_bytes``: the biggest deposit the store keeps with its row (module docstring);
        ``observer`` is told of each flow created (metrics)."""
        if not PARTNER_CODE.match(gateway_code):
            raise ValueError(f"gateway code {gateway_code!r} does not match {PARTNER_CODE.pattern}")
        self._store = store
        self._blobs = blobs
        self._limits = limits
        self._gateway_code = gateway_code
        self._clock = clock
        self._observer = observer
        self._inline_max_bytes = inline_max_bytes
        self._blob_batches: GroupCommit[bytes, tuple[str, str, int]] = GroupCommit(self._put_blobs)

    async def _put_blobs(self, batch: Sequence[bytes]) -> list[tuple[str, str, int] | BaseException]:
        """One thread hop and two durability barriers for every blob of the batch."""
        return await asyncio.to_thread(self._blobs.put_many, batch)

    async def deposit(self, request: DepositRequest) -> DepositReceipt:
        declared = self._check_request(request, len(request.content))
        if (earlier := await self._retried(request)) is not None:
            return earlier
        content: bytes | None = None
        if len(request.content) <= self._inline_max_bytes:  # kept with the row: no blob file
            digest = await _off_loop_if_big(sha256_hex, request.content)
            _require_checksum(request, digest)
            key, size, content = "", len(request.content), request.content
        else:
            await self._check_checksum(request, lambda: _off_loop_if_big(sha256_hex, request.content))
            key, digest, size = await self._blob_batches.submit(request.content)
        syntax = declared or await _off_loop_if_big(_sniff, request.content) or DEFAULT_SYNTAX
        return await self._create(request, declared, syntax, key, digest, size, content)

    async def deposit_file(self, request: DepositRequest, path: Path) -> DepositReceipt:
        """``deposit`` of the complete file ``path`` (``request.content`` is ignored), for big uploads
        already on disk: the blob store adopts the file instead of copying it (``BlobStore.adopt``), so
        the bytes are written once. ``path`` is consumed once the door checks passed; until then it is
        left to the caller. Tracking ids and declared checksums work as in ``deposit``."""
        size = (await asyncio.to_thread(path.stat)).st_size
        declared = self._check_request(request, size)
        if (earlier := await self._retried(request)) is not None:
            return earlier
        await self._check_checksum(request, lambda: asyncio.to_thread(file_sha256, path))
        key, digest, size = await asyncio.to_thread(self._blobs.adopt, path)
        syntax = declared or await asyncio.to_thread(sniff_file, self._blobs.path(key)) or DEFAULT_SYNTAX
        return await self._create(request, declared, syntax, key, digest, size)

    async def deposit_stream(self, request: DepositRequest, chunks: AsyncIterator[bytes]) -> DepositReceipt:
        """``deposit`` of a file that arrives in pieces (``request.content`` is ignored): spooled to disk as
        it comes, so it is never whole in memory, and refused as soon as it passes the size limit; then
        ``deposit_file``. Nothing is left behind if the sender stops half-way."""
        self._check_request(request, 0)  # the fields now, the size as the bytes come
        spool = await asyncio.to_thread(self._blobs.spool)
        try:
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > self._limits.max_flow_bytes:
                    raise FlowTooLarge(size, self._limits.max_flow_bytes)
                await asyncio.to_thread(spool.write, chunk)
            spool.close()
            return await self.deposit_file(request, spool.path)
        finally:
            await asyncio.to_thread(spool.discard)  # a no-op once deposit_file took the file

    def blob_path(self, key: str) -> Path:
        """Where the blob ``key`` of a deposited flow lies (``FlowsService.original`` reads it back)."""
        return self._blobs.path(key)

    async def _retried(self, request: DepositRequest) -> DepositReceipt | None:
        """The flow an earlier deposit with the same tracking id created (DESIGN §9.4), if any."""
        if not request.tracking_id:
            return None
        earlier = await self._store.find_by_tracking_id(request.depositor, request.tracking_id)
        return DepositReceipt(earlier, already_deposited=True) if earlier is not None else None

    @staticmethod
    async def _check_checksum(request: DepositRequest, actual: Callable[[], Awaitable[str]]) -> None:
        """``ChecksumMismatch`` when the request declares a sha256 that ``actual()`` does not give; runs
        before anything is written."""
        if request.sha256:
            _require_checksum(request, await actual())

    async def _create(
        self,
        request: DepositRequest,
        declared: Syntax | None,
        syntax: Syntax,
        key: str,
        digest: str,
        size: int,
        content: bytes | None = None,
    ) -> DepositReceipt:
        """The flow row, first event and job (and the bytes when ``content`` is given, else a blob now
        durable under ``key``); wakes the workers."""
        new = NewFlow(
            number_prefix=request.partner_code or self._gateway_code,
            file_name=request.file_name,
            syntax=syntax,
            declared_syntax=declared is not None,
            channel=request.channel,
            issuer_siret=request.issuer_siret,
            depositor=request.depositor,
            sha256=digest,
            size_bytes=size,
            blob_key=key,
            deposited_at=self._clock(),
            tracking_id=request.tracking_id or None,
            partner_code=request.partner_code,
            content=content,
        )
        try:
            flow = await self._store.create_flow(new)
        except AlreadyExists:
            # A concurrent retry with the same tracking id won the race: return its flow.
            assert request.tracking_id
            again = await self._store.find_by_tracking_id(request.depositor, request.tracking_id)
            if again is None:
                raise
            return DepositReceipt(again, already_deposited=True)
        if self._observer is not None:
            self._observer.flow_deposited(flow)
        return DepositReceipt(flow)

    def _check_request(self, request: DepositRequest, size: int) -> Syntax | None:
        """Door checks on the request's fields and content size; returns the declared syntax (None: detect it)."""
        name = request.file_name
        if not name or not name.strip():
            raise InvalidDepositRequest("file_name", "is required")
        if len(name) > MAX_FILE_NAME_CHARS:
            raise InvalidDepositRequest("file_name", f"is longer than {MAX_FILE_NAME_CHARS} characters")
        if "/" in name or "\\" in name or any(ord(c) < 32 for c in name) or name in (".", ".."):
            raise InvalidDepositRequest("file_name", "must be a plain file name without path or control characters")
        if size > self._limits.max_flow_bytes:
            raise FlowTooLarge(size, self._limits.max_flow_bytes)
        if not _SIRET.match(request.issuer_siret or ""):
            raise InvalidDepositRequest("issuer_siret", "must be a 14-digit SIRET")
        if (
            request.tracking_id is not None
            and request.tracking_id != ""
            and (len(request.tracking_id) > MAX_TRACKING_ID_CHARS or not _TRACKING_ID.match(request.tracking_id))
        ):
            raise InvalidDepositRequest(
                "tracking_id",
                f"must be 1 to {MAX_TRACKING_ID_CHARS} printable ASCII characters without spaces",
            )
        if request.sha256 and not _SHA256.match(request.sha256):
            raise InvalidDepositRequest("sha256", "must be 64 lower-case hexadecimal characters")
        if request.partner_code is not None and not PARTNER_CODE.match(request.partner_code):
            raise InvalidDepositRequest("partner_code", f"must match {PARTNER_CODE.pattern}")
        if not request.syntax:
            return None
        try:
            return Syntax.parse(request.syntax)
        except ValueError as exc:
            raise InvalidDepositRequest("syntax", str(exc)) from None


async def _off_loop_if_big(fn: Callable[[bytes], T], content: bytes) -> T:
    """``fn(content)`` on the loop for small contents, in a thread for big ones."""
    if len(content) <= ON_LOOP_MAX_BYTES:
        return fn(content)
    return await asyncio.to_thread(fn, content)


def _require_checksum(request: DepositRequest, digest: str) -> None:
    """``ChecksumMismatch`` when the request declares a sha256 other than ``digest``."""
    if request.sha256 and digest != request.sha256:
        raise ChecksumMismatch(request.sha256, digest)


def _sniff(content: bytes) -> Syntax | None:
    return sniff_syntax(content[:HEAD_BYTES], content)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
