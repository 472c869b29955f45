"""CPU time of a benchmark's server process, read from Linux ``/proc`` (NaN elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process ``pid`` so far, with that of the children it has reaped (sshd's
    finished sessions); NaN where ``/proc`` is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
