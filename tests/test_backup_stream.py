"""Packs streamed while they fill (Repository.write_pack_stream, the pipeline's streamer): size,
object count, a lost stream re-uploaded by ensure_stored, a second loss stopping the backup, and
the choice between streamed and buffered packs."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import storage
from backends.object.dir.store import DirectoryStore
from backends.object.io import IterReader
from storage.backup import prefixes
from storage.backup import format as fmt
from storage.backup.repository import stream_target
from storage.errors import BackendError, DataCorruption, InvalidInput
from tests.backup_helpers import MIB, make_image, open_repo, same_bytes, swift_backup_config


def _objects(st: storage.Storage) -> tuple[list[Any], list[Any]]:
    repo = open_repo(st)
    store = repo.location.store
    packs, indexes = (prefixes.listing(store, repo.container, repo.object_name(d)) for d in (fmt.PACKS_DIR, fmt.INDEX_DIR))
    return packs, indexes


def test_streamed_packs_follow_stream_pack_size_not_pack_size(st: storage.Storage, tmp_path: Path) -> None:
    st.settings.backup.pack_size = "1M"  # the buffered size (and restore reads): not the streamed packs'
    st.settings.backup.stream_pack_size = "8M"
    image = make_image(tmp_path / "img", 20 * MIB, seed=7)
    b = st.backups.create(str(image))
    packs, indexes = _objects(st)
    # 1 MiB + 1 byte raw bodies: a pack ends at the first body past 8 MiB -> 8 + 8 + 4 chunks
    assert sorted(s for _p, s, _m in packs) == sorted([4 * (MIB + 1), 8 * (MIB + 1), 8 * (MIB + 1)])
    assert sorted(p for p, _s, _m in packs) == sorted(i for i, _s, _m in indexes)
    assert b.new_chunk_count == 20 and b.stored_bytes == 20 * (MIB + 1)
    out = tmp_path / "out"
    st.backups.restore(b.id, to_path=str(out))
    assert same_bytes(out, image)


@pytest.mark.parametrize(("store_limit", "stream", "chunk", "expected"), [
    (1 << 40, 256 * MIB, MIB, 256 * MIB),  # the repository's target (directory store)
    (64 * MIB, 256 * MIB, MIB, 64 * MIB),  # the store's limit (Swift: segment_size)
    (0, 256 * MIB, MIB, 0),  # the store cannot stream (S3): buffered packs
    (MIB, 256 * MIB, MIB, 0),  # not even a chunk and its envelope fits: buffered packs
    (MIB + 64, 256 * MIB, MIB, MIB + 64),
])
def test_stream_target(store_limit: int, stream: int, chunk: int, expected: int) -> None:
    assert stream_target(store_limit, stream, chunk) == expected


def test_iter_reader_hands_whole_blocks_and_splits_on_request() -> None:
    blocks = [b"abc", b"", b"defgh"]
    r = IterReader(iter(blocks))
    assert r.read() is blocks[0]  # no copy of a whole block
    assert r.read(2) == b"de" and r.read(10) == b"fgh" and r.read() == b""


def _failing_put_stream(fail_calls: set[int]) -> Any:
    """DirectoryStore.put_stream that breaks off calls number fail_calls (1-based) after two blocks,
    as a connection cut mid-PUT does: no object is left (the temp file is removed)."""
    original = DirectoryStore.put_stream
    calls = [0]

    def put_stream(self: DirectoryStore, container: str, name: str, blocks: Any, content_type: str | None = None, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] not in fail_calls:
            return original(self, container, name, blocks, content_type, **kw)

        def cut() -> Any:
            for i, block in enumerate(blocks):
                if i == 2:
                    raise BackendError("connection reset by peer while uploading (injected)")
                yield block

        return original(self, container, name, cut(), content_type, **kw)

    return put_stream


def _corrupting_put_stream(which: str) -> Any:
    """DirectoryStore.put_stream that flips one byte of the first streamed pack's first or last
    body on its way to the store (after the repository indexed it), as a bad link or a bad buffer
    in between would; later packs go through intact."""
    original = DirectoryStore.put_stream
    calls = [0]

    def put_stream(self: DirectoryStore, container: str, name: str, blocks: Any, content_type: str | None = None, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] != 1:
            return original(self, container, name, blocks, content_type, **kw)
        bodies = list(blocks)
        target = 0 if which == "first" else len(bodies) - 1
        bad = bytearray(bodies[target])
        bad[len(bad) // 2] ^= 0x01
        bodies[target] = bytes(bad)
        return original(self, container, name, iter(bodies), content_type, **kw)

    return put_stream


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_pack_whose_tail_arrives_corrupt_is_uploaded_again(st: storage.Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture, encrypted: bool) -> None:
    """Without the upload MD5 (backup.upload_md5 = false, the default) every streamed pack's last
    chunk is read back and verified: a pack stored with a bad tail is lost and its chunks go again."""
    st.settings.backup.stream_pack_size = "4M"
    key = str(st.backups.create_key(tmp_path / "k")) if encrypted else None
    monkeypatch.setattr(DirectoryStore, "put_stream", _corrupting_put_stream("last"))
    image = make_image(tmp_path / "img", 12 * MIB, seed=21)
    with caplog.at_level(logging.WARNING):
        b = st.backups.create(str(image), encryption_key_file=key)
    assert "a streamed pack failed" in caplog.text and "read-back of its last chunk failed" in caplog.text
    packs, indexes = _objects(st)
    assert sorted(p for p, _s, _m in packs) == sorted(i for i, _s, _m in indexes)  # the bad pack was removed
    out = tmp_path / "out"
    st.backups.restore(b.id, to_path=str(out), key_file=key)
    assert same_bytes(out, image)
    assert st.backups.verify(b.id, deep=True, key_file=key).ok


def test_a_chunk_corrupted_mid_pack_is_found_by_verify_not_by_the_backup(st: storage.Storage, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the default does not check at backup time (docs/backup-format.md "What is verified
    where"): a byte changed in transit inside a pack is found by a deep verify and by a restore,
    both naming the chunk, never restored as data."""
    st.settings.backup.stream_pack_size = "4M"
    monkeypatch.setattr(DirectoryStore, "put_stream", _corrupting_put_stream("first"))
    image = make_image(tmp_path / "img", 8 * MIB, seed=22)
    b = st.backups.create(str(image))
    assert b.status == "available"
    with pytest.raises(DataCorruption, match="damaged"):
        st.backups.restore(b.id, to_path=str(tmp_path / "out"))
    assert not st.backups.verify(b.id, deep=True).ok


def test_a_lost_streamed_pack_is_uploaded_again(st: storage.Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    st.settings.backup.stream_pack_size = "4M"
    monkeypatch.setattr(DirectoryStore, "put_stream", _failing_put_stream({2}))
    image = make_image(tmp_path / "img", 16 * MIB, seed=8)
    with caplog.at_level(logging.WARNING):
        b = st.backups.create(str(image))
    assert "a streamed pack failed" in caplog.text and "injected" in caplog.text
    assert b.status == "available" and b.stored_bytes == 16 * (MIB + 1)
    packs, indexes = _objects(st)
    assert sorted(p for p, _s, _m in packs) == sorted(i for i, _s, _m in indexes)  # no partial pack left
    assert sum(s for _p, s, _m in packs) == 16 * (MIB + 1)
    out = tmp_path / "out"
    st.backups.restore(b.id, to_path=str(out))
    assert same_bytes(out, image)
    assert st.backups.verify(b.id, deep=True).ok


def test_a_second_lost_pack_stops_the_backup(st: storage.Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st.settings.backup.stream_pack_size = "4M"
    monkeypatch.setattr(DirectoryStore, "put_stream", _failing_put_stream({1, 2}))
    image = make_image(tmp_path / "img", 12 * MIB, seed=9)
    with pytest.raises(BackendError, match="injected"):
        st.backups.create(str(image))
    [row] = st.backups.list()
    assert row.status == "error" and "injected" in (row.error or "")


def test_stream_pack_size_is_bounded(st: storage.Storage, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", MIB, seed=1)
    for bad in ("2G", "4K"):
        st.settings.backup.stream_pack_size = bad
        with pytest.raises(InvalidInput, match="backup.stream_pack_size .* accepted: from the chunk size"):
            st.backups.create(str(image))


@pytest.mark.swift
@pytest.mark.parametrize(("encrypted", "upload_md5"), [(False, False), (True, True)])
def test_streamed_packs_through_swift(swift_options: dict[str, Any], data_dir: Path, tmp_path: Path, encrypted: bool,
                                      upload_md5: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunked PUTs into a real Swift (the fixture's 256 KiB segment_size would make packs buffered),
    checked by the read-back of each pack's last chunk (the default) or by the MD5 against the ETag."""
    from backends.object.swift import stream

    checked: list[bool] = []
    real = stream.put_stream

    def recording(*args: Any, checksum: bool = True, **kw: Any) -> Any:
        checked.append(checksum)
        return real(*args, checksum=checksum, **kw)

    monkeypatch.setattr("backends.object.swift.store.put_stream", recording)
    url = f"swift://swift@stream-{'enc' if encrypted else 'plain'}/r"
    cfg = swift_backup_config(data_dir, {**swift_options, "segment_size": 64 * MIB}, url, stream_pack_size="4M", upload_md5=upload_md5)
    image = make_image(tmp_path / "img", 10 * MIB + 5, seed=12, data_ranges=[(0, 6 * MIB), (8 * MIB, 2 * MIB + 5)])
    with storage.open(cfg) as st:
        key = str(st.backups.create_key(tmp_path / "k")) if encrypted else None
        b = st.backups.create(str(image), encryption_key_file=key)
        assert b.new_chunk_count == 9 and b.zero_chunk_count == 2
        repo = st.backups.open_repository(url, key_file=key)
        deadline = time.monotonic() + 15  # a container listing may lag its PUTs on a loaded Swift (async update)
        packs = list(prefixes.listing(repo.location.store, repo.container, repo.object_name(fmt.PACKS_DIR)))
        while sum(p[1] for p in packs) < b.stored_bytes and time.monotonic() < deadline:
            time.sleep(0.2)
            packs = list(prefixes.listing(repo.location.store, repo.container, repo.object_name(fmt.PACKS_DIR)))
        # 4 + 4 + 1 chunks, or 4 + 5 when the workers seal the 5-byte tail chunk before a full one
        # (a pack ends at the first body past 4 MiB)
        assert len(packs) in (2, 3) and sum(p[1] for p in packs) == b.stored_bytes, packs
        assert checked and set(checked) == {upload_md5}  # backup.upload_md5 reaches the store
        out = tmp_path / "out"
        st.backups.restore(b.id, to_path=str(out))
        assert same_bytes(out, image)
        assert st.backups.verify(url, deep=True).ok


def test_chunk_buffers_are_reused_not_faulted_in_again(config_file: Path, tmp_path: Path) -> None:
    """memory.TRIM: freed 1 MiB buffers stay in the heap for the next chunk instead of being handed
    back and faulted in afresh (a fresh process, as a `storagectl backup create`: about 24,800 page
    faults for a 64 MiB backup without it, about 2,100 with it)."""
    warm = make_image(tmp_path / "warm", 4 * MIB, seed=22)
    image = make_image(tmp_path / "img", 64 * MIB, seed=21)
    code = (
        "import resource, sys, storage\n"
        "with storage.open(sys.argv[1]) as st:\n"
        "    st.backups.create(sys.argv[2])\n"  # imports, first heaps
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    st.backups.create(sys.argv[3])\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(config_file), str(warm), str(image)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    faults, pages = int(out.stdout.split()[-1]), 64 * MIB // 4096
    assert faults < pages // 2, f"{faults} page faults for {pages} pages backed up"
