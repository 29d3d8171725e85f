"""Configuration: one TOML file plus STORAGE_* environment overrides.

Lookup order for the file: explicit path (``--config``), ``$STORAGE_CONFIG``,
``/etc/storage/storage.toml``, ``$XDG_CONFIG_HOME/storage/storage.toml``. With no file at
all the embedded defaults apply: a ``file`` pool and a SQLite catalog under the data dir.
Environment variables override the file: ``STORAGE_DATA_DIR``, ``STORAGE_CATALOG__URL``,
``STORAGE_API__PORT``... (nested keys joined by ``__``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from storage.config_env import deep_merge, env_overrides
from storage.config_paths import SYSTEM_CONFIG, default_data_dir, user_config_path  # noqa: F401 - re-exported
from storage.errors import InvalidInput
from storage.paths import store_root_problem
from storage.units import parse_size

class PoolConfig(BaseModel):
    """One volume pool: ``driver`` picks the backend; every other key is the driver's option."""

    model_config = ConfigDict(extra="allow")
    driver: str = "file"
    # for the scheduler, not the driver: the pool's zone (default: [scheduler] availability_zone)
    # and labels a request may ask for (`volume create --pool-label KEY=VALUE`)
    availability_zone: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")
    labels: dict[str, str] = Field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ObjectStoreConfig(BaseModel):
    """Named object-store endpoint and credentials; ``type`` is the store driver."""

    model_config = ConfigDict(extra="allow")
    type: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CatalogConfig(BaseModel):
    url: str | None = None  # default: sqlite under data_dir
    # PostgreSQL: how long a new connection may take before the request answers 503
    # (CatalogUnavailable); psycopg counts whole seconds, at least 2.
    connect_timeout_seconds: int = Field(default=2, ge=2, le=300)


class BackupConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    repository: str | None = None  # default: file:// under data_dir
    chunk_size: str = "1M"  # see docs/backup-format.md "Chunk size"
    compression: str = "zstd"
    compression_level: int = 3
    workers: int = Field(default=0, ge=0)  # 0 = one per core
    uploaders: int = Field(default=4, ge=1)
    key_file: str | None = None
    # Key files named over the API (a policy's encryption_key_file) must lie here (default
    # <data_dir>/keys); the local CLI takes any path (see docs/api.md "Paths from clients").
    key_dir: Path | None = None
    gc_grace_seconds: int = Field(default=24 * 3600, ge=0)
    pack_size: str = "32M"  # target size of pack objects (format version 2+); 32 packs + 32 indexes per GiB
    stream_pack_size: str = "256M"  # target size of packs streamed while they fill (Swift, dir stores); 4 + 4 objects per GiB
    # true: the client also MD5s every streamed pack and checks Swift's ETag (about 2 CPU-s per GiB);
    # false: its last chunk is read back instead (docs/backup-format.md "What is verified where")
    upload_md5: bool = False
    repack_threshold: float = Field(default=0.25, ge=0, le=1)  # gc repacks packs with more dead bytes than this fraction


class ApiConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8776, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    tls_cert: str | None = None
    tls_key: str | None = None
    # Request bodies are bounded before they are read (api/edge.py): JSON bodies by max_body_bytes,
    # object uploads (streamed to a spool file) by max_object_bytes. Sizes as bytes or "4M", "5G".
    max_body_bytes: int = Field(default=4 * 1024**2, ge=1024, le=1024**3)
    max_object_bytes: int = Field(default=5 * 1024**3, ge=1024, le=1024**5)
    # Health and draining (docs/api.md "Health check"): GET /healthcheck answers 503 while this file
    # exists (default <data_dir>/api.drain) or the catalog does not answer SELECT 1 within
    # health_timeout_seconds. On SIGTERM uvicorn stops accepting and waits this long for requests in flight.
    drain_file: Path | None = None
    health_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    graceful_shutdown_seconds: int = Field(default=15, ge=0, le=3600)
    # Idempotency-Key on POST (docs/api.md "Idempotent requests"): how long a key is remembered,
    # and how long a request waits for a concurrent one with the same key before answering 409.
    idempotency_key_seconds: int = Field(default=24 * 3600, ge=1, le=30 * 24 * 3600)
    idempotency_wait_seconds: float = Field(default=10.0, ge=0, le=300)
    # A claimed key whose request is still working is renewed every third of this; a replica that
    # died mid-request stops renewing, and a retry with the key runs again once it lapses.
    idempotency_lease_seconds: float = Field(default=6.0, ge=1, le=3600)

    @field_validator("max_body_bytes", "max_object_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value, field="api size limit") if isinstance(value, str) else value


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    driver: str = "tgt"
    portal: str = "127.0.0.1:3260"


class SchedulerConfig(BaseModel):
    """Placement of new volumes (docs/architecture.md "Scheduler")."""

    weigher: Literal["free", "provisioned_ratio"] = "free"
    availability_zone: str = Field(default="nova", pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")  # this host's zone


class ClusterConfig(BaseModel):
    """``[cluster]``: this host is one of several sharing a catalog; heartbeats come from its agent.

    Without a ``[cluster]`` table the host is alone: no agent is needed, the running process keeps
    its own services row fresh (see docs/architecture.md "Hosts and heartbeats").
    """

    heartbeat_interval: float = Field(default=10.0, gt=0, le=3600)  # seconds between agent heartbeats
    service_down_time: float = Field(default=60.0, gt=0, le=86400)  # no heartbeat for this long: down
    labels: dict[str, str] = Field(default_factory=dict)  # the host's; its zone is [scheduler] availability_zone
    # Where jobs and device work run: "in-process" (threads of the process that accepted them, the
    # single-host way) or "procrastinate" (PostgreSQL queues host.<name> and shared, run by the
    # agents; needs a PostgreSQL catalog). docs/cluster.md "Work queues".
    queue: Literal["in-process", "procrastinate"] = "in-process"
    remote_call_timeout: float = Field(default=120.0, gt=0, le=86400)  # seconds a device call waits for its agent
    worker_concurrency: int = Field(default=4, ge=1, le=64)  # jobs an agent runs at once
    # policy runs an agent runs at once, in a lane of their own (queue runs.<name>): a run waits for
    # device work, so it never takes one of the worker_concurrency slots that work needs
    run_concurrency: int = Field(default=1, ge=1, le=16)
    # finished host-call job rows older than this many seconds are deleted by the agents (storage/jobs/prune.py)
    host_call_retention: float = Field(default=86400.0, gt=0, le=366 * 86400)
    # 32 random bytes every API replica holds: CHAP secrets then live in the catalog, sealed with it,
    # so any replica serves any export's connection_info (storage/exports/catalog_secrets.py)
    secrets_key_file: Path | None = None

    @model_validator(mode="after")
    def _down_after_heartbeat(self) -> "ClusterConfig":
        if self.service_down_time <= self.heartbeat_interval:
            raise ValueError(
                f"service_down_time ({self.service_down_time}s) must be longer than heartbeat_interval "
                f"({self.heartbeat_interval}s), or every host flaps down between two heartbeats"
            )
        return self


class LoggingConfig(BaseModel):
    """``[logging]``: the format and level of log lines (docs/logging.md); unset: chosen per process
    (JSON when stderr is not a terminal; ``--log-format``/``--log-level`` and STORAGE_LOGGING__* win)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["json", "text"] | None = None
    level: Literal["debug", "info", "warning", "error", "critical"] | None = None


def default_host_name() -> str:
    import socket

    return socket.gethostname()


class Settings(BaseModel):
    """Validated settings; ``load_settings`` reads the file and the ``STORAGE_*`` overrides."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    default_pool: str = "default"
    pools: dict[str, PoolConfig] = Field(default_factory=dict)
    object_stores: dict[str, ObjectStoreConfig] = Field(default_factory=dict)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    host_name: str = Field(default_factory=default_host_name, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    cluster: ClusterConfig | None = None  # None: a single host, no agent needed
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    config_file: Path | None = None  # which file was read, for `storagectl config show`
    _pinned: bool = PrivateAttr(default=False)  # default_pool set by the configuration

    @model_validator(mode="after")
    def _embedded_defaults(self) -> "Settings":
        self.data_dir = Path(self.data_dir).expanduser().absolute()
        if not self.pools:
            self.pools = {"default": PoolConfig(driver="file", path=str(self.data_dir / "pools" / "default"))}
        if self.catalog.url is None:
            self.catalog.url = f"sqlite:///{self.data_dir / 'catalog.db'}"
        if self.backup.repository is None:
            self.backup.repository = f"file://{self.data_dir / 'objects' / 'backups'}"
        if self.backup.key_dir is None:
            self.backup.key_dir = self.data_dir / "keys"
        self.backup.key_dir = Path(self.backup.key_dir).expanduser().absolute()
        if "local" not in self.object_stores:
            self.object_stores["local"] = ObjectStoreConfig(type="file", root=str(self.data_dir / "objects"))
        for name, store in self.object_stores.items():
            root = store.options().get("root")
            problem = store_root_problem(str(root), self.data_dir) if store.type == "file" and root else None
            if problem:
                raise ValueError(f"object_stores.{name}: {problem}")
        self._pinned = "default_pool" in self.model_fields_set
        if self.default_pool not in self.pools:
            if self._pinned:
                raise ValueError(
                    f"default_pool {self.default_pool!r} is not a configured pool; configured: {sorted(self.pools)}"
                )
            self.default_pool = sorted(self.pools)[0]  # unset: the scheduler places volumes over every pool
        if self.cluster is not None and self.cluster.queue == "procrastinate" and not self.catalog.url.startswith("postgresql"):
            raise ValueError(
                "cluster.queue 'procrastinate' needs a PostgreSQL catalog (catalog.url = \"postgresql+psycopg://...\"); "
                f"the catalog is {self.catalog.url.partition(':')[0]}: use queue = \"in-process\" with it"
            )
        return self

    @property
    def default_pool_pinned(self) -> str | None:
        """default_pool when the configuration names it (it then takes every volume given no pool), else None."""
        return self.default_pool if self._pinned else None

    @property
    def cluster_settings(self) -> ClusterConfig:
        """``[cluster]`` as given, or its defaults for a single host."""
        return self.cluster or ClusterConfig()

    @property
    def catalog_url(self) -> str:
        assert self.catalog.url is not None
        return self.catalog.url

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with every secret-looking value replaced."""
        return _redact(self.model_dump(mode="json"))


def table_fields() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Settings fields whose value is a table (``api``, ``pools``...), and those among them that
    hold named tables (``pools``, ``object_stores``): what ``STORAGE_*`` variables give as JSON."""
    tables = [n for n, f in Settings.model_fields.items() if _is_model(f.annotation) or get_origin(f.annotation) is dict]
    return tuple(tables), tuple(n for n in tables if get_origin(Settings.model_fields[n].annotation) is dict)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)



SECRET_KEYS = ("key", "password", "secret", "token", "credential")


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    lowered = key.lower()
    if isinstance(value, str) and "://" in value and "@" in value:  # a password inside a URL (catalog.url)
        from storage.catalog.urls import redact_url

        value = redact_url(value)
    if value is not None and any(s in lowered for s in SECRET_KEYS) and not lowered.endswith(("_file", "_path", "key_size")):
        return "***"
    return value


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InvalidInput(f"config file {str(path)!r} does not exist or is not a file", field="config")
        return path
    env = os.environ.get("STORAGE_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise InvalidInput(f"STORAGE_CONFIG={env!r} does not exist or is not a file", field="STORAGE_CONFIG")
        return path
    for candidate in (SYSTEM_CONFIG, user_config_path()):
        if candidate.is_file():
            return candidate
    return None


def load_settings(config: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings from the first config file found (or none) plus environment overrides."""
    path = find_config_file(config)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"config file {str(path)!r} is not valid TOML: {exc}", field="config") from None
        data["config_file"] = path
    data.update(overrides)
    # The environment wins over the file and the overrides, key by key.
    data = deep_merge(data, env_overrides(os.environ, Settings.model_fields, *table_fields()))
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        where = f"config file {str(path)!r}" if path else "configuration"
        raise InvalidInput(f"{where} is not valid: {problems}", field="config") from None
