"""The key that signs OAuth2 access tokens: ``<data dir>/oauth-signing.key``, 32 random bytes, mode 0600.

Created at the first start, atomically (a daemon sharing the folder that loses the race reads the
winner's), so every daemon of one store signs and accepts the same tokens. Deleting the file revokes every
access token at the next start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from engine.blobs import fsync_dir
from engine.services.oauth import KEY_BYTES

FILE_NAME = "oauth-signing.key"


def load_or_create(data_dir: Path) -> bytes:
    path = data_dir / FILE_NAME
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        temp = data_dir / f".{FILE_NAME}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # fails if another daemon got there first: its key wins
        except FileExistsError:
            pass
        finally:
            temp.unlink()
        fsync_dir(data_dir)
        key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise ValueError(f"{path} holds {len(key)} bytes; delete it to make a new key (it must hold {KEY_BYTES})")
    return key
