"""Thin LVM in the guest: revert by swap keeps other snapshots, thin_delta changed ranges, the
os-brick workarounds on the real tools, and a thin incremental backup through the backup engine."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from backends.volume.lvm.driver import LvmVolumeBackend
from storage.errors import NotFound
from tests.guest.test_lvm_contract import THICK_VG, THIN_VG, make_backend
from tests.volume_contract import new_id, pread, pwrite

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def thin(guest_disks: list[str]) -> Iterator[LvmVolumeBackend]:
    backend = make_backend("thin", guest_disks)
    yield backend
    for item in backend.list_items():
        if item.kind == "snapshot":
            backend.delete_snapshot(item.parent_id or "", item.id)
    for item in backend.list_items():
        backend.delete_volume(item.id)


def test_thin_revert_swaps_in_a_copy_and_keeps_every_snapshot(thin: LvmVolumeBackend) -> None:
    vid, s1, s2 = new_id(), new_id(), new_id()
    thin.create_volume(vid, 8 * MIB)
    with thin.open_volume(vid) as path:
        pwrite(path, 0, b"one" * 1000)
    thin.create_snapshot(vid, s1)
    with thin.open_volume(vid) as path:
        pwrite(path, 0, b"two" * 1000)
    thin.create_snapshot(vid, s2)
    with thin.open_volume(vid) as path:
        pwrite(path, 0, b"three" * 1000)
    thin.revert_to_snapshot(vid, s1)
    with thin.open_volume(vid) as path:
        assert pread(path, 0, 3000) == b"one" * 1000
    with thin.open_snapshot(vid, s2) as path:
        assert pread(path, 0, 3000) == b"two" * 1000
    snaps = {i.id: i.parent_id for i in thin.list_items() if i.kind == "snapshot"}
    assert snaps == {s1: vid, s2: vid}  # parents survive the swap (LV tags)
    thin.revert_to_snapshot(vid, s2)  # and reverting again, to the other one, works
    with thin.open_volume(vid) as path:
        assert pread(path, 0, 3000) == b"two" * 1000
    for s in (s1, s2):
        thin.delete_snapshot(vid, s)
    thin.delete_volume(vid)


def test_changed_ranges_cover_ten_random_regions_and_little_else(thin: LvmVolumeBackend) -> None:
    vid, base, new = new_id(), new_id(), new_id()
    size = 256 * MIB
    thin.create_volume(vid, size)
    rng = random.Random(7)
    with thin.open_volume(vid) as path:
        for offset in range(0, size, 16 * MIB):
            pwrite(path, offset, rng.randbytes(MIB))  # allocate some blocks before the base
    thin.create_snapshot(vid, base)
    regions = sorted(rng.randrange(0, size - MIB) // 4096 * 4096 for _ in range(10))
    with thin.open_volume(vid) as path:
        for offset in regions:
            pwrite(path, offset, rng.randbytes(MIB))
    thin.create_snapshot(vid, new)
    result = thin.changed_ranges(vid, base, new)
    assert result is not None and result.source == "thin_delta"
    for offset in regions:
        assert any(o <= offset and offset + MIB <= o + n for o, n in result.ranges), (offset, result.ranges)
    covered = sum(n for _, n in result.ranges)
    assert 10 * MIB <= covered + 0 or covered >= MIB  # regions may overlap
    assert covered <= 10 * (MIB + 2 * 64 * 1024), result.ranges  # at most one pool block each side
    assert result.ranges == sorted(result.ranges)
    # Nothing changed between a snapshot and itself; the metadata snapshot was released.
    assert thin.changed_ranges(vid, new, new).ranges == []
    # The spot check catches a delta that misses changes (here: one claiming nothing changed).
    # A delta that claims everything changed except one really changed region must be caught.
    window = regions[0] // (64 * 1024) * (64 * 1024)
    wrong = [(0, window), (window + 2 * MIB, size - window - 2 * MIB)] if window else [(2 * MIB, size - 2 * MIB)]
    samples, thin.verify_samples = thin.verify_samples, 2000
    try:
        assert thin._spot_check(vid, base, new, wrong, size, 64 * 1024) is not None
    finally:
        thin.verify_samples = samples
    assert thin._spot_check(vid, base, new, result.ranges, size, 64 * 1024) is None
    for s in (base, new):
        thin.delete_snapshot(vid, s)
    thin.delete_volume(vid)


def test_os_brick_class_global_prefix_of_another_instance_does_not_leak(thin: LvmVolumeBackend, tmp_path: Path) -> None:
    from os_brick.local_dev import lvm as brick_lvm

    conf_dir = tmp_path / "blind"
    conf_dir.mkdir()
    (conf_dir / "lvm.conf").write_text(
        Path("/etc/lvm/lvm.conf").read_text() + '\ndevices {\n    global_filter = [ "r|.*|" ]\n}\n'
    )
    blind = LvmVolumeBackend("blind", {"vg_name": THIN_VG, "lvm_type": "thin", "lvm_conf": str(conf_dir / "lvm.conf")})
    with pytest.raises(NotFound, match=THIN_VG):
        blind.usage()  # its own lvm.conf hides every disk, so its VG is not found
    assert any(str(conf_dir) in part for part in brick_lvm.LVM.LVM_CMD_PREFIX)  # the global was overwritten
    vid = new_id()
    thin.create_volume(vid, 8 * MIB)  # ...and yet the other instance still sees its VG
    assert vid in {i.id for i in thin.list_items()}
    thin.delete_volume(vid)


def test_os_brick_sizes_round_up_and_static_helpers_run_without_privsep(thin: LvmVolumeBackend) -> None:
    import os_brick.privileged
    from os_brick.local_dev import lvm as brick_lvm

    vid = new_id()
    thin.create_volume(vid, 1024 * MIB + 4 * MIB)
    info = thin.brick.get_volume(f"volume-{vid}")
    assert info["size"] == "1.01" and info["size_bytes"] == 1028 * MIB  # os-brick alone says "1.00"
    assert {i.id: i.size_bytes for i in thin.list_items()}[vid] == 1028 * MIB
    assert os_brick.privileged.default.client_mode is False
    assert brick_lvm.LVM.get_lvm_version("")[0] == 2  # a static helper, in-process
    thin.delete_volume(vid)


def test_thick_revert_merges_with_the_qualified_snapshot_name(guest_disks: list[str]) -> None:
    thick = make_backend("thick", guest_disks)
    vid, sid = new_id(), new_id()
    thick.create_volume(vid, 8 * MIB)
    with thick.open_volume(vid) as path:
        pwrite(path, 0, b"kept")
    thick.create_snapshot(vid, sid)
    with thick.open_volume(vid) as path:
        pwrite(path, 0, b"lost")
    thick.brick.deactivate_lv(f"volume-{vid}")
    thick.brick.revert(f"snap-{sid}")  # os-brick's own revert() would pass the bare name and fail
    thick.brick.activate_lv(f"volume-{vid}")
    with thick.open_volume(vid) as path:
        assert pread(path, 0, 4) == b"kept"
    thick.delete_snapshot(vid, sid)
    thick.delete_volume(vid)
    assert THICK_VG == thick.vg


@pytest.fixture
def thin_storage(guest_disks: list[str]) -> Iterator[storage.Storage]:
    make_backend("thin", guest_disks)  # the VG and its pool exist
    # The file object store needs user xattrs: the guest's /tmp is a 6.1 tmpfs without them.
    data = Path(tempfile.mkdtemp(prefix="backup-", dir="/var/tmp"))
    cfg = data / "storage.toml"
    cfg.write_text(
        f'data_dir = "{data}"\ndefault_pool = "thin"\n'
        f'[pools.thin]\ndriver = "lvm"\nvg_name = "{THIN_VG}"\nlvm_type = "thin"\nrun_dir = "{data}/run"\n'
        '[backup]\nchunk_size = "1M"\ncompression = "zstd"\n'
    )
    st = storage.open(cfg)
    yield st
    for snap in st.snapshots.list():
        st.snapshots.delete(snap.id)
    for vol in st.volumes.list():
        st.volumes.delete(vol.id, force=True)
    st.close()
    shutil.rmtree(data, ignore_errors=True)


def test_thin_incremental_backup_reads_only_changed_blocks_and_restores_identical(
    thin_storage: storage.Storage, tmp_path: Path
) -> None:
    st = thin_storage
    size = 64 * MIB
    vol = st.volumes.create("thinvol", size)
    rng = random.Random(11)
    backend = st.host.volume_backend(vol.pool)
    with backend.open_volume(vol.id) as path:
        pwrite(path, 0, rng.randbytes(size))
    full = st.backups.create(f"volume:{vol.id}")
    assert full.status == "available" and full.read_bytes >= size
    regions = [3 * MIB, 17 * MIB, 40 * MIB + 4096]
    with backend.open_volume(vol.id) as path:
        for offset in regions:
            pwrite(path, offset, rng.randbytes(64 * 1024))
        expected = pread(path, 0, size)
    incremental = st.backups.create(f"volume:{vol.id}")
    assert incremental.status == "available"
    # Only the 1 MiB chunks holding the changed 64 KiB pool blocks are read.
    assert 0 < incremental.read_bytes <= len(regions) * 2 * MIB, incremental
    assert incremental.reused_chunk_count >= size // MIB - 2 * len(regions)
    target = Path(tempfile.mkdtemp(dir="/var/tmp")) / "restored.img"
    st.backups.restore(incremental.id, to_path=str(target))
    assert target.read_bytes() == expected
    shutil.rmtree(target.parent)
