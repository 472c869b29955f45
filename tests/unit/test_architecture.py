"""The gateway is a thin shell (STYLE rules 2-3, DESIGN §1): its faces call the application layer
(``engine.services``), never the store; only the composition roots open and hand out the store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
STORE = "engine.store"

# Modules of gateway/ that may import engine.store, each with its reason.
ALLOWED = {
    "gateway/daemon.py": "the composition root: opens the store and builds the engine on it",
    "gateway/admin_commands.py": "the offline admin command's own composition root",
}


def store_imports(source: str) -> list[str]:
    """Every ``engine.store`` module ``source`` imports (``import``, ``from … import``, ``from engine
    import store``), wherever the statement is: ``TYPE_CHECKING`` blocks and function bodies included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == STORE or a.name.startswith(STORE + ".")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == STORE or node.module.startswith(STORE + "."):
                found.append(node.module)
            elif node.module == "engine":
                found += [f"engine.{a.name}" for a in node.names if a.name == "store"]
    return found


def _modules() -> list[str]:
    return sorted(str(p.relative_to(GATEWAY.parent)) for p in GATEWAY.rglob("*.py"))


def test_the_import_finder_sees_every_form() -> None:
    """The parser finds the store in each way Python can import it, and nothing else."""
    source = (
        "import engine.store\nimport engine.store.port as p\nfrom engine.store.port import Store\n"
        "from engine import store, errors\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from engine.store import open_store\n"
        "def f():\n    from engine.store.sqlite import SqliteStore\n"
        "import engine.storefront\nfrom engine.services import auth\nfrom . import store\n"
    )
    assert store_imports(source) == [
        "engine.store",
        "engine.store.port",
        "engine.store.port",
        "engine.store",
        "engine.store",
        "engine.store.sqlite",
    ]


def test_allowed_modules_exist() -> None:
    """Every module named above exists, so the lists cannot go stale silently."""
    modules = set(_modules())
    assert set(ALLOWED) <= modules


@pytest.mark.parametrize(
    "module",
    [m for m in _modules() if m not in ALLOWED],
)
def test_no_gateway_module_but_the_roots_imports_the_store(module: str) -> None:
    """A face imports the application layer, not ``engine.store``: only the composition roots (and the
    helpers listed in ``ALLOWED`` with their reason) do."""
    source = (GATEWAY.parent / module).read_text(encoding="utf-8")
    assert store_imports(source) == [], f"{module} imports the store; call an engine.services use case"
