"""st.volumes / st.snapshots / st.pools against real loop devices (file pool on ext4)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

import storage
from storage.domain import SnapshotStatus, VolumeStatus
from storage.errors import Conflict, InsufficientCapacity, InvalidInput, NotFound
from tests.volume_contract import block_size_of
from tests.volume_helpers import (  # noqa: F401  (fixtures)
    MIB, loop_hygiene, read_at, reflink_dir, reflink_pool, requires_loop, write_at,
)

pytestmark = [pytest.mark.loop, requires_loop, pytest.mark.both_catalogs]


@pytest.fixture
def vst(st: storage.Storage, loop_hygiene: Path) -> storage.Storage:
    return st


def test_data_through_loop_device_snapshot_clone_revert(vst: storage.Storage) -> None:
    vol = vst.volumes.create("db1", "16M", labels={"tier": "gold"})
    assert vol.status is VolumeStatus.AVAILABLE and vol.size_bytes == 16 * MIB
    att = vst.volumes.attach("db1")
    assert att.status is VolumeStatus.IN_USE and att.attached_device and att.attached_device.startswith("/dev/loop")
    dev = att.attached_device
    write_at(dev, MIB, b"old bytes" * 100)
    snap = vst.snapshots.create("db1", "db1-s1")
    assert snap.status is SnapshotStatus.AVAILABLE and snap.volume_name == "db1"
    assert vst.volumes.get("db1").status is VolumeStatus.IN_USE  # snapshotting an attached volume keeps it in-use
    write_at(dev, MIB, b"new bytes" * 100)
    with vst.snapshots.open("db1-s1") as path:
        assert read_at(path, MIB, 900) == b"old bytes" * 100
    clone = vst.volumes.clone("db1", "db1-copy", size="32M")
    assert clone.size_bytes == 32 * MIB and clone.source_volume_id == vol.id
    from_snap = vst.volumes.create("from-snap", None, source_snapshot="db1-s1")
    assert from_snap.size_bytes == 16 * MIB
    with pytest.raises(Conflict, match="in-use"):
        vst.volumes.revert("db1", "db1-s1")  # revert needs a detached volume
    vst.volumes.detach("db1")
    reverted = vst.volumes.revert("db1", "db1-s1")
    assert reverted.status is VolumeStatus.AVAILABLE
    for name, expected in (("db1", b"old bytes"), ("db1-copy", b"new bytes"), ("from-snap", b"old bytes")):
        dev2 = vst.volumes.attach(name).attached_device
        assert dev2 is not None
        try:
            assert read_at(dev2, MIB, 9) == expected, name
        finally:
            vst.volumes.detach(name)
    assert [s.name for s in vst.snapshots.list(volume="db1")] == ["db1-s1"]
    assert [v.name for v in vst.volumes.list(labels={"tier": "gold"})] == ["db1"]


def test_extend_while_attached(vst: storage.Storage) -> None:
    vst.volumes.create("grow", "8M")
    dev = vst.volumes.attach("grow").attached_device
    assert dev is not None
    try:
        vol = vst.volumes.extend("grow", "24M")
        assert vol.size_bytes == 24 * MIB and vol.status is VolumeStatus.IN_USE
        assert block_size_of(dev) == 24 * MIB
        with pytest.raises(InvalidInput, match="shrinking is refused"):
            vst.volumes.extend("grow", "16M")
        with pytest.raises(InvalidInput, match="already"):
            vst.volumes.extend("grow", "24M")
    finally:
        vst.volumes.detach("grow")


def test_delete_with_wipe_and_progress(vst: storage.Storage) -> None:
    vol = vst.volumes.create("wipe-me", "8M")
    dev = vst.volumes.attach("wipe-me").attached_device
    assert dev is not None
    write_at(dev, 3 * MIB, b"secret" * 10000)
    vst.volumes.detach("wipe-me")
    backend = vst.host.volume_backend(vol.pool)
    image = backend.volume_path(vol.id)  # type: ignore[attr-defined]
    seen: list[tuple[int, int]] = []
    # watch the bytes being zeroed: read the image from the progress callback before unlink
    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == total and image.exists():
            assert b"secret" not in image.read_bytes()
    vst.volumes.delete("wipe-me", wipe="zero", progress=progress)
    assert seen[-1] == (8 * MIB, 8 * MIB)
    assert not image.exists()
    with pytest.raises(NotFound):
        vst.volumes.get("wipe-me")


def test_delete_rules(vst: storage.Storage) -> None:
    vst.volumes.create("v", "4M")
    vst.snapshots.create("v", "v-s1")
    vst.snapshots.create("v", "v-s2")
    with pytest.raises(Conflict, match="2 snapshot"):
        vst.volumes.delete("v")
    vst.snapshots.delete("v-s2")
    vst.volumes.attach("v")
    with pytest.raises(Conflict, match="attached"):
        vst.volumes.delete("v", cascade=True)
    vst.volumes.delete("v", cascade=True, force=True)  # detaches, deletes its snapshot, deletes it
    assert vst.volumes.list() == [] and vst.snapshots.list() == []


def test_auto_snapshot_name_and_update(vst: storage.Storage) -> None:
    vst.volumes.create("n" * 128, "1M")
    snap = vst.snapshots.create("n" * 128)
    assert len(snap.name) <= 128 and snap.name.startswith("n")
    vol = vst.volumes.update("n" * 128, name="short", labels={"a": "b"})
    assert vol.name == "short" and vol.labels == {"a": "b"}
    assert vst.snapshots.get(snap.id).volume_name == "short"
    vst.volumes.create("other", "1M")
    with pytest.raises(Conflict, match="exists already"):
        vst.volumes.update("short", name="other")


def test_sizes_round_up_to_one_mib(vst: storage.Storage) -> None:
    assert vst.volumes.create("a", 1).size_bytes == MIB
    assert vst.volumes.create("b", "1.5M").size_bytes == 2 * MIB
    assert vst.volumes.create("c", "1G").size_bytes == 1024 * MIB


@pytest.mark.parametrize("size", [0, -1, "0", "-1", "10X", "", "abc", "1.2.3G", True])
def test_bad_sizes_are_refused(vst: storage.Storage, size: object) -> None:
    with pytest.raises(InvalidInput, match="accepted"):
        vst.volumes.create("v", size)  # type: ignore[arg-type]
    assert vst.volumes.list() == []


@pytest.mark.parametrize(
    "name", ["a/b", "..", "a..b", "../etc", "", "x" * 129, ".hidden", "-dash", "with space", "6f1c2a58-7a53-4f5e-9d1c-0c5f6e1d2b3a"]
)
def test_bad_names_are_refused(vst: storage.Storage, name: str) -> None:
    with pytest.raises(InvalidInput, match="name"):
        vst.volumes.create(name, "1M")
    vst.volumes.create("ok", "1M")
    with pytest.raises(InvalidInput, match="name"):
        vst.snapshots.create("ok", name or "/")


def test_other_bad_input(vst: storage.Storage) -> None:
    vst.volumes.create("v", "4M")
    with pytest.raises(Conflict, match="exists already"):
        vst.volumes.create("v", "4M")
    with pytest.raises(NotFound, match="pool 'nope'"):
        vst.volumes.create("w", "4M", pool="nope")
    with pytest.raises(InvalidInput, match="smaller than the source"):
        vst.volumes.clone("v", "w", size="1M")
    with pytest.raises(InvalidInput, match="wipe mode"):
        vst.volumes.delete("v", wipe="shred")
    with pytest.raises(InvalidInput, match="status"):
        vst.volumes.list(status="bogus")
    with pytest.raises(InvalidInput, match="label"):
        vst.volumes.create("w", "1M", labels={"bad key": "x"})
    with pytest.raises(InvalidInput, match="size is required"):
        vst.volumes.create("w")
    with pytest.raises(NotFound, match="volume 'ghost'"):
        vst.volumes.get("ghost")
    with pytest.raises(NotFound, match="snapshot"):
        vst.snapshots.get("ghost")
    vst.volumes.create("w", "4M")
    s = vst.snapshots.create("w", "w-s")
    with pytest.raises(InvalidInput, match="belongs to volume 'w'"):
        vst.volumes.revert("v", s.name)
    with pytest.raises(InsufficientCapacity):
        vst.volumes.create("huge", "1P")
    assert {v.name for v in vst.volumes.list()} == {"v", "w"}


def test_pools_report_capacity_and_copy_method(vst: storage.Storage) -> None:
    vst.volumes.create("v", "10M")
    (pool,) = vst.pools.list()
    assert pool.name == "default" and pool.default and pool.driver == "file"
    assert pool.provisioned_bytes == 10 * MIB and pool.total_bytes > pool.free_bytes > 0
    assert pool.capabilities["copy_method"] in ("copy", "reflink")
    with pytest.raises(NotFound, match="configured pools: default"):
        vst.pools.get("nope")


def test_two_threads_one_volume_exactly_one_wins(config_file: Path, loop_hygiene: Path) -> None:
    """Each thread has its own Storage (own connections), like two processes."""
    ops = [
        ("attach", "attach"),
        ("attach", "delete"),
        ("delete", "delete"),
        ("extend", "revert"),
    ]
    with storage.open(config_file) as setup:
        for i in range(len(ops)):
            setup.volumes.create(f"race{i}", "4M")
            setup.snapshots.create(f"race{i}", f"race{i}-s")
    for i, pair in enumerate(ops):
        results: list[object] = [None, None]
        barrier = threading.Barrier(2)

        def run(slot: int, op: str) -> None:
            with storage.open(config_file) as s:
                try:
                    barrier.wait(30)
                    if op == "attach":
                        s.volumes.attach(f"race{i}")
                    elif op == "delete":
                        s.volumes.delete(f"race{i}", cascade=True)
                    elif op == "extend":
                        s.volumes.extend(f"race{i}", "8M")
                    elif op == "revert":
                        s.volumes.revert(f"race{i}", f"race{i}-s")
                    results[slot] = "ok"
                except BaseException as exc:  # recorded and checked below
                    results[slot] = exc

        threads = [threading.Thread(target=run, args=(n, op)) for n, op in enumerate(pair)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        wins = [r for r in results if r == "ok"]
        if pair == ("extend", "revert"):
            # both may succeed one after the other; they must never overlap
            assert len(wins) >= 1, results
        else:
            assert len(wins) == 1, (pair, results)
            loser = next(r for r in results if r != "ok")
            assert isinstance(loser, (Conflict, NotFound)), loser
            if isinstance(loser, Conflict):
                assert any(st_ in loser.message for st_ in ("attaching", "in-use", "deleting", "attached")), loser.message
    with storage.open(config_file) as s:
        for v in s.volumes.list():
            if v.attached_device:
                s.volumes.detach(v.id)
        assert all(v.status in (VolumeStatus.AVAILABLE,) for v in s.volumes.list())


def test_compare_and_set_in_the_database(config_file: Path) -> None:
    """Many writers race one compare-and-set: exactly one moves the volume."""
    from storage.catalog.volumes import cas_volume_status

    with storage.open(config_file) as s:
        vid = s.volumes.create("cas", "1M").id
    stores = [storage.open(config_file) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def go(s: storage.Storage) -> None:
        try:
            barrier.wait(30)
            with s.catalog.session() as sess:
                cas_volume_status(sess, vid, VolumeStatus.ATTACHING)
            outcomes.append("won")
        except Conflict as exc:
            outcomes.append("lost" if "attaching" in exc.message else repr(exc))
        except BaseException as exc:  # recorded and checked below
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=go, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]


def test_volume_found_after_restart(config_file: Path, loop_hygiene: Path) -> None:
    with storage.open(config_file) as s:
        dev = s.volumes.attach(s.volumes.create("keep", "4M").name).attached_device
    with storage.open(config_file) as s:
        assert s.volumes.get("keep").attached_device == dev
        backend = s.host.volume_backend("default")
        assert backend.attached_device(s.volumes.get("keep").id) == dev
        out = subprocess.run(["losetup", "-j", str(backend.volume_path(s.volumes.get("keep").id))],  # type: ignore[attr-defined]
                             capture_output=True, text=True, check=True).stdout
        assert dev in out
        s.volumes.detach("keep")


def test_hold_for_other_services(vst: storage.Storage) -> None:
    vst.volumes.create("held", "1M")
    with vst.volumes.hold("held", VolumeStatus.BACKING_UP) as prior:
        assert prior is VolumeStatus.AVAILABLE
        with pytest.raises(Conflict, match="backing-up"):
            vst.volumes.attach("held")
        with pytest.raises(Conflict, match="backing-up"):
            vst.volumes.delete("held")
    assert vst.volumes.get("held").status is VolumeStatus.AVAILABLE
    with pytest.raises(RuntimeError):
        with vst.volumes.hold("held", VolumeStatus.RESTORING_BACKUP):
            raise RuntimeError("restore failed")
    assert vst.volumes.get("held").status is VolumeStatus.AVAILABLE  # put back on error too
    with pytest.raises(Conflict, match="cannot move to in-use"):
        with vst.volumes.hold("held", VolumeStatus.IN_USE):
            pass


def test_reflink_pool_changed_ranges_through_the_service(data_dir: Path, reflink_pool: Path, loop_hygiene: Path) -> None:
    import os

    cfg = data_dir / "reflink.toml"
    cfg.write_text(
        f'data_dir = "{data_dir}"\ndefault_pool = "fast"\n[pools.fast]\ndriver = "file"\npath = "{reflink_pool}"\n'
    )
    with storage.open(cfg) as s:
        assert s.pools.get("fast").capabilities["copy_method"] == "reflink"
        s.volumes.create("r", "32M")
        dev = s.volumes.attach("r").attached_device
        assert dev is not None
        try:
            write_at(dev, 0, os.urandom(8 * MIB))
            s.snapshots.create("r", "r1")
            write_at(dev, 6 * MIB, os.urandom(4096))
            write_at(dev, 20 * MIB, os.urandom(4096))
            s.snapshots.create("r", "r2")
        finally:
            s.volumes.detach("r")
        changed = s.snapshots.changed_ranges("r1", "r2")
        assert changed is not None and changed.ranges == [(6 * MIB, 4096), (20 * MIB, 4096)]
        s.volumes.create("other", "1M")
        s.snapshots.create("other", "o1")
        with pytest.raises(InvalidInput, match="different volumes"):
            s.snapshots.changed_ranges("r1", "o1")


def test_cascade_delete_refused_while_a_snapshot_is_in_use(vst: storage.Storage) -> None:
    from storage.catalog.volumes import cas_snapshot_status

    vst.volumes.create("v", "2M")
    snap = vst.snapshots.create("v", "v-s")
    with vst.catalog.session() as s:
        cas_snapshot_status(s, snap.id, SnapshotStatus.BACKING_UP)  # e.g. a backup reads it
    with pytest.raises(Conflict, match="in use: v-s"):
        vst.volumes.delete("v", cascade=True)
    assert vst.volumes.get("v").status is VolumeStatus.AVAILABLE  # untouched
    with pytest.raises(Conflict, match="backing-up"):
        vst.snapshots.delete("v-s")
