"""The abstract object store: containers and objects (local directory, Swift, S3).

One ``ObjectStore`` instance holds one connection and must be used by one thread at a
time; ``clone()`` gives another thread its own (python-swiftclient connections are not
thread-safe: shared ones silently lose writes on retry).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    object_count: int = 0
    bytes_used: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    etag: str | None = None  # hex MD5 of the content for simple objects
    last_modified: str | None = None  # ISO 8601 UTC
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrefixEntry:
    """A pseudo-directory returned by a delimiter listing (like Swift's ``subdir``)."""

    prefix: str


class ObjectReader:
    """A readable stream of an object's bytes: iterate for chunks, or ``read()``.

    Subclasses implement ``_read(n)``; use as a context manager so the connection is released.
    """

    def __init__(self, info: ObjectInfo | None = None) -> None:
        self.info = info

    def read(self, n: int = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, out: Any) -> int:
        """Fill the start of out (a writable buffer) with the next bytes; 0 at the end.
        Readers that can receive straight into out (no intermediate bytes objects) override it."""
        data = self.read(min(len(out), 1024 * 1024))
        out[: len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.read(1024 * 1024)
            if not block:
                return
            yield block

    def close(self) -> None:
        pass

    def __enter__(self) -> "ObjectReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObjectStore(ABC):
    """Containers and objects of one account/endpoint."""

    scheme: ClassVar[str]

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    @abstractmethod
    def clone(self) -> "ObjectStore":
        """A new instance with its own connection, for another thread."""

    # -- containers -------------------------------------------------------
    @abstractmethod
    def create_container(self, container: str, metadata: Mapping[str, str] | None = None) -> None:
        """Create (idempotent) a container; set metadata if given."""

    @abstractmethod
    def delete_container(self, container: str) -> None:
        """Delete an empty container; raise Conflict when it still holds objects."""

    @abstractmethod
    def stat_container(self, container: str) -> ContainerInfo: ...

    @abstractmethod
    def list_containers(self, prefix: str | None = None) -> Iterator[ContainerInfo]: ...

    # -- objects ----------------------------------------------------------
    @abstractmethod
    def put_object(
        self,
        container: str,
        name: str,
        data: bytes | BinaryIO,
        length: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store an object from bytes or a rewindable stream and verify the stored ETag/MD5."""

    def stream_limit(self) -> int:
        """The largest object put_stream takes here; 0 = put_stream is not supported."""
        return 0

    def put_stream(self, container: str, name: str, blocks: Iterable[bytes], content_type: str | None = None,
                   *, checksum: bool = True) -> ObjectInfo:
        """Store an object from byte blocks while they come (its length known only at the end;
        the blocks are not kept, so a failed upload is not retried) and, with checksum=True,
        verify the stored MD5 against the bytes sent (checksum=False: a store may skip that
        hash; the caller then verifies the object its own way)."""
        from storage.errors import Unsupported

        raise Unsupported(f"{type(self).__name__} cannot upload an object of unknown length; use put_object")

    @abstractmethod
    def get_object(self, container: str, name: str, byte_range: tuple[int, int] | None = None) -> ObjectReader:
        """Open an object for reading; byte_range is (offset, length)."""

    def get_bytes(self, container: str, name: str, byte_range: tuple[int, int] | None = None) -> bytes:
        with self.get_object(container, name, byte_range) as reader:
            return reader.read()

    @abstractmethod
    def head_object(self, container: str, name: str) -> ObjectInfo: ...

    @abstractmethod
    def delete_object(self, container: str, name: str) -> None:
        """Delete an object; raise NotFound when it does not exist."""

    @abstractmethod
    def list_objects(
        self,
        container: str,
        prefix: str | None = None,
        delimiter: str | None = None,
        marker: str | None = None,
        limit: int | None = None,
    ) -> Iterator[ObjectInfo | PrefixEntry]:
        """Objects in name order after marker; pages through the server transparently."""

    @abstractmethod
    def copy_object(self, container: str, name: str, dest_container: str, dest_name: str) -> None: ...

    def close(self) -> None:
        pass
