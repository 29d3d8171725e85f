"""Pack objects and their indexes (format version 2 and later), pure parts: encoding and planning.

A pack (``packs/<pack-id>``) is sealed chunk bodies back to back; the pack id is random
(64 hex digits). Its index (``index/<pack-id>``, uploaded after the pack) is the usual
envelope around zstd'd JSON naming each chunk's id, offset and stored length.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from storage.backup.format import FORMAT_NAME, FORMAT_VERSION
from storage.errors import DataCorruption, Unsupported


@dataclass(frozen=True)
class PackEntry:
    """One sealed chunk inside a pack (or a version-1 chunk object: offset 0, the whole object)."""

    chunk_id: str
    offset: int
    length: int


@dataclass
class PackIndex:
    pack_id: str
    pack_size: int
    entries: list[PackEntry]

    def to_json(self, version: int = FORMAT_VERSION) -> bytes:
        """version: the repository's (an index in a version-2 repository says 2, so version-2 programs read it)."""
        doc = {
            "format": FORMAT_NAME,
            "version": version,
            "pack": self.pack_id,
            "pack_size": self.pack_size,
            "chunks": [[e.chunk_id, e.offset, e.length] for e in self.entries],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, what: str) -> "PackIndex":
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT_NAME:
                raise ValueError("format")
        except (ValueError, AttributeError):
            raise DataCorruption(f"{what} is not a {FORMAT_NAME} pack index") from None
        if int(doc.get("version", 0)) > FORMAT_VERSION:
            raise Unsupported(f"{what} has format version {doc.get('version')}, newer than this program supports ({FORMAT_VERSION})")
        try:
            entries = [PackEntry(str(cid), int(off), int(length)) for cid, off, length in doc["chunks"]]
            index = cls(str(doc["pack"]), int(doc["pack_size"]), entries)
        except (KeyError, TypeError, ValueError):
            raise DataCorruption(f"{what} is missing fields or has wrong types") from None
        check_entries(index, what)
        return index


def check_entries(index: PackIndex, what: str) -> None:
    """Entries must lie inside the pack, in order, without overlap."""
    end = 0
    for e in index.entries:
        if e.offset < end or e.length <= 0 or e.offset + e.length > index.pack_size:
            raise DataCorruption(f"{what}: chunk {e.chunk_id} at {e.offset}+{e.length} does not fit a {index.pack_size}-byte pack")
        end = e.offset + e.length


def pack_index(bodies: Sequence[tuple[str, bytes]]) -> PackIndex:
    """The index of a pack holding these sealed chunk bodies back to back, under a new pack id.

    The pack id is 32 random bytes in hex: hashing every pack (sha256) cost as much CPU as
    hashing the chunks themselves, and every chunk is verified by its own content address.
    """
    entries: list[PackEntry] = []
    offset = 0
    for cid, body in bodies:
        entries.append(PackEntry(cid, offset, len(body)))
        offset += len(body)
    return PackIndex(new_pack_id(), offset, entries)


def new_pack_id() -> str:
    return secrets.token_hex(32)


def build_pack(bodies: Sequence[tuple[str, bytes]]) -> tuple[bytes, PackIndex]:
    """Concatenate sealed chunk bodies; return the pack bytes and its index (the reference form
    of what Repository.write_pack streams; used by tests and tools that need the bytes)."""
    return b"".join(body for _cid, body in bodies), pack_index(bodies)


@dataclass(frozen=True)
class ChunkLocation:
    """Where a chunk's sealed body is: an object name (relative to the prefix), offset, length."""

    object: str
    offset: int
    length: int
    pack_id: str | None  # None for a version-1 chunk object


@dataclass
class PackInfo:
    pack_id: str
    size: int | None = None  # listed size of packs/<id>; None = no pack object
    last_modified: str | None = None
    index: PackIndex | None = None  # None = no (readable) index object
    index_last_modified: str | None = None

    @property
    def intact(self) -> bool:
        return self.index is not None and self.size == self.index.pack_size


@dataclass
class RepoIndex:
    """Every pack and legacy chunk object of a repository, and where each chunk id is."""

    packs: dict[str, PackInfo] = field(default_factory=dict)
    legacy: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # chunk id -> (size, last_modified)
    locations: dict[str, ChunkLocation] = field(default_factory=dict)
    unreadable_indexes: list[str] = field(default_factory=list)
    quarantined: dict[str, set[str]] = field(default_factory=dict)  # pack id -> chunk ids verify found corrupt there

    def locate(self) -> None:
        """Fill locations: intact packs first, then packs whose size differs from their index (both in
        id order), then version-1 chunk objects. A chunk quarantined in a pack is never located there,
        so a copy uploaded again (or none: the chunk is missing) is what readers and backups see."""
        from storage.backup.format import chunk_object_name, pack_object_name

        self.locations = {}
        ordered = sorted(self.packs, key=lambda pid: (not self.packs[pid].intact, pid))
        for pid in ordered:
            info = self.packs[pid]
            if info.index is None or info.size is None:
                continue
            bad = self.quarantined.get(pid, set())
            for e in info.index.entries:
                if e.chunk_id not in bad:
                    self.locations.setdefault(e.chunk_id, ChunkLocation(pack_object_name(pid), e.offset, e.length, pid))
        for cid, (size, _mod) in self.legacy.items():
            self.locations.setdefault(cid, ChunkLocation(chunk_object_name(cid), 0, size, None))

    def usable(self, chunk_id: str, stored_size: int) -> bool:
        """True when the chunk can be read back: located in an intact pack (or a version-1 object)
        with the stored size the manifest records (existence from the listing, no data read)."""
        loc = self.locations.get(chunk_id)
        if loc is None or loc.length != stored_size:
            return False
        return loc.pack_id is None or self.packs[loc.pack_id].intact


def unlisted(cached: Iterable[str], packs: Mapping[str, PackInfo], listed_indexes: set[str]) -> list[tuple[str, bool, bool]]:
    """Pure: the cached packs (their index is in the local cache) a listing did not fully show, as
    (pack id, HEAD the pack object?, HEAD the index object?), in id order; listed ones are skipped."""
    out = []
    for pid in sorted(set(cached)):
        info = packs.get(pid)
        head_pack = info is None or info.size is None
        head_index = pid not in listed_indexes
        if head_pack or head_index:
            out.append((pid, head_pack, head_index))
    return out


@dataclass
class RangeRead:
    """One GET: bytes [start, start + length) of an object, holding the listed entries."""

    object: str
    start: int
    length: int
    entries: list[tuple[str, ChunkLocation]]


def plan_reads(wanted: Iterable[tuple[str, ChunkLocation]], *, max_gap: int, max_length: int) -> list[RangeRead]:
    """Pure: group the wanted chunks by object into ranged reads.

    Neighbouring chunks of one object share a read when the bytes between them are at most
    max_gap and the read stays within max_length (a single chunk may exceed it).
    """
    by_object: dict[str, list[tuple[str, ChunkLocation]]] = {}
    for cid, loc in wanted:
        by_object.setdefault(loc.object, []).append((cid, loc))
    reads: list[RangeRead] = []
    for obj in sorted(by_object):
        items = sorted(by_object[obj], key=lambda item: item[1].offset)
        current: RangeRead | None = None
        for cid, loc in items:
            if current is not None:
                end = current.start + current.length
                gap = loc.offset - end
                new_length = loc.offset + loc.length - current.start
                if gap <= max_gap and new_length <= max_length:
                    current.length = max(current.length, new_length)
                    current.entries.append((cid, loc))
                    continue
                reads.append(current)
            current = RangeRead(obj, loc.offset, loc.length, [(cid, loc)])
        if current is not None:
            reads.append(current)
    return reads


def slice_entry(read: RangeRead, body: bytes, loc: ChunkLocation) -> memoryview:
    """The chunk's sealed body inside a ranged read, without a copy."""
    start = loc.offset - read.start
    return memoryview(body)[start : start + loc.length]


# -- garbage collection decisions -----------------------------------------------------------


@dataclass
class PackVerdict:
    pack_id: str
    action: str  # "keep", "delete", "repack", "young", "orphan-index", "orphan-pack"
    live: list[PackEntry]
    dead: list[PackEntry]
    size: int


def judge_packs(index: RepoIndex, referenced: set[str], now: float, grace_seconds: int, repack_threshold: float,
                age_of: Any) -> list[PackVerdict]:
    """Pure: what GC does with every pack.

    A chunk is live in the one pack ``index.locations`` points at and dead in other packs
    (a duplicate). Packs older than the grace period with no live chunk are deleted, with a
    dead fraction (by bytes) above repack_threshold repacked; an index without its pack or a
    pack without an index is deleted once old enough. age_of(last_modified) -> seconds | None.
    """

    def old(modified: str | None) -> bool:
        age = age_of(modified, now)
        return grace_seconds == 0 or (age is not None and age >= grace_seconds)

    verdicts: list[PackVerdict] = []
    for pid in sorted(index.packs):
        info = index.packs[pid]
        if info.size is None:
            action = "orphan-index" if old(info.index_last_modified) else "young"
            verdicts.append(PackVerdict(pid, action, [], list(info.index.entries if info.index else []), 0))
            continue
        if info.index is None:
            if pid in index.unreadable_indexes:
                verdicts.append(PackVerdict(pid, "keep", [], [], info.size))
                continue
            verdicts.append(PackVerdict(pid, "orphan-pack" if old(info.last_modified) else "young", [], [], info.size))
            continue
        live, dead = [], []
        for e in info.index.entries:
            loc = index.locations.get(e.chunk_id)
            is_here = loc is not None and loc.pack_id == pid and loc.offset == e.offset
            (live if e.chunk_id in referenced and is_here else dead).append(e)
        dead_bytes = info.size - sum(e.length for e in live)
        if live and not dead:
            action = "keep"
        elif not old(info.last_modified):
            action = "young"
        elif not live:
            action = "delete"  # also a pack whose index names no chunk
        elif info.size and dead_bytes / info.size > repack_threshold:
            action = "repack"
        else:
            action = "keep"
        verdicts.append(PackVerdict(pid, action, live, dead, info.size))
    return verdicts
