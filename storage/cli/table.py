"""Plain tables for output that is not a terminal: the same characters Rich prints, without Rich.

Rich lays a table out by measuring and wrapping every cell (about 1 ms of CPU per row: a
1,000-volume `storagectl volume list` spent 1 s of its 1.4 s there). When stdout is not a
terminal there are no colours to emit, so for cells of plain text (printable ASCII, no Rich
markup, no emoji code, no surrounding whitespace) the table is the heavy-head box at its
natural width, which ``render`` writes directly. ``plain_cell`` says which cells qualify; any
other cell, a title or caption wider than the table, or a stdout encoding that is not UTF-8
(Rich would draw an ASCII box) leaves the table to Rich. tests/test_cli_table.py compares the
two outputs on a table of cases.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

# Rich replaces ``:name:`` with an emoji; names without a letter that it knows (a test keeps
# this equal to rich._emoji_codes): any other ``:...:`` without a letter is left as it is.
EMOJI_WITHOUT_LETTERS = frozenset({"100", "1234", "+1", "-1", "__1"})
_EMOJI = re.compile(r":(\S*?)(?:-(?:emoji|text))?:")
_LETTER = re.compile(r"[A-Za-z]")
_PLAIN = re.compile(r"[\x20-\x5a\x5c-\x7e]*")  # printable ASCII except "[" (Rich markup)


def plain_cell(text: str) -> bool:
    """Whether Rich would print ``text`` unchanged in a table cell of a non-terminal (pure)."""
    if not _PLAIN.fullmatch(text) or text != text.strip(" "):
        return False
    for match in _EMOJI.finditer(text):
        name = match.group(1)
        if _LETTER.search(name) or name in EMOJI_WITHOUT_LETTERS:
            return False
    return True


# Variables under which Rich would colour, size or box a table differently from ``render``.
RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "JUPYTER_COLUMNS")


def plain_stream(out: TextIO | Any, environ: Mapping[str, str]) -> bool:
    """Whether ``out`` is a pipe or file that Rich would give plain UTF-8 box characters without
    colours under ``environ`` (no variable of RICH_ENV set)."""
    if any(k in environ for k in RICH_ENV):
        return False
    try:
        if out.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    return utf8(out)


def utf8(out: TextIO | Any) -> bool:
    """Whether ``out`` encodes UTF-8 (Rich draws an ASCII box otherwise)."""
    return (getattr(out, "encoding", None) or "").lower().replace("-", "").startswith("utf")


def _centred(text: str, width: int) -> str:
    left = (width - len(text)) // 2
    return " " * left + text + " " * (width - len(text) - left)


def _layout(
    columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None, caption: str | None
) -> tuple[list[int], int] | None:
    """Column widths and the table's width, or None when Rich must draw it (pure)."""
    if not all(plain_cell(c) for c in columns) or not all(plain_cell(c) for row in rows for c in row):
        return None
    if any(len(row) != len(columns) for row in rows):
        return None
    widths = [len(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    total = sum(widths) + 3 * len(widths) + 1
    for note in (title, caption):
        if note and (not plain_cell(note) or len(note) > total):
            return None
    return widths, total


def render(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None, caption: str | None = None
) -> Iterator[str] | None:
    """The lines of the table (each without its newline), or None when Rich must draw it.

    Cells are left-justified like print_table's Rich columns (its numeric columns use
    overflow="ignore", under which Rich does not right-justify either)."""
    layout = _layout(columns, rows, title, caption)
    return None if layout is None else _lines(columns, rows, *layout, title, caption)


# Variables under which Rich on a terminal would colour or size a table otherwise than
# ``terminal_render`` (COLUMNS is read as Rich reads it).
TERMINAL_ENV = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES")
BOLD, RESET = "\x1b[1m", "\x1b[0m"


def terminal_width(environ: Mapping[str, str]) -> int:
    """The width Rich's Console gives a table: the size of the first of stdin, stdout and stderr
    that is a terminal, COLUMNS instead when it is digits, 80 when neither says."""
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    columns = environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80


def terminal_render(columns: Sequence[str], rows: Sequence[Sequence[str]], environ: Mapping[str, str]) -> list[str] | None:
    """The lines Rich prints for this table (header_style="bold", no title) on a UTF-8 terminal,
    or None when Rich must draw it: the plain table with every header cell in bold, when its
    cells are plain, it fits the terminal's width (Rich would narrow and wrap columns) and no
    variable of TERMINAL_ENV or a dumb TERM changes Rich's styles. Rich lays a table out at
    about 1 ms per row; this costs microseconds (tests/test_cli_fast.py compares the bytes)."""
    if any(k in environ for k in TERMINAL_ENV) or environ.get("TERM", "").strip().lower() in ("dumb", "unknown"):
        return None
    layout = _layout(columns, rows, None, None)
    if layout is None or layout[1] > terminal_width(environ):
        return None
    lines = list(_lines(columns, rows, *layout, None, None))
    cells = lines[1].split("┃")  # the header: "", " Name ", ..., ""
    lines[1] = "┃".join([cells[0], *(f"{BOLD} {RESET}{BOLD}{c[1:-1]}{RESET}{BOLD} {RESET}" for c in cells[1:-1]), cells[-1]])
    return lines


def _lines(
    columns: Sequence[str], rows: Sequence[Sequence[str]], widths: list[int], total: int,
    title: str | None, caption: str | None,
) -> Iterator[str]:  # fmt: skip
    if title:
        yield _centred(title, total)
    yield "┏" + "┳".join("━" * (w + 2) for w in widths) + "┓"
    yield "┃" + "┃".join(f" {c:<{w}} " for c, w in zip(columns, widths, strict=True)) + "┃"
    yield "┡" + "╇".join("━" * (w + 2) for w in widths) + "┩"
    for row in rows:
        yield "│" + "│".join(f" {c:<{w}} " for c, w in zip(row, widths, strict=True)) + "│"
    yield "└" + "┴".join("─" * (w + 2) for w in widths) + "┘"
    if caption:
        yield _centred(caption, total)


def rich(console: Any, columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None,
         numeric: Sequence[str] = (), caption: str | None = None) -> None:
    """Print the table with Rich on ``console``: every table of the CLI that Rich draws (a
    terminal, or cells ``render`` leaves to Rich); ``numeric`` columns are never wrapped or
    truncated (Rich narrows the other columns instead)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold", caption=caption)
    for col in columns:
        if col in numeric:
            table.add_column(col, justify="right", no_wrap=True, overflow="ignore")
        else:
            table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
