"""Pure parts of the backup engine: planning, format encoding, crypto, GC and verify decisions."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as hst

from storage.backup import compression, crypto, format as fmt
from storage.backup.format import ChunkRef, Manifest, RepoConfig
from storage.backup.gc import select_garbage
from storage.backup.locks import LockRecord, conflicts, is_stale
from storage.backup.planner import Action, chunks_touched, normalize, plan_chunks
from storage.backup.repository import StoredChunk
from storage.backup.verify import damaged_backups, quick_check, referenced_chunks, sample_ids
from storage.errors import AuthenticationFailed, Conflict, DataCorruption, InvalidInput, NotFound, Unsupported

MIB = 1024 * 1024


def ref(n: int) -> ChunkRef:
    return ChunkRef(f"{n:064x}", 100 + n)


# -- planner ---------------------------------------------------------------------------------


def test_normalize_merges_and_clips() -> None:
    assert normalize([(10, 5), (0, 4), (12, 10), (100, 50)], 120) == [(0, 4), (10, 12), (100, 20)]
    assert normalize([(4, 0), (-5, 6)], 10) == [(0, 1)]


def test_chunks_touched_boundaries() -> None:
    assert chunks_touched([(MIB - 1, 2)], 4 * MIB, MIB) == {0, 1}
    assert chunks_touched([(MIB, MIB)], 4 * MIB, MIB) == {1}
    assert chunks_touched([], 4 * MIB, MIB) == set()


def test_plan_holes_are_zero_and_last_chunk_is_short() -> None:
    size = 3 * MIB + 10
    plan = list(plan_chunks(size, MIB, data_extents=[(2 * MIB + 5, 1)]))
    assert [p.action for p in plan] == [Action.ZERO, Action.ZERO, Action.READ, Action.ZERO]
    assert plan[-1].length == 10 and plan[-1].offset == 3 * MIB


def test_plan_reuses_unchanged_chunks_only_when_stored_and_same_length() -> None:
    previous = [ref(0), None, ref(2), ref(3)]
    stored = {ref(0).id}
    plan = list(
        plan_chunks(4 * MIB, MIB, changed=[(MIB + 5, 3)], previous=previous, previous_size=4 * MIB, is_stored=stored.__contains__)
    )
    assert [p.action for p in plan] == [Action.REUSE, Action.READ, Action.READ, Action.READ]
    assert plan[0].ref == ref(0)
    # chunk 2/3 are unchanged but no longer stored (GC'd): read them again
    grown = list(plan_chunks(5 * MIB, MIB, changed=[], previous=previous, previous_size=4 * MIB - 7))
    # chunk 3 had another length before (the image grew): never reused; chunk 4 is new
    assert [p.action for p in grown] == [Action.REUSE, Action.REUSE, Action.REUSE, Action.READ, Action.READ]
    assert grown[1].ref is None


def test_plan_without_changed_ranges_reads_everything() -> None:
    plan = list(plan_chunks(2 * MIB, MIB, previous=[ref(0), ref(1)], previous_size=2 * MIB))
    assert [p.action for p in plan] == [Action.READ, Action.READ]


@settings(max_examples=60, deadline=None)
@given(
    size=hst.integers(1, 40 * 1024),
    extents=hst.lists(hst.tuples(hst.integers(0, 40 * 1024), hst.integers(0, 9000)), max_size=8),
)
def test_plan_covers_every_byte_once(size: int, extents: list[tuple[int, int]]) -> None:
    chunk = 4096
    plan = list(plan_chunks(size, chunk, data_extents=extents))
    assert sum(p.length for p in plan) == size
    assert [p.offset for p in plan] == list(range(0, size, chunk))
    data_chunks = chunks_touched(extents, size, chunk)
    assert {p.index for p in plan if p.action is Action.READ} == data_chunks


# -- object envelope, compression, crypto -------------------------------------------------------


def config(encrypted: bool = False) -> tuple[RepoConfig, crypto.RepoKeys | None]:
    if not encrypted:
        return RepoConfig.new("r1", MIB, "zstd", 3, None), None
    master = os.urandom(32)
    salt = fmt.new_salt()
    check = crypto.key_check_value(master, bytes.fromhex(salt))
    cfg = RepoConfig.new("r1", MIB, "zstd", 3, (salt, check))
    return cfg, crypto.RepoKeys.from_master(master, bytes.fromhex(salt), check, "k")


@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize("payload", [b"a" * 300_000, os.urandom(300_000), b"short"])
def test_seal_unseal_round_trip(encrypted: bool, payload: bytes) -> None:
    cfg, keys = config(encrypted)
    cid = fmt.content_id(payload, keys)
    body = fmt.seal(payload, cfg, keys, lambda f: fmt.chunk_aad(f, cid))
    assert bool(body[0] & fmt.FLAG_ENCRYPTED) == encrypted
    if payload == b"a" * 300_000:  # (not payload[:1]: random data starts with "a" once in 256 runs)
        assert body[0] & 0x7F == compression.FLAG_ZSTD and len(body) < 1000
    else:
        assert body[0] & 0x7F == compression.FLAG_RAW  # random data is stored raw
    assert fmt.unseal(body, keys, lambda f: fmt.chunk_aad(f, cid), len(payload), "c") == payload
    if encrypted:
        assert cid != crypto.plain_chunk_id(payload)  # keyed address: names leak nothing
        flipped = bytearray(body)
        flipped[len(body) // 2] ^= 1
        with pytest.raises(DataCorruption, match="authentication"):
            fmt.unseal(bytes(flipped), keys, lambda f: fmt.chunk_aad(f, cid), len(payload), "c")
        with pytest.raises(DataCorruption, match="authentication"):  # moved under another name
            fmt.unseal(body, keys, lambda f: fmt.chunk_aad(f, "0" * 64), len(payload), "c")


@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize("payload", [b"a" * 300_000, os.urandom(300_000)])
def test_unseal_borrow_views_only_plain_raw_bodies(encrypted: bool, payload: bytes) -> None:
    """borrow=True (restore): a plain raw chunk comes back as a view into the body buffer (no
    copy); anything decoded (decrypted, decompressed) is its own bytes; both equal the payload,
    and a flipped bit in a borrowed view is still caught by the content address."""
    cfg, keys = config(encrypted)
    cid = fmt.content_id(payload, keys)
    body = bytearray(fmt.seal(payload, cfg, keys, lambda f: fmt.chunk_aad(f, cid)))
    out = fmt.unseal(memoryview(body), keys, lambda f: fmt.chunk_aad(f, cid), len(payload), "c", borrow=True)
    assert bytes(out) == payload
    raw_plain = not encrypted and body[0] & 0x7F == compression.FLAG_RAW
    assert isinstance(out, memoryview) == raw_plain
    if raw_plain:
        body[10] ^= 1  # the view sees the buffer: the caller must use it before the buffer changes
        assert bytes(out) != payload and fmt.content_id(out, keys) != cid
    assert compression.decompress(compression.FLAG_RAW, memoryview(b"xy"), 2) == b"xy"  # default: a copy
    assert isinstance(compression.decompress(compression.FLAG_RAW, memoryview(b"xy"), 2), bytes)


def test_repo_keys_repr_hides_the_keys() -> None:
    _cfg, keys = config(True)
    text = repr(keys)
    assert keys.enc_key.hex() not in text and keys.id_key.hex() not in text
    assert str(keys.enc_key) not in text and str(keys.id_key) not in text and "hash=" in text


def test_probe_stores_incompressible_chunks_raw_quickly() -> None:
    data = os.urandom(MIB)
    flag, payload = compression.compress(data, "zstd", 3)
    assert flag == compression.FLAG_RAW and payload is data
    assert compression.compress(bytes(MIB), "zstd", 3)[0] == compression.FLAG_ZSTD


def test_bad_zstd_frame_is_corruption() -> None:
    with pytest.raises(DataCorruption, match="zstd"):
        compression.decompress(compression.FLAG_ZSTD, b"not a frame", 10)
    with pytest.raises(DataCorruption, match="flag"):
        compression.decompress(0x33, b"x", 1)


def test_key_files(tmp_path: Path) -> None:
    path = crypto.create_key_file(tmp_path / "k")
    assert path.stat().st_mode & 0o777 == 0o600
    key = crypto.load_key_file(path)
    assert len(key) == 32
    with pytest.raises(Conflict, match="exists"):
        crypto.create_key_file(path)
    with pytest.raises(NotFound):
        crypto.load_key_file(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.write_text("s3cr3t-not-hex")
    with pytest.raises(InvalidInput) as exc:
        crypto.load_key_file(bad)
    assert "s3cr3t" not in exc.value.message  # never the content
    salt = os.urandom(32)
    check = crypto.key_check_value(key, salt)
    with pytest.raises(AuthenticationFailed, match="not the key"):
        crypto.RepoKeys.from_master(os.urandom(32), salt, check, str(path))


def test_config_version_too_new_is_clear() -> None:
    doc = json.loads(RepoConfig.new("r", MIB, "zstd", 3, None).to_json())
    doc["version"] = 99
    with pytest.raises(Unsupported, match="version 99, newer"):
        RepoConfig.from_json(json.dumps(doc).encode(), "file:///x")
    with pytest.raises(InvalidInput, match="not a backup repository"):
        RepoConfig.from_json(b"{}", "file:///x")


@pytest.mark.parametrize("size", [1000, 3 * 1024 * 1024, 128 * 1024 * 1024])
def test_chunk_size_limits(size: int) -> None:
    with pytest.raises(InvalidInput, match="power of two"):
        fmt.check_chunk_size(size)


def test_manifest_round_trip_with_compact_zero_runs() -> None:
    chunks = [ref(1), None, None, None, ref(2), ref(1), None]
    m = Manifest("b1", "r1", 7 * MIB - 5, MIB, chunks, fmt.iso_now(), fmt.iso_now(), volume_name="v", labels={"a": "b"})
    raw = m.to_json()
    doc = json.loads(raw)
    assert doc["chunks"][1] == 3 and doc["chunks"][-1] == 1
    back = Manifest.from_json(raw, "m")
    assert back.chunks == chunks and back.labels == {"a": "b"} and back.chunk_length(6) == MIB - 5
    doc["chunks"] = doc["chunks"][:-1]
    with pytest.raises(DataCorruption, match="lists 6 chunks"):
        Manifest.from_json(json.dumps(doc).encode(), "m")


# -- gc, verify, locks (decisions) ---------------------------------------------------------------


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".000000Z"


def test_select_garbage_respects_grace_and_references() -> None:
    now = time.time()
    stored = [
        StoredChunk(ref(1).id, 10, iso(now - 10_000)),  # referenced
        StoredChunk(ref(2).id, 20, iso(now - 10_000)),  # old garbage
        StoredChunk(ref(3).id, 30, iso(now - 10)),  # young garbage
        StoredChunk(ref(4).id, 40, None),  # unknown age
    ]
    delete, young = select_garbage(stored, {ref(1).id}, now, 3600)
    assert [c.id for c in delete] == [ref(2).id] and young == 2
    delete, young = select_garbage(stored, {ref(1).id}, now, 0)
    assert len(delete) == 3 and young == 0


def test_quick_check_and_damage_mapping() -> None:
    m1 = Manifest("b1", "r", 3 * MIB, MIB, [ref(1), ref(2), None], "t", "t")
    m2 = Manifest("b2", "r", 2 * MIB, MIB, [ref(2), ref(3)], "t", "t")
    m3 = Manifest("b3", "r", MIB, MIB, [ref(4)], "t", "t")
    wanted = referenced_chunks([m1, m2, m3])
    stored = {ref(1).id: StoredChunk(ref(1).id, ref(1).stored_size, None), ref(3).id: StoredChunk(ref(3).id, 1, None),
              ref(4).id: StoredChunk(ref(4).id, ref(4).stored_size, None)}
    findings = quick_check(wanted, stored)
    assert findings.missing == {ref(2).id} and findings.corrupt == {ref(3).id}
    assert damaged_backups([m1, m2, m3], findings.bad) == ["b1", "b2"]


def test_sample_ids() -> None:
    ids = [str(i) for i in range(200)]
    assert len(sample_ids(ids, 10, random.Random(1))) == 20
    assert sample_ids(ids, 100) == ids
    with pytest.raises(InvalidInput):
        sample_ids(ids, 0)


def test_lock_rules() -> None:
    now = time.time()
    live = LockRecord("a", "shared", "h", os.getpid(), "backup", now)
    assert not is_stale(live, now, "h")
    assert is_stale(live, now + 10_000, "h")
    assert is_stale(LockRecord("b", "shared", "h", 2**22 + 12345, "backup", now), now, "h")  # gone pid
    assert not is_stale(LockRecord("b", "shared", "other", 2**22 + 12345, "backup", now), now, "h")
    from storage.owners import process_start

    mine = process_start(os.getpid()) or ""
    assert mine and not is_stale(LockRecord("c", "shared", "h", os.getpid(), "backup", now, mine), now, "h")
    # the pid is alive but started at another time: another process got the locker's pid
    assert is_stale(LockRecord("d", "shared", "h", os.getpid(), "backup", now, str(int(mine) + 1)), now, "h")
    assert conflicts("exclusive", "shared") and conflicts("shared", "exclusive") and not conflicts("shared", "shared")


@settings(max_examples=80, deadline=None)
@given(hst.lists(hst.one_of(hst.none(), hst.integers(0, 5)), max_size=60))
def test_chunk_list_encoding_round_trips(items: list[int | None]) -> None:
    chunks = [None if i is None else ref(i) for i in items]
    encoded = fmt.encode_chunk_list(chunks)
    assert fmt.decode_chunk_list(json.loads(json.dumps(encoded))) == chunks
    assert not any(isinstance(a, int) and isinstance(b, int) for a, b in zip(encoded, encoded[1:]))  # runs merged


def test_throttle_limits_the_rate() -> None:
    from storage.backup.pipeline import Throttle

    throttle = Throttle(8 * MIB)
    started = time.monotonic()
    for _ in range(4):
        throttle.take(MIB)
    assert time.monotonic() - started >= 0.45  # 4 MiB at 8 MiB/s, each paid before it is sent
    unlimited = Throttle(None)
    started = time.monotonic()
    unlimited.take(10**9)
    assert time.monotonic() - started < 0.1
