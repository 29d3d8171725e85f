"""The backup pipeline: reader -> hash/compress/encrypt workers -> pack uploaders.

A worker hashes first and seals (compresses, encrypts) only a chunk the repository lacks: an
unchanged or duplicate chunk costs one hash. blake3, hashlib, zstandard and cryptography release
the GIL on large buffers, so the workers hash on every core.

Into a store that can stream (Swift, directory: ``put_stream``) one uploader streams each pack
while it fills, one PUT of up to Repository.stream_pack_size (256 MiB: 4 packs + 4 indexes per
GiB, against 32 + 32 buffered) holding no pack in memory: the memory is about (3 x workers + 2)
x chunk size whatever the image or pack size. A streamed pack that fails is not retried in place
(its bodies are gone); its chunks are re-read and uploaded by ensure_stored after the pass, and
a second lost pack stops the backup. Other stores (S3) get buffered packs: one packer thread fills
packs of Repository.pack_size and the uploaders, as many as fit PACK_MEMORY (128 MiB: 2 with the
default 32 MiB packs), each upload a pack with its own store clone, then its index.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from storage.backup.cache import KnownChunks
from storage.backup.format import ChunkRef
from storage.backup.memory import pin_mmap_threshold
from storage.backup.models import Progress, ProgressCallback
from storage.backup.planner import Action, PlannedChunk
from storage.backup.repository import Repository
from storage.backup.source import read_exact
from storage.errors import BackendError, Cancelled, DataCorruption, StorageError

_STOP = object()
log = logging.getLogger(__name__)
PACK_MEMORY = 128 * 1024 * 1024
STREAMS = 1  # streamed packs at once: one keeps a backup's chunks in image order (restores write runs)  # packs held at once (filling + queued + uploading), whatever the pack size


def upload_threads_for(uploaders: int, pack_limit: int, budget: int = PACK_MEMORY) -> int:
    """Pure: how many uploaders fit the pack memory budget (one pack fills, one waits, one per
    uploader in flight), at least one and at most ``uploaders``: larger packs mean fewer
    objects per GiB (each costs the Swift servers about 16 ms of CPU) but fewer in flight."""
    return max(1, min(uploaders, budget // max(1, pack_limit) - 2))


@dataclass
class BackupCounters:
    total: int
    read: int = 0
    skipped: int = 0  # holes and unchanged chunks not read
    zero: int = 0
    deduplicated: int = 0
    uploaded: int = 0  # stored bytes sent
    chunks_zero: int = 0
    chunks_reused: int = 0
    chunks_new: int = 0
    chunks_dedup: int = 0
    packs: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self, phase: str = "backup") -> Progress:
        done = self.read + self.skipped
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else None
        return Progress(phase, self.total, done, self.read, self.skipped, self.deduplicated, self.uploaded, 0, rate, eta)


class Throttle:
    """A token bucket shared by the uploaders (bytes per second); None = unlimited.

    take(n) returns once n bytes fit the rate *including* themselves (pay first): a whole pack
    is sent at once, so charging it afterwards would let the first packs through unlimited.
    """

    def __init__(self, rate: int | None) -> None:
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, nbytes: int) -> None:
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + nbytes / self.rate
        delay = (start + nbytes / self.rate) - now  # pay before sending
        if delay > 0:
            time.sleep(delay)


class _Failure:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None

    def set(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.event.set()


def _put(q: "queue.Queue[Any]", item: Any, failure: _Failure) -> None:
    while True:
        try:
            q.put(item, timeout=0.2)
            return
        except queue.Full:
            if failure.event.is_set():
                raise _Aborted() from None


class _Aborted(Exception):
    pass


def run_backup(
    fd: int,
    plan: Iterable[PlannedChunk],
    repo: Repository,
    known: KnownChunks,
    counters: BackupCounters,
    *,
    workers: int,
    uploaders: int,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    bandwidth_limit: int | None = None,
    progress_interval: float = 0.25,
) -> list[ChunkRef | None]:
    """Run the plan; return the refs of its chunks in index order (for a whole image: the manifest's
    chunk list). Raises Cancelled or the first stage error."""
    pin_mmap_threshold()
    try:  # the reader goes front to back: a larger readahead window keeps the disk streaming
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except (OSError, AttributeError):
        pass
    # with a bandwidth limit, packs of about one second of data keep the upload smooth
    pack_limit = repo.pack_size if not bandwidth_limit else max(repo.config.chunk_size, min(repo.pack_size, bandwidth_limit))
    first_store = repo.clone_store()
    stream_limit = repo.stream_limit(first_store)
    uploaders = STREAMS if stream_limit else upload_threads_for(uploaders, pack_limit)
    stores = [first_store] + [repo.clone_store() for _ in range(uploaders - 1)]
    lost_packs: list[BaseException] = []
    results: dict[int, str | ChunkRef | None] = {}
    work_q: queue.Queue[Any] = queue.Queue(maxsize=max(2, workers))
    upload_q: queue.Queue[Any] = queue.Queue(maxsize=max(2, workers))
    pack_q: queue.Queue[Any] = queue.Queue(maxsize=1)
    failure = _Failure()
    throttle = Throttle(bandwidth_limit)
    zero_block = bytes(repo.config.chunk_size)  # bytes == bytes is a memcmp; a memoryview compared item by item (170 MiB/s)
    last_report = [0.0]

    def report(force: bool = False) -> None:
        if progress is None:
            return
        now = time.monotonic()
        if force or now - last_report[0] >= progress_interval:
            last_report[0] = now
            progress(counters.progress())

    def worker() -> None:
        while True:
            item = work_q.get()
            if item is _STOP:
                return
            if failure.event.is_set():
                continue
            try:
                process(*item)
            except _Aborted:
                continue
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                failure.set(exc)

    def process(index: int, data: bytes) -> None:
        if data == (zero_block if len(data) == len(zero_block) else zero_block[: len(data)]):
            results[index] = None
            with counters.lock:
                counters.zero += len(data)
                counters.chunks_zero += 1
            return
        cid = repo.chunk_id(data)
        results[index] = cid
        if known.claim(cid):
            body = repo.seal_chunk(cid, data)
            known.set(cid, len(body))
            with counters.lock:
                counters.chunks_new += 1
            _put(upload_q, (cid, body), failure)
        else:
            with counters.lock:
                counters.deduplicated += len(data)
                counters.chunks_dedup += 1

    def packer() -> None:
        """Collect sealed chunks into packs of about repo.pack_size bytes and hand them to the uploaders.

        One packer keeps the uploaders busy all the time (several uploaders filling packs of
        their own would all fill, then all upload, stalling the reader in between).
        """
        bodies: list[tuple[str, bytes]] = []
        filled = 0
        try:
            while True:
                item = upload_q.get()
                if item is _STOP:
                    if bodies and not failure.event.is_set():
                        _put(pack_q, bodies, failure)  # also after a cancel: the rerun reuses it
                    return
                if failure.event.is_set():
                    continue
                bodies.append(item)
                filled += len(item[1])
                if filled >= pack_limit:
                    pack, bodies, filled = bodies, [], 0
                    _put(pack_q, pack, failure)
        except _Aborted:
            while upload_q.get() is not _STOP:
                pass
        except BaseException as exc:  # noqa: BLE001
            failure.set(exc)
            while upload_q.get() is not _STOP:  # keep draining so workers never block
                pass
        finally:
            for _ in range(uploaders):
                pack_q.put(_STOP)

    def streamer(store: Any) -> None:
        """Upload packs while they fill (one PUT streams sealed chunks as the workers hand them
        over, up to stream_limit bytes), each followed by its index."""
        ended = False
        try:
            while not ended:
                item = upload_q.get()
                if item is _STOP:
                    return
                if failure.event.is_set():
                    continue
                sent = [0]

                def bodies(first: tuple[str, bytes]) -> Any:
                    nonlocal ended
                    current: Any = first
                    while True:
                        throttle.take(len(current[1]))
                        yield current
                        sent[0] += len(current[1])
                        with counters.lock:
                            counters.uploaded += len(current[1])
                        if sent[0] >= stream_limit or failure.event.is_set():
                            return
                        current = upload_q.get()
                        if current is _STOP:
                            ended = True
                            return

                try:
                    if repo.write_pack_stream(store, bodies(item)) is not None:
                        with counters.lock:
                            counters.packs += 1
                except StorageError as exc:
                    # its chunks are not in any pack: ensure_stored re-reads and uploads them
                    # after this pass; a second lost pack in one pass stops the backup
                    with counters.lock:
                        counters.uploaded -= sent[0]
                    lost_packs.append(exc)
                    if len(lost_packs) > 1 or not isinstance(exc, (BackendError, DataCorruption)):
                        raise
                    log.warning("backup: a streamed pack failed (%s); its chunks are uploaded again after this pass", exc.message)
                del item
        except BaseException as exc:  # noqa: BLE001
            failure.set(exc)
            if not ended:
                while upload_q.get() is not _STOP:  # keep draining so the workers never block
                    pass
        finally:
            store.close()

    def uploader(store: Any) -> None:
        """Upload whole packs, each followed by its index."""
        try:
            while True:
                item = pack_q.get()
                if item is _STOP:
                    return
                if failure.event.is_set():
                    continue
                size = sum(len(body) for _cid, body in item)
                throttle.take(size)
                repo.write_pack(store, item)
                with counters.lock:
                    counters.uploaded += size
                    counters.packs += 1
                del item
        except BaseException as exc:  # noqa: BLE001
            failure.set(exc)
            while pack_q.get() is not _STOP:  # keep draining so the packer never blocks
                pass
        finally:
            store.close()

    worker_threads = [threading.Thread(target=worker, name=f"backup-worker-{i}", daemon=True) for i in range(workers)]
    upload_threads = [threading.Thread(target=streamer if stream_limit else uploader, args=(store,), name=f"backup-upload-{i}", daemon=True)
                      for i, store in enumerate(stores)]
    packer_threads = [] if stream_limit else [threading.Thread(target=packer, name="backup-packer", daemon=True)]
    for t in worker_threads + upload_threads + packer_threads:
        t.start()
    cancelled = False
    try:
        for chunk in plan:
            if cancel is not None and cancel.is_set():
                cancelled = True  # stop reading; what is queued is still uploaded for the rerun
                break
            if failure.event.is_set():
                break
            if chunk.action is Action.ZERO:
                results[chunk.index] = None
                counters.skipped += chunk.length
                counters.chunks_zero += 1
            elif chunk.action is Action.REUSE:
                results[chunk.index] = chunk.ref
                counters.skipped += chunk.length
                counters.chunks_reused += 1
            else:
                data = read_exact(fd, chunk.offset, chunk.length)
                counters.read += chunk.length
                _put(work_q, (chunk.index, data), failure)
            report()
    except _Aborted:
        pass
    except BaseException as exc:  # noqa: BLE001 - stops the stages, re-raised below
        failure.set(exc)
    finally:
        for _ in worker_threads:
            try:
                work_q.put(_STOP, timeout=60)
            except queue.Full:
                failure.set(StorageError("backup workers are stuck"))
        for t in worker_threads:
            t.join()
        for _ in upload_threads if stream_limit else packer_threads:
            upload_q.put(_STOP)
        for t in packer_threads:
            t.join()
        for t in upload_threads:
            t.join()
    if failure.error is not None:
        raise failure.error
    if cancelled:
        raise Cancelled("backup cancelled; the chunks uploaded so far are reused by the next run")
    report(force=True)
    refs: list[ChunkRef | None] = []
    for index in sorted(results):  # every chunk of a full plan; the planned ones of a partial plan
        value = results[index]
        if isinstance(value, str):
            size = known.size(value)
            if not size:
                raise StorageError(f"chunk {value} has no stored size after upload (internal error)")
            refs.append(ChunkRef(value, size))
        else:
            refs.append(value)
    return refs
