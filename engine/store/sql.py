"""Named SQL for both backends: a statement's text per dialect, always with named parameters (``:name``).

Every statement is a constant of an ``sql_*`` module (STYLE rule 4): ``both(text)`` when the dialects
agree; ``Statement(sqlite=..., postgres=...)`` when they do not (lists are ``json_each`` of a JSON array on
SQLite, arrays on PostgreSQL; casts; row locks). A dialect's text ``None`` means it has nothing to run
there (the step is a no-op on that backend, e.g. a lock SQLite's single writer already holds).

Invariants:

* No text is built from a value: values travel as named parameters only.
* asyncpg binds ``$n`` only, so ``positional`` is the one place names become positions: it compiles a
  text once (cached) into its ``$n`` form and the names in order, and maps a parameter dict to the tuple.
  Casts (``::``), string literals and comments are left alone.
* A ``Where`` statement is a head, WHERE predicates and a tail: a head that two dialects share, and the
  monitoring's optional filters. On PostgreSQL the text holds every predicate, an optional one written
  to pass when its parameters are NULL (``:x IS NULL OR …``), run with custom plans that fold the unused
  ones away. SQLite plans a statement once for every value, so an unused ``:x IS NULL OR …`` costs it the
  index the filter needs (measured on 200,000 flows: a user's first page 1.5 → 15 ms, the watchdog's
  count 27 → 72 ms, a flow number 0.2 → 92 ms): its optional predicates are plain, and its text holds
  those whose parameters are set. A text depends on which filters are set, never on their values; each
  shape is rendered once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

Params = Mapping[str, Any]
NO_PARAMS: Params = MappingProxyType({})


@dataclass(frozen=True)
class Predicate:
    """A term of a ``Where`` statement. On SQLite it is there when every one of ``params`` is set (not
    None), always when ``params`` is empty; PostgreSQL texts hold every predicate."""

    sql: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Where:
    """``head`` WHERE the predicates joined by AND (TRUE when none is there) ``tail``."""

    head: str
    predicates: tuple[Predicate, ...]
    tail: str = ""

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """The parameters the predicates depend on."""
        return tuple(dict.fromkeys(name for p in self.predicates for name in p.params))


Text = str | Where | None


@dataclass(frozen=True)
class Statement:
    """One named statement: its text in each dialect (see the module docstring)."""

    sqlite: Text
    postgres: Text

    def sqlite_text(self, params: Params = NO_PARAMS) -> str | None:
        text = self.sqlite
        if not isinstance(text, Where):
            return text
        return _render(text, tuple(name for name in text.names if params.get(name) is not None))

    def postgres_positional(self) -> Positional | None:
        text = self.postgres
        if text is None:
            return None
        return positional(_render(text, None) if isinstance(text, Where) else text)


def both(text: str | Where) -> Statement:
    """A statement whose text is the same in both dialects."""
    return Statement(sqlite=text, postgres=text)


def per_dialect(head: str, sqlite: tuple[Predicate, ...], postgres: tuple[Predicate, ...], tail: str = "") -> Statement:
    """A ``Where`` statement whose head and tail both dialects share, with each dialect's predicates."""
    return Statement(sqlite=Where(head, sqlite, tail), postgres=Where(head, postgres, tail))


@functools.cache
def _render(where: Where, present: tuple[str, ...] | None) -> str:
    """The text of ``where`` with the predicates whose parameters are all in ``present`` (every predicate
    when None). Joins the statement's own constant parts only."""
    terms = [p.sql for p in where.predicates if present is None or all(n in present for n in p.params)]
    return where.head + "\nWHERE " + ("\n  AND ".join(terms) or "TRUE") + where.tail


@dataclass(frozen=True)
class Positional:
    """A text with ``$n`` placeholders and the parameter name of each ``n``."""

    text: str
    names: tuple[str, ...]

    def args(self, params: Params) -> tuple[Any, ...]:
        """The values in ``$n`` order (``KeyError`` for a parameter not given; others are ignored)."""
        return tuple(params[name] for name in self.names)


# A string literal, a comment, a cast, or a named parameter (group 1): the first three pass unchanged.
_TOKEN = re.compile(r"'(?:[^']|'')*'|--[^\n]*|::|:([A-Za-z_][A-Za-z0-9_]*)")


@functools.cache
def positional(text: str) -> Positional:
    """``text`` with each ``:name`` replaced by ``$n``, n numbering names in order of first appearance."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return "$" + str(names.index(name) + 1)

    return Positional(_TOKEN.sub(number, text), tuple(names))
