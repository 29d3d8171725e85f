"""`storagectl ... --help` of every command and subcommand (the Typer app walked): exit 0, no traceback."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
import typer

from storage.cli.main import app, main


def command_paths(group: click.Command, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path, through click's own API (the root group loads its commands lazily)."""
    yield prefix
    if hasattr(group, "list_commands"):  # a group (typer may carry its own click: no isinstance)
        ctx = type(group).context_class(group)
        for name in sorted(group.list_commands(ctx)):
            sub = group.get_command(ctx, name)
            if sub is not None:
                yield from command_paths(sub, (*prefix, name))


PATHS = list(command_paths(typer.main.get_group(app)))


def test_the_walk_finds_every_group() -> None:
    """The walk is real: it reaches nested commands of every group module."""
    assert len(PATHS) > 60
    for path in (("policy", "create"), ("policy", "update"), ("volume", "create"), ("token", "create"),
                 ("object", "upload"), ("backup", "restore"), ("volume", "export"), ("backup", "key", "create"), ("pools",)):
        assert path in PATHS, path


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "storagectl")
def test_help_of_every_command(path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    rc = main([*path, "--help"])
    out, err = capsys.readouterr()
    assert rc == 0, f"storagectl {' '.join(path)} --help -> {rc}\n{out}\n{err}"
    assert "Traceback" not in out + err and "Error" not in err
    assert "Usage" in out
