"""STORAGE_* environment overrides (storage/config_env.py): the rules pydantic-settings applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage.config import load_settings
from storage.config_env import deep_merge, env_overrides
from storage.errors import InvalidInput

FIELDS = ("data_dir", "default_pool", "pools", "object_stores", "catalog", "api", "config_file")
TABLES = ("pools", "object_stores", "catalog", "api")
MAPS = ("pools", "object_stores")

CASES: list[tuple[dict[str, str], dict[str, Any]]] = [
    ({}, {}),
    ({"STORAGE_DATA_DIR": "/d"}, {"data_dir": "/d"}),
    ({"storage_data_dir": "/d"}, {"data_dir": "/d"}),  # names are case-insensitive
    ({"STORAGE_API__PORT": "9100"}, {"api": {"port": "9100"}}),  # strings: pydantic converts
    ({"STORAGE_API": '{"port": 9100}'}, {"api": {"port": 9100}}),  # a whole table as JSON
    ({"STORAGE_API": '{"port": 1, "host": "h"}', "STORAGE_API__PORT": "2"}, {"api": {"port": "2", "host": "h"}}),
    ({"STORAGE_POOLS__FAST__DRIVER": "lvm"}, {"pools": {"fast": {"driver": "lvm"}}}),
    ({"STORAGE_POOLS__FAST": '{"driver": "lvm", "vg": "v"}'}, {"pools": {"fast": {"driver": "lvm", "vg": "v"}}}),
    ({"STORAGE_CONFIG": "/x.toml", "STORAGE_NOPE": "1", "OTHER_API__PORT": "1"}, {}),  # no such setting
    ({"STORAGE___API": "x", "STORAGE_API__": "x"}, {}),  # empty key parts name nothing
    ({"STORAGE_CATALOG__URL": "sqlite:////c.db"}, {"catalog": {"url": "sqlite:////c.db"}}),
]


@pytest.mark.parametrize(("environ", "expected"), CASES)
def test_env_overrides(environ: dict[str, str], expected: dict[str, Any]) -> None:
    assert env_overrides(environ, FIELDS, TABLES, MAPS) == expected


def test_table_fields_of_the_settings() -> None:
    from storage.config import table_fields

    tables, maps = table_fields()
    assert set(maps) == {"pools", "object_stores"}
    assert {"catalog", "backup", "api", "export", "pools", "object_stores"} <= set(tables)
    assert "data_dir" not in tables and "default_pool" not in tables


def test_bad_json_names_the_variable() -> None:
    with pytest.raises(InvalidInput, match="STORAGE_API is not valid JSON"):
        env_overrides({"STORAGE_API": "{port"}, FIELDS, TABLES, MAPS)


@pytest.mark.parametrize(
    ("base", "override", "expected"),
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"api": {"port": 1, "host": "h"}}, {"api": {"port": 2}}, {"api": {"port": 2, "host": "h"}}),
        ({"a": {"b": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 5}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ],
)
def test_deep_merge(base: dict[str, Any], override: dict[str, Any], expected: dict[str, Any]) -> None:
    assert deep_merge(base, override) == expected


def test_env_merges_into_the_files_table_and_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\ndefault_pool = "fast"\n[api]\nport = 9000\nhost = "127.0.0.2"\n[pools.fast]\ndriver = "file"\npath = "/p"\n')
    monkeypatch.setenv("STORAGE_API__PORT", "9100")
    monkeypatch.setenv("STORAGE_POOLS__FAST__PATH", "/q")
    s = load_settings(cfg)
    assert (s.api.port, s.api.host) == (9100, "127.0.0.2")
    assert s.pools["fast"].options() == {"path": "/q"}
    monkeypatch.setenv("STORAGE_API__PORT", "not-a-port")
    with pytest.raises(InvalidInput, match="api.port"):
        load_settings(cfg)
