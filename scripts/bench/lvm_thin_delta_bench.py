#!/usr/bin/env python3
"""Benchmark, run INSIDE the guest tier: incremental backup of a thin LVM volume with thin_delta
changed ranges against the same incremental with a full read.

    scripts/vm/guestvm.py run -- python scripts/bench/lvm_thin_delta_bench.py [--size-mib 1024] [--regions 10]

Two pools on one thin VG (on the guest's first scratch disk): ``delta`` (the LVM driver) and
``full`` (the same driver with changed ranges switched off, so every backup reads the whole
snapshot). In each: a volume of --size-mib is filled, backed up once, then --regions random
1 MiB regions are overwritten and the next (measured) backup runs. Prints one JSON document:
bytes read and seconds of each measured backup, and of thin_delta itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import storage  # noqa: E402
from backends.volume.lvm.driver import LvmVolumeBackend  # noqa: E402
from storage import registry  # noqa: E402

MIB = 1024 * 1024
VG = "benchvg"


class FullReadLvmBackend(LvmVolumeBackend):
    """The LVM driver without changed ranges: the backup engine reads every byte."""

    def capabilities(self):  # type: ignore[no-untyped-def]
        from dataclasses import replace

        return replace(super().capabilities(), changed_ranges=False)

    def changed_ranges(self, volume_id: str, base_snapshot_id: str, snapshot_id: str):  # type: ignore[no-untyped-def]
        return None


def fill(path: str, size: int, rng: random.Random) -> None:
    """Incompressible, non-repeating content without generating size random bytes."""
    block = rng.randbytes(16 * MIB)
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset in range(0, size, MIB):
            piece = block[(offset % (16 * MIB)) : (offset % (16 * MIB)) + MIB]
            os.pwrite(fd, offset.to_bytes(8, "little") + piece[8:], offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def change_regions(path: str, size: int, count: int, rng: random.Random) -> list[int]:
    offsets = sorted(rng.randrange(0, size - MIB) // 4096 * 4096 for _ in range(count))
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset in offsets:
            os.pwrite(fd, rng.randbytes(MIB), offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    return offsets


def run_pool(st: storage.Storage, pool: str, size: int, regions: int, seed: int) -> dict:
    rng = random.Random(seed)
    vol = st.volumes.create(f"bench-{pool}", size, pool=pool)
    backend = st.host.volume_backend(pool)
    with backend.open_volume(vol.id) as path:
        fill(path, size, rng)
    started = time.monotonic()
    first = st.backups.create(f"volume:{vol.id}")
    first_seconds = time.monotonic() - started
    with backend.open_volume(vol.id) as path:
        offsets = change_regions(path, size, regions, rng)
    started = time.monotonic()
    second = st.backups.create(f"volume:{vol.id}")
    seconds = time.monotonic() - started
    result = {
        "pool": pool,
        "first_backup_seconds": round(first_seconds, 2),
        "first_backup_read_bytes": first.read_bytes,
        "incremental_seconds": round(seconds, 2),
        "incremental_read_bytes": second.read_bytes,
        "incremental_reused_chunks": second.reused_chunk_count,
        "changed_region_offsets": offsets,
    }
    return result


def thin_delta_timing(backend: LvmVolumeBackend, size: int, regions: int, seed: int) -> dict:
    """changed_ranges() alone, on a fresh volume with the same change pattern."""
    import uuid

    rng = random.Random(seed)
    vid, base, new = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    backend.create_volume(vid, size)
    with backend.open_volume(vid) as path:
        fill(path, size, rng)
    backend.create_snapshot(vid, base)
    with backend.open_volume(vid) as path:
        change_regions(path, size, regions, rng)
    backend.create_snapshot(vid, new)
    started = time.monotonic()
    ranges = backend.changed_ranges(vid, base, new)
    seconds = time.monotonic() - started
    assert ranges is not None
    with backend.open_snapshot(vid, new) as path:
        started = time.monotonic()
        fd = os.open(path, os.O_RDONLY)
        try:
            done = 0
            while done < size:
                done += len(os.pread(fd, 4 * MIB, done))
        finally:
            os.close(fd)
        full_read_seconds = time.monotonic() - started
    for snap in (base, new):
        backend.delete_snapshot(vid, snap)
    backend.delete_volume(vid)
    return {
        "thin_delta_seconds": round(seconds, 3),
        "thin_delta_ranges": len(ranges.ranges),
        "thin_delta_bytes": sum(n for _, n in ranges.ranges),
        "raw_full_read_seconds": round(full_read_seconds, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--regions", type=int, default=10)
    disks = os.environ.get("GUEST_DISKS", "/dev/vdb /dev/vdc").split()
    parser.add_argument("--disk", default=disks[0], help="scratch disk for the thin VG")
    parser.add_argument("--repo-disk", default=disks[1] if len(disks) > 1 else None,
                        help="scratch disk formatted ext4 for the data dir and backup repository (xattrs)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if os.environ.get("STORAGE_IN_GUEST") != "1":
        print("run this inside the guest: scripts/vm/guestvm.py run -- python scripts/bench/lvm_thin_delta_bench.py", file=sys.stderr)
        return 2
    size = args.size_mib * MIB
    registry.register(registry.VOLUME_BACKENDS, "lvm-full-read", FullReadLvmBackend)
    LvmVolumeBackend("setup", {"vg_name": VG, "lvm_type": "thin", "physical_volumes": args.disk}).usage()
    tmp = tempfile.mkdtemp(prefix="bench-", dir="/var/tmp")
    if args.repo_disk:
        subprocess.run(["mkfs.ext4", "-q", "-F", args.repo_disk], check=True)
        subprocess.run(["mount", args.repo_disk, tmp], check=True)
    try:
        cfg = Path(tmp) / "storage.toml"
        cfg.write_text(
            f'data_dir = "{tmp}"\ndefault_pool = "delta"\n'
            f'[pools.delta]\ndriver = "lvm"\nvg_name = "{VG}"\nlvm_type = "thin"\nrun_dir = "{tmp}/run"\n'
            f'[pools.full]\ndriver = "lvm-full-read"\nvg_name = "{VG}"\nlvm_type = "thin"\nrun_dir = "{tmp}/run"\n'
        )
        with storage.open(cfg) as st:
            report = {
                "size_bytes": size,
                "regions": args.regions,
                "delta": run_pool(st, "delta", size, args.regions, args.seed),
                "full": run_pool(st, "full", size, args.regions, args.seed),
                "backend": thin_delta_timing(st.host.volume_backend("delta"), size, args.regions, args.seed),  # type: ignore[arg-type]
            }
            for snap in st.snapshots.list():
                st.snapshots.delete(snap.id)
            for vol in st.volumes.list():
                st.volumes.delete(vol.id, force=True)
    finally:
        if args.repo_disk:
            subprocess.run(["umount", tmp], check=False)
    print(json.dumps(report, indent=2))
    subprocess.run(["vgremove", "-f", VG], capture_output=True, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
