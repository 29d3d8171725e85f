"""Gathering candidates (I/O): this host's configured pools through ``HostApi``.

Kept apart from the pure decision so that a services table of several hosts can feed the same
``schedule`` later: it only has to produce ``Candidate`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage.errors import StorageError
from storage.scheduler.models import Candidate

if TYPE_CHECKING:
    from storage.host.api import HostApi


@dataclass(frozen=True)
class PoolPlacement:
    """What the configuration says about a pool for placement (driver, zone, labels)."""

    driver: str
    availability_zone: str = "nova"
    labels: Mapping[str, str] = field(default_factory=dict)


def local_candidates(
    host: "HostApi", host_name: str, pools: Mapping[str, PoolPlacement], names: Iterable[str], *, raise_errors: bool = False
) -> list[Candidate]:
    """One Candidate per named pool of this host.

    A pool that cannot report becomes a candidate the ``host_state`` filter refuses, with the
    error as its reason; with ``raise_errors`` the error itself is raised instead (one named pool).
    """
    out = []
    for name in names:
        cfg = pools[name]
        base = dict(host=host_name, pool=name, driver=cfg.driver, availability_zone=cfg.availability_zone, labels=dict(cfg.labels))
        try:
            usage = host.pool_usage(name)
            caps = host.pool_capabilities(name)
        except StorageError as exc:
            if raise_errors:
                raise
            out.append(Candidate(**base, error=exc.message))  # type: ignore[arg-type]
            continue
        out.append(
            Candidate(
                **base,  # type: ignore[arg-type]
                total_bytes=int(usage["total_bytes"]), free_bytes=int(usage["free_bytes"]),
                provisioned_bytes=int(usage["provisioned_bytes"]), overcommit_ratio=float(usage["overcommit_ratio"]),
                provisionable=int(usage["provisionable_bytes"]), capabilities=dict(caps),
            )
        )
    return out
