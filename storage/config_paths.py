"""Where the configuration and the data live by default: stdlib only, so the CLI's fast path
(storage/cli/fast_config.py) finds the same file and data dir as ``storage.config`` without
importing pydantic. ``storage.config`` re-exports these names."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_CONFIG = Path("/etc/storage/storage.toml")


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/storage")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "storage"


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "storage" / "storage.toml"
