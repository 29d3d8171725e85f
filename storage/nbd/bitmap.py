"""The restored-chunk bitmap of a live restore: one bit per chunk, persisted (fsync'd) in a small file.

A set bit means "the volume holds this chunk's final bytes: the backup's, or a client's write
over them"; the background copy never writes a chunk whose bit is set. Bits are set in memory
first (``mark``) and made durable with ``persist`` only after the volume's own data is synced,
so a crash can lose a bit (the chunk is restored again, harmless: nothing but the backup's bytes
were ever there unacknowledged) but never keep a bit whose data is lost. A client write makes its
bits durable before it is acknowledged, so a resumed copy cannot overwrite an acknowledged write.

``covered`` is the pure decision of which chunks a request touches and whether wholly.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from storage.errors import InvalidInput

MAX_CHUNKS = 64 * 1024 * 1024  # 64 Ti of 1 MiB chunks: an 8 MiB bitmap


@dataclass(frozen=True)
class Cover:
    """Chunk index of a request; whole when the request covers every byte of that chunk."""

    index: int
    whole: bool


def covered(offset: int, length: int, chunk_size: int, size: int) -> list[Cover]:
    """Pure: the chunks a request of length bytes at offset touches (the last chunk may be short)."""
    if offset < 0 or length < 0 or offset + length > size:
        raise ValueError(f"request of {length} bytes at {offset} is outside a {size}-byte image")
    if length == 0:
        return []
    first, last = offset // chunk_size, (offset + length - 1) // chunk_size
    out = []
    for index in range(first, last + 1):
        start = index * chunk_size
        end = min(start + chunk_size, size)
        out.append(Cover(index, offset <= start and offset + length >= end))
    return out


def count_bits(data: bytes | bytearray, n: int) -> int:
    """Pure: the set bits among the first n bits of data (little-endian bit order in each byte)."""
    full, rest = divmod(n, 8)
    total = sum(int.bit_count(b) for b in data[:full])
    if rest:
        total += int.bit_count(data[full] & ((1 << rest) - 1))
    return total


class RestoreBitmap:
    """The bitmap of n chunks in memory, with its file (created zeroed, never shrunk)."""

    def __init__(self, path: Path, n: int) -> None:
        if not 0 < n <= MAX_CHUNKS:
            raise InvalidInput(f"chunk count {n} is not accepted; accepted: 1 to {MAX_CHUNKS}")
        self.path, self.n = Path(path), n
        self._lock = threading.Lock()
        nbytes = (n + 7) // 8
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        have = os.fstat(self._fd).st_size
        if have not in (0, nbytes):
            os.close(self._fd)
            raise InvalidInput(f"restore bitmap {str(self.path)!r} holds {have} bytes; {n} chunks need {nbytes}")
        if have == 0:
            os.pwrite(self._fd, bytes(nbytes), 0)
            os.fsync(self._fd)
        self.bits = bytearray(os.pread(self._fd, nbytes, 0))  # what is in memory (may be ahead of the file)
        self._durable = bytearray(self.bits)  # what the file holds

    def is_set(self, index: int) -> bool:
        return bool(self.bits[index >> 3] & (1 << (index & 7)))

    def is_durable(self, index: int) -> bool:
        return bool(self._durable[index >> 3] & (1 << (index & 7)))

    def mark(self, index: int) -> None:
        with self._lock:
            self.bits[index >> 3] |= 1 << (index & 7)

    def count(self) -> int:
        with self._lock:
            return count_bits(self.bits, self.n)

    def durable_count(self) -> int:
        with self._lock:
            return count_bits(self._durable, self.n)

    def complete(self) -> bool:
        return self.count() == self.n

    def snapshot(self) -> bytes:
        """The bits as they are now: take it BEFORE syncing the volume, persist it after."""
        with self._lock:
            return bytes(self.bits)

    def persist(self, snapshot: bytes) -> None:
        """Write the bytes of snapshot that the file does not hold yet and fsync the file. The
        caller synced the volume after taking snapshot (a durable bit promises durable data)."""
        with self._lock:
            changed = [i for i, (a, b) in enumerate(zip(snapshot, self._durable)) if a | b != b]
            if not changed:
                return
            start, end = changed[0], changed[-1] + 1
            merged = bytes(a | b for a, b in zip(snapshot[start:end], self._durable[start:end]))  # bits only ever get set
            os.pwrite(self._fd, merged, start)
            os.fdatasync(self._fd)
            self._durable[start:end] = merged

    def close(self) -> None:
        os.close(self._fd)


def read_count(path: Path, n: int) -> int:
    """The durable restored-chunk count in a bitmap file (what another process shows as progress)."""
    with open(path, "rb") as f:
        return count_bits(f.read((n + 7) // 8), n)
