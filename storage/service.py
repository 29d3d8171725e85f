"""The public entry point: ``storage.open(config) -> Storage``.

``Storage`` is the composition root: it owns the settings and the catalog, builds this host's
``LocalHost`` (the drivers, behind ``storage.host.api.HostApi``) and builds each service with
the collaborators it uses, passed in explicitly. Services never see ``Storage``. Each is built
on first use and its module imported then, so ``import storage`` stays cheap. The CLI and the
API call only these services.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from storage.catalog import Catalog
from storage.paths import private_dir
from storage.config import Settings, load_settings
from storage.logs.redact import remember_settings

if TYPE_CHECKING:
    from storage.apply.models import Stack
    from storage.apply.service import ApplyResult, ApplyService
    from storage.auth.service import TokenService
    from storage.backup.listing import BackupListing
    from storage.backup.queued import BackupJobs
    from storage.backup.service import BackupService
    from storage.exports.connections import ConnectionService
    from storage.exports.service import ExportService
    from storage.host.api import HostApi
    from storage.host.local import LocalHost
    from storage.hosts.sealing import HostKey
    from storage.hosts.service import HostService
    from storage.scheduler.gather import PoolPlacement
    from storage.jobs.service import JobService
    from storage.objects.service import ObjectService
    from storage.policy.service import PolicyService
    from storage.volumes.check import CheckReport
    from storage.volumes.listing import VolumeListing
    from storage.volumes.placement import Placer
    from storage.volumes.pools import PoolService
    from storage.volumes.service import VolumeService
    from storage.volumes.snapshots import SnapshotService


class Storage:
    """One host's storage: volumes, snapshots, pools, objects, backups, policies, exports."""

    def __init__(self, settings: Settings, *, agent: bool = False) -> None:
        """agent: this process is the host's agent (``storagectl agent``): with a work queue, it
        runs device work here; any other process sends it to the owning host's queue."""
        self.settings = settings
        self.agent = agent
        private_dir(settings.data_dir)  # 0700 when new, whichever catalog (storage.paths)
        remember_settings(settings)  # store passwords, the catalog URL's password: never on a log line
        self.catalog = Catalog(settings.catalog_url, host_name=settings.host_name,
                               connect_timeout=settings.catalog.connect_timeout_seconds)
        self._lock = threading.RLock()
        # a CLI process with a work queue sets it (storage/cli/common.py): its first device call
        # through a queue starts a liveness lease (``ensure_lease``), so the agents settle what it
        # left transitional if it dies, also from another machine (storage.hosts.replicas)
        self.lease_on_demand = False
        self._lease: Any = None

    # -- the host side ------------------------------------------------------------------------
    @property
    def queued(self) -> bool:
        """Whether jobs and device work go through the procrastinate queues (``[cluster] queue``)."""
        return self.settings.cluster is not None and self.settings.cluster.queue == "procrastinate"

    @cached_property
    def host(self) -> "HostApi":
        """The HostApi the control plane uses: this host's drivers in process (``local_host``), or,
        with a work queue, each call on the owning host's queue (storage/host/remote.py); in the
        agent, calls for its own host run in process and others go to their host's queue."""
        if not self.queued:
            return self.local_host
        from storage.host.remote import RoutedHost

        return RoutedHost(self.jobs, self.settings.host_name, self.settings.cluster_settings.remote_call_timeout,
                          self._volume_host, local=lambda: self.local_host, host_of_target=self._target_host,
                          own_locally=self.agent, before_call=self._before_remote_call,
                          sealing_key_of=self._sealing_key_of)  # fmt: skip

    def _before_remote_call(self) -> None:
        if self.lease_on_demand:
            self.ensure_lease()

    def ensure_lease(self) -> None:
        """With a work queue, outside the agent: this process's liveness lease, started once and
        heartbeated until ``close`` (storage.hosts.replicas.ReplicaLease, role ``cli``)."""
        if not self.queued or self.agent:
            return
        with self._lock:
            if self._lease is None:
                from storage.hosts.replicas import ReplicaLease

                self._lease = ReplicaLease(self.catalog, self.settings.cluster_settings.heartbeat_interval,
                                           role="cli").start()  # fmt: skip

    def _sealing_key_of(self, host: str) -> str | None:
        """The public key host ``host``'s agent publishes in its services row (storage.hosts.sealing)."""
        from sqlalchemy import select

        from storage.catalog.services import ServiceRow

        with self.catalog.session() as s:
            caps = s.scalar(select(ServiceRow.capabilities).where(ServiceRow.name == host))
        key = caps.get("sealing_key") if isinstance(caps, dict) else None
        return key if isinstance(key, str) else None

    @cached_property
    def host_key(self) -> "HostKey | None":
        """The agent's private sealing key (``<data_dir>/secrets/host-<host_name>.key``); None elsewhere:
        only the agent opens what callers seal for its host."""
        if not self.agent:
            return None
        from storage.hosts.sealing import HostKey, key_path

        return HostKey(key_path(self.settings.data_dir, self.settings.host_name))

    def _volume_host(self, volume_id: str) -> str | None:
        from sqlalchemy import select

        from storage.catalog.volumes import VolumeRow

        with self.catalog.session() as s:
            return s.scalar(select(VolumeRow.host).where(VolumeRow.id == volume_id))

    def _target_host(self, target_iqn: str) -> str | None:
        """The host owning the export whose target is ``target_iqn`` (its volume's host)."""
        from sqlalchemy import select

        from storage.catalog.exports import ExportRow
        from storage.catalog.volumes import VolumeRow

        with self.catalog.session() as s:
            return s.scalar(select(VolumeRow.host).join(ExportRow, ExportRow.volume_id == VolumeRow.id)
                            .where(ExportRow.target_iqn == target_iqn))  # fmt: skip

    def _job_host(self, kind: str, params: dict[str, Any]) -> str | None:
        """The host a job's work must run on (storage.queue.routing): its volume's, or this config's."""
        from storage.queue.routing import RUN_KINDS, SHARED_KINDS, volume_of

        if kind in SHARED_KINDS:
            return None
        if kind == "host-call":
            return str(params.get("host") or self.settings.host_name)
        if kind in RUN_KINDS:
            return self._run_host()
        if kind == "restore" and not params.get("to_volume_id") and params.get("host"):
            return str(params["host"])  # a new volume: the host the scheduler chose (storage/backup/queued.py)
        vid = volume_of(kind, params)
        source = str(params.get("source") or "")
        if vid is None and kind == "backup" and source.startswith("snapshot:"):
            from sqlalchemy import select

            from storage.catalog.volumes import SnapshotRow

            with self.catalog.session() as s:
                vid = s.scalar(select(SnapshotRow.volume_id).where(SnapshotRow.id == source.partition(":")[2]))
        return (self._volume_host(vid) if vid else None) or self.settings.host_name

    def _run_host(self) -> str:
        """Where a policy run goes (storage.queue.routing.run_host): never a queue no agent serves."""
        from storage.errors import HostUnavailable
        from storage.hosts.state import HostState
        from storage.queue.routing import run_host

        hosts = self.hosts.list()
        chosen = run_host(self.settings.host_name, {h.name: h.state is not HostState.DOWN for h in hosts})
        if chosen is None:
            raise HostUnavailable(
                "no host agent is up to run the policy (no heartbeat within "
                f"{self.settings.cluster_settings.service_down_time:g}s from {len(hosts)} registered hosts); "
                "start `storagectl agent` on a host",
                state="down",
            )
        return chosen

    @cached_property
    def local_host(self) -> "LocalHost":
        """This host's drivers behind the HostApi seam (in process)."""
        from storage.host.local import LocalHost

        def export_driver() -> tuple[str, dict[str, Any]]:
            from storage.exports.setup import export_setup

            setup = export_setup(self.settings.export, self.settings.data_dir)
            return setup.driver, setup.driver_options

        def advertise_portal() -> str:
            from storage.exports.setup import export_setup

            return export_setup(self.settings.export, self.settings.data_dir).advertise_portal

        return LocalHost(self.settings.pools, export_driver, advertise_portal)

    # -- the control plane: one service per capability ----------------------------------------
    @cached_property
    def hosts(self) -> "HostService":
        """The services table: this host's heartbeats, every host's state, placement candidates."""
        from storage import __version__
        from storage.hosts.service import HostService

        return HostService(
            self.catalog, self.host, name=self.settings.host_name, pools=self.pool_placements,
            availability_zone=self.settings.scheduler.availability_zone, cluster=self.settings.cluster_settings,
            clustered=self.settings.cluster is not None, version=__version__,
            sealing_key=self.host_key.public if self.host_key is not None and self.queued else None,
        )  # fmt: skip

    @cached_property
    def pool_placements(self) -> "dict[str, PoolPlacement]":
        """What the configuration says about each pool for placement: driver, zone, labels."""
        from storage.scheduler.gather import PoolPlacement

        zone = self.settings.scheduler.availability_zone
        return {
            name: PoolPlacement(cfg.driver, cfg.availability_zone or zone, dict(cfg.labels))
            for name, cfg in self.settings.pools.items()
        }

    @cached_property
    def pools(self) -> "PoolService":
        from storage.volumes.pools import PoolService

        drivers = {name: cfg.driver for name, cfg in self.settings.pools.items()}
        return PoolService(self.host, drivers=drivers, default_pool=self.settings.default_pool)

    @cached_property
    def volumes(self) -> "VolumeService":
        from storage.volumes.service import VolumeService

        return VolumeService(
            self.catalog, self.host, placer=self.placer, host_name=self.settings.host_name,
            snapshots=lambda: self.snapshots, exports=lambda: self.exports, hosts=lambda: self.hosts,
            host_on=self.host_on, settle_host=self.local_host if self.agent else None,
        )  # fmt: skip

    def host_on(self, name: str) -> "HostApi":
        """The HostApi of host ``name``: ``host`` for this host (or in process), else that host's queue."""
        if not self.queued or name == self.settings.host_name:
            return self.host
        from storage.host.remote import RemoteHost

        return RemoteHost(self.jobs, name, self.settings.cluster_settings.remote_call_timeout,
                          sealing_key_of=self._sealing_key_of)  # fmt: skip

    @cached_property
    def placer(self) -> "Placer":
        """The scheduler over this host's configured pools, or, with a work queue and outside the
        agent, over every registered host's (storage/volumes/placement.py)."""
        from storage.volumes.placement import Placer

        return Placer(
            self.host, host_name=self.settings.host_name, pools=self.pool_placements,
            pinned_pool=self.settings.default_pool_pinned, weigher=self.settings.scheduler.weigher,
            cluster_candidates=self.hosts.candidates if self.queued and not self.agent else None,
        )  # fmt: skip

    @cached_property
    def volume_listing(self) -> "VolumeListing":
        """The read side of ``volumes`` alone (what ``volumes.list`` runs), without the drivers
        or SQLAlchemy: `storagectl volume list` uses it to start fast."""
        from storage.volumes.listing import VolumeListing

        def settle() -> object:
            from storage.volumes.settle import settle_volumes

            return settle_volumes(self.catalog, self.local_host if self.agent else self.host)

        return VolumeListing(self.catalog, settle=settle)

    @cached_property
    def snapshots(self) -> "SnapshotService":
        from storage.volumes.snapshots import SnapshotService

        return SnapshotService(self.catalog, self.host, self.volumes)

    @cached_property
    def exports(self) -> "ExportService":
        from storage.exports.service import ExportService
        from storage.exports.setup import export_setup

        setup = export_setup(self.settings.export, self.settings.data_dir)
        cluster = self.settings.cluster
        return ExportService(self.catalog, self.host, setup, self.volumes, host_on=self.host_on,
                             host_name=self.settings.host_name if self.queued else None,
                             secrets_key_file=cluster.secrets_key_file if cluster is not None else None)  # fmt: skip

    @cached_property
    def connections(self) -> "ConnectionService":
        """Cinder connection actions: initialize/terminate a compute host's connection, attach bookkeeping."""
        from storage.exports.connections import ConnectionService

        return ConnectionService(self.catalog, self.exports, self.volumes)

    @cached_property
    def objects(self) -> "ObjectService":
        from storage.objects.service import ObjectService

        return ObjectService(self.settings.object_stores, data_dir=self.settings.data_dir)

    @cached_property
    def backups(self) -> "BackupService":
        from storage.backup.service import BackupService

        return BackupService(
            self.catalog, self.settings.backup, data_dir=self.settings.data_dir, objects=self.objects,
            volumes=self.volumes, snapshots=self.snapshots, host=self.host,
            config_file=str(self.settings.config_file) if self.settings.config_file else None,
            host_name=self.settings.host_name,
            restore_jobs=(lambda: self.backup_jobs) if self.queued and not self.agent else None,
            backup_jobs=(lambda: self.backup_jobs) if self.queued else None,
        )  # fmt: skip

    @cached_property
    def backup_jobs(self) -> "BackupJobs":
        """Restores onto volumes as jobs (the API always; the library and CLI with a work queue), and
        backups of another host's volume as jobs on that host (with a work queue)."""
        from storage.backup.queued import BackupJobs

        return BackupJobs(self.jobs, self.volumes, self.placer, lambda: self.hosts, host_name=self.settings.host_name,
                           pools=self.settings.pools)  # fmt: skip

    @cached_property
    def backup_listing(self) -> "BackupListing":
        """The read side of ``backups`` alone (what ``backups.list`` runs), without the backup
        engine or SQLAlchemy: `storagectl backup list` uses it to start fast."""
        from storage.backup.listing import BackupListing

        return BackupListing(self.catalog, lambda url: self.objects.open_url(url).url)

    @cached_property
    def policies(self) -> "PolicyService":
        from storage.policy.service import PolicyService

        return PolicyService(
            self.catalog, pools=tuple(self.settings.pools), data_dir=self.settings.data_dir,
            backup_settings=self.settings.backup, volumes=self.volumes, snapshots=self.snapshots,
            backups=self.backups, objects=self.objects,
        )  # fmt: skip

    @cached_property
    def tokens(self) -> "TokenService":
        from storage.auth.service import TokenService

        return TokenService(self.catalog)

    @cached_property
    def jobs(self) -> "JobService":
        from storage.jobs.service import JobService
        from storage.queue.tasks import run_task

        dispatcher = None
        if self.queued:
            from storage.queue.pq import ProcrastinateDispatcher

            dispatcher = ProcrastinateDispatcher(self.settings.catalog_url, self._job_host)
        return JobService(self.catalog, runner=lambda kind, ctx, params: run_task(self, kind, ctx, params),
                          dispatcher=dispatcher)  # fmt: skip

    @cached_property
    def applier(self) -> "ApplyService":
        """Declarative apply of a stack file (storage/apply/); ``apply()`` is its entry point."""
        import socket

        from storage.apply.service import ApplyService

        return ApplyService(
            host_name=socket.gethostname(), host=self.host, volumes=self.volumes, snapshots=self.snapshots,
            policies=self.policies, exports=lambda: self.exports,
        )  # fmt: skip

    def apply(
        self, doc: "Stack | str | bytes | dict[str, Any]", *, dry_run: bool = True, prune: bool = False,
        yes: bool = False, delete_volumes: bool = False,
    ) -> "ApplyResult":  # fmt: skip
        """Plan a stack (YAML text, parsed data or a Stack) against this host; apply it unless dry_run.

        ``prune`` deletes what the stack does not declare (only with ``yes``; a volume only when it
        holds no data, or with ``delete_volumes``). See docs/apply.md.
        """
        return self.applier.apply(doc, dry_run=dry_run, prune=prune, yes=yes, delete_volumes=delete_volumes)

    def check(self, repair: bool = False, *, stale_after: float | None = None) -> "CheckReport":
        """Reconcile the catalog against this host's pools (``storagectl check [--repair]``)."""
        from storage.volumes.check import DEFAULT_STALE_AFTER, check

        stale = DEFAULT_STALE_AFTER if stale_after is None else stale_after
        return check(self.catalog, self.local_host, tuple(self.settings.pools), repair, stale_after=stale,
                     host_name=self.settings.host_name)  # fmt: skip

    def close(self) -> None:
        if self._lease is not None:
            self._lease.stop()  # its row deleted: a clean end leaves nothing to settle
            self._lease = None
        jobs = self.__dict__.get("jobs")
        if jobs is not None and jobs.dispatcher is not None:
            jobs.dispatcher.close()
        self.catalog.close()

    def __enter__(self) -> "Storage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(config: str | os.PathLike[str] | Settings | None = None, **overrides: Any) -> Storage:  # noqa: A001
    """Open the storage described by a config file path, a Settings object, or the defaults."""
    settings = config if isinstance(config, Settings) else load_settings(config, **overrides)
    return Storage(settings)
