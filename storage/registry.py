"""Driver registry: volume backends, object stores and export backends by entry point.

The core never imports a concrete backend by name. A third-party package adds a driver by
declaring an entry point in one of the groups below; ``register()`` adds one at run time
(used by tests and embedding applications).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from storage.errors import InvalidInput

VOLUME_BACKENDS = "storage.volume_backends"
OBJECT_STORES = "storage.object_stores"
EXPORT_BACKENDS = "storage.export_backends"

_runtime: dict[str, dict[str, Any]] = {VOLUME_BACKENDS: {}, OBJECT_STORES: {}, EXPORT_BACKENDS: {}}
_KIND = {VOLUME_BACKENDS: "volume backend", OBJECT_STORES: "object store", EXPORT_BACKENDS: "export backend"}


def register(group: str, name: str, cls: Any) -> None:
    """Register a driver class at run time (overrides an entry point of the same name)."""
    _runtime.setdefault(group, {})[name] = cls


def available(group: str) -> list[str]:
    names = {ep.name for ep in entry_points(group=group)}
    names.update(_runtime.get(group, {}))
    return sorted(names)


def load(group: str, name: str) -> Any:
    """Return the driver class registered under name in group, or raise InvalidInput."""
    if name in _runtime.get(group, {}):
        return _runtime[group][name]
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    raise InvalidInput(
        f"unknown {_KIND.get(group, group)} {name!r}; available: {', '.join(available(group)) or 'none'}",
        field="driver",
    )
