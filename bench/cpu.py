"""CPU time of a benchmark's server process, read from Linux ``/proc`` (NaN elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time so far of process ``pid`` and all its descendants: the live ones (the
    deposits' writer process) and those it has reaped (sshd's finished sessions); NaN where ``/proc``
    is missing."""
    fields = _stat(pid)
    if fields is None:
        return float("nan")
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in children(pid):
        spent = cpu_seconds(child)
        if spent == spent:  # not NaN: a child that ended meanwhile is counted in cutime/cstime above
            total += spent
    return total


def own_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time so far of process ``pid`` alone (all its threads), NaN where ``/proc`` is missing."""
    fields = _stat(pid)
    if fields is None:
        return float("nan")
    return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def _stat(pid: int | None) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (the state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def children(pid: int | None) -> list[int]:
    """The live child processes of ``pid`` (every thread's: a pool may start them from its own thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found
