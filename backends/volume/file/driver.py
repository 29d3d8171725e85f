"""The ``file`` volume backend: sparse image files in a pool directory, attached as loop devices.

Layout under the pool ``path``: ``volumes/<volume uuid>.img`` and
``snapshots/<snapshot uuid>.img`` (the owning volume's id is kept in the
``user.storage.volume_id`` xattr when the filesystem supports it). Snapshots and clones are
reflinks (FICLONE) on xfs/btrfs and hole-preserving copies elsewhere; ``capabilities()``
reports which as ``copy_method``. Sizes are multiples of 1 MiB.

Options: ``path`` (pool directory, required), ``overcommit_ratio`` (float > 0, default 1.0),
``direct_io`` ("auto" | "on" | "off", default "auto"), ``connector`` ("losetup" | "os-brick",
default "losetup"). With "os-brick" the loop device is passed through os-brick's LOCAL
connector. os-brick imports eventlet, and importing it first in a non-main thread leaves that
thread unable to exit (measured: the thread never finishes and join() hangs), so the backend
imports os-brick on the main thread when it is constructed there, and attaches from other
threads without it when it is not loaded yet.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from backends.volume.file import copy as file_copy

from backends.volume.file import loop as file_loop
from backends.volume.base import (
    BackendItem,
    Capabilities,
    ChangedRanges,
    PoolUsage,
    ProgressCallback,
    VolumeBackend,
    WipeMode,
)
from storage.errors import BackendError, Conflict, InsufficientCapacity, InvalidInput, NotFound

MIB = 1024 * 1024
XATTR_VOLUME = "user.storage.volume_id"
_DIRECT_IO = ("auto", "on", "off")
_CONNECTORS = ("os-brick", "losetup")


class FileVolumeBackend(VolumeBackend):
    driver_name: ClassVar[str] = "file"

    def __init__(self, pool_name: str, options: Mapping[str, Any]) -> None:
        super().__init__(pool_name, options)
        if not options.get("path"):
            raise InvalidInput(f"pool {pool_name!r}: the file driver needs option 'path' (the pool directory)")
        self.root = Path(str(options["path"])).expanduser().absolute()
        try:
            self.overcommit_ratio = float(options.get("overcommit_ratio", 1.0))
        except (TypeError, ValueError):
            self.overcommit_ratio = -1.0
        if not self.overcommit_ratio > 0:
            raise InvalidInput(
                f"pool {pool_name!r}: overcommit_ratio {options.get('overcommit_ratio')!r} is not accepted; "
                "accepted: a number greater than 0 (1.0 = no overcommit)"
            )
        self.direct_io = str(options.get("direct_io", "auto")).lower()
        if self.direct_io in ("true", "yes"):
            self.direct_io = "on"
        if self.direct_io in ("false", "no"):
            self.direct_io = "off"
        if self.direct_io not in _DIRECT_IO:
            raise InvalidInput(f"pool {pool_name!r}: direct_io {options.get('direct_io')!r}; accepted: auto, on, off")
        self.connector = str(options.get("connector", "losetup"))
        if self.connector not in _CONNECTORS:
            raise InvalidInput(f"pool {pool_name!r}: connector {self.connector!r}; accepted: {', '.join(_CONNECTORS)}")
        self._thread_lock = threading.Lock()
        self._reflink: bool | None = None
        self._ensure_dirs()
        if self.connector == "os-brick" and threading.current_thread() is threading.main_thread():
            _load_os_brick()

    # -- paths -------------------------------------------------------------
    def _ensure_dirs(self) -> None:
        try:
            (self.root / "volumes").mkdir(parents=True, exist_ok=True)
            (self.root / "snapshots").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"pool {self.pool_name!r}: cannot create pool directory {self.root}: {exc.strerror}") from None

    def volume_path(self, volume_id: str) -> Path:
        return self.root / "volumes" / f"{_safe_id(volume_id)}.img"

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / f"{_safe_id(snapshot_id)}.img"

    def _existing_volume(self, volume_id: str) -> Path:
        path = self.volume_path(volume_id)
        if not path.is_file():
            raise NotFound(f"volume {volume_id} has no image file in pool {self.pool_name!r} ({path})")
        return path

    def _existing_snapshot(self, snapshot_id: str) -> Path:
        path = self.snapshot_path(snapshot_id)
        if not path.is_file():
            raise NotFound(f"snapshot {snapshot_id} has no image file in pool {self.pool_name!r} ({path})")
        return path

    @contextmanager
    def _capacity_lock(self) -> Iterator[None]:
        """Capacity check + allocation as one step, across threads and processes (flock on .lock)."""
        import fcntl

        with self._thread_lock, open(self.root / ".lock", "a") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    # -- pool --------------------------------------------------------------
    @property
    def reflink(self) -> bool:
        if self._reflink is None:
            self._reflink = file_copy.reflink_supported(self.root)
        return self._reflink

    def capabilities(self) -> Capabilities:
        return Capabilities(
            thin=True,
            changed_ranges=self.reflink,
            copy_method="reflink" if self.reflink else "copy",
            size_granularity=MIB,
        )

    def usage(self) -> PoolUsage:
        vfs = os.statvfs(self.root)
        provisioned = allocated = volumes = 0
        for sub in ("volumes", "snapshots"):
            for st in _stats((self.root / sub).glob("*.img")):
                provisioned += st.st_size
                allocated += st.st_blocks * 512
                volumes += st.st_size if sub == "volumes" else 0
        return PoolUsage(
            total_bytes=vfs.f_blocks * vfs.f_frsize,
            free_bytes=vfs.f_bavail * vfs.f_frsize,
            provisioned_bytes=provisioned,
            allocated_bytes=allocated,
            overcommit_ratio=self.overcommit_ratio,
            extra={"path": str(self.root), "direct_io": self.direct_io},
            limit_counted_bytes=volumes,  # _require_capacity counts volumes only
        )

    def _volume_provisioned(self) -> int:
        return sum(st.st_size for st in _stats((self.root / "volumes").glob("*.img")))

    def _require_capacity(self, extra_bytes: int) -> None:
        """Refuse to provision past total * overcommit_ratio (volumes' virtual sizes)."""
        vfs = os.statvfs(self.root)
        total = vfs.f_blocks * vfs.f_frsize
        limit = int(total * self.overcommit_ratio)
        provisioned = self._volume_provisioned()
        if provisioned + extra_bytes > limit:
            raise InsufficientCapacity(
                f"pool {self.pool_name!r} cannot provision {extra_bytes} more bytes: {provisioned} of "
                f"{limit} bytes (total {total} x overcommit_ratio {self.overcommit_ratio}) are provisioned",
                pool=self.pool_name,
            )

    def check_host(self) -> None:
        file_loop.check_loop_support()

    # -- volumes -----------------------------------------------------------
    def create_volume(self, volume_id: str, size_bytes: int) -> None:
        path = self.volume_path(volume_id)
        with self._capacity_lock():
            self._require_capacity(size_bytes)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise Conflict(f"volume {volume_id} already has an image file in pool {self.pool_name!r}") from None
            try:
                os.ftruncate(fd, size_bytes)
                os.fsync(fd)
            except OSError as exc:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise BackendError(f"cannot size {path} to {size_bytes} bytes: {exc.strerror}") from None
            os.close(fd)

    def delete_volume(
        self, volume_id: str, wipe: WipeMode = WipeMode.NONE, progress: ProgressCallback | None = None
    ) -> None:
        path = self.volume_path(volume_id)
        if not path.exists():
            return  # already gone: deleting is idempotent
        if file_loop.devices_for(path):
            raise Conflict(f"volume {volume_id} is attached at {', '.join(file_loop.devices_for(path))}; detach it first")
        if WipeMode(wipe) is WipeMode.ZERO:
            file_copy.zero_data(path, progress)
        path.unlink(missing_ok=True)

    def extend_volume(self, volume_id: str, new_size_bytes: int) -> None:
        path = self._existing_volume(volume_id)
        current = path.stat().st_size
        if new_size_bytes < current:
            raise InvalidInput(f"new size {new_size_bytes} is smaller than the current {current} bytes; shrinking is refused")
        with self._capacity_lock():
            self._require_capacity(new_size_bytes - current)
            os.truncate(path, new_size_bytes)
        for device in file_loop.devices_for(path):
            file_loop.refresh_size(device)

    def clone_volume(self, source_volume_id: str, new_volume_id: str, size_bytes: int) -> None:
        src = self._existing_volume(source_volume_id)
        self._flush_attached(src)
        self._copy_new(src, self.volume_path(new_volume_id), size_bytes)

    def _copy_new(self, src: Path, dst: Path, size_bytes: int) -> None:
        if dst.exists():
            raise Conflict(f"{dst.name} already exists in pool {self.pool_name!r}")
        with self._capacity_lock():
            self._require_capacity(size_bytes)
            self._require_space_for_copy(src)
            file_copy.copy_file(src, dst, reflink=self.reflink, size_bytes=size_bytes)

    def _require_space_for_copy(self, src: Path) -> None:
        if self.reflink:
            return
        allocated = src.stat().st_blocks * 512
        vfs = os.statvfs(self.root)
        if allocated > vfs.f_bavail * vfs.f_frsize:
            raise InsufficientCapacity(
                f"pool {self.pool_name!r} has {vfs.f_bavail * vfs.f_frsize} bytes free; copying {src.name} "
                f"needs {allocated}"
            )

    def _flush_attached(self, path: Path) -> None:
        for device in file_loop.devices_for(path):
            file_loop.flush(device)

    # -- snapshots ---------------------------------------------------------
    def create_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        src = self._existing_volume(volume_id)
        dst = self.snapshot_path(snapshot_id)
        if dst.exists():
            raise Conflict(f"snapshot {snapshot_id} already has an image file in pool {self.pool_name!r}")
        self._flush_attached(src)
        with self._capacity_lock():
            self._require_space_for_copy(src)
            file_copy.copy_file(src, dst, reflink=self.reflink)
        try:
            os.setxattr(dst, XATTR_VOLUME, volume_id.encode())
        except OSError:
            pass  # no user xattrs here: reconciliation then relies on the catalog for the parent
        os.chmod(dst, 0o400)

    def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        self.snapshot_path(snapshot_id).unlink(missing_ok=True)

    def clone_snapshot(self, volume_id: str, snapshot_id: str, new_volume_id: str, size_bytes: int) -> None:
        src = self._existing_snapshot(snapshot_id)
        self._copy_new(src, self.volume_path(new_volume_id), size_bytes)
        os.chmod(self.volume_path(new_volume_id), 0o600)

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """Replace the volume's image by a copy of the snapshot, keeping the volume's current size."""
        vol = self._existing_volume(volume_id)
        snap = self._existing_snapshot(snapshot_id)
        if file_loop.devices_for(vol):
            raise Conflict(f"volume {volume_id} is attached; detach it before reverting")
        size = max(vol.stat().st_size, snap.stat().st_size)
        tmp = vol.with_name(vol.name + ".revert")
        tmp.unlink(missing_ok=True)
        self._require_space_for_copy(snap)
        file_copy.copy_file(snap, tmp, reflink=self.reflink, size_bytes=size)
        os.chmod(tmp, 0o600)
        os.replace(tmp, vol)

    # -- attach ------------------------------------------------------------
    def attach(self, volume_id: str) -> str:
        path = self._existing_volume(volume_id)
        existing = file_loop.devices_for(path)
        if existing:
            return existing[0]
        self.check_host()
        device = file_loop.attach(path, direct_io=self.direct_io)
        if not device.startswith("/dev/loop"):
            raise BackendError(f"losetup returned {device!r} instead of a /dev/loopN path")
        if self.connector == "os-brick" and _os_brick_usable():
            try:
                device = _os_brick_local(device)
            except Exception:
                file_loop.detach(device)
                raise
        return device

    def detach(self, volume_id: str) -> None:
        path = self.volume_path(volume_id)
        for device in file_loop.devices_for(path):
            file_loop.detach(device)

    def attached_device(self, volume_id: str) -> str | None:
        devices = file_loop.devices_for(self.volume_path(volume_id))
        return devices[0] if devices else None

    # -- reading -------------------------------------------------------------
    @contextmanager
    def open_snapshot(self, volume_id: str, snapshot_id: str) -> Iterator[str]:
        yield str(self._existing_snapshot(snapshot_id))

    @contextmanager
    def open_volume(self, volume_id: str) -> Iterator[str]:
        """The loop device when attached (so no write bypasses its cache), else the image file."""
        path = self._existing_volume(volume_id)
        devices = file_loop.devices_for(path)
        yield devices[0] if devices else str(path)

    def is_all_holes(self, volume_id: str) -> bool:
        """SEEK_DATA from offset 0 finds nothing (ENXIO): the sparse file holds no data block."""
        import errno

        path = self._existing_volume(volume_id)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.lseek(fd, 0, os.SEEK_DATA)
        except OSError as exc:
            return exc.errno == errno.ENXIO
        finally:
            os.close(fd)
        return False

    def changed_ranges(self, volume_id: str, base_snapshot_id: str, snapshot_id: str) -> ChangedRanges | None:
        """Ranges of the newer snapshot not sharing blocks with the base (FIEMAP); None without reflinks."""
        if not self.reflink:
            return None
        base = self._existing_snapshot(base_snapshot_id)
        new = self._existing_snapshot(snapshot_id)
        try:
            ranges = file_copy.changed_extents(file_copy.fiemap(base), file_copy.fiemap(new))
        except OSError:
            return None
        size = new.stat().st_size
        clipped = [(o, min(length, size - o)) for o, length in ranges if o < size]
        return ChangedRanges(ranges=clipped, source="fiemap")

    # -- reconciliation --------------------------------------------------------
    def list_items(self) -> list[BackendItem]:
        """Volumes and snapshots in the pool; a file deleted while we list (another process's
        delete) is left out rather than failing the whole listing."""
        items: list[BackendItem] = []
        for path in sorted((self.root / "volumes").glob("*.img")):
            size = _size_or_none(path)
            if size is not None:
                items.append(BackendItem("volume", path.stem, size, None, str(path)))
        for path in sorted((self.root / "snapshots").glob("*.img")):
            try:
                parent: str | None = os.getxattr(path, XATTR_VOLUME).decode()
            except OSError:
                parent = None
            size = _size_or_none(path)
            if size is not None:
                items.append(BackendItem("snapshot", path.stem, size, parent, str(path)))
        return items

    def stale_attachments(self, known_volume_ids: set[str]) -> list[str]:
        """Loop devices backed by a file of this pool that belongs to no attached volume."""
        stale: list[str] = []
        for loop in file_loop.list_loops():
            back, _deleted = file_loop.strip_deleted(loop.get("back-file") or "")
            if not back:
                continue
            path = Path(back)
            if path.parent.parent != self.root or path.suffix != ".img":
                continue
            if path.parent.name == "volumes" and path.stem in known_volume_ids and path.exists():
                continue
            stale.append(loop["name"])
        return sorted(stale)

    def remove_stale_attachment(self, device: str) -> None:
        file_loop.detach(device)


def _safe_id(item_id: str) -> str:
    """Ids are catalog UUIDs; anything else could escape the pool directory."""
    import uuid

    try:
        return str(uuid.UUID(item_id))
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(f"{item_id!r} is not a volume or snapshot id; accepted: a UUID") from None


def _load_os_brick() -> Any:
    import warnings

    with warnings.catch_warnings():  # os-brick pulls in eventlet, which warns on import
        warnings.simplefilter("ignore")
        from os_brick.initiator import connector as brick_connector
    return brick_connector


def _os_brick_usable() -> bool:
    """os-brick may be used once imported, or when we are on the main thread (safe to import)."""
    import sys

    return "os_brick.initiator.connector" in sys.modules or threading.current_thread() is threading.main_thread()


def _os_brick_local(device: str) -> str:
    """Pass the loop device through os-brick's LOCAL connector (validates it, returns its path)."""
    conn = _load_os_brick().InitiatorConnector.factory("LOCAL", "sudo")
    info = conn.connect_volume({"device_path": device})
    return str(info.get("path") or device)


def _stats(paths: Iterator[Path]) -> Iterator[os.stat_result]:
    """stat() each path, passing over files deleted meanwhile (a concurrent delete)."""
    for path in paths:
        try:
            yield path.stat()
        except FileNotFoundError:
            continue


def _size_or_none(path: Path) -> int | None:
    """The file's size, or None when it vanished between the directory listing and the stat."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None
