"""How the CLI prints tables. On a terminal: fitted to its width (the columns that matter least are left out and
named, or one field a line when even the main ones don't fit; `--wide` shows every column), colour for what needs
a look (none with `NO_COLOR` or `--no-color`). Piped: plain text, no box drawing, no colour, every column (fitted
only when `COLUMNS` says how wide), exact times instead of "2 min ago". Cells are inert (fnscope.cli.inert)."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fnscope.cli import human
from fnscope.cli.flags import NO_COLOR, WIDE, flag
from fnscope.cli.inert import terminal

MIN_COLUMNS = 3  # fewer than this side by side reads worse than one field a line


@dataclass(frozen=True)
class Output:
    tty: bool
    color: bool
    width: int | None  # None: no limit (piped, COLUMNS unset)
    wide: bool

    @property
    def relative_times(self) -> bool:
        return self.tty and not self.wide


def current() -> Output:
    """Where this run's output goes and how it may look."""
    tty = sys.stdout.isatty()
    color = tty and not os.environ.get("NO_COLOR") and not flag(NO_COLOR)
    width: int | None = shutil.get_terminal_size().columns if tty else _columns_env()
    return Output(tty=tty, color=color, width=width, wide=flag(WIDE))


def color_enabled() -> bool:
    return current().color


def _columns_env() -> int | None:
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        return None
    return columns if columns > 0 else None


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _no_style(_value: Any) -> str | None:
    return None


@dataclass(frozen=True)
class Column:
    """One column: ``key`` in each row, shown by ``show``, coloured by ``style`` (a rich style, or None), kept
    longer on a narrow terminal the higher its ``keep``; a ``time`` column reads "2 min ago" on a terminal."""

    key: str
    header: str = ""
    show: Callable[[Any], str] = _plain
    style: Callable[[Any], str | None] = _no_style
    keep: int = 50
    right: bool = False
    time: bool = False

    @property
    def title(self) -> str:
        return self.header or self.key

    def cell(self, row: dict[str, Any], out: Output) -> Text:
        value = row.get(self.key)
        shown = human.ago(value) if self.time and out.relative_times else self.show(value)
        return Text(terminal(shown), style=(self.style(value) or "") if out.color else "")


def when(test: Callable[[Any], bool], style: str) -> Callable[[Any], str | None]:
    """A ``style`` for the values ``test`` holds true of (None and "" never)."""
    return lambda value: style if value not in (None, "") and test(value) else None


def print_table(rows: list[dict[str, Any]], columns: Sequence[Column | str]) -> None:
    out = current()
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    cells = [[col.cell(row, out) for col in cols] for row in rows]
    widths = [max([len(col.title), *(row[i].cell_len for row in cells)]) for i, col in enumerate(cols)]
    gap = 3 if out.tty else 2
    shown = list(range(len(cols)))
    if out.width is not None and not out.wide:
        shown = _fit(cols, widths, gap, out.width)
        if shown is None:
            _print_vertical(cols, cells, out)
            return
    hidden = [cols[i].title for i in range(len(cols)) if i not in shown]
    table = Table(
        box=box.HEAVY_HEAD if out.tty else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if out.tty else "",
    )
    for i in shown:
        table.add_column(cols[i].title, no_wrap=True, justify="right" if cols[i].right else "left")
    for row_cells in cells:
        table.add_row(*(row_cells[i] for i in shown))
    needed = sum(widths[i] for i in shown) + gap * (len(shown) - 1)
    _emit(table, out, max(needed, out.width or 0) if out.tty else needed)
    if hidden:
        note = f"(left out to fit {out.width} columns: {', '.join(hidden)}; --wide shows all)"
        click.echo(textwrap.fill(note, out.width or len(note)), err=True)


def _fit(cols: list[Column], widths: list[int], gap: int, width: int) -> list[int] | None:
    """The columns that fit ``width``, least kept left out first (rightmost first among equals); None when fewer
    than MIN_COLUMNS would be left."""
    shown = list(range(len(cols)))
    while sum(widths[i] for i in shown) + gap * (len(shown) - 1) > width:
        if len(shown) <= MIN_COLUMNS:
            return None
        shown.remove(min(reversed(shown), key=lambda i: cols[i].keep))
    return shown


def _print_vertical(cols: list[Column], cells: list[list[Text]], out: Output) -> None:
    """One field a line, a blank line between rows: what a terminal too narrow for a table can still show."""
    label = max(len(col.title) for col in cols)
    blocks = []
    for row_cells in cells:
        lines = [Text.assemble((col.title.ljust(label), "bold" if out.tty else ""), "  ", cell)
                 for col, cell in zip(cols, row_cells, strict=True)]  # fmt: skip
        blocks.append(Text("\n").join(lines))
    _emit(Text("\n\n").join(blocks), out, out.width or 80)


def _emit(renderable: Any, out: Output, width: int) -> None:
    console = Console(
        width=max(width, 20),
        color_system="auto" if out.color else None,
        no_color=not out.color,
        force_terminal=out.tty,
        highlight=False,
        emoji=False,
        markup=False,
    )
    with console.capture() as captured:
        console.print(renderable)
    text = captured.get()
    click.echo("\n".join(line.rstrip() for line in text.rstrip("\n").split("\n")), color=out.tty)
