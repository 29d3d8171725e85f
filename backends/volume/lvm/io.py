"""Block-device I/O of the LVM backend: zero, discard, copy (with progress)."""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Callable

CHUNK = 4 * 1024 * 1024
BLKDISCARD = 0x1277  # _IO(0x12, 119)

Progress = Callable[[int, int], None] | None


def zero_device(path: str, length: int, progress: Progress = None) -> None:
    """Overwrite the first length bytes of a device with zeros, then flush."""
    zeros = bytes(CHUNK)
    fd = os.open(path, os.O_WRONLY)
    try:
        done = 0
        while done < length:
            n = os.pwrite(fd, zeros[: min(CHUNK, length - done)], done)
            done += n
            if progress:
                progress(done, length)
        os.fsync(fd)
    finally:
        os.close(fd)


def discard_device(path: str, length: int, progress: Progress = None) -> None:
    """Unmap the whole device (BLKDISCARD); a thin LV returns its blocks to the pool."""
    fd = os.open(path, os.O_WRONLY)
    try:
        fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", 0, length))
    finally:
        os.close(fd)
    if progress:
        progress(length, length)


def copy_device(source: str, target: str, length: int, target_length: int | None = None, progress: Progress = None) -> None:
    """Copy length bytes from source to target; zero the target beyond that up to target_length."""
    total = max(length, target_length or length)
    src = os.open(source, os.O_RDONLY)
    dst = os.open(target, os.O_WRONLY)
    try:
        done = 0
        while done < length:
            block = os.pread(src, min(CHUNK, length - done), done)
            if not block:
                raise OSError(f"{source} ended at {done} of {length} bytes")
            os.pwrite(dst, block, done)
            done += len(block)
            if progress:
                progress(done, total)
        zeros = bytes(CHUNK)
        while done < total:
            n = os.pwrite(dst, zeros[: min(CHUNK, total - done)], done)
            done += n
            if progress:
                progress(done, total)
        os.fsync(dst)
    finally:
        os.close(src)
        os.close(dst)
