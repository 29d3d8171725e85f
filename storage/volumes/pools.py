"""PoolService (``st.pools``): capacity and capabilities of the configured volume pools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from storage.errors import NotFound, StorageError

if TYPE_CHECKING:
    from storage.host.api import HostApi


class PoolInfo(BaseModel):
    name: str
    driver: str
    default: bool = False
    total_bytes: int = 0
    free_bytes: int = 0
    provisioned_bytes: int = 0
    allocated_bytes: int = 0
    provisionable_bytes: int = 0
    overcommit_ratio: float = 1.0
    capabilities: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None  # set when the backend could not be queried


class PoolService:
    def __init__(self, host: "HostApi", *, drivers: dict[str, str], default_pool: str) -> None:
        """drivers: pool name -> driver name, for every configured pool."""
        self._host = host
        self._drivers = drivers
        self._default_pool = default_pool

    def list(self) -> list[PoolInfo]:
        return [self.get(name) for name in sorted(self._drivers)]

    def get(self, name: str) -> PoolInfo:
        if name not in self._drivers:
            raise NotFound(
                f"pool {name!r} is not configured; configured pools: {', '.join(sorted(self._drivers))}", pool=name
            )
        info: dict[str, Any] = {"name": name, "driver": self._drivers[name], "default": name == self._default_pool}
        try:
            usage = self._host.pool_usage(name)
            caps = self._host.pool_capabilities(name)
        except StorageError as exc:
            return PoolInfo(**info, error=exc.message)
        return PoolInfo(
            **info,
            total_bytes=usage["total_bytes"],
            free_bytes=usage["free_bytes"],
            provisioned_bytes=usage["provisioned_bytes"],
            allocated_bytes=usage["allocated_bytes"],
            provisionable_bytes=max(0, usage["provisionable_bytes"]),
            overcommit_ratio=usage["overcommit_ratio"],
            capabilities=caps,
            extra=dict(usage["extra"]),
        )
