"""A GET body read to its announced length, its MD5 checked against the ETag at the end.

Shared by the Swift and S3 readers: each supplies ``_read_raw(n)`` (one read from its HTTP
response, its own error mapping); counting, the MD5 and the end checks are here once.
"""

from __future__ import annotations

import hashlib
from typing import Any

from backends.object.base import ObjectInfo, ObjectReader
from storage.errors import BackendError, DataCorruption

IO_CHUNK = 1024 * 1024


class CheckedReader(ObjectReader):
    """Reads at most ``expected`` bytes; a short body is a BackendError, an MD5 that differs from
    ``info.etag`` (a whole simple object; ``verify_md5``) is DataCorruption."""

    def __init__(self, info: ObjectInfo, expected: int, verify_md5: bool) -> None:
        super().__init__(info)
        self._expected = expected
        self._got = 0
        self._md5 = hashlib.md5(usedforsecurity=False) if verify_md5 else None
        self._done = expected == 0

    def _read_raw(self, n: int) -> bytes:
        raise NotImplementedError

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        if n is None or n < 0:
            parts = []
            while block := self.read(IO_CHUNK):
                parts.append(block)
            return b"".join(parts)
        data = self._read_raw(min(n, self._expected - self._got))
        self._account(data, len(data))
        if not data:
            self._finish()
        return data

    def _account(self, data: Any, n: int) -> None:
        """Count n bytes received (data: bytes or a memoryview of them), finishing at the end."""
        self._got += n
        if self._md5 is not None:
            self._md5.update(data)
        if self._got >= self._expected:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        name = self.info.name if self.info else ""
        if self._got != self._expected:
            raise BackendError(f"object {name!r}: the server sent {self._got} of {self._expected} bytes")
        if self._md5 is not None and self.info and self.info.etag and self._md5.hexdigest() != self.info.etag:
            raise DataCorruption(f"object {name!r}: downloaded data does not match its ETag {self.info.etag}")
