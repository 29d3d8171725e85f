"""`storagectl`'s entry point: the commands cron and scripts run thousands of times answered
without Typer, pydantic or SQLAlchemy, everything else handed to the full CLI.

Answered here, byte for byte as the full CLI prints them (tests/test_cli_fast.py compares the
two, case by case): ``storagectl --help`` when stdout is not a terminal (the pre-rendered text
of storage/cli/help_text.py), and ``volume list`` / ``backup list`` with their filters and
``--json`` (storage/cli/fast_args.py) on a configuration storage/cli/fast_config.py
understands, from a SQLite catalog at the head revision read with the stdlib sqlite3, when no
row needs settling by the full path (a dead owner of this host left a status behind). Their
tables are written without Rich into a pipe or file (storage/cli/table.py) and drawn by Rich,
through the same function as the full CLI's, on a terminal. Any other case, and any error,
runs storage.cli.main, which owns every message and exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, TextIO

from storage.cli import fast_rows as rows
from storage.cli.fast_args import Request, parse

if TYPE_CHECKING:
    from storage.cli.fast_config import Place

SPOOL_BYTES = 1 << 20  # a --json listing is written to a spool, in memory up to this, then a temporary file
COPY_BLOCK = 1 << 16

# Variables under which Typer's help or Rich would render otherwise than the pre-rendered text.
HELP_ENV = ("LINES", "JUPYTER_LINES", "NO_COLOR", "DATABRICKS_RUNTIME_VERSION", "TERMINAL_WIDTH",
            "_TYPER_FORCE_DISABLE_TERMINAL", "GITHUB_ACTIONS", "PY_COLORS", "TYPER_USE_RICH")  # fmt: skip


def main() -> int:
    code = answer(sys.argv[1:], os.environ, sys.stdout)
    if code is not None:
        return code
    from storage.cli.main import main as full

    return full()


def answer(args: list[str], environ: Mapping[str, str], out: TextIO) -> int | None:
    """Write the answer to ``args`` and return the exit code, or None (nothing written) when the
    full CLI must answer."""
    request = parse(args)
    if request is None or out is None:
        return None
    try:
        text = _text(request, environ, out)
    except Exception:  # noqa: BLE001 - anything unforeseen: the full CLI answers (and words any error)
        return None
    if text is None:
        return None
    try:
        if isinstance(text, str):
            out.write(text)
        else:  # a spooled listing
            with text:
                shutil.copyfileobj(text, out, COPY_BLOCK)
        out.flush()
    except BrokenPipeError:  # the reader left (`| head`): exit 1 and nothing on stderr, as the full CLI
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
        return 1
    return 0


def _text(request: Request, environ: Mapping[str, str], out: TextIO) -> str | IO[str] | None:
    from storage.cli import table

    to_rich = not request.as_json and not table.plain_stream(out, environ)  # a terminal, or Rich's variables
    if to_rich and not _is_terminal(out):
        return None  # Rich's variables on a pipe: the full CLI's Rich sizes it
    if request.command == "help":
        if to_rich or any(k in environ for k in HELP_ENV):  # Typer's Rich help: the full CLI draws it
            return None
        from storage.cli.help_text import HELP

        text: str | IO[str] | None = HELP
    else:
        from storage.cli.fast_config import resolve

        place = resolve(request.config, environ)
        if place is None:
            return None
        text = (volume_list if request.command == "volume" else backup_list)(request, place, out if to_rich else None)  # or Unsure
    return text


def _is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _stream(place: Place, sql: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    from storage.catalog.db import HEAD_REVISION
    from storage.catalog.sqlite_reads import iter_sqlite

    found = iter_sqlite(place.catalog_file, sql, params, head=HEAD_REVISION)
    if found is None:
        raise rows.Unsure(place.catalog_file)
    return found


def _wanted_labels(request: Request) -> dict[str, str] | None:
    from storage.bounds import parse_label_items
    from storage.errors import StorageError

    try:
        return parse_label_items(list(request.labels)) or None
    except StorageError:
        raise rows.Unsure("labels") from None


def _dead_owner(owners: Iterable[tuple[Any, ...]]) -> bool:
    from storage.owners import is_dead_here

    return any(owner and is_dead_here(owner) for *_, owner in owners)


def volume_list(request: Request, place: Place, rich_to: TextIO | None = None) -> str | None:
    if request.status is not None and request.status not in rows.VOLUME_STATUSES:
        return None  # InvalidInput: the full CLI words it
    wanted = _wanted_labels(request)
    if _dead_owner(_stream(place, *rows.transitional_owners_sql())):
        return None  # the full path settles them first
    params = {k: v for k, v in (("pool", request.pool), ("status", request.status)) if v is not None}
    sql = rows.volume_list_sql(pool=request.pool is not None, status=request.status is not None)
    found = (rows.volume(r) for r in _stream(place, sql, params))
    found = (v for v in found if not wanted or all(v["labels"].get(k) == x for k, x in wanted.items()))
    if request.as_json:
        return _json(found)
    vols = list(found)
    cells = [[v["name"], v["id"], rows.format_size(v["size_bytes"]), v["pool"], v["status"], v["attached_device"] or "",
              ",".join(f"{k}={x}" for k, x in sorted(v["labels"].items()))] for v in vols]  # fmt: skip
    return _table(rows.VOLUME_COLUMNS, cells, rich_to)


def backup_list(request: Request, place: Place, rich_to: TextIO | None = None) -> str | None:
    wanted = _wanted_labels(request)
    if _dead_owner(_stream(place, "SELECT owner FROM backups WHERE status = :status", {"status": "creating"})):
        return None  # the full path marks them interrupted first
    params = {} if request.status is None else {"status": request.status}
    pairs = (rows.backup(r) for r in _stream(place, rows.backup_list_sql(status=request.status is not None), params))
    if request.volume is not None:
        pairs = ((b, c) for b, c in pairs if request.volume in (b["volume_id"], b["volume_name"]))
    if wanted:
        pairs = ((b, c) for b, c in pairs if all(b["labels"].get(k) == x for k, x in wanted.items()))
    if request.as_json:
        return _json(b for b, _ in pairs)
    found = list(pairs)
    cells = [[b["id"], b["name"] or "", b["volume_name"] or b["source"] or "", b["status"], rows.format_size(b["size_bytes"]),
              rows.format_size(b["stored_bytes"]), f"{b['new_chunk_count']}/{b['dedup_chunk_count']}/{b['zero_chunk_count']}",
              c.strftime("%Y-%m-%d %H:%M:%S") if c else ""] for b, c in found]  # fmt: skip
    return _table(rows.BACKUP_COLUMNS, cells, rich_to)


def _json(items: Iterable[dict[str, Any]]) -> IO[str]:
    """storage.cli.common.print_json of the models, written item by item to a spool (memory
    stays flat however long the listing; nothing reaches stdout until every row was read, so a
    row left to the full CLI still falls back cleanly): json.dumps(list, indent=2) is "[", each
    item's own indent=2 text shifted by two spaces, joined by ",", then "]". Each item is
    pydantic-core's text when it is ASCII (which leaves DEL as it is), else json.dumps' (which
    escapes everything else); for an ASCII item the two agree, so deciding per item is deciding
    for the whole."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8", newline="")
    try:
        first = True
        for item in items:
            text = json.dumps(item, indent=2, ensure_ascii=False)
            if not text.isascii():
                text = json.dumps(item, indent=2)
            spool.write(("[\n  " if first else ",\n  ") + text.replace("\n", "\n  "))
            first = False
        spool.write("[]\n" if first else "\n]\n")
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _table(columns: tuple[str, ...], cells: list[list[str]], rich_to: TextIO | None) -> str | None:
    """The plain table's text; or, for a terminal (``rich_to``), the text Rich would print there
    (storage.cli.table.terminal_render), else the table printed there by Rich exactly as the
    full CLI prints it (storage.cli.table.rich on a Console of that stream), and "".
    """
    from storage.cli import table

    if rich_to is not None:
        drawn = table.terminal_render(columns, cells, os.environ) if table.utf8(rich_to) else None
        if drawn is not None:
            return "".join(line + "\n" for line in drawn)
        from rich.console import Console

        table.rich(Console(file=rich_to), columns, cells)
        return ""
    lines = table.render(columns, cells)
    return None if lines is None else "".join(line + "\n" for line in lines)


if __name__ == "__main__":
    sys.exit(main())
