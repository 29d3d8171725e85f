"""`storagectl volume export|unexport|connection-info`, `storagectl export list|reconcile|stop`,
`storagectl attach|detach --connection-info FILE` or `storagectl attach|detach VOLUME --api URL` (from a
compute host, through the Cinder actions: storage.host.compute): the CLI face of st.exports and storage.attach.

Secrets: a CHAP secret is read from a file (``--chap-secret-file``, ``-`` for stdin), never
from the command line, and printed only with ``--show-secret``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from storage.cli import common
from storage.errors import InvalidInput
from storage.units import format_size

if TYPE_CHECKING:
    from storage.exports.models import Export, ReconcileReport

export_app = typer.Typer(help="iSCSI exports: list, reconcile with the catalog, stop the target.", no_args_is_help=True)

ShowSecretOpt = Annotated[bool, typer.Option("--show-secret", help="Include the CHAP secret in the output.")]


def _show_export(e: Export) -> None:
    record = e.model_dump(mode="json")
    record["size"] = format_size(e.size_bytes)
    common.print_record(record)


def _show_exports(exports: list[Export]) -> None:
    common.print_table(
        [[e.volume_name, e.target_iqn, e.lun, e.portal, e.auth_method or "", ",".join(e.initiators) or "any", e.device_path]
         for e in exports],
        ["Volume", "Target", "LUN", "Portal", "Auth", "Initiators", "Device"],
    )  # fmt: skip


def _read_secret(path: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read CHAP secret file {path!r}: {exc.strerror}", field="chap_secret_file") from None
    return text.rstrip("\r\n")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _load_info(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read connection info file {str(path)!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"connection info file {str(path)!r} is not JSON: {exc.msg} at line {exc.lineno}") from None
    if isinstance(data, dict) and isinstance(data.get("data"), dict):  # Cinder's {"driver_volume_type", "data"}
        data = data["data"]
    if not isinstance(data, dict):
        raise InvalidInput(f"connection info file {str(path)!r} does not hold a JSON object")
    return data


def volume_export(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Volume name or id.")],
    initiator: Annotated[
        Optional[list[str]], typer.Option("--initiator", help="Allowed initiator IQN; repeat for more (default: any).")
    ] = None,
    chap: Annotated[bool, typer.Option("--chap/--no-chap", help="Require CHAP (default on).")] = True,
    chap_user: Annotated[Optional[str], typer.Option("--chap-user", help="CHAP username (default: vol-<id>).")] = None,
    chap_secret_file: Annotated[
        Optional[str], typer.Option("--chap-secret-file", help="File holding a 12-16 character secret; - for stdin.")
    ] = None,
    portal: Annotated[Optional[str], typer.Option("--portal", help="HOST:PORT to advertise (default: config).")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Export a volume as an iSCSI target (attaches it on this host if needed)."""
    secret = _read_secret(chap_secret_file) if chap_secret_file else None
    st = common.get_storage(ctx)
    exp = st.exports.export(
        volume, initiators=initiator or None, chap=chap, chap_username=chap_user, chap_secret=secret, portal=portal
    )
    common.emit(exp, as_json, _show_export)


def volume_unexport(
    ctx: typer.Context, volume: Annotated[str, typer.Argument(help="Volume name or id.")], as_json: common.JsonOpt = False
) -> None:
    """Remove a volume's iSCSI target (and detach it if the export attached it)."""
    common.emit(common.get_storage(ctx).exports.unexport(volume), as_json, _show_export)


def volume_connection_info(
    ctx: typer.Context,
    volume: Annotated[str, typer.Argument(help="Volume name or id.")],
    show_secret: ShowSecretOpt = False,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write the JSON to this file (mode 0600) instead.")
    ] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Print os-brick ISCSIConnector properties for the volume (secret hidden unless --show-secret)."""
    info = common.get_storage(ctx).exports.connection_info(volume, include_secret=show_secret)
    if output is not None:
        _write_private(output, json.dumps(info, indent=2) + "\n")
        common.emit({"written": str(output)}, as_json, lambda d: common.console.print(f"wrote {d['written']}"))
        return
    common.emit(info, as_json, common.print_record)


def export_list(ctx: typer.Context, as_json: common.JsonOpt = False) -> None:
    """List exported volumes."""
    common.emit(common.get_storage(ctx).exports.list(), as_json, _show_exports)


def _show_report(r: ReconcileReport) -> None:
    common.print_record(r.model_dump(mode="json"))


def export_reconcile(
    ctx: typer.Context,
    remove_strays: Annotated[bool, typer.Option("--remove-strays", help="Remove our-prefix targets the catalog does not know.")] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Start the target if needed and re-create missing exports from the catalog; report strays."""
    report = common.get_storage(ctx).exports.reconcile(remove_strays=remove_strays)
    common.emit(report, as_json, _show_report)
    if report.failed:
        raise typer.Exit(5)


def export_stop(ctx: typer.Context, as_json: common.JsonOpt = False) -> None:
    """Take every target offline, remove them and stop the target service (the catalog keeps the exports)."""
    common.get_storage(ctx).exports.stop()
    common.emit({"stopped": True}, as_json, lambda d: common.console.print("stopped"))


ApiOpt = Annotated[Optional[str], typer.Option(
    "--api", envvar="STORAGE_API_URL", help="Cinder v3 endpoint of the storage API, e.g. http://198.18.0.2:8776/v3.")]
TokenFileOpt = Annotated[Optional[Path], typer.Option(
    "--token-file", envvar="STORAGE_API_TOKEN_FILE", help="File holding an operator token of that API.")]
StateDirOpt = Annotated[Optional[Path], typer.Option(
    "--state-dir", help="Where attach keeps what detach needs (default /run/storage/attachments).")]


def _client(api: str | None, token_file: Path | None) -> Any:
    from storage.host.compute import CinderClient

    if not api or token_file is None:
        raise InvalidInput("attaching through the API needs --api URL and --token-file FILE "
                           "(or STORAGE_API_URL and STORAGE_API_TOKEN_FILE)", field="api")  # fmt: skip
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read token file {str(token_file)!r}: {exc.strerror}", field="token_file") from None
    if not token or len(token) > 512:
        raise InvalidInput(f"token file {str(token_file)!r} holds no token of at most 512 characters", field="token_file")
    return CinderClient(api, token)


def attach_cmd(
    volume: Annotated[Optional[str], typer.Argument(help="Volume name or id on the storage API (with --api).")] = None,
    info_file: Annotated[Optional[Path], typer.Option(
        "--connection-info", "-i", help="JSON file from `volume connection-info` (no API involved).")] = None,
    api: ApiOpt = None,
    token_file: TokenFileOpt = None,
    connector_from_host: Annotated[bool, typer.Option(
        "--connector-from-host", help="Send os-brick's connector properties of this host (the default).")] = True,
    connector_file: Annotated[Optional[Path], typer.Option(
        "--connector", help="A JSON file of os-brick connector properties instead of this host's.")] = None,
    instance: Annotated[Optional[str], typer.Option("--instance", help="Instance UUID to record in the attachment.")] = None,
    state_dir: StateDirOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Attach a volume on this host through os-brick; prints the local device path.

    With VOLUME, the way Nova does it through the storage API: reserve,
    initialize_connection with this host's os-brick connector (its iSCSI
    initiator gets the target and CHAP credentials), os-brick's ISCSIConnector
    logs in, attach records it. With --connection-info, from a connection
    info file alone.
    """
    from storage.host import attach

    if (volume is None) == (info_file is None):
        raise InvalidInput("give a VOLUME (attach through --api) or --connection-info FILE, not both", field="volume")
    if info_file is not None:
        result = attach.attach(_load_info(info_file))
        out: dict[str, Any] = {"path": result.path, "protocol": result.protocol, "device_info": result.device_info}
    else:
        from storage.host import compute

        client = _client(api, token_file)
        if connector_file is not None:
            connector = _load_json_object(connector_file, "connector")
        elif connector_from_host:
            connector = compute.connector_from_host(client.url)
        else:
            raise InvalidInput("--no-connector-from-host needs --connector FILE", field="connector")
        out = compute.attach_volume(client, volume, connector, state_dir=state_dir, instance_uuid=instance)  # type: ignore[arg-type]
    common.emit(out, as_json, lambda d: common.console.print(d["path"], highlight=False))


def detach_cmd(
    volume: Annotated[Optional[str], typer.Argument(help="Volume attached with `storagectl attach VOLUME`.")] = None,
    info_file: Annotated[Optional[Path], typer.Option(
        "--connection-info", "-i", help="JSON file from `volume connection-info` (no API involved).")] = None,
    api: ApiOpt = None,
    token_file: TokenFileOpt = None,
    state_dir: StateDirOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Detach a volume attached with `storagectl attach`."""
    from storage.host import attach

    if (volume is None) == (info_file is None):
        raise InvalidInput("give a VOLUME (detach through --api) or --connection-info FILE, not both", field="volume")
    if info_file is not None:
        attach.detach(_load_info(info_file))
        out: dict[str, Any] = {"detached": True}
    else:
        from storage.host import compute

        out = compute.detach_volume(_client(api, token_file), volume, state_dir=state_dir)  # type: ignore[arg-type]
    common.emit(out, as_json, lambda d: common.console.print("detached"))


def _load_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        if path.stat().st_size > 64 * 1024:
            raise InvalidInput(f"{what} file {str(path)!r} is larger than 64 KiB", field=what)
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} file {str(path)!r}: {exc.strerror}", field=what) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} file {str(path)!r} is not JSON: {exc.msg} at line {exc.lineno}", field=what) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{what} file {str(path)!r} does not hold a JSON object", field=what)
    return data


def register(app: typer.Typer) -> None:
    """Add volume export commands to the `volume` group, the `export` group and attach/detach."""
    from storage.cli.volume import volume_app

    volume_app.command("export")(volume_export)
    volume_app.command("unexport")(volume_unexport)
    volume_app.command("connection-info")(volume_connection_info)
    export_app.command("list")(export_list)
    export_app.command("reconcile")(export_reconcile)
    export_app.command("stop")(export_stop)
    app.add_typer(export_app, name="export")
    app.command("attach")(attach_cmd)
    app.command("detach")(detach_cmd)
