"""Lazy command registration: a command's module is imported only when that command runs.

``storagectl --help`` lists every top-level name with its one-line help from ``COMMANDS``
(a static table, no import of the groups' modules, so no pydantic, SQLAlchemy or services);
``storagectl volume list`` imports only the modules that define ``volume``.
tests/test_cli_startup.py checks that the table matches what the modules register (names,
order, first help paragraph), so the two cannot drift apart. The console script prints a
pre-rendered `storagectl --help` (storage/cli/help_text.py): after changing a name or help line
here, run `.venv/bin/python scripts/gen_cli_help.py` (tests/test_cli_fast.py fails until then).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Entry:
    """One top-level command or group: the modules whose register(app) define it, its help line."""

    name: str
    modules: tuple[str, ...]
    help: str


# Order is the order of `storagectl --help` (Typer lists plain commands before groups).
# storage.cli.export adds `volume export|unexport|connection-info`, so `volume` needs it too.
COMMANDS: tuple[Entry, ...] = (
    Entry("pools", ("storage.cli.inventory",), "Capacity and capabilities of the configured volume pools."),
    Entry(
        "check",
        ("storage.cli.inventory",),
        "Reconcile the catalog against the pools: missing data, orphans, stale loop devices, stuck operations.",
    ),
    Entry(
        "run",
        ("storage.cli.policy",),
        "Run every policy whose schedule slot is due (the command for cron or a systemd timer).",
    ),
    Entry("serve", ("storage.cli.api_admin",), "Run the admin HTTP API (and the Cinder v3 subset) with uvicorn."),
    Entry(
        "attach",
        ("storage.cli.export",),
        "Attach a volume on this host through os-brick; prints the local device path.",
    ),
    Entry("detach", ("storage.cli.export",), "Detach a volume attached with `storagectl attach`."),
    Entry(
        "agent",
        ("storage.cli.hosts",),
        "Run this host's agent: register in the catalog, heartbeat every [cluster] heartbeat_interval until SIGTERM.",
    ),
    Entry(
        "volume",
        ("storage.cli.volume", "storage.cli.export"),
        "Block volumes: create, attach, snapshot, extend, delete.",
    ),
    Entry("snapshot", ("storage.cli.snapshot",), "Point-in-time snapshots of volumes."),
    Entry("host", ("storage.cli.inventory",), "This host's block devices."),
    Entry("object", ("storage.cli.object",), "Object stores: containers and objects (Swift, S3, local directory)."),
    Entry(
        "backup",
        ("storage.cli.backup",),
        "Deduplicated, compressed, verifiable backups: create, restore, verify, gc.",
    ),
    Entry("policy", ("storage.cli.policy",), "Snapshot and backup policies: schedules and retention."),
    Entry("token", ("storage.cli.api_admin",), "Bearer tokens of the admin API."),
    Entry("job", ("storage.cli.api_admin",), "Long operations run by the API (backup, restore, verify, wipe, gc)."),
    Entry("export", ("storage.cli.export",), "iSCSI exports: list, reconcile with the catalog, stop the target."),
    Entry("hosts", ("storage.cli.hosts",), "Storage hosts sharing this catalog: state, capacity, maintenance."),
    Entry(
        "apply",
        ("storage.cli.apply",),
        "Declarative apply: make this host hold what a stack file declares (docs/apply.md).",
    ),
)
BY_NAME = {e.name: e for e in COMMANDS}
# Every module with a register(app), in the order whose eager registration gives COMMANDS' order.
MODULES = (
    "storage.cli.volume",
    "storage.cli.snapshot",
    "storage.cli.inventory",
    "storage.cli.object",
    "storage.cli.backup",
    "storage.cli.policy",
    "storage.cli.api_admin",
    "storage.cli.export",
    "storage.cli.hosts",
    "storage.cli.apply",
)

# Every group module registers once per process into this app; commands are built from it.
_registry = typer.Typer(add_completion=False)
_loaded: set[str] = set()


def load_modules(modules: tuple[str, ...]) -> None:
    for name in modules:
        if name not in _loaded:
            importlib.import_module(name).register(_registry)
            _loaded.add(name)


def real_command(name: str) -> Any:
    """The click command Typer builds for a top-level name (importing its modules)."""
    load_modules(BY_NAME[name].modules)
    return typer.main.get_group(_registry).commands[name]


class LazyGroup(TyperGroup):
    """The root group: eager commands live in ``self.commands``; the others load on first use."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        eager = [n for n in self.commands if n not in BY_NAME]
        return eager + [e.name for e in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = self.commands.get(cmd_name)
        if cmd is not None or cmd_name not in BY_NAME:
            return cmd
        if self._listing:  # help listing: name and help line only
            return TyperCommand(name=cmd_name, help=BY_NAME[cmd_name].help)
        cmd = self.commands[cmd_name] = real_command(cmd_name)
        return cmd

    @contextmanager
    def _help_listing(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._help_listing():
            super().format_help(ctx, formatter)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        # TyperGroup suggests close names from self.commands; offer the lazy names as well.
        try:
            return super().resolve_command(ctx, args)
        except Exception as exc:  # the vendored click's UsageError
            message = getattr(exc, "message", None)
            if message is None or "Did you mean" in message or not args:
                raise
            from difflib import get_close_matches

            matches = get_close_matches(args[0], self.list_commands(ctx))
            if matches:
                exc.message = f"{message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in matches)}?"  # type: ignore[attr-defined]
            raise
