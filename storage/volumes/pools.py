"""PoolService (``st.pools``): capacity and capabilities of the configured volume pools."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from storage.errors import NotFound, StorageError

if TYPE_CHECKING:
    from storage.service import Storage


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
    def __init__(self, storage: "Storage") -> None:
        self._st = storage

    def list(self) -> list[PoolInfo]:
        return [self.get(name) for name in sorted(self._st.settings.pools)]

    def get(self, name: str) -> PoolInfo:
        pools = self._st.settings.pools
        if name not in pools:
            raise NotFound(f"pool {name!r} is not configured; configured pools: {', '.join(sorted(pools))}", pool=name)
        info: dict[str, Any] = {"name": name, "driver": pools[name].driver, "default": name == self._st.settings.default_pool}
        try:
            backend = self._st.volumes.backend_for_pool(name)
            usage = backend.usage()
            caps = backend.capabilities()
        except StorageError as exc:
            return PoolInfo(**info, error=exc.message)
        return PoolInfo(
            **info,
            total_bytes=usage.total_bytes,
            free_bytes=usage.free_bytes,
            provisioned_bytes=usage.provisioned_bytes,
            allocated_bytes=usage.allocated_bytes,
            provisionable_bytes=max(0, usage.provisionable_bytes),
            overcommit_ratio=usage.overcommit_ratio,
            capabilities=caps.to_dict(),
            extra=dict(usage.extra),
        )
