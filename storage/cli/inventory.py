"""`storagectl pools`, `storagectl host devices` and `storagectl check [--repair]`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from storage.cli import common
from storage.units import format_size

host_app = typer.Typer(help="This host's block devices.", no_args_is_help=True)


POOL_COLUMNS = ["Pool", "Driver", "Total", "Free", "Prov.", "Alloc.", "Ratio", "Copy", "Error"]
POOL_NUMBERS = ("Total", "Free", "Prov.", "Alloc.", "Ratio")


def pool_rows(items: list[Any]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of `storagectl pools`: short headers so that the numbers fit an 80-column
    terminal unwrapped (the default pool is marked ``*``; the error column only when a pool failed)."""
    rows = []
    for p in items:
        name = f"{p.name}*" if p.default else p.name
        if p.error:
            rows.append([name, p.driver, "", "", "", "", "", "", p.error])
            continue
        rows.append([
            name, p.driver, format_size(p.total_bytes), format_size(p.free_bytes), format_size(p.provisioned_bytes),
            format_size(p.allocated_bytes), f"{p.overcommit_ratio:g}", p.capabilities.get("copy_method", ""), "",
        ])
    columns = list(POOL_COLUMNS)
    if not any(p.error for p in items):
        columns, rows = columns[:-1], [r[:-1] for r in rows]
    return columns, rows


def pools(ctx: typer.Context, as_json: common.JsonOpt = False) -> None:
    """Capacity and capabilities of the configured volume pools."""
    infos = common.get_storage(ctx).pools.list()

    def human(items: list[Any]) -> None:
        columns, rows = pool_rows(items)
        common.print_table(
            rows, columns, title="Volume pools", numeric=POOL_NUMBERS,
            caption="* default pool" if any(p.default for p in items) else None,
        )

    common.emit(infos, as_json, human)


@host_app.command("devices")
def devices(as_json: common.JsonOpt = False) -> None:
    """Block devices from lsblk, loop devices from losetup, and LVM pvs/vgs when installed."""
    from storage.host.inventory import host_devices

    report = host_devices()

    def human(r: Any) -> None:
        if r.lsblk.data:
            rows = [
                [d.get("path") or d.get("name"), d.get("type"), format_size(int(d.get("size") or 0)),
                 d.get("fstype") or "", d.get("mountpoint") or ""]
                for d in _flatten(r.lsblk.data.get("blockdevices", []))
            ]
            common.print_table(rows, ["Device", "Type", "Size", "FS", "Mounted on"], title="Block devices (lsblk)")
        else:
            common.console.print(f"lsblk: {r.lsblk.message}")
        loops = (r.losetup.data or {}).get("loopdevices", []) if r.losetup.available else []
        if r.losetup.message:
            common.console.print(f"losetup: {r.losetup.message}")
        common.print_table(
            [[d.get("name"), d.get("back-file"), d.get("dio")] for d in loops],
            ["Loop device", "Backing file", "Direct I/O"], title="Loop devices (losetup)",
        )
        if not r.lvm_available:
            common.console.print(r.lvm_message)
            return
        for name, src in r.lvm.items():
            if src.message:
                common.console.print(f"{name}: {src.message}")
                continue
            rows = [list(entry.values()) for rep in (src.data or {}).get("report", []) for entry in rep.get(name[:-1], [])]
            common.print_table(rows, _lvm_columns(src.data, name), title=f"LVM {name}")

    common.emit(report, as_json, human)


def _flatten(devs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d in devs:
        out.append(d)
        out.extend(_flatten(d.get("children") or []))
    return out


def _lvm_columns(data: Any, name: str) -> list[str]:
    for rep in (data or {}).get("report", []):
        for entry in rep.get(name[:-1], []):
            return list(entry.keys())
    return ["(none)"]


def check_cmd(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option("--repair", help="Fix what can be fixed safely (default: report only).")] = False,
    stale_after: Annotated[
        float, typer.Option("--stale-after", help="Seconds after which a transitional status of a live owner counts as stuck.")
    ] = 3600.0,
    as_json: common.JsonOpt = False,
) -> None:
    """Reconcile the catalog against the pools: missing data, orphans, stale loop devices, stuck operations.

    Exits 0 when clean (or everything was repaired), 4 (conflict) when problems remain.
    """
    report = common.get_storage(ctx).check(repair=repair, stale_after=stale_after)

    def human(r: Any) -> None:
        if r.clean:
            common.console.print(f"clean: pools checked: {', '.join(r.pools_checked)}")
            return
        rows = [
            [f.kind, f.pool, f.name or f.object_id or "", f.detail,
             ("done" if f.repaired else f"failed: {f.repair_error}" if f.repair_error else "would: ") + (f.repair if not f.repaired else "")]
            for f in r.findings
        ]
        common.print_table(rows, ["Finding", "Pool", "Object", "Detail", "Repair"], title="check")
        for err in r.errors:
            common.err_console.print(f"[red]error:[/red] {common.escape(str(err))}", highlight=False)

    common.emit(report, as_json, human)
    unresolved = [f for f in report.findings if not f.repaired]
    if unresolved or report.errors:
        raise typer.Exit(4)


def register(app: typer.Typer) -> None:
    """Add `pools`, `host devices` and `check` to the root app."""
    app.command("pools")(pools)
    app.add_typer(host_app, name="host")
    app.command("check")(check_cmd)
