"""``HostApi`` on another process: each call a ``host-call`` job on the owning host's queue.

``RemoteHost(jobs, host, timeout)`` enqueues ``{"method", "args", "host", "deadline"}`` on
``host.<host>`` (storage.queue.routing; lock ``volume:<id>`` when the call names a volume, so two
operations on one volume never run at once), waits for the job's plain-data result in the
catalog and returns it, or raises the typed error the agent recorded (``error_from_dict``). No
answer within ``timeout`` seconds: the job is cancelled (an agent that picks it up later refuses
it: past its deadline) and ``HostUnavailable`` names the host and the call.

``open_volume``/``open_snapshot`` and ``changed_ranges`` hand out local paths and driver
objects: work that needs them (backup reads, restore writes) runs whole on the owning host's
agent (job kinds ``backup``, ``restore``), never through here (``Unsupported``).

``RoutedHost`` is the control plane's ``HostApi`` when jobs go through a queue (``call_host``,
table-tested): a call naming a volume goes to the host that owns it (``volumes.host``), a call
naming an export's target (``unexport_target``, ``resize_target``) to the host owning that
export's volume, any other call to this configuration's ``host_name``. In an agent the same
routing holds, with its own host's calls run in process (a policy run on one agent snapshots and
backs up another host's volumes through that host's queue).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from storage import errors
from storage.errors import Cancelled, Conflict, HostUnavailable, StorageError, Unsupported
from storage.host.api import HostApi, ProgressCallback

if TYPE_CHECKING:
    from storage.jobs.service import JobService

_ERRORS: dict[str, type[StorageError]] = {}


def error_from_dict(error: dict[str, Any] | None) -> StorageError:
    """The typed error a job recorded (``StorageError.to_dict``), rebuilt (pure)."""
    if not _ERRORS:
        for obj in vars(errors).values():
            if isinstance(obj, type) and issubclass(obj, StorageError):
                _ERRORS.setdefault(obj.code, obj)
    error = error or {}
    cls = _ERRORS.get(str(error.get("code")), StorageError)
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    return cls(str(error.get("message") or "the host call failed without a message"), **details)


class RemoteHost(HostApi):
    def __init__(self, jobs: "JobService", host: str, timeout: float, *,
                 sealing_key_of: Callable[[str], str | None] | None = None) -> None:  # fmt: skip
        """sealing_key_of(host): the public key host publishes (storage.hosts.sealing); a call
        carrying a secret (export_target's CHAP password) is sealed to it, never enqueued in the clear."""
        self._jobs = jobs
        self.host = host
        self.timeout = timeout
        self._sealing_key_of = sealing_key_of or (lambda _host: None)

    def call(self, method: str, **args: Any) -> Any:
        from storage.hosts.sealing import seal_call

        args = seal_call(method, args, self.host, self._sealing_key_of(self.host) if method == "export_target" else None)
        volume_id = args.get("volume_id") or args.get("new_volume_id")
        params = {"method": method, "args": args, "host": self.host, "volume_id": volume_id,
                  "deadline": time.time() + self.timeout}  # fmt: skip
        job = self._jobs.submit("host-call", params=params, target=f"{self.host}:{method}")
        final = self._jobs.wait(job.id, self.timeout)
        state = final.state.value
        if state in ("queued", "running"):
            try:
                self._jobs.cancel(job.id)
            except Conflict:  # finished meanwhile: take its answer
                final = self._jobs.get(job.id)
                state = final.state.value
            else:
                raise HostUnavailable(
                    f"host {self.host!r} did not answer {method} within {self.timeout:g}s (job {job.id}); "
                    "is its agent running? (`storagectl hosts list`)", host=self.host, state="no answer", job=job.id,
                )  # fmt: skip
        if state == "succeeded":
            return final.result
        if state == "cancelled":
            raise Cancelled(f"{method} on host {self.host!r} was cancelled (job {job.id})", job=job.id)
        raise error_from_dict(final.error)

    # -- pools -----------------------------------------------------------------------------
    def check_pool(self, pool: str) -> None:
        self.call("check_pool", pool=pool)

    def pool_capabilities(self, pool: str) -> dict[str, Any]:
        return dict(self.call("pool_capabilities", pool=pool))

    def pool_usage(self, pool: str) -> dict[str, Any]:
        return dict(self.call("pool_usage", pool=pool))

    # -- volume lifecycle ------------------------------------------------------------------
    def create_volume(self, pool: str, volume_id: str, size_bytes: int) -> None:
        self.call("create_volume", pool=pool, volume_id=volume_id, size_bytes=size_bytes)

    def clone_volume(self, pool: str, source_volume_id: str, new_volume_id: str, size_bytes: int) -> None:
        self.call("clone_volume", pool=pool, source_volume_id=source_volume_id, new_volume_id=new_volume_id, size_bytes=size_bytes)

    def clone_snapshot(self, pool: str, volume_id: str, snapshot_id: str, new_volume_id: str, size_bytes: int) -> None:
        self.call("clone_snapshot", pool=pool, volume_id=volume_id, snapshot_id=snapshot_id,
                  new_volume_id=new_volume_id, size_bytes=size_bytes)  # fmt: skip

    def extend_volume(self, pool: str, volume_id: str, size_bytes: int) -> None:
        self.call("extend_volume", pool=pool, volume_id=volume_id, size_bytes=size_bytes)

    def revert_to_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None:
        self.call("revert_to_snapshot", pool=pool, volume_id=volume_id, snapshot_id=snapshot_id)

    def delete_volume(self, pool: str, volume_id: str, wipe: str = "none", progress: ProgressCallback | None = None) -> None:
        self.call("delete_volume", pool=pool, volume_id=volume_id, wipe=wipe)  # progress: the host-call job's

    def create_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None:
        self.call("create_snapshot", pool=pool, volume_id=volume_id, snapshot_id=snapshot_id)

    def delete_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> None:
        self.call("delete_snapshot", pool=pool, volume_id=volume_id, snapshot_id=snapshot_id)

    # -- attach on the host ----------------------------------------------------------------
    def attach(self, pool: str, volume_id: str) -> str:
        return str(self.call("attach", pool=pool, volume_id=volume_id))

    def detach(self, pool: str, volume_id: str) -> None:
        self.call("detach", pool=pool, volume_id=volume_id)

    def attached_device(self, pool: str, volume_id: str) -> str | None:
        return self.call("attached_device", pool=pool, volume_id=volume_id)

    # -- local data access: runs whole on the owning host ----------------------------------
    def _local_only(self, what: str) -> Unsupported:
        return Unsupported(f"{what} reads or writes host {self.host!r}'s devices: it runs as a backup or restore job "
                           "on that host's agent, not through a remote call", host=self.host)  # fmt: skip

    def open_volume(self, pool: str, volume_id: str) -> AbstractContextManager[str]:
        raise self._local_only("open_volume")

    def open_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> AbstractContextManager[str]:
        raise self._local_only("open_snapshot")

    def changed_ranges(self, pool: str, volume_id: str, base_snapshot_id: str, snapshot_id: str) -> Any:
        raise self._local_only("changed_ranges")

    def volume_is_all_holes(self, pool: str, volume_id: str) -> bool:
        return bool(self.call("volume_is_all_holes", pool=pool, volume_id=volume_id))

    # -- iSCSI export target ---------------------------------------------------------------
    def export_driver(self) -> dict[str, Any]:
        return dict(self.call("export_driver"))

    def ensure_export_service(self) -> None:
        self.call("ensure_export_service")

    def stop_export_service(self) -> None:
        self.call("stop_export_service")

    def export_target(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("export_target", spec=spec))

    def unexport_target(self, target_iqn: str) -> None:
        self.call("unexport_target", target_iqn=target_iqn)

    def resize_target(self, target_iqn: str, lun: int) -> int:
        return int(self.call("resize_target", target_iqn=target_iqn, lun=lun))

    def list_targets(self) -> list[dict[str, Any]]:
        return list(self.call("list_targets"))


class RoutedHost(RemoteHost):
    """The control plane's HostApi with a queue: each call on the host that owns its volume.

    Data access (``open_volume``, ``open_snapshot``, ``changed_ranges``) of a volume owned by this
    configuration's own ``host_name`` is done here, through ``local`` (this host's drivers): a
    `storagectl backup create` or a policy run on the storage host itself reads its pool like on a
    single host. Another host's volume answers Unsupported (its backup runs as a job there)."""

    def __init__(self, jobs: "JobService", default_host: str, timeout: float, host_of_volume: Callable[[str], str | None],
                 local: "Callable[[], HostApi] | None" = None, *, host_of_target: Callable[[str], str | None] | None = None,
                 own_locally: bool = False, before_call: Callable[[], None] | None = None,
                 sealing_key_of: Callable[[str], str | None] | None = None) -> None:  # fmt: skip
        """host_of_target: the host owning an export's target (by IQN); own_locally: this process is
        ``default_host``'s agent, so calls for its own host run here on ``local``, not via its queue;
        before_call: run before each call that goes through a queue (a CLI starts its lease there);
        sealing_key_of: as RemoteHost's (a secret a call carries is sealed to the owning host's key)."""
        super().__init__(jobs, default_host, timeout, sealing_key_of=sealing_key_of)
        self._before_call = before_call
        self._host_of_volume = host_of_volume
        self._host_of_target = host_of_target or (lambda _iqn: None)
        self._local = local
        self._own_locally = own_locally

    def _data_host(self, volume_id: str, what: str) -> HostApi:
        owner = self._host_of_volume(volume_id) or self.host
        if owner == self.host and self._local is not None:
            return self._local()
        raise self._remote(owner)._local_only(what)

    def _remote(self, host: str) -> RemoteHost:
        return RemoteHost(self._jobs, host, self.timeout, sealing_key_of=self._sealing_key_of)

    def open_volume(self, pool: str, volume_id: str) -> AbstractContextManager[str]:
        return self._data_host(volume_id, "open_volume").open_volume(pool, volume_id)

    def open_snapshot(self, pool: str, volume_id: str, snapshot_id: str) -> AbstractContextManager[str]:
        return self._data_host(volume_id, "open_snapshot").open_snapshot(pool, volume_id, snapshot_id)

    def changed_ranges(self, pool: str, volume_id: str, base_snapshot_id: str, snapshot_id: str) -> Any:
        return self._data_host(volume_id, "changed_ranges").changed_ranges(pool, volume_id, base_snapshot_id, snapshot_id)

    def delete_volume(self, pool: str, volume_id: str, wipe: str = "none", progress: ProgressCallback | None = None) -> None:
        if self._own_locally and self._local is not None and self._host_of_volume(volume_id) in (None, self.host):
            self._local().delete_volume(pool, volume_id, wipe, progress)  # the agent's own volume: with its progress
        else:
            super().delete_volume(pool, volume_id, wipe, progress)

    def call(self, method: str, **args: Any) -> Any:
        host = call_host(args, default=self.host, host_of_volume=self._host_of_volume, host_of_target=self._host_of_target)
        if host == self.host:
            if self._own_locally and self._local is not None:  # the agent: its own host's work runs here
                return getattr(self._local(), method)(**args)
        if self._before_call is not None:
            self._before_call()
        if host == self.host:
            return super().call(method, **args)
        return self._remote(host).call(method, **args)


def call_host(args: dict[str, Any], *, default: str, host_of_volume: Callable[[str], str | None],
              host_of_target: Callable[[str], str | None]) -> str:  # fmt: skip
    """The host a HostApi call must run on (pure given its two look-ups): the host owning the volume
    it names (``volume_id``, a clone's ``source_volume_id``, an export spec's ``key``), else the
    host owning the export whose target it names (``target_iqn``), else ``default`` (the
    configuration's own host: pool and target-service calls that name nothing)."""
    spec = args.get("spec") if isinstance(args.get("spec"), dict) else {}
    vid = args.get("volume_id") or args.get("source_volume_id") or spec.get("key")  # an export's key: its volume id
    if vid:
        return host_of_volume(str(vid)) or default
    iqn = args.get("target_iqn")
    if iqn:
        return host_of_target(str(iqn)) or default
    return default
