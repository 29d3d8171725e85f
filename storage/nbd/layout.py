"""Pure decisions of the NBD export: which chunks a read covers, the extents, the read-ahead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Piece:
    """Part of a read that lies in one chunk: bytes [start, start + length) of chunk index,
    copied to position out of the caller's buffer."""

    index: int
    start: int
    length: int
    out: int


def pieces(offset: int, length: int, chunk_size: int, size: int) -> list[Piece]:
    """The chunk pieces of a read of length bytes at offset; the read must lie inside the image."""
    if offset < 0 or length < 0 or offset + length > size:
        raise ValueError(f"read of {length} bytes at {offset} is outside a {size}-byte image")
    out: list[Piece] = []
    pos = offset
    while pos < offset + length:
        index, start = divmod(pos, chunk_size)
        n = min(chunk_size - start, offset + length - pos)
        out.append(Piece(index, start, n, pos - offset))
        pos += n
    return out


def extents(chunks: Sequence[Any], chunk_size: int, size: int, offset: int, count: int) -> list[tuple[int, int, bool]]:
    """(offset, length, zero) runs covering [offset, offset + count) clipped to the image: zero is
    True where the manifest holds a zero run (a hole or all-zero chunk), merged with neighbours."""
    end = min(offset + count, size)
    out: list[tuple[int, int, bool]] = []
    pos = offset
    while pos < end:
        index = pos // chunk_size
        stop = min((index + 1) * chunk_size, end)
        zero = chunks[index] is None
        if out and out[-1][2] == zero and out[-1][0] + out[-1][1] == pos:
            out[-1] = (out[-1][0], stop - out[-1][0], zero)
        else:
            out.append((pos, stop - pos, zero))
        pos = stop
    return out


@dataclass
class ReadAhead:
    """Per-connection sequential detector. A read starting near where the previous ones ended
    (clients such as qemu-img keep several requests in flight, so slightly out of order) is
    sequential; after ``min_streak`` of them the chunks ahead are fetched in batches of
    ``window``, the next batch once the reader is half-way into the last one."""

    chunk_size: int
    chunk_count: int
    window: int = 8
    min_streak: int = 2
    end: int = -1  # the furthest byte read so far
    streak: int = 0
    frontier: int = 0  # first chunk index read-ahead has not asked for

    def after_read(self, offset: int, length: int) -> range:
        """Note a read; return the chunk indexes to fetch ahead (empty when random)."""
        slack = self.window * self.chunk_size
        if self.end >= 0 and self.end - slack <= offset <= self.end + slack:
            self.streak += 1
        else:
            self.streak, self.frontier = 0, 0
        self.end = max(self.end, offset + length) if self.streak else offset + length
        if self.window <= 0 or self.streak < self.min_streak:
            return range(0)
        last = (self.end - 1) // self.chunk_size
        if self.frontier - last > self.window // 2:
            return range(0)
        start = max(self.frontier, last + 1)
        stop = min(self.chunk_count, start + self.window)
        self.frontier = max(self.frontier, stop)
        return range(start, stop) if start < stop else range(0)
