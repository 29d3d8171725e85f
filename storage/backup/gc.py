"""Garbage collection: mark (every manifest's chunks) and sweep packs (delete or repack), past grace."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from storage.backup.cache import GC_GENERATION_OBJECT
from storage.backup.format import ChunkRef, pack_object_name
from storage.backup.models import GcReport
from storage.backup.packs import PackVerdict, RepoIndex, judge_packs
from storage.backup.repository import Repository, StoredChunk
from storage.errors import DataCorruption


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def age_seconds(modified: str | None, now: float) -> float | None:
    stamp = parse_time(modified)
    return None if stamp is None else now - stamp


def select_garbage(stored: Iterable[StoredChunk], referenced: set[str], now: float, grace_seconds: int) -> tuple[list[StoredChunk], int]:
    """Pure: (unreferenced chunks old enough to delete, number of unreferenced ones kept in grace).

    A chunk without a modification time counts as young unless the grace period is zero.
    Used for version-1 chunk objects; packs are judged by storage.backup.packs.judge_packs.
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


class _Repacker:
    """Copies live chunk bodies into new packs; an old pack is deleted only once its chunks are stored anew."""

    def __init__(self, repo: Repository, store: Any, quarantined: Iterable[str] = ()) -> None:
        self.repo, self.store = repo, store
        self.quarantined = set(quarantined)  # packs with a quarantine record to delete with them
        self.bodies: list[tuple[str, bytes]] = []
        self.filled = 0
        self.waiting: list[str] = []  # old packs whose live chunks are in the buffer
        self.copied = 0

    def add(self, verdict: PackVerdict) -> bool:
        """Read the pack's live chunks (each verified); False (pack kept) when one is unreadable."""
        first, last = verdict.live[0], verdict.live[-1]
        try:
            body = self.repo.read_range(self.store, pack_object_name(verdict.pack_id), first.offset, last.offset + last.length - first.offset)
            bodies = []
            for e in verdict.live:
                chunk = body[e.offset - first.offset : e.offset - first.offset + e.length]
                self.repo.open_chunk(chunk, ChunkRef(e.chunk_id, e.length), None)
                bodies.append((e.chunk_id, chunk))
        except DataCorruption:
            return False
        self.bodies.extend(bodies)
        self.filled += sum(len(b) for _c, b in bodies)
        self.waiting.append(verdict.pack_id)
        if self.filled >= self.repo.pack_size:
            self.flush()
        return True

    def flush(self) -> None:
        if self.bodies:
            self.repo.write_pack(self.store, self.bodies)
            self.copied += self.filled
        for pid in self.waiting:
            self.repo.delete_pack(self.store, pid, quarantine=pid in self.quarantined)
        self.bodies, self.filled, self.waiting = [], 0, []


def collect(repo: Repository, store: Any, referenced: set[str], manifests: int, *, grace_seconds: int, dry_run: bool,
            repack_threshold: float = 0.25) -> GcReport:
    """Sweep under an exclusive lock the caller holds; referenced comes from every manifest."""
    started = time.monotonic()
    now = time.time()
    index: RepoIndex = repo.load_index(store)
    legacy = [StoredChunk(cid, size, mod) for cid, (size, mod) in index.legacy.items()
              if index.locations[cid].pack_id is None or cid not in referenced]
    legacy_garbage, legacy_young = select_garbage(legacy, referenced, now, grace_seconds)
    verdicts = judge_packs(index, referenced, now, grace_seconds, repack_threshold, age_seconds)
    unreferenced = {cid for cid in index.locations if cid not in referenced}
    removed: set[str] = {c.id for c in legacy_garbage if c.id in unreferenced}
    young: set[str] = set()
    freed = sum(c.size for c in legacy_garbage)
    for v in verdicts:
        dead_ids = {e.chunk_id for e in v.dead} & unreferenced
        if v.action in ("delete", "repack"):
            removed |= dead_ids
            freed += v.size - sum(e.length for e in v.live)
        elif v.action == "orphan-pack":
            freed += v.size
        elif v.action == "young":
            young |= dead_ids
    young -= removed
    packs_deleted = sum(1 for v in verdicts if v.action in ("delete", "orphan-pack", "orphan-index"))
    repacked = [v for v in verdicts if v.action == "repack"]
    kept_repack = 0
    copied = 0
    orphan_quarantine = sorted(pid for pid in index.quarantined if pid not in index.packs)  # pack and index gone
    if not dry_run and (removed or packs_deleted or repacked or orphan_quarantine):
        # Invalidate every host's chunk cache first: a crash mid-sweep must not leave a cache
        # that still lists deleted chunks.
        store.put_object(repo.container, repo.object_name(GC_GENERATION_OBJECT), str(uuid.uuid4()).encode())
        repacker = _Repacker(repo, store, index.quarantined)
        for v in repacked:
            if not repacker.add(v):
                kept_repack += 1
                removed -= {e.chunk_id for e in v.dead}
        repacker.flush()
        copied = repacker.copied
        for v in verdicts:
            if v.action in ("delete", "orphan-pack"):
                repo.delete_pack(store, v.pack_id, quarantine=v.pack_id in index.quarantined)
            elif v.action == "orphan-index":
                repo.delete_pack(store, v.pack_id, pack=False, quarantine=v.pack_id in index.quarantined)
        for pid in orphan_quarantine:
            repo.delete_pack(store, pid, index=False, pack=False, quarantine=True)
        for chunk in legacy_garbage:
            repo.delete_legacy_chunk(store, chunk.id)
    return GcReport(
        repository=repo.url,
        dry_run=dry_run,
        grace_seconds=grace_seconds,
        manifests=manifests,
        chunks_total=len(index.locations),
        chunks_referenced=len(index.locations) - len(unreferenced),
        chunks_unreferenced=len(unreferenced),
        chunks_deleted=0 if dry_run else len(removed),
        chunks_kept_in_grace=len(young) + legacy_young,
        bytes_freed=freed,
        stale_locks_removed=0,
        seconds=round(time.monotonic() - started, 3),
        packs_total=sum(1 for v in verdicts if v.size),
        packs_deleted=0 if dry_run else packs_deleted,
        packs_repacked=0 if dry_run else len(repacked) - kept_repack,
        bytes_repacked=copied if not dry_run else sum(sum(e.length for e in v.live) for v in repacked),
    )
