"""``DepositStream``: a deposit sent in chunks is spooled to disk as it arrives, never whole in memory, and
behaves as ``Deposit`` (checksum, tracking id, size limit, processing); a stream that stops half-way, goes
over the limit or starts without its header leaves nothing behind."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from clients import errors as client_errors
from clients.client import STREAM_ABOVE_BYTES
from engine.cpu_pool import CpuPool
from engine.model import Limits
from engine.status import FlowStatus
from fluxdepot.v1 import flows_pb2 as pb
from tests.grpc_support import TECH, GrpcEnv, invoice, metadata

LIMIT = 3 * 1024 * 1024


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[GrpcEnv]:
    e = await GrpcEnv.start(tmp_path, cpu_pool, limits=Limits(max_flow_bytes=LIMIT))
    try:
        yield e
    finally:
        await e.close()


def padded(number: str, size: int) -> bytes:
    """A real invoice padded with an XML comment to ``size`` bytes."""
    base = invoice(number)
    return base + b"<!--" + b"x" * (size - len(base) - 7) + b"-->"


def leftovers(env: GrpcEnv) -> list[Path]:
    return list(env.harness.blobs.root.rglob("*.spool"))


async def test_a_big_file_is_streamed_stored_and_processed(env: GrpcEnv, tmp_path: Path) -> None:
    """The client streams a file past ``STREAM_ABOVE_BYTES``; the flow holds exactly its bytes (sha256
    checked as declared), and it is processed like any deposit."""
    content = padded("FA-STREAM-1", 2 * 1024 * 1024)
    assert len(content) > STREAM_ABOVE_BYTES
    path = tmp_path / "big.xml"
    path.write_bytes(content)
    async with env.client(TECH) as client:
        receipt = await client.deposit_file(path, sha256=hashlib.sha256(content).hexdigest())
    assert receipt.sha256 == hashlib.sha256(content).hexdigest()
    key = await env.harness.store.get_blob_key(receipt.flow_number)
    assert key and env.harness.blobs.read_bytes(key) == content
    (processed,) = await env.harness.process_all()
    assert processed.status is FlowStatus.INTEGRATED
    assert leftovers(env) == []


async def test_a_tracking_id_makes_a_streamed_deposit_idempotent(env: GrpcEnv) -> None:
    """The same tracking id streamed twice gives the first flow back."""
    content = padded("FA-STREAM-2", 1_500_000)
    async with env.client(TECH) as client:
        first = await client.deposit_stream([content[:700_000], content[700_000:]], "t.xml", tracking_id="T-1")
        again = await client.deposit_stream([content], "t.xml", tracking_id="T-1")
    assert again.flow_number == first.flow_number and again.already_deposited


async def test_a_stream_over_the_limit_is_refused_as_it_passes_it(env: GrpcEnv) -> None:
    """Chunks past ``max_flow_bytes`` are refused with RESOURCE_EXHAUSTED naming the limit; no spool stays."""
    chunk = b"x" * (1024 * 1024)
    async with env.client(TECH) as client:
        with pytest.raises(client_errors.ResourceExhausted, match=str(LIMIT)):
            await client.deposit_stream([chunk] * 5, "huge.xml")
    assert leftovers(env) == []
    assert await env.harness.store.all_flow_numbers() == []


async def test_a_stream_without_its_header_or_with_content_in_it_is_refused(env: GrpcEnv) -> None:
    """The first message must be the header alone: INVALID_ARGUMENT otherwise, and nothing is stored."""

    async def only_data() -> AsyncIterator[pb.DepositChunk]:
        yield pb.DepositChunk(data=b"<Invoice/>")

    async def content_in_header() -> AsyncIterator[pb.DepositChunk]:
        yield pb.DepositChunk(header=pb.DepositRequest(file_name="a.xml", content=b"<Invoice/>"))

    for messages in (only_data(), content_in_header()):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await env.flows.DepositStream(messages, metadata=metadata(TECH))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert await env.harness.store.all_flow_numbers() == []


async def test_a_stream_cancelled_half_way_deposits_nothing(env: GrpcEnv) -> None:
    """A client that stops sending and cancels leaves no flow and no spool file."""
    import asyncio

    sent = asyncio.Event()

    async def messages() -> AsyncIterator[pb.DepositChunk]:
        yield pb.DepositChunk(header=pb.DepositRequest(file_name="half.xml"))
        yield pb.DepositChunk(data=b"x" * 100_000)
        sent.set()
        await asyncio.sleep(3600)

    call = env.flows.DepositStream(messages(), metadata=metadata(TECH))
    await asyncio.wait_for(sent.wait(), 10)
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(50):  # the server notices the cancellation on its own loop turn
        if not leftovers(env):
            break
        await asyncio.sleep(0.05)
    assert leftovers(env) == []
    assert await env.harness.store.all_flow_numbers() == []


async def test_a_unary_deposit_past_the_message_limit_is_refused_and_the_client_streams_instead(
    tmp_path: Path, cpu_pool: CpuPool
) -> None:
    """grpc holds a unary message whole, so ``Deposit`` takes at most ``[grpc] max_message_bytes`` (4 MiB)
    even under a larger flow limit: RESOURCE_EXHAUSTED past it. The Python client's ``deposit`` sends such
    bytes by ``DepositStream`` and they are stored whole."""
    env = await GrpcEnv.start(tmp_path, cpu_pool, limits=Limits(max_flow_bytes=8 * 1024 * 1024))
    try:
        content = padded("FA-STREAM-3", 5 * 1024 * 1024)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await env.flows.Deposit(pb.DepositRequest(file_name="u.xml", content=content), metadata=metadata(TECH))
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        async with env.client(TECH) as client:
            receipt = await client.deposit(content, "u.xml")
        key = await env.harness.store.get_blob_key(receipt.flow_number)
        assert key and env.harness.blobs.read_bytes(key) == content
    finally:
        await env.close()
