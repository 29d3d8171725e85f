"""HostService (``st.hosts``): the services table, read and written.

The agent of a host (``storagectl agent``) calls ``heartbeat`` every ``heartbeat_interval``.
On a single host (no ``[cluster]`` table) no agent is needed: every read of the table by this
process (``hosts list/show``, placement, ``storagectl serve``) first refreshes this host's row,
throttled to one write per half interval, so the running process is the heartbeat.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage.catalog.base import utcnow
from storage.catalog.services import ServiceRow
from storage.catalog.volumes import VolumeRow
from storage.errors import Conflict, HostUnavailable, InvalidInput, NotFound, StorageError
from storage.hosts.state import (
    HostInfo,
    HostState,
    host_state,
    placement_candidates,
    reported_at,
    unreported,
    with_pending,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from storage.scheduler.gather import PoolPlacement
    from storage.scheduler.models import Candidate
    from storage.catalog import Catalog
    from storage.config import ClusterConfig
    from storage.host.api import HostApi

HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,254}")
MAX_REASON = 255
CAPABILITY_FLAGS = ("thin", "snapshots", "clone", "revert", "online_extend", "changed_ranges")


def validate_host_name(name: object) -> str:
    if not isinstance(name, str) or not HOST_NAME_RE.fullmatch(name):
        shown = name[:80] if isinstance(name, str) else name
        raise InvalidInput(
            f"host name {shown!r} is not accepted; accepted: 1-255 letters, digits, . _ @ - (starting with a letter or digit)",
            field="host",
        )
    return name


def validate_reason(reason: object) -> str | None:
    if reason is None or reason == "":
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not reason.isprintable():
        raise InvalidInput(f"reason is not accepted; accepted: printable text up to {MAX_REASON} characters", field="reason")
    return reason


class HostService:
    def __init__(
        self,
        catalog: "Catalog",
        host: "HostApi",
        *,
        name: str,
        pools: "Mapping[str, PoolPlacement]",
        availability_zone: str,
        cluster: "ClusterConfig",
        clustered: bool,
        version: str,
        clock: Callable[[], datetime] = utcnow,
        sealing_key: Callable[[], str] | None = None,
    ) -> None:
        """sealing_key: the agent's public key (storage.hosts.sealing), published with every heartbeat."""
        self._catalog = catalog
        self._host = host
        self.name = name
        self._pools = dict(pools)
        self._zone = availability_zone
        self.cluster = cluster
        self.clustered = clustered
        self._version = version
        self._clock = clock
        self._sealing_key = sealing_key
        self._started_at = clock()
        self._last_local_refresh = float("-inf")
        self._refresh_lock = threading.Lock()

    # -- what this host reports ------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """This host's pools (driver, capabilities, capacity) and host-wide capabilities.

        A pool whose driver fails to report is listed with its error and skipped by placement.
        """
        pools: dict[str, Any] = {}
        flags: set[str] = set()
        read_at = self._clock().isoformat()  # before reading: a volume made after it is not counted
        for pool, cfg in sorted(self._pools.items()):
            driver = cfg.driver
            try:
                caps = self._host.pool_capabilities(pool)
                usage = self._host.pool_usage(pool)
            except StorageError as exc:
                pools[pool] = {"driver": driver, "error": exc.message[:500]}
                continue
            except OSError as exc:
                pools[pool] = {"driver": driver, "error": f"{type(exc).__name__}: {exc.strerror or exc}"[:500]}
                continue
            flags.update(f for f in CAPABILITY_FLAGS if caps.get(f))
            pools[pool] = {
                "driver": driver,
                "capabilities": {k: v for k, v in caps.items() if isinstance(v, (bool, int, str))},
                "total_bytes": int(usage.get("total_bytes") or 0),
                "free_bytes": int(usage.get("free_bytes") or 0),
                "provisioned_bytes": int(usage.get("provisioned_bytes") or 0),
                "allocated_bytes": int(usage.get("allocated_bytes") or 0),
                "provisionable_bytes": int(usage.get("provisionable_bytes") or 0),
                "overcommit_ratio": float(usage.get("overcommit_ratio") or 1.0),
                "availability_zone": cfg.availability_zone, "labels": dict(cfg.labels),
                "reported_at": read_at,
            }
        capabilities: dict[str, Any] = {"pool_capabilities": sorted(flags)}
        if self._sealing_key is not None:
            capabilities["sealing_key"] = self._sealing_key()
        return {"pools": pools, "capabilities": capabilities}

    def heartbeat(self, report: dict[str, Any] | None = None, *, started_at: datetime | None = None) -> None:
        """Upsert this host's row with a fresh report and ``last_heartbeat = now``.

        ``disabled`` and its reason are the administrator's and stay as they are.
        """
        report = self.report() if report is None else report
        now = self._clock()
        values = {
            "pools": report["pools"], "capabilities": report["capabilities"],
            "availability_zone": self._zone, "labels": dict(self.cluster.labels),
            "version": self._version[:64], "started_at": started_at or self._started_at,
            "last_heartbeat": now, "updated_at": now,
        }  # fmt: skip
        for _attempt in range(2):
            try:
                with self._catalog.session() as s:
                    row = s.get(ServiceRow, self.name, populate_existing=True)
                    if row is None:
                        s.add(ServiceRow(name=self.name, disabled=False, **values))
                    else:
                        for key, value in values.items():
                            setattr(row, key, value)
                return
            except (IntegrityError, Conflict):  # another process of this host inserted it first: update it
                continue

    def refresh_local(self) -> None:
        """Single host: keep this host's row fresh from the running process (throttled)."""
        if self.clustered:
            return
        with self._refresh_lock:
            if time.monotonic() - self._last_local_refresh < self.cluster.heartbeat_interval / 2:
                return
            self.heartbeat()
            self._last_local_refresh = time.monotonic()

    # -- reads -----------------------------------------------------------------------------
    def _info(self, row: ServiceRow, now: datetime, volumes: int) -> HostInfo:
        hb = row.last_heartbeat
        return HostInfo(
            name=row.name, state=host_state(hb, now, self.cluster.service_down_time, row.disabled),
            disabled=row.disabled, disabled_reason=row.disabled_reason, availability_zone=row.availability_zone,
            labels=dict(row.labels or {}), version=row.version, pools=dict(row.pools or {}),
            capabilities=dict(row.capabilities or {}), started_at=row.started_at, last_heartbeat=hb,
            seconds_since_heartbeat=round(max(0.0, (now - hb).total_seconds()), 3) if hb else None,
            volumes=volumes,
        )  # fmt: skip

    def list(self) -> list[HostInfo]:
        self.refresh_local()
        now = self._clock()
        with self._catalog.session() as s:
            # rows named host:pid:start are API replicas' leases (storage.hosts.replicas), not hosts
            rows = s.scalars(select(ServiceRow).where(~ServiceRow.name.contains(":")).order_by(ServiceRow.name)).all()
            counts = dict(s.execute(select(VolumeRow.host, func.count()).group_by(VolumeRow.host)).all())
        return [self._info(r, now, int(counts.get(r.name, 0))) for r in rows]

    def get(self, name: str) -> HostInfo:
        validate_host_name(name)
        self.refresh_local()
        now = self._clock()
        with self._catalog.session() as s:
            row = s.get(ServiceRow, name)
            count = s.scalar(select(func.count()).select_from(VolumeRow).where(VolumeRow.host == name)) or 0
        if row is None:
            raise NotFound(f"host {name!r} is not registered; see `storagectl hosts list`", host=name)
        return self._info(row, now, int(count))

    def state_of(self, name: str | None) -> HostState | None:
        """The state of a volume's host for a read (None: no host recorded or never registered)."""
        if name is None:
            return None
        if name == self.name and not self.clustered:
            return HostState.UP
        with self._catalog.session() as s:
            row = s.get(ServiceRow, name)
        if row is None:
            return None
        return host_state(row.last_heartbeat, self._clock(), self.cluster.service_down_time, row.disabled)

    def candidates(self) -> list["Candidate"]:
        """Every registered host's pools as the scheduler's candidates (``storage.scheduler.place``
        input): down/disabled hosts and failed pools included, for its filters to refuse and explain."""
        hosts = self.list()
        return with_pending(placement_candidates(hosts), self.pending_bytes(hosts))

    def pending_bytes(self, hosts: "list[HostInfo]") -> dict[tuple[str, str], int]:
        """Bytes of volumes each (host, pool) holds that its last heartbeat report may not count
        (``state.unreported``): placement takes them off the pool's room, so volumes made between
        two heartbeats do not all go to the pool that looked emptiest."""
        read = {(h.name, p): reported_at(r) for h in hosts for p, r in h.pools.items()}
        if not read:
            return {}
        stamps = [t for t in read.values() if t is not None]
        since = min(stamps) if len(stamps) == len(read) else None
        # updated_at, not created_at: a volume's row is written (creating) before its host makes the
        # file, and a report read between the two has neither the file nor a row newer than itself;
        # the row's last change (creating -> available) comes after the file, so it is counted
        query = select(VolumeRow.host, VolumeRow.pool, VolumeRow.size_bytes, VolumeRow.status, VolumeRow.updated_at).where(
            VolumeRow.host.in_(sorted({h.name for h in hosts}))
        )
        if since is not None:  # only rows that may be unreported: changed since the oldest report, or creating
            query = query.where((VolumeRow.updated_at >= since) | (VolumeRow.status == "creating"))
        out: dict[tuple[str, str], int] = {}
        with self._catalog.session() as s:
            rows = s.execute(query).all()
        for host, pool, size, status, changed in rows:
            key = (host, pool)
            if key in read and unreported(changed, status, read[key]):
                out[key] = out.get(key, 0) + int(size)
        return out

    # -- guards ----------------------------------------------------------------------------
    def require_up(self, name: str | None) -> None:
        """Raise HostUnavailable (503) naming the host when a volume's host is down.

        On a single host, this process is the host: its own volumes need no lookup.
        """
        if name is None or (name == self.name and not self.clustered):
            return
        state = self.state_of(name)
        if state is None:
            raise HostUnavailable(
                f"host {name!r} that owns this volume has never registered; start `storagectl agent` on it",
                host=name, state="unknown",
            )  # fmt: skip
        if state is HostState.DOWN:
            raise HostUnavailable(
                f"host {name!r} that owns this volume is down (no heartbeat for more than "
                f"{self.cluster.service_down_time:g}s); try again when its agent is back",
                host=name, state=state.value,
            )  # fmt: skip

    def require_accepting(self, name: str) -> None:
        """Raise HostUnavailable when host ``name`` may not take a new volume (down or disabled)."""
        self.refresh_local()
        with self._catalog.session() as s:
            row = s.get(ServiceRow, name)
        if row is None:
            self.require_up(name)
            return
        if host_state(row.last_heartbeat, self._clock(), self.cluster.service_down_time, False) is HostState.DOWN:
            self.require_up(name)
        if row.disabled:
            why = f" ({row.disabled_reason})" if row.disabled_reason else ""
            raise HostUnavailable(
                f"host {name!r} is disabled{why} and takes no new volumes; `storagectl hosts enable {name}` re-enables it",
                host=name, state=HostState.DISABLED.value,
            )  # fmt: skip

    # -- administration --------------------------------------------------------------------
    def _set_disabled(self, name: str, disabled: bool, reason: str | None) -> HostInfo:
        validate_host_name(name)
        with self._catalog.session() as s:
            row = s.get(ServiceRow, name)
            if row is None:
                raise NotFound(f"host {name!r} is not registered; see `storagectl hosts list`", host=name)
            row.disabled = disabled
            row.disabled_reason = reason if disabled else None
            row.updated_at = self._clock()
        return self.get(name)

    def disable(self, name: str, reason: str | None = None) -> HostInfo:
        return self._set_disabled(name, True, validate_reason(reason))

    def enable(self, name: str) -> HostInfo:
        return self._set_disabled(name, False, None)
