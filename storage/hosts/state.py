"""Pure decisions about hosts: up/down/disabled, retry back-off, placement candidates."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class HostState(str, enum.Enum):
    UP = "up"
    DOWN = "down"
    DISABLED = "disabled"


def host_state(last_heartbeat: datetime | None, now: datetime, service_down_time: float, disabled: bool) -> HostState:
    """``down`` when not heard from for more than service_down_time (or never), whether disabled
    or not: a dead host's volumes answer 503 either way; else ``disabled`` when an administrator
    disabled it (it keeps serving its volumes, takes no new ones); else ``up``.

    A heartbeat from the future (clock skew between hosts) counts as just now.
    """
    if last_heartbeat is None:
        return HostState.DOWN
    age = max(0.0, (now - last_heartbeat).total_seconds())
    if age > service_down_time:
        return HostState.DOWN
    return HostState.DISABLED if disabled else HostState.UP


def retry_delay(failures: int, interval: float, cap: float) -> float:
    """Seconds to wait after the ``failures``-th consecutive failed heartbeat: interval doubled
    per failure, at most ``cap`` (and never less than interval). ``failures == 0``: interval."""
    if failures <= 0:
        return interval
    return max(interval, min(cap, interval * 2 ** min(failures, 32)))


class HostInfo(BaseModel):
    """One services row as the CLI and API show it."""

    model_config = ConfigDict(frozen=True)
    name: str
    state: HostState
    disabled: bool = False
    disabled_reason: str | None = None
    availability_zone: str = "nova"
    labels: dict[str, str] = Field(default_factory=dict)
    version: str = ""
    pools: dict[str, dict[str, Any]] = Field(default_factory=dict)
    capabilities: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    last_heartbeat: datetime | None = None
    seconds_since_heartbeat: float | None = None
    volumes: int = 0


class PoolCandidate(BaseModel):
    """One pool of one host that may take a new volume (for the scheduler)."""

    model_config = ConfigDict(frozen=True)
    host: str
    pool: str
    driver: str
    capabilities: dict[str, Any]
    total_bytes: int
    free_bytes: int
    provisioned_bytes: int
    availability_zone: str
    labels: dict[str, str]


def placement_candidates(hosts: Iterable[HostInfo]) -> list[PoolCandidate]:
    """Every pool of every ``up`` host that reported its capacity: disabled and down hosts,
    and pools whose report failed, take no new volumes. Ordered by host, then pool."""
    out: list[PoolCandidate] = []
    for h in sorted(hosts, key=lambda h: h.name):
        if h.state is not HostState.UP:
            continue
        for pool, report in sorted(h.pools.items()):
            if report.get("error") or "free_bytes" not in report:
                continue
            out.append(PoolCandidate(
                host=h.name, pool=pool, driver=str(report.get("driver", "")),
                capabilities=dict(report.get("capabilities") or {}),
                total_bytes=int(report.get("total_bytes") or 0), free_bytes=int(report["free_bytes"]),
                provisioned_bytes=int(report.get("provisioned_bytes") or 0),
                availability_zone=h.availability_zone, labels=dict(h.labels),
            ))  # fmt: skip
    return out
