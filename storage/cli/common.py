"""Shared CLI plumbing: opening Storage, --json output, tables, progress, error mapping.

Rich, pydantic and storage's services load on first use (``console`` and ``err_console`` are
built when first touched), so `storagectl --help` and commands that never print a table
do not pay for them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator

import typer

from storage.errors import StorageError

if TYPE_CHECKING:
    from rich.console import Console

    import storage


def __getattr__(name: str) -> Any:
    """``console`` (stdout) and ``err_console`` (stderr), made on first use and then kept."""
    if name == "console":
        from rich.console import Console

        value = Console()
    elif name == "err_console":
        from rich.console import Console

        value = Console(stderr=True, soft_wrap=True)  # error lines never wrap: scripts grep them
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _out() -> "Console":
    return __getattr__("console") if "console" not in globals() else globals()["console"]


def _err() -> "Console":
    return __getattr__("err_console") if "err_console" not in globals() else globals()["err_console"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


class State:
    """Per-invocation state hung on the Typer context (ctx.obj)."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._storage: storage.Storage | None = None

    @property
    def storage(self) -> storage.Storage:
        if self._storage is None:
            import storage
            from storage.logs import setup

            self._storage = storage.open(self.config)
            setup.apply_settings(self._storage.settings)  # [logging] of the config, host_name
            # with a work queue: a lease from the first device call on, so if this command dies the
            # agents settle what it held (storage.hosts.replicas), also from another machine
            self._storage.lease_on_demand = True
        return self._storage

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()


def get_storage(ctx: typer.Context) -> storage.Storage:
    root = ctx.find_root()
    state = root.obj
    if not isinstance(state, State):
        state = root.obj = State(None)
    return state.storage


def to_jsonable(value: Any) -> Any:
    pydantic = sys.modules.get("pydantic")  # not loaded: value cannot be a pydantic model
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    fast = _model_list_json(value)
    sys.stdout.write((fast if fast is not None else json.dumps(to_jsonable(value), indent=2, sort_keys=False)) + "\n")


_LIST_ADAPTERS: dict[type, Any] = {}


def _model_list_json(value: Any) -> str | None:
    """A list of one pydantic model serialised in pydantic-core (a listing of 1,000 volumes: 3 ms
    instead of 17), or None to take the generic route. The text is what the generic route prints
    (same serialiser, indent, key order); a non-ASCII result, which json.dumps would escape, is
    left to the generic route."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(value, list) or not value:
        return None
    cls = type(value[0])
    if not issubclass(cls, pydantic.BaseModel) or any(type(v) is not cls for v in value):
        return None
    adapter = _LIST_ADAPTERS.get(cls)
    if adapter is None:
        adapter = _LIST_ADAPTERS[cls] = pydantic.TypeAdapter(list[cls])  # type: ignore[valid-type]
    data: bytes = adapter.dump_json(value, indent=2)
    return data.decode() if data.isascii() else None


def print_table(
    rows: Iterable[Sequence[Any]], columns: Sequence[str], title: str | None = None, *,
    numeric: Sequence[str] = (), caption: str | None = None,
) -> None:
    """A Rich table; ``numeric`` columns are never wrapped or truncated (Rich narrows the other
    columns instead). Not on a terminal, a table of plain cells is written without Rich, at its
    natural width (storage/cli/table.py: the same characters, ~100x less CPU per row)."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    if _plain_stdout():
        from storage.cli import table as plain

        lines = plain.render(columns, rows, title=title, caption=caption)
        if lines is not None:
            sys.stdout.write("".join(line + "\n" for line in lines))
            return
    from storage.cli import table

    table.rich(_out(), columns, rows, title=title, numeric=numeric, caption=caption)


def _plain_stdout() -> bool:
    """Whether stdout is a pipe or file that Rich would give plain UTF-8 box characters without
    colours, and no Rich console was made (or put in place by a test) for it."""
    import os

    from storage.cli import table as plain

    return "console" not in globals() and plain.plain_stream(sys.stdout, os.environ)


def print_record(record: dict[str, Any]) -> None:
    """Key/value view of one object (like `openstack volume show`)."""
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    table.add_column("Field")
    table.add_column("Value")
    for key, value in record.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(to_jsonable(value))
        table.add_row(key, "" if value is None else str(value))
    _out().print(table)


def emit(value: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        print_json(value)
    else:
        human(value)


@contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A Rich transfer progress bar; yields a callback(done_bytes, total_bytes).

    Disabled (a no-op callback) when enabled is False or stderr is not a terminal and
    --json is in use, so scripts get clean output.
    """
    if not enabled:
        yield lambda done, total_: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_err(),
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)

        def update(done: int, total_: int) -> None:
            progress.update(task, completed=done, total=total_ or None)

        yield update


def escape(text: str) -> str:
    """Rich markup escaped (rich.markup.escape, imported when first needed)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def fail(exc: StorageError, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": exc.to_dict()}) + "\n")
    _err().print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, markup=True)
    raise typer.Exit(exc.exit_code)
