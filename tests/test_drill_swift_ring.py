"""Drill 3 (issue 13): a Swift node dies in the middle of a backup.

A 512 MiB volume of random data in a file pool is backed up into the three-node Swift ring
(scripts/swift-ring.sh, replicas = 3) with the store's default retries and timeouts. A background
thread watches the job's progress and kill -9s node 2's servers once a third of the volume is
read. Must hold: the backup completes (the proxy writes each object to the two live nodes, a
quorum of 2 of 3; with one device per node there is no hand-off device); it restores
byte-identical with node 2 still down; node 2 holds fewer objects than the others; once it is
started again and the replicators ran once, every node holds every object and a deep verify
passes. Prints its figures.

Takes 1-3 minutes (512 MiB through zstd, SHA-256 and three object servers on 2 cores).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import storage
from storage.backup.models import Progress
from tests.backup_helpers import MIB, swift_backup_config
from tests.fixtures_swift_ring import SwiftRing

pytestmark = pytest.mark.swift

VOLUME = 512 * MIB
KILLED = 2
KILL_AT = 1 / 3  # of the volume read


def _fill_random(path: str, size: int) -> None:
    with open("/dev/urandom", "rb") as src, open(path, "r+b") as dst:
        for _ in range(size // (4 * MIB)):
            dst.write(src.read(4 * MIB))


def _compare(a: Path | str, b: Path | str) -> int:
    """Bytes compared; AssertionError at the first differing MiB."""
    compared = 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MIB), fb.read(MIB)
            assert x == y, f"restore differs from the volume in the MiB at offset {compared}"
            if not x:
                return compared
            compared += len(x)


class NodeKiller(threading.Thread):
    """Kills a node once the backup's progress passes a fraction; records what it saw then."""

    def __init__(self, ring: SwiftRing, node: int, fraction: float) -> None:
        super().__init__(daemon=True)
        self.ring, self.node, self.fraction = ring, node, fraction
        self.reached = threading.Event()
        self.killed = threading.Event()
        self.seen: Progress | None = None
        self.latest: Progress | None = None
        self.error: BaseException | None = None
        self.killed_at = 0.0  # time.monotonic() once the node's servers are dead

    def progress(self, p: Progress) -> None:
        self.latest = p
        if p.phase != "done" and p.total and p.done >= self.fraction * p.total and not self.reached.is_set():
            self.seen = p
            self.reached.set()

    def run(self) -> None:
        try:
            if self.reached.wait(timeout=600):
                self.ring.kill_node(self.node)
                self.killed_at = time.monotonic()
                self.killed.set()
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_drill3_node_killed_during_backup(swift_ring: SwiftRing, data_dir: Path, tmp_path: Path) -> None:
    url = "swift://swift@drill3/vols"
    cfg = swift_backup_config(
        data_dir, swift_ring.options(), url, pack_size="32M", chunk_size="1M",
    )
    # the store's own defaults for retries and timeouts, not the test suite's short ones
    cfg.write_text(cfg.read_text().replace('retries = 6\nstarting_backoff = 0.2\nmax_backoff = 2\ntimeout = 20\n', ""))
    assert "retries" not in cfg.read_text()
    figures: dict[str, object] = {}
    with storage.open(cfg) as st:
        vol = st.volumes.create("drill3", "512M")
        with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
            _fill_random(path, VOLUME)
        killer = NodeKiller(swift_ring, KILLED, KILL_AT)
        killer.start()
        started = time.monotonic()
        backup = st.backups.create("drill3", repository=url, progress=killer.progress)
        ended = time.monotonic()
        figures["backup_seconds"] = round(ended - started, 1)
        killer.join(timeout=60)
        assert killer.error is None, killer.error
        assert killer.killed.is_set() and killer.seen is not None, "the node was not killed during the backup"
        assert killer.seen.done < killer.seen.total and killer.killed_at < ended, "killed after the backup ended"
        figures["killed_after_seconds"] = round(killer.killed_at - started, 1)
        figures["killed_at_read_bytes"] = killer.seen.done
        figures["killed_at_uploaded_bytes"] = killer.seen.uploaded
        assert backup.status == "available", backup
        assert not any(swift_ring.listening(KILLED).values()), "node 2 came back by itself"

        started = time.monotonic()
        out = tmp_path / "restored"
        st.backups.restore(backup.id, to_path=str(out))
        figures["restore_seconds_node_down"] = round(time.monotonic() - started, 1)
        with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
            figures["bytes_compared_node_down"] = _compare(out, path)
        assert figures["bytes_compared_node_down"] == VOLUME
        out.unlink()

        before = swift_ring.objects_per_node()
        figures["objects_before_replication"] = before
        assert before[KILLED] < min(n for i, n in before.items() if i != KILLED), before
        figures["node_start_seconds"] = swift_ring.start_node(KILLED)
        started = time.monotonic()
        swift_ring.replicate()
        figures["replication_seconds"] = round(time.monotonic() - started, 1)
        after = swift_ring.objects_per_node()
        figures["objects_after_replication"] = after
        # every node holds every object; the restarted node may still hold one more .data for a while:
        # an object deleted while it was down, whose tombstone one replication pass has not brought yet
        assert min(after.values()) >= max(before.values()), (before, after)

        started = time.monotonic()
        report = st.backups.verify(url, deep=True)
        figures["deep_verify_seconds"] = round(time.monotonic() - started, 1)
        figures["deep_verify_bytes"] = report.bytes_checked
        assert report.ok, report
    # what our client saw: 5xx answers would be retried requests (none expected: the proxy
    # hides a node that dies from its clients); 404s are the repository probes of a first backup
    figures["proxy_answers_to_client"] = swift_ring.client_statuses()
    print("\ndrill 3 figures:", figures)
