"""The SFTP server's host keys: generated on first start, stored 0600, reused ever after.

An ed25519 key for current clients and an RSA key (3072 bits) for old ones. A key file is created with
``O_EXCL`` and mode 0600 and written in full before it is renamed into place, so a crash never leaves a
half-written key, and published with ``link`` (never replacing): daemons sharing one data folder serve
the same keys even when they start together. A key file readable by others is refused (the daemon would
leak its identity).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import asyncssh
import structlog

log = structlog.get_logger("fluxdepot.sftp")

HOST_KEY_TYPES = (
    ("ssh-ed25519", "ssh_host_ed25519_key", {}),
    ("ssh-rsa", "ssh_host_rsa_key", {"key_size": 3072}),
)


class HostKeyError(Exception):
    """A host key file exists but cannot be used."""


def load_or_create_host_keys(folder: Path, *, rsa: bool = True) -> list[asyncssh.SSHKey]:
    """The host keys in ``folder``, generating the missing ones; logs each key's SHA-256 fingerprint."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = []
    for alg, file_name, options in HOST_KEY_TYPES:
        if alg == "ssh-rsa" and not rsa:
            continue
        path = folder / file_name
        created = False
        if not path.exists():
            key = asyncssh.generate_private_key(alg, **options)
            created = _write_private(path, key.export_private_key())
        if not created:  # existing, or another daemon sharing the folder published its key first
            key = _load(path)
        keys.append(key)
        log.info(
            "sftp_host_key",
            algorithm=alg,
            fingerprint=key.get_fingerprint("sha256"),
            path=str(path),
            created=created,
        )
    return keys


def _load(path: Path) -> asyncssh.SSHKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HostKeyError(f"{path}: host key is readable by others (mode {mode:o}); chmod 600 it")
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise HostKeyError(f"{path}: cannot read the host key: {exc}") from exc


def _write_private(path: Path, data: bytes) -> bool:
    """Publish ``data`` at ``path`` unless a key is there already (``link`` never replaces: daemons
    sharing the folder and starting together all end up serving the first key); True when published."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
