"""kill -9 of a backup process at random points, then a rerun: nothing broken looks usable."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import storage
from tests.backup_helpers import MIB, chunk_ids, make_image, open_repo, same_bytes

SCRIPT = """
import sys, storage
said = []
def progress(p):
    if not said:
        said.append(1)
        print("started", flush=True)
with storage.open(sys.argv[1]) as st:
    st.backups.create(sys.argv[2], bandwidth_limit=sys.argv[3], progress=progress)
"""


@pytest.mark.slow
def test_kill_9_at_random_points_then_rerun(st: storage.Storage, config_file: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", 24 * MIB, seed=21, data_ranges=[(0, 20 * MIB)])
    rng = random.Random()
    delays = sorted(rng.uniform(0.0, 2.6) for _ in range(3))  # 20 MiB at 8 MiB/s: about 2.5 s
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(config_file), str(image), "8M"], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"started"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
        for b in st.backups.list():
            assert b.status in ("interrupted", "available"), (delay, b)
            if b.status == "available":  # it finished before the kill: it must be whole
                assert st.backups.verify(b.id, deep=True).ok
    assert not st.backups.list(status="creating")
    repo = open_repo(st)
    uploaded = len(chunk_ids(repo))
    rerun = st.backups.create(str(image))
    assert rerun.status == "available"
    assert rerun.dedup_chunk_count == uploaded and rerun.new_chunk_count == 20 - uploaded
    out = tmp_path / "out"
    st.backups.restore(rerun.id, to_path=str(out))
    assert same_bytes(out, image)
    # a manifest written just before a kill is picked up by import; every imported backup restores
    for b in st.backups.import_repository():
        assert st.backups.verify(b.id, deep=True).ok
    report = st.backups.gc(grace_seconds=0)
    assert report.chunks_deleted == 0  # every uploaded chunk is referenced by the rerun
    assert 1 <= report.stale_locks_removed <= len(delays)  # the killed processes' lock objects
    lock = st.backups.repository_lock(repo)
    assert lock.list_locks(repo.location.store) == []
