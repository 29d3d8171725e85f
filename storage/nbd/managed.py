"""Exports of backups a long-running process keeps (the API host): ``st.backups.serve`` starts
one and returns at once, ``serves`` lists the live ones, ``stop_serve`` ends one.

No job worker slot is held: each export is one nbdkit child (``--exit-with-parent``) plus one
watcher thread of this process that waits for it to exit or for its TTL to end, then stops it,
releases the repository's shared lock and deletes its ``served_exports`` row. Any process of the
same host (another API worker) can list and stop it: the row names nbdkit as ``host:pid:start``,
so a reused pid is never signalled; rows of processes that are gone are reaped by the listing.

Only loopback listen addresses and sockets under ``<data_dir>/run/nbd`` are accepted here: an
export has no authentication of its own (``storagectl backup serve --tls-psk`` on the host for more).

A live restore (``backup restore --live``, storage/nbd/live_service.py) records its nbdkit here too
(``record_live``: kind ``live-restore``, the volume it fills, no TTL) and drops the row when it ends;
a crashed one's row is reaped like a serve's. While a backup has a row, ``backup delete`` of it and
``backup gc`` of its repository are refused (``refusal``: Conflict naming each export).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import signal
import socket as _socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy import func, select

from storage import owners
from storage.bounds import check_int
from storage.catalog.base import new_id, utcnow
from storage.catalog.served import ServedExportRow
from storage.errors import Busy, Conflict, InvalidInput, NotFound
from storage.nbd import server as srv
from storage.units import parse_size

if TYPE_CHECKING:
    from storage.backup.service import BackupService
    from storage.nbd.service import BackupExport

log = logging.getLogger(__name__)

MAX_SERVES = 8  # live exports per host
TTL_DEFAULT, TTL_MIN, TTL_MAX = 3600, 1, 7 * 86400
CACHE_DEFAULT, CACHE_MIN, CACHE_MAX = 64 * 1024**2, 4 * 1024**2, 1024**3
SOCKET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STOP_WAIT = 10.0
SERVE, LIVE_RESTORE = "serve", "live-restore"
NO_TTL = timedelta(days=36500)  # a live restore's expires_at in the table (never reached; shown as None)


class ServedExport(BaseModel):
    """One live export of a backup (``GET /backups/serves``)."""

    id: str
    backup_id: str
    export_name: str
    uri: str
    host_name: str
    pid: int | None
    cache_bytes: int
    size_bytes: int
    created_by: str | None = None
    started_at: datetime
    expires_at: datetime | None  # None: a live restore (it ends with its restore, not a TTL)
    kind: str = SERVE
    volume_id: str | None = None  # a live restore: the volume it restores into


@dataclass
class _Live:
    export: "BackupExport"
    done: threading.Event
    thread: threading.Thread | None = None


_LIVE: dict[str, _Live] = {}  # exports whose nbdkit is this process's child, by row id
_GUARD = threading.Lock()


def check_ttl(ttl: object) -> int:
    return check_int(ttl, field="ttl_seconds", lo=TTL_MIN, hi=TTL_MAX, what="seconds")


def check_cache(cache_size: object) -> int:
    cache = parse_size(cache_size, field="cache_size")  # type: ignore[arg-type]
    if not CACHE_MIN <= cache <= CACHE_MAX:
        raise InvalidInput(f"cache size {cache} is not accepted; accepted: 4M to 1G", field="cache_size")
    return cache


def socket_path(data_dir: Path, name: str) -> str:
    """Pure: where the Unix socket called ``name`` goes (``<data_dir>/run/nbd/<name>.sock``)."""
    if not isinstance(name, str) or not SOCKET_NAME_RE.fullmatch(name):
        raise InvalidInput(f"socket name {str(name)[:80]!r} is not accepted; accepted: 1-64 letters, digits and . _ -, "
                           "starting with a letter or digit (the socket is made under <data_dir>/run/nbd)", field="socket")
    return str(data_dir / "run" / "nbd" / f"{name}.sock")


def check_loopback(host: str | None, port: int | None) -> tuple[str, int]:
    """A loopback address (127.0.0.0/8 or ::1) and an unprivileged port (1024-65535)."""
    host = "127.0.0.1" if host is None else host
    try:
        loop = ipaddress.ip_address(host).is_loopback
    except (ValueError, TypeError):
        loop = False
    if not loop:
        raise InvalidInput(f"listen address {str(host)[:80]!r} is not accepted; accepted: a loopback address such as 127.0.0.1 "
                           "(an export has no authentication; use `storagectl backup serve --tls-psk` on the host)", field="host")
    port = srv.DEFAULT_PORT if port is None else port
    check_int(port, field="port", lo=1024, hi=65535, what="a TCP port")
    return host, port


def require_free_port(host: str, port: int) -> None:
    """Conflict (not nbdkit failing to bind, a 503) when another program listens there already."""
    family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
    with _socket.socket(family, _socket.SOCK_STREAM) as probe:
        probe.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise Conflict(f"{host} port {port} cannot be listened on ({exc.strerror}: another program has it, or the "
                           "address is not configured here); choose another port or address", port=port) from None


def listen_key(listen: srv.Listen) -> str:
    """Pure: what two exports of one host may not share."""
    return f"unix:{listen.socket}" if listen.socket else f"tcp:{listen.host}:{listen.port}"


def to_model(row: ServedExportRow) -> ServedExport:
    parsed = owners.parse_owner(row.process)
    kind = row.kind or SERVE
    return ServedExport(id=row.id, backup_id=row.backup_id, export_name=row.export_name, uri=row.uri, host_name=row.host_name,
                        pid=parsed[1] if parsed else None, cache_bytes=row.cache_bytes, size_bytes=row.size_bytes,
                        created_by=row.created_by, started_at=row.started_at,
                        expires_at=row.expires_at if kind == SERVE else None, kind=kind, volume_id=row.volume_id)


def is_expired(row: ServedExportRow, now: datetime) -> bool:
    """A serve past its TTL; a live restore never expires (it ends with its restore)."""
    return (row.kind or SERVE) == SERVE and row.expires_at <= now


def describe(served: ServedExport) -> str:
    """Pure: one export in a refusal, e.g. ``live restore into volume V at nbd://... (pid N, host H)``."""
    where = f"{served.uri} (pid {served.pid}, host {served.host_name}, served export {served.id})"
    if served.kind == LIVE_RESTORE:
        return f"live restore into volume {served.volume_id} at {where}"
    return f"serve at {where}"


def refusal(what: str, served: "list[ServedExport]") -> str | None:
    """Pure: why ``what`` (``backup B is deleted``-like) must wait for these exports, or None. A live
    restore reads its chunks until every one is restored, a serve until it is stopped."""
    if not served:
        return None
    live = [e for e in served if e.kind == LIVE_RESTORE]
    how = ("wait for the live restore to finish (the volume turns available) or stop it (Ctrl-C in its "
           f"`storagectl backup restore --live`, or DELETE /backups/serves/{live[0].id}: the volume is left in "
           "error, resumable)" if live else f"stop it first (DELETE /backups/serves/{served[0].id})")
    return f"refusing: {what} while its chunks are read by {'; '.join(describe(e) for e in served[:5])}; {how}"


def process_of(pid: int) -> str:
    """``host:pid:start`` of a child process (storage.owners; a reused pid is never taken for it)."""
    start = owners.process_start(pid)
    return f"{_socket.gethostname()}:{pid}:{start}" if start else f"{_socket.gethostname()}:{pid}"


class ServeManager:
    """The served exports of one catalog, seen from this host (``st.backups.serving``)."""

    def __init__(self, svc: "BackupService", *, data_dir: Path, host_name: str, config_file: str | None) -> None:
        self.svc, self.data_dir, self.host_name, self.config_file = svc, Path(data_dir), host_name, config_file
        self.max_serves = MAX_SERVES

    # -- start ------------------------------------------------------------------------------
    def start(self, backup_id: str, *, export_name: str | None = None, host: str | None = None, port: int | None = None,
              socket: str | None = None, cache_size: str | int = CACHE_DEFAULT, ttl_seconds: int = TTL_DEFAULT,
              readahead: int = 16, created_by: str | None = None) -> ServedExport:
        """Serve backup_id until stop() or ttl_seconds; returns once nbdkit accepts connections."""
        from storage.nbd.service import start_export

        ttl = check_ttl(ttl_seconds)
        cache = check_cache(cache_size)
        name = srv.check_export_name(export_name or backup_id)
        if socket is not None:
            if host is not None or port is not None:
                raise InvalidInput("give either socket or host/port, not both", field="socket")
            listen = srv.check_listen(None, None, socket_path(self.data_dir, socket))
        else:
            listen = srv.check_listen(*check_loopback(host, port), None)
        backup = self.svc.get(backup_id)
        if backup.status not in ("available", "damaged"):
            raise Conflict(f"backup {backup_id} is {backup.status}; accepted: an available backup", backup=backup_id)
        live = self.list()
        key = listen_key(listen)
        with self.svc.catalog.session() as s:
            taken = s.scalar(select(ServedExportRow.id).where(ServedExportRow.host_name == self.host_name,
                                                              ServedExportRow.listen == key))
        if taken:
            raise Conflict(f"{listen.uri(name).split('/' + name)[0]} is already used by served export {taken}; choose another "
                           "port or socket", listen=key)
        if sum(1 for e in live if e.host_name == self.host_name and e.kind == SERVE) >= self.max_serves:
            raise Busy(f"this host serves {self.max_serves} exports already (at most {self.max_serves}); stop one first "
                       "(DELETE /backups/serves/ID)")
        if not listen.socket:
            require_free_port(listen.host, listen.port)
        if listen.socket:
            Path(listen.socket).parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            if os.path.lexists(listen.socket):  # no live row names it (checked above): a dead export's socket
                os.unlink(listen.socket)
        export = start_export(self.svc, self.config_file, backup.id, export_name=name, host=listen.host if not listen.socket else None,
                              port=listen.port if not listen.socket else None, socket=listen.socket, cache_size=cache,
                              readahead=readahead, echo=False)
        pid = export.server.pid
        assert pid is not None
        row_id = new_id()
        now = utcnow()
        row = ServedExportRow(
            id=row_id, backup_id=backup.id, export_name=name, uri=export.uri, listen=key, host_name=self.host_name,
            process=process_of(pid), owner=owners.this_owner(), kind=SERVE,
            cache_bytes=cache, size_bytes=export.info.size_bytes, created_by=created_by, started_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
        try:
            with self.svc.catalog.session() as s:  # (host, listen) unique: a racing worker's row is a Conflict
                s.add(row)
        except BaseException:
            export.stop()
            raise
        served = to_model(row)
        live_rec = _Live(export, threading.Event())
        with _GUARD:
            _LIVE[row_id] = live_rec
        live_rec.thread = threading.Thread(target=self._watch, args=(row_id, live_rec, float(ttl)),
                                           name=f"nbd-serve-{row_id[:8]}", daemon=True)
        live_rec.thread.start()
        log.info("serving backup %s at %s until %s", backup.id, served.uri, served.expires_at.isoformat())
        return served

    def _watch(self, row_id: str, live: _Live, ttl: float) -> None:
        """Wait for nbdkit to exit or the TTL to end; then stop it, release the lock, drop the row."""
        proc = live.export.server.proc
        assert proc is not None
        deadline = time.monotonic() + ttl
        while proc.poll() is None and not live.done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.info("served export %s of backup %s expired; stopping it", row_id, live.export.info.backup_id)
                break
            live.done.wait(min(remaining, 1.0))
        try:
            live.export.stop()
        finally:
            with _GUARD:
                _LIVE.pop(row_id, None)
            self._delete(row_id)

    def _delete(self, row_id: str) -> None:
        with self.svc.catalog.session() as s:
            row = s.get(ServedExportRow, row_id)
            if row is not None:
                s.delete(row)

    # -- live restores (storage/nbd/live_service.py) ----------------------------------------
    def record_live(self, *, backup_id: str, volume_id: str, export_name: str, uri: str, listen: srv.Listen, pid: int,
                    size_bytes: int) -> str:
        """Record the nbdkit of a live restore (this process's child); returns the row's id. A stale
        row of a dead process on the same listen address is reaped first (``list``)."""
        self.list()
        now = utcnow()
        row = ServedExportRow(
            id=new_id(), backup_id=backup_id, export_name=export_name, uri=uri, listen=listen_key(listen),
            host_name=self.host_name, process=process_of(pid), owner=owners.this_owner(), cache_bytes=0,
            size_bytes=size_bytes, created_by=None, started_at=now, expires_at=now + NO_TTL, kind=LIVE_RESTORE,
            volume_id=volume_id,
        )
        with self.svc.catalog.session() as s:
            s.add(row)
        log.info("live restore of backup %s into volume %s recorded as served export %s", backup_id, volume_id, row.id)
        return row.id

    def forget(self, row_id: str) -> None:
        """A live restore ended (finished, stopped, failed): its row goes (no-op when gone already)."""
        self._delete(row_id)

    def refuse_while_read(self, what: str, backup_ids: "set[str] | None" = None, repository: str | None = None) -> None:
        """Conflict naming every live export reading ``backup_ids`` (or any backup of ``repository``)."""
        served = self.list()
        if repository is not None:
            from storage.catalog.backups import BackupRow

            ids = {e.backup_id for e in served}
            with self.svc.catalog.session() as s:
                in_repo = set(s.scalars(select(BackupRow.id).where(BackupRow.id.in_(ids), BackupRow.repository == repository))) if ids else set()
            served = [e for e in served if e.backup_id in in_repo]
        else:
            served = [e for e in served if e.backup_id in (backup_ids or set())]
        reason = refusal(what, served)
        if reason is not None:
            raise Conflict(reason, served_exports=[e.id for e in served])

    # -- list and stop ------------------------------------------------------------------------
    def list(self, backup_id: str | None = None) -> list[ServedExport]:
        """Live exports; this host's rows whose nbdkit is gone are deleted, expired ones stopped."""
        with self.svc.catalog.session() as s:
            query = select(ServedExportRow).order_by(ServedExportRow.started_at)
            if backup_id:
                query = query.where(ServedExportRow.backup_id == backup_id)
            rows = list(s.scalars(query))
            for row in rows:
                s.expunge(row)
        now = utcnow()
        out = []
        for row in rows:
            if row.host_name == self.host_name:
                if owners.is_dead_here(row.process):
                    self._delete(row.id)
                    continue
                if is_expired(row, now):
                    self._stop_row(row)
                    continue
            out.append(to_model(row))
        return out

    def count(self) -> int:
        with self.svc.catalog.session() as s:
            return int(s.scalar(select(func.count()).select_from(ServedExportRow)) or 0)

    def stop(self, served_id: str) -> None:
        """Stop one export (its nbdkit is gone when this returns)."""
        with self.svc.catalog.session() as s:
            row = s.get(ServedExportRow, served_id)
            if row is not None:
                s.expunge(row)
        if row is None:
            raise NotFound(f"served export {served_id!r} not found; see GET /backups/serves", served_export=served_id)
        if row.host_name != self.host_name:
            raise Conflict(f"served export {served_id} runs on host {row.host_name}; stop it through that host's API",
                           host=row.host_name)
        self._stop_row(row)

    def _stop_row(self, row: ServedExportRow) -> None:
        with _GUARD:
            live = _LIVE.get(row.id)
        if live is not None:  # our own child: the watcher stops it and drops the row
            live.done.set()
            if live.thread is not None:
                live.thread.join(STOP_WAIT + 5)
            return
        parsed = owners.parse_owner(row.process)
        if parsed and not owners.is_dead_here(row.process):
            pid = parsed[1]
            try:
                os.kill(pid, signal.SIGTERM)  # another worker's child: its watcher releases the lock
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + STOP_WAIT
            while not owners.is_dead_here(row.process) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not owners.is_dead_here(row.process):
                os.kill(pid, signal.SIGKILL)
        self._delete(row.id)


def stop_all_here() -> None:
    """Stop this process's exports (a graceful API shutdown)."""
    with _GUARD:
        lives = list(_LIVE.values())
    for live in lives:
        live.done.set()
    for live in lives:
        if live.thread is not None:
            live.thread.join(STOP_WAIT + 5)


__all__ = ["LIVE_RESTORE", "MAX_SERVES", "SERVE", "ServeManager", "ServedExport", "check_loopback", "describe", "listen_key",
           "refusal", "socket_path", "stop_all_here"]
