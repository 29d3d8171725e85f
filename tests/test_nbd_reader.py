"""storage.nbd.reader in-process on a real file repository: random reads byte for byte, zero runs
without a fetch, read-ahead in few requests, the cache bound, and corrupt or missing chunks
failing the read (DataCorruption) instead of returning other bytes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import storage
from storage.errors import DataCorruption
from storage.nbd.layout import ReadAhead
from storage.nbd.reader import BackupReader
from tests.backup_helpers import MIB, delete_chunk, flip_byte, make_image

SIZE = 12 * MIB + 4096
DATA = [(0, 3 * MIB), (6 * MIB, 6 * MIB + 4096)]  # 3-6 MiB: a hole and explicit zeros
ZEROS = [(4 * MIB, MIB)]


def backup(st: storage.Storage, tmp_path: Path, key: Path | None = None) -> tuple[bytes, BackupReader]:
    image = make_image(tmp_path / "img", SIZE, seed=7, data_ranges=DATA, zero_ranges=ZEROS)
    url = f"file://{tmp_path}/data/objects/enc" if key else None
    b = st.backups.create(str(image), repository=url, encryption_key_file=str(key) if key else None)
    repo = st.backups.open_repository(b.repository, key_file=str(key) if key else None)
    manifest = repo.read_manifest(repo.location.store, b.id)
    return image.read_bytes(), BackupReader(repo, manifest, cache_bytes=8 * MIB)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_random_reads_match_the_image(st: storage.Storage, tmp_path: Path, encrypted: bool) -> None:
    key = st.backups.create_key(tmp_path / "key") if encrypted else None
    want, reader = backup(st, tmp_path, key)
    try:
        rng = random.Random(3)
        spots = [(0, 4096), (MIB - 100, 200), (SIZE - 4096, 4096), (2 * MIB + 17, 3 * MIB), (0, SIZE)]
        spots += [(off, rng.randrange(1, 256 * 1024)) for off in (rng.randrange(0, SIZE - 300 * 1024) for _ in range(40))]
        for off, n in spots:
            assert reader.read(off, n) == want[off: off + n], (off, n)
    finally:
        reader.close()


def test_zero_runs_are_answered_without_a_fetch(st: storage.Storage, tmp_path: Path) -> None:
    want, reader = backup(st, tmp_path)
    try:
        assert [c is None for c in reader.manifest.chunks[3:6]] == [True, True, True]
        assert reader.read(3 * MIB, 3 * MIB) == bytes(3 * MIB) == want[3 * MIB: 6 * MIB]
        assert reader.stats.chunks_fetched == 0 and reader.stats.requests == 0 and reader.stats.zero_pieces == 3
        assert reader.extents(2 * MIB, 5 * MIB) == [(2 * MIB, MIB, False), (3 * MIB, 3 * MIB, True), (6 * MIB, MIB, False)]
    finally:
        reader.close()


def sequential(reader: BackupReader, window: int) -> bytes:
    ahead = ReadAhead(reader.chunk_size, reader.chunk_count, window=window)
    got = bytearray()
    for off in range(0, SIZE, 256 * 1024):
        n = min(256 * 1024, SIZE - off)
        got += reader.read(off, n)
        reader.prefetch(ahead.after_read(off, n))
    return bytes(got)


def test_sequential_reads_with_readahead_take_fewer_requests_and_the_cache_stays_bounded(st: storage.Storage, tmp_path: Path) -> None:
    want, reader = backup(st, tmp_path)
    plain = BackupReader(reader.repo, reader.manifest, cache_bytes=8 * MIB)
    try:
        assert sequential(reader, 4) == want and sequential(plain, 0) == want
        stored = sum(1 for c in reader.manifest.chunks if c is not None)
        assert plain.stats.requests == plain.stats.chunks_fetched == stored  # one GET per chunk on demand
        assert reader.stats.chunks_fetched == stored and reader.stats.requests <= stored - 3, reader.stats
        assert reader.cache.bytes <= 8 * MIB and plain.cache.bytes <= 8 * MIB
    finally:
        reader.close()
        plain.close()


def test_a_corrupt_chunk_fails_its_reads_and_only_those(st: storage.Storage, tmp_path: Path) -> None:
    want, reader = backup(st, tmp_path)
    bad = reader.manifest.chunks[1]
    assert bad is not None
    flip_byte(reader.repo, bad.id, position=40)
    try:
        for _ in range(2):  # never cached: the second read fails again
            with pytest.raises(DataCorruption, match=f"chunk {bad.id}") as err:
                reader.read(MIB + 10, 100)
            assert err.value.details["chunk"] == bad.id
        with pytest.raises(DataCorruption):
            reader.read(0, 3 * MIB)  # a read spanning it fails whole
        assert reader.read(0, MIB) == want[:MIB] and reader.read(2 * MIB, MIB) == want[2 * MIB: 3 * MIB]
    finally:
        reader.close()


def test_a_missing_chunk_fails_the_read(st: storage.Storage, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", 2 * MIB, seed=9)
    b = st.backups.create(str(image))
    repo = st.backups.open_repository(b.repository)
    manifest = repo.read_manifest(repo.location.store, b.id)
    gone = manifest.chunks[0]
    assert gone is not None
    delete_chunk(repo, gone.id)
    reader = BackupReader(repo, manifest)
    try:
        with pytest.raises(DataCorruption, match=f"chunk {gone.id} is missing"):
            reader.read(0, 4096)
        assert reader.read(MIB, 4096) == image.read_bytes()[MIB: MIB + 4096]
    finally:
        reader.close()
