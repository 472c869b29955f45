"""The per-partner SFTP file system: an asyncssh ``SFTPServer`` subclass over a virtual root (STYLE rule 10).

The root holds ``in/`` (write-only: uploads become deposits on close; a listing shows what is pending)
and ``out/`` (read and delete: return flows) and nothing else. Client paths go through
``sftp_paths.resolve`` only; disk paths are built from the partner code and checked names, so ``..``,
absolute paths, symlinks, hard links and renames across roots can reach nothing. Every refusal is an
SFTP error with a message for the partner: the request handlers raise what they meet, and
``gateway.sftp_errors.translated`` applies the one translation table to all of them.

An upload the client did not close itself was abandoned: it is discarded, never deposited. asyncssh
(2.24) calls ``SFTPServer.close`` both for a client's close request and, when the session ends (the
connection dropped, the client sent EOF or closed the channel, the server is stopping), for every handle
left open, before its ``exit`` hook; no public hook tells the two apart. The teardown runs while asyncssh
handles the EOF or error that ended the session's requests, so ``close`` reads that from
``sys.exc_info()``: exact where the channel's state is not (``is_closing`` misses a half-closed channel,
e.g. a killed ``sftp`` whose ``ssh`` lives on, and catches a close request sent just before the client
quit, which must still be deposited). ``exit`` drops any upload left.

asyncssh handles a channel's requests one after the other without returning to the event loop while more
are queued: a client pipelining thousands of small writes would hold the loop for every other partner.
Each write therefore yields to the loop once before it is handled.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncssh
import structlog
from asyncssh import SFTPAttrs, SFTPName

from engine.model import Syntax
from gateway.sftp_errors import translated
from gateway.sftp_intake import Intake, Upload
from gateway.sftp_paths import Area, VirtualPath, is_temporary_name, resolve

log = structlog.get_logger("fluxdepot.sftp")

_DIR_MODE = stat.S_IFDIR | 0o750
_IN_MODE = stat.S_IFDIR | 0o730  # write and enter, but reading happens through our listing
_FILE_MODE = stat.S_IFREG | 0o640
_READ = asyncssh.FXF_READ
_WRITE = asyncssh.FXF_WRITE
_RECENT_DEPOSITS = 64


class OutFile:
    """A return flow opened for reading (``O_NOFOLLOW``: a symlink is never followed)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd


def _dir_attrs(mode: int = _DIR_MODE) -> SFTPAttrs:
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_DIRECTORY, permissions=mode, size=0)


def _file_attrs(size: int, mtime: float | None = None) -> SFTPAttrs:
    at = int(mtime) if mtime is not None else None
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, permissions=_FILE_MODE, size=size, atime=at, mtime=at)


@translated
class PartnerSftpServer(asyncssh.SFTPServer):
    """One partner's SFTP session; the partner is the authenticated user name."""

    def __init__(self, chan: asyncssh.SSHServerChannel, intake: Intake) -> None:
        super().__init__(chan)
        self._partner: str = chan.get_extra_info("username")
        self._intake = intake
        self._folders = intake.folders
        self._uploads: set[Upload] = set()
        self._deposited: dict[VirtualPath, int] = {}  # recent deposits: clients stat what they just closed
        self._folders.create(self._partner)

    # --- paths ---------------------------------------------------------------------------------
    def realpath(self, path: bytes) -> bytes:
        return resolve(path).text.encode()

    def _out_path(self, where: VirtualPath) -> Path:
        assert where.name is not None
        return self._folders.outbox(self._partner) / where.name

    def _stat(self, where: VirtualPath, *, recent: bool = True) -> SFTPAttrs:
        if where.is_dir:
            return _dir_attrs(_IN_MODE if where.area is Area.IN else _DIR_MODE)
        assert where.name is not None
        if where.area is Area.OUT:
            st = self._out_path(where).lstat()
            if not stat.S_ISREG(st.st_mode):
                raise asyncssh.SFTPNoSuchFile("no such file in out/")
            return _file_attrs(st.st_size, st.st_mtime)
        for upload in self._intake.uploading(self._partner):
            if upload.where == where:
                return _file_attrs(upload.size)
        if recent and where in self._deposited:
            return _file_attrs(self._deposited[where])
        st = self._folders.held(self._partner, where).lstat()
        if not stat.S_ISREG(st.st_mode):
            raise asyncssh.SFTPNoSuchFile("no such file in in/")
        return _file_attrs(st.st_size, st.st_mtime)

    def stat(self, path: bytes) -> SFTPAttrs:
        return self._stat(resolve(path))

    lstat = stat

    def fstat(self, file_obj: object) -> SFTPAttrs:
        if isinstance(file_obj, Upload):
            return _file_attrs(file_obj.size)
        assert isinstance(file_obj, OutFile)
        st = os.fstat(file_obj.fd)
        return _file_attrs(st.st_size, st.st_mtime)

    def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self.stat(path)  # exists and reachable; modes and times are not the partner's to change

    def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self.stat(path)

    def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        return None

    # --- listings ------------------------------------------------------------------------------
    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        where = resolve(path)
        if not where.is_dir:
            raise asyncssh.SFTPNoSuchFile("not a folder")
        yield SFTPName(b".", attrs=_dir_attrs())
        yield SFTPName(b"..", attrs=_dir_attrs())
        for name, attrs in await asyncio.to_thread(self._entries, where):
            yield SFTPName(name.encode(), attrs=attrs)

    def _entries(self, where: VirtualPath) -> list[tuple[str, SFTPAttrs]]:
        if where.area is Area.ROOT:
            return [("in", _dir_attrs(_IN_MODE)), ("out", _dir_attrs())]
        if where.area is Area.OUT:
            folder = self._folders.outbox(self._partner)
        else:
            folder = self._folders.inbox(self._partner, where.syntax)
        found: list[tuple[str, SFTPAttrs]] = []
        if where.area is Area.IN and where.syntax is None:
            found += [(s.value, _dir_attrs(_IN_MODE)) for s in Syntax]
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and not (where.area is Area.OUT and entry.name.startswith(".")):
                    st = entry.stat(follow_symlinks=False)
                    found.append((entry.name, _file_attrs(st.st_size, st.st_mtime)))
        if where.area is Area.IN:  # uploads in progress are pending too
            for upload in self._intake.uploading(self._partner):
                if upload.where.syntax == where.syntax and upload.where.name:
                    found.append((upload.where.name, _file_attrs(upload.size)))
        return sorted(found)

    # --- files ---------------------------------------------------------------------------------
    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        where = resolve(path)
        if where.is_dir:
            raise asyncssh.SFTPFileIsADirectory(f"{where.text} is a folder")
        if where.area is Area.OUT:
            if pflags & (_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_APPEND):
                raise asyncssh.SFTPPermissionDenied("out/ is read-only: it holds your return flows")
            fd = os.open(self._out_path(where), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise asyncssh.SFTPNoSuchFile("no such file in out/")
            return OutFile(fd)
        if pflags & _READ or not pflags & _WRITE:
            raise asyncssh.SFTPPermissionDenied("in/ is write-only: upload flows there, collect reports in out/")
        if pflags & asyncssh.FXF_EXCL and self._exists(where):
            raise asyncssh.SFTPFileAlreadyExists(f"{where.text} already exists")
        upload = await self._intake.begin(self._partner, where, append=bool(pflags & asyncssh.FXF_APPEND))
        self._uploads.add(upload)
        return upload

    def _exists(self, where: VirtualPath) -> bool:
        try:
            self._stat(where, recent=False)
        except (OSError, asyncssh.SFTPError):
            return False
        return True

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: SFTPAttrs) -> object:
        raise asyncssh.SFTPOpUnsupported("this server speaks SFTP version 3")

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, OutFile):
            raise asyncssh.SFTPPermissionDenied("in/ is write-only")
        return os.pread(file_obj.fd, size, offset)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, Upload):
            raise asyncssh.SFTPPermissionDenied("out/ is read-only")
        await asyncio.sleep(0)  # let other connections in (see the module docstring)
        await self._intake.write(file_obj, offset, data)
        return len(data)

    def close(self, file_obj: object) -> Any:
        """Close a handle; for an upload, deposit it (returns an awaitable) unless the session is ending."""
        if isinstance(file_obj, OutFile):
            os.close(file_obj.fd)
            return None
        assert isinstance(file_obj, Upload)
        self._uploads.discard(file_obj)
        if sys.exc_info()[1] is not None:  # the session's teardown, not a close request (module docstring)
            log.info("sftp_upload_abandoned", partner=self._partner, file_name=file_obj.where.name)
            self._intake.drop(file_obj)
            return None
        return self._finish(file_obj)

    async def _finish(self, upload: Upload) -> None:
        flow_number = await self._intake.finish(upload)
        if flow_number is not None:
            self._remember(upload.where, upload.size)

    def _remember(self, where: VirtualPath, size: int) -> None:
        """A client may stat the file it just uploaded (paramiko confirms the size): answer for a while."""
        self._deposited.pop(where, None)
        self._deposited[where] = size
        while len(self._deposited) > _RECENT_DEPOSITS:
            del self._deposited[next(iter(self._deposited))]

    def fsync(self, file_obj: object) -> None:
        return None  # an upload is made durable by its deposit, on close

    # --- names ---------------------------------------------------------------------------------
    async def remove(self, path: bytes) -> None:
        where = resolve(path)
        if where.is_dir:
            raise asyncssh.SFTPFileIsADirectory(f"{where.text} is a folder")
        if where.area is Area.OUT:
            target = self._out_path(where)
        else:
            if any(u.where == where for u in self._intake.uploading(self._partner)):
                raise asyncssh.SFTPFailure(f"{where.text} is still being uploaded")
            target = self._folders.held(self._partner, where)
        if not stat.S_ISREG(target.lstat().st_mode):
            raise asyncssh.SFTPNoSuchFile("no such file")
        await asyncio.to_thread(target.unlink)
        if where.area is Area.IN:
            self._intake.forget_held(self._partner, target)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = resolve(oldpath), resolve(newpath)
        if old.area is not Area.IN or new.area is not Area.IN or old.is_dir or new.is_dir:
            raise asyncssh.SFTPPermissionDenied(
                "only a file uploaded under a temporary name in in/ can be renamed, within in/"
            )
        assert old.name is not None
        if not is_temporary_name(old.name) or not self._folders.held(self._partner, old).is_file():
            raise asyncssh.SFTPNoSuchFile(f"{old.text} is not a held upload")
        if self._exists(new):
            raise asyncssh.SFTPFileAlreadyExists(f"{new.text} already exists")
        size = self._folders.held(self._partner, old).stat().st_size
        if await self._intake.deposit_held(self._partner, old, new) is not None:
            self._remember(new, size)

    posix_rename = rename

    def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        where = resolve(path)
        if where.is_dir:
            raise asyncssh.SFTPFileAlreadyExists(f"{where.text} already exists")
        raise asyncssh.SFTPPermissionDenied("folders cannot be created: in/ has one sub-folder per syntax")

    def rmdir(self, path: bytes) -> None:
        resolve(path)
        raise asyncssh.SFTPPermissionDenied("the folders of your root cannot be removed")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")

    def readlink(self, path: bytes) -> bytes:
        resolve(path)
        raise asyncssh.SFTPNoSuchFile("there are no links here")

    def statvfs(self, path: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported")

    def fstatvfs(self, file_obj: object) -> None:
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported")

    def exit(self) -> None:
        """The session ended (asyncssh's hook, after it closed the handles left open): drop any upload."""
        for upload in list(self._uploads):
            log.info("sftp_upload_abandoned", partner=self._partner, file_name=upload.where.name)
            self._intake.drop(upload)
        self._uploads.clear()


def sftp_factory(intake: Intake) -> Callable[[asyncssh.SSHServerChannel], PartnerSftpServer]:
    def make(chan: asyncssh.SSHServerChannel) -> PartnerSftpServer:
        return PartnerSftpServer(chan, intake)

    return make
