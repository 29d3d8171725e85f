"""storage/backup/manifests.py: every manifest of a repository read over several stores, in listing order.

Real backups in the default local repository (10 of a 2 MiB image, one chunk changed between
them); one manifest is overwritten with junk to stand for a corrupt or half-written object.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import storage
from storage.backup import format as fmt
from storage.backup.manifests import PARALLEL_FROM, each_manifest, load_manifests
from storage.errors import DataCorruption
from tests.backup_helpers import MIB, make_image, overwrite

COUNT = 10


@pytest.fixture
def made(st: storage.Storage, tmp_path: Path) -> tuple[storage.Storage, list[str]]:
    assert COUNT >= PARALLEL_FROM  # the threaded path
    src = make_image(tmp_path / "img", 2 * MIB, seed=3)
    ids = []
    for i in range(COUNT):
        overwrite(src, (i % 2) * MIB, bytes([i + 1]) * 4096)
        ids.append(st.backups.create(str(src)).id)
    return st, ids


def corrupt_manifest(st: storage.Storage, backup_id: str) -> None:
    repo = st.backups.open_repository(st.backups.get(backup_id).repository)
    repo.location.store.put_object(repo.container, repo.object_name(fmt.manifest_object_name(backup_id)), b"junk", length=4)


def test_parallel_read_matches_one_by_one_and_names_the_unreadable(made: tuple[storage.Storage, list[str]]) -> None:
    st, ids = made
    corrupt_manifest(st, ids[4])
    repo = st.backups.open_repository(st.backups.get(ids[0]).repository)
    threads: set[str] = set()
    read = repo.read_manifest

    def recording(store, backup_id):  # type: ignore[no-untyped-def]
        threads.add(threading.current_thread().name)
        return read(store, backup_id)

    repo.read_manifest = recording  # type: ignore[method-assign]
    store = repo.clone_store()
    try:
        parallel = [(mid, m) for mid, m in each_manifest(repo, store, threads=4)]
        one_by_one = [(mid, m) for mid, m in each_manifest(repo, store, threads=1)]
    finally:
        store.close()
    assert parallel == one_by_one
    assert [mid for mid, _ in parallel] == repo.list_manifest_ids(repo.location.store)  # listing order
    assert sorted(mid for mid, _ in parallel) == sorted(ids)
    assert [mid for mid, m in parallel if m is None] == [ids[4]]
    assert all(m.backup_id == mid for mid, m in parallel if m is not None)
    assert any(name.startswith("manifest") for name in threads) and "MainThread" in threads

    manifests, unreadable = load_manifests(repo, repo.location.store, threads=4)
    assert unreadable == [ids[4]] and sorted(manifests) == sorted(set(ids) - {ids[4]})


def test_gc_and_verify_over_many_manifests(made: tuple[storage.Storage, list[str]]) -> None:
    st, ids = made
    url = st.backups.get(ids[0]).repository
    report = st.backups.verify(url)
    assert report.ok and sorted(report.backups_checked) == sorted(ids)
    collected = st.backups.gc(url, grace_seconds=0)
    assert collected.manifests == COUNT and collected.chunks_deleted == 0 and collected.chunks_referenced == collected.chunks_total
    corrupt_manifest(st, ids[7])
    with pytest.raises(DataCorruption, match=f"manifests {ids[7]} cannot be read"):
        st.backups.gc(url, grace_seconds=0)
    damaged = st.backups.verify(url)
    assert not damaged.ok and damaged.damaged_backups == [ids[7]]
    assert st.backups.get(ids[7]).status == "damaged" and st.backups.get(ids[6]).status == "available"
