"""Chunk planning (pure): which chunks to read, which are zero, which are unchanged.

Inputs are byte ranges, sorted and non-overlapping: the data extents of the source (from
SEEK_DATA/SEEK_HOLE; None = all data) and the ranges changed since a base snapshot (None =
unknown, read everything). Unchanged chunks take their address from the previous manifest.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from storage.backup.format import ChunkRef

Range = tuple[int, int]  # (offset, length)


class Action(str, enum.Enum):
    ZERO = "zero"  # no data extent in the chunk: a hole, recorded not stored
    READ = "read"  # read, hash, maybe upload
    REUSE = "reuse"  # unchanged since the base snapshot: the previous manifest's address


@dataclass(frozen=True)
class PlannedChunk:
    index: int
    offset: int
    length: int
    action: Action
    ref: ChunkRef | None = None  # for REUSE: the previous chunk (None = it was zero)


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


def normalize(ranges: Sequence[Range], size: int) -> list[Range]:
    """Sort, clip to [0, size), drop empties and merge overlapping or touching ranges."""
    out: list[Range] = []
    for off, length in sorted(ranges):
        start, end = max(0, off), min(size, off + length)
        if end <= start:
            continue
        if out and start <= out[-1][0] + out[-1][1]:
            prev_start, prev_len = out[-1]
            out[-1] = (prev_start, max(prev_start + prev_len, end) - prev_start)
        else:
            out.append((start, end - start))
    return out


def chunks_touched(ranges: Sequence[Range], size: int, chunk_size: int) -> set[int]:
    """Indexes of the chunks that intersect any of the ranges."""
    touched: set[int] = set()
    for off, length in normalize(ranges, size):
        touched.update(range(off // chunk_size, (off + length - 1) // chunk_size + 1))
    return touched


def plan_chunks(
    size: int,
    chunk_size: int,
    *,
    data_extents: Sequence[Range] | None = None,
    changed: Sequence[Range] | None = None,
    previous: Sequence[ChunkRef | None] | None = None,
    previous_size: int | None = None,
    is_stored: Callable[[str], bool] = lambda _id: True,
) -> Iterator[PlannedChunk]:
    """Yield one PlannedChunk per chunk of a size-byte image, in order.

    A chunk is REUSE only when changed ranges are known, the previous manifest has a
    chunk of the same length at that index, the chunk is outside every changed range and
    the previous chunk is still stored (``is_stored``); else READ, or ZERO without data.
    """
    with_data = None if data_extents is None else chunks_touched(data_extents, size, chunk_size)
    changed_set = None if changed is None else chunks_touched(changed, size, chunk_size)
    for index in range(chunk_count(size, chunk_size)):
        offset = index * chunk_size
        length = min(chunk_size, size - offset)
        if with_data is not None and index not in with_data:
            yield PlannedChunk(index, offset, length, Action.ZERO)
            continue
        if changed_set is not None and previous is not None and previous_size is not None and index not in changed_set:
            same_length = index < len(previous) and min(chunk_size, previous_size - offset) == length
            if same_length:
                ref = previous[index]
                if ref is None or is_stored(ref.id):
                    yield PlannedChunk(index, offset, length, Action.REUSE, ref)
                    continue
        yield PlannedChunk(index, offset, length, Action.READ)
