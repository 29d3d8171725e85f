"""Driver registry: volume backends, object stores and export backends by entry point.

The core never imports a concrete backend by name. A third-party package adds a driver by
declaring an entry point in one of the groups below; ``register()`` adds one at run time
(used by tests and embedding applications).

The drivers this project ships are also listed in ``BUILTIN`` (the same ``module:attr``
strings as pyproject's entry points; tests/test_registry.py keeps the two equal), so loading
``file`` or ``swift`` does not scan every installed package's metadata (importlib.metadata
and the scan cost 30-90 ms of CPU per process). Entry points are scanned only for a name that
is neither registered at run time nor built in; an entry point cannot replace a built-in name
(``register()`` can).
"""

from __future__ import annotations

import importlib
from typing import Any

from storage.errors import InvalidInput

VOLUME_BACKENDS = "storage.volume_backends"
OBJECT_STORES = "storage.object_stores"
EXPORT_BACKENDS = "storage.export_backends"

BUILTIN: dict[str, dict[str, str]] = {
    VOLUME_BACKENDS: {
        "file": "backends.volume.file.driver:FileVolumeBackend",
        "lvm": "backends.volume.lvm.driver:LvmVolumeBackend",
    },
    OBJECT_STORES: {
        "file": "backends.object.dir.store:DirectoryStore",
        "swift": "backends.object.swift.store:SwiftStore",
        "s3": "backends.object.s3.store:S3Store",
    },
    EXPORT_BACKENDS: {
        "tgt": "backends.export.tgt.driver:TgtExportBackend",
        "lio": "backends.export.lio.driver:LioExportBackend",
    },
}

_runtime: dict[str, dict[str, Any]] = {VOLUME_BACKENDS: {}, OBJECT_STORES: {}, EXPORT_BACKENDS: {}}
_KIND = {VOLUME_BACKENDS: "volume backend", OBJECT_STORES: "object store", EXPORT_BACKENDS: "export backend"}


def register(group: str, name: str, cls: Any) -> None:
    """Register a driver class at run time (overrides a built-in or an entry point of the same name)."""
    _runtime.setdefault(group, {})[name] = cls


def _entry_points(group: str) -> Any:
    from importlib.metadata import entry_points

    return entry_points(group=group)


def available(group: str) -> list[str]:
    names = {ep.name for ep in _entry_points(group)}
    names.update(BUILTIN.get(group, {}))
    names.update(_runtime.get(group, {}))
    return sorted(names)


def load_target(target: str) -> Any:
    """The object a ``module:attr`` string names (an entry point's value)."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def load(group: str, name: str) -> Any:
    """Return the driver class registered under name in group, or raise InvalidInput."""
    if name in _runtime.get(group, {}):
        return _runtime[group][name]
    target = BUILTIN.get(group, {}).get(name)
    if target is not None:
        return load_target(target)
    for ep in _entry_points(group):
        if ep.name == name:
            return ep.load()
    raise InvalidInput(
        f"unknown {_KIND.get(group, group)} {name!r}; available: {', '.join(available(group)) or 'none'}",
        field="driver",
    )
