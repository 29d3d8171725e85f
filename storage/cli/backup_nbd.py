"""`storagectl backup serve|attach|detach`: a backup as a read-only NBD export (storage.nbd)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from storage.cli import common
from storage.cli.backup import KeyOpt, NoLockOpt, RepoOpt, backup_app


def _backup_ident(backup_id: str | None, manifest: str | None, repository: str | None) -> str:
    """The backup to open: a catalog id, or ``--manifest`` read from ``--repository``."""
    from storage.errors import InvalidInput

    if not (manifest or backup_id):
        raise InvalidInput("give a backup id, or --repository URL --manifest ID")
    if manifest and not repository:
        raise InvalidInput("--manifest needs --repository URL")
    return manifest or backup_id  # type: ignore[return-value]


def _stop_on_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@backup_app.command("serve")
def serve(
    ctx: typer.Context,
    backup_id: Annotated[Optional[str], typer.Argument(help="Backup id (from the catalog).")] = None,
    manifest: Annotated[Optional[str], typer.Option("--manifest", help="Backup id read straight from --repository (no catalog needed).")] = None,
    repository: RepoOpt = None,
    key_file: KeyOpt = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Export name (default: the backup id).")] = None,
    host: Annotated[Optional[str], typer.Option("--host", help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="TCP port (default 10809).")] = None,
    socket: Annotated[Optional[str], typer.Option("--socket", help="Listen on this Unix socket instead of TCP.")] = None,
    tls_psk: Annotated[Optional[str], typer.Option("--tls-psk", help="Require TLS with the pre-shared keys of this psktool file (USER:HEXKEY, mode 0600).")] = None,
    cache_size: Annotated[str, typer.Option("--cache-size", help="Memory for verified chunks (4M-64G).")] = "64M",
    readahead: Annotated[int, typer.Option("--readahead", help="Chunks fetched ahead of sequential reads (0-256).")] = 16,
    no_lock: NoLockOpt = False,
    api: Annotated[Optional[str], typer.Option("--api", envvar="STORAGE_API_URL", help="Have this storage API host serve it "
                   "(http://HOST:8776) and return at once; stop it with DELETE /backups/serves/ID.")] = None,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", envvar="STORAGE_API_TOKEN_FILE",
                          help="With --api: a file holding an operator token of that API.")] = None,
    ttl: Annotated[Optional[int], typer.Option("--ttl", help="With --api: seconds until the export is stopped (default 3600).")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Serve a backup read-only over NBD (nbdkit) until Ctrl-C: chunks are fetched on first read and verified.
    With --api, the API host serves it in the background until its TTL ends or it is stopped."""
    from storage.errors import BackendError
    from storage.nbd.service import serve as start

    ident = _backup_ident(backup_id, manifest, repository)
    if api is not None:
        _serve_through_api(ident, api, token_file, manifest=manifest, key_file=key_file, tls_psk=tls_psk, no_lock=no_lock,
                           body={"export_name": name, "host": host, "port": port, "socket": socket, "cache_size": cache_size,
                                 "ttl_seconds": ttl}, as_json=as_json)
        return
    if ttl is not None:
        from storage.errors import InvalidInput

        raise InvalidInput("--ttl applies with --api (a foreground export runs until Ctrl-C)", field="ttl")
    st = common.get_storage(ctx)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with start(st, ident, repository=repository if manifest else None, key_file=key_file, export_name=name, host=host,
                   port=port, socket=socket, tls_psk=tls_psk, cache_size=cache_size, readahead=readahead, lock=not no_lock) as export:
            if as_json:  # one line: a script reads it and connects
                sys.stdout.write(json.dumps(common.to_jsonable(export.info)) + "\n")
            else:
                sys.stdout.write(f"{export.uri}\n")
                sys.stderr.write(f"serving backup {ident} read-only ({export.info.size_bytes} bytes); Ctrl-C stops\n")
            sys.stdout.flush()
            try:
                code = export.wait()
            except KeyboardInterrupt:
                return
            raise BackendError(f"nbdkit serving backup {ident} exited with status {code}: {export.server.last_error()}")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_through_api(ident: str, api: str, token_file: "Path | None", *, manifest: str | None, key_file: str | None,
                       tls_psk: str | None, no_lock: bool, body: dict[str, Any], as_json: bool) -> None:
    from storage.errors import InvalidInput
    from storage.nbd.api_client import read_token, serve_through_api

    for given, option in ((manifest, "--manifest"), (key_file, "--key-file"), (tls_psk, "--tls-psk"), (no_lock, "--no-lock")):
        if given:
            raise InvalidInput(f"{option} does not apply with --api (the API host serves a backup of its catalog)", field="api")
    served = serve_through_api(api, read_token(token_file), ident, body)
    if as_json:
        sys.stdout.write(json.dumps(served) + "\n")
    else:
        sys.stdout.write(f"{served['uri']}\n")
        sys.stderr.write(f"served by {served['host_name']} as {served['id']} until {served['expires_at']}\n")
    sys.stdout.flush()


@backup_app.command("attach")
def attach(
    ctx: typer.Context,
    backup_id: Annotated[Optional[str], typer.Argument(help="Backup id (from the catalog).")] = None,
    manifest: Annotated[Optional[str], typer.Option("--manifest", help="Backup id read straight from --repository (no catalog needed).")] = None,
    repository: RepoOpt = None,
    key_file: KeyOpt = None,
    device: Annotated[Optional[str], typer.Option("--device", help="/dev/nbdN (default: the first free one).")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Attach a backup read-only as /dev/nbdN (kernels with nbd; elsewhere use `backup serve`)."""
    from storage.nbd.attach import attach as run

    ident = _backup_ident(backup_id, manifest, repository)
    att = run(common.get_storage(ctx), ident, repository=repository if manifest else None, key_file=key_file, device=device)
    common.emit(att, as_json, lambda a: sys.stdout.write(f"{a.device}\n"))


@backup_app.command("detach")
def detach(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="/dev/nbdN or the attached backup's id.")],
    as_json: common.JsonOpt = False,
) -> None:
    """Detach a backup attached with `backup attach` and stop its export."""
    from storage.nbd.attach import detach as run

    att = run(common.get_storage(ctx), target)
    common.emit({"detached": att.device, "backup_id": att.backup_id}, as_json,
                lambda d: sys.stdout.write(f"detached {d['detached']}\n"))


def restore_live(ctx: typer.Context, backup_id: str | None, *, manifest: str | None, repository: str | None,
                 new_volume: str | None, pool: str | None, key_file: str | None, resume: str | None, host: str | None,
                 port: int | None, socket: str | None, copy_rate: str | None, until_restored: bool,
                 others: tuple[Any, ...], as_json: bool) -> None:
    """`backup restore --live` / `--resume VOLUME`: print the URI, then the progress; the volume is
    'available' once restored (served on until Ctrl-C unless --until-restored)."""
    import time

    from storage.errors import BackendError, InvalidInput
    from storage.nbd.live_service import live_restore, resume_live
    from storage.units import parse_size

    to_volume, to_path, no_lock = others
    if to_volume or to_path or no_lock:
        raise InvalidInput("--live restores into a new volume only: give --new-volume NAME (not --to-volume, --to-path or --no-lock)")
    rate = parse_size(copy_rate, field="copy_rate") if copy_rate else 0
    st = common.get_storage(ctx)
    listen = dict(host=host, port=port, socket=socket, copy_rate=rate)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        if resume:
            if backup_id or manifest or new_volume or pool:
                raise InvalidInput("--resume VOLUME takes no backup id, --manifest, --new-volume or --pool (the volume's state names its backup)")
            run = resume_live(st, resume, **listen)
        else:
            ident = _backup_ident(backup_id, manifest, repository)
            if not new_volume:
                raise InvalidInput("--live needs --new-volume NAME (a live restore creates the volume it serves)")
            run = live_restore(st, ident, new_volume, pool=pool, repository=repository if manifest else None,
                               key_file=key_file, **listen)
        with run:
            if as_json:
                sys.stdout.write(json.dumps(common.to_jsonable(run.info)) + "\n")
            else:
                sys.stdout.write(f"{run.uri}\n")
                sys.stderr.write(f"volume {run.info.volume_name} is served read-write while backup {run.info.backup_id} "
                                 f"is restored into it ({run.info.size_bytes} bytes)\n")
            sys.stdout.flush()
            try:
                with common.progress_bar(f"live restore {run.info.volume_name}", None, enabled=not as_json) as update:
                    last = -1
                    while not run.wait_restored(timeout=1.0) and not run.finished.is_set():
                        done, total = run.progress()
                        update(done * (run.info.size_bytes // max(total, 1)), run.info.size_bytes)
                        if as_json and done != last:
                            sys.stdout.write(json.dumps({"restored_chunks": done, "chunks": total}) + "\n")
                            sys.stdout.flush()
                            last = done
                    update(run.info.size_bytes, run.info.size_bytes)
                if run.result is None or run.result[0] != "complete":
                    reason = run.result[1] if run.result else "unknown"
                    raise BackendError(f"live restore of volume {run.info.volume_name!r} failed: {reason}; the volume is "
                                       f"in error, `storagectl backup restore --resume {run.info.volume_name} --live` retries")
                done, total = run.progress()
                record = {"volume": run.info.volume_name, "status": "available", "restored_chunks": done, "chunks": total}
                if as_json:
                    sys.stdout.write(json.dumps(record) + "\n")
                else:
                    sys.stderr.write(f"volume {run.info.volume_name} is restored and available"
                                     + ("" if until_restored else f"; still served at {run.uri} until Ctrl-C") + "\n")
                sys.stdout.flush()
                if not until_restored:
                    while run.server is not None and run.server.proc is not None and run.server.proc.poll() is None:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                return
    finally:
        signal.signal(signal.SIGTERM, previous)
