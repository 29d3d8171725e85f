"""Export backend "tgt": the userspace SCSI target daemon `tgtd` from the Debian package tgt.

Options (``[export]`` in the config): ``portal`` (HOST:PORT, default 127.0.0.1:3260),
``control_port`` (tgtd ``-C`` index, default 26, so a system tgtd on index 0 is left alone),
``state_dir`` (PID and log files; set by the core), ``manage_daemon`` (start tgtd when it is
not running, default true).

tgtd keeps its configuration in memory only. The catalog is the source of truth: after a
restart the core re-exports every catalog export (``tgt-admin --dump`` cannot be used: it
writes PLEASE_CORRECT_THE_PASSWORD for CHAP secrets and renumbers LUNs on restore).
CHAP secrets reach tgtd on the `tgtadm` command line (its only interface); they never
appear in our logs or error messages.
"""

from __future__ import annotations

import logging
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
from backends.export.tgt.daemon import Tgtadm, TgtDaemon, parse_portal, tool
from backends.export.tgt.show import TgtTarget, parse_accounts, parse_targets
from storage.errors import BackendError, InvalidInput, NotFound

log = logging.getLogger(__name__)

DEFAULT_CONTROL_PORT = 26


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class TgtExportBackend(ExportBackend):
    driver_name = "tgt"

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self._portal = str(self.options.get("portal", "127.0.0.1:3260"))
        parse_portal(self._portal)
        try:
            self.control_port = int(self.options.get("control_port", DEFAULT_CONTROL_PORT))
        except (TypeError, ValueError):
            raise InvalidInput(
                f"export control_port {self.options.get('control_port')!r} is not accepted; accepted: an integer 0-32767",
                field="control_port",
            ) from None
        if not 0 <= self.control_port <= 32767:
            raise InvalidInput(
                f"export control_port {self.control_port} is not accepted; accepted: an integer 0-32767",
                field="control_port",
            )
        self.manage_daemon = _bool(self.options.get("manage_daemon", True))
        self.state_dir = Path(str(self.options.get("state_dir", "/var/lib/storage/exports")))
        self.adm = Tgtadm(self.control_port)
        self.daemon = TgtDaemon(self.control_port, self._portal, self.state_dir)

    @property
    def portal(self) -> str:
        return self._portal

    def check_host(self) -> None:
        tool("tgtd")
        tool("tgtadm")

    # -- service ------------------------------------------------------------
    def ensure_running(self) -> None:
        if self.adm.answering():
            return
        if not self.manage_daemon:
            raise BackendError(
                f"tgtd with control port {self.control_port} is not running and manage_daemon is off; "
                f"start it with: tgtd -f -C {self.control_port} --iscsi portal={self._portal}",
                control_port=self.control_port,
            )
        self.check_host()
        self.daemon.start()

    def stop(self) -> None:
        if not self.adm.answering():
            self.daemon.pid_file.unlink(missing_ok=True)
            return
        for target in self._targets():
            self._remove_target(target)
        for account in parse_accounts(self.adm.run("--mode", "account", "--op", "show").stdout):
            self.adm.run("--mode", "account", "--op", "delete", "--user", account, check=False)
        self.daemon.stop()

    # -- targets ------------------------------------------------------------
    def _targets(self) -> list[TgtTarget]:
        return parse_targets(self.adm.run("--mode", "target", "--op", "show").stdout)

    def _find(self, target_iqn: str) -> TgtTarget | None:
        for target in self._targets():
            if target.iqn == target_iqn:
                return target
        return None

    def export(self, spec: ExportSpec) -> ExportedTarget:
        if spec.lun < 1:
            raise InvalidInput(f"LUN {spec.lun} is not accepted by tgt; accepted: 1 or more (LUN 0 is the controller)")
        size = validate_backing_device(spec.device_path)
        self.ensure_running()
        existing = self._find(spec.target_iqn)
        if existing is not None:
            self._remove_target(existing)
        targets = self._targets()
        tid = max((t.tid for t in targets), default=0) + 1
        tid_s, lun_s = str(tid), str(spec.lun)
        self.adm.run("--mode", "target", "--op", "new", "--tid", tid_s, "--targetname", spec.target_iqn)
        try:
            self._add_lun(tid, spec.lun, spec.device_path, spec.serial)
            if spec.chap is not None:
                self._replace_account(spec.chap.username, spec.chap.password, targets)
                self.adm.run("--mode", "account", "--op", "bind", "--tid", tid_s, "--user", spec.chap.username)
            # The ACL goes last: tgt refuses every initiator until one is bound.
            if spec.initiators:
                for name in spec.initiators:
                    self.adm.run("--mode", "target", "--op", "bind", "--tid", tid_s, "--initiator-name", name)
            else:
                self.adm.run("--mode", "target", "--op", "bind", "--tid", tid_s, "--initiator-address", "ALL")
        except BackendError:
            self.adm.run("--mode", "target", "--op", "delete", "--force", "--tid", tid_s, check=False)
            raise
        log.info("exported %s as %s lun %s", spec.device_path, spec.target_iqn, lun_s)
        return ExportedTarget(
            target_iqn=spec.target_iqn,
            luns={spec.lun: spec.device_path},
            initiators=tuple(spec.initiators),
            chap_usernames=(spec.chap.username,) if spec.chap else (),
            sizes={spec.lun: size},
            extra={"tid": tid},
        )

    def _add_lun(self, tid: int, lun: int, path: str, serial: str | None) -> None:
        tid_s, lun_s = str(tid), str(lun)
        self.adm.run(
            "--mode", "logicalunit", "--op", "new", "--tid", tid_s, "--lun", lun_s,
            "--backing-store", path, "--bstype", "rdwr",
        )  # fmt: skip
        if serial:
            self.adm.run(
                "--mode", "logicalunit", "--op", "update", "--tid", tid_s, "--lun", lun_s,
                "--params", f"scsi_sn={serial}",
            )  # fmt: skip

    def _replace_account(self, username: str, password: str, targets: list[TgtTarget]) -> None:
        accounts = parse_accounts(self.adm.run("--mode", "account", "--op", "show").stdout)
        if username in accounts:
            if any(username in t.accounts for t in targets):
                raise BackendError(
                    f"CHAP user {username!r} is bound to another target of this tgtd; usernames must be unique per target"
                )
            self.adm.run("--mode", "account", "--op", "delete", "--user", username)
        self.adm.run("--mode", "account", "--op", "new", "--user", username, "--password", password)

    def unexport(self, target_iqn: str) -> None:
        if not self.adm.answering():
            raise NotFound(f"target {target_iqn!r} is not exported: tgtd -C {self.control_port} is not running")
        target = self._find(target_iqn)
        if target is None:
            raise NotFound(f"target {target_iqn!r} is not exported by tgtd -C {self.control_port}")
        self._remove_target(target)

    def _remove_target(self, target: TgtTarget) -> None:
        tid_s = str(target.tid)
        self.adm.run("--mode", "target", "--op", "update", "--tid", tid_s, "--name", "state", "--value", "offline", check=False)
        self.adm.run("--mode", "target", "--op", "delete", "--force", "--tid", tid_s)
        remaining = self._targets()
        for account in target.accounts:
            if not any(account in t.accounts for t in remaining):
                self.adm.run("--mode", "account", "--op", "delete", "--user", account, check=False)

    def resize(self, target_iqn: str, lun: int) -> int:
        """tgt reads the size when a LUN is created, so the LUN is re-created on the same device.

        Sessions stay logged in; initiators see the new capacity on their next READ CAPACITY
        (tgt raises a unit attention for the changed LUN inventory).
        """
        self.ensure_running()
        target = self._find(target_iqn)
        if target is None:
            raise NotFound(f"target {target_iqn!r} is not exported by tgtd -C {self.control_port}")
        current = next((u for u in target.luns if u.lun == lun), None)
        if current is None or current.backing_path is None:
            raise NotFound(f"target {target_iqn!r} has no LUN {lun}")
        size = validate_backing_device(current.backing_path)
        self.adm.run("--mode", "logicalunit", "--op", "delete", "--tid", str(target.tid), "--lun", str(lun))
        self._add_lun(target.tid, lun, current.backing_path, current.serial or None)
        return size

    def list_exports(self) -> list[ExportedTarget]:
        if not self.adm.answering():
            return []
        out = []
        for t in self._targets():
            luns = {u.lun: u.backing_path or "" for u in t.data_luns()}
            sizes = {}
            for number, path in luns.items():
                try:
                    sizes[number] = device_size(path)
                except OSError:
                    pass
            out.append(
                ExportedTarget(
                    target_iqn=t.iqn,
                    luns=luns,
                    initiators=tuple(a for a in t.acl if a.startswith(("iqn.", "eui.", "naa."))),
                    chap_usernames=tuple(t.accounts),
                    sizes=sizes,
                    extra={
                        "tid": t.tid,
                        "state": t.state,
                        "sessions": list(t.sessions),
                        "size_mb": {u.lun: u.size_mb for u in t.data_luns()},
                        "acl": list(t.acl),
                    },
                )
            )
        return out
