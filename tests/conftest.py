"""Shared fixtures. Area-specific fixtures live in tests/fixtures_*.py plugins listed below."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage

pytest_plugins = [
    p
    for p in (
        "tests.fixtures_swift",
        "tests.fixtures_swift_ring",
        "tests.fixtures_keystone",
        "tests.fixtures_tgt",
        "tests.fixtures_guest",
        "tests.fixtures_postgres",
    )
    if (Path(__file__).parent / (p.split(".")[-1] + ".py")).exists()
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def config_file(data_dir: Path, catalog_kind: str, request: pytest.FixtureRequest) -> Path:
    """A minimal config: everything under a per-test data dir; the catalog there too (SQLite, the
    default) or, for the ``[postgresql]`` run of a ``both_catalogs`` test, a fresh PostgreSQL database."""
    path = data_dir / "storage.toml"
    text = f'data_dir = "{data_dir}"\n'
    if catalog_kind != "sqlite":
        text += f'\n[catalog]\nurl = "{request.getfixturevalue("catalog_url")}"\n'
    path.write_text(text)
    return path


@pytest.fixture
def st(config_file: Path) -> Iterator[storage.Storage]:
    s = storage.open(config_file)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read /etc/storage or the user's config."""
    monkeypatch.delenv("STORAGE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    for key in list(os.environ):
        if key.startswith("STORAGE_"):
            monkeypatch.delenv(key, raising=False)
