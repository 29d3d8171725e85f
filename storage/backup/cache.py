"""Local chunk-existence cache, one per repository, so a backup needs no HEAD per chunk.

The repository is the truth. The cache is trusted only when (a) the last backup on this
host closed it cleanly (a killed backup leaves it dirty), (b) the set of manifests in the
repository is the one it saw (another writer changes it), and (c) the repository's GC
generation object is the one it saw (GC deletes and repacks). Otherwise it is rebuilt from the
pack indexes (listings of packs/ and index/, index objects read through the local index cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storage.backup.repository import Repository
from storage.errors import NotFound

GC_GENERATION_OBJECT = "gc-generation"
ENTRY = 40  # 32-byte id + 8-byte little-endian stored size


def manifests_digest(manifest_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(manifest_ids)).encode()).hexdigest()


def read_gc_generation(repo: Repository, store: Any) -> str:
    try:
        return store.get_bytes(repo.container, repo.object_name(GC_GENERATION_OBJECT)).decode(errors="replace").strip()
    except NotFound:
        return ""


class KnownChunks:
    """Thread-safe map of chunk ids known to be stored -> stored size (0 while an upload is in flight)."""

    def __init__(self, ids: dict[bytes, int] | None = None) -> None:
        self._ids = ids if ids is not None else {}
        self._lock = threading.Lock()

    def __contains__(self, chunk_id: str) -> bool:
        return bytes.fromhex(chunk_id) in self._ids

    def size(self, chunk_id: str) -> int | None:
        return self._ids.get(bytes.fromhex(chunk_id))

    def set(self, chunk_id: str, stored_size: int) -> None:
        with self._lock:
            self._ids[bytes.fromhex(chunk_id)] = stored_size

    def claim(self, chunk_id: str) -> bool:
        """Reserve the id; True when it was unknown (the caller uploads it), False when known."""
        raw = bytes.fromhex(chunk_id)
        with self._lock:
            if raw in self._ids:
                return False
            self._ids[raw] = 0
            return True

    def replace(self, ids: dict[bytes, int]) -> None:
        """Forget every id and know exactly these (after the repository proved the set wrong)."""
        with self._lock:
            self._ids.clear()
            self._ids.update(ids)

    def discard(self, chunk_id: str) -> None:
        with self._lock:
            self._ids.pop(bytes.fromhex(chunk_id), None)

    def items(self) -> list[tuple[bytes, int]]:
        with self._lock:
            return list(self._ids.items())

    def __len__(self) -> int:
        return len(self._ids)


class ChunkCache:
    def __init__(self, cache_root: Path, repo: Repository) -> None:
        self.repo = repo
        self.dir = cache_root / repo.id
        self.ids_path = self.dir / "chunks.bin"
        self.state_path = self.dir / "state.json"
        self.rebuilt = False
        self._seen: tuple[list[str], str] | None = None  # (manifest ids, GC generation) load() read

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self, state: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = _private_tmp(self.state_path)
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise cache writers on this host (two backups into one repository at once)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_ids(self, state: dict[str, Any]) -> dict[bytes, int] | None:
        try:
            blob = self.ids_path.read_bytes()
        except OSError:
            return None
        if len(blob) % ENTRY or len(blob) // ENTRY != state.get("count"):
            return None
        return {blob[i : i + 32]: int.from_bytes(blob[i + 32 : i + ENTRY], "little") for i in range(0, len(blob), ENTRY)}

    def load(self, store: Any) -> KnownChunks:
        """Return the known chunk set, rebuilding it from a listing when it cannot be trusted; marks the cache dirty."""
        state = self._state()
        manifest_ids = self.repo.list_manifest_ids(store)
        digest = manifests_digest(manifest_ids)
        generation = read_gc_generation(self.repo, store)
        self._seen = (manifest_ids, generation)
        trusted = state.get("clean") is True and state.get("manifests") == digest and state.get("gc_generation") == generation
        ids: dict[bytes, int] | None = None
        if trusted:
            ids = self._read_ids(state)
        if ids is None:
            # only readable chunks: a pack whose size differs from its index lists its chunks with size 0
            ids = {bytes.fromhex(c.id): c.size for c in self.repo.list_chunks(store) if c.size > 0}
            self.rebuilt = True
        self._write_state({"clean": False})
        return KnownChunks(ids)

    def save(self, store: Any, known: KnownChunks, *, added: str | None = None) -> None:
        """Persist the set after a completed backup (or GC) and mark the cache clean.

        A concurrent backup into the same repository may have saved its own set meanwhile:
        when that one is clean and of the same GC generation (GC cannot run while backups
        hold the repository lock), its ids are merged in rather than overwritten.

        ``added``: the id of the one manifest this process wrote since load(), under the
        repository's shared lock (so GC did not run): the manifests and GC generation load()
        read, plus that id, are recorded without asking the repository again. A manifest
        another writer added meanwhile is then missing from the record, so the next load()
        finds the listing different and rebuilds: slower, never wrong.
        """
        with self._locked():
            if added is not None and self._seen is not None:
                seen_ids, generation = self._seen
                manifest_ids = sorted(set(seen_ids) | {added})
            else:
                generation = read_gc_generation(self.repo, store)
                manifest_ids = self.repo.list_manifest_ids(store)
            merged = {raw: size for raw, size in known.items() if size > 0}
            state = self._state()
            if state.get("clean") is True and state.get("gc_generation") == generation:
                for raw, size in (self._read_ids(state) or {}).items():
                    merged.setdefault(raw, size)
            tmp = _private_tmp(self.ids_path)
            tmp.write_bytes(b"".join(raw + size.to_bytes(8, "little") for raw, size in sorted(merged.items())))
            os.replace(tmp, self.ids_path)
            self._write_state(
                {
                    "clean": True,
                    "count": len(merged),
                    "manifests": manifests_digest(manifest_ids),
                    "gc_generation": generation,
                }
            )

    def invalidate(self) -> None:
        self._write_state({"clean": False})


def _private_tmp(path: Path) -> Path:
    """A temp name no other writer uses (two backups of one repository may write the state at once)."""
    return path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
