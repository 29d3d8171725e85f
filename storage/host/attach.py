"""Client-side attach through os-brick connectors: connection info in, local device path out.

``attach(info)`` picks the connector from the connection info's shape: ``target_iqn`` ->
os-brick's ISCSIConnector (needs open-iscsi: ``iscsiadm`` and the ``iscsi_tcp`` kernel
module), ``device_path`` -> the LOCAL connector. ``detach(info)`` reverses it. The CHAP secret
is only ever passed to os-brick; it is scrubbed from every error message we raise.
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.errors import BackendError, InvalidInput, StorageError, Unsupported

_setup_lock = threading.Lock()
_setup_done = False
DEFAULT_LOCK_PATH = Path("/run/lock/storage-os-brick") if os.geteuid() == 0 else Path("/tmp/storage-os-brick")


@dataclass(frozen=True)
class Attachment:
    protocol: str  # "ISCSI" | "LOCAL"
    path: str  # the local block device
    device_info: dict[str, Any]  # what os-brick returned (scsi_wwn, type...)


def protocol_of(info: dict[str, Any]) -> str:
    """Which os-brick connector a connection info dict is for (pure)."""
    if not isinstance(info, dict):
        raise InvalidInput("connection info must be a JSON object; accepted: the output of `storagectl volume connection-info`")
    if info.get("target_iqn") or info.get("target_iqns"):
        missing = [k for k in ("target_portal", "target_iqn", "target_lun") if info.get(k) in (None, "")]
        if missing:
            raise InvalidInput(f"iSCSI connection info lacks {', '.join(missing)}; accepted: target_portal, target_iqn, target_lun")
        if info.get("auth_method") and not info.get("auth_password"):
            raise InvalidInput(
                "connection info has auth_method CHAP but no auth_password; get it with "
                "`storagectl volume connection-info VOLUME --show-secret`"
            )
        return "ISCSI"
    if info.get("device_path"):
        return "LOCAL"
    raise InvalidInput(
        "connection info names no target_iqn (iSCSI) and no device_path (local); accepted: the output of "
        "`storagectl volume connection-info`, or {\"device_path\": \"/dev/...\"}"
    )


def _brick_props(info: dict[str, Any]) -> dict[str, Any]:
    """Drop keys os-brick does not expect to be None (it tests presence, not truthiness, for some)."""
    return {k: v for k, v in info.items() if v is not None}


def _setup(lock_path: Path | None) -> None:
    global _setup_done
    with _setup_lock:
        if _setup_done:
            return
        with warnings.catch_warnings():  # os-brick pulls in eventlet, which warns on import
            warnings.simplefilter("ignore")
            import os_brick
            from oslo_config import cfg

            from os_brick import privileged

            from oslo_concurrency import lockutils

        path = lock_path or DEFAULT_LOCK_PATH
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            cfg.CONF([], project="storage", default_config_files=[])
        except cfg.Error:
            pass  # already parsed by an embedding application
        lockutils.set_defaults(str(path))  # registers [oslo_concurrency], which os_brick.setup reads
        os_brick.setup(cfg.CONF)
        cfg.CONF.set_override("lock_path", str(path), group="oslo_concurrency")
        if os.geteuid() == 0:
            # We are root already: run os-brick's privileged helpers in-process, not via privsep-helper.
            privileged.default.set_client_mode(False)
        _setup_done = True


def _connector(protocol: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from os_brick.initiator import connector as brick_connector

    return brick_connector.InitiatorConnector.factory(protocol, "sudo", use_multipath=False, device_scan_attempts=3)


def _require_iscsi_initiator() -> None:
    if shutil.which("iscsiadm") is None and shutil.which("iscsiadm", path="/usr/sbin:/sbin") is None:
        raise Unsupported("iscsiadm is not installed; install open-iscsi (and load iscsi_tcp) to attach iSCSI volumes")


def _scrub(text: str, info: dict[str, Any]) -> str:
    for key in ("auth_password", "discovery_auth_password"):
        secret = info.get(key)
        if secret:
            text = text.replace(str(secret), "***")
    return text


def attach(info: dict[str, Any], *, lock_path: Path | None = None) -> Attachment:
    """Connect the volume described by ``info`` and return its local device."""
    protocol = protocol_of(info)
    if protocol == "ISCSI":
        _require_iscsi_initiator()
    _setup(lock_path)
    props = _brick_props(info)
    try:
        result = _connector(protocol).connect_volume(props)
    except StorageError:
        raise
    except Exception as exc:  # os-brick raises its own exception types
        raise BackendError(
            f"os-brick {protocol} connect to {info.get('target_iqn') or info.get('device_path')} failed: "
            f"{_scrub(str(exc), info)}"
        ) from None
    path = str((result or {}).get("path") or "")
    if not path:
        raise BackendError(f"os-brick {protocol} connect returned no device path")
    return Attachment(protocol=protocol, path=path, device_info=dict(result or {}))


def detach(info: dict[str, Any], device_info: dict[str, Any] | None = None, *, lock_path: Path | None = None) -> None:
    """Disconnect what ``attach(info)`` connected (flushes and removes the local device)."""
    protocol = protocol_of(info) if info.get("auth_password") or not info.get("auth_method") else "ISCSI"
    if protocol == "ISCSI":
        _require_iscsi_initiator()
    _setup(lock_path)
    props = _brick_props(info)
    try:
        _connector(protocol).disconnect_volume(props, device_info or {})
    except Exception as exc:  # noqa: BLE001
        raise BackendError(
            f"os-brick {protocol} disconnect of {info.get('target_iqn') or info.get('device_path')} failed: "
            f"{_scrub(str(exc), info)}"
        ) from None


def refresh_size(info: dict[str, Any], device_path: str | None = None, *, lock_path: Path | None = None) -> int:
    """After the volume grew on the target: make this host see the new size; return it in bytes.

    Uses os-brick's ``extend_volume``; os-brick finds iSCSI devices through udev's
    /dev/disk/by-path links, so where there is no udev a known ``/dev/sdX`` is rescanned via sysfs.
    """
    protocol = "ISCSI" if info.get("target_iqn") else protocol_of(info)
    _setup(lock_path)
    try:
        size = _connector(protocol).extend_volume(_brick_props(info))
        if size:
            return int(size)
    except Exception as exc:  # noqa: BLE001 - os-brick's own exception types
        if not (device_path and device_path.startswith("/dev/sd")):
            raise BackendError(f"os-brick {protocol} extend failed: {_scrub(str(exc), info)}") from None
    if not device_path:
        raise BackendError("os-brick reported no size; pass the device path")
    name = Path(device_path).name
    Path(f"/sys/block/{name}/device/rescan").write_text("1")
    fd = os.open(device_path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)
