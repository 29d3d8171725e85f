"""Serve a backup as a read-only NBD export (``storagectl backup serve``, ``storage.nbd.serve``).

    with serve(st, backup_id) as export:        # or serve(st, manifest_id, repository=URL)
        print(export.uri)                       # nbd://127.0.0.1:10809/<backup id>
        export.wait()                           # until nbdkit exits (or export.stop())

The repository's shared lock is held while the export runs (garbage collection cannot delete
or repack a pack under a reader); the nbdkit child reads its settings from a 0600 spec file in a
private directory, deleted as soon as nbdkit is serving.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import site
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.errors import InvalidInput, StorageError
from storage.nbd import server as srv
from storage.nbd.spec import ServeSpec
from storage.units import parse_size

if TYPE_CHECKING:
    import storage
    from storage.backup.repository import Repository
    from storage.backup.service import BackupService

log = logging.getLogger(__name__)
DAMAGE_RE = re.compile(r"\[chunk=([0-9a-f]{64}) pack=([0-9a-f]{64}|-)\]\s*$")

CACHE_MIN, CACHE_MAX = 4 * 1024 * 1024, 64 * 1024**3
READAHEAD_MAX = 256


@dataclass(frozen=True)
class ExportInfo:
    """What a running export serves, and where (``--json`` prints this)."""

    backup_id: str
    export_name: str
    uri: str
    repository: str
    size_bytes: int
    encrypted: bool
    pid: int | None


def damaged_chunk(line: str) -> tuple[str, str | None] | None:
    """Pure: (chunk id, pack id or None) from the plugin's line about a read that failed verification."""
    m = DAMAGE_RE.search(line)
    if m is None:
        return None
    return m.group(1), (None if m.group(2) == "-" else m.group(2))


def damage_recorder(svc: "BackupService", repo: "Repository", backup_id: str, *, quarantine: bool) -> Callable[[str], None]:
    """What a restore does when a chunk fails verification, for the export's reads: the backup is
    marked damaged and (under the shared lock) that copy of the chunk quarantined, once per chunk."""
    from storage.backup import ops
    from storage.backup.cache import ChunkCache

    seen: set[tuple[str, str | None]] = set()

    def on_line(line: str) -> None:
        found = damaged_chunk(line)
        if found is None or found in seen:
            return
        seen.add(found)
        chunk, pack = found
        try:
            ops._mark(svc, repo.url, [backup_id], [])
            if quarantine and pack:
                ops._quarantine(repo, {pack: {chunk}})
                ChunkCache(svc.cache_root, repo).invalidate()
        except StorageError as exc:
            log.warning("recording damaged chunk %s of backup %s failed: %s", chunk, backup_id, exc.message)

    return on_line


def python_path() -> list[str]:
    """This installation's project root and site-packages, for the plugin's embedded python."""
    import storage as pkg

    root = str(Path(pkg.__file__).resolve().parent.parent)
    return [root, *[p for p in site.getsitepackages() if Path(p).is_dir()]]


class BackupExport:
    """A running export (a context manager: leaving it stops nbdkit and releases the lock)."""

    def __init__(self, info: ExportInfo, server: srv.NbdServer, stack: contextlib.ExitStack) -> None:
        self.info, self.server, self._stack = info, server, stack

    @property
    def uri(self) -> str:
        return self.info.uri

    def wait(self) -> int:
        return self.server.wait()

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> "BackupExport":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(
    st: "storage.Storage", backup_id: str, *, repository: str | None = None, key_file: str | None = None,
    export_name: str | None = None, host: str | None = None, port: int | None = None, socket: str | None = None,
    tls_psk: str | None = None, cache_size: str | int = "64M", readahead: int = 16, lock: bool = True, echo: bool = True,
) -> BackupExport:
    """Start serving a backup read-only over NBD; return once nbdkit accepts connections.

    With repository given the manifest is read straight from it (no catalog needed); otherwise
    the catalog names the repository and key file of backup_id.
    """
    config_file = str(st.settings.config_file) if st.settings.config_file else None
    return start_export(st.backups, config_file, backup_id, repository=repository, key_file=key_file,
                        export_name=export_name, host=host, port=port, socket=socket, tls_psk=tls_psk,
                        cache_size=cache_size, readahead=readahead, lock=lock, echo=echo)


def start_export(
    svc: "BackupService", config_file: str | None, backup_id: str, *, repository: str | None = None,
    key_file: str | None = None, export_name: str | None = None, host: str | None = None, port: int | None = None,
    socket: str | None = None, tls_psk: str | None = None, cache_size: str | int = "64M", readahead: int = 16,
    lock: bool = True, echo: bool = True,
) -> BackupExport:
    """serve() given the backup service and the config file the plugin loads (st.backups.serve too)."""
    from storage.backup import ops
    from storage.backup.locks import SHARED
    from storage.bounds import check_int

    listen = srv.check_listen(host, port, socket, tls_psk)
    name = srv.check_export_name(export_name or backup_id)
    cache_bytes = parse_size(cache_size, field="cache_size")
    if not CACHE_MIN <= cache_bytes <= CACHE_MAX:
        raise InvalidInput(f"cache size {cache_bytes} is not accepted; accepted: 4M to 64G", field="cache_size")
    check_int(readahead, field="readahead", lo=0, hi=READAHEAD_MAX, what="a number of chunks")
    nbdkit = srv.find_nbdkit()
    if repository is None:
        repository, row_key, _status = ops._row_source(svc, backup_id)
        key_file = key_file or row_key
    repo = svc.open_repository(repository, key_file=key_file)
    store = repo.clone_store()
    try:
        manifest = repo.read_manifest(store, backup_id)
    finally:
        store.close()
    stack = contextlib.ExitStack()
    try:
        if lock:
            stack.enter_context(svc.repository_lock(repo, SHARED, f"nbd export of {backup_id}"))
        workdir = Path(tempfile.mkdtemp(prefix="storage-nbd-"))  # 0700
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        spec = ServeSpec(
            repository=repo.url, backup_id=backup_id, export_name=name, key_file=repo.key_file,
            config_file=config_file,
            cache_bytes=cache_bytes, readahead_chunks=readahead, sys_path=python_path(),
        )
        spec_path = spec.write(workdir / "spec.json")
        pidfile = workdir / "nbdkit.pid"
        server = srv.NbdServer(srv.nbdkit_command(nbdkit, listen, pidfile, spec_path), pidfile,
                               on_line=damage_recorder(svc, repo, backup_id, quarantine=lock))
        stack.callback(server.stop)
        server.start(echo=echo)
        spec_path.unlink()  # read by the plugin before it served: nothing left to find
        info = ExportInfo(backup_id=backup_id, export_name=name, uri=listen.uri(name), repository=repo.url,
                          size_bytes=manifest.size, encrypted=repo.keys is not None, pid=server.pid)
        return BackupExport(info, server, stack)
    except BaseException:
        stack.close()
        raise


__all__ = ["BackupExport", "ExportInfo", "serve", "start_export"]
