"""`storagectl snapshot ...`: the CLI face of st.snapshots."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from storage.cli import common
from storage.cli.volume import show_volume
from storage.domain import Snapshot
from storage.names import parse_labels
from storage.units import format_size

snapshot_app = typer.Typer(help="Point-in-time snapshots of volumes.", no_args_is_help=True)
SNAPSHOT_COLUMNS = ["Name", "ID", "Volume", "Size", "Status", "Created", "Labels"]


def snapshot_row(s: Snapshot) -> list[Any]:
    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
    created = s.created_at.strftime("%Y-%m-%d %H:%M:%S")
    return [s.name, s.id, s.volume_name, format_size(s.size_bytes), s.status.value, created, labels]


def show_snapshot(s: Snapshot) -> None:
    record = s.model_dump(mode="json")
    record["size"] = format_size(s.size_bytes)
    common.print_record(record)


@snapshot_app.command("create")
def create(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Volume, name or id.")],
    name: Annotated[Optional[str], typer.Argument(help="Snapshot name (default: <volume>-<UTC time>-<random>).")] = None,
    name_opt: Annotated[Optional[str], typer.Option("--name", "-n", help="Snapshot name (same as the argument).")] = None,
    label: Annotated[Optional[list[str]], typer.Option("--label", "-l", help="KEY=VALUE; repeat for more.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Take a snapshot of a volume (attached or not)."""
    if name and name_opt and name != name_opt:
        from storage.errors import InvalidInput

        raise InvalidInput(f"two snapshot names given ({name!r} and --name {name_opt!r}); accepted: one of them")
    snap = common.get_storage(ctx).snapshots.create(volume, name or name_opt, labels=parse_labels(label))
    common.emit(snap, as_json, show_snapshot)


@snapshot_app.command("list")
def list_(
    ctx: typer.Context,
    volume: Annotated[Optional[str], typer.Option("--volume", "-v", help="Only snapshots of this volume.")] = None,
    label: Annotated[Optional[list[str]], typer.Option("--label", "-l", help="KEY=VALUE filter.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """List snapshots."""
    snaps = common.get_storage(ctx).snapshots.list(volume=volume, labels=parse_labels(label) or None)
    common.emit(snaps, as_json, lambda xs: common.print_table([snapshot_row(x) for x in xs], SNAPSHOT_COLUMNS))


@snapshot_app.command("show")
def show(ctx: typer.Context, snapshot: Annotated[str, typer.Argument(help="Name or id.")], as_json: common.JsonOpt = False) -> None:
    """Show one snapshot."""
    common.emit(common.get_storage(ctx).snapshots.get(snapshot), as_json, show_snapshot)


@snapshot_app.command("delete")
def delete(ctx: typer.Context, snapshot: Annotated[str, typer.Argument(help="Name or id.")], as_json: common.JsonOpt = False) -> None:
    """Delete a snapshot."""
    st = common.get_storage(ctx)
    snap = st.snapshots.get(snapshot)
    st.snapshots.delete(snap.id)
    common.emit(
        {"deleted": snap.id, "name": snap.name},
        as_json,
        lambda d: common.console.print(f"deleted snapshot {snap.name} ({snap.id})"),
    )


@snapshot_app.command("revert")
def revert(ctx: typer.Context, snapshot: Annotated[str, typer.Argument(help="Name or id.")], as_json: common.JsonOpt = False) -> None:
    """Revert the snapshot's (detached) volume to this snapshot."""
    common.emit(common.get_storage(ctx).snapshots.revert(snapshot), as_json, show_volume)


def register(app: typer.Typer) -> None:
    """Add the `snapshot` group to the root app."""
    app.add_typer(snapshot_app, name="snapshot")
