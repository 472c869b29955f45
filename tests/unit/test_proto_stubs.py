"""The committed ``fluxdepot.v1`` stubs are what ``make proto`` generates from ``proto/`` (STYLE rule 11)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTOS = sorted((REPO / "proto" / "fluxdepot" / "v1").glob("*.proto"))
# Lines naming the generator's own version may differ between two grpcio-tools releases; the
# descriptors, messages and services may not.
_VERSION_LINE = re.compile(r"^(# Protobuf Python Version:.*|GRPC_GENERATED_VERSION = .*|    \d+,)$", re.MULTILINE)


def _normalised(path: Path) -> str:
    return _VERSION_LINE.sub("<version>", path.read_text("utf-8"))


def test_committed_stubs_match_the_proto_files(tmp_path: Path) -> None:
    """Regenerating the stubs into a temporary folder gives the committed files, byte for byte
    (generator version lines aside): nobody edited them and nobody forgot ``make proto``."""
    assert PROTOS, "no .proto files found"
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'proto'}",
            f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
            *map(str, PROTOS),
        ],
        check=True,
    )  # fmt: skip
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "fluxdepot" / "v1").iterdir())
    committed = sorted(
        p.relative_to(REPO) for p in (REPO / "fluxdepot" / "v1").iterdir() if p.suffix in (".py", ".pyi")
    )
    assert [str(p) for p in generated] == [str(p) for p in committed if p.name != "__init__.py"]
    for rel in generated:
        assert _normalised(tmp_path / rel) == _normalised(REPO / rel), f"{rel} is stale: run `make proto`"
