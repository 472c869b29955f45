"""Where the shared invoice corpus lives: ``../shared/corpus`` beside the checkout (as on CI)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("FLUXDEPOT_CORPUS", REPO.parent / "shared" / "corpus"))
if not CORPUS.is_dir():  # a checkout elsewhere on a developer machine
    CORPUS = Path("/work/shared/corpus")
