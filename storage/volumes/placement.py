"""Where a new empty volume goes: the scheduler over this host's pools, or every host's in a cluster.

The one place the volume service meets the scheduler. ``Placer.place`` gathers candidates and asks
the pure ``storage.scheduler.place``.

Where candidates come from:
- single host (and a host's own agent): this host's configured pools
  (``storage.scheduler.gather.local_candidates``);
- a cluster with a work queue (``[cluster] queue = "procrastinate"``, outside the agent): every
  registered host's pools from the services table (``cluster_candidates``, ``st.hosts.candidates``),
  down and disabled hosts included for the ``host_state`` filter to refuse and explain. The
  chosen host is recorded on the volume row, so its create goes to that host's queue.

Which pools are candidates:
- an explicit pool (``--pool``): only that pool (its capacity, zone and capabilities are still checked;
  on a single host, if it cannot report its usage, that error is raised as it was before the scheduler);
- else ``default_pool`` when the configuration sets it explicitly: only that pool, as before the scheduler;
- else every pool, and the weigher chooses (with one pool: that pool, as before).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from storage.errors import NotFound
from storage.scheduler import Candidate, Decision, Hints, PlacementRequest, place
from storage.scheduler.gather import PoolPlacement, local_candidates

if TYPE_CHECKING:
    from storage.host.api import HostApi


class Placer:
    def __init__(
        self, host: "HostApi", *, host_name: str, pools: Mapping[str, PoolPlacement], pinned_pool: str | None, weigher: str,
        cluster_candidates: Callable[[], list[Candidate]] | None = None,
    ) -> None:
        """pinned_pool: the configured default_pool when the configuration names one, else None.
        cluster_candidates: every host's pools (the services table); None places on this host only."""
        self._host = host
        self._host_name = host_name
        self._pools = pools
        self._pinned = pinned_pool
        self._weigher = weigher
        self._cluster = cluster_candidates

    @property
    def clustered(self) -> bool:
        """Whether new volumes may go to any registered host (not only this one)."""
        return self._cluster is not None

    def place(self, size_bytes: int, *, pool: str | None = None, hints: Hints | None = None) -> Decision:
        """The decision for a new volume of ``size_bytes``; raises NoValidHost when no pool fits."""
        target = pool or self._pinned
        request = PlacementRequest(size_bytes, hints or Hints(), pool=target)
        if self._cluster is not None:  # a pool unknown to every host: refused by the `requested` filter, explained
            return place(self._cluster(), request, self._weigher)
        if target is not None and target not in self._pools:
            raise NotFound(f"pool {target!r} is not configured; configured pools: {', '.join(sorted(self._pools))}", pool=target)
        names = [target] if target is not None else sorted(self._pools)
        # one named pool that cannot report: its own error (as before the scheduler), not a 507
        candidates = local_candidates(self._host, self._host_name, self._pools, names, raise_errors=target is not None)
        return place(candidates, request, self._weigher)
