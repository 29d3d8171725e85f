"""Cache layout and input hashing (pure helpers plus a build lock)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
VM_DIR = PROJECT_ROOT / "scripts" / "vm"


def cache_root() -> Path:
    """``$STORAGE_VM_CACHE`` or ``<project>/.cache/vm``."""
    return Path(os.environ.get("STORAGE_VM_CACHE") or PROJECT_ROOT / ".cache" / "vm")


def input_key(*parts: str | bytes) -> str:
    """A short stable hash of the build inputs (order matters)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:16]


def file_inputs(*paths: Path) -> str:
    """The content of build-script files, as one string to hash."""
    return "\n".join(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}" for p in paths)


def prune_siblings(keep: Path) -> None:
    """Remove older cached builds of the same kind (``<kind>-<key>``) next to keep."""
    kind = keep.name.rsplit("-", 1)[0]
    for other in keep.parent.glob(f"{kind}-*"):
        if other != keep and other.name.rsplit("-", 1)[0] == kind:
            shutil.rmtree(other, ignore_errors=True) if other.is_dir() else other.unlink(missing_ok=True)


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Host-wide lock: one build (or one guest) at a time, across pytest sessions."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
