"""Copying and wiping sparse image files: FICLONE reflinks, hole-preserving copies, FIEMAP.

Pure byte plumbing for the ``file`` backend; imports nothing from storage but errors.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

from storage.errors import BackendError, InsufficientCapacity

FICLONE = 0x40049409  # _IOW(0x94, 9, int)
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNKNOWN = 0x2
FIEMAP_EXTENT_DELALLOC = 0x4
FIEMAP_EXTENT_ENCODED = 0x8
FIEMAP_EXTENT_NOT_ALIGNED = 0x100
FIEMAP_EXTENT_DATA_INLINE = 0x200
FIEMAP_EXTENT_SHARED = 0x2000
# An extent whose physical address cannot be compared with another file's.
_UNCOMPARABLE = (
    FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_NOT_ALIGNED
    | FIEMAP_EXTENT_DATA_INLINE
)
COPY_CHUNK = 8 * 1024 * 1024


def reflink_supported(directory: Path) -> bool:
    """True when FICLONE works between two files in ``directory`` (xfs reflink=1, btrfs)."""
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / f".reflink-probe-{os.getpid()}-a"
    dst = directory / f".reflink-probe-{os.getpid()}-b"
    try:
        with open(src, "wb") as f:
            f.write(b"\0" * 4096)
        with open(src, "rb") as fs, open(dst, "wb") as fd:
            fcntl.ioctl(fd.fileno(), FICLONE, fs.fileno())
        return True
    except OSError:
        return False
    finally:
        for p in (src, dst):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def data_segments(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of the data regions of a sparse file, via SEEK_DATA/SEEK_HOLE."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no more data
                return
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        if end > start:
            yield start, end - start
        pos = end


def copy_file(src: Path, dst: Path, *, reflink: bool, size_bytes: int | None = None) -> None:
    """Copy src to a new file dst (reflink or sparse copy), then grow it to size_bytes if given.

    The copy goes to a temporary name and is renamed into place, so dst never holds a
    half-written image under its final name.
    """
    tmp = dst.with_name(dst.name + ".partial")
    try:
        with open(src, "rb") as fs, open(tmp, "wb") as fd:
            if reflink:
                fcntl.ioctl(fd.fileno(), FICLONE, fs.fileno())
            else:
                src_size = os.fstat(fs.fileno()).st_size
                for offset, length in data_segments(fs.fileno(), src_size):
                    _copy_range(fs.fileno(), fd.fileno(), offset, length)
                os.ftruncate(fd.fileno(), src_size)
            if size_bytes is not None and size_bytes > os.fstat(fd.fileno()).st_size:
                os.ftruncate(fd.fileno(), size_bytes)
            os.fsync(fd.fileno())
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise InsufficientCapacity(f"no space left copying {src.name} to {dst.name} in {dst.parent}") from None
        raise BackendError(f"copying {src} to {dst} failed: {exc.strerror or exc}") from None


def _copy_range(fd_in: int, fd_out: int, offset: int, length: int) -> None:
    done = 0
    while done < length:
        n = min(COPY_CHUNK, length - done)
        try:
            copied = os.copy_file_range(fd_in, fd_out, n, offset + done, offset + done)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            data = os.pread(fd_in, n, offset + done)
            copied = os.pwrite(fd_out, data, offset + done)
        if copied <= 0:
            raise OSError(errno.EIO, f"short copy at offset {offset + done}")
        done += copied


def zero_data(path: Path, progress: Callable[[int, int], None] | None = None) -> None:
    """Overwrite every data region of the file with zeros (holes are already zero), then fsync."""
    zeros = bytes(COPY_CHUNK)
    with open(path, "r+b") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        if progress:
            progress(0, size)
        for offset, length in list(data_segments(fd, size)):
            done = 0
            while done < length:
                n = min(COPY_CHUNK, length - done)
                os.pwrite(fd, zeros[:n], offset + done)
                done += n
                if progress:
                    progress(offset + done, size)
        os.fsync(fd)
        if progress:
            progress(size, size)


# -- FIEMAP --------------------------------------------------------------------

_FIEMAP_HDR = struct.Struct("=QQIIII")  # fm_start fm_length fm_flags fm_mapped_extents fm_extent_count fm_reserved
_FIEMAP_EXT = struct.Struct("=QQQQQIIII")  # logical physical length reserved64[2] flags reserved[3]
_BATCH = 512


def fiemap(path: Path) -> list[tuple[int, int, int, int]]:
    """Extents of a file as (logical, physical, length, flags), after syncing delayed allocation."""
    out: list[tuple[int, int, int, int]] = []
    with open(path, "rb") as f:
        start = 0
        while True:
            buf = ctypes.create_string_buffer(_FIEMAP_HDR.size + _BATCH * _FIEMAP_EXT.size)
            _FIEMAP_HDR.pack_into(buf, 0, start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0, _BATCH, 0)
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf, True)
            mapped = _FIEMAP_HDR.unpack_from(buf, 0)[3]
            if mapped == 0:
                return out
            last = False
            for i in range(mapped):
                logical, physical, length, _r1, _r2, flags, *_ = _FIEMAP_EXT.unpack_from(
                    buf, _FIEMAP_HDR.size + i * _FIEMAP_EXT.size
                )
                out.append((logical, physical, length, flags))
                last = bool(flags & FIEMAP_EXTENT_LAST)
                start = logical + length
            if last:
                return out


def changed_extents(
    base: list[tuple[int, int, int, int]], new: list[tuple[int, int, int, int]]
) -> list[tuple[int, int]]:
    """Byte ranges of ``new`` that may differ from ``base`` (pure function over FIEMAP extents).

    A range is unchanged when both files map it to the same physical blocks (a reflink shared
    extent) or both have a hole there. Everything else, including data in ``base`` that became
    a hole in ``new``, is reported. Output is sorted and merged.
    """
    ranges: list[tuple[int, int]] = []
    for logical, physical, length, flags in new:
        pieces = [(logical, logical + length)]
        if not flags & _UNCOMPARABLE:
            for b_log, b_phys, b_len, b_flags in base:
                if b_flags & _UNCOMPARABLE or b_phys - b_log != physical - logical:
                    continue
                pieces = _subtract(pieces, b_log, b_log + b_len)
                if not pieces:
                    break
        ranges.extend((s, e - s) for s, e in pieces)
    # data in base where new has a hole: it now reads as zeros
    for b_log, _b_phys, b_len, _flags in base:
        holes = [(b_log, b_log + b_len)]
        for logical, _physical, length, _f in new:
            holes = _subtract(holes, logical, logical + length)
            if not holes:
                break
        ranges.extend((s, e - s) for s, e in holes)
    return merge_ranges(ranges)


def _subtract(pieces: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in pieces:
        if end <= s or start >= e:
            out.append((s, e))
            continue
        if s < start:
            out.append((s, start))
        if end < e:
            out.append((end, e))
    return out


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, length in sorted(r for r in ranges if r[1] > 0):
        if merged and start <= merged[-1][0] + merged[-1][1]:
            prev_start, prev_len = merged[-1]
            merged[-1] = (prev_start, max(prev_len, start + length - prev_start))
        else:
            merged.append((start, length))
    return merged
