"""Where partners' files live on disk, and how an SFTP path maps onto a partner's virtual root.

Disk layout under ``<data dir>/sftp`` (one filesystem, so every ``rename`` is atomic):

* ``partners/<CODE>/in/[<SYNTAX>/]<name>``: uploads with a temporary name, held until renamed into place;
* ``partners/<CODE>/out/<name>``: return flows, written only by the outbox, read and deleted by the partner;
* ``uploads/``: uploads being written (never visible to anyone);
* ``outbox/``: return flows being written, and the outbox's intent markers;
* ``host_keys/``: the server's host keys.

A partner's virtual root holds ``/in`` (with one sub-folder per syntax) and ``/out`` and nothing else.
``resolve`` is the one function turning a client path into a ``VirtualPath``: it decodes, normalises and
refuses anything that is not one of those places, so no other module ever joins a client path itself.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from engine.deposit import MAX_FILE_NAME_CHARS
from engine.model import Syntax

SYNTAX_FOLDERS = {s.value: s for s in Syntax}
TEMPORARY_SUFFIXES = (".tmp", ".part")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Area(enum.Enum):
    ROOT = "root"
    IN = "in"
    OUT = "out"


class PathRefused(Exception):
    """A client path that names nothing a partner may reach; ``missing`` tells not-found from refused."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class VirtualPath:
    """A place in a partner's root: a folder (``name is None``) or a file in ``in/`` or ``out/``."""

    area: Area
    syntax: Syntax | None = None  # the in/<SYNTAX>/ sub-folder
    name: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.name is None

    @property
    def text(self) -> str:
        """The canonical client path (``/in/IN_DP_E1_UBL_INVOICE/a.xml``)."""
        if self.area is Area.ROOT:
            return "/"
        parts = ["", self.area.value]
        if self.syntax is not None:
            parts.append(self.syntax.value)
        if self.name is not None:
            parts.append(self.name)
        return "/".join(parts)


def is_temporary_name(name: str) -> bool:
    """Hidden or temporary names are held in ``in/`` until renamed into place (DESIGN §8)."""
    return name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


def check_file_name(name: str) -> str | None:
    """Why ``name`` cannot be a flow's file name, or None when it can."""
    if len(name) > MAX_FILE_NAME_CHARS:
        return f"file names are at most {MAX_FILE_NAME_CHARS} characters"
    if _CONTROL.search(name) or "\\" in name:
        return "file names may not contain control characters or backslashes"
    if not name.strip():
        return "file names may not be blank"
    return None


def resolve(raw: bytes) -> VirtualPath:
    """The ``VirtualPath`` named by the client path ``raw`` (relative paths start at ``/``).

    ``..`` is followed only inside the root; anything else raises ``PathRefused`` with a message for the
    partner. Absolute paths are taken inside the root: ``/etc/passwd`` is simply not there.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PathRefused("paths must be UTF-8") from None
    if "\x00" in text:
        raise PathRefused("paths may not contain NUL characters")
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathRefused("'..' would leave your root, which holds only in/ and out/")
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        return VirtualPath(Area.ROOT)
    top, rest = parts[0], parts[1:]
    if top == "out":
        if not rest:
            return VirtualPath(Area.OUT)
        if len(rest) == 1 and not rest[0].startswith("."):
            return VirtualPath(Area.OUT, name=rest[0])
        raise PathRefused(f"no such file in out/: {'/'.join(rest)}", missing=True)
    if top == "in":
        return _resolve_in(rest)
    raise PathRefused(f"no such file or folder: /{'/'.join(parts)} (your root holds only in/ and out/)", missing=True)


def _resolve_in(rest: list[str]) -> VirtualPath:
    if not rest:
        return VirtualPath(Area.IN)
    syntax = SYNTAX_FOLDERS.get(rest[0])
    if syntax is not None:
        if len(rest) == 1:
            return VirtualPath(Area.IN, syntax=syntax)
        if len(rest) == 2:
            return VirtualPath(Area.IN, syntax=syntax, name=rest[1])
    elif len(rest) == 1:
        return VirtualPath(Area.IN, name=rest[0])
    raise PathRefused(
        "in/ has one sub-folder per syntax (e.g. in/IN_DP_E1_UBL_INVOICE/) and no other folders",
        missing=True,
    )


@dataclass(frozen=True)
class PartnerFolders:
    """The on-disk layout shared by the SFTP server and the outbox (see the module docstring)."""

    root: Path  # <data dir>/sftp

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def outbox_work(self) -> Path:
        return self.root / "outbox"

    @property
    def host_keys(self) -> Path:
        return self.root / "host_keys"

    def partner(self, code: str) -> Path:
        return self.root / "partners" / code

    def inbox(self, code: str, syntax: Syntax | None = None) -> Path:
        base = self.partner(code) / "in"
        return base / syntax.value if syntax is not None else base

    def outbox(self, code: str) -> Path:
        return self.partner(code) / "out"

    def held(self, code: str, where: VirtualPath) -> Path:
        """The disk path of a held (temporarily named) file in ``in/``."""
        assert where.area is Area.IN and where.name is not None
        return self.inbox(code, where.syntax) / where.name

    def create(self, code: str | None = None) -> None:
        """Create the shared folders, and a partner's ``in/`` (with syntax sub-folders) and ``out/``."""
        for path in (self.uploads, self.outbox_work, self.host_keys):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if code is not None:
            for syntax in (None, *Syntax):
                self.inbox(code, syntax).mkdir(parents=True, exist_ok=True, mode=0o700)
            self.outbox(code).mkdir(parents=True, exist_ok=True, mode=0o700)
