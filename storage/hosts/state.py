"""Pure decisions about hosts: up/down/disabled, retry back-off, the scheduler's candidates from heartbeats."""

from __future__ import annotations

import enum
import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storage.scheduler.models import Candidate


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


def placement_candidates(hosts: Iterable[HostInfo]) -> list[Candidate]:
    """One scheduler ``Candidate`` per pool of every registered host, carrying its host's state,
    ordered by host then pool. Down and disabled hosts and pools whose report failed stay in the
    list: the scheduler's ``host_state`` filter refuses them and its decision says why.
    A pool's own zone and labels win over its host's."""
    out: list[Candidate] = []
    for h in sorted(hosts, key=lambda h: h.name):
        for pool, report in sorted(h.pools.items()):
            provisionable = report.get("provisionable_bytes")
            out.append(Candidate(
                host=h.name, pool=pool, driver=str(report.get("driver", "")),
                total_bytes=int(report.get("total_bytes") or 0), free_bytes=int(report.get("free_bytes") or 0),
                provisioned_bytes=int(report.get("provisioned_bytes") or 0),
                overcommit_ratio=float(report.get("overcommit_ratio") or 1.0),
                capabilities=dict(report.get("capabilities") or {}),
                availability_zone=str(report.get("availability_zone") or h.availability_zone),
                labels={**h.labels, **dict(report.get("labels") or {})},
                up=h.state is not HostState.DOWN, disabled=h.disabled, disabled_reason=h.disabled_reason,
                error=report.get("error"), provisionable=None if provisionable is None else int(provisionable),
            ))  # fmt: skip
    return out


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def reported_at(report: Mapping[str, Any]) -> datetime | None:
    """When a pool's heartbeat report was read (``reported_at``, ISO 8601), None if absent or unreadable."""
    raw = report.get("reported_at")
    try:
        return as_utc(datetime.fromisoformat(raw)) if isinstance(raw, str) else None
    except ValueError:
        return None


def unreported(volume_changed_at: datetime, volume_status: str, pool_reported_at: datetime | None) -> bool:
    """Whether a volume row of a pool may be missing from the pool's last heartbeat report: its row
    last changed (``updated_at``: made, or moved out of ``creating`` once its file exists) after the
    report was read, or still ``creating`` (its device may not exist yet). Counting a volume twice
    for a moment errs towards refusing a pool, never towards overfilling it."""
    if volume_status == "creating":
        return True
    return pool_reported_at is not None and as_utc(volume_changed_at) >= pool_reported_at


def with_pending(candidates: Iterable[Candidate], pending: Mapping[tuple[str, str], int]) -> list[Candidate]:
    """Candidates with the bytes of volumes their heartbeat has not counted yet (``pending``, by
    (host, pool)) taken off their room: provisioned grows; the provisionable figure of a pool that
    reports one shrinks; a thick pool's free bytes shrink (a thin pool's physical free is untouched)."""
    out = []
    for c in candidates:
        extra = pending.get((c.host, c.pool), 0)
        if extra <= 0:
            out.append(c)
            continue
        out.append(dataclasses.replace(
            c, provisioned_bytes=c.provisioned_bytes + extra,
            provisionable=None if c.provisionable is None else c.provisionable - extra,
            free_bytes=c.free_bytes if c.thin else c.free_bytes - extra,
        ))  # fmt: skip
    return out
