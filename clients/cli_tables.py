"""Tables that fit the console's width: whole columns dropped, long text folded, nothing cut short.

Each ``Col`` says how it gives way when the console is narrow. A ``fixed`` column (flow numbers,
statuses, codes, counts) keeps its natural width and is never cut: a truncated status would be a lie.
A ``fold`` column (file names, messages, labels, dates) shrinks down to ``min_width``, never below its
header, and wraps or folds its text. When even that does not fit, whole columns go, the one with the
highest ``drop`` first (``drop=0``: never). Every column shown keeps its header on one line. With more
room (a wide terminal, or ``COLUMNS``), every column is shown and text is folded less or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.table import Table
from rich.text import Text

Cell = str | Text  # a str is plain text (never markup: cells hold file names and server messages)


@dataclass(frozen=True)
class Col:
    header: str
    drop: int = 0  # the column goes when the table does not fit: highest first; 0 never goes
    fold: bool = False  # may wrap or fold its text down to min_width
    min_width: int = 0
    justify: Literal["left", "right"] = "left"


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


def _widths(width: int, cols: Sequence[Col], natural: Sequence[int]) -> list[int] | None:
    """Each column's content width, or None when these columns cannot fit in ``width``."""
    room = width - (3 * len(cols) + 1)  # one border and two spaces of padding per column, one border more
    widths = [n if not c.fold else min(n, max(c.min_width, len(c.header))) for c, n in zip(cols, natural, strict=True)]
    spare = room - sum(widths)
    if spare < 0:
        return None
    while spare > 0:  # grow the narrowest folded column that still folds, one character at a time
        growing = [i for i, c in enumerate(cols) if c.fold and widths[i] < natural[i]]
        if not growing:
            break
        widths[min(growing, key=lambda i: widths[i])] += 1
        spare -= 1
    return widths


def fitted_table(
    width: int,
    cols: Sequence[Col],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
) -> Table:
    """A rich table of ``rows`` (one cell per column of ``cols``) at most ``width`` characters wide."""
    cells = [[_text(c) for c in row] for row in rows]
    keep = list(range(len(cols)))
    while True:
        shown = [cols[i] for i in keep]
        natural = [max([len(cols[i].header)] + [row[i].cell_len for row in cells]) for i in keep]
        widths = _widths(width, shown, natural)
        droppable = [i for i in keep if cols[i].drop]
        if widths is not None or not droppable:
            break
        keep.remove(max(droppable, key=lambda i: cols[i].drop))
    sizes: Sequence[int | None] = widths or []
    if widths is None:  # too narrow even for the columns that never go: rich folds what it can
        sizes = [None if c.fold else n for c, n in zip(shown, natural, strict=True)]
    table = Table(title=title)
    for col, w in zip(shown, sizes, strict=True):
        table.add_column(col.header, justify=col.justify, width=w, no_wrap=not col.fold, overflow="fold")
    for row in cells:
        table.add_row(*(row[i] for i in keep))
    return table
