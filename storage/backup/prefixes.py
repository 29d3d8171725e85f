"""The listings a repository index is built from: one per directory (packs/, index/, chunks/,
quarantine/), each a paged container listing, run side by side on connections of their own.

Sequentially the four cost four listing round trips before every backup says ``available``
(about 50 ms of an incremental against a local Swift, docs/benchmarks.md); at once they cost
about the longest one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Entry = tuple[str, int, "str | None"]  # name below the directory, size, last modified


def listing(store: Any, container: str, prefix: str) -> list[Entry]:
    """Every object under ``prefix`` (names relative to it)."""
    start = len(prefix)
    found: list[Entry] = []
    for info in store.list_objects(container, prefix=prefix):
        name = getattr(info, "name", None)
        if name is not None:
            found.append((name[start:], int(info.size), info.last_modified))
    return found


def listings(store: Any, container: str, prefixes: Sequence[str], clone: Callable[[], Any], *, threads: int) -> list[list[Entry]]:
    """The listing of each prefix, in order: the first on ``store``, the others on clones of it,
    at once when ``threads`` allows (a store's connection serves one thread at a time)."""
    if threads < 2 or len(prefixes) < 2:
        return [listing(store, container, p) for p in prefixes]
    clones: list[Any] = []
    try:
        for _ in prefixes[1:]:
            clones.append(clone())
        with ThreadPoolExecutor(max_workers=min(threads, len(prefixes)), thread_name_prefix="listing") as pool:
            return list(pool.map(lambda p, s: listing(s, container, p), prefixes, [store, *clones]))
    finally:
        for s in clones:
            s.close()
