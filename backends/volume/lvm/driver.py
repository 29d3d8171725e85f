"""LVM volume backend (driver ``lvm``) through os-brick's ``os_brick.local_dev.lvm.LVM``.

Options: ``vg_name`` (required), ``lvm_type`` = ``thick`` (default) | ``thin``, ``thin_pool``
(default ``<vg>-pool``, created with the VG's free space when missing), ``lvm_conf`` (an
lvm.conf whose directory becomes LVM_SYSTEM_DIR), ``physical_volumes`` (create the VG on these
devices when it does not exist), ``wipe`` = ``none`` | ``zero`` (minimum wipe on delete),
``max_over_subscription_ratio`` (thin; default 20), ``run_dir`` (attachment markers).

Thick: volumes are linear LVs; snapshots are copy-on-write LVs sized to absorb a full rewrite;
revert merges the snapshot (``lvconvert --merge``, origin deactivated so the merge starts at
once) and re-creates it. Thin: snapshots and clones are thin snapshots; revert makes a thin
snapshot of the snapshot and swaps it in under the volume's name (Cinder cannot revert thin);
``changed_ranges`` uses ``thin_delta`` on a metadata snapshot of the live pool, then compares
``delta_verify_samples`` (default 8) random blocks it calls unchanged in both snapshots; on any
difference it logs a warning and returns None, so the backup engine does a full read.
Extending a thick volume that has snapshots needs it inactive (LVM), so it is refused while
the volume is in use; everything else extends online.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

from backends.volume.lvm import io as lvm_io
from backends.volume.base import (
    BackendItem,
    Capabilities,
    ChangedRanges,
    PoolUsage,
    ProgressCallback,
    VolumeBackend,
    WipeMode,
)
from backends.volume.lvm.brick import LvmExecutor, brick_error, make_brick_lvm
from backends.volume.lvm.names import (
    LVS_ARGS,
    VGS_FIELDS,
    LvInfo,
    VgInfo,
    cow_size_bytes,
    id_of,
    parent_tag,
    parse_lvs,
    parse_vgs,
    snapshot_lv,
    validate_vg_name,
    volume_lv,
)
from backends.volume.lvm.thin_delta import clip_ranges, merge_ranges, parse_thin_delta, sample_unchanged, thin_delta_command
from storage.errors import BackendError, Conflict, InvalidInput, NotFound, StorageError, Unsupported

log = logging.getLogger(__name__)

DEFAULT_EXTENT = 4 * 1024 * 1024
MERGE_TIMEOUT = 300.0


def dm_name(vg: str, lv: str) -> str:
    """The device-mapper name of vg/lv: dashes doubled, joined by one dash (pure)."""
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def parse_lvm_type(value: object) -> str:
    text = str(value or "thick").lower()
    if text == "default":
        text = "thick"
    if text not in ("thick", "thin"):
        raise InvalidInput(f"LVM option lvm_type {value!r} is not accepted; accepted: thick, thin", field="lvm_type")
    return text


def parse_physical_volumes(value: object) -> list[str]:
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[arg-type]
    devices = [str(i).strip() for i in items if str(i).strip()]
    for device in devices:
        if not device.startswith("/dev/"):
            raise InvalidInput(f"LVM option physical_volumes entry {device!r} is not a device path under /dev/", field="physical_volumes")
    return devices


def kernel_has_device_mapper(misc: str = "/proc/misc") -> bool:
    """Whether the running kernel has device-mapper: its misc device is registered in /proc/misc.

    /dev/mapper/control alone proves nothing: installing lvm2/dmsetup (or a stray mknod) creates
    the node on a kernel without device-mapper.
    """
    try:
        with open(misc, encoding="ascii", errors="replace") as fh:
            return any(line.split()[-1:] == ["device-mapper"] for line in fh)
    except OSError:
        return False


class LvmVolumeBackend(VolumeBackend):
    driver_name = "lvm"

    def __init__(self, pool_name: str, options: Mapping[str, Any]) -> None:
        super().__init__(pool_name, options)
        self.vg = validate_vg_name(self.options.get("vg_name"))
        self.lvm_type = parse_lvm_type(self.options.get("lvm_type"))
        self.thin = self.lvm_type == "thin"
        self.thin_pool = validate_vg_name(self.options.get("thin_pool") or f"{self.vg}-pool")
        self.lvm_conf = self.options.get("lvm_conf") or None
        if self.lvm_conf and not os.path.isfile(self.lvm_conf):
            raise InvalidInput(f"LVM option lvm_conf {self.lvm_conf!r} is not a file", field="lvm_conf")
        self.physical_volumes = parse_physical_volumes(self.options.get("physical_volumes"))
        self.min_wipe = WipeMode(str(self.options.get("wipe", "none")))
        self.overcommit = float(self.options.get("max_over_subscription_ratio", 20.0 if self.thin else 1.0))
        self.run_dir = Path(str(self.options.get("run_dir", "/run/storage/lvm"))) / self.vg
        self.verify_samples = int(self.options.get("delta_verify_samples", 8))
        self.executor = LvmExecutor(self.lvm_conf)
        self._brick: Any = None
        self._extent: int | None = None

    # -- host and os-brick ------------------------------------------------------
    def check_host(self) -> None:
        if not kernel_has_device_mapper():
            raise Unsupported(
                "LVM volumes need the kernel's device-mapper, which this host does not have "
                "(no device-mapper in /proc/misc), so pool "
                f"{self.pool_name!r} cannot be used here."
            )
        if shutil.which("lvm") is None:
            raise Unsupported("LVM volumes need the lvm2 tools, which are not installed (Debian package lvm2).")
        if self.thin and shutil.which("thin_check") is None:
            raise Unsupported(
                "thin LVM pools need thin-provisioning-tools (thin_check, thin_delta), which are not installed."
            )

    @property
    def brick(self) -> Any:
        if self._brick is None:
            self.check_host()
            self._brick = make_brick_lvm(
                self.vg,
                lvm_type=self.lvm_type,
                executor=self.executor,
                thin_pool=self.thin_pool,
                physical_volumes=self.physical_volumes or None,
            )
        return self._brick

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - os-brick and oslo raise many types
            raise brick_error(what, exc) from None

    def _run(self, args: list[str], what: str) -> str:
        self.brick  # noqa: B018 - host check and VG existence first
        return self.executor.run(args, what)

    # -- state ------------------------------------------------------------------
    def _lvs(self, lv_name: str | None = None) -> list[LvInfo]:
        target = f"{self.vg}/{lv_name}" if lv_name else self.vg
        try:
            return parse_lvs(self._run(LVS_ARGS + [target], f"listing LVs of {target}"))
        except NotFound:
            return []

    def _lv(self, lv_name: str) -> LvInfo | None:
        found = [lv for lv in self._lvs(lv_name) if lv.name == lv_name]
        return found[0] if found else None

    def _vg_info(self) -> VgInfo:
        out = self._run(
            ["vgs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|", "-o", ",".join(VGS_FIELDS), self.vg],
            f"reading volume group {self.vg}",
        )
        return parse_vgs(out)

    def _require_volume(self, volume_id: str) -> LvInfo:
        lv = self._lv(volume_lv(volume_id))
        if lv is None:
            raise NotFound(f"volume {volume_id} has no LV in volume group {self.vg!r} (pool {self.pool_name!r})")
        return lv

    def _require_snapshot(self, snapshot_id: str) -> LvInfo:
        lv = self._lv(snapshot_lv(snapshot_id))
        if lv is None:
            raise NotFound(f"snapshot {snapshot_id} has no LV in volume group {self.vg!r} (pool {self.pool_name!r})")
        return lv

    def _path(self, lv_name: str) -> str:
        return f"/dev/{self.vg}/{lv_name}"

    def _activate(self, lv_name: str, permanent: bool = False) -> str:
        self._call(f"activating {self.vg}/{lv_name}", self.brick.activate_lv, lv_name, permanent=permanent)
        return self._wait_for_device(self._path(lv_name))

    @staticmethod
    def _wait_for_device(path: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise BackendError(f"{path} did not appear after activation")
            time.sleep(0.05)
        return path

    def _ensure_active(self, lv: LvInfo) -> str:
        return self._path(lv.name) if lv.active and os.path.exists(self._path(lv.name)) else self._activate(lv.name)

    # -- pool -------------------------------------------------------------------
    def extent_bytes(self) -> int:
        if self._extent is None:
            try:
                self._extent = self._vg_info().extent_bytes
            except Unsupported:
                return DEFAULT_EXTENT
        return self._extent

    def capabilities(self) -> Capabilities:
        return Capabilities(
            thin=self.thin,
            snapshots=True,
            clone=True,
            revert=True,
            online_extend=True,  # except a thick volume with snapshots (LVM needs it inactive)
            changed_ranges=self.thin,
            copy_method="cow" if self.thin else "copy",
            size_granularity=self.extent_bytes(),
        )

    def usage(self) -> PoolUsage:
        vg = self._vg_info()
        lvs = self._lvs()
        ours = [lv for lv in lvs if id_of(lv.name)]
        provisioned = sum(lv.data_size_bytes for lv in ours)
        if not self.thin:
            return PoolUsage(vg.size_bytes, vg.free_bytes, provisioned, vg.size_bytes - vg.free_bytes, 1.0,
                             {"vg_name": self.vg, "extent_bytes": vg.extent_bytes})
        pool = next((lv for lv in lvs if lv.name == self.thin_pool), None)
        if pool is None:
            raise NotFound(f"thin pool {self.vg}/{self.thin_pool} does not exist")
        data_pct = pool.data_percent or 0.0
        allocated = int(pool.size_bytes * data_pct / 100)
        extra = {
            "vg_name": self.vg, "thin_pool": self.thin_pool, "data_percent": data_pct,
            "metadata_percent": pool.metadata_percent or 0.0, "vg_free_bytes": vg.free_bytes,
        }
        return PoolUsage(pool.size_bytes, pool.size_bytes - allocated, provisioned, allocated, self.overcommit, extra)

    # -- volumes ----------------------------------------------------------------
    def create_volume(self, volume_id: str, size_bytes: int) -> None:
        name = volume_lv(volume_id)
        if size_bytes <= 0:
            raise InvalidInput(f"volume size {size_bytes} must be greater than zero")
        self._call(f"creating LV {self.vg}/{name}", self.brick.create_volume, name, f"{size_bytes}b",
                   lv_type="thin" if self.thin else "default")

    def delete_volume(self, volume_id: str, wipe: WipeMode = WipeMode.NONE, progress: ProgressCallback | None = None) -> None:
        name = volume_lv(volume_id)
        all_lvs = self._lvs()
        lv = next((x for x in all_lvs if x.name == name), None)
        if lv is None:
            return  # already gone: deleting is idempotent
        if self.attached_device(volume_id) or lv.is_open:
            raise Conflict(f"volume {volume_id} is in use ({self._path(name)} is attached or open); detach it first")
        snaps = [s for s in all_lvs if s.parent_volume_id() == volume_id]
        if snaps:
            raise Conflict(f"volume {volume_id} still has {len(snaps)} snapshot(s); delete them first")
        mode = WipeMode.ZERO if WipeMode.ZERO in (WipeMode(wipe), self.min_wipe) else WipeMode.NONE
        if mode is WipeMode.ZERO:
            path = self._ensure_active(lv)
            if self.thin:
                # Unmapping returns the blocks to the pool, which zeroes blocks it provisions anew.
                lvm_io.discard_device(path, lv.size_bytes, progress)
            else:
                lvm_io.zero_device(path, lv.size_bytes, progress)
        self._call(f"removing LV {self.vg}/{name}", self.brick.delete, name)

    def extend_volume(self, volume_id: str, new_size_bytes: int) -> None:
        lv = self._require_volume(volume_id)
        if new_size_bytes < lv.size_bytes:
            raise InvalidInput(f"new size {new_size_bytes} is smaller than the current {lv.size_bytes} bytes; shrinking is refused")
        if new_size_bytes == lv.size_bytes:
            return
        has_old_snapshots = lv.attr[:1] in ("o", "O")
        if has_old_snapshots and (lv.is_open or self.attached_device(volume_id)):
            raise Conflict(
                f"volume {volume_id} is a thick LV with snapshots; LVM can extend it only while it is inactive, "
                "and it is in use: detach it (or delete its snapshots) first"
            )
        self._call(f"extending {self.vg}/{lv.name}", self.brick.extend_volume, lv.name, f"{new_size_bytes}b")
        if has_old_snapshots:
            self._activate(lv.name)  # os-brick deactivated it and does not reactivate

    def clone_volume(self, source_volume_id: str, new_volume_id: str, size_bytes: int) -> None:
        src = self._require_volume(source_volume_id)
        self._clone_from(src, volume_lv(new_volume_id), size_bytes, what=f"volume {source_volume_id}")

    def _clone_from(self, src: LvInfo, new_name: str, size_bytes: int, what: str) -> None:
        if size_bytes < src.size_bytes:
            raise InvalidInput(f"clone size {size_bytes} is smaller than {what} ({src.size_bytes} bytes)")
        if self.thin:
            self._call(f"thin snapshot of {src.name}", self.brick.create_lv_snapshot, new_name, src.name, "thin")
            self._activate(new_name, permanent=True)  # a clone is a volume: drop the activation-skip flag
            if size_bytes > src.size_bytes:
                self._call(f"extending {new_name}", self.brick.extend_volume, new_name, f"{size_bytes}b")
            return
        self._call(f"creating LV {self.vg}/{new_name}", self.brick.create_volume, new_name, f"{size_bytes}b")
        try:
            source = self._ensure_active(src)
            target = self._active_path(new_name)
            lvm_io.copy_device(source, target, src.data_size_bytes, size_bytes)
        except BaseException:
            self._call(f"removing LV {self.vg}/{new_name}", self.brick.delete, new_name)
            raise

    # -- snapshots --------------------------------------------------------------
    def create_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        # Our own lvcreate rather than os-brick's create_lv_snapshot: it sets the parent tag in
        # the same metadata commit, and sizes a thick snapshot's exception store correctly.
        lv = self._require_volume(volume_id)
        name = snapshot_lv(snapshot_id)
        args = ["lvcreate", "--snapshot", "--name", name, "--addtag", parent_tag(volume_id)]
        if self.thin:
            args += ["--setactivationskip", "y"]
        else:
            args += ["--size", f"{cow_size_bytes(lv.size_bytes, self.extent_bytes())}b"]
        self._run(args + [f"{self.vg}/{lv.name}"], f"creating snapshot {self.vg}/{name}")

    def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        name = snapshot_lv(snapshot_id)
        if self._lv(name) is None:
            return
        self._call(f"removing snapshot {self.vg}/{name}", self.brick.delete, name)

    def clone_snapshot(self, volume_id: str, snapshot_id: str, new_volume_id: str, size_bytes: int) -> None:
        snap = self._require_snapshot(snapshot_id)
        if self.thin:
            self._clone_from(snap, volume_lv(new_volume_id), size_bytes, what=f"snapshot {snapshot_id}")
            return
        origin = self._require_volume(volume_id)  # a thick snapshot's size is its exception store's
        new_name = volume_lv(new_volume_id)
        if size_bytes < origin.size_bytes:
            raise InvalidInput(f"clone size {size_bytes} is smaller than snapshot {snapshot_id} ({origin.size_bytes} bytes)")
        self._call(f"creating LV {self.vg}/{new_name}", self.brick.create_volume, new_name, f"{size_bytes}b")
        try:
            with self.open_snapshot(volume_id, snapshot_id) as source:
                lvm_io.copy_device(source, self._active_path(new_name), origin.size_bytes, size_bytes)
        except BaseException:
            self._call(f"removing LV {self.vg}/{new_name}", self.brick.delete, new_name)
            raise

    def _require_lv(self, name: str) -> LvInfo:
        lv = self._lv(name)
        if lv is None:
            raise NotFound(f"LV {self.vg}/{name} does not exist")
        return lv

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        lv = self._require_volume(volume_id)
        snap = self._require_snapshot(snapshot_id)
        if lv.is_open or self.attached_device(volume_id):
            raise Conflict(f"volume {volume_id} is in use; detach it before reverting it to a snapshot")
        if self.thin:
            self._revert_thin(volume_id, lv, snap)
        else:
            self._revert_thick(volume_id, snapshot_id, lv, snap)

    def _revert_thin(self, volume_id: str, lv: LvInfo, snap: LvInfo) -> None:
        """Swap in a thin snapshot of the snapshot under the volume's name; the snapshot stays."""
        fresh, old = f"revert-{volume_id}", f"old-{volume_id}"
        self._call(f"thin snapshot of {snap.name}", self.brick.create_lv_snapshot, fresh, snap.name, "thin")
        self._call(f"renaming {lv.name}", self.brick.rename_volume, lv.name, old)
        try:
            self._call(f"renaming {fresh}", self.brick.rename_volume, fresh, lv.name)
        except StorageError:
            self._call(f"renaming {old} back", self.brick.rename_volume, old, lv.name)
            raise
        self._activate(lv.name, permanent=True)
        if lv.size_bytes > snap.size_bytes:  # the volume was extended after the snapshot: keep its size
            self._call(f"extending {lv.name}", self.brick.extend_volume, lv.name, f"{lv.size_bytes}b")
        self._call(f"removing {old}", self.brick.delete, old)

    def _revert_thick(self, volume_id: str, snapshot_id: str, lv: LvInfo, snap: LvInfo) -> None:
        """Merge the snapshot into its origin (it is consumed), wait, and re-create it."""
        self._call(f"deactivating {lv.name}", self.brick.deactivate_lv, lv.name)
        try:
            self._call(f"merging {snap.name} into {lv.name}", self.brick.revert, snap.name)
        finally:
            self._activate(lv.name)
        deadline = time.monotonic() + MERGE_TIMEOUT
        while self._lv(snap.name) is not None:
            if time.monotonic() > deadline:
                raise BackendError(f"merge of {snap.name} into {lv.name} did not finish within {MERGE_TIMEOUT:.0f} s")
            time.sleep(0.2)
        self.create_snapshot(volume_id, snapshot_id)

    # -- attach -----------------------------------------------------------------
    def _marker(self, volume_id: str) -> Path:
        return self.run_dir / volume_id

    def attach(self, volume_id: str) -> str:
        path = self._active_path(volume_lv(volume_id))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._marker(volume_id).write_text(path + "\n")
        return path

    def detach(self, volume_id: str) -> None:
        self._marker(volume_id).unlink(missing_ok=True)

    def attached_device(self, volume_id: str) -> str | None:
        marker = self._marker(volume_id)
        if not marker.exists():
            return None
        path = marker.read_text().strip()
        if not os.path.exists(path):
            marker.unlink(missing_ok=True)  # the LV went away (deleted, host rebooted)
            return None
        return path

    def stale_attachments(self, known_volume_ids: set[str]) -> list[str]:
        if not self.run_dir.is_dir():
            return []
        return [p.read_text().strip() for p in self.run_dir.iterdir() if p.name not in known_volume_ids]

    # -- reading ----------------------------------------------------------------
    def _active_path(self, lv_name: str) -> str:
        """The device of an LV, activating it if needed (an active LV costs no LVM command)."""
        path = self._path(lv_name)
        return path if os.path.exists(path) else self._ensure_active(self._require_lv(lv_name))

    @contextmanager
    def open_volume(self, volume_id: str) -> Iterator[str]:
        yield self._active_path(volume_lv(volume_id))

    @contextmanager
    def open_snapshot(self, volume_id: str, snapshot_id: str) -> Iterator[str]:
        # A thin snapshot stays active afterwards: deactivating costs two LVM commands and an
        # active thin LV costs the pool nothing; a thick snapshot is active with its origin.
        yield self._active_path(snapshot_lv(snapshot_id))

    def changed_ranges(self, volume_id: str, base_snapshot_id: str, snapshot_id: str) -> ChangedRanges | None:
        if not self.thin:
            return None
        from backends.volume.lvm.thin_delta import thin_ids

        base, new = self._require_snapshot(base_snapshot_id), self._require_snapshot(snapshot_id)
        ids = thin_ids(self._run(["lvs", "--noheadings", "--separator", "|", "-o", "lv_name,thin_id", self.vg], "reading thin ids"))
        pool_dm = dm_name(self.vg, self.thin_pool)
        tpool = f"{pool_dm}-tpool" if os.path.exists(f"/dev/mapper/{pool_dm}-tpool") else pool_dm
        tmeta = f"/dev/mapper/{dm_name(self.vg, self.thin_pool + '_tmeta')}"
        self._run(["dmsetup", "message", tpool, "0", "reserve_metadata_snap"], f"reserving a metadata snapshot of {tpool}")
        try:
            xml = self._run(thin_delta_command(tmeta, ids[base.name], ids[new.name]), "thin_delta")
        finally:
            self._run(["dmsetup", "message", tpool, "0", "release_metadata_snap"], f"releasing the metadata snapshot of {tpool}")
        block, ranges = parse_thin_delta(xml)
        ranges = clip_ranges(ranges, new.size_bytes)
        if new.size_bytes > base.size_bytes:  # grown since the base: the new tail differs by definition
            ranges = merge_ranges(ranges + [(base.size_bytes, new.size_bytes - base.size_bytes)])
        mismatch = self._spot_check(volume_id, base_snapshot_id, snapshot_id, ranges, min(base.size_bytes, new.size_bytes), block)
        if mismatch is not None:
            log.warning(
                "thin_delta said %s/%s and %s are identical at byte %d but they differ there; "
                "falling back to a full read", self.vg, base.name, new.name, mismatch,
            )
            return None
        return ChangedRanges(ranges, "thin_delta")

    def _spot_check(
        self, volume_id: str, base_id: str, new_id: str, ranges: list[tuple[int, int]], size: int, block: int
    ) -> int | None:
        """Compare a few random blocks thin_delta calls unchanged in both snapshots; the first
        offset that differs, or None. Guards the backup against a wrong delta (bug, stale ids)."""
        offsets = sample_unchanged(ranges, size, block, self.verify_samples, random.SystemRandom())
        if not offsets:
            return None
        with self.open_snapshot(volume_id, base_id) as base_path, self.open_snapshot(volume_id, new_id) as new_path:
            base_fd, new_fd = os.open(base_path, os.O_RDONLY), os.open(new_path, os.O_RDONLY)
            try:
                for offset in offsets:
                    if os.pread(base_fd, block, offset) != os.pread(new_fd, block, offset):
                        return offset
            finally:
                os.close(base_fd)
                os.close(new_fd)
        return None

    # -- reconciliation -----------------------------------------------------------
    def list_items(self) -> list[BackendItem]:
        items = []
        for lv in self._lvs():
            ident = id_of(lv.name)
            if ident is None:
                continue
            kind, item_id = ident
            if kind == "volume":
                items.append(BackendItem("volume", item_id, lv.size_bytes, None, self._path(lv.name)))
            else:
                origin = id_of(lv.origin)
                parent = lv.parent_volume_id() or (origin[1] if origin and origin[0] == "volume" else None)
                items.append(BackendItem("snapshot", item_id, lv.data_size_bytes, parent, self._path(lv.name)))
        return items
