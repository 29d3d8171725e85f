"""Helpers and fixtures for volume tests: loop-device hygiene and a reflink (xfs) pool.

Import the fixtures into a test module with ``from tests.volume_helpers import *  # noqa``
or name them in ``pytest_plugins``. Everything started here is torn down, even on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

MIB = 1024 * 1024


def loops_backed_under(root: Path) -> list[str]:
    """Loop devices whose backing file lies under ``root``."""
    out = subprocess.run(["losetup", "--list", "--json"], capture_output=True, text=True, check=False).stdout
    devs = json.loads(out)["loopdevices"] if out.strip() else []
    prefix = str(root)
    return [d["name"] for d in devs if (d.get("back-file") or "").startswith(prefix)]


def detach_all_under(root: Path) -> None:
    for dev in loops_backed_under(root):
        subprocess.run(["losetup", "--detach", dev], check=False, capture_output=True)


def loop_support_reason() -> str | None:
    if os.geteuid() != 0:
        return "loop devices need root"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control (no loop device support on this host)"
    if shutil.which("losetup") is None:
        return "losetup (util-linux) is not installed"
    return None


requires_loop = pytest.mark.skipif(loop_support_reason() is not None, reason=loop_support_reason() or "")


@pytest.fixture
def loop_hygiene(tmp_path: Path) -> Iterator[Path]:
    """Detach every loop device backed by a file under tmp_path after the test, and fail on leaks."""
    yield tmp_path
    leaked = loops_backed_under(tmp_path)
    detach_all_under(tmp_path)
    assert not leaked, f"test left loop devices attached: {leaked}"


def write_at(device_or_file: str, offset: int, data: bytes) -> None:
    fd = os.open(device_or_file, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_at(path: str, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def reflink_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory on an xfs filesystem with reflink=1, on a loop device (session-wide, 320 MiB)."""
    reason = loop_support_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("mkfs.xfs") is None:
        pytest.skip("mkfs.xfs (xfsprogs) is not installed; needed for the reflink pool")
    base = tmp_path_factory.mktemp("xfs")
    image = base / "xfs.img"
    mnt = base / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(320 * MIB)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True, capture_output=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True).stdout.strip()
    try:
        mounted = subprocess.run(["mount", "-t", "xfs", dev, str(mnt)], capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount an xfs image here: {mounted.stderr.strip()}")
        try:
            yield mnt
        finally:
            detach_all_under(mnt)
            subprocess.run(["umount", str(mnt)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False, capture_output=True)
        image.unlink(missing_ok=True)


@pytest.fixture
def reflink_pool(reflink_dir: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh pool directory on the reflink filesystem, emptied after the test."""
    pool = reflink_dir / f"pool-{abs(hash(request.node.nodeid)):x}"
    pool.mkdir()
    try:
        yield pool
    finally:
        detach_all_under(pool)
        shutil.rmtree(pool, ignore_errors=True)
