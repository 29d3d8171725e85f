"""storagectl hosts list|show|disable|enable, and storagectl agent (this host's heartbeats)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from storage.cli import common
from storage.hosts.state import HostInfo
from storage.units import format_size

hosts_app = typer.Typer(help="Storage hosts sharing this catalog: state, capacity, maintenance.", no_args_is_help=True)

HOST_COLUMNS = ["Name", "State", "Disabled", "Zone", "Pools", "Free", "Provisioned", "Volumes", "Version", "Heartbeat age"]


def _sum(h: HostInfo, key: str) -> int:
    return sum(int(p.get(key) or 0) for p in h.pools.values() if not p.get("error"))


def host_row(h: HostInfo) -> list[Any]:
    age = "never" if h.seconds_since_heartbeat is None else f"{h.seconds_since_heartbeat:.0f}s"
    disabled = f"yes ({h.disabled_reason})" if h.disabled and h.disabled_reason else ("yes" if h.disabled else "")
    return [h.name, h.state.value, disabled, h.availability_zone, ",".join(sorted(h.pools)),
            format_size(_sum(h, "free_bytes")), format_size(_sum(h, "provisioned_bytes")), h.volumes, h.version, age]


def show_host(h: HostInfo) -> None:
    common.print_record(h.model_dump(mode="json"))


@hosts_app.command("list")
def list_hosts(ctx: typer.Context, as_json: common.JsonOpt = False) -> None:
    """Every registered host with its state (up, down, disabled) and capacity."""
    common.emit(common.get_storage(ctx).hosts.list(), as_json,
                lambda hs: common.print_table([host_row(h) for h in hs], HOST_COLUMNS))  # fmt: skip


@hosts_app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Host name")], as_json: common.JsonOpt = False) -> None:
    """One host: state, pools with capacity and capabilities, last heartbeat."""
    common.emit(common.get_storage(ctx).hosts.get(name), as_json, show_host)


@hosts_app.command("disable")
def disable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Host name")],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why (shown in hosts list), up to 255 characters")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Take a host out of placement (maintenance): it keeps serving its volumes, gets no new ones."""
    common.emit(common.get_storage(ctx).hosts.disable(name, reason), as_json, show_host)


@hosts_app.command("enable")
def enable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Host name")], as_json: common.JsonOpt = False) -> None:
    """Put a disabled host back into placement."""
    common.emit(common.get_storage(ctx).hosts.enable(name), as_json, show_host)


def agent(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Register/heartbeat once and exit (exit 5 when the catalog is unreachable)")] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Run this host's agent: register in the catalog, heartbeat every [cluster] heartbeat_interval until SIGTERM."""
    from storage.config import load_settings
    from storage.errors import BackendError
    from storage.hosts.agent import Agent, one_line

    from storage.logs import setup

    state = ctx.find_root().obj
    settings = load_settings(getattr(state, "config", None))
    setup.configure(
        fmt=setup.configured_option("format"), service="storage-agent", host=settings.host_name,
        config_format=settings.logging.format, config_level=settings.logging.level, daemon=True,
    )  # fmt: skip
    runner = Agent(settings)
    if once:
        try:
            runner.beat()
        except Exception as exc:  # noqa: BLE001 - reported as one line with a typed exit code
            raise BackendError(f"heartbeat of host {settings.host_name!r} failed: {one_line(exc)}", host=settings.host_name) from None
        finally:
            runner._reset()
        if as_json:
            common.print_json({"host": settings.host_name, "registered": True})
        return
    runner.install_signal_handlers()
    raise typer.Exit(runner.run())


def register(app: typer.Typer) -> None:
    app.add_typer(hosts_app, name="hosts")
    app.command("agent")(agent)
