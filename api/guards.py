"""What the HTTP API refuses that the local CLI allows (pure functions of the settings).

Over the network an operator token must not become root file access:

- backup sources are volumes and snapshots only (no host paths), restores go to volumes only (no
  ``--to-path`` over the API);
- ``file://`` repositories must lie inside the local object store's root (``<data_dir>/objects``
  by default), never the data dir itself (``swift://`` and ``s3://`` go to configured stores);
- key files named by a client (a policy's ``encryption_key_file``) must be regular files under
  ``backup.key_dir`` (default ``<data_dir>/keys``); one answer for "outside", "missing" and "not a
  file", so the API cannot be used to learn which host paths exist;
- objects of containers that hold a backup repository: listings and HEAD for every role, their
  bytes and any change through the object routes for admins only (``check_object_access``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from storage.config import Settings
from storage.errors import InvalidInput, PermissionDenied
from storage.objects.urls import parse_url
from storage.paths import confined, encloses


def local_root(settings: Settings) -> str:
    local = settings.object_stores.get("local")
    root = local.options().get("root") if local is not None and local.type == "file" else None
    return os.path.normpath(str(root or settings.data_dir / "objects"))


def check_repository(url: str | None, settings: Settings) -> str | None:
    if url is None:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("swift", "s3"):
        return url
    if scheme == "file":
        path = os.path.normpath(url.split("://", 1)[1])
        root = local_root(settings)
        if path != root and encloses(root, path) and ".." not in url.split("/"):
            return url
    raise InvalidInput(
        f"repository {url!r} is not accepted over the API; accepted: swift://[STORE@]container[/prefix], "
        f"s3://[STORE@]bucket[/prefix], or file:// inside the local object store {local_root(settings)}",
        field="repository",
    )


def check_key_file(path: str | None, settings: Settings, field: str = "encryption_key_file") -> str | None:
    """A client's key file path: a regular file under backup.key_dir, else one answer for every other case."""
    if path is None:
        return None
    key_dir = settings.backup.key_dir
    assert key_dir is not None
    real = confined(path, [key_dir]) if isinstance(path, str) and len(path) <= 4096 else None
    if real is None:
        raise InvalidInput(
            f"{field} is not accepted: over the API a key file must be an existing key file under {key_dir} "
            "(backup.key_dir); create one there with `storagectl backup key create`",
            field=field,
        )
    return str(real)


def repository_container(url: str, settings: Settings) -> tuple[str, str] | None:
    """The ``(store, container)`` of the object routes that holds repository ``url``, when one does."""
    try:
        parsed = parse_url(url)
    except InvalidInput:
        return None
    stores = settings.object_stores
    if parsed.scheme == "file":
        best: tuple[str, str] | None = None
        for name, cfg in stores.items():
            root = cfg.options().get("root")
            if cfg.type != "file" or not root:
                continue
            root = os.path.normpath(str(root))
            if parsed.path != root and encloses(root, parsed.path):
                if best is None or len(root) > len(stores[best[0]].options()["root"]):
                    best = (name, os.path.relpath(parsed.path, root).split("/")[0])
        return best
    if parsed.store_name is not None:
        return (parsed.store_name, parsed.container) if parsed.store_name in stores else None
    of_kind = [n for n, c in stores.items() if c.type == parsed.scheme]
    return (of_kind[0], parsed.container) if len(of_kind) == 1 else None


def repository_containers(urls: Iterable[str], settings: Settings) -> set[tuple[str, str]]:
    found = {repository_container(u, settings) for u in urls if u}
    return {f for f in found if f is not None}


def check_object_access(store: str, container: str, *, reads_data: bool, changes: bool, role: str,
                        protected: set[tuple[str, str]]) -> None:
    """Backup repository containers: listings and HEAD for all, object bytes and changes for admins only."""
    if (store, container) not in protected or role == "admin" or not (reads_data or changes):
        return
    raise PermissionDenied(
        f"container {container!r} of store {store!r} holds a backup repository: its objects are read and "
        "changed through the /backups routes; over the object routes only admins may read or change them "
        "(listings and HEAD are open to every role)",
        required_role="admin",
        role=role,
    )
