"""The weighers: pure functions ``(candidate, request) -> metric``; a higher metric wins.

``free`` (the default, like Cinder's CapacityWeigher): the room a new volume may use (provisionable
bytes on a thin pool, free bytes on a thick one). ``provisioned_ratio``: the least provisioned pool,
measured as (provisioned + the new volume) / total after placing it. Metrics are exact (ints or
Fractions) so ties are real ties, broken by host name then pool name.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from storage.scheduler.filters import room_bytes
from storage.scheduler.models import Candidate, PlacementRequest

Metric = int | Fraction
Weigher = Callable[[Candidate, PlacementRequest], Metric]


def most_free(c: Candidate, r: PlacementRequest) -> Metric:
    return room_bytes(c)


def least_provisioned_ratio(c: Candidate, r: PlacementRequest) -> Metric:
    return -Fraction(c.provisioned_bytes + r.size_bytes, max(c.total_bytes, 1))


WEIGHERS: dict[str, Weigher] = {"free": most_free, "provisioned_ratio": least_provisioned_ratio}
DEFAULT_WEIGHER = "free"


def normalise(metrics: list[Metric]) -> list[float]:
    """Scale to 0..1 (lowest 0, highest 1), as Cinder does before applying multipliers; all equal -> 1."""
    if not metrics:
        return []
    low, high = min(metrics), max(metrics)
    if low == high:
        return [1.0] * len(metrics)
    return [round(float((m - low) / (high - low)), 6) for m in metrics]


def shown(weigher: str, metric: Metric) -> int | float:
    """The metric as a person reads it: bytes for ``free``, the ratio (0.25 = 25%) for ``provisioned_ratio``."""
    return round(float(-metric), 6) if isinstance(metric, Fraction) else int(metric)
