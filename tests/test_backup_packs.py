"""Format version 2: chunks packed into packs with indexes; restore by ranges, GC deletes and repacks, v1 still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import storage
from storage.backup import prefixes
from storage.backup import format as fmt
from storage.backup.format import ChunkRef, Manifest
from storage.backup.packs import ChunkLocation, PackEntry, PackIndex, PackInfo, RepoIndex, build_pack, judge_packs, plan_reads
from storage.errors import DataCorruption
from tests.backup_helpers import MIB, chunk_ids, make_image, open_repo, overwrite, same_bytes


def _loc(pack: str, offset: int, length: int) -> ChunkLocation:
    return ChunkLocation(f"packs/{pack}", offset, length, pack)


def test_plan_reads_merges_neighbours_within_gap_and_length() -> None:
    wanted = [("a", _loc("p1", 0, 100)), ("c", _loc("p1", 300, 100)), ("b", _loc("p1", 150, 100)),
              ("d", _loc("p1", 5000, 100)), ("e", _loc("p2", 0, 10))]
    reads = plan_reads(wanted, max_gap=100, max_length=1000)
    assert [(r.object, r.start, r.length, [c for c, _ in r.entries]) for r in reads] == [
        ("packs/p1", 0, 400, ["a", "b", "c"]), ("packs/p1", 5000, 100, ["d"]), ("packs/p2", 0, 10, ["e"])]
    capped = plan_reads(wanted[:3], max_gap=100, max_length=260)
    assert [(r.start, r.length) for r in capped] == [(0, 250), (300, 100)]


def test_pack_index_round_trip_and_bad_entries() -> None:
    data, index = build_pack([("a" * 64, b"xyz"), ("b" * 64, b"12345")])
    assert data == b"xyz12345" and index.pack_size == 8 and index.entries[1] == PackEntry("b" * 64, 3, 5)
    assert PackIndex.from_json(index.to_json(), "i") == index
    doc = json.loads(index.to_json())
    doc["chunks"][1][1] = 2  # overlaps the first chunk
    with pytest.raises(DataCorruption, match="does not fit"):
        PackIndex.from_json(json.dumps(doc).encode(), "i")


def test_judge_packs_delete_repack_keep_young_orphans() -> None:
    old, young = "2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z"

    def pack(pid: str, entries: list[tuple[str, int]], modified: str = old, size: int | None = None) -> PackInfo:
        es, off = [], 0
        for cid, length in entries:
            es.append(PackEntry(cid, off, length))
            off += length
        return PackInfo(pid, off if size is None else size, modified, PackIndex(pid, off, es), modified)

    idx = RepoIndex(packs={
        "p1": pack("p1", [("a", 10), ("b", 90)]),  # b dead: 90% -> repack
        "p2": pack("p2", [("c", 90), ("d", 10)]),  # d dead: 10% -> keep
        "p3": pack("p3", [("e", 50)]),  # all dead -> delete
        "p4": pack("p4", [("f", 50)], young),  # dead but young
        "p5": PackInfo("p5", 70, old),  # no index -> orphan pack
        "p6": PackInfo("p6", None, None, PackIndex("p6", 5, [PackEntry("g", 0, 5)]), old),  # no pack
        "p7": pack("p7", [("a", 10)]),  # duplicate of a (p1 wins): dead here
        "p8": PackInfo("p8", 10, old, PackIndex("p8", 10, []), old),  # an index naming no chunk
    })
    idx.locate()
    from storage.backup.gc import age_seconds

    verdicts = {v.pack_id: v.action for v in judge_packs(idx, {"a", "c"}, 4_000_000_000.0, 3600, 0.25, age_seconds)}
    assert verdicts == {"p1": "repack", "p2": "keep", "p3": "delete", "p4": "young", "p5": "orphan-pack",
                        "p6": "orphan-index", "p7": "delete", "p8": "delete"}


def test_backup_writes_packs_not_chunk_objects(st: storage.Storage, tmp_path: Path) -> None:
    st.settings.backup.pack_size = st.settings.backup.stream_pack_size = "4M"
    image = make_image(tmp_path / "img", 20 * MIB, seed=3)
    b = st.backups.create(str(image))
    repo = open_repo(st)
    store = repo.location.store
    packs = list(prefixes.listing(store, repo.container, repo.object_name(fmt.PACKS_DIR)))
    indexes = list(prefixes.listing(store, repo.container, repo.object_name(fmt.INDEX_DIR)))
    assert not list(prefixes.listing(store, repo.container, repo.object_name(fmt.CHUNKS_DIR)))
    assert 5 <= len(packs) <= 8 and sorted(p for p, _s, _m in packs) == sorted(i for i, _s, _m in indexes)
    assert len(chunk_ids(repo)) == 20 and b.new_chunk_count == 20
    assert json.loads(store.get_bytes(repo.container, repo.object_name(fmt.CONFIG_OBJECT)))["version"] == fmt.FORMAT_VERSION == 3
    out = tmp_path / "out"
    st.backups.restore(b.id, to_path=str(out))
    assert same_bytes(out, image)


def test_gc_repacks_partly_dead_packs_and_restores_stay_exact(st: storage.Storage, tmp_path: Path) -> None:
    st.settings.backup.uploaders = 1  # one pack per backup
    first_image = make_image(tmp_path / "a", 8 * MIB, seed=21)
    first = st.backups.create(str(first_image))
    second_image = tmp_path / "b"
    second_image.write_bytes(first_image.read_bytes())
    for i in range(3):
        overwrite(second_image, i * 2 * MIB, bytes([i + 1]) * MIB)  # 3 chunks replaced (compressible)
    second = st.backups.create(str(second_image))
    assert second.new_chunk_count == 3 and second.dedup_chunk_count == 5
    st.backups.delete(first.id)
    kept = st.backups.gc(grace_seconds=3600, repack_threshold=0.1)
    assert kept.packs_repacked == 0 and kept.chunks_kept_in_grace == 3
    report = st.backups.gc(grace_seconds=0, repack_threshold=0.1)
    assert report.packs_repacked == 1 and report.chunks_deleted == 3 and report.bytes_repacked >= 5 * MIB
    assert report.bytes_freed >= 3 * MIB
    repo = open_repo(st)
    assert len(chunk_ids(repo)) == 8
    assert st.backups.verify(second.id, deep=True).ok
    out = tmp_path / "out"
    st.backups.restore(second.id, to_path=str(out))
    assert same_bytes(out, second_image)
    # the chunk cache was invalidated: a backup of the first image uploads its 3 chunks again
    again = st.backups.create(str(first_image))
    assert again.new_chunk_count == 3


def test_gc_removes_leftovers_of_a_crash_after_grace(st: storage.Storage, tmp_path: Path) -> None:
    b = st.backups.create(str(make_image(tmp_path / "a", 2 * MIB, seed=4)))
    repo = open_repo(st)
    store = repo.location.store
    data, lone = build_pack([("e" * 64, b"\x00garbage")])
    store.put_object(repo.container, repo.object_name(fmt.pack_object_name(lone.pack_id)), data)  # pack, no index
    ghost = PackIndex("f" * 64, 9, [PackEntry("f" * 64, 0, 9)])
    repo.put_index(store, ghost)  # index, no pack
    young = st.backups.gc()
    assert young.packs_deleted == 0
    report = st.backups.gc(grace_seconds=0)
    assert report.packs_deleted == 2 and report.chunks_deleted == 0
    names = {p for d in (fmt.PACKS_DIR, fmt.INDEX_DIR) for p, _s, _m in prefixes.listing(store, repo.container, repo.object_name(d))}
    assert lone.pack_id not in names and ghost.pack_id not in names
    assert st.backups.verify(b.id, deep=True).ok


def test_version_1_repository_is_read_and_upgraded(st: storage.Storage, tmp_path: Path) -> None:
    """A repository written by version 1 (one object per chunk) restores, dedups and is upgraded on backup."""
    url = f"file://{st.settings.data_dir}/objects/v1"
    repo = st.backups.open_repository(url, create=True)
    store = repo.location.store
    cfg = json.loads(store.get_bytes(repo.container, repo.object_name(fmt.CONFIG_OBJECT)))
    cfg["version"] = 1
    store.put_object(repo.container, repo.object_name(fmt.CONFIG_OBJECT), json.dumps(cfg).encode())
    repo = st.backups.open_repository(url)
    assert repo.config.version == 1
    image = make_image(tmp_path / "img", 3 * MIB + 5, seed=8)
    raw = image.read_bytes()
    refs: list[ChunkRef | None] = []
    for i in range(4):
        piece = raw[i * MIB:(i + 1) * MIB]
        cid = repo.chunk_id(piece)
        body = repo.seal_chunk(cid, piece)
        store.put_object(repo.container, repo.object_name(fmt.chunk_object_name(cid)), body)
        refs.append(ChunkRef(cid, len(body)))
    manifest = Manifest("0b7c9a52-7a43-4d0e-9d64-2f0f1b0b9b11", repo.id, len(raw), MIB, refs, fmt.iso_now(), fmt.iso_now(),
                        version=1)
    repo.write_manifest(store, manifest)
    [imported] = st.backups.import_repository(url)
    out = tmp_path / "out"
    st.backups.restore(imported.id, to_path=str(out))
    assert same_bytes(out, image)
    assert st.backups.verify(url, deep=True).ok
    overwrite(image, 0, b"new" * 1000)
    b = st.backups.create(str(image), repository=url)
    assert b.new_chunk_count == 1 and b.dedup_chunk_count == 3
    assert st.backups.open_repository(url).config.version == 2
    st.backups.delete(imported.id)
    report = st.backups.gc(url, grace_seconds=0)
    assert report.chunks_deleted == 1 and len(chunk_ids(st.backups.open_repository(url))) == 4
    out2 = tmp_path / "out2"
    st.backups.restore(b.id, to_path=str(out2))
    assert same_bytes(out2, image)


def test_pack_stream_reads_the_bodies_back_to_back_in_any_block_size() -> None:
    from storage.backup.pack_stream import PackStream
    from storage.backup.packs import pack_index

    bodies = [("a" * 64, b"xyz"), ("b" * 64, b"12345"), ("c" * 64, b"\x00" * 7), ("d" * 64, b"q")]
    joined, index = build_pack(bodies)
    assert pack_index(bodies).entries == index.entries and index.pack_size == len(joined) == 16
    assert pack_index(bodies).pack_id != index.pack_id  # random ids: two packs never share a name
    stream = PackStream([b for _c, b in bodies])
    assert len(stream) == 16 and stream.seek(0, 2) == 16
    for block in (1, 2, 3, 5, 8, 16, 100):
        stream.seek(0)
        parts = []
        while part := stream.read(block):
            assert len(part) <= block
            parts.append(part)
        assert b"".join(parts) == joined and stream.tell() == 16
    stream.seek(4)
    buf = bytearray(6)
    assert stream.readinto(buf) == 6 and bytes(buf) == joined[4:10]
    stream.seek(0)
    assert stream.read() == joined and stream.read(5) == b""
    with pytest.raises(ValueError, match="negative"):
        stream.seek(-1)
