"""Liveness leases of API replicas and CLI processes, and the agent's settling of statuses their dead owners left.

An API replica (``storagectl serve`` with ``[cluster] queue = "procrastinate"``) records itself as
the owner (``host:pid:start``, storage.owners) of every transitional status it starts and then
waits on the owning host's agent. Its process can be probed only on its own machine, so it also
holds a lease: a row of the ``services`` table named by its owner string (a ``:`` that no host name
has, so ``hosts list`` and the scheduler never see it), heartbeated every ``heartbeat_interval``
and deleted on a clean stop.

Each heartbeat of a host's agent settles that host's volumes whose owner is gone
(``settle_dead_owners``): one query when nothing is transitional. An owner is gone
(``owner_gone``, pure, table-tested) when it is a process of this machine that no longer runs
(the signal-0 probe), or a lease holder of another machine whose lease is older than
``service_down_time``; an owner of another machine without a lease (an older version, or a CLI
process killed before its first device call) is not known to be gone and is left to
``storagectl check --repair``. A CLI process with a work queue takes the same lease (role ``cli``)
at its first device call through a queue (``Storage.ensure_lease``), and drops it when it ends. A volume is not
settled while a host call naming it is still queued or running on this host: that call's result
is what the settling reads from the backend. Settling is ``settle_orphaned`` on the agent's drivers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from storage import owners
from storage.catalog.base import utcnow
from storage.catalog.services import ServiceRow
from storage.hosts.state import HostState, host_state

if TYPE_CHECKING:
    from storage.catalog import Catalog

log = logging.getLogger("storage.agent")

LEASE_ROLE = "api-replica"  # a `storagectl serve`; a CLI process's lease has role "cli"
PRUNE_AFTER = timedelta(days=1)  # a dead replica's lease row is dropped this long after its last beat
MAX_SETTLE_ROWS = 1000  # transitional rows read per heartbeat (the rest on the next ones)


def is_lease_name(name: str) -> bool:
    """Whether a services row is a replica's lease (an owner string) rather than a host."""
    return ":" in name


def owner_gone(
    owner: str | None, *, this_host: str, now: datetime, service_down_time: float,
    leases: Mapping[str, datetime | None], dead_here: Callable[[str], bool],
) -> bool:  # fmt: skip
    """Pure given dead_here: True when the process that owns a transitional status is known gone.
    Same machine: ``dead_here`` (signal-0 and start-time probe). Another machine: its lease
    (``leases``: owner -> last heartbeat) is older than service_down_time. No owner, an unparseable
    one, or another machine's owner without a lease: not known, False."""
    parsed = owners.parse_owner(owner) if owner else None
    if parsed is None or owner is None:
        return False
    if parsed[0] == this_host:
        return dead_here(owner)
    if owner not in leases:
        return False
    return host_state(leases[owner], now, service_down_time, False) is HostState.DOWN


class ReplicaLease:
    """This process's lease row, heartbeated by a daemon thread until ``stop``."""

    def __init__(self, catalog: "Catalog", interval: float, clock: Callable[[], datetime] = utcnow,
                 role: str = LEASE_ROLE) -> None:  # fmt: skip
        self._catalog = catalog
        self.role = role
        self.interval = interval
        self.name = owners.this_owner()
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        now = self._clock()
        with self._catalog.session() as s:
            row = s.get(ServiceRow, self.name, populate_existing=True)
            if row is None:
                s.add(ServiceRow(name=self.name, pools={}, capabilities={"role": self.role}, started_at=now,
                                 last_heartbeat=now, updated_at=now, disabled=False))  # fmt: skip
            else:
                row.last_heartbeat = row.updated_at = now

    def start(self) -> "ReplicaLease":
        """First beat now (a status this process records is then covered), then a thread."""

        def beat() -> None:
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - a catalog hiccup must not end the lease
                from storage.hosts.agent import one_line

                log.warning("heartbeat of replica lease %s failed: %s", self.name, one_line(exc))

        beat()

        def loop() -> None:
            while not self._stop.wait(self.interval):
                beat()

        self._thread = threading.Thread(target=loop, name="replica-lease", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
        try:
            with self._catalog.session() as s:
                s.execute(delete(ServiceRow).where(ServiceRow.name == self.name))
        except Exception as exc:  # noqa: BLE001 - the row then ages out (PRUNE_AFTER)
            log.warning("dropping replica lease %s failed: %s", self.name, exc)


def _active_host_calls(catalog: "Catalog", host_name: str) -> set[str]:
    """Volume ids named by host calls still queued or running on this host's queue."""
    from storage.catalog.api_tables import Job

    with catalog.session() as s:
        params = s.scalars(
            select(Job.params).where(Job.kind == "host-call", Job.state.in_(("queued", "running")),
                                     Job.queue == f"host.{host_name}").limit(MAX_SETTLE_ROWS)
        ).all()  # fmt: skip
    return {str(p.get("volume_id")) for p in params if isinstance(p, dict) and p.get("volume_id")}


def settle_dead_owners(catalog: "Catalog", local_host: object, host_name: str, service_down_time: float,
                       *, this_host: str | None = None, now: datetime | None = None) -> int:  # fmt: skip
    """Settle host ``host_name``'s volumes (and snapshots) whose transitional status belongs to a
    gone owner (``owner_gone``); return how many statuses were settled."""
    import socket

    from storage.catalog.volumes import SnapshotRow, VolumeRow
    from storage.volumes.listing import _SNAPSHOT_TRANSITIONAL, _VOLUME_TRANSITIONAL

    this_host = this_host or socket.gethostname()
    with catalog.session() as s:
        vq = select(VolumeRow.id, VolumeRow.task_owner).where(
            VolumeRow.host == host_name, VolumeRow.status.in_(_VOLUME_TRANSITIONAL), VolumeRow.task_owner.is_not(None))
        sq = select(SnapshotRow.volume_id, SnapshotRow.task_owner).join(VolumeRow, VolumeRow.id == SnapshotRow.volume_id).where(
            VolumeRow.host == host_name, SnapshotRow.status.in_(_SNAPSHOT_TRANSITIONAL), SnapshotRow.task_owner.is_not(None))
        rows = [(str(v), str(o)) for v, o in s.execute(vq.union_all(sq).limit(MAX_SETTLE_ROWS)).all()]
        if not rows:
            return 0
        other = sorted({o for _v, o in rows if (owners.parse_owner(o) or ("",))[0] != this_host})
        leases = dict(s.execute(select(ServiceRow.name, ServiceRow.last_heartbeat).where(ServiceRow.name.in_(other))).all()) if other else {}
    now = now or utcnow()
    gone = {v for v, o in rows if owner_gone(o, this_host=this_host, now=now, service_down_time=service_down_time,
                                               leases=leases, dead_here=owners.is_dead_here)}  # fmt: skip
    if not gone:
        return 0
    busy = _active_host_calls(catalog, host_name)
    gone_owners = {o for _v, o in rows if _v in gone}
    from storage.volumes.settle import settle_each

    try:
        return settle_each(catalog, local_host, sorted(gone - busy), is_dead=lambda o: o in gone_owners, why="owner gone")
    except Exception as exc:  # noqa: BLE001 - an agent's heartbeat never dies of it: the next one tries again
        log.warning("settling volumes left by gone owners failed: %s", exc)
        return 0


def prune_leases(catalog: "Catalog", now: datetime | None = None) -> int:
    """Drop lease rows of replicas not heard from for PRUNE_AFTER (killed, never stopped cleanly)."""
    cutoff = (now or utcnow()) - PRUNE_AFTER
    with catalog.session() as s:
        names = [n for n in s.scalars(select(ServiceRow.name).where(ServiceRow.last_heartbeat < cutoff)).all() if is_lease_name(n)]
        if names:
            s.execute(delete(ServiceRow).where(ServiceRow.name.in_(names)))
    return len(names)
