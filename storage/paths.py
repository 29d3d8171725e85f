"""Where client-given paths may point, and private modes for what holds secrets (pure rules + tiny I/O).

- ``encloses(outer, inner)``: lexical containment of absolute paths.
- ``store_root_problem(root, data_dir)``: a directory object store (configured, or derived from a
  ``file://`` URL) must not be the data dir or contain it: its containers would be the data dir's
  own subdirectories (pools, keys) and a backup repository there writes locks and manifests beside
  ``catalog.db``.
- ``confined(path, roots)``: a path from a client resolved (symlinks included) inside one of the
  configured roots, or None. Callers refuse with one message for "outside", "missing" and "not a
  file", so the answer never tells whether a path exists.
- ``private_dir``/``private_file``: create with mode 0700/0600.
- ``require_private``: refuse a secret file (a key, the CHAP secrets) that group or others may read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def encloses(outer: str | os.PathLike[str], inner: str | os.PathLike[str]) -> bool:
    """True when ``inner`` is ``outer`` or lies below it (both absolute, compared lexically)."""
    a, b = os.path.normpath(os.fspath(outer)), os.path.normpath(os.fspath(inner))
    return b == a or b.startswith(a.rstrip("/") + "/")


def store_root_problem(root: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> str | None:
    """Why ``root`` cannot be a directory store's root, or None when it can."""
    if encloses(root, data_dir):
        return (
            f"object store root {os.fspath(root)!r} is the data dir {os.fspath(data_dir)!r} or contains it "
            "(its catalog, pools and keys would become containers); accepted: a directory outside the data dir, "
            f"or under {os.path.join(os.fspath(data_dir), 'objects')}"
        )
    return None


def confined(path: str, roots: Iterable[str | os.PathLike[str]], *, regular_file: bool = True) -> Path | None:
    """``path`` resolved inside one of ``roots`` (and a regular file when asked), else None.

    Symlinks are resolved before the check, so a link inside a root that points out of it is
    outside. Relative paths are refused (they would depend on the server's working directory).
    """
    if not isinstance(path, str) or not path or "\x00" in path or not os.path.isabs(path):
        return None
    real = os.path.realpath(path)
    if not any(encloses(os.path.realpath(os.fspath(r)), real) for r in roots):
        return None
    if regular_file:
        try:
            if not stat.S_ISREG(os.stat(real).st_mode):
                return None
        except OSError:
            return None
    return Path(real)


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) with the last component mode 0700 when it is new."""
    target = Path(path)
    if not target.exists():
        target.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(target, DIR_MODE)  # mkdir's mode is masked by the umask
    return target


def require_private(path: str | os.PathLike[str], mode: int, what: str) -> None:
    """PermissionDenied, naming the fix, when ``what`` (a file holding a secret) at ``path`` has
    mode bits for group or others (``mode``: its ``st_mode``)."""
    if mode & 0o077:
        from storage.errors import PermissionDenied

        raise PermissionDenied(f"{what} {os.fspath(path)!r} is readable by group or others (mode {mode & 0o777:o}); "
                               f"accepted: mode 600 (chmod 600 {os.fspath(path)})")  # fmt: skip


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty with mode 0600 if missing; take group/other access away if present and ours."""
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        info = os.fstat(fd)
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o700)
    finally:
        os.close(fd)
    return target
