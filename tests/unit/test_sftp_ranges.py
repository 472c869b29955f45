"""gateway.sftp_ranges: the written ranges of an upload, against a byte-by-byte reference."""

from __future__ import annotations

import random
import time

from gateway.sftp_ranges import WrittenRanges


def reference(written: bytearray) -> tuple[int, int]:
    """(holes, first gap) counted byte by byte: runs of unwritten bytes below the last written byte."""
    end = len(written.rstrip(b"\0"))
    holes = sum(1 for i in range(end) if not written[i] and (i == 0 or written[i - 1]))
    first_gap = written.find(b"\0") if 0 in written[:end] else end
    return holes, first_gap


def test_random_writes_match_a_byte_by_byte_reference() -> None:
    """Writes of random offsets and sizes (overlapping, touching, inside, spanning several ranges) give the
    same holes and first gap as marking every byte, after every write."""
    rng = random.Random(20261127)
    for _ in range(200):
        ranges, written = WrittenRanges(), bytearray(300)
        for _ in range(40):
            start = rng.randrange(280)
            end = start + rng.choice([0, 1, 1, 2, 5, 20])
            ranges.add(start, end)
            written[start:end] = b"\1" * (end - start)
            assert (ranges.holes, ranges.first_gap()) == reference(written)


def test_sequential_and_gapped_writes_cost_no_more_as_ranges_pile_up() -> None:
    """100,000 one-byte writes each leaving a hole, then 100,000 in order, take well under a second each:
    neither grows with the number of ranges."""
    for stride in (2, 1):
        ranges = WrittenRanges()
        started = time.perf_counter()
        for i in range(100_000):
            ranges.add(i * stride, i * stride + 1)
        assert time.perf_counter() - started < 1.0
        assert ranges.holes == (100_000 - 1 if stride == 2 else 0)
