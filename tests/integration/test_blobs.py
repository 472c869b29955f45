"""The blob store on a real file system: content addressing, atomic writes, limits, a full disk."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.blobs import TEMP_DIR, BlobStore
from engine.errors import FlowTooLarge, StorageFull
from tests.tmpfs import mounted_tmpfs


def final_files(root: Path) -> list[Path]:
    """Every file under a final (content-addressed) name."""
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != TEMP_DIR]


def temp_files(root: Path) -> list[Path]:
    tmp = root / TEMP_DIR
    return list(tmp.iterdir()) if tmp.is_dir() else []


def test_put_bytes_round_trip(tmp_path: Path) -> None:
    """put_bytes returns the sha256 as key, the size, and the bytes come back under root/ab/cd/<sha256>."""
    blobs = BlobStore(tmp_path / "blobs")
    data = b"<Invoice>1</Invoice>"
    key, sha, size = blobs.put_bytes(data)
    assert key == sha == hashlib.sha256(data).hexdigest()
    assert size == len(data)
    assert blobs.path(key) == tmp_path / "blobs" / key[:2] / key[2:4] / key
    assert blobs.exists(key)
    with blobs.open(key) as f:
        assert f.read() == data
    assert blobs.read_bytes(key) == data
    blobs.delete(key)
    assert not blobs.exists(key)
    blobs.delete(key)  # deleting an absent blob is fine
    assert temp_files(tmp_path / "blobs") == []


def test_put_stream_from_chunks_and_file(tmp_path: Path) -> None:
    """put_stream takes an iterable of chunks or a binary file and stores their concatenation."""
    blobs = BlobStore(tmp_path)
    key, _, size = blobs.put_stream([b"ab", b"", b"cd"], max_bytes=4)
    assert (blobs.read_bytes(key), size) == (b"abcd", 4)
    big = bytes(range(256)) * 10_000  # spans several read chunks
    key2, sha2, size2 = blobs.put_stream(io.BytesIO(big), max_bytes=len(big))
    assert (sha2, size2) == (hashlib.sha256(big).hexdigest(), len(big))
    assert blobs.read_bytes(key2) == big


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    """Storing the same bytes twice reuses the existing blob: one file, same key, no temp file left."""
    blobs = BlobStore(tmp_path)
    first = blobs.put_bytes(b"same")
    path = blobs.path(first[0])
    mtime = path.stat().st_mtime_ns
    assert blobs.put_stream([b"sa", b"me"], max_bytes=None) == first
    assert final_files(tmp_path) == [path]
    assert path.stat().st_mtime_ns == mtime
    assert temp_files(tmp_path) == []


def test_size_limit_leaves_no_file(tmp_path: Path) -> None:
    """A stream over max_bytes raises FlowTooLarge, stops reading, and leaves no blob and no temp file."""
    blobs = BlobStore(tmp_path)
    consumed: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(100):
            consumed.append(i)
            yield b"x" * 1000

    with pytest.raises(FlowTooLarge) as info:
        blobs.put_stream(chunks(), max_bytes=2500)
    assert info.value.limit_bytes == 2500 and info.value.size_bytes > 2500
    assert len(consumed) == 3  # stopped at the first chunk over the limit
    assert final_files(tmp_path) == []
    assert temp_files(tmp_path) == []


def test_temporary_file_never_has_a_final_name(tmp_path: Path) -> None:
    """While a stream is being written, its bytes sit in a temp file; no final name exists until the end."""
    blobs = BlobStore(tmp_path)
    seen: list[tuple[list[Path], list[Path]]] = []

    def chunks() -> Iterator[bytes]:
        yield b"first half "
        seen.append((final_files(tmp_path), temp_files(tmp_path)))
        yield b"second half"

    key, _, _ = blobs.put_stream(chunks(), max_bytes=None)
    [(finals, temps)] = seen
    assert finals == [] and len(temps) == 1 and temps[0].suffix == ".tmp"
    assert final_files(tmp_path) == [blobs.path(key)]
    assert temp_files(tmp_path) == []


def test_sweep_temp_removes_leftovers(tmp_path: Path) -> None:
    """sweep_temp removes temp files an interrupted write left behind, and keeps stored blobs."""
    blobs = BlobStore(tmp_path)
    assert blobs.sweep_temp() == 0
    key, _, _ = blobs.put_bytes(b"kept")
    (tmp_path / TEMP_DIR / "dead.tmp").write_bytes(b"partial")
    assert blobs.sweep_temp() == 1
    assert temp_files(tmp_path) == []
    assert blobs.read_bytes(key) == b"kept"


def test_invalid_key_is_refused(tmp_path: Path) -> None:
    """A key that is not a sha256 hex digest (e.g. a path) is refused before touching the file system."""
    blobs = BlobStore(tmp_path)
    for key in ("../../etc/passwd", "AB" * 32, "ab" * 31):
        with pytest.raises(ValueError):
            blobs.path(key)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root and mount); skipped where it cannot be mounted."""
    with mounted_tmpfs(tmp_path / "tiny", "64k") as mount_point:
        yield mount_point


def test_full_disk_raises_storage_full_and_leaves_nothing(tiny_fs: Path) -> None:
    """ENOSPC while writing raises StorageFull and leaves no temp file; blobs stored before are intact."""
    blobs = BlobStore(tiny_fs / "blobs")
    small_key, _, _ = blobs.put_bytes(b"small")
    with pytest.raises(StorageFull) as info:
        blobs.put_bytes(b"y" * 200_000)
    assert isinstance(info.value.__cause__, OSError)
    assert temp_files(tiny_fs / "blobs") == []
    assert final_files(tiny_fs / "blobs") == [blobs.path(small_key)]
    assert blobs.read_bytes(small_key) == b"small"


def test_adopt_renames_the_file_into_place_without_copying(tmp_path: Path) -> None:
    """adopt() hashes a complete file on the blob file system and renames it to its final name (the same
    inode: no copy); a second file with the same content is dropped and the intact copy kept."""
    blobs = BlobStore(tmp_path / "blobs")
    spill = tmp_path / "uploads"
    spill.mkdir()
    data = os.urandom(3 * 1024 * 1024)
    first = spill / ".upload-1"
    first.write_bytes(data)
    inode = first.stat().st_ino
    key, sha, size = blobs.adopt(first)
    assert key == sha == hashlib.sha256(data).hexdigest() and size == len(data)
    final = blobs.path(key)
    assert final.stat().st_ino == inode and final.read_bytes() == data
    assert not first.exists() and temp_files(tmp_path / "blobs") == []
    second = spill / ".upload-2"
    second.write_bytes(data)
    assert blobs.adopt(second) == (key, key, len(data))
    assert not second.exists() and final.stat().st_ino == inode
    assert final_files(tmp_path / "blobs") == [final]
