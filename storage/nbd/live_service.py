"""Live restore: a new volume usable at once, over NBD, while it is restored (``backup restore --live``).

    with live_restore(st, backup_id, "db1-restored") as run:   # or resume_live(st, "db1-restored")
        print(run.uri)                                         # nbd://127.0.0.1:10809/db1-restored
        run.wait_restored()                                    # the volume is 'available' now

The volume is created ``restoring-backup`` (a file of the file pool, an LV of an LVM pool) and
exported read-write by nbdkit running storage/nbd/live_plugin.py (storage.nbd.live): reads fetch
chunks on demand and write them through, writes mark their chunks restored first, a background
copy restores the rest. The restored-chunk bitmap lives in ``<data_dir>/live-restore/<volume id>/``
(fsync'd; with ``state.json`` naming the backup), so a crash resumes with ``resume_live``. The
volume turns ``available`` once every chunk is restored and durable; a copy that fails (a chunk
that does not verify, nbdkit gone) or is stopped before the end leaves it ``error`` with the reason
in its description, never ``available`` half-restored; ``resume_live`` takes it from there.

While it reads the backup, the run is a ``served_exports`` row of kind ``live-restore``
(storage/nbd/managed.py ``record_live``): ``GET /backups/serves`` lists it, and ``backup delete`` /
``backup gc`` refuse to take its chunks. The row goes when the restore finishes, is stopped or
fails; a crashed run's row is reaped once its nbdkit is gone (``--exit-with-parent``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import owners
from storage.domain import VolumeStatus
from storage.errors import BackendError, Conflict, NotFound, StorageError
from storage.nbd import server as srv
from storage.nbd.bitmap import read_count
from storage.nbd.service import damage_recorder, python_path
from storage.nbd.spec import ServeSpec
from storage.paths import private_dir

if TYPE_CHECKING:
    import storage
    from storage.backup.format import Manifest

log = logging.getLogger(__name__)
LIVE_PLUGIN = Path(__file__).with_name("live_plugin.py")
COPY_RATE_MAX = 64 * 1024**3
REASON_MAX = 240


@dataclass(frozen=True)
class LiveState:
    """``state.json``: what a resume needs (no secret: the key *file*)."""

    backup_id: str
    repository: str
    key_file: str | None
    volume_id: str
    chunk_count: int
    size_bytes: int

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> "LiveState":
        try:
            with open(path, "rb") as f:
                return cls(**json.loads(f.read(64 * 1024)))
        except (OSError, ValueError, TypeError) as exc:
            raise BackendError(f"live restore state {str(path)!r} cannot be read ({exc}); "
                               "delete the volume and restore again") from None


@dataclass(frozen=True)
class LiveInfo:
    """What ``--json`` prints first: where the volume is served."""

    volume_id: str
    volume_name: str
    backup_id: str
    export_name: str
    uri: str
    size_bytes: int
    chunk_count: int
    restored_chunks: int
    encrypted: bool
    pid: int | None


def nbdkit_live_command(nbdkit: str, listen: srv.Listen, pidfile: Path, spec_path: Path, *, threads: int = 8) -> list[str]:
    """Pure: the read-write nbdkit command line of a live restore (only a spec file's path in it)."""
    return srv.nbdkit_command(nbdkit, listen, pidfile, spec_path, threads=threads, readonly=False, plugin=LIVE_PLUGIN)


def outcome(line: str) -> tuple[str, str] | None:
    """Pure: ("complete", "") or ("failed", reason) from a line of the live plugin, else None."""
    marker = "storage-nbd: live restore "
    at = line.find(marker)
    if at < 0:
        return None
    rest = line[at + len(marker):]
    if rest.startswith("complete"):
        return "complete", ""
    if rest.startswith("failed: "):
        return "failed", rest[len("failed: "):].strip()[:REASON_MAX]
    return None


def state_dir(st: "storage.Storage", volume_id: str) -> Path:
    return Path(st.settings.data_dir) / "live-restore" / volume_id


class LiveRestore:
    """A running live restore (a context manager: leaving it stops the export; the volume is then
    ``available`` if every chunk was restored, else ``error`` with the reason, resumable)."""

    def __init__(self, st: "storage.Storage", info: LiveInfo, where: Path, stack: contextlib.ExitStack) -> None:
        self.st, self.info, self.where, self._stack = st, info, where, stack
        self.server: srv.NbdServer | None = None
        self.finished = threading.Event()
        self.result: tuple[str, str] | None = None
        self._closed = False
        self.served_id: str | None = None  # its served_exports row (kind live-restore) while it reads the backup

    @property
    def uri(self) -> str:
        return self.info.uri

    def on_line(self, line: str) -> None:
        found = outcome(line)
        if found is not None and self.result is None:
            self.result = found
            self.finished.set()

    def progress(self) -> tuple[int, int]:
        """(durable restored chunks, chunks) as the bitmap file says."""
        try:
            return read_count(self.where / "bitmap", self.info.chunk_count), self.info.chunk_count
        except OSError:
            return 0, self.info.chunk_count

    def wait_restored(self, timeout: float | None = None) -> bool:
        """Block until the copy ends (True when complete) or nbdkit exits or timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished.wait(0.2):
            if self.server is not None and self.server.proc is not None and self.server.proc.poll() is not None:
                time.sleep(0.3)  # let the stderr pump deliver the last lines
                if self.result is None:
                    self.result = ("failed", f"nbdkit exited with status {self.server.proc.returncode}: "
                                             f"{self.server.last_error()}"[:REASON_MAX])
                self.finished.set()
                break
            if deadline is not None and time.monotonic() > deadline:
                return False
        if self.result and self.result[0] == "complete":
            self._mark_available()
            return True
        return False

    def _mark_available(self) -> None:
        vol = self.st.volumes.get(self.info.volume_id)
        if vol.status is VolumeStatus.RESTORING_BACKUP:
            self.st.volumes._set(vol.id, VolumeStatus.AVAILABLE, description=None)
        self.forget()  # every chunk restored: the backup is read no more (nbdkit may serve the volume on)

    def forget(self) -> None:
        """Drop its served_exports row: the restore finished, stopped or failed (idempotent)."""
        served_id, self.served_id = self.served_id, None
        if served_id is not None:
            try:
                self.st.backups.serving.forget(served_id)
            except StorageError as exc:  # the catalog is away: the next listing reaps it once nbdkit is gone
                log.warning("could not drop served export %s of the live restore: %s", served_id, exc.message)

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stack.close()  # nbdkit stops: its cleanup syncs the volume and persists the bitmap
        finally:
            done, total = self.progress()
            if done == total:
                self._mark_available()
                shutil.rmtree(self.where, ignore_errors=True)
            else:
                reason = (self.result[1] if self.result and self.result[0] == "failed"
                          else f"the export was stopped at {done} of {total} chunks")
                fail(self.st, self.info.volume_id, reason)

    def __enter__(self) -> "LiveRestore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def fail(st: "storage.Storage", volume_id: str, reason: str) -> None:
    """The volume is 'error' with the reason (its description), resumable while its state is kept."""
    text = (f"live restore incomplete: {reason}"[:200] + "; resume: storagectl backup restore --resume VOLUME --live")[:255]
    try:
        st.volumes._set(volume_id, VolumeStatus.ERROR, description=text, error_reason=text)
    except StorageError as exc:
        log.warning("could not record the failed live restore of volume %s: %s", volume_id, exc.message)


def live_restore(
    st: "storage.Storage", backup_id: str, new_volume_name: str, *, pool: str | None = None, repository: str | None = None,
    key_file: str | None = None, host: str | None = None, port: int | None = None, socket: str | None = None,
    tls_psk: str | None = None, copy_rate: int = 0, echo: bool = True,
) -> LiveRestore:
    """Create new_volume_name 'restoring-backup' and serve it read-write at once while it is restored."""
    from storage.backup import ops

    listen = srv.check_listen(host, port, socket, tls_psk)
    name = srv.check_export_name(new_volume_name)
    _check_rate(copy_rate)
    nbdkit = srv.find_nbdkit()
    svc = st.backups
    if repository is None:
        repository, row_key, _status = ops._row_source(svc, backup_id)
        key_file = key_file or row_key
    repo = svc.open_repository(repository, key_file=key_file)
    manifest = _manifest(repo, backup_id)
    prune_states(st)
    vol, _decision = st.volumes.create_explained(
        new_volume_name, manifest.size, pool=pool, labels={"storage.backup/restored-from": backup_id}, restoring=True)
    where = private_dir(state_dir(st, vol.id))
    try:
        LiveState(backup_id, repo.url, repo.key_file, vol.id, len(manifest.chunks), manifest.size).write(where / "state.json")
        _fresh_bitmap(where / "bitmap", manifest)
    except OSError as exc:
        fail(st, vol.id, f"cannot write its state in {where}: {exc.strerror}")
        raise BackendError(f"live restore of volume {vol.name!r}: cannot write its state in {str(where)!r} ({exc.strerror})") from None
    return _start(st, vol.id, name, listen, nbdkit, copy_rate, echo)


def resume_live(st: "storage.Storage", volume: str, *, host: str | None = None, port: int | None = None,
                socket: str | None = None, tls_psk: str | None = None, copy_rate: int = 0, echo: bool = True) -> LiveRestore:
    """Serve again and finish a live restore that crashed or was stopped (its state is kept)."""
    listen = srv.check_listen(host, port, socket, tls_psk)
    _check_rate(copy_rate)
    vol = st.volumes.get(volume)
    where = state_dir(st, vol.id)
    if not (where / "state.json").exists():
        raise NotFound(f"volume {vol.name!r} has no live restore to resume (no {where / 'state.json'})", volume=vol.name)
    if vol.status is VolumeStatus.RESTORING_BACKUP:
        owner = _owner(st, vol.id)
        if owner and not owners.is_dead_here(owner):
            raise Conflict(f"volume {vol.name!r} is being restored live by a running process ({owner}); "
                           "stop it first or wait", volume=vol.name)
    elif vol.status is not VolumeStatus.ERROR:
        raise Conflict(f"volume {vol.name!r} is {vol.status.value}; only a volume in error or restoring-backup "
                       "with a live restore state can be resumed", volume=vol.name)
    nbdkit = srv.find_nbdkit()
    _take(st, vol.id)
    return _start(st, vol.id, srv.check_export_name(vol.name), listen, nbdkit, copy_rate, echo)


def prune_states(st: "storage.Storage") -> list[str]:
    """Delete the live restore states of volumes that no longer exist (deleted while in error);
    the ids pruned."""
    root = Path(st.settings.data_dir) / "live-restore"
    gone = []
    for where in sorted(root.glob("*")) if root.is_dir() else []:
        try:
            st.volumes.get(where.name)
        except NotFound:
            shutil.rmtree(where, ignore_errors=True)
            gone.append(where.name)
    return gone


def _owner(st: "storage.Storage", volume_id: str) -> str | None:
    from sqlalchemy import select

    from storage.catalog.volumes import VolumeRow

    with st.catalog.session() as s:
        return s.scalar(select(VolumeRow.task_owner).where(VolumeRow.id == volume_id))


def _take(st: "storage.Storage", volume_id: str) -> None:
    """restoring-backup again, owned by this process (a crash of it is then seen by `check`)."""
    from sqlalchemy import update

    from storage.catalog.volumes import VolumeRow
    from storage.catalog.base import utcnow

    with st.catalog.session() as s:
        s.execute(update(VolumeRow).where(VolumeRow.id == volume_id).values(
            status=VolumeStatus.RESTORING_BACKUP.value, task_owner=owners.this_owner(), description=None, updated_at=utcnow()))


def _check_rate(copy_rate: int) -> None:
    from storage.bounds import check_int

    check_int(copy_rate, field="copy_rate", lo=0, hi=COPY_RATE_MAX, what="bytes per second (0: unlimited)")


def _manifest(repo: Any, backup_id: str) -> "Manifest":
    store = repo.clone_store()
    try:
        return repo.read_manifest(store, backup_id)
    finally:
        store.close()


def _fresh_bitmap(path: Path, manifest: "Manifest") -> None:
    """Zero chunks of the manifest are restored already: the new volume reads zeros there."""
    from storage.nbd.bitmap import RestoreBitmap

    bitmap = RestoreBitmap(path, len(manifest.chunks))
    try:
        for index, ref in enumerate(manifest.chunks):
            if ref is None:
                bitmap.mark(index)
        bitmap.persist(bitmap.snapshot())
    finally:
        bitmap.close()


def _start(st: "storage.Storage", volume_id: str, name: str, listen: srv.Listen, nbdkit: str, copy_rate: int,
           echo: bool) -> LiveRestore:
    from storage.backup.locks import SHARED

    vol = st.volumes.get(volume_id)
    where = state_dir(st, vol.id)
    state = LiveState.read(where / "state.json")
    svc = st.backups
    stack = contextlib.ExitStack()
    try:
        repo = svc.open_repository(state.repository, key_file=state.key_file)
        stack.enter_context(svc.repository_lock(repo, SHARED, f"live restore of {state.backup_id}"))
        path = stack.enter_context(st.host.open_volume(vol.pool, vol.id))
        workdir = Path(tempfile.mkdtemp(prefix="storage-live-"))  # 0700
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        spec = ServeSpec(
            repository=repo.url, backup_id=state.backup_id, export_name=name, key_file=repo.key_file,
            config_file=str(st.settings.config_file) if st.settings.config_file else None,
            sys_path=python_path(), volume_path=str(path), bitmap_path=str(where / "bitmap"), copy_rate=copy_rate,
        )
        spec_path = spec.write(workdir / "spec.json")
        pidfile = workdir / "nbdkit.pid"
        info = LiveInfo(vol.id, vol.name, state.backup_id, name, listen.uri(name), state.size_bytes, state.chunk_count,
                        read_count(where / "bitmap", state.chunk_count), repo.keys is not None, None)
        run = LiveRestore(st, info, where, stack)
        recorder = damage_recorder(svc, repo, state.backup_id, quarantine=True)

        def on_line(line: str) -> None:
            recorder(line)
            run.on_line(line)

        server = srv.NbdServer(nbdkit_live_command(nbdkit, listen, pidfile, spec_path), pidfile, on_line=on_line)
        stack.callback(run.forget)  # after nbdkit stopped (an ExitStack unwinds last in, first out)
        stack.callback(server.stop)
        server.start(echo=echo)
        spec_path.unlink()
        run.server = server
        run.info = LiveInfo(**{**asdict(info), "pid": server.pid})
        assert server.pid is not None
        run.served_id = svc.serving.record_live(backup_id=state.backup_id, volume_id=vol.id, export_name=name, uri=run.uri,
                                                listen=listen, pid=server.pid, size_bytes=state.size_bytes)
        return run
    except BaseException as exc:
        stack.close()
        reason = exc.message if isinstance(exc, StorageError) else type(exc).__name__
        fail(st, volume_id, reason)
        raise


__all__ = ["LiveInfo", "LiveRestore", "live_restore", "outcome", "resume_live"]
