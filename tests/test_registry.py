"""storage.registry: built-in drivers from a static table (no metadata scan), third-party
drivers from entry points, run-time registrations over both."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from storage import registry
from storage.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[1]


def test_builtin_table_is_pyprojects_entry_points() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    groups = {g: dict(eps) for g, eps in declared.items() if g.startswith("storage.")}
    assert registry.BUILTIN == groups


@pytest.mark.parametrize(
    ("group", "name", "cls"),
    [
        (registry.VOLUME_BACKENDS, "file", "FileVolumeBackend"),
        (registry.VOLUME_BACKENDS, "lvm", "LvmVolumeBackend"),
        (registry.OBJECT_STORES, "file", "DirectoryStore"),
        (registry.OBJECT_STORES, "swift", "SwiftStore"),
        (registry.OBJECT_STORES, "s3", "S3Store"),
        (registry.EXPORT_BACKENDS, "tgt", "TgtExportBackend"),
        (registry.EXPORT_BACKENDS, "lio", "LioExportBackend"),
    ],
)
def test_builtin_names_load_without_scanning_entry_points(
    monkeypatch: pytest.MonkeyPatch, group: str, name: str, cls: str
) -> None:
    def no_scan(group: str) -> None:
        raise AssertionError(f"entry points of {group} scanned for a built-in name")

    monkeypatch.setattr(registry, "_entry_points", no_scan)
    assert registry.load(group, name).__name__ == cls


def test_a_builtin_load_does_not_import_importlib_metadata() -> None:
    code = (
        "import sys; from storage import registry;"
        "registry.load(registry.OBJECT_STORES, 'file');"
        "print('importlib.metadata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/").stdout
    assert out.strip() == "False"


def fake_distribution(tmp_path: Path, group: str, name: str, target: str) -> Path:
    """A real installed distribution (dist-info with entry_points.txt) on a path of its own."""
    dist = tmp_path / "thirdparty_driver-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-driver\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")
    (tmp_path / "thirdparty_driver.py").write_text("class Store:\n    pass\n\nclass Shadow:\n    pass\n")
    return tmp_path


def test_third_party_entry_points_are_found_but_cannot_shadow_builtins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fake_distribution(tmp_path, registry.OBJECT_STORES, "thirdparty", "thirdparty_driver:Store")
    (path / "thirdparty_driver-1.0.dist-info" / "entry_points.txt").write_text(
        f"[{registry.OBJECT_STORES}]\nthirdparty = thirdparty_driver:Store\nswift = thirdparty_driver:Shadow\n"
    )
    monkeypatch.syspath_prepend(str(path))
    assert registry.load(registry.OBJECT_STORES, "thirdparty").__name__ == "Store"
    assert registry.load(registry.OBJECT_STORES, "swift").__name__ == "SwiftStore"
    assert "thirdparty" in registry.available(registry.OBJECT_STORES)


def test_runtime_registration_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    class Mine:
        pass

    monkeypatch.setitem(registry._runtime, registry.VOLUME_BACKENDS, {"file": Mine})
    assert registry.load(registry.VOLUME_BACKENDS, "file") is Mine


def test_unknown_name_is_a_typed_error_naming_it_and_what_exists() -> None:
    with pytest.raises(InvalidInput) as exc:
        registry.load(registry.VOLUME_BACKENDS, "zfs")
    message = str(exc.value)
    assert "'zfs'" in message and "file" in message and "lvm" in message


@pytest.mark.parametrize(
    ("target", "expected"),
    [("json:dumps", "dumps"), ("os.path:join", "join"), ("collections:OrderedDict.fromkeys", "fromkeys")],
)
def test_load_target(target: str, expected: str) -> None:
    assert registry.load_target(target).__name__ == expected
