"""`storagectl backup ...`: the CLI face of st.backups (no logic of its own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Optional

import typer

from storage.backup.models import Backup, Progress, VerifyReport
from storage.cli import common
from storage.bounds import DURATION_SECONDS_MAX
from storage.names import parse_labels
from storage.units import format_size

backup_app = typer.Typer(help="Deduplicated, compressed, verifiable backups: create, restore, verify, gc.", no_args_is_help=True)
key_app = typer.Typer(help="Encryption key files.", no_args_is_help=True)
backup_app.add_typer(key_app, name="key")

LabelOpt = Annotated[Optional[list[str]], typer.Option("--label", "-l", help="KEY=VALUE; repeat for more.")]
RepoOpt = Annotated[Optional[str], typer.Option("--repository", "-r", help="Repository URL (default: backup.repository).")]
NoLockOpt = Annotated[bool, typer.Option(
    "--no-lock", help="Do not take the repository's shared lock (a repository this host cannot write); "
    "a garbage collection running meanwhile can then make sound chunks look missing.")]
KeyOpt = Annotated[Optional[str], typer.Option("--key-file", "-k", help="Key file of an encrypted repository.")]
COLUMNS = ["ID", "Name", "Volume", "Status", "Size", "Stored", "Chunks (new/dedup/zero)", "Created"]


def backup_row(b: Backup) -> list[Any]:
    created = b.created_at.strftime("%Y-%m-%d %H:%M:%S") if b.created_at else ""
    return [
        b.id, b.name or "", b.volume_name or b.source or "", b.status, format_size(b.size_bytes),
        format_size(b.stored_bytes), f"{b.new_chunk_count}/{b.dedup_chunk_count}/{b.zero_chunk_count}", created,
    ]


def show_backup(b: Backup) -> None:
    record = b.model_dump(mode="json")
    record["size"] = format_size(b.size_bytes)
    common.print_record(record)


@contextmanager
def _bar(description: str, as_json: bool) -> Iterator[Callable[[Progress], None]]:
    with common.progress_bar(description, None, enabled=not as_json) as update:
        yield lambda p: update(p.done, p.total)


@backup_app.command("create")
def create(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Volume or snapshot (name/id), a block device or image path; or volume:/snapshot:/path: REF.")],
    repository: RepoOpt = None,
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Backup name.")] = None,
    label: LabelOpt = None,
    key_file: KeyOpt = None,
    bandwidth_limit: Annotated[Optional[str], typer.Option("--bandwidth-limit", help="Upload limit per second, e.g. 50M.")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Back up a volume (through a snapshot: crash-consistent even in use), a snapshot or a path."""
    st = common.get_storage(ctx)
    with _bar(f"backup {source}", as_json) as progress:
        b = st.backups.create(
            source, repository=repository, name=name, labels=parse_labels(label), encryption_key_file=key_file,
            progress=progress, bandwidth_limit=bandwidth_limit,
        )
    common.emit(b, as_json, show_backup)


@backup_app.command("list")
def list_(
    ctx: typer.Context,
    volume: Annotated[Optional[str], typer.Option("--volume", help="Only backups of this volume (name or id).")] = None,
    repository: RepoOpt = None,
    status: Annotated[Optional[str], typer.Option("--status", help="Only this status (available, damaged, error...).")] = None,
    label: LabelOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """List backups (an interrupted one is shown 'interrupted', never 'available')."""
    st = common.get_storage(ctx)
    rows = st.backup_listing.list(volume=volume, repository=repository, labels=parse_labels(label) or None, status=status)
    common.emit(rows, as_json, lambda bs: common.print_table([backup_row(b) for b in bs], COLUMNS))


@backup_app.command("show")
def show(ctx: typer.Context, backup_id: Annotated[str, typer.Argument(help="Backup id.")], as_json: common.JsonOpt = False) -> None:
    """Show one backup."""
    common.emit(common.get_storage(ctx).backups.get(backup_id), as_json, show_backup)


@backup_app.command("restore")
def restore(
    ctx: typer.Context,
    backup_id: Annotated[Optional[str], typer.Argument(help="Backup id (from the catalog).")] = None,
    manifest: Annotated[Optional[str], typer.Option("--manifest", help="Backup id read straight from --repository (no catalog needed).")] = None,
    repository: RepoOpt = None,
    to_volume: Annotated[Optional[str], typer.Option("--to-volume", help="Existing volume (at least as large).")] = None,
    new_volume: Annotated[Optional[str], typer.Option("--new-volume", help="Create a volume of this name.")] = None,
    pool: Annotated[Optional[str], typer.Option("--pool", help="Pool of --new-volume.")] = None,
    to_path: Annotated[Optional[str], typer.Option("--to-path", help="A file (created sparse) or a block device.")] = None,
    key_file: KeyOpt = None,
    no_lock: NoLockOpt = False,
    live: Annotated[bool, typer.Option("--live", help="With --new-volume: serve the volume read-write over NBD at once while it is restored.")] = False,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Finish the live restore of this volume (after a crash or a stop).")] = None,
    host: Annotated[Optional[str], typer.Option("--host", help="--live: listen address (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="--live: TCP port (default 10809).")] = None,
    socket: Annotated[Optional[str], typer.Option("--socket", help="--live: listen on this Unix socket instead of TCP.")] = None,
    copy_rate: Annotated[Optional[str], typer.Option("--copy-rate", help="--live: background copy limit per second, e.g. 50M (default: unlimited).")] = None,
    until_restored: Annotated[bool, typer.Option("--until-restored", help="--live: stop serving once the volume is restored (default: serve until Ctrl-C).")] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Restore a backup to an existing volume, a new volume or a path; every chunk is verified."""
    from storage.errors import InvalidInput

    if live or resume:
        from storage.cli.backup_nbd import restore_live

        restore_live(ctx, backup_id, manifest=manifest, repository=repository, new_volume=new_volume, pool=pool,
                     key_file=key_file, resume=resume, host=host, port=port, socket=socket, copy_rate=copy_rate,
                     until_restored=until_restored, others=(to_volume, to_path, no_lock), as_json=as_json)
        return
    st = common.get_storage(ctx)
    ident = manifest or backup_id
    if not ident:
        raise InvalidInput("give a backup id, or --repository URL --manifest ID")
    if manifest and not repository:
        raise InvalidInput("--manifest needs --repository URL")
    with _bar(f"restore {ident}", as_json) as progress:
        result = st.backups.restore(
            ident, to_volume=to_volume, new_volume_name=new_volume, to_path=to_path,
            repository=repository if manifest else None, key_file=key_file, pool=pool, progress=progress,
            lock=not no_lock,
        )
    common.emit(result, as_json, lambda r: common.print_record(r.model_dump(mode="json")))


@backup_app.command("verify")
def verify(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Backup id, or a repository URL to verify every backup in it.")],
    deep: Annotated[bool, typer.Option("--deep", help="Download, decrypt, decompress and re-hash chunks.")] = False,
    sample: Annotated[float, typer.Option("--sample", help="With --deep: percent of chunks to check (0-100].")] = 100.0,
    key_file: KeyOpt = None,
    no_lock: NoLockOpt = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Check that a backup's chunks exist (quick) or are intact (--deep); exits 9 when damaged."""
    st = common.get_storage(ctx)
    with _bar(f"verify {target}", as_json or not deep) as progress:
        report = st.backups.verify(target, deep=deep, sample_percent=sample, key_file=key_file, progress=progress,
                                   lock=not no_lock)
    common.emit(report, as_json, _show_verify)
    from storage.backup.verify import verify_failure

    exc = verify_failure(report)
    if exc is not None:
        common.err_console.print(f"[red]error:[/red] {common.escape(exc.message)}", highlight=False)
        raise typer.Exit(exc.exit_code)


def _show_verify(r: VerifyReport) -> None:
    record = r.model_dump(mode="json")
    for key in ("missing_chunks", "corrupt_chunks", "backups_checked", "lost_backups"):
        record[key] = f"{len(r.__dict__[key])}: " + ", ".join(r.__dict__[key][:5]) + (" ..." if len(r.__dict__[key]) > 5 else "")
    common.print_record(record)


@backup_app.command("delete")
def delete(
    ctx: typer.Context,
    backup_id: Annotated[str, typer.Argument(help="Backup id.")],
    repository: RepoOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Delete a backup (no other backup depends on it); run gc to free its chunks."""
    common.get_storage(ctx).backups.delete(backup_id, repository=repository)
    common.emit({"deleted": backup_id}, as_json, lambda d: common.console.print(f"deleted backup {backup_id}"))


@backup_app.command("gc")
def gc(
    ctx: typer.Context,
    repository: Annotated[Optional[str], typer.Argument(help="Repository URL (default: backup.repository).")] = None,
    grace: Annotated[Optional[int], typer.Option("--grace", min=0, max=DURATION_SECONDS_MAX, help="Keep unreferenced chunks younger than this many seconds.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be deleted.")] = False,
    key_file: KeyOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Delete chunks no backup references (mark and sweep, under the repository lock)."""
    report = common.get_storage(ctx).backups.gc(repository, grace_seconds=grace, dry_run=dry_run, key_file=key_file)
    common.emit(report, as_json, lambda r: common.print_record(r.model_dump(mode="json")))


@backup_app.command("import")
def import_(
    ctx: typer.Context,
    repository: Annotated[Optional[str], typer.Argument(help="Repository URL (default: backup.repository).")] = None,
    key_file: KeyOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Rebuild the catalog entries of a repository's backups from their manifests."""
    rows = common.get_storage(ctx).backups.import_repository(repository, key_file=key_file)
    common.emit(rows, as_json, lambda bs: common.print_table([backup_row(b) for b in bs], COLUMNS))


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Where to write the new key file (mode 0600; never overwritten).")],
    as_json: common.JsonOpt = False,
) -> None:
    """Create a random 256-bit key file for encrypted repositories. Keep a copy: without it the backups are lost."""
    written = common.get_storage(ctx).backups.create_key(path)
    common.emit({"key_file": str(written)}, as_json, lambda d: common.console.print(f"wrote key file {written}"))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    from storage.cli import backup_nbd  # noqa: F401  (backup serve|attach|detach, on backup_app)

    app.add_typer(backup_app, name="backup")
