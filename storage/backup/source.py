"""Reading a source image: its size and its data extents (SEEK_DATA/SEEK_HOLE)."""

from __future__ import annotations

import errno
import os
import stat

from storage.backup.planner import Range
from storage.errors import InvalidInput, NotFound


def open_readonly(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"backup source {path!r} does not exist; accepted: a volume, a snapshot, a block device or an image file") from None
    except IsADirectoryError:
        raise InvalidInput(f"backup source {path!r} is a directory; accepted: a block device or an image file") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        os.close(fd)
        raise InvalidInput(f"backup source {path!r} is not a regular file or a block device")
    return fd


def image_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


def data_extents(fd: int, size: int) -> list[Range] | None:
    """Data ranges of a sparse file via SEEK_DATA/SEEK_HOLE; None when the fd cannot tell (all data)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return None
    extents: list[Range] = []
    pos = 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no more data after pos
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            if end > start:
                extents.append((start, end - start))
            pos = end
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise
    return extents


def read_exact(fd: int, offset: int, length: int) -> bytes:
    """pread until length bytes are read; a short source is padded with zeros (a shrinking file)."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            parts.append(bytes(length - got))
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
