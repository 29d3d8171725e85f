"""The settings a fast listing needs (the SQLite catalog's file), read without pydantic.

``resolve`` finds the config file as ``storage.config`` does (``--config``, ``$STORAGE_CONFIG``,
/etc/storage/storage.toml, the user's file) and accepts it only when every key in it is one
it validates exactly as ``storage.config.Settings`` would: ``data_dir``, ``host_name``,
``default_pool``, ``[pools.*]``, ``[object_stores.*]``, ``[backup]``, ``[scheduler]``,
``[export]``, ``[catalog] url / connect_timeout_seconds`` and ``[logging] format / level``.
Anything else (``[api]``, a cluster, a PostgreSQL catalog, a ``STORAGE_*`` override other than
``STORAGE_DATA_DIR``, a value Settings would refuse, a data dir or catalog not created yet)
answers None and the full CLI runs, which validates, creates or reports it.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from storage.catalog.sqlite_reads import sqlite_path
from storage.config_paths import SYSTEM_CONFIG, default_data_dir, user_config_path
from storage.paths import store_root_problem

# STORAGE_* variables that are no setting (click's --config envvar, the log request id, tracebacks)
NOT_SETTINGS = frozenset({"storage_config", "storage_request_id", "storage_debug"})
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")  # Settings.host_name's pattern
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
ZONE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,62}")  # PoolConfig's / SchedulerConfig's availability_zone
WEIGHERS = ("free", "provisioned_ratio")
# [backup]'s typed keys (BackupConfig; other keys are allowed and ignored there): key -> accepted
BACKUP_TEXT = ("chunk_size", "compression", "pack_size", "stream_pack_size")
BACKUP_OPTIONAL_TEXT = ("repository", "key_file", "key_dir")
BACKUP_COUNTS = {"compression_level": None, "workers": 0, "uploaders": 1, "gc_grace_seconds": 0}  # key -> minimum


class Place(NamedTuple):
    data_dir: Path
    catalog_file: str


def config_file(explicit: str | None, environ: Mapping[str, str]) -> Path | None | bool:
    """The config file storage.config.find_config_file would read; None for none; False when it
    would raise (the full CLI says why)."""
    given = explicit if explicit is not None else environ.get("STORAGE_CONFIG")
    if given is not None:
        path = Path(given)
        return path if given and path.is_file() else False
    for candidate in (SYSTEM_CONFIG, user_config_path()):
        if candidate.is_file():
            return candidate
    return None


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != "" and "\x00" not in value


def checked(data: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` (a parsed config file) when Settings would accept it and it holds only what this
    module understands; else None (pure)."""
    for key, value in data.items():
        if key in ("catalog", "logging", "pools", "scheduler", "export", "object_stores", "backup"):
            if not isinstance(value, dict):
                return None
        elif key not in ("data_dir", "host_name", "default_pool") or not isinstance(value, str):
            return None
    if "data_dir" in data and not _text(data["data_dir"]):
        return None
    if not pools_ok(data.get("pools", {}), data.get("default_pool")) or not scheduler_ok(data.get("scheduler", {})):
        return None
    if not object_stores_ok(data.get("object_stores", {})) or not backup_ok(data.get("backup", {})):
        return None
    export = data.get("export", {})  # extra keys allowed (the driver's options)
    if not all(isinstance(export.get(k, ""), str) for k in ("driver", "portal")):
        return None
    catalog = data.get("catalog", {})
    if set(catalog) - {"url", "connect_timeout_seconds"}:
        return None
    if "url" in catalog and not isinstance(catalog["url"], str):
        return None
    timeout = catalog.get("connect_timeout_seconds", 2)
    if type(timeout) is not int or not 2 <= timeout <= 300:
        return None
    logging = data.get("logging", {})
    if set(logging) - {"format", "level"}:
        return None
    if logging.get("format", "json") not in LOG_FORMATS or logging.get("level", "info") not in LOG_LEVELS:
        return None
    return data


def _zone(value: Any) -> bool:
    return isinstance(value, str) and ZONE.fullmatch(value) is not None


def pools_ok(pools: dict[str, Any], default_pool: str | None) -> bool:
    """PoolConfig's checks (driver, availability_zone, labels; other keys are the driver's) and
    Settings': a default_pool given names a pool (pure)."""
    for pool in pools.values():
        if not isinstance(pool, dict) or not isinstance(pool.get("driver", ""), str):
            return False
        if "availability_zone" in pool and not _zone(pool["availability_zone"]):
            return False
        labels = pool.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            return False
    return default_pool is None or default_pool in (pools or {"default": None})


def object_stores_ok(stores: dict[str, Any]) -> bool:
    """ObjectStoreConfig's checks: every store a table with a ``type`` (other keys are the
    driver's); a file store's ``root`` is checked against the data dir by ``resolve`` (pure)."""
    return all(isinstance(store, dict) and type(store.get("type")) is str for store in stores.values())


def backup_ok(backup: dict[str, Any]) -> bool:
    """BackupConfig's typed keys hold what it accepts (stricter: no coercion); other keys are
    allowed, as there (pure)."""
    if not all(type(backup.get(k, "")) is str for k in BACKUP_TEXT):
        return False
    if not all(backup.get(k) is None or type(backup[k]) is str for k in BACKUP_OPTIONAL_TEXT):
        return False
    for key, minimum in BACKUP_COUNTS.items():
        value = backup.get(key, 0 if minimum is None else minimum)
        if type(value) is not int or (minimum is not None and value < minimum):
            return False
    threshold = backup.get("repack_threshold", 0.25)
    if type(threshold) not in (int, float) or not 0 <= threshold <= 1:
        return False
    return type(backup.get("upload_md5", False)) is bool


def file_roots_ok(stores: dict[str, Any], data_dir: Path) -> bool:
    """Settings' check of every file store's ``root`` against the data dir."""
    return not any(
        store["type"] == "file" and store.get("root") and store_root_problem(str(store["root"]), data_dir)
        for store in stores.values()
    )


def scheduler_ok(scheduler: dict[str, Any]) -> bool:
    if set(scheduler) - {"weigher", "availability_zone"}:
        return False
    return scheduler.get("weigher", "free") in WEIGHERS and _zone(scheduler.get("availability_zone", "nova"))


def overrides(environ: Mapping[str, str]) -> dict[str, str] | None:
    """``{"data_dir": ...}`` from STORAGE_DATA_DIR, {} without it; None when any other STORAGE_*
    variable may be a setting (pure)."""
    found: dict[str, str] = {}
    for name, value in environ.items():
        key = name.lower()
        if not key.startswith("storage_") or key in NOT_SETTINGS:
            continue
        if key != "storage_data_dir" or "data_dir" in found or not _text(value):
            return None
        found["data_dir"] = value
    return found


def valid_host_name(name: str) -> bool:
    return 1 <= len(name) <= 255 and HOST_NAME.fullmatch(name) is not None


def resolve(explicit: str | None, environ: Mapping[str, str]) -> Place | None:
    """Where the catalog of this configuration is, or None when the full CLI must decide."""
    path = config_file(explicit, environ)
    if path is False:
        return None
    data: dict[str, Any] = {}
    if isinstance(path, Path):
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
    env = overrides(environ)
    if checked(data) is None or env is None:
        return None
    data.update(env)
    try:
        data_dir = Path(data["data_dir"]).expanduser().absolute() if "data_dir" in data else default_data_dir()
    except (RuntimeError, ValueError):  # ~unknown-user
        return None
    host_name = data.get("host_name")
    if not valid_host_name(host_name if host_name is not None else socket.gethostname()):
        return None
    if not file_roots_ok(data.get("object_stores", {}), data_dir):
        return None
    if store_root_problem(str(data_dir / "objects"), data_dir) or not data_dir.is_dir():
        return None
    url = data.get("catalog", {}).get("url", f"sqlite:///{data_dir / 'catalog.db'}")
    catalog = sqlite_path(url)
    if catalog is None or not os.path.isfile(catalog):
        return None
    return Place(data_dir, catalog)
