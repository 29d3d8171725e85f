"""Backup engine end to end through the file object store: round trips, dedup, encryption, restore targets."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import storage
from storage.backup import format as fmt
from storage.backup.models import Progress
from storage.backup.sources import BASE_LABEL
from storage.errors import AuthenticationFailed, Cancelled, InsufficientCapacity, InvalidInput
from tests.backup_helpers import MIB, chunk_ids, make_image, open_repo, overwrite, same_bytes, stored_chunk_body
from tests.volume_helpers import loop_hygiene, read_at, requires_loop, write_at  # noqa: F401


def sample_image(tmp_path: Path, name: str = "img.raw", seed: int = 1) -> Path:
    # 9 MiB + 123 bytes: random data, a hole, an explicit all-zero MiB, compressible text, a short tail
    path = make_image(
        tmp_path / name, 9 * MIB + 123, seed=seed,
        data_ranges=[(0, 2 * MIB + 17), (4 * MIB, MIB), (8 * MIB, MIB + 123)],
        zero_ranges=[(6 * MIB, MIB)],
    )
    overwrite(path, 5 * MIB, b"compressible text " * 50_000)
    return path


def test_image_round_trip_is_byte_exact_and_sparse(st: storage.Storage, tmp_path: Path) -> None:
    image = sample_image(tmp_path)
    seen: list[Progress] = []
    b = st.backups.create(str(image), name="first", labels={"k": "v"}, progress=seen.append)
    assert b.status == "available" and b.size_bytes == image.stat().st_size and b.chunk_size == MIB
    assert b.chunk_count == 10
    # chunk 3 and 7 are holes (skipped unread), 6 is explicit zeros (read): recorded, never stored
    assert b.zero_chunk_count == 3 and b.new_chunk_count == 7
    assert seen and seen[-1].done == b.size_bytes and seen[-1].skipped == 2 * MIB
    assert b.stored_bytes < 6 * MIB  # the text chunk compressed
    assert len(chunk_ids(open_repo(st))) == 7
    out = tmp_path / "out.raw"
    result = st.backups.restore(b.id, to_path=str(out))
    assert same_bytes(image, out)
    assert result.skipped_zero_bytes == 3 * MIB
    assert out.stat().st_blocks * 512 <= 7 * MIB + 64 * 1024  # zeros not written: sparse
    assert [x.id for x in st.backups.list(labels={"k": "v"})] == [b.id]
    assert st.backups.get(b.id).name == "first"


def test_dedup_across_backups_and_images(st: storage.Storage, tmp_path: Path) -> None:
    image = sample_image(tmp_path)
    first = st.backups.create(str(image))
    again = st.backups.create(str(image))
    assert again.new_chunk_count == 0 and again.stored_bytes == 0 and again.dedup_chunk_count == first.new_chunk_count
    other = tmp_path / "copy.raw"
    other.write_bytes(image.read_bytes())
    overwrite(other, 4 * MIB + 10, b"changed")
    third = st.backups.create(str(other))
    assert third.new_chunk_count == 1 and third.dedup_chunk_count == first.new_chunk_count - 1
    out = tmp_path / "out"
    st.backups.restore(third.id, to_path=str(out))
    assert same_bytes(other, out)


def test_encrypted_round_trip_wrong_key_and_no_key(st: storage.Storage, tmp_path: Path) -> None:
    key = st.backups.create_key(tmp_path / "keys" / "k1")
    url = f"file://{st.settings.data_dir}/objects/secret"
    image = make_image(tmp_path / "img", 3 * MIB, data_ranges=[(0, MIB)])
    overwrite(image, 2 * MIB, b"TOPSECRETPATTERN" * 4096)
    b = st.backups.create(str(image), repository=url, encryption_key_file=str(key))
    assert b.encrypted
    repo = open_repo(st, url, str(key))
    import hashlib

    plain_ids = {hashlib.sha256(image.read_bytes()[i * MIB:(i + 1) * MIB]).hexdigest() for i in range(3)}
    stored = chunk_ids(repo)
    assert len(stored) == 2 and not plain_ids & set(stored)  # keyed addresses
    for cid in stored:
        body = stored_chunk_body(repo, cid)
        assert b"TOPSECRET" not in body and body[0] & fmt.FLAG_ENCRYPTED
    out = tmp_path / "out"
    st.backups.restore(b.id, to_path=str(out))  # the catalog remembers the key file path
    assert same_bytes(image, out)
    wrong = st.backups.create_key(tmp_path / "keys" / "k2")
    with pytest.raises(AuthenticationFailed, match="not the key of this repository"):
        st.backups.restore(b.id, to_path=str(tmp_path / "o2"), repository=url, key_file=str(wrong))
    from storage.backup.repository import Repository

    with pytest.raises(InvalidInput, match="is encrypted; pass its key file"):  # no key known at all
        Repository.open(st.objects.open_url(url))
    plain = st.backups.create(str(image))  # the default repository: created plain
    assert not plain.encrypted
    with pytest.raises(InvalidInput, match="not encrypted"):
        st.backups.create(str(image), encryption_key_file=str(key))
    assert not (tmp_path / "o2").exists()


def test_cancel_then_rerun_reuses_uploaded_chunks(st: storage.Storage, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", 12 * MIB, seed=7)
    cancel = threading.Event()

    def progress(p: Progress) -> None:
        cancel.set()  # at the first report (after the first chunk is read)

    st.settings.backup.workers = 1
    with pytest.raises(Cancelled):
        st.backups.create(str(image), cancel=cancel, progress=progress)
    [failed] = st.backups.list()
    assert failed.status == "error" and "cancelled" in (failed.error or "")
    uploaded = len(chunk_ids(open_repo(st)))
    assert 0 < uploaded < 12
    rerun = st.backups.create(str(image))
    assert rerun.dedup_chunk_count == uploaded and rerun.new_chunk_count == 12 - uploaded
    assert [b.id for b in st.backups.list(status="available")] == [rerun.id]


def test_bad_sources_and_targets(st: storage.Storage, tmp_path: Path) -> None:
    with pytest.raises(storage.errors.NotFound, match="not a volume, a snapshot or a path"):
        st.backups.create("no-such-thing")
    image = make_image(tmp_path / "img", 2 * MIB)
    b = st.backups.create(str(image))
    with pytest.raises(InvalidInput, match="exactly one restore target"):
        st.backups.restore(b.id, to_path=str(tmp_path / "x"), new_volume_name="x")
    with pytest.raises(storage.errors.NotFound):
        st.backups.get("00000000-0000-0000-0000-000000000000")




@pytest.mark.loop
@requires_loop
def test_in_use_volume_backup_and_restores_to_volumes(st: storage.Storage, tmp_path: Path, loop_hygiene: Path) -> None:
    vol = st.volumes.create("db", "8M")
    dev = st.volumes.attach("db").attached_device
    assert dev and dev.startswith("/dev/loop")
    payload = os.urandom(3 * MIB)
    write_at(dev, MIB, payload)
    b = st.backups.create("db")  # in use: read through a snapshot
    assert b.volume_id == vol.id and b.volume_name == "db"
    # ext4 pool: no reflinks, so the backup's snapshot is not kept as a base
    assert b.snapshot_id is None and st.snapshots.list(volume="db") == []
    assert not st.snapshots.list(labels={BASE_LABEL: b.repository_id or ""})
    write_at(dev, MIB, b"\xff" * MIB)  # later writes do not leak into the backup
    st.volumes.detach("db")

    restored = st.backups.restore(b.id, new_volume_name="db-restored")
    assert restored.skipped_zero_bytes == 5 * MIB
    new = st.volumes.get("db-restored")
    assert new.size_bytes == 8 * MIB
    with st.host.volume_backend(new.pool).open_volume(new.id) as path:
        assert read_at(path, MIB, 3 * MIB) == payload and read_at(path, 0, MIB) == bytes(MIB)

    small = st.volumes.create("small", "4M")
    with pytest.raises(InsufficientCapacity, match="needs at least"):
        st.backups.restore(b.id, to_volume="small")
    assert st.volumes.get("small").status.value == "available"

    big = st.volumes.create("big", "16M")
    with st.host.volume_backend(big.pool).open_volume(big.id) as path:
        write_at(path, 0, b"\xee" * (10 * MIB))
    st.backups.restore(b.id, to_volume="big")  # existing target: zero chunks are written
    with st.host.volume_backend(big.pool).open_volume(big.id) as path:
        assert read_at(path, 0, MIB) == bytes(MIB)
        assert read_at(path, MIB, 3 * MIB) == payload
        assert read_at(path, 8 * MIB, MIB) == b"\xee" * MIB  # past the backup: untouched
    assert st.volumes.get("big").status.value == "available"


@pytest.mark.loop
@requires_loop
def test_block_device_paths_as_source_and_target(st: storage.Storage, tmp_path: Path, loop_hygiene: Path) -> None:
    st.volumes.create("src", "6M")
    st.volumes.create("dst", "8M")
    st.volumes.create("tiny", "2M")
    src = st.volumes.attach("src").attached_device
    dst = st.volumes.attach("dst").attached_device
    tiny = st.volumes.attach("tiny").attached_device
    assert src and dst and tiny
    try:
        payload = os.urandom(2 * MIB + 99)
        write_at(src, 3 * MIB, payload)
        b = st.backups.create(f"path:{src}")  # a raw block device: no SEEK_HOLE, zero chunks found by reading
        assert b.volume_id is None and b.zero_chunk_count == 3 and b.read_bytes == 6 * MIB
        write_at(dst, 0, b"\xaa" * (8 * MIB))
        result = st.backups.restore(b.id, to_path=dst)
        assert result.written_bytes == 6 * MIB  # an existing device: zeros are written too
        assert read_at(dst, 0, 6 * MIB) == read_at(src, 0, 6 * MIB)
        assert read_at(dst, 6 * MIB, MIB) == b"\xaa" * MIB
        with pytest.raises(InsufficientCapacity, match="needs at least"):
            st.backups.restore(b.id, to_path=tiny)
    finally:
        for name in ("src", "dst", "tiny"):
            st.volumes.detach(name)


def test_repeated_chunks_are_stored_and_downloaded_once(st: storage.Storage, tmp_path: Path) -> None:
    block = os.urandom(MIB)
    image = tmp_path / "repeated"
    image.write_bytes(block * 5 + os.urandom(MIB) + block[:1000])
    b = st.backups.create(str(image))
    assert b.new_chunk_count == 3 and b.dedup_chunk_count == 4  # in-backup dedup
    out = tmp_path / "out"
    result = st.backups.restore(b.id, to_path=str(out))
    assert result.chunks_downloaded == 3 and same_bytes(out, image)


def test_concurrent_backups_keep_each_others_chunks_in_the_cache(st: storage.Storage, tmp_path: Path) -> None:
    """Two backups into one repository at once: the later cache save merges, never drops, the other's chunks."""
    from storage.backup.cache import ChunkCache

    one, two = make_image(tmp_path / "one", 2 * MIB, seed=11), make_image(tmp_path / "two", 2 * MIB, seed=12)
    st.backups.create(str(one))  # creates the repository
    repo = open_repo(st)
    store = repo.location.store
    cache_a = ChunkCache(tmp_path / "cache", repo)
    known_a = cache_a.load(store)
    known_b = ChunkCache(tmp_path / "cache", repo).load(store)
    known_a.set("aa" * 32, 10)
    known_b.set("bb" * 32, 20)
    cache_a.save(store, known_a)
    ChunkCache(tmp_path / "cache", repo).save(store, known_b)
    merged = ChunkCache(tmp_path / "cache", repo).load(store)
    assert merged.size("aa" * 32) == 10 and merged.size("bb" * 32) == 20

    # End to end: back up two images at once, then both again: nothing is uploaded twice.
    import threading

    threads = [threading.Thread(target=st.backups.create, args=(str(p),)) for p in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert st.backups.create(str(one)).stored_bytes == 0
    assert st.backups.create(str(two)).stored_bytes == 0
