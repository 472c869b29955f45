"""``requirements.lock`` and ``pyproject.toml`` agree: every dependency pyproject names (runtime and dev) is
pinned in the lock at a version its range allows, and every pin carries hashes (``make setup`` installs
with ``--require-hashes``). A range changed without ``make lock`` fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def pins() -> dict[str, Version]:
    found = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if match := PIN.match(line):
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    """Each requirement of pyproject.toml has a pin in the lock that satisfies its specifier."""
    locked = pins()
    problems = []
    for req in declared():
        pinned = locked.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name}: not in requirements.lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}: locked {pinned}, pyproject.toml allows {req.specifier}")
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_every_pin_has_hashes() -> None:
    """Each pinned requirement is followed by at least one ``--hash=sha256:`` line."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (REPO / "requirements.lock").read_text())
    unhashed = [b.split()[0] for b in blocks if PIN.match(b) and "--hash=sha256:" not in b]
    assert len(pins()) > 40
    assert not unhashed
