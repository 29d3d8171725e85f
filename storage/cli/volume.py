"""`storagectl volume ...`: the CLI face of st.volumes (no logic of its own).

``volume_app`` is module-level so other modules (storage/cli/export.py) add commands to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from storage.cli import common
from storage.names import parse_labels
from storage.units import format_size

if TYPE_CHECKING:
    from storage.domain import Volume
    from storage.scheduler import Decision

volume_app = typer.Typer(help="Block volumes: create, attach, snapshot, extend, delete.", no_args_is_help=True)

LabelOpt = Annotated[Optional[list[str]], typer.Option("--label", "-l", help="KEY=VALUE; repeat for more.")]
VOLUME_COLUMNS = ["Name", "ID", "Size", "Pool", "Status", "Device", "Labels"]


def volume_row(v: Volume) -> list[Any]:
    labels = ",".join(f"{k}={val}" for k, val in sorted(v.labels.items()))
    return [v.name, v.id, format_size(v.size_bytes), v.pool, v.status.value, v.attached_device or "", labels]


def show_volume(v: Volume) -> None:
    record = v.model_dump(mode="json")
    record["size"] = format_size(v.size_bytes)
    common.print_record(record)


def show_volumes(vols: list[Volume]) -> None:
    common.print_table([volume_row(v) for v in vols], VOLUME_COLUMNS)


@volume_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Volume name.")],
    size: Annotated[Optional[str], typer.Argument(help="Size: 512M, 10G, 1T or bytes (rounded up to 1 MiB).")] = None,
    pool: Annotated[Optional[str], typer.Option("--pool", "-p", help="Pool (default: the configured default_pool, else the scheduler chooses).")] = None,
    label: LabelOpt = None,
    source_volume: Annotated[Optional[str], typer.Option("--source-volume", help="Copy this volume.")] = None,
    source_snapshot: Annotated[Optional[str], typer.Option("--source-snapshot", help="Copy this snapshot.")] = None,
    zone: Annotated[Optional[str], typer.Option("--availability-zone", "--zone", help="Place in this zone.")] = None,
    pool_label: Annotated[Optional[list[str]], typer.Option("--pool-label", help="Place in a pool with label KEY=VALUE; repeat for more.")] = None,
    require: Annotated[Optional[list[str]], typer.Option("--require", help="Pool capability: thin, reflink, online_extend=false, copy_method=reflink...; repeat for more.")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show the scheduler's decision: every pool, the filter that refused it or its weight.")] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Create a volume (empty, or a copy of a volume or snapshot); without --pool the scheduler places it."""
    from storage.scheduler import parse_requirements, validate_hints

    st = common.get_storage(ctx)
    hints = validate_hints(availability_zone=zone, labels=parse_labels(pool_label), capabilities=parse_requirements(require))
    vol, decision = st.volumes.create_explained(
        name, size, pool=pool, labels=parse_labels(label), source_volume=source_volume, source_snapshot=source_snapshot,
        hints=hints,
    )  # fmt: skip
    if not explain:
        common.emit(vol, as_json, show_volume)
    elif as_json:
        common.print_json({**vol.model_dump(mode="json"), "placement": decision.to_dict() if decision else None})
    else:
        show_volume(vol)
        show_placement(decision)


def show_placement(decision: "Decision | None") -> None:
    from storage.scheduler import explanation_rows
    from storage.scheduler.decide import EXPLANATION_COLUMNS

    if decision is None:
        common.console.print("copies stay in their source's pool: nothing was scheduled")
        return
    common.print_table(explanation_rows(decision), EXPLANATION_COLUMNS, title=f"placement (weigher: {decision.weigher})")


@volume_app.command("list")
def list_(
    ctx: typer.Context,
    pool: Annotated[Optional[str], typer.Option("--pool", "-p", help="Only this pool.")] = None,
    status: Annotated[Optional[str], typer.Option("--status", help="Only this status.")] = None,
    label: LabelOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """List volumes."""
    st = common.get_storage(ctx)
    vols = st.volume_listing.list(pool=pool, status=status, labels=parse_labels(label) or None)
    common.emit(vols, as_json, show_volumes)


@volume_app.command("show")
def show(ctx: typer.Context, volume: Annotated[str, typer.Argument(help="Name or id.")], as_json: common.JsonOpt = False) -> None:
    """Show one volume."""
    common.emit(common.get_storage(ctx).volumes.show(volume), as_json, show_volume)


@volume_app.command("extend")
def extend(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Name or id.")],
    new_size: Annotated[str, typer.Argument(help="New size (larger than the current one).")],
    as_json: common.JsonOpt = False,
) -> None:
    """Grow a volume (also while attached)."""
    common.emit(common.get_storage(ctx).volumes.extend(volume, new_size), as_json, show_volume)


@volume_app.command("delete")
def delete(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Name or id.")],
    wipe: Annotated[str, typer.Option("--wipe", help="none or zero (overwrite the data with zeros first).")] = "none",
    force: Annotated[bool, typer.Option("--force", help="Detach first; also delete from error or stuck states.")] = False,
    cascade: Annotated[bool, typer.Option("--cascade", help="Delete its snapshots too.")] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Delete a volume."""
    st = common.get_storage(ctx)
    vol = st.volumes.get(volume)
    with common.progress_bar(f"wiping {vol.name}", vol.size_bytes, enabled=wipe == "zero" and not as_json) as cb:
        st.volumes.delete(vol.id, wipe=wipe, force=force, cascade=cascade, progress=cb)
    common.emit(
        {"deleted": vol.id, "name": vol.name, "wipe": wipe},
        as_json,
        lambda d: common.console.print(f"deleted volume {vol.name} ({vol.id})"),
    )


@volume_app.command("attach")
def attach(ctx: typer.Context, volume: Annotated[str, typer.Argument(help="Name or id.")], as_json: common.JsonOpt = False) -> None:
    """Attach a volume on this host; prints its device (e.g. /dev/loop3)."""
    vol = common.get_storage(ctx).volumes.attach(volume)
    common.emit(vol, as_json, lambda v: common.console.print(v.attached_device, highlight=False))


@volume_app.command("detach")
def detach(ctx: typer.Context, volume: Annotated[str, typer.Argument(help="Name or id.")], as_json: common.JsonOpt = False) -> None:
    """Detach a volume from this host."""
    common.emit(common.get_storage(ctx).volumes.detach(volume), as_json, show_volume)


@volume_app.command("clone")
def clone(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Source volume, name or id.")],
    new_name: Annotated[str, typer.Argument(help="Name of the new volume.")],
    size: Annotated[Optional[str], typer.Option("--size", help="Size of the copy (default: the source's).")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Copy a volume into a new one (reflink where the pool supports it)."""
    common.emit(common.get_storage(ctx).volumes.clone(volume, new_name, size=size), as_json, show_volume)


@volume_app.command("revert")
def revert(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Name or id.")],
    snapshot: Annotated[str, typer.Argument(help="Snapshot of this volume, name or id.")],
    as_json: common.JsonOpt = False,
) -> None:
    """Put a detached volume's data back to one of its snapshots."""
    common.emit(common.get_storage(ctx).volumes.revert(volume, snapshot), as_json, show_volume)


@volume_app.command("update")
def update(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Name or id.")],
    name: Annotated[Optional[str], typer.Option("--name", help="New name.")] = None,
    label: LabelOpt = None,
    clear_labels: Annotated[bool, typer.Option("--clear-labels", help="Remove every label.")] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Rename a volume or replace its labels."""
    labels = {} if clear_labels else (parse_labels(label) if label else None)
    common.emit(common.get_storage(ctx).volumes.update(volume, name=name, labels=labels), as_json, show_volume)


@volume_app.command("reset-status")
def reset_status(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Name or id.")],
    status: Annotated[str, typer.Argument(help="New status, e.g. available or error.")],
    as_json: common.JsonOpt = False,
) -> None:
    """Admin: set a volume's status by hand (after repairing it)."""
    common.emit(common.get_storage(ctx).volumes.reset_status(volume, status), as_json, show_volume)


def register(app: typer.Typer) -> None:
    """Add the `volume` group to the root app."""
    app.add_typer(volume_app, name="volume")
