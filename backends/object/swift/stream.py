"""One Swift object uploaded from byte blocks while they come: a PUT with chunked transfer
encoding (its length is known only at its end). With checksum=True (the default) the MD5 of what
was sent is checked against the server's ETag; checksum=False skips that MD5 (about 2 CPU-s per
GiB on this project's machine, a third of a backup's client CPU) for callers that verify the
object their own way (backup packs: every chunk carries its content address, and the backup
reads back the pack's last chunk, see docs/backup-format.md "What is verified where").
Not retried: the blocks are not kept once sent (the caller re-sends what it lost)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from backends.object.base import ObjectInfo
from backends.object.names import validate_container, validate_object_name
from storage.errors import BackendError, DataCorruption, InvalidInput


def put_stream(store: Any, container: str, name: str, blocks: Iterable[bytes], content_type: str | None = None,
               *, checksum: bool = True) -> ObjectInfo:
    """store: a SwiftStore. Raises InvalidInput past its segment_size (one object, no SLO)."""
    validate_container(container)
    validate_object_name(name)
    md5 = hashlib.md5(usedforsecurity=False) if checksum else None
    sent = [0]
    limit = store.segment_size

    def body() -> Iterator[bytes]:
        for block in blocks:
            sent[0] += len(block)
            if sent[0] > limit:
                raise InvalidInput(f"streamed object {name!r} exceeds segment_size {limit} bytes; accepted: at most that", field="segment_size")
            if md5 is not None:
                md5.update(block)  # releases the GIL on a large block: the workers keep hashing meanwhile
            yield block

    conn = store.conn
    retries, conn.retries = conn.retries, 0  # a stream cannot be re-sent: fail with the first cause
    try:
        with store._ctx("upload", f"object {name!r} to container {container!r}"):
            etag = conn.put_object(container, name, body(), content_type=content_type)
    finally:
        conn.retries = retries
    if not etag:
        raise BackendError(f"swift returned no ETag for object {name!r} in container {container!r}; it may not be stored")
    if md5 is None:  # not checked here: the server's MD5 of what it stored, as it says
        return ObjectInfo(name=name, size=sent[0], etag=etag.strip('"'), content_type=content_type or "application/octet-stream", metadata={})
    digest = md5.hexdigest()
    if etag.strip('"') != digest:
        store._delete_quietly(container, name)
        raise DataCorruption(
            f"object {name!r} in container {container!r}: server ETag {etag} does not match the MD5 {digest} of the data sent"
        )
    return ObjectInfo(name=name, size=sent[0], etag=digest, content_type=content_type or "application/octet-stream", metadata={})
