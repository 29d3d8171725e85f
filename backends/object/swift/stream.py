"""One Swift object uploaded from byte blocks while they come: a PUT with chunked transfer
encoding (its length is known only at its end), the MD5 of what was sent checked against the
server's ETag. Not retried: the blocks are not kept once sent (the caller re-sends what it lost)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from backends.object.base import ObjectInfo
from backends.object.names import validate_container, validate_object_name
from storage.errors import BackendError, DataCorruption, InvalidInput


def put_stream(store: Any, container: str, name: str, blocks: Iterable[bytes], content_type: str | None = None) -> ObjectInfo:
    """store: a SwiftStore. Raises InvalidInput past its segment_size (one object, no SLO)."""
    validate_container(container)
    validate_object_name(name)
    md5 = hashlib.md5(usedforsecurity=False)
    sent = [0]
    limit = store.segment_size

    def body() -> Iterator[bytes]:
        for block in blocks:
            sent[0] += len(block)
            if sent[0] > limit:
                raise InvalidInput(f"streamed object {name!r} exceeds segment_size {limit} bytes; accepted: at most that", field="segment_size")
            md5.update(block)
            yield block

    conn = store.conn
    retries, conn.retries = conn.retries, 0  # a stream cannot be re-sent: fail with the first cause
    try:
        with store._ctx("upload", f"object {name!r} to container {container!r}"):
            etag = conn.put_object(container, name, body(), content_type=content_type)
    finally:
        conn.retries = retries
    digest = md5.hexdigest()
    if not etag:
        raise BackendError(f"swift returned no ETag for object {name!r} in container {container!r}; it may not be stored")
    if etag.strip('"') != digest:
        store._delete_quietly(container, name)
        raise DataCorruption(
            f"object {name!r} in container {container!r}: server ETag {etag} does not match the MD5 {digest} of the data sent"
        )
    return ObjectInfo(name=name, size=sent[0], etag=digest, content_type=content_type or "application/octet-stream", metadata={})
