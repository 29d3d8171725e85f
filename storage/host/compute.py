"""Attach from a compute host, the way Nova does: through the Cinder v3 API, then os-brick.

``attach_volume``: os-reserve, os-initialize_connection (the storage host exports the volume for
this host's initiator and answers with the target and its CHAP credentials), os-brick's
ISCSIConnector logs in and finds the device, os-attach records it. A failure after the reserve
undoes what was done (terminate_connection, unreserve), as Nova does. ``detach_volume``:
os-begin_detaching, os-brick disconnect, os-terminate_connection, os-detach (roll_detaching if
the disconnect fails). What ``detach`` needs is kept in a 0600 state file per volume, without
the CHAP secret; the secret lives only in memory while os-brick logs in.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from storage.errors import (
    AuthenticationFailed, BackendError, Conflict, HostUnavailable, InvalidInput, NotFound, PermissionDenied,
    StorageError,
)  # fmt: skip

STATE_DIR = Path("/run/storage/attachments") if os.geteuid() == 0 else Path.home() / ".cache/storage/attachments"
_FAULTS: dict[int, type[StorageError]] = {
    400: InvalidInput, 401: AuthenticationFailed, 403: PermissionDenied, 404: NotFound, 409: Conflict,
    503: HostUnavailable,
}  # fmt: skip


def local_ip_towards(api_url: str) -> str:
    """The address this host uses to reach the API (what the connector's ``ip`` says)."""
    parts = urlsplit(api_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))  # UDP: no packet is sent, the kernel only picks the route
        return str(s.getsockname()[0])


def connector_from_host(api_url: str, *, multipath: bool = False) -> dict[str, Any]:
    """os-brick's connector properties of this host (initiator name from open-iscsi, ip, host...)."""
    from storage.host import attach

    attach._setup(None)
    from os_brick.initiator import connector as brick_connector

    props = brick_connector.get_connector_properties("sudo", local_ip_towards(api_url), multipath, False)
    if not props.get("initiator"):
        raise BackendError(
            "os-brick found no iSCSI initiator name on this host; install open-iscsi "
            "(it writes /etc/iscsi/initiatorname.iscsi)"
        )
    return dict(props)


@dataclass
class CinderClient:
    """The few Cinder v3 calls a compute host makes (httpx; the token goes in X-Auth-Token only)."""

    url: str  # http://api:8776/v3 or http://api:8776/v3/<project>
    token: str
    timeout: float = 120.0

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        try:
            r = httpx.request(method, self.url.rstrip("/") + path, json=body, timeout=self.timeout,
                              headers={"X-Auth-Token": self.token, "OpenStack-API-Version": "volume 3.0"})  # fmt: skip
        except httpx.HTTPError as exc:
            raise BackendError(f"the storage API at {self.url} cannot be reached: {type(exc).__name__}") from None
        if r.status_code >= 400:
            try:
                fault = next(iter(r.json().values()))
                message = str(fault.get("message"))[:1000]
            except (ValueError, AttributeError, StopIteration):
                message = r.text[:300]
            raise _FAULTS.get(r.status_code, BackendError)(f"{method} {path}: {r.status_code} {message}")
        return r.json() if r.content else None

    def volume_id(self, ref: str) -> str:
        found = self._request("GET", f"/volumes/detail?name={quote(ref)}")["volumes"]
        if len(found) == 1:
            return str(found[0]["id"])
        return str(self._request("GET", f"/volumes/{quote(ref, safe='')}")["volume"]["id"])

    def action(self, volume_id: str, name: str, args: Any = None) -> Any:
        return self._request("POST", f"/volumes/{volume_id}/action", {name: args})


def _state_path(volume_id: str, state_dir: Path | None) -> Path:
    return (state_dir or STATE_DIR) / f"{volume_id}.json"


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(state, indent=1).encode())
    finally:
        os.close(fd)


def attach_volume(client: CinderClient, ref: str, connector: dict[str, Any], *, state_dir: Path | None = None,
                  instance_uuid: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Reserve, initialize the connection, connect with os-brick, record the attach; the device."""
    from storage.host import attach

    vid = client.volume_id(ref)
    client.action(vid, "os-reserve")
    try:
        info = client.action(vid, "os-initialize_connection", {"connector": connector})["connection_info"]
        data = dict(info["data"])
        try:
            result = attach.attach(data)
        except BaseException:
            client.action(vid, "os-terminate_connection", {"connector": connector})
            raise
    except BaseException:
        client.action(vid, "os-unreserve")
        raise
    attached = {"instance_uuid": instance_uuid} if instance_uuid else {}
    try:
        client.action(vid, "os-attach", {"mountpoint": result.path, "host_name": connector.get("host"), "mode": "rw", **attached})
    except BaseException:  # not recorded: give the device and the connection back
        attach.detach(data, result.device_info)
        client.action(vid, "os-terminate_connection", {"connector": connector})
        client.action(vid, "os-unreserve")
        raise
    state = {
        "volume_id": vid, "device": result.path, "connector": connector, "device_info": result.device_info,
        "connection_info": {k: v for k, v in data.items() if k != "auth_password"},
    }  # fmt: skip
    _save_state(_state_path(vid, state_dir), state)
    return {"volume_id": vid, "path": result.path, "target_iqn": data.get("target_iqn"), "protocol": result.protocol}


def detach_volume(client: CinderClient, ref: str, *, state_dir: Path | None = None) -> dict[str, Any]:
    """Begin detaching, disconnect with os-brick, terminate the connection, record the detach."""
    from storage.host import attach

    vid = client.volume_id(ref)
    path = _state_path(vid, state_dir)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"volume {ref!r} was not attached here with `storagectl attach` (no {path})") from None
    try:
        client.action(vid, "os-begin_detaching")
    except Conflict as exc:
        if " is detaching;" not in exc.message:  # else: a detach that stopped half-way, run again
            raise
    try:
        info = {**state["connection_info"], "auth_password": None}
        attach.detach({k: v for k, v in info.items() if k not in ("auth_method", "auth_username", "auth_password")},
                      state.get("device_info"))  # fmt: skip
    except BaseException:
        client.action(vid, "os-roll_detaching")
        raise
    client.action(vid, "os-terminate_connection", {"connector": state["connector"]})
    client.action(vid, "os-detach", {"attachment_id": None})
    path.unlink(missing_ok=True)
    return {"volume_id": vid, "detached": state["device"]}
