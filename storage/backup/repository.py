"""A backup repository: the config, pack, index and manifest objects under one container + prefix."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
import itertools
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from storage.backup import crypto, format as fmt, prefixes
from storage.backup.format import ChunkRef, Manifest, RepoConfig
from storage.backup.pack_stream import PackStream
from storage.backup.packs import ChunkLocation, PackEntry, PackIndex, PackInfo, RepoIndex, new_pack_id, pack_index, unlisted
from storage.errors import DataCorruption, InvalidInput, NotFound, StorageError

DEFAULT_PACK_SIZE = 32 * 1024 * 1024
# packs uploaded while they fill (stores with put_stream) cost no memory for their size: 4 + 4 objects per GiB
DEFAULT_STREAM_PACK_SIZE = 256 * 1024 * 1024


class Location(Protocol):
    """What st.objects.open_url(url) returns: a store, a container, a prefix and a clone_store()."""

    store: Any
    container: str
    prefix: str
    url: str

    def clone_store(self) -> Any: ...


@dataclass(frozen=True)
class StoredChunk:
    id: str
    size: int
    last_modified: str | None


class Repository:
    """One repository. Thread use: pass each thread its own store (``clone_store()``)."""

    def __init__(self, location: Location, config: RepoConfig, keys: crypto.RepoKeys | None) -> None:
        self.location = location
        self.config = config
        self.keys = keys
        self.key_file: str | None = None  # the path the keys came from (recorded in the catalog)
        prefix = location.prefix or ""
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.pack_size = DEFAULT_PACK_SIZE  # target size of the packs this program buffers (and of restore reads)
        self.stream_pack_size = DEFAULT_STREAM_PACK_SIZE  # target size of the packs it streams
        self.upload_md5 = False  # backup.upload_md5: MD5 each streamed pack (else read back its last chunk)
        self.index_cache_dir: Path | None = None  # local copies of index objects (immutable), if set
        self._chunk_id = crypto.chunk_id_function(config.hash, keys) if keys is not None or config.encryption is None else None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        location: Location,
        *,
        key_file: str | None = None,
        create: bool = False,
        chunk_size: int = 1024 * 1024,
        compression: str = "zstd",
        compression_level: int = 3,
        require_encryption: bool = False,
        need_keys: bool = True,
    ) -> "Repository":
        """Open (or with create=True, initialise) the repository at location.

        An encrypted repository needs its key file (else InvalidInput; a wrong one raises
        AuthenticationFailed). require_encryption (an explicit key) refuses a plain repository.
        need_keys=False opens an encrypted repository without its key for listing and deleting.
        """
        prefix = _norm_prefix(location.prefix)
        store = location.store
        try:
            raw = store.get_bytes(location.container, prefix + fmt.CONFIG_OBJECT)
        except NotFound:
            raw = None
        if raw is None:
            if not create:
                raise NotFound(f"no backup repository at {location.url} (no config object); create a backup there first")
            master = crypto.load_key_file(key_file) if key_file else None
            check = None
            if master is not None:
                salt = fmt.new_salt()
                check = (salt, crypto.key_check_value(master, bytes.fromhex(salt)))
            config = RepoConfig.new(str(uuid.uuid4()), chunk_size, compression, compression_level, check)
            store.create_container(location.container)
            store.put_object(location.container, prefix + fmt.CONFIG_OBJECT, config.to_json(), content_type="application/json")
            raw = store.get_bytes(location.container, prefix + fmt.CONFIG_OBJECT)
        config = RepoConfig.from_json(raw, location.url)
        keys = None
        if config.encryption is not None and (key_file or need_keys):
            if not key_file:
                raise InvalidInput(
                    f"repository {location.url} is encrypted; pass its key file (--key-file or backup.key_file)", field="key_file"
                )
            master = crypto.load_key_file(key_file)
            keys = crypto.RepoKeys.from_master(master, bytes.fromhex(config.encryption.salt), config.encryption.key_check, str(key_file),
                                               config.hash)
        elif require_encryption:
            raise InvalidInput(
                f"repository {location.url} is not encrypted, so a key file cannot be used with it; "
                "use a new repository (container or prefix) for encrypted backups",
                field="key_file",
            )
        repo = cls(location, config, keys)
        repo.key_file = str(key_file) if keys is not None and key_file else None
        return repo

    # -- names -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.config.repository_id

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def container(self) -> str:
        return self.location.container

    def object_name(self, relative: str) -> str:
        return self.prefix + relative

    def clone_store(self) -> Any:
        return self.location.clone_store()

    # -- chunks ----------------------------------------------------------------------------
    def chunk_id(self, data: bytes | memoryview) -> str:
        """The chunk's content address with the repository's hash (see crypto.HASHES)."""
        if self._chunk_id is None:
            raise InvalidInput(f"repository {self.url} is encrypted and was opened without its key file; chunks cannot be addressed")
        return self._chunk_id(data)

    def seal_chunk(self, chunk_id: str, data: bytes | memoryview) -> bytes:
        return fmt.seal(data, self.config, self.keys, lambda flag: fmt.chunk_aad(flag, chunk_id))

    def open_chunk(self, body: bytes | memoryview, ref: ChunkRef, length: int | None, *, borrow: bool = False) -> bytes:
        """Decode and verify a chunk body: tag (encrypted), size and content address.
        borrow=True may return a view into body (a plain uncompressed chunk): use it before body changes."""
        what = f"chunk {ref.id}"
        data = fmt.unseal(body, self.keys, lambda flag: fmt.chunk_aad(flag, ref.id), length, what, borrow=borrow)
        if length is not None and len(data) != length:
            raise DataCorruption(f"{what} holds {len(data)} bytes; the manifest expects {length}", chunk=ref.id)
        if self.chunk_id(data) != ref.id:
            raise DataCorruption(f"{what} does not match its content address (corrupt)", chunk=ref.id)
        return data

    @property
    def written_version(self) -> int:
        """The version field of the indexes and manifests this program writes here: the
        repository's own (a version-2 repository stays readable by version-2 programs)."""
        return max(fmt.PACKS_VERSION, min(self.config.version, fmt.FORMAT_VERSION))

    # -- format upgrade --------------------------------------------------------------------
    def ensure_current_format(self, store: Any) -> None:
        """Before writing packs into a version-1 repository, mark it version 2 (old programs then refuse it).

        A version-2 repository stays version 2: version 3 changed only the hash of *new*
        repositories, and what this program writes into an old one (SHA-256 addresses, packs,
        indexes) is exactly version 2, so version-2 programs keep using it.
        """
        if self.config.version >= fmt.PACKS_VERSION:
            return
        self.config = replace(self.config, version=fmt.PACKS_VERSION)
        store.put_object(self.container, self.object_name(fmt.CONFIG_OBJECT), self.config.to_json(), content_type="application/json")

    # -- packs -----------------------------------------------------------------------------
    def write_pack(self, store: Any, bodies: list[tuple[str, bytes]]) -> PackIndex:
        """Upload sealed chunk bodies as one pack (streamed from the bodies, never joined in
        memory), then its index (the pack first: an index never names a missing pack)."""
        index = pack_index(bodies)
        data = PackStream([body for _cid, body in bodies])
        store.put_object(self.container, self.object_name(fmt.pack_object_name(index.pack_id)), data, length=len(data))
        self.put_index(store, index)
        return index

    def stream_limit(self, store: Any) -> int:
        """Target size of a streamed pack into this store; 0 = the store cannot stream (buffer packs)."""
        limit = store.stream_limit() if callable(getattr(store, "stream_limit", None)) else 0
        return stream_target(limit, self.stream_pack_size, self.config.chunk_size)

    def write_pack_stream(self, store: Any, bodies: Iterable[tuple[str, bytes]]) -> PackIndex | None:
        """Upload sealed chunk bodies as one pack while they come (store.put_stream), then its index
        naming what was sent; None when bodies was empty (no pack is written then)."""
        it = iter(bodies)
        first = next(it, None)
        if first is None:
            return None
        pack_id = new_pack_id()
        entries: list[PackEntry] = []
        size = [0]

        def blocks() -> Iterator[bytes]:
            for cid, body in itertools.chain((first,), it):
                entries.append(PackEntry(cid, size[0], len(body)))
                size[0] += len(body)
                yield body

        info = store.put_stream(self.container, self.object_name(fmt.pack_object_name(pack_id)), blocks(), checksum=self.upload_md5)
        if info.size != size[0]:
            raise DataCorruption(f"pack {pack_id}: the store took {info.size} of the {size[0]} bytes sent")
        index = PackIndex(pack_id, size[0], entries)
        if not self.upload_md5:
            self.check_pack_tail(store, pack_id, entries[-1])
        self.put_index(store, index)
        return index

    def check_pack_tail(self, store: Any, pack_id: str, last: PackEntry) -> None:
        """Read back a streamed pack's last chunk and verify it (tag, content address): the store holds
        the whole length, the bytes where the index will say; else delete the pack (no index names it)."""
        relative = fmt.pack_object_name(pack_id)
        try:
            self.open_chunk(self.read_range(store, relative, last.offset, last.length), ChunkRef(last.chunk_id, last.length), None, borrow=True)
        except DataCorruption as exc:
            with contextlib.suppress(StorageError):
                self.delete_pack(store, pack_id, index=False)
            raise DataCorruption(f"{relative}: the read-back of its last chunk failed after upload: {exc.message}", chunk=last.chunk_id) from None

    def put_index(self, store: Any, index: PackIndex) -> None:
        body = fmt.seal(index.to_json(self.written_version), self.config, self.keys, lambda flag: fmt.index_aad(flag, index.pack_id))
        store.put_object(self.container, self.object_name(fmt.index_object_name(index.pack_id)), body, length=len(body))
        self._cache_index(index.pack_id, body)

    def read_index(self, store: Any, pack_id: str) -> PackIndex:
        what = f"index of pack {pack_id}"
        body = self._cached_index(pack_id)
        fetched = body is None
        if body is None:
            try:
                body = store.get_bytes(self.container, self.object_name(fmt.index_object_name(pack_id)))
            except NotFound:
                raise DataCorruption(f"{what} is missing from repository {self.url}") from None
        raw = fmt.unseal(body, self.keys, lambda flag: fmt.index_aad(flag, pack_id), None, what)
        index = PackIndex.from_json(raw, what)
        if index.pack_id != pack_id:
            raise DataCorruption(f"{what} names pack {index.pack_id}")
        if fetched:  # a cached copy is not written again (mkdir + write + rename per index per command)
            self._cache_index(pack_id, body)
        return index

    def delete_pack(self, store: Any, pack_id: str, *, index: bool = True, pack: bool = True, quarantine: bool = False) -> None:
        """Delete the index first, then the pack: a crash in between leaves an unindexed pack (garbage).
        quarantine=True also deletes the pack's quarantine record (after the pack)."""
        names = ([fmt.index_object_name(pack_id)] if index else []) + ([fmt.pack_object_name(pack_id)] if pack else [])
        names += [fmt.quarantine_object_name(pack_id)] if quarantine else []
        for name in names:
            try:
                store.delete_object(self.container, self.object_name(name))
            except NotFound:
                pass
        if index and self.index_cache_dir is not None:
            try:
                os.unlink(self.index_cache_dir / pack_id)
            except OSError:
                pass

    # -- quarantine: chunks verify found corrupt in a pack are never located there again --------
    def read_quarantine(self, store: Any, pack_id: str) -> set[str]:
        """Chunk ids quarantined in a pack (an unreadable record quarantines nothing: the chunks'
        content addresses still catch corruption on every read)."""
        what = f"quarantine record of pack {pack_id}"
        try:
            body = store.get_bytes(self.container, self.object_name(fmt.quarantine_object_name(pack_id)))
            doc = json.loads(fmt.unseal(body, self.keys, lambda flag: fmt.quarantine_aad(flag, pack_id), None, what))
            return {str(c) for c in doc["chunks"] if isinstance(c, str) and len(c) == 64}
        except (NotFound, DataCorruption, ValueError, KeyError, TypeError):
            return set()

    def quarantine(self, store: Any, pack_id: str, chunk_ids: set[str]) -> None:
        """Record chunks of a pack as corrupt (merged with what is recorded): readers and backups
        stop using that copy, so the next backup holding the data uploads it again."""
        ids = sorted(self.read_quarantine(store, pack_id) | chunk_ids)
        raw = json.dumps({"format": fmt.FORMAT_NAME, "pack": pack_id, "chunks": ids}).encode()
        body = fmt.seal(raw, self.config, self.keys, lambda flag: fmt.quarantine_aad(flag, pack_id))
        store.put_object(self.container, self.object_name(fmt.quarantine_object_name(pack_id)), body, length=len(body))

    def _index_cached(self, pack_id: str) -> bool:
        return self.index_cache_dir is not None and os.path.isfile(self.index_cache_dir / pack_id)

    def _cached_index(self, pack_id: str) -> bytes | None:
        if self.index_cache_dir is None:
            return None
        try:
            return (self.index_cache_dir / pack_id).read_bytes()
        except OSError:
            return None

    def _cache_index(self, pack_id: str, body: bytes) -> None:
        if self.index_cache_dir is None or len(pack_id) != 64:
            return
        try:
            self.index_cache_dir.mkdir(parents=True, exist_ok=True)
            path = self.index_cache_dir / pack_id
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(body)
            os.replace(tmp, path)
        except OSError:
            pass

    def load_index(self, store: Any | None = None, *, threads: int = 4) -> RepoIndex:
        """List packs, indexes and version-1 chunks (at once); read every index (local cache first, in parallel)."""
        store = store or self.location.store
        repo_index = RepoIndex()
        dirs = (fmt.PACKS_DIR, fmt.INDEX_DIR, fmt.CHUNKS_DIR, fmt.QUARANTINE_DIR)
        packs, indexes, chunks, quarantined = prefixes.listings(
            store, self.container, [self.object_name(d) for d in dirs], self.clone_store, threads=threads
        )
        for pid, size, modified in packs:
            if len(pid) == 64 and "/" not in pid:
                repo_index.packs[pid] = PackInfo(pid, size, modified)
        index_ids: list[str] = []
        for pid, _size, modified in indexes:
            if len(pid) == 64 and "/" not in pid:
                repo_index.packs.setdefault(pid, PackInfo(pid)).index_last_modified = modified
                index_ids.append(pid)
        for rel, size, modified in chunks:
            cid = rel.rsplit("/", 1)[-1]
            if len(cid) == 64:
                repo_index.legacy[cid] = (size, modified)
        for pid, _size, _modified in quarantined:
            if len(pid) == 64 and "/" not in pid:
                repo_index.quarantined[pid] = self.read_quarantine(store, pid)
        self._confirm_unlisted(store, repo_index, index_ids)

        def read(pid: str, s: Any) -> None:
            try:
                repo_index.packs[pid].index = self.read_index(s, pid)
            except (DataCorruption, NotFound):
                repo_index.unreadable_indexes.append(pid)

        uncached = [pid for pid in index_ids if not self._index_cached(pid)]  # a stat, not a read of each copy
        to_fetch = set(uncached)
        for pid in index_ids:
            if pid not in to_fetch:
                read(pid, store)
        if len(uncached) > 8 and threads > 1:
            stores = [self.clone_store() for _ in range(threads)]
            try:
                with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="index") as pool:
                    list(pool.map(read, uncached, [stores[i % threads] for i in range(len(uncached))]))
            finally:
                for s in stores:
                    s.close()
        else:
            for pid in uncached:
                read(pid, store)
        repo_index.locate()
        return repo_index

    def _confirm_unlisted(self, store: Any, repo_index: RepoIndex, index_ids: list[str]) -> None:
        """HEAD the packs whose index is in the local cache (this host wrote or read them) but whose
        pack or index object the listing did not show, before they count as missing.

        A Swift container listing is answered by one container replica; while a storage node is
        down, the replica its object server would have updated misses the objects written
        meanwhile (until the replicators run), so a listing can show less than is stored. Normally
        every cached pack is listed and this costs nothing. An index object that is really gone
        (GC elsewhere) drops the cached copy, so it is asked about once.
        """
        if self.index_cache_dir is None:
            return
        try:
            cached = sorted(p.name for p in self.index_cache_dir.iterdir() if len(p.name) == 64 and "." not in p.name)
        except OSError:
            return
        for pid, head_pack, head_index in unlisted(cached, repo_index.packs, set(index_ids)):
            pack = self._head(store, fmt.pack_object_name(pid)) if head_pack else None
            index = self._head(store, fmt.index_object_name(pid)) if head_index else None
            if head_index and index is None:
                try:
                    os.unlink(self.index_cache_dir / pid)  # the index object is gone: so is its cached copy
                except OSError:
                    pass
            if pack is None and index is None:
                continue
            entry = repo_index.packs.setdefault(pid, PackInfo(pid))
            if pack is not None:
                entry.size, entry.last_modified = pack.size, pack.last_modified
            if index is not None:
                entry.index_last_modified = index.last_modified
                index_ids.append(pid)

    def _head(self, store: Any, relative: str) -> Any:
        try:
            return store.head_object(self.container, self.object_name(relative))
        except NotFound:
            return None

    def read_range(self, store: Any, relative: str, start: int, length: int) -> bytearray:
        buf = bytearray(length)
        self.read_range_into(store, relative, start, memoryview(buf))
        return buf

    def read_range_into(self, store: Any, relative: str, start: int, out: memoryview) -> None:
        """Fill out with the object's bytes from start (restore reuses one buffer per thread:
        no fresh pages to fault in for every pack read)."""
        length, got = len(out), 0
        try:
            with store.get_object(self.container, self.object_name(relative), (start, length)) as reader:
                while got < length and (n := reader.readinto(out[got:])):
                    got += n
        except NotFound:
            raise DataCorruption(f"object {relative} is missing from repository {self.url}") from None
        except InvalidInput:
            raise DataCorruption(f"object {relative} is shorter than its index says") from None
        if got != length:
            raise DataCorruption(f"object {relative} returned {got} bytes at {start}; its index says {length}")

    def get_chunk(self, store: Any, ref: ChunkRef, length: int | None, location: ChunkLocation | None = None) -> bytes:
        """Read one chunk (locating it through the index when no location is given)."""
        if location is None:
            location = self.load_index(store).locations.get(ref.id)
        if location is None:
            raise DataCorruption(f"chunk {ref.id} is missing from repository {self.url}", chunk=ref.id)
        try:
            body = self.read_range(store, location.object, location.offset, location.length)
        except DataCorruption:
            raise DataCorruption(f"chunk {ref.id} is missing from repository {self.url}", chunk=ref.id) from None
        return self.open_chunk(body, ref, length)

    def delete_legacy_chunk(self, store: Any, chunk_id: str) -> None:
        """Delete a version-1 chunk object."""
        try:
            store.delete_object(self.container, self.object_name(fmt.chunk_object_name(chunk_id)))
        except NotFound:
            pass

    def list_chunks(self, store: Any | None = None, index: RepoIndex | None = None) -> Iterator[StoredChunk]:
        """Chunks that can be read: indexed in a pack that exists (size 0 when the pack's size is wrong), or v1 objects."""
        index = index or self.load_index(store)
        for cid, loc in index.locations.items():
            if loc.pack_id is None:
                size, modified = index.legacy[cid]
                yield StoredChunk(cid, size, modified)
            else:
                info = index.packs[loc.pack_id]
                yield StoredChunk(cid, loc.length if info.intact else 0, info.last_modified)

    # -- manifests -------------------------------------------------------------------------
    def _manifest_aad(self, backup_id: str) -> Any:
        return lambda flag: fmt.manifest_aad(flag, backup_id)

    def write_manifest(self, store: Any, manifest: Manifest) -> Manifest:
        """Store the manifest, then read it back and check it decodes to the same chunk list."""
        manifest = replace(manifest, version=self.written_version)
        body = fmt.seal(manifest.to_json(), self.config, self.keys, self._manifest_aad(manifest.backup_id))
        name = self.object_name(fmt.manifest_object_name(manifest.backup_id))
        store.put_object(self.container, name, body, length=len(body))
        back = self.read_manifest(store, manifest.backup_id)
        if back.chunks != manifest.chunks or back.size != manifest.size:
            raise DataCorruption(f"manifest {manifest.backup_id} read back differs from what was written")
        return back

    def read_manifest(self, store: Any, backup_id: str) -> Manifest:
        what = f"manifest {backup_id}"
        try:
            body = store.get_bytes(self.container, self.object_name(fmt.manifest_object_name(backup_id)))
        except NotFound:
            raise NotFound(f"backup {backup_id} has no manifest in repository {self.url}") from None
        raw = fmt.unseal(body, self.keys, self._manifest_aad(backup_id), None, what)
        manifest = Manifest.from_json(raw, what)
        if manifest.backup_id != backup_id:
            raise DataCorruption(f"{what} names backup {manifest.backup_id}; the object name says {backup_id}")
        return manifest

    def list_manifest_ids(self, store: Any | None = None) -> list[str]:
        store = store or self.location.store
        start = len(self.object_name(fmt.MANIFESTS_DIR))
        out = []
        for info in store.list_objects(self.container, prefix=self.object_name(fmt.MANIFESTS_DIR)):
            name = getattr(info, "name", None)
            if name is not None and "/" not in name[start:]:
                out.append(name[start:])
        return out

    def delete_manifest(self, store: Any, backup_id: str) -> bool:
        try:
            store.delete_object(self.container, self.object_name(fmt.manifest_object_name(backup_id)))
        except NotFound:
            return False
        return True


def stream_target(store_limit: int, stream_pack_size: int, chunk_size: int) -> int:
    """Pure: target size of a streamed pack (the repository's, within what the store takes in one
    object); 0 = buffer packs instead (the store cannot stream, or not even one sealed chunk fits)."""
    return min(stream_pack_size, store_limit) if store_limit >= chunk_size + 64 else 0


def _norm_prefix(prefix: str | None) -> str:
    prefix = prefix or ""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"
