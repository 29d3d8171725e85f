"""The data path of a live restore: a volume usable while it is restored (``backup restore --live``).

``LiveVolume`` sits between NBD requests (storage/nbd/live_plugin.py) and the volume's file:

- a read of a chunk not yet restored first fetches it from the backup (verified, through
  ``BackupReader``), writes it to the volume and marks it restored, then reads the volume;
- a write first makes every chunk it touches restored (a chunk it covers wholly is only marked,
  one it covers partly is fetched and written, then merged by the write), makes those bits
  durable (volume synced, bitmap fsync'd) and then writes to the volume: an acknowledged write is
  never overwritten by the copy, not even by a copy resumed after a crash;
- ``copy_all`` (the background copier) restores the remaining chunks in order, skipping those
  already restored, syncing the volume and persisting the bitmap about once a second.

Every chunk has its own lock: a read, a write and the copier never work on one chunk at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.nbd.bitmap import RestoreBitmap, covered
from storage.nbd.reader import BackupReader


@dataclass
class LiveStats:
    demand_chunks: int = 0  # restored because a client read them first
    merged_chunks: int = 0  # restored because a client wrote part of them
    claimed_chunks: int = 0  # wholly overwritten by a client before the copy reached them
    copied_chunks: int = 0  # restored by the background copy
    syncs: int = 0


class LiveVolume:
    """A volume file being restored from a backup while it is read and written. Thread-safe."""

    def __init__(self, reader: BackupReader, volume_path: str, bitmap: RestoreBitmap, *, copy_rate: int = 0,
                 sync_interval: float = 1.0, window: int = 16) -> None:
        if bitmap.n != reader.chunk_count:
            raise ValueError(f"bitmap of {bitmap.n} chunks for a backup of {reader.chunk_count}")
        self.reader, self.bitmap = reader, bitmap
        self.copy_rate, self.sync_interval, self.window = copy_rate, sync_interval, window
        self.fd = os.open(volume_path, os.O_RDWR | os.O_CLOEXEC)
        self.stats = LiveStats()
        self._locks = [threading.Lock() for _ in range(bitmap.n)]
        self._sync_lock = threading.Lock()
        self._zero = bytes(reader.chunk_size)

    @property
    def size(self) -> int:
        return self.reader.size

    @property
    def chunk_size(self) -> int:
        return self.reader.chunk_size

    # -- one chunk (the caller holds its lock) -----------------------------------------------
    def _restore(self, index: int) -> None:
        offset = index * self.chunk_size
        length = min(self.chunk_size, self.size - offset)
        if self.reader.manifest.chunks[index] is None:
            data: bytes | memoryview = memoryview(self._zero)[:length]
        else:
            data = self.reader.read(offset, length)  # verified; DataCorruption/BackendError otherwise
        done = 0
        while done < length:
            done += os.pwrite(self.fd, data[done:], offset + done)
        self.bitmap.mark(index)

    def _ensure(self, index: int) -> bool:
        """Restore one chunk unless it is; True when this call restored it."""
        if self.bitmap.is_set(index):
            return False
        with self._locks[index]:
            if self.bitmap.is_set(index):
                return False
            self._restore(index)
            return True

    # -- NBD requests ------------------------------------------------------------------------
    def read_into(self, buf: Any, offset: int) -> None:
        view = memoryview(buf).cast("B")
        for c in covered(offset, len(view), self.chunk_size, self.size):
            if self._ensure(c.index):
                self.stats.demand_chunks += 1
        done = 0
        while done < len(view):
            n = os.preadv(self.fd, [view[done:]], offset + done)
            if n <= 0:
                raise OSError(5, f"short read of the volume at {offset + done}")
            done += n

    def write(self, data: Any, offset: int, *, fua: bool = False) -> None:
        view = memoryview(data).cast("B")
        covers = covered(offset, len(view), self.chunk_size, self.size)
        locks = [self._locks[c.index] for c in covers]  # ascending order: no deadlock between writes
        for lock in locks:
            lock.acquire()
        try:
            for c in covers:
                if self.bitmap.is_set(c.index):
                    continue
                if c.whole:
                    self.bitmap.mark(c.index)  # every byte is the client's: nothing to fetch
                    self.stats.claimed_chunks += 1
                else:
                    self._restore(c.index)  # the bytes the write leaves are the backup's
                    self.stats.merged_chunks += 1
            if not all(self.bitmap.is_durable(c.index) for c in covers):
                self.sync()  # the marks are on disk before the write: a resumed copy skips these chunks
            done = 0
            while done < len(view):
                done += os.pwrite(self.fd, view[done:], offset + done)
            if fua:
                os.fdatasync(self.fd)
        finally:
            for lock in reversed(locks):
                lock.release()

    def sync(self) -> None:
        """Volume data first, then the bits taken before it: a durable bit never lies."""
        with self._sync_lock:
            snapshot = self.bitmap.snapshot()
            os.fdatasync(self.fd)
            self.bitmap.persist(snapshot)
            self.stats.syncs += 1

    # -- the background copy -----------------------------------------------------------------
    def copy_all(self, stop: threading.Event, on_progress: Callable[[int], None] | None = None) -> bool:
        """Restore every chunk not restored yet, in order; True when the whole volume is restored
        (and durable), False when stopped. A chunk that cannot be read intact raises."""
        started, copied_bytes, last_sync = time.monotonic(), 0, time.monotonic()
        frontier = 0
        for index in range(self.bitmap.n):
            if stop.is_set():
                self.sync()
                return False
            if self.bitmap.is_set(index):
                continue
            if index >= frontier:  # fetch the next window of chunks still needed in the background
                frontier = min(self.bitmap.n, index + self.window)
                self.reader.prefetch(i for i in range(index, frontier)
                                     if not self.bitmap.is_set(i) and self.reader.manifest.chunks[i] is not None)
            if self._ensure(index):
                self.stats.copied_chunks += 1
                copied_bytes += self.chunk_size
            if time.monotonic() - last_sync >= self.sync_interval:
                self.sync()
                last_sync = time.monotonic()
                if on_progress is not None:
                    on_progress(self.bitmap.durable_count())
            if self.copy_rate > 0:  # keep the copy at copy_rate bytes/s, leaving the rest to clients
                ahead = copied_bytes / self.copy_rate - (time.monotonic() - started)
                if ahead > 0:
                    stop.wait(ahead)
        self.sync()
        return self.bitmap.durable_count() == self.bitmap.n

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self.fd)
            self.bitmap.close()
