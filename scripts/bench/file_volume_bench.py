"""Small benchmark of the file backend: create, attach, detach, snapshot (copy vs reflink).

    .venv/bin/python scripts/bench/file_volume_bench.py POOL_DIR [DATA_MIB]

Run it once on an ext4 directory (copy path) and once on an xfs reflink=1 mount.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from backends.volume.file.driver import FileVolumeBackend

MIB = 1024 * 1024


def timed(label: str, fn, *args):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args)
    print(f"{label:<28} {1000 * (time.perf_counter() - t):8.1f} ms")
    return out


def main() -> None:
    pool, data_mib = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 64
    b = FileVolumeBackend("bench", {"path": pool})
    print(f"pool {pool}: copy_method={b.capabilities().copy_method}, data={data_mib} MiB")
    vid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    timed("create 1 GiB", b.create_volume, vid, 1024 * MIB)
    with open(b.volume_path(vid), "r+b") as f:
        for i in range(data_mib):
            f.seek(i * 8 * MIB)
            f.write(os.urandom(MIB))
        os.fsync(f.fileno())
    dev = timed("attach (losetup --find)", b.attach, vid)
    timed("extend to 2 GiB (attached)", b.extend_volume, vid, 2048 * MIB)
    timed("detach", b.detach, vid)
    timed(f"snapshot ({data_mib} MiB data)", b.create_snapshot, vid, sid)
    timed("delete snapshot", b.delete_snapshot, vid, sid)
    timed("delete volume, wipe zero", b.delete_volume, vid, __import__("backends.volume.base").volume.base.WipeMode.ZERO)
    del dev


if __name__ == "__main__":
    main()
