"""``STORAGE_*`` environment overrides of the settings, as a pure function of the environment.

The rules pydantic-settings applied before (this replaced it: importing it cost a CLI command
about a fifth of its start-up): names are case-insensitive, ``STORAGE_`` then the field,
nested keys joined by ``__`` (``STORAGE_API__PORT=9100``, ``STORAGE_POOLS__FAST__DRIVER=lvm``);
a whole table (``STORAGE_API``, ``STORAGE_POOLS``, ``STORAGE_POOLS__FAST``) is given as JSON;
variables that name no setting are ignored; the environment wins over the file, key by key.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from storage.errors import InvalidInput

PREFIX = "storage_"
DELIMITER = "__"


def env_overrides(
    environ: Mapping[str, str], fields: Collection[str], tables: Collection[str], maps: Collection[str]
) -> dict[str, Any]:
    """The nested overrides found in ``environ``.

    ``fields`` are the settings' names; ``tables`` those whose value is a table (given whole as
    JSON); ``maps`` the tables of named tables (``pools``: one level more is JSON too).
    """
    out: dict[str, Any] = {}
    for name in sorted(environ):
        key = name.lower()
        if not key.startswith(PREFIX):
            continue
        path = key[len(PREFIX):].split(DELIMITER)
        if path[0] not in fields or "" in path:
            continue
        is_table = (len(path) == 1 and path[0] in tables) or (len(path) == 2 and path[0] in maps)
        value: Any = environ[name]
        if is_table:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise InvalidInput(
                    f"environment variable {name} is not valid JSON; accepted: a JSON object, "
                    f"or one key at a time as {name}{DELIMITER.upper()}KEY=value",
                    field=name,
                ) from None
        _set(out, path, value, name)
    return out


def _set(target: dict[str, Any], path: list[str], value: Any, name: str) -> None:
    for key in path[:-1]:
        nxt = target.setdefault(key, {})
        if not isinstance(nxt, dict):
            raise InvalidInput(f"environment variable {name} sets a key inside {key!r}, which another variable sets whole", field=name)
        target = nxt
    old = target.get(path[-1])
    target[path[-1]] = deep_merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` over ``base``, table by table (a non-table value replaces what it meets)."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if key in merged else value
    return merged
