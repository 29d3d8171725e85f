"""Reading every manifest of a repository (verify, gc, import): in parallel, in listing order.

One manifest is one object GET; a repository of 1,000 backups on Swift read one GET after
another waits 1,000 round trips (scripts/bench/scale_bench.py, docs/benchmarks.md "Scale
curves"). Reads go over ``threads`` cloned stores, as the index reads of ``load_index`` do;
results come back in listing order, one at a time, so a caller that only folds them (gc's set
of referenced chunks) holds no more than the manifests in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from storage.backup.format import Manifest
from storage.backup.repository import Repository
from storage.errors import DataCorruption, NotFound

PARALLEL_FROM = 8  # fewer manifests than this are read on the caller's store, one after another


def each_manifest(repo: Repository, store: Any, *, threads: int = 4) -> Iterator[tuple[str, Manifest | None]]:
    """(backup id, manifest) for every manifest listed, in listing order; None for one that cannot
    be read (corrupt, or deleted since the listing)."""
    ids = repo.list_manifest_ids(store)

    def read(mid: str, s: Any) -> Manifest | None:
        try:
            return repo.read_manifest(s, mid)
        except (DataCorruption, NotFound):
            return None

    if len(ids) < PARALLEL_FROM or threads <= 1:
        for mid in ids:
            yield mid, read(mid, store)
        return
    local = threading.local()
    stores: list[Any] = []
    lock = threading.Lock()

    def read_cloned(mid: str) -> Manifest | None:
        s = getattr(local, "store", None)
        if s is None:
            s = local.store = repo.clone_store()
            with lock:
                stores.append(s)
        return read(mid, s)

    try:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="manifest") as pool:
            yield from zip(ids, pool.map(read_cloned, ids), strict=True)
    finally:
        for s in stores:
            s.close()


def load_manifests(repo: Repository, store: Any, *, threads: int = 4) -> tuple[dict[str, Manifest], list[str]]:
    """Every readable manifest by backup id, and the ids of those that cannot be read."""
    manifests: dict[str, Manifest] = {}
    unreadable: list[str] = []
    for mid, manifest in each_manifest(repo, store, threads=threads):
        if manifest is None:
            unreadable.append(mid)
        else:
            manifests[mid] = manifest
    return manifests, unreadable
