"""Restores onto volumes, and backups of another host's volumes, as jobs on the owning host.

A restore onto a volume: the one path the API, the CLI and the library share.

``BackupJobs.submit`` checks the target (the volume exists and its host is up, or the new name is
free and valid), lets the scheduler place a new volume when the work goes through a queue (every
registered host's pools: it may land on another host than the backup's source; the job's params
keep ``host``, ``pool`` and the whole ``placement``) and submits the ``restore`` job, which runs on
the owning host's queue (``_job_host`` in the library facade's module) or in a thread here (single host).

``BackupJobs.run`` is submit, then ``follow``: the library and `storagectl backup restore` in
cluster mode wait for the job, with its progress handed to their callback and their cancel event
turned into a job cancel.

``BackupJobs.backup``: a backup of a volume (or a snapshot) owned by another host, from any
process with a work queue (a policy run on host A, a `storagectl backup create` on the API host,
an agent running a policy): its reads must happen on that host, so it runs there as a ``backup``
job, followed the same way. The encryption key file, when given, must exist at that path on the
owning host too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from storage.backup.models import Progress, RestoreResult
from storage.errors import Cancelled, Conflict, InvalidInput, NotFound
from storage.names import validate_name

if TYPE_CHECKING:
    from storage.backup.models import Backup, ProgressCallback
    from storage.hosts.service import HostService
    from storage.jobs.service import JobInfo, JobService
    from storage.volumes.placement import Placer
    from storage.volumes.service import VolumeService

POLL_SECONDS = 0.2


def progress_of(job: "JobInfo") -> Progress:
    """The progress report a job row stands for (pure): bytes done out of the total."""
    total = int(job.bytes_total or 0)
    return Progress(phase=job.message or job.state.value, total=total, done=int(job.bytes_done),
                    rate=float(job.rate_bytes_per_s or 0.0), eta_seconds=job.eta_seconds)  # fmt: skip


class BackupJobs:
    def __init__(self, jobs: "JobService", volumes: "VolumeService", placer: "Placer",
                 hosts: "Callable[[], HostService]", *, host_name: str, pools: Mapping[str, object]) -> None:  # fmt: skip
        self._jobs = jobs
        self._volumes = volumes
        self._placer = placer
        self._hosts = hosts
        self._host_name = host_name
        self._pools = pools

    def check_target(self, *, to_volume: str | None, new_volume_name: str | None, pool: str | None) -> None:
        """What the restore job would refuse, refused before it is queued."""
        if (to_volume is None) == (new_volume_name is None):
            raise InvalidInput("give exactly one restore target: to_volume or new_volume_name")
        if to_volume is not None:
            self._volumes.require_host_up(self._volumes.get(to_volume))
            return
        assert new_volume_name is not None
        validate_name(new_volume_name, kind="volume")
        try:
            self._volumes.get(new_volume_name)
        except NotFound:
            pass
        else:
            raise Conflict(f"a volume named {new_volume_name!r} exists already; choose another name", volume=new_volume_name)
        if pool is not None and pool not in self._pools and not self._placer.clustered:  # a cluster: any host's pool
            raise InvalidInput(f"pool {pool!r} is not configured; accepted: {', '.join(sorted(self._pools))}", field="pool")
        if not self._placer.clustered:
            self._hosts().require_accepting(self._host_name)

    def submit(self, backup: "Backup", *, to_volume: str | None = None, new_volume_name: str | None = None,
               pool: str | None = None, created_by: str | None = None) -> "JobInfo":  # fmt: skip
        self.check_target(to_volume=to_volume, new_volume_name=new_volume_name, pool=pool)
        to_volume_id = self._volumes.get(to_volume).id if to_volume else None
        placed: dict[str, Any] = {}
        if new_volume_name and self._placer.clustered:
            # several hosts: the scheduler chooses the new volume's host now, the job goes to its queue
            decision = self._placer.place(max(backup.size_bytes or 0, 1), pool=pool)
            assert decision.chosen is not None
            placed = {"host": decision.chosen.host, "pool": decision.chosen.pool, "placement": decision.to_dict()}
        params = {"backup_id": backup.id, "to_volume": to_volume, "new_volume_name": new_volume_name, "pool": pool,
                  "to_volume_id": to_volume_id, **placed}  # fmt: skip
        return self._jobs.submit("restore", target=backup.id, params=params, total=backup.size_bytes or None,
                                 created_by=created_by)  # fmt: skip

    def run(self, backup: "Backup", *, to_volume: str | None = None, new_volume_name: str | None = None,
            pool: str | None = None, progress: "ProgressCallback | None" = None,
            cancel: threading.Event | None = None) -> RestoreResult:  # fmt: skip
        job = self.submit(backup, to_volume=to_volume, new_volume_name=new_volume_name, pool=pool)
        result = follow(self._jobs, job.id, progress=progress, cancel=cancel)
        return RestoreResult.model_validate(result)


    def backup(self, source: str, *, backup_id: str, name: str | None = None, labels: dict[str, str] | None = None,
               description: str | None = None, repository: str | None = None, encryption_key_file: str | None = None,
               bandwidth_limit: int | str | None = None, progress: "ProgressCallback | None" = None,
               cancel: threading.Event | None = None) -> Any:  # fmt: skip
        """Submit the ``backup`` job of ``source`` (``volume:<id>`` or ``snapshot:<id>``), follow it; its result."""
        params = {"backup_id": backup_id, "source": source, "name": name, "labels": labels, "description": description,
                  "repository": repository,
                  "encryption_key_file": encryption_key_file, "bandwidth_limit": bandwidth_limit}  # fmt: skip
        job = self._jobs.submit("backup", target=backup_id, params=params)
        return follow(self._jobs, job.id, progress=progress, cancel=cancel, what="backup")


def follow(jobs: "JobService", job_id: str, *, progress: "ProgressCallback | None" = None,
           cancel: threading.Event | None = None, poll: float = POLL_SECONDS, what: str = "restore") -> Any:
    """Wait for a job of any process: its progress to ``progress``, ``cancel`` set -> the job is
    cancelled; returns its result, or raises the typed error it recorded."""
    from storage.host.remote import error_from_dict

    cancelled = False
    last = (-1, -1)
    while True:
        info = jobs.wait(job_id, poll)
        if progress is not None and (info.bytes_done, info.bytes_total) != last:
            last = (info.bytes_done, info.bytes_total or 0)
            progress(progress_of(info))
        state = info.state.value
        if state == "succeeded":
            return info.result
        if state in ("cancelled", "interrupted"):
            raise Cancelled(f"{what} job {job_id} was {state}: {info.message or 'no reason recorded'}", job=job_id)
        if state == "failed":
            raise error_from_dict(info.error)
        if cancel is not None and cancel.is_set() and not cancelled:
            cancelled = True
            try:
                jobs.cancel(job_id)
            except Conflict:
                pass  # finished meanwhile: the next round reads its end
