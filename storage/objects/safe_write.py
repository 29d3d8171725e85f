"""Write a file below a directory without following symlinks inside it (openat-style).

``object download -D DIR`` writes ``DIR/<object name>``; a symlink planted inside DIR (``DIR/a ->
/etc``) must not redirect the write outside DIR. Each component below DIR is opened relative to
its parent's descriptor with ``O_NOFOLLOW``, the data goes to a new temp file (``O_EXCL``) in the
final directory, and ``rename`` relative to that descriptor replaces the last component (a symlink
there is replaced, never followed). DIR itself is the caller's choice and may be a symlink.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from storage.errors import InvalidInput

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def components(name: str, dest: Path) -> list[str]:
    """The path components object ``name`` takes below ``dest``; refuses empty and '..' names."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or any("\x00" in p for p in parts):
        raise InvalidInput(
            f"object name {name!r} cannot be written below {str(dest)!r} (empty or '..' components); "
            "download it with -o FILE",
            field="object",
        )
    return parts


def _refuse(name: str, dest: Path, what: str) -> InvalidInput:
    return InvalidInput(
        f"object {name!r} is not written below {str(dest)!r}: {what} (symlinks inside the destination are "
        "never followed); remove it or download with -o FILE",
        field="object",
    )


def write_below(dest: Path, name: str, blocks: Iterable[bytes], on_block: Callable[[int], None] | None = None) -> Path:
    """Write ``blocks`` to ``dest/<name>`` atomically, refusing any symlink below ``dest``."""
    parts = components(name, dest)
    dest.mkdir(parents=True, exist_ok=True)
    dfd = os.open(dest, _DIR_FLAGS)
    try:
        for i, part in enumerate(parts[:-1]):
            try:
                os.mkdir(part, 0o777, dir_fd=dfd)
            except FileExistsError:
                pass
            try:
                nfd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dfd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refuse(name, dest, f"{'/'.join(parts[: i + 1])!r} is a symlink or not a directory") from None
                raise
            os.close(dfd)
            dfd = nfd
        tmp = f".download-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as fh:
                for block in blocks:
                    fh.write(block)
                    if on_block:
                        on_block(len(block))
            try:
                os.replace(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
            except IsADirectoryError:
                raise _refuse(name, dest, f"{'/'.join(parts)!r} is a directory") from None
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dfd)
    return dest.joinpath(*parts)
