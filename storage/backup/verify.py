"""Verification: quick (every referenced chunk is indexed in an intact pack with its size) or deep (download and re-hash)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from storage.backup.format import ChunkRef, Manifest
from storage.backup.models import Progress, ProgressCallback
from storage.backup.packs import RangeRead, RepoIndex, plan_reads, slice_entry
from storage.backup.repository import Repository, StoredChunk
from storage.errors import Cancelled, DataCorruption, InvalidInput


@dataclass
class ChunkFindings:
    missing: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    checked: int = 0
    bytes_checked: int = 0
    corrupt_in: dict[str, set[str]] = field(default_factory=dict)  # pack id -> chunk ids read back corrupt there

    @property
    def bad(self) -> set[str]:
        return self.missing | self.corrupt


def referenced_chunks(manifests: Iterable[Manifest]) -> dict[str, tuple[ChunkRef, int]]:
    """Every referenced chunk id -> (ref, plaintext length), from the given manifests."""
    out: dict[str, tuple[ChunkRef, int]] = {}
    for m in manifests:
        for index, ref in enumerate(m.chunks):
            if ref is not None and ref.id not in out:
                out[ref.id] = (ref, m.chunk_length(index))
    return out


def quick_check(wanted: Mapping[str, tuple[ChunkRef, int]], stored: Mapping[str, StoredChunk]) -> ChunkFindings:
    """Pure: compare referenced chunks with a listing (existence and stored size)."""
    findings = ChunkFindings()
    for cid, (ref, _length) in wanted.items():
        findings.checked += 1
        have = stored.get(cid)
        if have is None:
            findings.missing.add(cid)
        elif have.size != ref.stored_size:
            findings.corrupt.add(cid)
        else:
            findings.bytes_checked += have.size
    return findings


def check_sample_percent(percent: float) -> float:
    """A finite percentage in (0, 100]; refuses booleans, NaN and infinity (checked before any I/O)."""
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100:
        raise InvalidInput(f"sample percent {percent} is not accepted; accepted: more than 0 up to 100")
    return percent


def sample_ids(ids: list[str], percent: float, rng: random.Random | None = None) -> list[str]:
    check_sample_percent(percent)
    if percent >= 100:
        return list(ids)
    count = max(1, round(len(ids) * percent / 100)) if ids else 0
    return (rng or random.SystemRandom()).sample(ids, count)


def deep_check(
    repo: Repository,
    wanted: Mapping[str, tuple[ChunkRef, int]],
    findings: ChunkFindings,
    ids: list[str],
    *,
    threads: int = 4,
    progress: ProgressCallback | None = None,
    index: RepoIndex | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Download the packs (ranges) holding each id not already found bad; decrypt, decompress, re-hash.

    Raises Cancelled (findings then incomplete) once cancel is set; reads already running finish.
    """
    lock = threading.Lock()
    local = threading.local()
    stores: list[Any] = []
    index = index or repo.load_index()
    todo = [cid for cid in ids if cid not in findings.bad]
    for cid in todo:
        if cid not in index.locations:
            findings.missing.add(cid)
    reads = plan_reads(((cid, index.locations[cid]) for cid in todo if cid in index.locations),
                       max_gap=1024 * 1024, max_length=2 * max(repo.pack_size, repo.config.chunk_size))
    total = sum(wanted[cid][0].stored_size for cid in todo)
    done = [0]
    started = time.monotonic()

    def check(read: RangeRead) -> None:
        if cancel is not None and cancel.is_set():
            return
        store = getattr(local, "store", None)
        if store is None:
            store = local.store = repo.clone_store()
            with lock:
                stores.append(store)
        try:
            body: bytes | None = repo.read_range(store, read.object, read.start, read.length)
        except DataCorruption:
            body = None
        for cid, loc in read.entries:
            ref, length = wanted[cid]
            if body is None:
                with lock:
                    findings.missing.add(cid)
            else:
                try:
                    repo.open_chunk(slice_entry(read, body, loc), ref, length)
                except DataCorruption:
                    with lock:
                        findings.corrupt.add(cid)
                        if loc.pack_id is not None:
                            findings.corrupt_in.setdefault(loc.pack_id, set()).add(cid)
            with lock:
                done[0] += ref.stored_size
                if progress is not None:
                    rate = done[0] / max(time.monotonic() - started, 1e-6)
                    progress(Progress("verify", total, done[0], downloaded=done[0], rate=rate, eta_seconds=(total - done[0]) / rate if rate else None))

    try:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="verify") as pool:
            list(pool.map(check, reads))
    finally:
        for s in stores:
            s.close()
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"deep verify of repository {repo.url} cancelled after {done[0]} of {total} bytes; nothing was marked")


def damaged_backups(manifests: Iterable[Manifest], bad: set[str]) -> list[str]:
    """Pure: ids of the backups that reference any bad chunk."""
    if not bad:
        return []
    return sorted(m.backup_id for m in manifests if not bad.isdisjoint(m.referenced()))


NAMED_MAX = 5  # ids named in a message; details carry up to DETAILS_MAX of each list
DETAILS_MAX = 50


def _named(ids: list[str]) -> str:
    return ", ".join(ids[:NAMED_MAX]) + (f" and {len(ids) - NAMED_MAX} more" if len(ids) > NAMED_MAX else "")


def verify_failure(report: Any) -> DataCorruption | None:
    """Pure: the error a verify that found damage ends with (a failed job, a CLI exit code 9, as
    restic check does), naming the damaged and lost backups and the missing and corrupt chunks;
    None when the report is sound."""
    if report.ok:
        return None
    parts = [f"verify of {report.repository} found {len(report.missing_chunks)} missing and "
             f"{len(report.corrupt_chunks)} corrupt chunks",
             f"damaged backups: {_named(report.damaged_backups) or 'none'}"]
    if report.lost_backups:
        parts.append(f"backups without a manifest (lost): {_named(report.lost_backups)}")
    if report.missing_chunks:
        parts.append(f"missing chunks: {_named(report.missing_chunks)}")
    if report.corrupt_chunks:
        parts.append(f"corrupt chunks: {_named(report.corrupt_chunks)}")
    return DataCorruption(
        "; ".join(parts) + "; restore what is intact or run a new backup (it re-uploads missing chunks)",
        repository=report.repository, damaged_backups=report.damaged_backups[:DETAILS_MAX],
        lost_backups=report.lost_backups[:DETAILS_MAX], missing_chunks=report.missing_chunks[:DETAILS_MAX],
        corrupt_chunks=report.corrupt_chunks[:DETAILS_MAX], chunks_checked=report.chunks_checked,
    )
