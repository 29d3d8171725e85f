"""Where a new empty volume goes: the scheduler over this host's configured pools.

The one place the volume service meets the scheduler. ``Placer.place`` gathers candidates
(``storage.scheduler.gather.local_candidates``) and asks the pure ``storage.scheduler.place``.

Which pools are candidates:
- an explicit pool (``--pool``): only that pool (its capacity, zone and capabilities are still checked;
  if it cannot report its usage, that error is raised as it was before the scheduler);
- else ``default_pool`` when the configuration sets it explicitly: only that pool, as before the scheduler;
- else every configured pool, and the weigher chooses (with one pool: that pool, as before).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from storage.errors import NotFound
from storage.scheduler import Decision, Hints, PlacementRequest, place
from storage.scheduler.gather import PoolPlacement, local_candidates

if TYPE_CHECKING:
    from storage.host.api import HostApi


class Placer:
    def __init__(
        self, host: "HostApi", *, host_name: str, pools: Mapping[str, PoolPlacement], pinned_pool: str | None, weigher: str
    ) -> None:
        """pinned_pool: the configured default_pool when the configuration names one, else None."""
        self._host = host
        self._host_name = host_name
        self._pools = pools
        self._pinned = pinned_pool
        self._weigher = weigher

    def place(self, size_bytes: int, *, pool: str | None = None, hints: Hints | None = None) -> Decision:
        """The decision for a new volume of ``size_bytes``; raises NoValidHost when no pool fits."""
        target = pool or self._pinned
        if target is not None and target not in self._pools:
            raise NotFound(f"pool {target!r} is not configured; configured pools: {', '.join(sorted(self._pools))}", pool=target)
        names = [target] if target is not None else sorted(self._pools)
        # one named pool that cannot report: its own error (as before the scheduler), not a 507
        candidates = local_candidates(self._host, self._host_name, self._pools, names, raise_errors=target is not None)
        return place(candidates, PlacementRequest(size_bytes, hints or Hints(), pool=target), self._weigher)
