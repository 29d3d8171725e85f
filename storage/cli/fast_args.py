"""The command lines the CLI's fast path answers (storage/cli/fast.py), parsed without click.

``parse`` recognises exactly ``--help`` and ``[--config PATH] volume list|backup list`` with the
listing options below, spelled as click accepts them (``--opt VALUE``, ``--opt=VALUE``, the short
names, options in any order, the last of a repeated single-value option winning). Anything
else answers None and the full CLI (Typer) runs, which owns every error message: an unknown
option, a value that looks like an option or is empty, ``--repository`` (its URL is normalised
by the object stores), ``--log-format``, extra arguments. Pure, table-tested.
"""

from __future__ import annotations

from typing import NamedTuple

ROOT_OPTIONS = {"--config": "config", "-c": "config"}
# option spelling -> (field, repeatable) per listing
VOLUME_OPTIONS = {"--pool": ("pool", False), "-p": ("pool", False), "--status": ("status", False),
                  "--label": ("labels", True), "-l": ("labels", True)}  # fmt: skip
BACKUP_OPTIONS = {"--volume": ("volume", False), "--status": ("status", False),
                  "--label": ("labels", True), "-l": ("labels", True)}  # fmt: skip
LISTINGS = {("volume", "list"): VOLUME_OPTIONS, ("backup", "list"): BACKUP_OPTIONS}


class Request(NamedTuple):
    """One recognised command: ``help``, ``volume`` (volume list) or ``backup`` (backup list)."""

    command: str
    config: str | None = None
    as_json: bool = False
    pool: str | None = None
    status: str | None = None
    volume: str | None = None
    labels: tuple[str, ...] = ()


def _value(args: list[str], i: int, spelling: str) -> tuple[str, int] | None:
    """The value of the option at args[i] (``--opt=V`` or ``--opt V``) and the next index."""
    arg = args[i]
    if arg.startswith(spelling + "=") and spelling.startswith("--"):
        value, nxt = arg[len(spelling) + 1 :], i + 1
    elif i + 1 < len(args):
        value, nxt = args[i + 1], i + 2
    else:
        return None
    if not value or value.startswith("-"):
        return None
    return value, nxt


def _option(args: list[str], i: int, options: dict[str, tuple[str, bool]]) -> tuple[str, bool, str, int] | None:
    spelling = args[i].partition("=")[0] if args[i].startswith("--") else args[i]
    if spelling not in options:
        return None
    got = _value(args, i, spelling)
    if got is None:
        return None
    name, repeatable = options[spelling]
    return name, repeatable, got[0], got[1]


def parse(args: list[str]) -> Request | None:
    """The request ``args`` (sys.argv[1:]) make, or None when the full CLI must answer (pure)."""
    if args == ["--help"]:
        return Request("help")
    config: str | None = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        got = _option(args, i, {k: (v, False) for k, v in ROOT_OPTIONS.items()})
        if got is None:
            return None
        config, i = got[2], got[3]
    command = tuple(args[i : i + 2])
    options = LISTINGS.get(command)  # type: ignore[call-overload]
    if options is None:
        return None
    values: dict[str, str] = {}
    labels: list[str] = []
    as_json = False
    i += 2
    while i < len(args):
        if args[i] == "--json":
            as_json, i = True, i + 1
            continue
        got = _option(args, i, options)
        if got is None:
            return None
        name, repeatable, value, i = got
        if repeatable:
            labels.append(value)
        else:
            values[name] = value
    return Request(command[0], config, as_json, labels=tuple(labels), **values)
