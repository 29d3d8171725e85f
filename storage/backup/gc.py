"""Garbage collection: mark (every manifest's chunks) and sweep (unreferenced, past grace)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from storage.backup.cache import GC_GENERATION_OBJECT
from storage.backup.models import GcReport
from storage.backup.repository import Repository, StoredChunk


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def select_garbage(stored: Iterable[StoredChunk], referenced: set[str], now: float, grace_seconds: int) -> tuple[list[StoredChunk], int]:
    """Pure: (unreferenced chunks old enough to delete, number of unreferenced ones kept in grace).

    A chunk without a modification time counts as young unless the grace period is zero.
    """
    delete: list[StoredChunk] = []
    young = 0
    for chunk in stored:
        if chunk.id in referenced:
            continue
        modified = parse_time(chunk.last_modified)
        if grace_seconds == 0 or (modified is not None and now - modified >= grace_seconds):
            delete.append(chunk)
        else:
            young += 1
    return delete, young


def collect(repo: Repository, store: Any, referenced: set[str], manifests: int, *, grace_seconds: int, dry_run: bool) -> GcReport:
    """Sweep under an exclusive lock the caller holds; referenced comes from every manifest."""
    started = time.monotonic()
    stored = list(repo.list_chunks(store))
    garbage, young = select_garbage(stored, referenced, time.time(), grace_seconds)
    freed = 0
    if not dry_run and garbage:
        # Invalidate every host's chunk cache first: a crash mid-sweep must not leave a cache
        # that still lists deleted chunks.
        store.put_object(repo.container, repo.object_name(GC_GENERATION_OBJECT), str(uuid.uuid4()).encode())
        for chunk in garbage:
            repo.delete_chunk(store, chunk.id)
            freed += chunk.size
    return GcReport(
        repository=repo.url,
        dry_run=dry_run,
        grace_seconds=grace_seconds,
        manifests=manifests,
        chunks_total=len(stored),
        chunks_referenced=sum(1 for c in stored if c.id in referenced),
        chunks_unreferenced=len(garbage) + young,
        chunks_deleted=0 if dry_run else len(garbage),
        chunks_kept_in_grace=young,
        bytes_freed=freed if not dry_run else sum(c.size for c in garbage),
        stale_locks_removed=0,
        seconds=round(time.monotonic() - started, 3),
    )
