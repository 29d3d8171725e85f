"""Pure parts of the pack-existence check and the quarantine (storage.backup.confirm, RepoIndex.locate,
the cached packs a listing did not show)."""

from __future__ import annotations

import pytest

from storage.backup.confirm import readable_ids, replan, unconfirmed
from storage.backup.format import ChunkRef
from storage.backup.packs import PackEntry, PackIndex, PackInfo, RepoIndex, unlisted
from storage.backup.planner import Action


def _pack(pid: str, entries: list[tuple[str, int]], *, listed: int | None | str = "exact") -> PackInfo:
    es, off = [], 0
    for cid, length in entries:
        es.append(PackEntry(cid, off, length))
        off += length
    size = off if listed == "exact" else listed
    return PackInfo(pid, size, "2024-01-01T00:00:00+00:00", PackIndex(pid, off, es))  # type: ignore[arg-type]


def _index(**quarantined: set[str]) -> RepoIndex:
    idx = RepoIndex(packs={
        "p1": _pack("p1", [("a" * 64, 10), ("b" * 64, 20)]),
        "p2": _pack("p2", [("c" * 64, 30)], listed=None),  # the pack object is gone
        "p3": _pack("p3", [("d" * 64, 40)], listed=7),  # truncated: listed size differs from the index
        "p4": _pack("p4", [("b" * 64, 20), ("e" * 64, 5)]),  # a second copy of b
    }, legacy={"f" * 64: (50, None)}, quarantined={k: v for k, v in quarantined.items()})
    idx.locate()
    return idx


@pytest.mark.parametrize(
    ("chunk", "size", "quarantine", "usable"),
    [
        ("a", 10, {}, True),
        ("a", 11, {}, False),  # the manifest records another stored size
        ("c", 30, {}, False),  # pack deleted behind the engine's back
        ("d", 40, {}, False),  # pack truncated
        ("f", 50, {}, True),  # a version-1 chunk object
        ("z", 1, {}, False),  # never stored
        ("a", 10, {"p1": {"a" * 64}}, False),  # quarantined: no other copy
        ("b", 20, {"p1": {"b" * 64}}, True),  # quarantined in p1, the copy in p4 is used
    ],
)
def test_usable(chunk: str, size: int, quarantine: dict[str, set[str]], usable: bool) -> None:
    assert _index(**quarantine).usable(chunk * 64, size) is usable


def test_locate_prefers_intact_packs_and_skips_quarantined_copies() -> None:
    idx = _index(p1={"b" * 64})
    assert idx.locations["b" * 64].pack_id == "p4"
    assert "c" * 64 not in idx.locations  # no pack object: not located
    assert idx.locations["d" * 64].pack_id == "p3"  # located (verify reports it), but not usable
    assert _index().locations["b" * 64].pack_id == "p1"


def test_unconfirmed_and_replan() -> None:
    idx = _index()
    chunks = [ChunkRef("a" * 64, 10), None, ChunkRef("c" * 64, 30), ChunkRef("d" * 64, 40), ChunkRef("a" * 64, 10)]
    assert unconfirmed(chunks, idx) == [2, 3]
    plan = replan([3, 2], size=4 * 100 + 50, chunk_size=100)
    assert [(p.index, p.offset, p.length, p.action) for p in plan] == [(2, 200, 100, Action.READ), (3, 300, 100, Action.READ)]
    assert replan([4], size=450, chunk_size=100)[0].length == 50  # the last, short chunk
    assert set(readable_ids(idx)) == {bytes.fromhex(c * 64) for c in "abef"}


@pytest.mark.parametrize(
    ("cached", "listed_packs", "listed_indexes", "expected"),
    [
        (["p1"], {"p1": 10}, {"p1"}, []),  # listed in full: nothing to ask
        (["p1"], {}, set(), [("p1", True, True)]),  # neither listed (a stale container replica)
        (["p1"], {"p1": 10}, set(), [("p1", False, True)]),  # the index not listed
        (["p1"], {}, {"p1"}, [("p1", True, False)]),  # the pack not listed (an index-only entry)
        (["p2", "p1", "p2"], {"p1": 10}, {"p1"}, [("p2", True, True)]),  # once each, in id order
        ([], {"p1": 10}, set(), []),  # listed but not cached: this host knows nothing to ask about
    ],
)
def test_unlisted_cached_packs_to_head(
    cached: list[str], listed_packs: dict[str, int], listed_indexes: set[str], expected: list[tuple[str, bool, bool]]
) -> None:
    packs = {pid: PackInfo(pid, size) for pid, size in listed_packs.items()}
    for pid in listed_indexes - set(packs):
        packs[pid] = PackInfo(pid)  # what load_index records for an index listed without its pack
    assert unlisted(cached, packs, listed_indexes) == expected
