#!/usr/bin/env python3
"""CPU time per GiB of the backup data path (in process, file-store repository, no Swift, no start-up).

    .venv/bin/python scripts/bench/backup_cpu.py [--size-mib 512] [--work /var/tmp/backup-cpu]

Fills a file-pool volume (detached, on the work dir's file system) with random data, then for a
plain and an encrypted repository: full backup, incremental after ten random 1 MiB writes,
restore to a new file. Prints user+sys CPU seconds of this process (every thread) per GiB, and
wall time. CPU time is what a busy machine disturbs least: compare builds with it (run it with
another checkout first on PYTHONPATH) rather than with wall clock on a loaded host.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(":")[0] or str(Path(__file__).resolve().parents[2]))
import storage  # noqa: E402

MIB = 1024 * 1024


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def fill(path: str, offset: int, length: int, rng: random.Random) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        for start in range(0, length, 16 * MIB):
            os.pwrite(fd, rng.randbytes(min(16 * MIB, length - start)), offset + start)
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--work", default="/var/tmp/backup-cpu")
    args = ap.parse_args()
    work, size = Path(args.work), args.size_mib * MIB
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    cfg = work / "storage.toml"
    cfg.write_text(f'data_dir = "{work}/data"\ndefault_pool = "p"\n[pools.p]\ndriver = "file"\npath = "{work}/pool"\n')
    print(f"storage from {storage.__file__}, {args.size_mib} MiB, load average {os.getloadavg()}", flush=True)
    st = storage.open(cfg)
    try:
        vol = st.volumes.create("v", size)
        with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
            volume_path = str(path)
        fill(volume_path, 0, size, random.Random(1))
        key = str(st.backups.create_key(work / "key"))
        gib = size / 2**30
        for encrypted in (False, True):
            url = f"file://{work}/repos/{'encrypted' if encrypted else 'plain'}"
            results, last = {}, ""
            for what in ("full", "incremental", "restore"):
                if what == "incremental":
                    rng = random.Random(5)
                    for _ in range(10):
                        fill(volume_path, rng.randrange(0, size - MIB), MIB, rng)
                c0, t0 = cpu(), time.monotonic()
                if what == "restore":
                    st.backups.restore(last, to_path=str(work / "out.raw"))
                    (work / "out.raw").unlink()
                else:
                    last = st.backups.create("v", repository=url, encryption_key_file=key if encrypted else None).id
                results[what] = f"{(cpu() - c0) / gib:.2f} CPU-s/GiB ({time.monotonic() - t0:.2f} s wall)"
            print("encrypted" if encrypted else "plain", results, flush=True)
    finally:
        st.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
