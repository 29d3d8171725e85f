"""Uploads and downloads of files and directories through an ObjectStore, with progress.

Object names follow the ``swift`` CLI: a path argument becomes the object name as given,
normalized, without a leading '/' (``/tmp/a`` -> ``tmp/a``); a directory uploads every file
below it (``dir/sub/f``). Downloads write ``<dest>/<object name>`` atomically (temp file +
rename) and refuse names that would land outside ``dest``, also through a symlink inside ``dest``
(``storage.objects.safe_write``).
"""

from __future__ import annotations

import io
import os
import posixpath
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from backends.object.base import ObjectInfo, ObjectStore, PrefixEntry
from storage.errors import InvalidInput, NotFound
from storage.objects.safe_write import components, write_below

Progress = Callable[[int, int], None]  # (bytes_done, bytes_total)
BLOCK = 1024 * 1024


@dataclass(frozen=True)
class UploadItem:
    path: Path
    name: str
    size: int


@dataclass(frozen=True)
class TransferResult:
    name: str
    size: int
    etag: str | None
    path: str | None = None


def object_name_for(path: str) -> str:
    """The object name of a local path argument, like the swift CLI (pure)."""
    norm = posixpath.normpath(path.replace(os.sep, "/"))
    name = norm.lstrip("/")
    if name in ("", ".") or name.startswith("../") or name == "..":
        raise InvalidInput(
            f"path {path!r} gives no usable object name; accepted: files or directories below the current "
            "directory or absolute paths (use --object-name for a single file)",
            field="path",
        )
    return name


def plan_upload(paths: Iterable[str], object_name: str | None = None, prefix: str = "") -> list[UploadItem]:
    """Files to upload and their object names; directories are walked in name order."""
    items: list[UploadItem] = []
    paths = list(paths)
    if object_name is not None and (len(paths) != 1 or Path(paths[0]).is_dir()):
        raise InvalidInput("--object-name needs exactly one file", field="object_name")
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for fname in sorted(files):
                    full = Path(root) / fname
                    if full.is_file():
                        items.append(UploadItem(full, _join(prefix, object_name_for(str(full))), full.stat().st_size))
        elif path.is_file():
            items.append(UploadItem(path, _join(prefix, object_name or object_name_for(raw)), path.stat().st_size))
        else:
            raise NotFound(f"path {raw!r} is not a file or directory", field="path")
    return items


def _join(prefix: str, name: str) -> str:
    return f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name


class CountingReader(io.RawIOBase):
    """A seekable file wrapper reporting bytes read (a rewind on retry counts again)."""

    def __init__(self, fh: BinaryIO, on_read: Callable[[int], None]) -> None:
        super().__init__()
        self._fh = fh
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._on_read(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def upload(
    store: ObjectStore,
    container: str,
    paths: Iterable[str],
    *,
    object_name: str | None = None,
    prefix: str = "",
    progress: Progress | None = None,
    create_container: bool = True,
) -> list[TransferResult]:
    items = plan_upload(paths, object_name, prefix)
    total = sum(i.size for i in items)
    done = 0

    def on_read(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(min(done, total), total)

    if create_container:
        store.create_container(container)
    results = []
    for item in items:
        start = done
        with item.path.open("rb") as fh:
            info = store.put_object(container, item.name, CountingReader(fh, on_read), length=item.size)  # type: ignore[arg-type]
        done = start + item.size
        if progress:
            progress(done, total)
        results.append(TransferResult(item.name, info.size, info.etag, str(item.path)))
    return results


def safe_local_path(dest: Path, name: str) -> Path:
    """Where object ``name`` lands below ``dest``; refuses anything that would escape it lexically."""
    return dest.joinpath(*components(name, dest))


def objects_to_download(store: ObjectStore, container: str, names: list[str] | None, prefix: str | None) -> list[ObjectInfo]:
    if names:
        return [store.head_object(container, n) for n in names]
    return [e for e in store.list_objects(container, prefix=prefix) if isinstance(e, ObjectInfo)]


def download(
    store: ObjectStore,
    container: str,
    names: list[str] | None = None,
    *,
    dest: Path | None = None,
    output: str | None = None,
    prefix: str | None = None,
    progress: Progress | None = None,
    stdout: BinaryIO | None = None,
) -> list[TransferResult]:
    """Download objects to ``dest`` (default '.'), to one file (``output``), or to stdout (``output='-'``)."""
    infos = objects_to_download(store, container, names, prefix)
    if output is not None and len(infos) != 1:
        raise InvalidInput(f"-o/--output needs exactly one object; {len(infos)} match", field="output")
    total = sum(i.size for i in infos)
    done = 0
    results = []

    def counted(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    for info in infos:
        if output == "-":
            out = stdout or sys.stdout.buffer
            for block in _blocks(store, container, info.name):
                out.write(block)
                counted(len(block))
            out.flush()
            results.append(TransferResult(info.name, info.size, info.etag, "-"))
            continue
        if output is None:  # below dest: no symlink inside dest is followed (storage.objects.safe_write)
            target = write_below(dest or Path("."), info.name, _blocks(store, container, info.name), counted)
            results.append(TransferResult(info.name, info.size, info.etag, str(target)))
            continue
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as fh:
                for block in _blocks(store, container, info.name):
                    fh.write(block)
                    counted(len(block))
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        results.append(TransferResult(info.name, info.size, info.etag, str(target)))
    if progress:
        progress(total, total)
    return results


def _blocks(store: ObjectStore, container: str, name: str) -> Iterator[bytes]:
    with store.get_object(container, name) as reader:
        while block := reader.read(BLOCK):
            yield block


def delete(store: ObjectStore, container: str, names: list[str] | None = None) -> list[str]:
    """Delete the named objects, or every object and then the container (like ``swift delete c``)."""
    if names:
        for name in names:
            store.delete_object(container, name)
        return list(names)
    deleted = []
    while True:
        batch = [e.name for e in store.list_objects(container, limit=1000) if isinstance(e, ObjectInfo)]
        if not batch:
            break
        for name in batch:
            try:
                store.delete_object(container, name)
            except NotFound:
                pass
            deleted.append(name)
    store.delete_container(container)
    return deleted


def listing(
    store: ObjectStore,
    container: str | None,
    *,
    prefix: str | None = None,
    delimiter: str | None = None,
    limit: int | None = None,
) -> list[Any]:
    """Containers (no container given) or the objects/pseudo-directories of one container."""
    if container is None:
        return list(store.list_containers(prefix=prefix))
    return list(store.list_objects(container, prefix=prefix, delimiter=delimiter, limit=limit))


def account_summary(store: ObjectStore) -> dict[str, int]:
    count = objects = used = 0
    for info in store.list_containers():
        count += 1
        objects += info.object_count
        used += info.bytes_used
    return {"containers": count, "objects": objects, "bytes": used}


__all__ = ["PrefixEntry", "account_summary", "delete", "download", "listing", "upload", "plan_upload"]
