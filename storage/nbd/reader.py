"""Read a backup's image through the backup engine: what the NBD export serves.

Chunks are fetched on first read (ranged GETs of their packs, neighbours in one GET) and
verified exactly like a restore (GCM tag, length, content address: ``Repository.open_chunk``);
a chunk that fails raises ``DataCorruption``, never returns other bytes. Zero runs of the
manifest (holes, all-zero chunks) are answered without a fetch. Verified chunks are kept in a
bounded in-memory LRU; read-ahead (``prefetch``) runs on a small thread pool and a read of a
chunk already being fetched waits for that fetch instead of starting a second one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from storage.backup.format import ChunkRef, Manifest
from storage.backup.packs import ChunkLocation, plan_reads, slice_entry
from storage.backup.repository import Repository
from storage.errors import BackendError, DataCorruption, StorageError
from storage.nbd import layout

MIB = 1024 * 1024


class ChunkLRU:
    """Verified chunk plaintexts by chunk id, at most max_bytes in all (least recently used out)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cid: str) -> bytes | None:
        with self._lock:
            data = self._items.get(cid)
            if data is not None:
                self._items.move_to_end(cid)
            return data

    def put(self, cid: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(cid, None)
            self.bytes -= len(old) if old is not None else 0
            self._items[cid] = data
            self.bytes += len(data)
            while self.bytes > self.max_bytes:
                _cid, gone = self._items.popitem(last=False)
                self.bytes -= len(gone)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class ReaderStats:
    reads: int = 0
    chunks_fetched: int = 0  # verified chunks downloaded (demand and read-ahead)
    bytes_downloaded: int = 0  # stored (sealed) bytes of those GETs
    requests: int = 0  # ranged GETs
    cache_hits: int = 0
    zero_pieces: int = 0  # read pieces answered from a zero run, no fetch
    errors: int = 0


class BackupReader:
    """Random access to one manifest's image. Thread-safe (nbdkit's parallel thread model)."""

    def __init__(self, repo: Repository, manifest: Manifest, *, cache_bytes: int = 64 * MIB, fetchers: int = 2,
                 max_read: int = 16 * MIB) -> None:
        self.repo, self.manifest = repo, manifest
        self.max_read = max(max_read, manifest.chunk_size)
        self.cache = ChunkLRU(cache_bytes)
        self.stats = ReaderStats()
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[bytes]] = {}
        self._local = threading.local()
        self._stores: list[Any] = []
        self._zero = bytes(manifest.chunk_size)
        self._lengths: dict[str, int] = {}
        for index, ref in enumerate(manifest.chunks):
            if ref is not None:
                self._lengths.setdefault(ref.id, manifest.chunk_length(index))
        store = repo.clone_store()
        try:  # one listing of packs/ and index/ (indexes from the local cache): where every chunk is
            repo_index = repo.load_index(store, threads=max(1, fetchers))
        finally:
            store.close()
        self.locations: dict[str, ChunkLocation | None] = {cid: repo_index.locations.get(cid) for cid in self._lengths}
        self._pool = ThreadPoolExecutor(max_workers=max(1, fetchers), thread_name_prefix="nbd-readahead")

    @property
    def size(self) -> int:
        return self.manifest.size

    @property
    def chunk_size(self) -> int:
        return self.manifest.chunk_size

    @property
    def chunk_count(self) -> int:
        return len(self.manifest.chunks)

    # -- reads -------------------------------------------------------------------------------
    def read_into(self, out: Any, offset: int) -> None:
        """Fill out (a writable buffer) with the image's bytes at offset; DataCorruption or
        BackendError when a chunk cannot be read back intact (out is then not to be used)."""
        view = memoryview(out).cast("B")
        parts = layout.pieces(offset, len(view), self.chunk_size, self.size)
        chunks = self.manifest.chunks
        data = self._get(p.index for p in parts if chunks[p.index] is not None)
        for p in parts:
            ref = chunks[p.index]
            if ref is None:
                view[p.out: p.out + p.length] = self._zero[: p.length]
                self.stats.zero_pieces += 1
            else:
                view[p.out: p.out + p.length] = memoryview(data[ref.id])[p.start: p.start + p.length]
        self.stats.reads += 1

    def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        self.read_into(buf, offset)
        return bytes(buf)

    def extents(self, offset: int, count: int) -> list[tuple[int, int, bool]]:
        return layout.extents(self.manifest.chunks, self.chunk_size, self.size, offset, count)

    def prefetch(self, indexes: Iterable[int]) -> None:
        """Start fetching these chunks in the background (those neither cached nor in flight)."""
        _have, _waiting, mine = self._claim(i for i in indexes if self.manifest.chunks[i] is not None)
        if mine:
            self._pool.submit(self._fetch, mine)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            stores, self._stores = self._stores, []
        for s in stores:
            s.close()

    # -- fetching ----------------------------------------------------------------------------
    def _claim(self, indexes: Iterable[int]) -> tuple[dict[str, bytes], dict[str, Future[bytes]], list[str]]:
        """Split the chunks of indexes into cached, in flight (another fetch owns them) and
        mine (now in flight, the caller fetches them)."""
        have: dict[str, bytes] = {}
        waiting: dict[str, Future[bytes]] = {}
        mine: list[str] = []
        with self._lock:
            for index in indexes:
                ref = self.manifest.chunks[index]
                assert ref is not None
                cid = ref.id
                if cid in have or cid in waiting:
                    continue
                data = self.cache.get(cid)
                if data is not None:
                    have[cid] = data
                    self.stats.cache_hits += 1
                    continue
                future = self._inflight.get(cid)
                if future is None:
                    future = self._inflight[cid] = Future()
                    mine.append(cid)
                waiting[cid] = future
        return have, waiting, mine

    def _get(self, indexes: Iterable[int]) -> dict[str, bytes]:
        have, waiting, mine = self._claim(indexes)
        if mine:
            self._fetch(mine)  # on the caller's thread: a demand read never queues behind read-ahead
        for cid, future in waiting.items():
            have[cid] = future.result()
        return have

    def _store(self) -> Any:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self.repo.clone_store()
            with self._lock:
                self._stores.append(store)
        return store

    def _settle(self, cid: str, data: bytes | None = None, exc: BaseException | None = None) -> None:
        with self._lock:
            future = self._inflight.pop(cid, None)
            if exc is not None and future is not None:
                self.stats.errors += 1
        if future is None:
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(data)  # type: ignore[arg-type]

    def _fetch(self, cids: list[str]) -> None:
        """Download, verify and cache these chunks; settle each one's future (bytes or the error)."""
        settled: set[str] = set()

        def settle(cid: str, data: bytes | None = None, exc: BaseException | None = None) -> None:
            settled.add(cid)
            self._settle(cid, data, exc)

        try:
            located = []
            for cid in cids:
                loc = self.locations.get(cid)
                if loc is None:
                    settle(cid, exc=DataCorruption(
                        f"chunk {cid} is missing from repository {self.repo.url} (not in any index)", chunk=cid))
                else:
                    located.append((cid, loc))
            for read in plan_reads(located, max_gap=MIB, max_length=self.max_read):
                try:
                    body = self.repo.read_range(self._store(), read.object, read.start, read.length)
                except StorageError as exc:
                    for cid, _loc in read.entries:
                        settle(cid, exc=exc)
                    continue
                with self._lock:
                    self.stats.requests += 1
                    self.stats.bytes_downloaded += read.length
                for cid, loc in read.entries:
                    try:
                        data = self.repo.open_chunk(slice_entry(read, body, loc), ChunkRef(cid, loc.length), self._lengths[cid])
                    except DataCorruption as exc:
                        settle(cid, exc=DataCorruption(exc.message, chunk=cid, pack=loc.pack_id))
                        continue
                    self.cache.put(cid, data)
                    with self._lock:
                        self.stats.chunks_fetched += 1
                    settle(cid, data)
        finally:
            # anything this call did not settle (an unexpected error): its readers fail, never hang. Only
            # those: a chunk it settled with an error may be claimed again meanwhile by another fetch
            for cid in (c for c in cids if c not in settled):
                self._settle(cid, exc=BackendError(f"fetching chunk {cid} from repository {self.repo.url} failed"))
