"""A host-wide lock for the policy runner: ``fcntl.flock`` on a file under the data dir.

The kernel drops a flock when its holder dies, so a crashed runner never leaves a stale lock.
The holder's pid is written into the file, for the message another runner prints.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from storage.errors import Busy

LOCK_NAME = "runner.lock"


class HostLock:
    """Exclusive, non-reentrant lock on ``path``; use ``with HostLock(path).acquire(wait=...)``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self, *, wait: bool = False, timeout: float | None = None, poll: float = 0.2) -> "HostLock":
        """Take the lock; raise Busy at once (or after ``timeout`` seconds of waiting) if it is held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait or (deadline is not None and time.monotonic() >= deadline):
                        raise Busy(
                            f"another runner holds {self.path} (pid {self.holder()}); "
                            "run again later or pass --wait to wait for it",
                            lock=str(self.path),
                        ) from None
                    time.sleep(poll)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "HostLock":
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
