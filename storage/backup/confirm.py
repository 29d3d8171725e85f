"""Before a backup says ``available``: every chunk it references must be stored and readable.

The chunk cache (and a base snapshot's previous manifest) say a chunk is stored; something
outside this program may have deleted its pack since (an operator, a lifecycle rule, a bucket
migration), or verify may have quarantined the copy as corrupt. One listing of ``packs/`` and
``index/`` (the indexes come from the local index cache) shows which referenced chunks are not
in an intact pack with the size the manifest records; those are read from the source again and
uploaded, and the check repeats. The cost is the listings, never a request per chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from storage.backup.cache import KnownChunks
from storage.backup.format import ChunkRef
from storage.backup.packs import RepoIndex
from storage.backup.planner import Action, PlannedChunk
from storage.backup.repository import Repository
from storage.errors import DataCorruption

ATTEMPTS = 2  # re-uploads before the backup fails (a pack vanishing twice in a row is not a race)


def unconfirmed(chunks: Sequence[ChunkRef | None], index: RepoIndex) -> list[int]:
    """Pure: positions of the chunks that are not readable as the manifest records them."""
    return [i for i, ref in enumerate(chunks) if ref is not None and not index.usable(ref.id, ref.stored_size)]


def replan(positions: Sequence[int], size: int, chunk_size: int) -> list[PlannedChunk]:
    """Pure: READ actions for the chunks at these positions (in order)."""
    return [PlannedChunk(i, i * chunk_size, min(chunk_size, size - i * chunk_size), Action.READ) for i in sorted(positions)]


def readable_ids(index: RepoIndex) -> dict[bytes, int]:
    """The chunk cache's content rebuilt from an index: ids -> stored size of readable chunks."""
    return {bytes.fromhex(cid): loc.length for cid, loc in index.locations.items() if index.usable(cid, loc.length)}


def ensure_stored(
    repo: Repository,
    store: Any,
    chunks: list[ChunkRef | None],
    size: int,
    known: KnownChunks,
    upload: Callable[[list[PlannedChunk]], list[ChunkRef | None]],
    *,
    threads: int = 4,
) -> list[ChunkRef | None]:
    """Return chunks with every reference confirmed stored; re-read and upload the others.

    upload(plan) runs the backup pipeline over the plan and returns the refs in plan order.
    When anything was missing, the known set is replaced by what the repository really holds
    (the cache that said otherwise was wrong). Raises DataCorruption when chunks stay missing.
    """
    chunks = list(chunks)
    repaired = False
    for attempt in range(ATTEMPTS + 1):
        index = repo.load_index(store, threads=threads)
        bad = unconfirmed(chunks, index)
        if not bad:
            if repaired:
                known.replace(readable_ids(index))
            return chunks
        if attempt == ATTEMPTS:
            break
        repaired = True
        for i in bad:
            ref = chunks[i]
            if ref is not None:
                known.discard(ref.id)
        plan = replan(bad, size, repo.config.chunk_size)
        for planned, ref in zip(plan, upload(plan)):
            chunks[planned.index] = ref
    ids = sorted({c.id for c in (chunks[i] for i in bad) if c is not None})
    raise DataCorruption(
        f"{len(ids)} chunk(s) of this backup are still not stored in repository {repo.url} after "
        f"{ATTEMPTS} uploads (first: {ids[0]}); the store loses or hides objects; the backup is not available",
        chunk=ids[0],
    )
