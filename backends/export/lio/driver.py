"""Export backend "lio": the kernel LIO iSCSI target through rtslib-fb.

Needs configfs and the target_core_mod/iscsi_target_mod modules (the QEMU guest tier here; this
host has neither). One target per volume with TPG 1, the data on LUN 0, a portal on
``portal``. Block devices use the iblock backstore (size follows the device, so an extend needs
no LUN change), regular files the fileio backstore (re-created on resize).

Options: ``portal`` (HOST:PORT), ``state_dir`` (set by the core; the saved configuration
``lio-saveconfig.json`` lives there, mode 0600 because it holds CHAP secrets).
The configuration is saved after every change and restored by ``ensure_running`` when the
kernel target is empty (after a reboot or a target reset), so exports survive a restart even
before the core reconciles.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backends.export.base import (
    ExportBackend,
    ExportedTarget,
    ExportSpec,
    device_size,
    validate_backing_device,
)
from storage.errors import BackendError, InvalidInput, NotFound, Unsupported

log = logging.getLogger(__name__)

CONFIGFS_TARGET = Path("/sys/kernel/config/target")
SO_PREFIX = "storage-"


def _rtslib() -> Any:
    try:
        import rtslib_fb
    except ImportError:
        raise Unsupported("rtslib-fb is not installed; pip install rtslib-fb (or apt python3-rtslib-fb)") from None
    return rtslib_fb


def _scrub(message: str, spec: ExportSpec | None) -> str:
    if spec is not None and spec.chap is not None:
        message = message.replace(spec.chap.password, "***")
    return message


class LioExportBackend(ExportBackend):
    driver_name = "lio"
    default_lun = 0

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self._portal = str(self.options.get("portal", "127.0.0.1:3260"))
        host, sep, port = self._portal.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InvalidInput(f"portal {self._portal!r} is not accepted; accepted: HOST:PORT", field="portal")
        self._ip, self._port = host.strip("[]"), int(port)
        self.state_dir = Path(str(self.options.get("state_dir", "/var/lib/storage/exports")))
        self.save_file = self.state_dir / "lio-saveconfig.json"
        self._root: Any = None

    @property
    def portal(self) -> str:
        return self._portal

    def check_host(self) -> None:
        _rtslib()
        if not Path("/sys/kernel/config").is_dir() and not Path("/sys/module/configfs").exists():
            raise Unsupported("the kernel has no configfs, which LIO needs; use the tgt export driver on this host")

    # -- service ------------------------------------------------------------
    def _mount_configfs(self) -> None:
        # rtslib-fb 2.2.4's own mount_configfs runs the literal 'mount ... none {config_dir}'
        # (a missing f-string prefix) and always fails, so we mount configfs ourselves.
        config = Path("/sys/kernel/config")
        if os.path.ismount(config):
            return
        proc = subprocess.run(
            ["mount", "-t", "configfs", "configfs", str(config)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 and not os.path.ismount(config):
            raise Unsupported(f"cannot mount configfs on {config}, which LIO needs: {proc.stderr.strip()}")

    def _rts(self) -> Any:
        if self._root is None:
            self.check_host()
            self._mount_configfs()
            # rtslib sets the target's dbroot (persistent reservations, ALUA state) to
            # /etc/target, targetcli's directory, and fails when it does not exist.
            Path("/etc/target").mkdir(mode=0o700, parents=True, exist_ok=True)
            rts = _rtslib()
            try:
                self._root = rts.RTSRoot()
            except Exception as exc:  # noqa: BLE001 - rtslib raises RTSLibError and OSError
                raise Unsupported(f"LIO is not available on this host: {exc}") from None
        return self._root

    def ensure_running(self) -> None:
        root = self._rts()
        if not list(root.targets) and self.save_file.exists():
            errors = root.restore_from_file(str(self.save_file), clear_existing=False, abort_on_error=False)
            if errors:
                log.warning("restoring %s reported: %s", self.save_file, "; ".join(map(str, errors)))
            else:
                log.info("restored LIO configuration from %s", self.save_file)

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.save_file.with_name(self.save_file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.close(fd)
        self._rts().save_to_file(str(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.save_file)

    def stop(self) -> None:
        for target in self._our_targets():
            self._delete_target(target)
        self._save()

    # -- targets ------------------------------------------------------------
    def _iscsi_targets(self) -> list[Any]:
        return [t for t in self._rts().targets if t.fabric_module.name == "iscsi"]

    def _our_targets(self) -> list[Any]:
        return self._iscsi_targets()

    def _find(self, target_iqn: str) -> Any | None:
        return next((t for t in self._iscsi_targets() if t.wwn == target_iqn), None)

    def _delete_target(self, target: Any) -> None:
        objects = [lun.storage_object for tpg in target.tpgs for lun in tpg.luns]
        target.delete()
        for so in objects:
            if so.name.startswith(SO_PREFIX) and not list(so.attached_luns):
                so.delete()

    def _storage_object(self, spec: ExportSpec, size: int) -> Any:
        rts = _rtslib()
        name = SO_PREFIX + spec.key
        for so in self._rts().storage_objects:
            if so.name == name:
                so.delete()
        if stat.S_ISBLK(os.stat(spec.device_path).st_mode):
            return rts.BlockStorageObject(name, dev=spec.device_path, wwn=spec.serial)
        return rts.FileIOStorageObject(name, dev=spec.device_path, size=size, wwn=spec.serial)

    def export(self, spec: ExportSpec) -> ExportedTarget:
        size = validate_backing_device(spec.device_path)
        self.ensure_running()
        rts = _rtslib()
        existing = self._find(spec.target_iqn)
        if existing is not None:
            self._delete_target(existing)
        target = None
        try:
            so = self._storage_object(spec, size)
            target = rts.Target(rts.FabricModule("iscsi"), spec.target_iqn, mode="create")
            tpg = rts.TPG(target, 1, mode="create")
            rts.NetworkPortal(tpg, self._ip, self._port, mode="create")
            lun = rts.LUN(tpg, lun=spec.lun, storage_object=so)
            tpg.set_attribute("authentication", "1" if spec.chap else "0")
            if spec.initiators:
                tpg.set_attribute("generate_node_acls", "0")
                for name in spec.initiators:
                    acl = rts.NodeACL(tpg, name, mode="create")
                    if spec.chap:
                        acl.chap_userid = spec.chap.username
                        acl.chap_password = spec.chap.password
                    rts.MappedLUN(acl, spec.lun, lun)
            else:  # any initiator ("demo mode"), CHAP set on the TPG
                tpg.set_attribute("generate_node_acls", "1")
                tpg.set_attribute("cache_dynamic_acls", "1")
                tpg.set_attribute("demo_mode_write_protect", "0")
                if spec.chap:
                    tpg.chap_userid = spec.chap.username
                    tpg.chap_password = spec.chap.password
            tpg.enable = True
        except Exception as exc:  # noqa: BLE001 - rtslib raises RTSLibError and OSError
            if target is not None:
                try:
                    self._delete_target(target)
                except Exception:  # noqa: BLE001
                    pass
            raise BackendError(f"LIO export of {spec.device_path} as {spec.target_iqn} failed: {_scrub(str(exc), spec)}") from None
        self._save()
        log.info("exported %s as %s lun %s", spec.device_path, spec.target_iqn, spec.lun)
        return ExportedTarget(
            target_iqn=spec.target_iqn, luns={spec.lun: spec.device_path}, initiators=tuple(spec.initiators),
            chap_usernames=(spec.chap.username,) if spec.chap else (), sizes={spec.lun: size},
        )  # fmt: skip

    def unexport(self, target_iqn: str) -> None:
        self.ensure_running()
        target = self._find(target_iqn)
        if target is None:
            raise NotFound(f"target {target_iqn!r} is not exported by LIO")
        self._delete_target(target)
        self._save()

    def resize(self, target_iqn: str, lun: int) -> int:
        """iblock follows its device's size; a fileio LUN is re-created on the same file."""
        self.ensure_running()
        target = self._find(target_iqn)
        if target is None:
            raise NotFound(f"target {target_iqn!r} is not exported by LIO")
        tpg = next(iter(target.tpgs))
        current = next((u for u in tpg.luns if u.lun == lun), None)
        if current is None:
            raise NotFound(f"target {target_iqn!r} has no LUN {lun}")
        so = current.storage_object
        path = so.udev_path
        size = validate_backing_device(path)
        if so.plugin == "fileio":
            rts = _rtslib()
            name, serial = so.name, so.wwn
            mapped = [(acl, m.mapped_lun) for acl in tpg.node_acls for m in acl.mapped_luns if m.tpg_lun.lun == lun]
            current.delete()
            so.delete()
            new_so = rts.FileIOStorageObject(name, dev=path, size=size, wwn=serial)
            new_lun = rts.LUN(tpg, lun=lun, storage_object=new_so)
            for acl, mapped_lun in mapped:
                rts.MappedLUN(acl, mapped_lun, new_lun)
        self._save()
        return size

    def list_exports(self) -> list[ExportedTarget]:
        self.ensure_running()
        out = []
        for target in self._iscsi_targets():
            luns: dict[int, str] = {}
            initiators: list[str] = []
            users: list[str] = []
            for tpg in target.tpgs:
                for lun in tpg.luns:
                    luns[lun.lun] = lun.storage_object.udev_path
                for acl in tpg.node_acls:
                    initiators.append(acl.node_wwn)
                    if acl.chap_userid:
                        users.append(acl.chap_userid)
                if tpg.chap_userid:
                    users.append(tpg.chap_userid)
            sizes = {}
            for number, path in luns.items():
                try:
                    sizes[number] = device_size(path)
                except OSError:
                    pass
            out.append(
                ExportedTarget(
                    target_iqn=target.wwn, luns=luns, initiators=tuple(initiators),
                    chap_usernames=tuple(dict.fromkeys(users)), sizes=sizes,
                )  # fmt: skip
            )
        return out
