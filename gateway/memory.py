"""Freed big buffers go back to the system.

glibc serves an allocation past its mmap threshold (128 KiB) with its own mapping, returned to the system
when freed, but it raises that threshold (up to 32 MiB) each time such a buffer is freed; from then on
the next big buffers (a 29 MiB deposit's bytes) come from the heap, which keeps them. Measured with ten
parallel 29 MiB deposits: the daemon kept 619 MB afterwards with the sliding threshold, 167 MB with a
fixed one (``bench.hostile``). Setting the threshold explicitly fixes it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # <malloc.h>
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_big_buffers() -> bool:
    """Fix glibc's mmap threshold at 1 MiB; False where there is no glibc (nothing to do there)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, and no sliding threshold either
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
