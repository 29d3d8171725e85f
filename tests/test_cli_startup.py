"""CLI start-up budget, guarded by *which* modules a command imports (never by a time threshold,
which a busy machine would break), and the lazy command table kept in sync with the modules.

Timings live in scripts/bench/startup_bench.py and docs/benchmarks.md ("CLI start-up").
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

# Imported by a full command run, never by these cheap ones.
HEAVY = ("sqlalchemy", "alembic", "pydantic_settings", "os_brick", "backends", "click", "fastapi", "uvicorn")
PROBE = """
import json, sys
from storage.cli.main import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported_by(*args: str, config: Path | None = None) -> tuple[int, set[str], str]:
    """Run storagectl in a fresh interpreter; its exit code, sys.modules afterwards, its stdout."""
    argv = ["--config", str(config), *args] if config else list(args)
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    out, _, tail = proc.stdout.rpartition("\n@@")
    assert tail, f"probe failed: {proc.stderr}"
    data = json.loads(tail)
    return data["code"], set(data["modules"]), out


def heavy_in(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted({m for m in modules if m.split(".")[0] in heavy or m.startswith(heavy)})


def test_help_imports_no_services_models_or_database() -> None:
    code, modules, out = imported_by("--help")
    assert code == 0 and "volume" in out and "backup" in out
    assert heavy_in(modules, HEAVY + ("pydantic", "storage.config", "storage.service", "storage.catalog")) == []
    assert not any(m.startswith("storage.cli.") and m not in ("storage.cli.main", "storage.cli.common", "storage.cli.lazy") for m in modules)


@pytest.mark.parametrize("args", [("volume", "list"), ("volume", "list", "--json"), ("backup", "list"), ("backup", "list", "--json")])
def test_listings_import_no_database_layer_or_drivers(config_file: Path, args: tuple[str, ...]) -> None:
    """A SQLite catalog at head is listed through the stdlib sqlite3: no SQLAlchemy, no drivers."""
    import storage

    with storage.open(config_file) as st:
        st.catalog.engine  # noqa: B018 - creates the catalog, at head
    code, modules, out = imported_by(*args, config=config_file)
    assert code == 0, out
    if "--json" in args:  # scripts and cron: no table, so no Rich
        assert json.loads(out) == []
        assert heavy_in(modules, ("rich",)) == []
    assert heavy_in(modules) == []
    assert not any(m.startswith(("storage.volumes.service", "storage.backup.service", "storage.host")) for m in modules)


def test_first_listing_creates_the_catalog_through_sqlalchemy(config_file: Path, data_dir: Path) -> None:
    code, modules, out = imported_by("volume", "list", "--json", config=config_file)
    assert (code, json.loads(out)) == (0, [])
    assert "sqlalchemy" in modules and (data_dir / "catalog.db").is_file()


def test_heavy_in_finds_what_it_should() -> None:
    """The guard itself can fail: a module set with SQLAlchemy in it is caught."""
    assert heavy_in({"sqlalchemy.orm", "json", "storage.cli.main"}) == ["sqlalchemy.orm"]
    assert heavy_in({"storage.catalog.db"}, ("storage.catalog",)) == ["storage.catalog.db"]


def test_lazy_table_matches_what_the_modules_register() -> None:
    """COMMANDS (names, order, help line) is what registering every module eagerly gives."""
    import typer
    from typer.main import get_group

    from storage.cli import lazy

    eager = typer.Typer(add_completion=False)
    for name in lazy.MODULES:
        __import__(name, fromlist=["register"]).register(eager)
    group = get_group(eager)
    assert [e.name for e in lazy.COMMANDS] == list(group.commands)
    assert {m for e in lazy.COMMANDS for m in e.modules} == set(lazy.MODULES)
    for entry in lazy.COMMANDS:
        real = group.commands[entry.name]
        first = inspect.cleandoc(real.help or "").split("\n\n")[0].replace("\n", " ").strip()
        assert entry.help == first, entry.name
        module_of_callback = getattr(real.callback, "__module__", None)
        if module_of_callback and module_of_callback.startswith("storage.cli."):
            assert module_of_callback in entry.modules, entry.name


def test_a_group_command_still_runs_and_unknown_names_are_suggested(capsys: pytest.CaptureFixture[str]) -> None:
    from storage.cli.main import main

    assert main(["volum"]) == 2
    assert "Did you mean 'volume'" in " ".join(capsys.readouterr().err.split())
    assert main(["volume", "--help"]) == 0
    out = capsys.readouterr().out
    assert "create" in out and "export" in out  # export comes from storage.cli.export
