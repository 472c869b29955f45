"""Which bytes of an upload were written: sorted, disjoint byte ranges, cheap to update at every write.

Invariants: the ranges are half-open ``[start, end)``, sorted, and neither overlap nor touch (a write that
reaches a neighbour merges with it), so a complete upload is one range from 0. A write past the last range
(the sequential case, with or without a gap) costs O(1); any other write costs two binary searches plus,
when it opens or closes holes, one list move bounded by the number of ranges, which the intake caps
(``max_upload_holes``). The previous bookkeeping sorted and popped a list at every write: 40,000 gapped
writes held the event loop for seconds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class WrittenRanges:
    """The ranges written so far, in two parallel lists (starts and ends) that ``bisect`` searches."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        """Mark ``[start, end)`` written, merging it with every range it overlaps or touches."""
        if start >= end:
            return
        starts, ends = self._starts, self._ends
        if not ends or start > ends[-1]:  # past everything written: appended, O(1)
            starts.append(start)
            ends.append(end)
            return
        if start >= starts[-1]:  # overlaps or continues the last range: the sequential case, O(1)
            ends[-1] = max(ends[-1], end)
            return
        first = bisect_left(ends, start)  # the first range ending at or after start (touching counts)
        stop = bisect_right(starts, end)  # ranges [first, stop) overlap or touch [start, end)
        if first == stop:
            starts.insert(first, start)
            ends.insert(first, end)
            return
        starts[first] = min(starts[first], start)
        ends[first] = max(ends[stop - 1], end)
        del starts[first + 1 : stop]
        del ends[first + 1 : stop]

    @property
    def holes(self) -> int:
        """Gaps never written below the end of the last range (a gap at offset 0 counts)."""
        if not self._starts:
            return 0
        return len(self._starts) - (1 if self._starts[0] == 0 else 0)

    def first_gap(self) -> int:
        """The first offset not written: the end of the range starting at 0, else 0."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0
