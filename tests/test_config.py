from pathlib import Path

import pytest

from storage.config import load_settings
from storage.errors import InvalidInput


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert s.data_dir == tmp_path
    assert s.pools["default"].driver == "file"
    assert s.catalog_url == f"sqlite:///{tmp_path / 'catalog.db'}"


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'data_dir = "{tmp_path}/a"\n[api]\nport = 9000\n')
    monkeypatch.setenv("STORAGE_API__PORT", "9100")
    s = load_settings(cfg)
    assert s.data_dir == tmp_path / "a"
    assert s.api.port == 9100


def test_missing_explicit_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_values_name_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('[api]\nport = 70000\n')
    with pytest.raises(InvalidInput, match="api.port"):
        load_settings(cfg)


def test_unknown_default_pool(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('default_pool = "nope"\n')
    with pytest.raises(InvalidInput, match="default_pool"):
        load_settings(cfg)


def test_redacted_hides_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('[object_stores.sw]\ntype = "swift"\nuser = "test:tester"\nkey = "testing"\n')
    red = load_settings(cfg).redacted()
    assert red["object_stores"]["sw"]["key"] == "***"
    assert "testing" not in str(red)
