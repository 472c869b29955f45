"""The store's named SQL (``engine.store.sql``): named parameters become asyncpg's positions in one place,
optional filters shape SQLite's text and never PostgreSQL's, and every statement of both dialects
prepares against a migrated database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from engine.store import sql_directory, sql_flows, sql_monitoring
from engine.store.sql import Predicate, Statement, Where, positional
from engine.store.sqlite import SqliteStore
from tests.pg import SERVER

MODULES = (sql_flows, sql_monitoring, sql_directory)


def statements() -> Iterator[tuple[str, Statement]]:
    for module in MODULES:
        for name, value in vars(module).items():
            if isinstance(value, Statement):
                yield f"{module.__name__}.{name}", value
            elif isinstance(value, tuple) and all(isinstance(v, Statement) for v in value):
                yield from ((f"{module.__name__}.{name}[{i}]", v) for i, v in enumerate(value))


def test_named_parameters_become_positions_once_each() -> None:
    """Each name gets one ``$n`` in order of first appearance, however often it is used; casts, string
    literals and comments are not parameters; values are mapped by name and extra ones ignored."""
    compiled = positional(
        "SELECT :a::text[] -- :not_a_parameter\nWHERE x = ':b' AND y = ANY (:a::text[]) AND z = :b_2 AND t = :a"
    )
    assert compiled.text == (
        "SELECT $1::text[] -- :not_a_parameter\nWHERE x = ':b' AND y = ANY ($1::text[]) AND z = $2 AND t = $1"
    )
    assert compiled.names == ("a", "b_2")
    assert compiled.args({"b_2": 2, "a": 1, "unused": 3}) == (1, 2)
    with pytest.raises(KeyError):
        compiled.args({"a": 1})


def test_optional_predicates_shape_sqlite_only() -> None:
    """SQLite's text holds the predicates whose parameters are set (TRUE when none is); PostgreSQL's holds
    every predicate whatever the parameters."""
    where = Where("SELECT 1 FROM t", (Predicate("a = :a", ("a",)), Predicate("b = :b AND c = :c", ("b", "c"))))
    statement = Statement(sqlite=where, postgres=where)
    assert statement.sqlite_text({}) == "SELECT 1 FROM t\nWHERE TRUE"
    assert statement.sqlite_text({"a": 1, "b": 2, "c": None}) == "SELECT 1 FROM t\nWHERE a = :a"
    assert statement.sqlite_text({"b": 2, "c": 3}) == "SELECT 1 FROM t\nWHERE b = :b AND c = :c"
    pg = statement.postgres_positional()
    assert pg is not None
    assert pg.text == "SELECT 1 FROM t\nWHERE a = $1\n  AND b = $2 AND c = $3"


def test_every_statement_has_a_text_in_some_dialect() -> None:
    """No statement is empty in both dialects; the catalogue is not empty."""
    found = list(statements())
    assert len(found) > 80
    assert not [name for name, s in found if s.sqlite is None and s.postgres is None]


def _every_filter(statement: Statement) -> dict[str, object]:
    text = statement.sqlite
    names = text.names if isinstance(text, Where) else ()
    return dict.fromkeys(names, "x")


async def test_every_sqlite_statement_prepares(tmp_path: Path) -> None:
    """Each SQLite text, with every optional filter present, is valid SQL on the migrated schema."""
    path = tmp_path / "db.sqlite"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        for name, statement in statements():
            text = statement.sqlite_text(_every_filter(statement))
            if text is not None:
                try:
                    conn.execute("EXPLAIN " + text, dict.fromkeys(_names(text)))
                except sqlite3.Error as exc:
                    pytest.fail(f"{name}: {exc}")
    conn.close()


def _names(text: str) -> set[str]:
    return set(positional(text).names)


async def test_every_postgres_statement_prepares() -> None:
    """Each PostgreSQL text is valid SQL on the migrated schema, its parameter types all inferred."""
    SERVER.ensure()
    conn = await asyncpg.connect(await SERVER.create_database())
    try:
        for name, statement in statements():
            compiled = statement.postgres_positional()
            if compiled is None or ";" in compiled.text:  # a multi-statement text cannot be prepared
                continue
            try:
                await conn.prepare(compiled.text)
            except asyncpg.PostgresError as exc:
                pytest.fail(f"{name}: {exc}")
    finally:
        await conn.close()
