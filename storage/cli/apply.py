"""`storagectl apply -f stack.yaml`, `apply plan`, `apply schema`: the CLI face of st.apply (no logic here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from storage.apply.models import MAX_FILE_BYTES
from storage.cli import common
from storage.errors import InvalidInput

apply_app = typer.Typer(
    help="Declarative apply: make this host hold what a stack file declares (docs/apply.md).",
    invoke_without_command=True,
)
FileOpt = Annotated[Optional[str], typer.Option("--file", "-f", help="The stack file (YAML); '-' reads stdin.")]
PruneOpt = Annotated[bool, typer.Option("--prune", help="Also delete what the file does not declare (needs --yes).")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Confirm the deletions of --prune.")]
DeleteVolumesOpt = Annotated[bool, typer.Option("--delete-volumes", help="Let --prune delete volumes that may hold data.")]
COLUMNS = ["Action", "Kind", "Name", "Why"]


def read_stack_file(path: str) -> tuple[bytes, str]:
    """The file's bytes (at most MAX_FILE_BYTES, checked while reading) and its name for errors."""
    if path == "-":
        data, source = sys.stdin.buffer.read(MAX_FILE_BYTES + 1), "<stdin>"
    else:
        try:
            with Path(path).open("rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise InvalidInput(f"stack file {path!r} cannot be read: {exc.strerror}; accepted: a readable YAML file", field="file") from None
        source = path
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(f"stack file {source!r} is larger than {MAX_FILE_BYTES} bytes; accepted: at most that", field="file")
    return data, source


def _show(result: dict[str, Any]) -> None:
    plan = result["plan"]
    rows = [(c["action"], c["kind"], c["name"], c["reason"]) for c in plan["changes"]]
    if rows:
        common.print_table(rows, COLUMNS, title="Plan" if result["dry_run"] else "Applied")
    counts = ", ".join(f"{n} {a}" for a, n in plan["counts"].items() if n)
    if result["dry_run"]:
        common.console.print(escape(f"plan: {counts or 'no changes'}"), highlight=False)
    elif result["done"]:
        common.console.print(escape(f"applied: {len(result['done'])} change(s)"), highlight=False)
    else:
        common.console.print("no changes", highlight=False)


def _run(ctx: typer.Context, file: str | None, *, dry_run: bool, prune: bool, yes: bool, delete_volumes: bool, as_json: bool) -> None:
    if not file:
        raise InvalidInput("give the stack file: --file/-f PATH (or '-' for stdin)", field="file")
    data, source = read_stack_file(file)
    st = common.get_storage(ctx)
    result = st.applier.apply(data, dry_run=dry_run, prune=prune, yes=yes, delete_volumes=delete_volumes, source=source)
    out = result.model_dump(mode="json")
    common.emit(out, as_json, _show)
    if dry_run and out["plan"]["counts"]["refuse"]:
        common.err_console.print("[red]error:[/red] the plan refuses some changes (see above); apply would change nothing")
        raise typer.Exit(InvalidInput.exit_code)


@apply_app.callback()
def apply_stack(
    ctx: typer.Context,
    file: FileOpt = None,
    prune: PruneOpt = False,
    yes: YesOpt = False,
    delete_volumes: DeleteVolumesOpt = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Apply a stack file: create, grow and change what it declares (idempotent); `apply plan` shows it first."""
    ctx.obj_apply = {"file": file}  # type: ignore[attr-defined]
    if ctx.invoked_subcommand is not None:
        return
    _run(ctx, file, dry_run=False, prune=prune, yes=yes, delete_volumes=delete_volumes, as_json=as_json)


@apply_app.command("plan")
def plan_stack(
    ctx: typer.Context,
    file: FileOpt = None,
    prune: PruneOpt = False,
    delete_volumes: DeleteVolumesOpt = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Dry run: what apply would create, change and delete, and why (exit 2 when something is refused)."""
    parent = getattr(ctx.parent, "obj_apply", {}) if ctx.parent else {}
    _run(ctx, file or parent.get("file"), dry_run=True, prune=prune, yes=False, delete_volumes=delete_volumes, as_json=as_json)


@apply_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the stack file (generated from the models)."""
    from storage.apply.models import stack_schema

    common.print_json(stack_schema())


def register(app: typer.Typer) -> None:
    """Add the `apply` group to the root app."""
    app.add_typer(apply_app, name="apply")
