"""The scheduler's plain data: candidate pools, a placement request, and the decision with its reasons.

Everything is a frozen dataclass of str/int/float/bool/mappings, so candidates can come from this
host's ``HostApi`` today and from a services table of many hosts later, and a decision can be
stored in a job record or returned by the API as JSON (``Decision.to_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CapabilityValue = bool | str | int


@dataclass(frozen=True)
class Candidate:
    """One pool on one host, as the scheduler sees it.

    ``thin`` pools are judged by provisionable bytes (total x overcommit_ratio - provisioned),
    thick ones by free bytes. ``error`` is set when the pool could not report its usage.
    """

    host: str
    pool: str
    driver: str = ""
    total_bytes: int = 0
    free_bytes: int = 0
    provisioned_bytes: int = 0
    overcommit_ratio: float = 1.0
    capabilities: Mapping[str, CapabilityValue] = field(default_factory=dict)
    availability_zone: str = "nova"
    labels: Mapping[str, str] = field(default_factory=dict)
    up: bool = True
    disabled: bool = False
    disabled_reason: str | None = None
    error: str | None = None
    provisionable: int | None = None  # the pool's own figure when it reports one (HostApi.pool_usage)

    @property
    def name(self) -> str:
        """``host#pool``, Cinder's way of naming a pool on a host."""
        return f"{self.host}#{self.pool}"

    @property
    def thin(self) -> bool:
        return bool(self.capabilities.get("thin", False))

    @property
    def granularity(self) -> int:
        value = self.capabilities.get("size_granularity", 1)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1

    @property
    def limit_bytes(self) -> int:
        return int(self.total_bytes * self.overcommit_ratio)

    @property
    def provisionable_bytes(self) -> int:
        """limit - provisioned, or the pool's own figure (e.g. a file pool does not count snapshots)."""
        return self.limit_bytes - self.provisioned_bytes if self.provisionable is None else self.provisionable


@dataclass(frozen=True)
class Hints:
    """What a caller may ask of the placement of a new volume besides its size (validated by ``hints``)."""

    availability_zone: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)  # the pool's labels must include these
    capabilities: Mapping[str, CapabilityValue] = field(default_factory=dict)  # required values
    host: str | None = None  # an explicit host (several hosts: a later change feeds them)

    def __bool__(self) -> bool:
        return bool(self.availability_zone or self.labels or self.capabilities or self.host)

    def to_dict(self) -> dict[str, Any]:
        return {
            "availability_zone": self.availability_zone, "labels": dict(self.labels),
            "capabilities": dict(self.capabilities), "host": self.host,
        }  # fmt: skip


@dataclass(frozen=True)
class PlacementRequest:
    size_bytes: int
    hints: Hints = field(default_factory=Hints)
    pool: str | None = None  # an explicit pool: only candidates of that name pass

    def to_dict(self) -> dict[str, Any]:
        return {"size_bytes": self.size_bytes, "pool": self.pool, **self.hints.to_dict()}


@dataclass(frozen=True)
class Verdict:
    """One candidate's fate: refused (by which filter, why) or weighed (metric, weight, rank)."""

    host: str
    pool: str
    refused_by: str | None = None
    reason: str | None = None
    metric: int | float | None = None  # the weigher's raw measure (bytes, or a ratio)
    weight: float | None = None  # normalised to 0..1 across the survivors, higher wins
    rank: int | None = None  # 1 = chosen

    @property
    def name(self) -> str:
        return f"{self.host}#{self.pool}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"host": self.host, "pool": self.pool}
        if self.refused_by is not None:
            out.update(refused_by=self.refused_by, reason=self.reason)
        else:
            out.update(metric=self.metric, weight=self.weight, rank=self.rank)
        return out


@dataclass(frozen=True)
class Decision:
    """The scheduler's answer: the chosen pool (or None) and a verdict for every candidate.

    ``verdicts`` lists the survivors by rank first, then the refused candidates in input order.
    """

    request: PlacementRequest
    weigher: str
    verdicts: tuple[Verdict, ...]

    @property
    def chosen(self) -> Verdict | None:
        return next((v for v in self.verdicts if v.rank == 1), None)

    @property
    def refused(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.refused_by is not None)

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "chosen": {"host": chosen.host, "pool": chosen.pool} if chosen else None,
            "weigher": self.weigher,
            "request": self.request.to_dict(),
            "candidates": [v.to_dict() for v in self.verdicts],
        }
