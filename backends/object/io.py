"""Stream helpers shared by the network stores: rewindable, hashing windows over a source.

A retried upload must re-send exactly the same bytes, so every body handed to a client
library is a ``HashingWindow``: a read-only, seekable view of ``length`` bytes of a seekable
source starting at ``start``, computing the MD5 of what it delivered (restarted on rewind).
Non-seekable sources are first spooled (``spool``) into memory or a temp file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from typing import Any, BinaryIO

from storage.errors import InvalidInput

SPOOL_IN_MEMORY = 64 * 1024 * 1024


class HashingWindow(io.RawIOBase):
    """``length`` bytes of ``source`` from ``start``: read, tell, seek, MD5 of what was read."""

    def __init__(self, source: BinaryIO, start: int, length: int, *, hashing: bool = True) -> None:
        super().__init__()
        self._src = source
        self._start = start
        self._length = length
        self._pos = 0
        self._hashing = hashing  # False when the caller already knows the MD5
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._src.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:  # some clients size the body with len()
        return self._length

    def __bool__(self) -> bool:  # python-swiftclient treats a falsy body as "nothing to send"
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += self._length
        if offset != 0 and offset != self._pos:
            raise io.UnsupportedOperation("a hashing window can only rewind to its start")
        if offset == 0:
            self._pos = 0
            self._md5 = hashlib.md5(usedforsecurity=False)
            self._src.seek(self._start)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        remaining = self._length - self._pos
        if remaining <= 0:
            return b""
        want = remaining if n is None or n < 0 else min(n, remaining)
        data = self._src.read(want)
        if len(data) < want and not data:
            raise InvalidInput(
                f"source ended after {self._pos} of the {self._length} bytes announced", field="length"
            )
        self._pos += len(data)
        if self._hashing:
            self._md5.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        """MD5 of the bytes read since the last rewind (the whole window once fully read)."""
        return self._md5.hexdigest()

    @property
    def complete(self) -> bool:
        return self._pos == self._length


def is_seekable(data: Any) -> bool:
    try:
        return bool(data.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def remaining_length(data: BinaryIO) -> int:
    """Bytes from the current position to the end of a seekable stream."""
    here = data.tell()
    end = data.seek(0, os.SEEK_END)
    data.seek(here)
    return end - here


def as_seekable(data: bytes | bytearray | memoryview | BinaryIO, length: int | None) -> tuple[BinaryIO, int, int, bool]:
    """(seekable source, start offset, length, must_close) for bytes or a stream.

    Bytes become a BytesIO; a seekable stream is used in place from its current position;
    a non-seekable one is spooled (memory up to 64 MiB, then a temp file).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        if length is not None and length != len(data):
            raise InvalidInput(f"length {length} does not match the {len(data)} bytes given", field="length")
        return io.BytesIO(data), 0, len(data), True
    if not hasattr(data, "read"):
        raise InvalidInput(
            f"object data of type {type(data).__name__} is not accepted; accepted: bytes or a binary stream", field="data"
        )
    if is_seekable(data):
        start = data.tell()
        available = remaining_length(data)
        if length is None:
            return data, start, available, False
        if available < length:
            raise InvalidInput(f"stream holds {available} bytes but length {length} was announced", field="length")
        return data, start, length, False
    spooled = spool(data, length)
    size = remaining_length(spooled)
    if length is not None and size != length:
        spooled.close()
        raise InvalidInput(f"stream ended after {size} of the {length} bytes announced", field="length")
    return spooled, 0, size, True


def spool(data: BinaryIO, length: int | None) -> BinaryIO:
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - caller closes
    copied = 0
    while length is None or copied < length:
        block = data.read(1024 * 1024 if length is None else min(1024 * 1024, length - copied))
        if not block:
            break
        out.write(block)
        copied += len(block)
    out.seek(0)
    return out  # type: ignore[return-value]


class IterReader(io.RawIOBase):
    """A read-only, non-seekable stream over an iterator of byte blocks (a body whose length is
    not known until it ends: ``put_stream``). read(n) returns at most n bytes, never joining blocks."""

    def __init__(self, blocks: Any) -> None:
        super().__init__()
        self._blocks = iter(blocks)
        self._rest: memoryview = memoryview(b"")

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not len(self._rest):
            block = next(self._blocks, None)
            if block is None:
                return b""
            self._rest = memoryview(block)
        if n is None or n < 0 or n >= len(self._rest):
            out, self._rest = self._rest, memoryview(b"")
        else:
            out, self._rest = self._rest[:n], self._rest[n:]
        whole = isinstance(out.obj, bytes) and len(out) == len(out.obj)
        return out.obj if whole else out.tobytes()  # a whole block is handed on without a copy
