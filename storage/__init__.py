"""storage: volumes, object stores and deduplicated backups on one Linux host.

    import storage
    with storage.open() as st:             # embedded defaults, or a TOML config path
        vol = st.volumes.create("db1", "10G")
        dev = st.volumes.attach("db1")      # -> "/dev/loop3"

The names below load on first use, so importing a light module (storage.errors, the CLI's
`--help`) does not import pydantic or SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.config import Settings, load_settings
    from storage.service import Storage, open

__version__ = "0.1.0"
__all__ = ["Settings", "Storage", "load_settings", "open", "__version__"]

_LAZY = {
    "Settings": "storage.config",
    "load_settings": "storage.config",
    "Storage": "storage.service",
    "open": "storage.service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
