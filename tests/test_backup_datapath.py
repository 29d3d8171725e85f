"""Data-path decisions of the backup engine: uploaders per memory budget, large restore writes, hash order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import storage
from storage.backup import compression
from storage.backup.pipeline import PACK_MEMORY, upload_threads_for
from storage.backup.restore import WriteRun
from tests.backup_helpers import make_image

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("uploaders", "pack", "expected"),
    [
        (4, 16 * MIB, 4),  # (4 + 2) x 16 MiB = 96 MiB fits 128 MiB
        (4, 32 * MIB, 2),  # the default: (2 + 2) x 32 MiB = 128 MiB
        (4, 64 * MIB, 1),  # never fewer than one
        (1, 1 * MIB, 1),  # never more than asked
        (8, 4 * MIB, 8),
    ],
)
def test_uploaders_fit_the_pack_memory_budget(uploaders: int, pack: int, expected: int) -> None:
    assert PACK_MEMORY == 128 * MIB
    assert upload_threads_for(uploaders, pack) == expected


def test_write_run_joins_consecutive_chunks_into_large_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = 4096
    calls: list[tuple[int, int]] = []
    real = os.pwritev

    def spy(fd: int, buffers: list[bytes], offset: int) -> int:
        calls.append((offset // chunk, len(buffers)))
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", spy)
    path = tmp_path / "target"
    path.write_bytes(b"")
    fd = os.open(path, os.O_WRONLY)
    try:
        run = WriteRun(fd, chunk, max_bytes=3 * chunk)
        for index in (0, 1, 2, 3, 5, 6, 9):
            run.add(index, bytes([index + 1]) * (chunk if index != 9 else 100))  # the image's last chunk is short
        run.flush()
    finally:
        os.close(fd)
    # 0-2 (size cap), 3 alone (5 is not next), 5-6, 9
    assert calls == [(0, 3), (3, 1), (5, 2), (9, 1)]
    data = path.read_bytes()
    assert len(data) == 9 * chunk + 100
    for index in (0, 1, 2, 3, 5, 6, 9):
        assert data[index * chunk] == index + 1
    assert data[4 * chunk: 5 * chunk] == bytes(chunk)


def test_unchanged_chunks_cost_no_compression(st: storage.Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker hashes first; a chunk the repository holds is never compressed (or encrypted) again."""
    image = make_image(tmp_path / "img", 4 * MIB, data_ranges=[(0, 4 * MIB)])
    calls: list[int] = []
    real = compression.compress
    monkeypatch.setattr(compression, "compress", lambda data, *a: calls.append(len(data)) or real(data, *a))
    first = st.backups.create(str(image))
    assert first.new_chunk_count == 4 and calls.count(MIB) == 4  # new chunks: sealed once each
    calls.clear()
    again = st.backups.create(str(image))
    assert again.new_chunk_count == 0 and again.dedup_chunk_count == 4
    assert calls.count(MIB) == 0 and calls  # only the (small) index/manifest objects are compressed


def test_detached_volume_on_a_copying_pool_is_read_in_place(st: storage.Storage, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """ext4 file pool (no reflink): a snapshot would be a full copy; a detached volume is read in place, held backing-up."""
    vol = st.volumes.create("cold", "6M")
    assert not st.host.pool_capabilities(vol.pool)["changed_ranges"]
    payload = os.urandom(3 * MIB)
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, payload, MIB)
        os.close(fd)

    def no_snapshot(*_a: object, **_k: object) -> None:
        raise AssertionError("a detached volume on a copying pool must not be snapshotted")

    monkeypatch.setattr(st.backups.snapshots, "create", no_snapshot)
    seen: list[str] = []
    b = st.backups.create("cold", progress=lambda _p: seen.append(st.volumes.get("cold").status.value))
    assert seen and set(seen) == {"backing-up"}
    assert st.volumes.get("cold").status.value == "available" and b.snapshot_id is None
    out = tmp_path / "out"
    st.backups.restore(b.id, to_path=str(out))
    data = out.read_bytes()
    assert data[MIB: 4 * MIB] == payload and data[:MIB] == bytes(MIB) and len(data) == 6 * MIB


def test_cached_index_is_read_not_rewritten(st: storage.Storage, tmp_path: Path) -> None:
    """A verify reads every index from the local cache; a cached copy is not written again (it was a
    mkdir + write + rename per index per command: linear work that bought nothing)."""
    image = make_image(tmp_path / "img", 4 * MIB, data_ranges=[(0, 4 * MIB)])
    backup = st.backups.create(str(image))
    cached = [p for p in Path(st.backups.cache_root).rglob("index/*") if p.is_file()]
    assert cached, "the backup caches its index objects"
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cached}
    report = st.backups.verify(backup.repository)
    assert report.ok and report.backups_checked == [backup.id]
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cached} == before
    for p in cached:  # a missing copy is fetched and cached again
        p.unlink()
    st.backups.verify(backup.repository)
    assert all(p.exists() for p in cached)
