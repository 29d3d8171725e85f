"""Real LVM in the guest, beyond the shared contract: data through /dev/<vg>/<lv> across
snapshot, clone, extend and revert (thick and thin); thin_delta changed ranges; the os-brick
workarounds; a thin incremental backup that reads only the changed blocks."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.volume.lvm.driver import LvmVolumeBackend
from storage.errors import Conflict, NotFound
from tests.guest.test_lvm_contract import THICK_VG, THIN_VG, make_backend
from tests.volume_contract import new_id, pread, pwrite

MIB = 1024 * 1024


@pytest.fixture(scope="module", params=["thick", "thin"])
def lvm(request: pytest.FixtureRequest, guest_disks: list[str]) -> Iterator[LvmVolumeBackend]:
    backend = make_backend(request.param, guest_disks)
    yield backend
    for item in backend.list_items():
        if item.kind == "snapshot":
            backend.delete_snapshot(item.parent_id or "", item.id)
    for item in backend.list_items():
        backend.detach(item.id)
        backend.delete_volume(item.id)


def pattern(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_data_through_the_lv_device_survives_snapshot_clone_extend_revert(lvm: LvmVolumeBackend) -> None:
    vid, sid, clone = new_id(), new_id(), new_id()
    size = 16 * MIB
    lvm.create_volume(vid, size)
    dev = lvm.attach(vid)
    assert dev == f"/dev/{lvm.vg}/volume-{vid}" and Path(dev).is_block_device()
    first = pattern(1, size)
    pwrite(dev, 0, first)
    lvm.detach(vid)

    lvm.create_snapshot(vid, sid)
    second = pattern(2, 4 * MIB)
    with lvm.open_volume(vid) as path:
        pwrite(path, 6 * MIB, second)
    lvm.clone_snapshot(vid, sid, clone, size)
    with lvm.open_volume(clone) as path:
        assert pread(path, 0, size) == first

    lvm.extend_volume(vid, 2 * size)  # not in use: allowed for thick with snapshots too
    with lvm.open_volume(vid) as path:
        assert pread(path, 6 * MIB, 4 * MIB) == second
        assert pread(path, 0, 6 * MIB) == first[: 6 * MIB]
        pwrite(path, 2 * size - MIB, b"tail" * 1024)
    sizes = {i.id: i.size_bytes for i in lvm.list_items()}
    assert sizes[vid] == 2 * size

    lvm.revert_to_snapshot(vid, sid)
    with lvm.open_volume(vid) as path:
        assert pread(path, 0, size) == first
    assert sid in {i.id for i in lvm.list_items() if i.kind == "snapshot"}  # the snapshot stays
    with lvm.open_snapshot(vid, sid) as path:
        assert pread(path, 0, size) == first
    with lvm.open_volume(clone) as path:
        assert pread(path, 0, size) == first  # the clone is independent

    lvm.delete_snapshot(vid, sid)
    for v in (clone, vid):
        lvm.delete_volume(v)


def test_in_use_volume_cannot_be_reverted_or_deleted(lvm: LvmVolumeBackend) -> None:
    vid, sid = new_id(), new_id()
    lvm.create_volume(vid, 8 * MIB)
    lvm.create_snapshot(vid, sid)
    lvm.attach(vid)
    try:
        with pytest.raises(Conflict, match="detach"):
            lvm.revert_to_snapshot(vid, sid)
        with pytest.raises(Conflict):
            lvm.delete_volume(vid)
        if not lvm.thin:
            with pytest.raises(Conflict, match="inactive"):
                lvm.extend_volume(vid, 16 * MIB)
        else:
            lvm.extend_volume(vid, 16 * MIB)  # thin volumes extend online, snapshots or not
            fd = os.open(lvm.attached_device(vid) or "", os.O_RDONLY)
            try:
                assert os.lseek(fd, 0, os.SEEK_END) == 16 * MIB
            finally:
                os.close(fd)
    finally:
        lvm.detach(vid)
        lvm.delete_snapshot(vid, sid)
        lvm.delete_volume(vid)
    with pytest.raises(NotFound):
        lvm.create_snapshot(vid, new_id())




def test_usage_reports_pool_state(lvm: LvmVolumeBackend) -> None:
    vid = new_id()
    before = lvm.usage()
    lvm.create_volume(vid, 32 * MIB)
    with lvm.open_volume(vid) as path:
        pwrite(path, 0, pattern(3, 16 * MIB))
    after = lvm.usage()
    assert after.provisioned_bytes == before.provisioned_bytes + 32 * MIB
    if lvm.thin:
        assert after.allocated_bytes >= before.allocated_bytes + 15 * MIB
        assert after.extra["data_percent"] > before.extra["data_percent"]
        assert after.extra["metadata_percent"] > 0 and after.overcommit_ratio == 20.0
    else:
        assert after.free_bytes == before.free_bytes - 32 * MIB
    lvm.delete_volume(vid)
