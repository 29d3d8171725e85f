"""The local directory object store (scheme ``file``): the embedded default.

Layout: ``<root>/<container>/<object path>`` with names encoded by
``backends.object.pathcodec`` (nothing can escape the root; '/' in object names become
directories). Writes are atomic: a temp file in the target directory, fsync, rename, and
(``fsync = "full"``, the default) an fsync of the directory. The ETag (MD5, computed while
writing), content type and metadata live in one extended attribute of the file, written
before the rename, so an object and its attributes appear together.

Options: ``root`` (required, absolute path), ``fsync`` = ``full`` | ``file`` | ``none``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from storage.errors import BackendError, Conflict, InvalidInput, NotFound

from backends.object.io import IterReader
from backends.object.base import ContainerInfo, ObjectInfo, ObjectReader, ObjectStore, PrefixEntry
from backends.object.listing import fold_delimiter, limited, validate_limit
from backends.object.names import validate_container, validate_object_name, validate_range
from backends.object.pathcodec import (
    DIR_SUFFIX,
    container_dirname,
    decode_component,
    object_relpath,
)

OBJECT_XATTR = "user.storage.object"
CONTAINER_XATTR = "user.storage.container"
BLOCK = 1024 * 1024
FSYNC_MODES = ("full", "file", "none")
ACCEPTED_OPTIONS = ("root", "fsync")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds")


def _norm_meta(metadata: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key or any(c in key for c in ":\r\n\x00") or not isinstance(value, str):
            raise InvalidInput(
                f"metadata key {key!r} is not accepted; accepted: non-empty text keys without ':' or newlines, text values",
                field="metadata",
            )
        out[key.lower()] = value
    return out


class _FileReader(ObjectReader):
    def __init__(self, fh: BinaryIO, remaining: int, info: ObjectInfo) -> None:
        super().__init__(info)
        self._fh = fh
        self._remaining = remaining

    def read(self, n: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        want = self._remaining if n is None or n < 0 else min(n, self._remaining)
        data = self._fh.read(want)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._fh.close()


class DirectoryStore(ObjectStore):
    """Containers are directories under ``root``; objects are files below them."""

    scheme: ClassVar[str] = "file"

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - set(ACCEPTED_OPTIONS))
        if unknown:
            raise InvalidInput(
                f"unknown file store option(s) {unknown}; accepted: {', '.join(ACCEPTED_OPTIONS)}", field="options"
            )
        root = self.options.get("root")
        if not root or not os.path.isabs(str(root)):
            raise InvalidInput(f"file store root {root!r} is not accepted; accepted: an absolute path", field="root")
        self.root = Path(str(root))
        self.fsync = str(self.options.get("fsync", "full"))
        if self.fsync not in FSYNC_MODES:
            raise InvalidInput(f"file store fsync {self.fsync!r} is not accepted; accepted: {', '.join(FSYNC_MODES)}", field="fsync")
        self._xattrs = True

    def clone(self) -> "DirectoryStore":
        return DirectoryStore(self.options)

    # -- paths ------------------------------------------------------------
    def _cdir(self, container: str, must_exist: bool = True) -> Path:
        path = self.root / container_dirname(validate_container(container))
        if must_exist and not path.is_dir():
            raise NotFound(f"container {container!r} does not exist in {str(self.root)!r}", container=container)
        return path

    def _object_path(self, container: str, name: str) -> tuple[Path, Path, str]:
        """(container dir, directory of the file, leaf file name)."""
        cdir = self._cdir(container)
        dirs, leaf = object_relpath(validate_object_name(name))
        return cdir, cdir.joinpath(*dirs), leaf

    # -- attributes -------------------------------------------------------
    def _read_attrs(self, target: int | str, xattr: str) -> dict[str, Any] | None:
        try:
            return json.loads(os.getxattr(target, xattr))
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                return None
            raise

    def _write_attrs(self, target: int | str, xattr: str, attrs: Mapping[str, Any]) -> None:
        if not self._xattrs:
            if attrs.get("meta") or attrs.get("content_type"):
                raise BackendError(f"file store root {str(self.root)!r} does not support extended attributes needed for metadata")
            return
        try:
            os.setxattr(target, xattr, json.dumps(attrs, separators=(",", ":")).encode())
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                self._xattrs = False
                self._write_attrs(target, xattr, attrs)
            else:
                raise

    def _info(self, name: str, path: str, st: os.stat_result, fd: int | None = None) -> ObjectInfo:
        attrs = self._read_attrs(fd if fd is not None else path, OBJECT_XATTR) or {}
        etag = attrs.get("etag")
        if etag is None:  # written by hand or on a filesystem without xattrs
            etag = _md5_file(path)
        return ObjectInfo(
            name=name,
            size=st.st_size,
            etag=etag,
            last_modified=_iso(st.st_mtime),
            content_type=attrs.get("content_type") or "application/octet-stream",
            metadata=attrs.get("meta") or {},
        )

    # -- containers -------------------------------------------------------
    def create_container(self, container: str, metadata: Mapping[str, str] | None = None) -> None:
        path = self._cdir(container, must_exist=False)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create container {container!r} under {str(self.root)!r}: {exc.strerror}") from None
        if metadata:
            attrs = self._read_attrs(str(path), CONTAINER_XATTR) or {}
            merged = {**attrs.get("meta", {}), **_norm_meta(metadata)}
            self._write_attrs(str(path), CONTAINER_XATTR, {"meta": merged})

    def delete_container(self, container: str) -> None:
        path = self._cdir(container)
        if next(self._walk(path, "", "", None), None) is not None:
            raise Conflict(f"container {container!r} is not empty; delete its objects first", container=container)
        shutil.rmtree(path, ignore_errors=True)

    def stat_container(self, container: str) -> ContainerInfo:
        path = self._cdir(container)
        count = used = 0
        for info in self._walk(path, "", "", None, with_info=False):
            assert isinstance(info, ObjectInfo)
            count += 1
            used += info.size
        attrs = self._read_attrs(str(path), CONTAINER_XATTR) or {}
        return ContainerInfo(name=container, object_count=count, bytes_used=used, metadata=attrs.get("meta", {}))

    def list_containers(self, prefix: str | None = None) -> Iterator[ContainerInfo]:
        if not self.root.is_dir():
            return
        names = []
        for entry in os.scandir(self.root):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                name = decode_component(entry.name)
            except (ValueError, UnicodeDecodeError):
                continue
            if prefix and not name.startswith(prefix):
                continue
            names.append(name)
        for name in sorted(names):
            try:
                yield self.stat_container(name)
            except NotFound:
                continue

    # -- objects ----------------------------------------------------------
    def put_object(
        self,
        container: str,
        name: str,
        data: bytes | BinaryIO,
        length: int | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        _cdir, ddir, leaf = self._object_path(container, name)
        meta = _norm_meta(metadata)
        fd, tmp = self._open_temp(ddir)
        try:
            md5 = hashlib.md5(usedforsecurity=False)
            written = _write_all(fd, data, length, md5)
            if self.fsync != "none":
                os.fsync(fd)
            attrs: dict[str, Any] = {"etag": md5.hexdigest()}
            if content_type:
                attrs["content_type"] = content_type
            if meta:
                attrs["meta"] = meta
            self._write_attrs(fd, OBJECT_XATTR, attrs)
            st = os.fstat(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, ddir / leaf)
            if self.fsync == "full":
                _fsync_dir(ddir)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            _unlink_quietly(tmp)
            raise
        return ObjectInfo(
            name=name,
            size=written,
            etag=attrs["etag"],
            last_modified=_iso(st.st_mtime),
            content_type=content_type or "application/octet-stream",
            metadata=meta,
        )

    def stream_limit(self) -> int:
        return 1 << 40

    def put_stream(self, container: str, name: str, blocks: Iterable[bytes], content_type: str | None = None,
                   *, checksum: bool = True) -> ObjectInfo:
        # checksum: this store writes its own file (no transfer to verify); it keeps the MD5 it records as the ETag
        return self.put_object(container, name, IterReader(blocks), None, content_type)

    def _open_temp(self, ddir: Path) -> tuple[int, Path]:
        # A concurrent delete may remove an empty directory between makedirs and open: retry.
        for _attempt in range(100):
            try:
                ddir.mkdir(parents=True, exist_ok=True)
                tmp = ddir / f".tmp.{uuid.uuid4().hex}"
                return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), tmp
            except (FileNotFoundError, FileExistsError):  # pruned between mkdir and open, or during mkdir
                continue
            except OSError as exc:
                raise BackendError(f"cannot write under {str(ddir)!r}: {exc.strerror}") from None
        raise BackendError(f"cannot create a file under {str(ddir)!r}: directory keeps disappearing")

    def get_object(self, container: str, name: str, byte_range: tuple[int, int] | None = None) -> ObjectReader:
        rng = validate_range(byte_range)
        _cdir, ddir, leaf = self._object_path(container, name)
        path = str(ddir / leaf)
        try:
            fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the reader
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"object {name!r} does not exist in container {container!r}", container=container, object=name) from None
        try:
            st = os.fstat(fh.fileno())
            info = self._info(name, path, st, fh.fileno())
            if rng is None:
                return _FileReader(fh, st.st_size, info)
            offset, length = rng
            if offset >= st.st_size and length > 0:
                raise InvalidInput(
                    f"byte range offset {offset} is beyond the end of object {name!r} ({st.st_size} bytes)",
                    field="byte_range",
                )
            fh.seek(offset)
            return _FileReader(fh, min(length, max(st.st_size - offset, 0)), info)
        except BaseException:
            fh.close()
            raise

    def head_object(self, container: str, name: str) -> ObjectInfo:
        _cdir, ddir, leaf = self._object_path(container, name)
        path = str(ddir / leaf)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"object {name!r} does not exist in container {container!r}", container=container, object=name) from None
        return self._info(name, path, st)

    def delete_object(self, container: str, name: str) -> None:
        cdir, ddir, leaf = self._object_path(container, name)
        try:
            os.unlink(ddir / leaf)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"object {name!r} does not exist in container {container!r}", container=container, object=name) from None
        if self.fsync == "full":
            try:
                _fsync_dir(ddir)
            except FileNotFoundError:  # a concurrent delete pruned the now-empty directory
                pass
        while ddir != cdir:  # drop directories left empty (best effort; puts retry on races)
            try:
                os.rmdir(ddir)
            except OSError:
                break
            ddir = ddir.parent

    def list_objects(
        self,
        container: str,
        prefix: str | None = None,
        delimiter: str | None = None,
        marker: str | None = None,
        limit: int | None = None,
    ) -> Iterator[ObjectInfo | PrefixEntry]:
        cdir = self._cdir(container)
        limit = validate_limit(limit)
        walk = self._walk(cdir, "", prefix or "", marker, fold_slash=delimiter == "/")
        return limited(fold_delimiter(walk, prefix or "", delimiter, marker), limit)

    def copy_object(self, container: str, name: str, dest_container: str, dest_name: str) -> None:
        with self.get_object(container, name) as reader:
            assert isinstance(reader, _FileReader) and reader.info is not None
            info = reader.info
            self.put_object(
                dest_container, dest_name, reader._fh, info.size, content_type=info.content_type, metadata=info.metadata
            )

    # -- listing ----------------------------------------------------------
    def _walk(
        self,
        dirpath: Path | str,
        base: str,
        prefix: str,
        marker: str | None,
        *,
        fold_slash: bool = False,
        with_info: bool = True,
    ) -> Iterator[ObjectInfo | PrefixEntry]:
        """Objects below dirpath in name order, pruned by prefix and marker.

        With fold_slash, a directory entirely below the prefix becomes one PrefixEntry
        instead of being walked (the '/' delimiter listing, cheap for big trees).
        """
        entries: list[tuple[str, bool, os.DirEntry[str]]] = []
        try:
            it = os.scandir(dirpath)
        except (FileNotFoundError, NotADirectoryError):
            return
        with it:
            for entry in it:
                fname = entry.name
                if fname.startswith("."):
                    continue
                is_dir = fname.endswith(DIR_SUFFIX)
                try:
                    key = base + decode_component(fname[:-1] if is_dir else fname) + ("/" if is_dir else "")
                except (ValueError, UnicodeDecodeError):
                    continue  # not written by this store
                if is_dir:
                    if not (key.startswith(prefix) or prefix.startswith(key)):
                        continue
                    if marker is not None and marker > key and not marker.startswith(key):
                        continue
                else:
                    if not key.startswith(prefix) or (marker is not None and key <= marker):
                        continue
                entries.append((key, is_dir, entry))
        entries.sort(key=lambda e: e[0])
        for key, is_dir, entry in entries:
            if is_dir:
                below_prefix = key.startswith(prefix) and len(key) > len(prefix)
                if fold_slash and below_prefix and not (marker is not None and marker.startswith(key) and marker != key):
                    if key != marker and next(self._walk(entry.path, key, "", None, with_info=False), None) is not None:
                        yield PrefixEntry(key)
                    continue
                yield from self._walk(entry.path, key, prefix, marker, fold_slash=fold_slash, with_info=with_info)
            else:
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted meanwhile
                if with_info:
                    yield self._info(key, entry.path, st)
                else:
                    yield ObjectInfo(name=key, size=st.st_size)


def _write_all(fd: int, data: bytes | BinaryIO, length: int | None, md5: Any) -> int:
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        if length is not None and length != len(view):
            raise InvalidInput(f"length {length} does not match the {len(view)} bytes given", field="length")
        md5.update(view)
        written = 0
        while written < len(view):
            written += os.write(fd, view[written:])
        return written
    if not hasattr(data, "read"):
        raise InvalidInput(f"object data of type {type(data).__name__} is not accepted; accepted: bytes or a binary stream", field="data")
    written = 0
    while length is None or written < length:
        want = BLOCK if length is None else min(BLOCK, length - written)
        block = data.read(want)
        if not block:
            break
        md5.update(block)
        view = memoryview(block)
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
        written += len(block)
    if length is not None and written != length:
        raise InvalidInput(f"stream ended after {written} of the {length} bytes announced", field="length")
    return written


def _md5_file(path: str) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(BLOCK):
            md5.update(block)
    return md5.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
