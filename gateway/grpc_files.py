"""Files the gRPC API streams (rendered reports, zips of reports, CSV exports), cut into ``FileChunk``s.

The first chunk of a file names it and gives its content type (even when the file is empty); the others
carry data only. A streamed file is passed on as the service produces it, never gathered first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from fluxdepot.v1 import flows_pb2 as pb

CHUNK_BYTES = 64 * 1024


def chunks(data: bytes, file_name: str, content_type: str) -> Iterator[pb.FileChunk]:
    """``data`` as ``FileChunk``s of at most ``CHUNK_BYTES``; the first names the file (even if empty)."""
    for start in range(0, max(len(data), 1), CHUNK_BYTES):
        first = start == 0
        yield pb.FileChunk(
            data=data[start : start + CHUNK_BYTES],
            file_name=file_name if first else "",
            content_type=content_type if first else "",
        )


async def stream_chunks(pieces: AsyncIterator[bytes], file_name: str, content_type: str) -> AsyncIterator[pb.FileChunk]:
    """One ``FileChunk`` per piece the service yields; the first names the file."""
    first = True
    async for data in pieces:
        yield pb.FileChunk(data=data, file_name=file_name if first else "", content_type=content_type if first else "")
        first = False
