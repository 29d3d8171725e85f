"""Repository locks: a lock object in the repository (works across hosts) plus a local flock.

Backups take a *shared* lock, GC an *exclusive* one. Each side writes its lock object first
and then lists the others, so of two racing lockers at least one sees the other and backs
off. A lock object is refreshed while held; it is stale when not refreshed for STALE_SECONDS,
or at once when it names this host and a process that is gone (kill -9).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage import owners
from storage.backup import format as fmt
from storage.backup.repository import Repository
from storage.errors import Busy, NotFound

log = logging.getLogger(__name__)

STALE_SECONDS = 1800
REFRESH_SECONDS = 300
SHARED = "shared"
EXCLUSIVE = "exclusive"


@dataclass(frozen=True)
class LockRecord:
    lock_id: str
    kind: str
    host: str
    pid: int
    purpose: str
    refreshed_at: float
    start: str = ""  # the process's start time (owners.process_start): a reused pid is not the locker

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def from_json(cls, lock_id: str, raw: bytes) -> "LockRecord | None":
        try:
            doc = json.loads(raw)
            return cls(lock_id, str(doc["kind"]), str(doc["host"]), int(doc["pid"]), str(doc.get("purpose", "")),
                       float(doc["refreshed_at"]), str(doc.get("start") or ""))
        except (ValueError, KeyError, TypeError, OverflowError):
            return None


def is_stale(record: LockRecord, now: float, host: str) -> bool:
    """Staleness rule: too old, or this host's process that no longer exists (or whose pid another
    process has now)."""
    if now - record.refreshed_at > STALE_SECONDS:
        return True
    if record.host != host:
        return False
    return owners.owner_is_dead(f"{record.host}:{record.pid}" + (f":{record.start}" if record.start else ""), host,
                                owners.pid_alive)


def conflicts(mine: str, other: str) -> bool:
    return mine == EXCLUSIVE or other == EXCLUSIVE


class RepositoryLock:
    """Context manager holding a shared or exclusive lock on a repository."""

    def __init__(self, repo: Repository, lock_dir: Path, kind: str, purpose: str) -> None:
        self.repo = repo
        self.kind = kind
        self.purpose = purpose
        self.lock_dir = lock_dir
        self.host = socket.gethostname()
        self.lock_id = f"{uuid.uuid4()}"
        self._fd: int | None = None
        self._store: Any = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def _name(self, lock_id: str) -> str:
        return self.repo.object_name(fmt.LOCKS_DIR + lock_id)

    def _record(self) -> LockRecord:
        return LockRecord(self.lock_id, self.kind, self.host, os.getpid(), self.purpose, time.time(),
                          owners.process_start(os.getpid()) or "")

    def list_locks(self, store: Any, *, others_only: bool = False) -> list[LockRecord]:
        """The lock records in the repository (others_only: without reading this lock's own object)."""
        prefix = self.repo.object_name(fmt.LOCKS_DIR)
        out = []
        for info in store.list_objects(self.repo.container, prefix=prefix):
            name = getattr(info, "name", None)
            if name is None:
                continue
            lock_id = name[len(prefix):]
            if others_only and lock_id == self.lock_id:
                continue
            try:
                raw = store.get_bytes(self.repo.container, name)
            except NotFound:
                continue
            rec = LockRecord.from_json(lock_id, raw)
            if rec is not None:
                out.append(rec)
        return out

    def acquire(self) -> None:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        path = self.lock_dir / f"backup-repo-{self.repo.id}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if self.kind == EXCLUSIVE else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = "a backup is running" if self.kind == EXCLUSIVE else "garbage collection is running"
            raise Busy(f"repository {self.repo.url} is locked on this host ({other}); retry when it finishes") from None
        self._fd = fd
        self._store = self.repo.clone_store()
        try:
            self._store.put_object(self.repo.container, self._name(self.lock_id), self._record().to_json())
            now = time.time()
            for rec in self.list_locks(self._store, others_only=True):
                if rec.lock_id == self.lock_id or not conflicts(self.kind, rec.kind) or is_stale(rec, now, self.host):
                    continue
                raise Busy(
                    f"repository {self.repo.url} holds a {rec.kind} lock of {rec.purpose or 'another process'} "
                    f"(host {rec.host}, pid {rec.pid}); retry when it finishes",
                    lock=rec.lock_id,
                )
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)  # the first error is the one raised
            raise
        self._refresher = threading.Thread(target=self._refresh_loop, name="repo-lock-refresh", daemon=True)
        self._refresher.start()

    def _refresh_loop(self) -> None:
        store = self.repo.clone_store()
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                store.put_object(self.repo.container, self._name(self.lock_id), self._record().to_json())
            except Exception:  # noqa: BLE001 - a failed refresh is retried; staleness takes 6 misses
                continue

    def remove_stale(self) -> int:
        """Delete lock objects that are stale (used by GC under its exclusive lock)."""
        store = self._store or self.repo.clone_store()
        now, removed = time.time(), 0
        for rec in self.list_locks(store):
            if rec.lock_id != self.lock_id and is_stale(rec, now, self.host):
                try:
                    store.delete_object(self.repo.container, self._name(rec.lock_id))
                    removed += 1
                except NotFound:
                    pass
        return removed

    def release(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
            self._refresher = None
        try:
            if self._store is not None:
                try:
                    self._store.delete_object(self.repo.container, self._name(self.lock_id))
                except NotFound:
                    pass
                finally:
                    self._store.close()
                    self._store = None
        finally:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "RepositoryLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.release()
            return
        # the operation failed: its error is the one to report, not a clean-up that fails after it
        # (a store that stopped answering fails the lock delete too); a lock object left behind
        # names this host and a dead pid once the process ends, so the next locker drops it
        try:
            self.release()
        except Exception as cleanup:  # noqa: BLE001
            log.warning("releasing the %s lock of repository %s failed after an error: %s", self.kind, self.repo.url,
                        getattr(cleanup, "message", None) or type(cleanup).__name__)
