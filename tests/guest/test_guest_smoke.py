"""The guest itself: the kernel features and tools the LVM and LIO tests rely on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def test_device_mapper_targets_are_available() -> None:
    targets = run("dmsetup", "targets")
    for target in ("thin-pool", "thin", "snapshot", "snapshot-origin", "linear"):
        assert target in targets.split(), targets


def test_configfs_and_iscsi_modules_are_loaded() -> None:
    modules = Path("/proc/modules").read_text()
    for name in ("target_core_mod", "iscsi_target_mod", "iscsi_tcp", "configfs"):
        assert name in modules or Path(f"/sys/module/{name}").exists(), name


def test_scratch_disks_are_block_devices(guest_disks: list[str]) -> None:
    for disk in guest_disks:
        assert Path(disk).is_block_device(), disk
        size = int(run("blockdev", "--getsize64", disk))
        assert size >= 2**30


def test_source_share_is_read_only_and_tmp_is_writable() -> None:
    assert Path("/src/pyproject.toml").is_file()
    assert not os.access("/src/pyproject.toml", os.W_OK) or _write_fails("/src/.guest-write-probe")
    probe = Path("/tmp/probe")
    probe.write_text("x")
    assert probe.read_text() == "x"


def _write_fails(path: str) -> bool:
    try:
        Path(path).write_text("x")
    except OSError:
        return True
    Path(path).unlink()
    return False


def test_project_and_entry_points_import() -> None:
    import storage.registry as registry

    assert "lvm" in registry.available(registry.VOLUME_BACKENDS)
    assert "file" in registry.available(registry.VOLUME_BACKENDS)


def test_lvm_runs_without_udev() -> None:
    out = subprocess.run(["lvm", "version"], capture_output=True, text=True, check=True, env={"LC_ALL": "C", "PATH": os.environ["PATH"]})
    assert "LVM version" in out.stdout
