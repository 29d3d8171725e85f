"""The file backend: the shared contract on ext4 (copy path) and xfs (reflink + FIEMAP path),
plus what is specific to files: capacity and overcommit, hole preservation, stale loop devices."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.volume.file import copy as file_copy
from backends.volume.file.driver import FileVolumeBackend
from storage.errors import InsufficientCapacity, InvalidInput
from tests.volume_contract import VolumeBackendContract, attached, new_id, pwrite
from tests.volume_helpers import (  # noqa: F401  (fixtures)
    MIB,
    detach_all_under,
    loop_hygiene,
    reflink_dir,
    reflink_pool,
    requires_loop,
)

pytestmark = [pytest.mark.loop, requires_loop]


@pytest.fixture
def ext4_backend(tmp_path: Path, loop_hygiene: Path) -> Iterator[FileVolumeBackend]:
    b = FileVolumeBackend("t", {"path": str(tmp_path / "pool")})
    yield b
    detach_all_under(tmp_path)


@pytest.fixture
def xfs_backend(reflink_pool: Path) -> Iterator[FileVolumeBackend]:
    b = FileVolumeBackend("x", {"path": str(reflink_pool)})
    yield b
    detach_all_under(reflink_pool)


class TestFileBackendCopy(VolumeBackendContract):
    @pytest.fixture
    def backend(self, ext4_backend: FileVolumeBackend) -> FileVolumeBackend:
        if file_copy.reflink_supported(ext4_backend.root):
            pytest.skip("this filesystem has reflinks; the copy path is tested on a non-reflink filesystem only")
        assert ext4_backend.capabilities().copy_method == "copy"
        return ext4_backend


class TestFileBackendReflink(VolumeBackendContract):
    @pytest.fixture
    def backend(self, xfs_backend: FileVolumeBackend) -> FileVolumeBackend:
        caps = xfs_backend.capabilities()
        assert caps.copy_method == "reflink" and caps.changed_ranges
        return xfs_backend


def test_copy_preserves_holes(ext4_backend: FileVolumeBackend) -> None:
    vid, sid = new_id(), new_id()
    ext4_backend.create_volume(vid, 256 * MIB)
    pwrite(str(ext4_backend.volume_path(vid)), 100 * MIB, b"x" * 4096)
    ext4_backend.create_snapshot(vid, sid)
    snap = ext4_backend.snapshot_path(sid)
    assert snap.stat().st_size == 256 * MIB
    assert snap.stat().st_blocks * 512 < 1 * MIB  # the holes stayed holes
    with open(snap, "rb") as f:
        f.seek(100 * MIB)
        assert f.read(4096) == b"x" * 4096


def test_reflink_snapshot_shares_blocks_and_changed_ranges_are_exact(xfs_backend: FileVolumeBackend) -> None:
    vid, s1, s2 = new_id(), new_id(), new_id()
    xfs_backend.create_volume(vid, 64 * MIB)
    vol = str(xfs_backend.volume_path(vid))
    pwrite(vol, 0, os.urandom(16 * MIB))
    before = xfs_backend.usage().free_bytes
    xfs_backend.create_snapshot(vid, s1)
    assert before - xfs_backend.usage().free_bytes < 2 * MIB  # a reflink copies no data
    pwrite(vol, 4 * MIB, os.urandom(4096))
    pwrite(vol, 40 * MIB, os.urandom(8192))  # was a hole
    xfs_backend.create_snapshot(vid, s2)
    result = xfs_backend.changed_ranges(vid, s1, s2)
    assert result is not None and result.source == "fiemap"
    assert result.ranges == [(4 * MIB, 4096), (40 * MIB, 8192)], result.ranges
    assert xfs_backend.changed_ranges(vid, s1, s1) is not None
    assert xfs_backend.changed_ranges(vid, s1, s1).ranges == []


def test_changed_ranges_is_none_without_reflinks(ext4_backend: FileVolumeBackend) -> None:
    vid, s1, s2 = new_id(), new_id(), new_id()
    ext4_backend.create_volume(vid, 8 * MIB)
    ext4_backend.create_snapshot(vid, s1)
    ext4_backend.create_snapshot(vid, s2)
    assert ext4_backend.changed_ranges(vid, s1, s2) is None


def test_capacity_and_overcommit(reflink_pool: Path) -> None:
    strict = FileVolumeBackend("cap", {"path": str(reflink_pool)})
    total = strict.usage().total_bytes
    big = (total // 2 // MIB + 1) * MIB  # two of these exceed the filesystem
    a, b = new_id(), new_id()
    strict.create_volume(a, big)
    with pytest.raises(InsufficientCapacity, match="cannot provision"):
        strict.create_volume(b, big)
    assert not strict.volume_path(b).exists()
    with pytest.raises(InsufficientCapacity):
        strict.extend_volume(a, 2 * big)
    loose = FileVolumeBackend("cap", {"path": str(reflink_pool), "overcommit_ratio": 3})
    loose.create_volume(b, big)  # sparse files allow overcommit when configured
    assert loose.usage().provisioned_bytes == 2 * big
    for v in (a, b):
        loose.delete_volume(v)


@pytest.mark.parametrize("bad", [0, -1, "x", None])
def test_bad_overcommit_ratio(tmp_path: Path, bad: object) -> None:
    with pytest.raises(InvalidInput, match="overcommit_ratio"):
        FileVolumeBackend("p", {"path": str(tmp_path), "overcommit_ratio": bad})


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="path"):
        FileVolumeBackend("p", {})
    with pytest.raises(InvalidInput, match="direct_io"):
        FileVolumeBackend("p", {"path": str(tmp_path), "direct_io": "maybe"})


@pytest.mark.parametrize("bad_id", ["../etc/passwd", "a/b", "", "x" * 40])
def test_ids_cannot_escape_the_pool(ext4_backend: FileVolumeBackend, bad_id: str) -> None:
    with pytest.raises(InvalidInput, match="UUID"):
        ext4_backend.create_volume(bad_id, MIB)


def test_stale_loop_device_is_found_and_removed(ext4_backend: FileVolumeBackend) -> None:
    vid = new_id()
    ext4_backend.create_volume(vid, 4 * MIB)
    dev = ext4_backend.attach(vid)
    try:
        assert ext4_backend.stale_attachments({vid}) == []
        assert ext4_backend.stale_attachments(set()) == [dev]
        ext4_backend.remove_stale_attachment(dev)
        assert ext4_backend.attached_device(vid) is None
    finally:
        ext4_backend.detach(vid)


def test_direct_io_on_is_used(ext4_backend: FileVolumeBackend) -> None:
    from backends.volume.file.loop import list_loops

    vid = new_id()
    ext4_backend.create_volume(vid, 4 * MIB)
    with attached(ext4_backend, vid) as dev:
        row = next(d for d in list_loops() if d["name"] == dev)
        assert str(row.get("dio")) in ("1", "True", "true")


def test_reattach_after_restart_finds_device(ext4_backend: FileVolumeBackend) -> None:
    """A new backend instance (a restarted process) finds the loop device with losetup -j."""
    vid = new_id()
    ext4_backend.create_volume(vid, 4 * MIB)
    with attached(ext4_backend, vid) as dev:
        again = FileVolumeBackend("t", {"path": str(ext4_backend.root)})
        assert again.attached_device(vid) == dev


def test_volume_ids_are_uuid_file_names(ext4_backend: FileVolumeBackend) -> None:
    vid = str(uuid.uuid4())
    ext4_backend.create_volume(vid, MIB)
    assert ext4_backend.volume_path(vid) == ext4_backend.root / "volumes" / f"{vid}.img"


def test_os_brick_local_connector(tmp_path: Path, loop_hygiene: Path) -> None:
    b = FileVolumeBackend("t", {"path": str(tmp_path / "pool"), "connector": "os-brick"})
    vid = new_id()
    b.create_volume(vid, 4 * MIB)
    with attached(b, vid) as dev:
        assert dev.startswith("/dev/loop") and b.attached_device(vid) == dev


def test_changed_extents_pure() -> None:
    # base: one extent at physical 1000; new shares its first half, rewrote the rest, punched nothing
    base = [(0, 1000, 8192, 0)]
    new = [(0, 1000, 4096, 0x2000), (4096, 9000, 4096, 0), (16384, 7000, 4096, 1)]
    assert file_copy.changed_extents(base, new) == [(4096, 4096), (16384, 4096)]
    # data in base that became a hole in new is reported; uncomparable extents count as changed
    assert file_copy.changed_extents([(0, 10, 4096, 0), (8192, 50, 4096, 0)], [(0, 10, 4096, 0x4)]) == [
        (0, 4096), (8192, 4096)]
    assert file_copy.merge_ranges([(10, 5), (0, 10), (30, 1)]) == [(0, 15), (30, 1)]


def test_capacity_is_not_overshot_by_concurrent_processes(reflink_pool: Path) -> None:
    """Four processes each try to create a volume of 40% of the pool: at most two succeed."""
    import subprocess
    import sys

    total = FileVolumeBackend("cap", {"path": str(reflink_pool)}).usage().total_bytes
    size = (total * 2 // 5 // MIB) * MIB
    code = (
        "import sys, uuid\nfrom backends.volume.file.driver import FileVolumeBackend\nfrom storage.errors import InsufficientCapacity\n"
        "b = FileVolumeBackend('cap', {'path': sys.argv[1]})\n"
        "try:\n    b.create_volume(str(uuid.uuid4()), int(sys.argv[2]))\nexcept InsufficientCapacity:\n    sys.exit(6)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(reflink_pool), str(size)]) for _ in range(4)]
    codes = sorted(p.wait(120) for p in procs)
    assert codes == [0, 0, 6, 6], codes
    assert FileVolumeBackend("cap", {"path": str(reflink_pool)}).usage().provisioned_bytes == 2 * size


def test_list_items_skips_a_file_deleted_while_listing(ext4_backend: FileVolumeBackend) -> None:
    """Drill 1 found it: another API replica deleting a volume between the directory listing and
    the stat made a listing answer 500. A dangling ``*.img`` is exactly that moment, frozen."""
    vid = new_id()
    ext4_backend.create_volume(vid, 1 << 20)
    (ext4_backend.root / "volumes" / "gone.img").symlink_to(ext4_backend.root / "volumes" / "deleted-meanwhile.img")
    (ext4_backend.root / "snapshots").mkdir(exist_ok=True)
    (ext4_backend.root / "snapshots" / "gone.img").symlink_to(ext4_backend.root / "snapshots" / "deleted.img")
    items = ext4_backend.list_items()
    assert [(i.kind, i.id) for i in items] == [("volume", vid)]
