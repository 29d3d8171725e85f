"""Restore a manifest to a file or block device: parallel ranged pack downloads, verified, sparse."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from storage.backup.format import ChunkRef, Manifest
from storage.backup.models import Progress, ProgressCallback, RestoreResult
from storage.backup.packs import RangeRead, plan_reads, slice_entry
from storage.backup.repository import Repository
from storage.errors import BackendError, Cancelled, DataCorruption, InsufficientCapacity, InvalidInput, StorageError


def open_target(path: str, size: int, *, create: bool) -> tuple[int, bool]:
    """Open a restore target; return (fd, fresh). A new or empty regular file is fresh (sparse)."""
    flags = os.O_WRONLY | os.O_CLOEXEC
    existed = os.path.exists(path)
    if not existed and not create:
        raise InvalidInput(f"restore target {path!r} does not exist")
    fd = os.open(path, flags | (os.O_CREAT if create else 0), 0o600)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            fresh = not existed or st.st_size == 0
            if st.st_size < size:
                os.ftruncate(fd, size)
        elif stat.S_ISBLK(st.st_mode):
            fresh = False
            have = os.lseek(fd, 0, os.SEEK_END)
            if have < size:
                raise InsufficientCapacity(
                    f"restore target {path!r} holds {have} bytes; the backup needs at least {size}"
                )
        else:
            raise InvalidInput(f"restore target {path!r} is not a regular file or a block device")
    except BaseException:
        os.close(fd)
        raise
    return fd, fresh


def write_failure(exc: OSError, target: str, written: int, size: int) -> StorageError:
    """Pure: the typed error for a failed write into a restore target (a full filesystem or pool is
    InsufficientCapacity, exit 6; any other I/O error a BackendError), naming the target."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientCapacity(
            f"restore target {target!r} ran out of space after {written} of {size} bytes ({reason}); "
            "free space there or restore elsewhere"
        )
    return BackendError(f"writing restore target {target!r} failed after {written} of {size} bytes ({reason})")


@dataclass(frozen=True)
class PathTarget:
    """What a restore path was before the restore, to undo what the restore wrote on failure."""

    path: str
    existed: bool
    regular_size: int | None  # its size when it was a regular file

    @classmethod
    def probe(cls, path: str) -> "PathTarget":
        if not os.path.lexists(path):  # a dangling symlink exists: undo never removes what it names
            return cls(path, False, None)
        try:
            st = os.stat(path)
        except OSError:
            return cls(path, True, None)
        return cls(path, True, st.st_size if stat.S_ISREG(st.st_mode) else None)

    def undo(self) -> None:
        """Remove a file the restore created; cut an existing regular file back to its old size."""
        try:
            if not self.existed:
                os.unlink(self.path)
            elif self.regular_size is not None:
                os.truncate(self.path, self.regular_size)
        except OSError:
            pass


RUN_BYTES = 8 * 1024 * 1024  # at most this much decoded data waits for one large write


class WriteRun:
    """Chunks at consecutive positions written with one pwritev (packs hold a full backup's
    chunks in image order, so a pack read becomes a few large writes instead of one per chunk)."""

    def __init__(self, fd: int, chunk_size: int, max_bytes: int = RUN_BYTES) -> None:
        self.fd, self.chunk_size, self.max_bytes = fd, chunk_size, max_bytes
        self.first = -1
        self.buffers: list[bytes] = []
        self.size = 0

    def add(self, index: int, data: bytes) -> None:
        if not self.buffers or index != self.first + len(self.buffers) or self.size + len(data) > self.max_bytes:
            self.flush()
            self.first = index
        self.buffers.append(data)
        self.size += len(data)

    def flush(self) -> None:
        if self.buffers:
            offset = self.first * self.chunk_size
            write_all(self.fd, self.buffers, offset)
            start_writeback(self.fd, offset, self.size)
        self.buffers, self.size = [], 0


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a just-written range to disk now, without waiting (the kernel's
    POSIX_FADV_DONTNEED begins writeback of dirty pages and drops clean ones): the disk works
    while the next packs download, so the final fsync finds little left (it was 0.5 s per GiB
    here), and a restore does not fill the page cache with an image nobody reads."""
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass  # advice only


def write_all(fd: int, buffers: list[bytes], offset: int) -> None:
    """Write the buffers back to back at offset (one pwritev; the rest again after a short write)."""
    done = os.pwritev(fd, buffers, offset)
    rest = memoryview(b"".join(buffers))[done:] if done < sum(len(b) for b in buffers) else b""
    while rest:  # a short write: a full disk raises on the retry
        n = os.pwrite(fd, rest, offset + done)
        if n <= 0:
            raise OSError(errno.ENOSPC, f"no space left writing at {offset + done}")
        done += n
        rest = rest[n:]


def check_target_size(target_bytes: int, needed: int, what: str) -> None:
    if target_bytes < needed:
        raise InsufficientCapacity(f"{what} is {target_bytes} bytes; the backup needs at least {needed} (restore to a larger or a new volume)")


def restore_to_fd(
    repo: Repository,
    manifest: Manifest,
    fd: int,
    target: str,
    *,
    fresh: bool,
    downloaders: int = 4,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    progress_interval: float = 0.25,
    max_gap: int = 1024 * 1024,
    on_first_write: Callable[[], None] | None = None,
) -> RestoreResult:
    """Write every chunk of manifest to fd. Zero chunks are skipped on a fresh target, else written.
    ``on_first_write`` is called (once or more, from any thread) before the target's first byte changes.

    The needed chunks are grouped by pack into ranged reads (neighbours less than max_gap
    apart share one read, at most one pack per read), downloaded in parallel; every chunk's
    tag, length and content address are checked before it is written.
    """
    started = time.monotonic()
    lock = threading.Lock()
    state = {"done": 0, "written": 0, "skipped": 0, "downloaded": 0, "chunks": 0, "last": 0.0}
    local = threading.local()
    zero_block = bytes(manifest.chunk_size)
    stores: list[Any] = []

    def report(force: bool = False) -> None:
        if progress is None:
            return
        now = time.monotonic()
        if not force and now - state["last"] < progress_interval:
            return
        state["last"] = now
        elapsed = max(now - started, 1e-6)
        rate = state["done"] / elapsed
        eta = (manifest.size - state["done"]) / rate if rate > 0 else None
        progress(Progress("restore", manifest.size, state["done"], downloaded=state["downloaded"], rate=rate, eta_seconds=eta))

    def store() -> Any:
        s = getattr(local, "store", None)
        if s is None:
            s = local.store = repo.clone_store()
            with lock:
                stores.append(s)
        return s

    # one reusable buffer per downloader: a whole pack (the packer overshoots pack_size by less than a chunk)
    max_read = max(repo.pack_size, manifest.chunk_size) + 2 * manifest.chunk_size
    where: dict[str, list[int]] = {}
    refs: dict[str, ChunkRef] = {}
    for index, ref in enumerate(manifest.chunks):
        if ref is not None:
            where.setdefault(ref.id, []).append(index)
            refs[ref.id] = ref
    def touching() -> None:
        if on_first_write is not None:
            on_first_write()

    try:
        for index, ref in enumerate(manifest.chunks):  # zero chunks first: no download needed
            if ref is None:
                length = manifest.chunk_length(index)
                if not fresh:
                    touching()
                    os.pwrite(fd, zero_block[:length], index * manifest.chunk_size)
                state["done"] += length
                state["written" if not fresh else "skipped"] += length
    except OSError as exc:
        raise write_failure(exc, target, state["written"], manifest.size) from None

    def fetch(read: RangeRead) -> None:
        """Download one range and write each chunk in it wherever the image holds it."""
        if cancel is not None and cancel.is_set():
            return
        buf = getattr(local, "buf", None)
        if buf is None or len(buf) < read.length:
            buf = local.buf = bytearray(max(read.length, max_read))
        body = memoryview(buf)[: read.length]
        repo.read_range_into(store(), read.object, read.start, body)
        run = WriteRun(fd, manifest.chunk_size)
        for cid, loc in read.entries:
            indexes = where[cid]
            length = manifest.chunk_length(indexes[0])
            try:
                # a plain raw chunk stays a view into this thread's pack buffer: written (run.flush)
                # before the buffer takes the next pack
                data = repo.open_chunk(slice_entry(read, body, loc), refs[cid], length, borrow=True)
            except DataCorruption as exc:  # where it was read: the caller quarantines that copy
                raise DataCorruption(exc.message, chunk=cid, pack=loc.pack_id) from None
            touching()
            for index in indexes:
                run.add(index, data)
            with lock:
                state["done"] += length * len(indexes)
                state["written"] += length * len(indexes)
                state["downloaded"] += loc.length
                state["chunks"] += 1
        run.flush()
        report()

    try:
        _download_all(repo, manifest, target, where, downloaders, fetch, stores, cancel, max_gap, max_read)
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"restore of backup {manifest.backup_id} to {target!r} cancelled; the target is incomplete")
        os.fsync(fd)
    except OSError as exc:
        raise write_failure(exc, target, state["written"], manifest.size) from None
    report(force=True)
    return RestoreResult(
        backup_id=manifest.backup_id,
        target=target,
        size_bytes=manifest.size,
        written_bytes=state["written"],
        skipped_zero_bytes=state["skipped"],
        chunks_downloaded=state["chunks"],
        seconds=round(time.monotonic() - started, 3),
    )


def _download_all(repo: Repository, manifest: Manifest, target: str, where: dict[str, list[int]], downloaders: int,
                  fetch: Any, stores: list[Any], cancel: threading.Event | None, max_gap: int, max_read: int) -> None:
    try:
        index_store = repo.clone_store()
        stores.append(index_store)
        repo_index = repo.load_index(index_store, threads=downloaders)
        missing = sorted(cid for cid in where if cid not in repo_index.locations)
        if missing:
            raise DataCorruption(f"chunk {missing[0]} is missing from repository {repo.url} (not in any index)", chunk=missing[0])
        reads = plan_reads(((cid, repo_index.locations[cid]) for cid in where), max_gap=max_gap, max_length=max_read)
        with ThreadPoolExecutor(max_workers=downloaders, thread_name_prefix="restore") as pool:
            pending: set[Future[None]] = set()
            try:
                for read in reads:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(f"restore of backup {manifest.backup_id} to {target!r} cancelled; the target is incomplete")
                    while len(pending) >= downloaders + 1:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in finished:
                            f.result()
                    pending.add(pool.submit(fetch, read))
                for f in pending:
                    f.result()
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
    finally:
        for s in stores:
            s.close()
