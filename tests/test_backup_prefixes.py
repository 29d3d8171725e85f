"""The repository's directory listings, side by side on clones of the store (storage/backup/prefixes.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backends.object.dir.store import DirectoryStore
from storage.backup import prefixes


class Tracked(DirectoryStore):
    """A real directory store that records which thread listed what and which clones were closed."""

    def __init__(self, options: dict, log: list) -> None:
        super().__init__(options)
        self.log, self.closed = log, False

    def clone(self) -> "Tracked":
        return Tracked(dict(self.options), self.log)

    def list_objects(self, container: str, prefix: str = "", **kw: object):  # type: ignore[override]
        self.log.append((id(self), threading.current_thread().name, prefix))
        return super().list_objects(container, prefix=prefix, **kw)

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def store(tmp_path: Path) -> Tracked:
    s = Tracked({"root": str(tmp_path / "objects"), "fsync": "none"}, [])
    s.create_container("c")
    for name, body in [("packs/" + "a" * 64, b"12345"), ("packs/" + "b" * 64, b"1"), ("index/" + "a" * 64, b"xy"),
                       ("quarantine/" + "b" * 64, b"{}"), ("manifests/m1", b"m")]:  # fmt: skip
        s.put_object("c", name, body)
    return s


def test_parallel_listings_equal_sequential_ones_and_close_their_clones(store: Tracked) -> None:
    dirs = ["packs/", "index/", "chunks/", "quarantine/"]
    clones: list[Tracked] = []

    def clone() -> Tracked:
        clones.append(store.clone())
        return clones[-1]

    one_by_one = prefixes.listings(store, "c", dirs, clone, threads=1)
    assert clones == [] and len({who for who, _t, _p in store.log}) == 1
    assert [[(n, size) for n, size, _m in found] for found in one_by_one] == [
        [("a" * 64, 5), ("b" * 64, 1)], [("a" * 64, 2)], [], [("b" * 64, 2)]]  # fmt: skip
    store.log.clear()
    at_once = prefixes.listings(store, "c", dirs, clone, threads=4)
    assert at_once == one_by_one
    assert len(clones) == 3 and all(c.closed for c in clones) and not store.closed
    assert {who for who, _t, _p in store.log} == {id(store), *map(id, clones)}  # one store per listing
    assert all(thread.startswith("listing") for _w, thread, _p in store.log)


def test_a_failing_listing_fails_the_whole_and_still_closes_the_clones(store: Tracked) -> None:
    clones: list[Tracked] = []

    def clone() -> Tracked:
        clones.append(store.clone())
        return clones[-1]

    with pytest.raises(Exception):
        prefixes.listings(store, "missing-container", ["packs/", "index/"], clone, threads=2)
    assert clones and all(c.closed for c in clones)
