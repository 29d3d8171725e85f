"""backup attach/detach: the device choice (table-tested on a sysfs-shaped tree) and, on this
host whose kernel has no nbd, the one-sentence refusal pointing to `backup serve`."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.cli.main import main
from storage.errors import Busy, InvalidInput
from storage.nbd import attach


def sysfs(tmp_path: Path, devices: dict[int, bool]) -> Path:
    """A /sys/block-shaped tree: nbdN for each N, with a pid file where connected is True."""
    block = tmp_path / "block"
    for n, connected in devices.items():
        (block / f"nbd{n}").mkdir(parents=True)
        if connected:
            (block / f"nbd{n}" / "pid").write_text("123\n")
    (block / "vda").mkdir(parents=True, exist_ok=True)
    return block


@pytest.mark.parametrize("devices,expected", [
    ({0: False, 1: False}, "/dev/nbd0"),
    ({0: True, 1: False, 2: False}, "/dev/nbd1"),
    ({0: True, 1: True, 10: False, 2: False}, "/dev/nbd2"),  # numeric order, not nbd10 before nbd2
])
def test_free_device(tmp_path: Path, devices: dict[int, bool], expected: str) -> None:
    assert attach.free_device(sysfs(tmp_path, devices)) == expected


def test_every_device_busy(tmp_path: Path) -> None:
    with pytest.raises(Busy, match=r"every NBD device \(2\) is in use"):
        attach.free_device(sysfs(tmp_path, {0: True, 1: True}))


def test_kernel_has_nbd(tmp_path: Path) -> None:
    assert not attach.kernel_has_nbd(tmp_path)
    (tmp_path / "module" / "nbd").mkdir(parents=True)
    assert attach.kernel_has_nbd(tmp_path)


@pytest.mark.parametrize("device", ["/dev/sda", "/dev/nbd", "nbd0", "/dev/nbd0/../sda", "/dev/nbd1234"])
def test_bad_devices(device: str) -> None:
    with pytest.raises(InvalidInput, match="accepted: /dev/nbdN"):
        attach.check_device(device)


@pytest.mark.skipif(attach.kernel_has_nbd(), reason="this kernel has nbd: the refusal is for hosts without it")
def test_attach_without_kernel_nbd_points_to_serve(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    assert main(["-c", str(config_file), "backup", "attach", "6f1b8a1e-5d2c-4c3b-9a1f-0e2d3c4b5a69"]) == 10
    err = capsys.readouterr().err
    assert "kernel has no nbd driver" in err and "storagectl backup serve" in err
    assert main(["-c", str(config_file), "backup", "detach", "/dev/nbd0"]) == 3
    assert "is not attached" in capsys.readouterr().err
    assert not (config_file.parent / "run").exists()
