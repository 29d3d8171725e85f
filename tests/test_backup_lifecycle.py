"""Incremental backups, verify, corruption, delete, gc (also racing a backup) and catalog rebuild."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import storage
from storage.backup.locks import EXCLUSIVE
from storage.backup.models import Progress
from storage.backup.sources import BASE_LABEL
from storage.errors import Busy, Cancelled, DataCorruption
from tests.backup_helpers import MIB, chunk_ids, delete_chunk, flip_byte, make_image, open_repo, same_bytes
from tests.volume_helpers import loop_hygiene, reflink_dir, reflink_pool, requires_loop, write_at  # noqa: F401

pytestmark = pytest.mark.both_catalogs


@contextmanager
def paused_midway(work: Callable[[Callable[[Progress], None]], object]) -> Iterator[dict[str, object]]:
    """Run work(progress) in a thread and yield once it reports progress: it waits there (holding
    whatever it holds) until the block ends. The result dict gets "value" or "error"."""
    started, release = threading.Event(), threading.Event()
    result: dict[str, object] = {}

    def progress(_p: Progress) -> None:
        started.set()
        release.wait(30)

    def run() -> None:
        try:
            result["value"] = work(progress)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    try:
        assert started.wait(30), result.get("error")
        yield result
    finally:
        release.set()
        t.join(60)


def _volume_bytes(st: storage.Storage, name: str, out: Path) -> Path:
    vol = st.volumes.get(name)
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        out.write_bytes(Path(path).read_bytes())
    return out


def _incremental(st: storage.Storage, tmp_path: Path) -> tuple[storage.backup.models.Backup, storage.backup.models.Backup]:
    st.volumes.create("inc", "16M")
    vol = st.volumes.get("inc")
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        write_at(path, 0, make_image(tmp_path / "seed", 12 * MIB, seed=3).read_bytes())
    first = st.backups.create("inc")
    old = _volume_bytes(st, "inc", tmp_path / "old")
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        write_at(path, 3 * MIB + 100, b"\x01" * 1000)
        write_at(path, 14 * MIB, b"\x02" * 5000)  # was a hole
    second = st.backups.create("inc")
    new = _volume_bytes(st, "inc", tmp_path / "new")
    for backup, expected in ((first, old), (second, new)):
        out = tmp_path / f"restore-{backup.id}"
        st.backups.restore(backup.id, to_path=str(out))
        assert same_bytes(out, expected)
    bases = st.snapshots.list(volume="inc", labels={BASE_LABEL: second.repository_id or ""})
    if st.host.volume_backend(vol.pool).capabilities().changed_ranges:
        assert second.snapshot_id and [s.id for s in bases] == [second.snapshot_id]  # the older base was retired
    else:
        assert second.snapshot_id is None and bases == []  # a full copy is no use as a base: deleted
    return first, second


@pytest.mark.loop
@requires_loop
def test_incremental_on_reflink_pool_reads_only_changes(tmp_path: Path, reflink_pool: Path, data_dir: Path) -> None:
    cfg = data_dir / "reflink.toml"
    cfg.write_text(f'data_dir = "{data_dir}"\n[pools.default]\ndriver = "file"\npath = "{reflink_pool}"\n')
    with storage.open(cfg) as st:
        assert st.host.volume_backend("default").capabilities().changed_ranges
        first, second = _incremental(st, tmp_path)
        assert first.read_bytes == 12 * MIB
        assert second.read_bytes <= 3 * MIB  # FIEMAP: only the changed extents' chunks
        assert second.reused_chunk_count >= 10
        assert second.new_chunk_count == 2


@pytest.mark.loop
@requires_loop
def test_incremental_without_reflinks_reads_all_uploads_changes(st: storage.Storage, tmp_path: Path) -> None:
    first, second = _incremental(st, tmp_path)
    assert second.reused_chunk_count == 0 and second.read_bytes >= 12 * MIB
    assert second.new_chunk_count == 2 and second.stored_bytes <= 2 * MIB + 4096


def test_verify_and_restore_catch_missing_and_flipped_chunks(st: storage.Storage, tmp_path: Path) -> None:
    image = make_image(tmp_path / "a", 6 * MIB, seed=11)
    a = st.backups.create(str(image))
    b = st.backups.create(str(make_image(tmp_path / "b", 6 * MIB, seed=11, data_ranges=[(0, 3 * MIB)])))
    c = st.backups.create(str(make_image(tmp_path / "c", 2 * MIB, seed=99)))
    repo = open_repo(st)
    manifest = repo.read_manifest(repo.location.store, a.id)
    shared, only_a = manifest.chunks[0], manifest.chunks[4]
    assert shared and only_a
    assert st.backups.verify(repo.url, deep=True).ok

    delete_chunk(repo, shared.id)
    report = st.backups.verify(repo.url)
    assert not report.ok and report.missing_chunks == [shared.id]
    assert report.damaged_backups == sorted([a.id, b.id])
    assert st.backups.get(a.id).status == "damaged" and st.backups.get(c.id).status == "available"
    with pytest.raises(DataCorruption, match=f"backup {b.id} is damaged: chunk .* is missing"):
        st.backups.restore(b.id, to_path=str(tmp_path / "rb"))

    flip_byte(repo, only_a.id)
    assert only_a.id not in st.backups.verify(a.id).corrupt_chunks  # same size: quick cannot see it
    deep = st.backups.verify(a.id, deep=True)
    assert deep.corrupt_chunks == [only_a.id] and deep.damaged_backups == sorted([a.id, b.id])
    c_chunk = repo.read_manifest(repo.location.store, c.id).chunks[1]
    assert c_chunk is not None
    flip_byte(repo, c_chunk.id, position=len(b"x") + 100)
    with pytest.raises(DataCorruption, match="content address"):
        st.backups.restore(c.id, to_path=str(tmp_path / "rc"))

    # a new backup of the same data repairs the missing chunk (the cache was invalidated)
    st.backups.create(str(image))
    assert st.backups.verify(b.id, deep=True).ok and st.backups.get(b.id).status == "available"


def test_cancelled_deep_verify_stops_and_marks_nothing(st: storage.Storage, tmp_path: Path) -> None:
    b = st.backups.create(str(make_image(tmp_path / "a", 6 * MIB, seed=12)))
    repo = open_repo(st)
    chunk = repo.read_manifest(repo.location.store, b.id).chunks[2]
    assert chunk is not None
    flip_byte(repo, chunk.id)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled, match="cancelled after 0 of"):  # set before it started: nothing read
        st.backups.verify(b.id, deep=True, cancel=cancel)
    cancel.clear()
    with pytest.raises(Cancelled, match="nothing was marked"):  # set while it reads
        st.backups.verify(b.id, deep=True, cancel=cancel, progress=lambda p: cancel.set())
    assert st.backups.get(b.id).status == "available"
    assert not st.backups.verify(b.id, deep=True).ok
    assert st.backups.get(b.id).status == "damaged"


def test_verify_sample(st: storage.Storage, tmp_path: Path) -> None:
    b = st.backups.create(str(make_image(tmp_path / "a", 20 * MIB, seed=5)))
    report = st.backups.verify(b.id, deep=True, sample_percent=25)
    assert report.ok and report.chunks_checked == 5 and report.bytes_checked >= 5 * MIB


def test_delete_and_gc_with_grace(st: storage.Storage, tmp_path: Path) -> None:
    keep = st.backups.create(str(make_image(tmp_path / "a", 4 * MIB, seed=1)))
    drop = st.backups.create(str(make_image(tmp_path / "b", 4 * MIB, seed=1, data_ranges=[(0, 2 * MIB)])))
    extra = st.backups.create(str(make_image(tmp_path / "c", 2 * MIB, seed=2)))
    repo = open_repo(st)
    assert len(chunk_ids(repo)) == 6  # a: 4, b: 2 shared with a (+ zero chunks), c: 2
    st.backups.delete(drop.id)
    st.backups.delete(extra.id)
    assert [b.id for b in st.backups.list()] == [keep.id]
    in_grace = st.backups.gc()
    assert in_grace.chunks_deleted == 0 and in_grace.chunks_kept_in_grace == 2
    dry = st.backups.gc(grace_seconds=0, dry_run=True)
    assert dry.chunks_unreferenced == 2 and dry.chunks_deleted == 0 and len(chunk_ids(repo)) == 6
    done = st.backups.gc(grace_seconds=0)
    assert done.chunks_deleted == 2 and done.chunks_referenced == 4 and done.bytes_freed >= 2 * MIB
    assert len(chunk_ids(repo)) == 4
    assert st.backups.verify(keep.id, deep=True).ok
    # after GC the chunk cache is stale: the next backup of c must upload its chunks again
    again = st.backups.create(str(tmp_path / "c"))
    assert again.new_chunk_count == 2
    out = tmp_path / "out"
    st.backups.restore(again.id, to_path=str(out))
    assert same_bytes(out, tmp_path / "c")


def test_gc_racing_a_backup_is_refused_and_never_loses_chunks(st: storage.Storage, tmp_path: Path) -> None:
    old = st.backups.create(str(make_image(tmp_path / "old", 2 * MIB, seed=8)))
    st.backups.delete(old.id)  # its chunks are garbage now, but the next backup will reference them
    image = make_image(tmp_path / "img", 8 * MIB, seed=8)  # first 2 MiB equal to old
    with paused_midway(lambda progress: st.backups.create(str(image), progress=progress)) as result:
        with pytest.raises(Busy, match="locked"):
            st.backups.gc(grace_seconds=0)
    backup = result.get("value")
    assert backup is not None, result.get("error")
    assert backup.dedup_chunk_count == 2  # it referenced the old chunks GC wanted
    report = st.backups.gc(grace_seconds=0)
    assert report.chunks_deleted == 0
    assert st.backups.verify(backup.id, deep=True).ok

    # the other way round: a GC holding the lock (another host's lock object) makes a backup wait its turn
    repo = open_repo(st)
    lock = st.backups.repository_lock(repo, EXCLUSIVE, "gc on another host")
    lock.lock_dir = tmp_path / "other-host-locks"  # a different flock file: only the lock object conflicts
    with lock:
        with pytest.raises(Busy, match="exclusive lock of gc on another host"):
            st.backups.create(str(image))
    assert st.backups.list(status="error")


def test_restore_and_verify_hold_the_shared_lock_so_gc_cannot_pull_packs_from_under_them(st: storage.Storage, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", 6 * MIB, seed=21)
    old = st.backups.create(str(make_image(tmp_path / "old", 4 * MIB, seed=22)))
    keep = st.backups.create(str(image))
    st.backups.delete(old.id)  # its chunks are garbage GC would delete at once (grace 0)
    with paused_midway(lambda progress: st.backups.restore(keep.id, to_path=str(tmp_path / "out"), progress=progress)) as result:
        with pytest.raises(Busy, match="locked"):
            st.backups.gc(grace_seconds=0)
    assert "value" in result, result.get("error")
    assert same_bytes(tmp_path / "out", image)

    # a GC holding the lock (another host's lock object): restore and verify wait their turn ...
    repo = open_repo(st)
    lock = st.backups.repository_lock(repo, EXCLUSIVE, "gc on another host")
    lock.lock_dir = tmp_path / "other-host-locks"
    with lock:
        with pytest.raises(Busy, match="exclusive lock of gc on another host"):
            st.backups.restore(keep.id, to_path=str(tmp_path / "again"))
        with pytest.raises(Busy, match="exclusive lock of gc on another host"):
            st.backups.verify(keep.id)
        # ... unless told not to lock (a repository this host cannot write)
        st.backups.restore(keep.id, to_path=str(tmp_path / "unlocked"), lock=False)
        assert st.backups.verify(keep.id, lock=False).ok
    assert same_bytes(tmp_path / "unlocked", image)
    assert st.backups.get(keep.id).status == "available"
    assert st.backups.gc(grace_seconds=0).chunks_deleted > 0  # the lock is gone again


def test_catalog_rebuilt_from_repository_and_restore_without_catalog(st: storage.Storage, tmp_path: Path) -> None:
    key = st.backups.create_key(tmp_path / "k")
    url = f"file://{st.settings.data_dir}/objects/shared-repo"
    image = make_image(tmp_path / "img", 5 * MIB + 7, seed=4, data_ranges=[(0, MIB), (3 * MIB, 2 * MIB + 7)])
    b = st.backups.create(str(image), repository=url, encryption_key_file=str(key), name="nightly", labels={"x": "y"})
    # a second host (empty catalog) knows nothing but the repository and the key
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    cfg = other_dir / "storage.toml"
    cfg.write_text(f'data_dir = "{other_dir}"\n[object_stores.shared]\ntype = "file"\nroot = "{st.settings.data_dir}/objects"\n')
    with storage.open(cfg) as st2:
        assert st2.backups.list() == []
        out = tmp_path / "direct"
        st2.backups.restore(b.id, repository=url, key_file=str(key), to_path=str(out))
        assert same_bytes(out, image)
        imported = st2.backups.import_repository(url, key_file=str(key))
        assert [(x.id, x.name, x.labels, x.status, x.size_bytes) for x in imported] == [
            (b.id, "nightly", {"x": "y"}, "available", b.size_bytes)
        ]
        out2 = tmp_path / "via-catalog"
        st2.backups.restore(b.id, to_path=str(out2))
        assert same_bytes(out2, image)
        assert st2.backups.import_repository(url, key_file=str(key))[0].id == b.id  # idempotent


@pytest.mark.loop
@requires_loop
def test_existing_snapshot_as_source(st: storage.Storage, tmp_path: Path, loop_hygiene: Path) -> None:
    vol = st.volumes.create("snapsrc", "4M")
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        write_at(path, MIB, b"before" * 1000)
    snap = st.snapshots.create("snapsrc", "snapsrc-s1")
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        write_at(path, MIB, b"after!" * 1000)
    b = st.backups.create("snapsrc-s1")
    assert b.volume_id == vol.id and b.source == "snapshot snapsrc-s1" and b.snapshot_id is None
    out = tmp_path / "out"
    st.backups.restore(b.id, to_path=str(out))
    with st.snapshots.open(snap.id) as path:
        assert same_bytes(out, path)
    assert out.read_bytes()[MIB:MIB + 6] == b"before"
    assert [s.name for s in st.snapshots.list(volume="snapsrc")] == ["snapsrc-s1"]  # the user's snapshot stays
