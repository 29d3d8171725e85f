"""`storagectl object ...`: containers and objects, as admins type them with the `swift` client.

The store is ``--store NAME`` (a configured ``[object_stores.NAME]``), ``--url`` (``file://``,
``swift://``, ``s3://``), or by default the configured swift store / the ``ST_AUTH``,
``ST_USER``, ``ST_KEY`` (or ``OS_*``) environment / ``local``. All logic lives in
``st.objects`` (storage/objects/service.py, storage/objects/transfer.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from backends.object.base import ContainerInfo, ObjectInfo, PrefixEntry
from storage.cli import common
from storage.errors import InvalidInput
from storage.objects.service import StoreLocation
from storage.units import format_size, parse_size

object_app = typer.Typer(help="Object stores: containers and objects (Swift, S3, local directory).", no_args_is_help=True)

StoreOpt = Annotated[Optional[str], typer.Option("--store", "-s", help="Configured object store name.")]
UrlOpt = Annotated[Optional[str], typer.Option("--url", help="Store URL: file:///path/container, swift://\\[STORE@]container, s3://\\[STORE@]bucket.")]
ContainerArg = Annotated[Optional[str], typer.Argument(help="Container (default: the one in --url).")]


def _location(ctx: typer.Context, store: str | None, url: str | None) -> StoreLocation:
    return common.get_storage(ctx).objects.resolve(store, url)


def _container(loc: StoreLocation, container: str | None, *, required: bool = True) -> str | None:
    chosen = container or loc.container or None
    if chosen is None and required:
        raise InvalidInput("a CONTAINER argument is needed (or a --url naming one)", field="container")
    return chosen


def _progress_enabled(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


def _parse_meta(items: list[str] | None) -> dict[str, str]:
    meta = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            key, sep, value = item.partition(":")
        if not sep or not key:
            raise InvalidInput(f"metadata {item!r} is not accepted; accepted: KEY=VALUE or KEY:VALUE", field="meta")
        meta[key] = value
    return meta


def _info_dict(entry: Any) -> dict[str, Any]:
    if isinstance(entry, PrefixEntry):
        return {"subdir": entry.prefix}
    if isinstance(entry, ContainerInfo):
        return {"name": entry.name, "count": entry.object_count, "bytes": entry.bytes_used, "metadata": dict(entry.metadata)}
    if isinstance(entry, ObjectInfo):
        return {
            "name": entry.name, "bytes": entry.size, "hash": entry.etag, "last_modified": entry.last_modified,
            "content_type": entry.content_type, "metadata": dict(entry.metadata),
        }
    return dict(entry)


def _print_listing(entries: list[Any], long: bool, human: bool) -> None:
    size = (lambda n: format_size(n)) if human else str
    total = 0
    for e in entries:
        if not (long or human):
            print(e.prefix if isinstance(e, PrefixEntry) else e.name)
        elif isinstance(e, PrefixEntry):
            print(f"{'':>12} {'':19} {'':24} {e.prefix}")
        elif isinstance(e, ContainerInfo):
            total += e.bytes_used
            print(f"{e.object_count:>8} {size(e.bytes_used):>12} {e.name}")
        else:
            total += e.size
            when = (e.last_modified or "")[:19].replace("T", " ")
            print(f"{size(e.size):>12} {when:19} {e.content_type or '':24} {e.name}")
    if long or human:
        print(f"{size(total):>12}")


def _show_stat(value: Any) -> None:
    common.print_record(value if isinstance(value, dict) else _info_dict(value))


@object_app.command("post")
def post(
    ctx: typer.Context,
    container: ContainerArg = None,
    meta: Annotated[Optional[list[str]], typer.Option("--meta", "-m", help="KEY=VALUE metadata; repeat for more.")] = None,
    store: StoreOpt = None,
    url: UrlOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Create a container (or update its metadata)."""
    loc = _location(ctx, store, url)
    info = common.get_storage(ctx).objects.post(loc, _container(loc, container) or "", _parse_meta(meta))
    common.emit(_info_dict(info), as_json, common.print_record)


@object_app.command("upload")
def upload(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="Container (created if missing).")],
    paths: Annotated[list[str], typer.Argument(help="Files and directories to upload.")],
    object_name: Annotated[Optional[str], typer.Option("--object-name", help="Object name for a single file.")] = None,
    segment_size: Annotated[Optional[str], typer.Option("--segment-size", "-S", help="Segment larger files (swift), e.g. 1G.")] = None,
    store: StoreOpt = None,
    url: UrlOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Upload files and directories (large files become segmented objects)."""
    st = common.get_storage(ctx)
    loc = _location(ctx, store, url)
    if segment_size is not None:
        loc = loc.with_options(segment_size=parse_size(segment_size, field="segment_size"))
    total = sum(Path(p).stat().st_size for p in paths if Path(p).is_file())
    with common.progress_bar("upload", total or None, enabled=_progress_enabled(as_json)) as bar:
        results = st.objects.upload(loc, container, paths, object_name=object_name, progress=bar)
    common.emit(results, as_json, lambda rs: [print(r.name) for r in rs])


@object_app.command("list")
def list_(
    ctx: typer.Context,
    container: ContainerArg = None,
    long: Annotated[bool, typer.Option("--long", help="Size, date, type and name.")] = False,
    lh: Annotated[bool, typer.Option("--lh", help="Long listing with human sizes (like `swift list --lh`).")] = False,
    prefix: Annotated[Optional[str], typer.Option("--prefix", "-p", help="Only names starting with this.")] = None,
    delimiter: Annotated[Optional[str], typer.Option("--delimiter", "-d", help="Roll up names at this character (e.g. /).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, max=1_000_000, help="At most this many entries.")] = None,
    store: StoreOpt = None,
    url: UrlOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """List containers, or the objects of a container."""
    loc = _location(ctx, store, url)
    entries = common.get_storage(ctx).objects.listing(
        loc, _container(loc, container, required=False), prefix=prefix, delimiter=delimiter, limit=limit
    )
    if as_json:
        common.print_json([_info_dict(e) for e in entries])
    else:
        _print_listing(entries, long, lh)


@object_app.command("download")
def download(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="Container.")],
    objects: Annotated[Optional[list[str]], typer.Argument(help="Objects (default: all).")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write the one object to FILE, or '-' for stdout.")] = None,
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-D", help="Directory to write objects under (default .).")] = None,
    prefix: Annotated[Optional[str], typer.Option("--prefix", "-p", help="Only objects starting with this.")] = None,
    store: StoreOpt = None,
    url: UrlOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Download objects to a directory, a file (-o FILE) or stdout (-o -)."""
    st = common.get_storage(ctx)
    loc = _location(ctx, store, url)
    with common.progress_bar("download", None, enabled=_progress_enabled(as_json) and output != "-") as bar:
        results = st.objects.download(
            loc, container, objects or None, dest=output_dir, output=output, prefix=prefix, progress=bar
        )
    if output == "-":
        return
    common.emit(results, as_json, lambda rs: [print(r.path) for r in rs])


@object_app.command("delete")
def delete(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="Container.")],
    objects: Annotated[Optional[list[str]], typer.Argument(help="Objects (default: all, then the container).")] = None,
    store: StoreOpt = None,
    url: UrlOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Delete objects; without objects, delete every object and then the container."""
    loc = _location(ctx, store, url)
    deleted = common.get_storage(ctx).objects.delete(loc, container, objects or None)
    common.emit({"container": container, "deleted": deleted}, as_json, lambda d: [print(n) for n in d["deleted"]])


@object_app.command("stat")
def stat(
    ctx: typer.Context,
    container: ContainerArg = None,
    obj: Annotated[Optional[str], typer.Argument(metavar="OBJECT", help="Object.")] = None,
    store: StoreOpt = None,
    url: UrlOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Show the account (no arguments), a container, or an object."""
    loc = _location(ctx, store, url)
    value = common.get_storage(ctx).objects.stat(loc, _container(loc, container, required=False), obj)
    common.emit(value if isinstance(value, dict) else _info_dict(value), as_json, _show_stat)


@object_app.command("stores")
def stores(ctx: typer.Context, as_json: common.JsonOpt = False) -> None:
    """List the configured object stores (secrets hidden)."""
    rows = common.get_storage(ctx).objects.configured()
    common.emit(rows, as_json, lambda rs: common.print_table([[r.name, r.type, r.options] for r in rs], ["Name", "Type", "Options"]))


def register(app: typer.Typer) -> None:
    """Add `storagectl object ...` to the root app."""
    app.add_typer(object_app, name="object")
