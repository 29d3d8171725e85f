"""Object stores as a service: named stores from the config, and locations from URLs.

``st.objects.store(name)`` returns a new ``ObjectStore`` for the ``[object_stores.NAME]``
entry of the config (driver chosen by its ``type`` through ``storage.registry``).

``st.objects.open_url(url)`` returns a ``StoreLocation`` (store, container, prefix, url):

- ``file:///abs/path/container[/prefix]``: when the path lies under the ``root`` of a
  configured ``type = "file"`` store (the embedded ``local`` store's root is
  ``<data_dir>/objects``), the first component after that root is the container and the rest
  is the prefix; otherwise the last component is the container, its parent directory is the
  store root, and the prefix is empty.
- ``swift://[STORE@]container[/prefix]``: the configured store named STORE, else the only
  configured ``type = "swift"`` store, else credentials from ``ST_AUTH``/``ST_USER``/``ST_KEY``
  or ``OS_AUTH_URL``/``OS_USERNAME``/``OS_PASSWORD``/``OS_PROJECT_NAME``/... or
  ``OS_AUTH_TOKEN`` + ``OS_STORAGE_URL``.
- ``s3://[STORE@]bucket[/prefix]``: the same with ``type = "s3"`` stores, or ``S3_ENDPOINT``
  + ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``.

A store instance holds one connection: use one per thread (``StoreLocation.clone_store()``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.object.base import ObjectStore
from storage import registry
from storage.bounds import URL_MAX, check_object_metadata, check_text
from storage.objects import transfer as object_transfer
from storage.objects.transfer import TransferResult
from storage.errors import InvalidInput, NotFound
from storage.objects.urls import format_url, parse_url, s3_env_options, swift_env_options
from storage.paths import store_root_problem

if TYPE_CHECKING:
    from storage.config import ObjectStoreConfig

ENV_STORE = "env"  # name reported for a store built from environment variables


@dataclass(frozen=True)
class StoreLocation:
    """A container (and prefix inside it) in one object store."""

    store: ObjectStore
    container: str
    prefix: str  # no leading/trailing '/'; "" for the whole container
    url: str  # without secrets
    store_name: str = ""

    def key(self, name: str) -> str:
        """The full object name of ``name`` inside this location's prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def relative(self, key: str) -> str:
        """Inverse of ``key``: the name below the prefix."""
        if self.prefix and key.startswith(self.prefix + "/"):
            return key[len(self.prefix) + 1 :]
        return key

    def ensure_container(self) -> "StoreLocation":
        """Create the container if it does not exist (idempotent); returns self."""
        self.store.create_container(self.container)
        return self

    def clone_store(self) -> ObjectStore:
        """A new store instance (own connection) for another thread."""
        return self.store.clone()

    def with_options(self, **overrides: Any) -> "StoreLocation":
        """The same location on a new store instance with some options changed (e.g. segment_size)."""
        return replace(self, store=type(self.store)({**self.store.options, **overrides}))

    def clone(self) -> "StoreLocation":
        """The same location with its own store instance, for another thread."""
        return replace(self, store=self.store.clone())


@dataclass(frozen=True)
class StoreSummary:
    name: str
    type: str
    options: dict[str, Any]  # redacted


def _redact(options: Mapping[str, Any]) -> dict[str, Any]:
    secret = ("key", "password", "secret", "token", "credential")
    return {
        k: ("***" if any(s in k.lower() for s in secret) and k != "access_key" else v) for k, v in options.items()
    }


class ObjectService:
    """Object stores configured for this host."""

    def __init__(self, stores: Mapping[str, "ObjectStoreConfig"], env: Mapping[str, str] | None = None,
                 data_dir: Path | None = None) -> None:
        """stores: the ``[object_stores.NAME]`` tables of the config; data_dir: never a store root (storage.paths)."""
        self._stores = stores
        self._env = env
        self._data_dir = data_dir

    @property
    def env(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    # -- named stores -----------------------------------------------------
    def configured(self) -> list[StoreSummary]:
        """The configured stores (secrets redacted)."""
        return [
            StoreSummary(name, cfg.type, _redact(cfg.options()))
            for name, cfg in sorted(self._stores.items())
        ]

    def store(self, name: str) -> ObjectStore:
        """A new instance of the configured store ``name``."""
        stores = self._stores
        if name not in stores:
            raise NotFound(
                f"object store {name!r} is not configured; configured: {', '.join(sorted(stores)) or 'none'}",
                field="store",
            )
        cfg = stores[name]
        return self._make(cfg.type, cfg.options())

    def _make(self, kind: str, options: Mapping[str, Any]) -> ObjectStore:
        cls = registry.load(registry.OBJECT_STORES, kind)
        return cls(options)

    def default_store_name(self) -> str:
        """The store CLI commands use without --store/--url (see ``choose_default_store``)."""
        return choose_default_store(
            {n: c.type for n, c in self._stores.items()},
            swift_env_options(self.env) is not None,
        )

    def resolve(self, store: str | None = None, url: str | None = None) -> StoreLocation:
        """A location from ``--url`` or ``--store`` (container/prefix empty for a bare store)."""
        if store and url:
            raise InvalidInput("give either --store or --url, not both", field="store")
        if url:
            return self.open_url(url)
        name = store or self.default_store_name()
        if name == ENV_STORE and name not in self._stores:
            opts = swift_env_options(self.env) or {}
            return StoreLocation(self._make("swift", opts), "", "", "swift://", ENV_STORE)
        return StoreLocation(self.store(name), "", "", f"store:{name}", name)

    # -- transfers (the CLI's and API's verbs) ----------------------------
    def upload(self, loc: StoreLocation, container: str, paths: list[str], **kw: Any) -> list[TransferResult]:
        return object_transfer.upload(loc.store, container, paths, prefix=loc.prefix, **kw)

    def download(self, loc: StoreLocation, container: str, names: list[str] | None = None, **kw: Any) -> list[TransferResult]:
        if names and loc.prefix:
            names = [loc.key(n) for n in names]
        return object_transfer.download(loc.store, container, names, prefix=kw.pop("prefix", None) or loc.prefix or None, **kw)

    def delete(self, loc: StoreLocation, container: str, names: list[str] | None = None) -> list[str]:
        return object_transfer.delete(loc.store, container, [loc.key(n) for n in names] if names else None)

    def listing(self, loc: StoreLocation, container: str | None, **kw: Any) -> list[Any]:
        if container is not None and loc.prefix and not kw.get("prefix"):
            kw["prefix"] = loc.prefix + "/"
        return object_transfer.listing(loc.store, container, **kw)

    def stat(self, loc: StoreLocation, container: str | None = None, name: str | None = None) -> Any:
        if container is None:
            return object_transfer.account_summary(loc.store)
        if name is None:
            return loc.store.stat_container(container)
        return loc.store.head_object(container, loc.key(name))

    def post(self, loc: StoreLocation, container: str, metadata: Mapping[str, str] | None = None) -> Any:
        metadata = check_object_metadata(metadata)
        loc.store.create_container(container, metadata or None)
        return loc.store.stat_container(container)

    # -- URLs -------------------------------------------------------------
    def open_url(self, url: str) -> StoreLocation:
        """Resolve a ``file://``, ``swift://`` or ``s3://`` URL to a store location."""
        parsed = parse_url(url)
        if parsed.scheme == "file":
            return self._open_file(parsed.path)
        name, options = self._pick_store(parsed.scheme, parsed.store_name)
        store = self._make(parsed.scheme, options)
        clean = format_url(parsed.scheme, parsed.container, parsed.prefix, parsed.store_name)
        return StoreLocation(store, parsed.container, parsed.prefix, clean, name)

    def check_url(self, url: str) -> str:
        """Validate a repository/object URL against the configuration without connecting anywhere:
        the form (``parse_url``) and, for swift:// and s3://, that a store of that kind is configured
        (or given by the environment). Used to refuse a job's parameters before it is queued."""
        check_text(url, field="repository", max_len=URL_MAX, min_len=1)
        parsed = parse_url(url)
        if parsed.scheme != "file":
            try:
                self._pick_store(parsed.scheme, parsed.store_name)
            except NotFound as exc:  # a parameter naming no configured store: invalid input, not a 404
                raise InvalidInput(exc.message, field="repository") from None
        return url

    def _open_file(self, path: str) -> StoreLocation:
        target = Path(path)
        best: tuple[str, Path] | None = None
        for name, cfg in self._stores.items():
            root = cfg.options().get("root")
            if cfg.type != "file" or not root:
                continue
            root_path = Path(str(root)).absolute()
            if target != root_path and target.is_relative_to(root_path):
                if best is None or len(root_path.parts) > len(best[1].parts):
                    best = (name, root_path)
        if best is not None:
            name, root_path = best
            parts = target.relative_to(root_path).parts
            options = self._stores[name].options()
            container, prefix = parts[0], "/".join(parts[1:])
        else:
            name, root_path = "", target.parent
            options = {"root": str(root_path)}
            container, prefix = target.name, ""
        problem = store_root_problem(root_path, self._data_dir) if self._data_dir is not None else None
        if problem:
            raise InvalidInput(f"file URL file://{path}: {problem}", field="url")
        store = self._make("file", {**options, "root": str(root_path)})
        return StoreLocation(store, container, prefix, format_url("file", container, prefix, root=str(root_path)), name)

    def _pick_store(self, kind: str, wanted: str | None) -> tuple[str, dict[str, Any]]:
        stores = self._stores
        of_kind = sorted(n for n, c in stores.items() if c.type == kind)
        if wanted is not None:
            if wanted not in stores:
                raise NotFound(
                    f"object store {wanted!r} is not configured; configured {kind} stores: {', '.join(of_kind) or 'none'}",
                    field="store",
                )
            if stores[wanted].type != kind:
                raise InvalidInput(
                    f"object store {wanted!r} is of type {stores[wanted].type!r}, not {kind!r}; "
                    f"configured {kind} stores: {', '.join(of_kind) or 'none'}",
                    field="store",
                )
            return wanted, stores[wanted].options()
        if len(of_kind) == 1:
            return of_kind[0], stores[of_kind[0]].options()
        if len(of_kind) > 1:
            raise InvalidInput(
                f"several {kind} stores are configured ({', '.join(of_kind)}); pick one with {kind}://NAME@container",
                field="store",
            )
        env_opts = swift_env_options(self.env) if kind == "swift" else s3_env_options(self.env)
        if env_opts is None:
            hint = (
                "ST_AUTH/ST_USER/ST_KEY or OS_AUTH_URL/OS_USERNAME/OS_PASSWORD/OS_PROJECT_NAME"
                if kind == "swift"
                else "S3_ENDPOINT/AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )
            raise InvalidInput(
                f"no {kind} object store is configured; add [object_stores.NAME] with type = {kind!r} "
                f"to the config or set {hint}",
                field="store",
            )
        return ENV_STORE, env_opts


def choose_default_store(configured: Mapping[str, str], swift_env: bool) -> str:
    """Pure rule for the default store: the only configured swift store; else the environment's
    swift credentials (ST_AUTH/OS_*) when set; else the only configured non-local store; else
    ``local``."""
    swift = sorted(n for n, t in configured.items() if t == "swift")
    if len(swift) == 1:
        return swift[0]
    if not swift and swift_env:
        return ENV_STORE
    others = sorted(n for n in configured if n != "local")
    if len(others) == 1:
        return others[0]
    return "local"
