"""storagectl token create|list|revoke, storagectl serve, storagectl job list|show|cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Optional

import typer

from storage.bounds import TOKEN_EXPIRY_DAYS_MAX
from storage.cli import common
from storage.errors import InvalidInput
from storage.units import format_size

token_app = typer.Typer(help="Bearer tokens of the admin API.", no_args_is_help=True)
job_app = typer.Typer(help="Long operations run by the API (backup, restore, verify, wipe, gc).", no_args_is_help=True)

# uvicorn's default of 5 s closes idle keep-alive connections so early that a busy client racing
# its next request onto a just-closed connection gets a read error; admin clients are few.
KEEP_ALIVE_SECONDS = 30

TOKEN_COLUMNS = ["ID", "Name", "Role", "Created", "Expires", "Revoked", "Last used"]
JOB_COLUMNS = ["ID", "Kind", "Target", "State", "Done", "Total", "%", "Created"]


def _token_row(t) -> list:  # type: ignore[no-untyped-def]
    return [t.id, t.name, t.role, t.created_at.isoformat(timespec="seconds"),
            t.expires_at.isoformat(timespec="seconds") if t.expires_at else "never",
            t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "",
            t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else ""]


def _job_row(j) -> list:  # type: ignore[no-untyped-def]
    return [j.id, j.kind, j.target, j.state.value, format_size(j.bytes_done),
            format_size(j.bytes_total) if j.bytes_total else "", j.percent, j.created_at.isoformat(timespec="seconds")]


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="admin, operator or reader")],
    name: Annotated[Optional[str], typer.Option("--name", help="A label for the token")] = None,
    expires_days: Annotated[Optional[int], typer.Option("--expires-days", min=1, max=TOKEN_EXPIRY_DAYS_MAX, help=f"Expire after N days (1-{TOKEN_EXPIRY_DAYS_MAX})")] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Create a token. Its secret is printed once and never stored."""
    st = common.get_storage(ctx)
    info, secret = st.tokens.create(role, name=name, expires=timedelta(days=expires_days) if expires_days else None)
    if as_json:
        common.print_json({"token": info, "secret": secret})
        return
    common.print_record({"id": info.id, "name": info.name, "role": info.role, "expires": info.expires_at or "never"})
    common.console.print("Bearer token (shown once; store it now):", style="bold")
    common.console.print(secret, highlight=False, markup=False, soft_wrap=True)


@token_app.command("list")
def token_list(ctx: typer.Context, as_json: common.JsonOpt = False) -> None:
    """List tokens (never their secrets)."""
    tokens = common.get_storage(ctx).tokens.list()
    common.emit(tokens, as_json, lambda ts: common.print_table([_token_row(t) for t in ts], TOKEN_COLUMNS))


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: str, as_json: common.JsonOpt = False) -> None:
    """Revoke a token; requests with it fail with 401 from then on."""
    info = common.get_storage(ctx).tokens.revoke(token_id)
    common.emit(info, as_json, lambda t: common.print_record(dict(zip(TOKEN_COLUMNS, _token_row(t)))))


@job_app.command("list")
def job_list(
    ctx: typer.Context,
    state: Annotated[Optional[str], typer.Option(help="queued, running, succeeded, failed, cancelled, interrupted")] = None,
    kind: Annotated[Optional[str], typer.Option(help="backup, restore, verify, wipe, gc...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: common.JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    jobs = common.get_storage(ctx).jobs.list(state=state, kind=kind, limit=limit)
    common.emit(jobs, as_json, lambda js: common.print_table([_job_row(j) for j in js], JOB_COLUMNS))


@job_app.command("show")
def job_show(ctx: typer.Context, job_id: str, as_json: common.JsonOpt = False) -> None:
    """Show one job with its progress, result or error."""
    job = common.get_storage(ctx).jobs.get(job_id)
    common.emit(job, as_json, lambda j: common.print_record(common.to_jsonable(j)))


@job_app.command("cancel")
def job_cancel(ctx: typer.Context, job_id: str, as_json: common.JsonOpt = False) -> None:
    """Ask a queued or running job to stop (the process running it stops at its next progress step)."""
    job = common.get_storage(ctx).jobs.cancel(job_id)
    common.emit(job, as_json, lambda j: common.print_record(common.to_jsonable(j)))


def serve(
    ctx: typer.Context,
    host: Annotated[Optional[str], typer.Option(help="Address to bind (default from config: 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Port (default from config: 8776)")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Worker processes")] = None,
    ssl_certfile: Annotated[Optional[str], typer.Option("--ssl-certfile", help="TLS certificate (PEM)")] = None,
    ssl_keyfile: Annotated[Optional[str], typer.Option("--ssl-keyfile", help="TLS private key (PEM)")] = None,
    log_level: Annotated[Optional[str], typer.Option(help="Log level: debug, info, warning, error (default: [logging] level, else info)")] = None,
    drain: Annotated[Optional[bool], typer.Option(
        "--drain/--undrain",
        help="Do not serve: create (--drain) or remove (--undrain) the drain file (api.drain_file), so every "
             "replica on this data dir answers GET /healthcheck with 503 (or 200 again). SIGUSR1/SIGUSR2 drain one process.",
    )] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Run the admin HTTP API (and the Cinder v3 subset) with uvicorn.

    SIGTERM stops accepting connections, lets requests in flight finish (at most
    api.graceful_shutdown_seconds) and exits 0.
    """
    import os
    import signal

    import uvicorn

    state = ctx.find_root().obj
    config_path = getattr(state, "config", None)
    if drain is not None:  # settings only: draining must work while the catalog is down
        from storage.config import load_settings

        _set_drain(load_settings(config_path), drain, as_json)
        return
    settings = common.get_storage(ctx).settings
    api = settings.api
    certfile, keyfile = ssl_certfile or api.tls_cert, ssl_keyfile or api.tls_key
    if bool(certfile) != bool(keyfile):
        raise InvalidInput("TLS needs both --ssl-certfile and --ssl-keyfile (or api.tls_cert and api.tls_key)", field="ssl")
    if config_path:
        os.environ["STORAGE_CONFIG"] = os.path.abspath(config_path)
    elif settings.config_file:
        os.environ["STORAGE_CONFIG"] = str(settings.config_file)
    st = common.get_storage(ctx)
    st.catalog.engine  # noqa: B018 - create or migrate the catalog here, once, not in N racing workers
    st.close()  # each server worker opens its own
    bind = {"host": host or api.host, "port": port or api.port, "workers": workers or api.workers, "tls": bool(certfile)}
    if as_json:
        common.print_json({"serving": bind})
    level = _serve_logging(settings, log_level)
    # uvicorn re-raises the SIGTERM it stopped for once requests in flight are done, which would end
    # the process "killed by SIGTERM"; a graceful stop exits 0 instead (also before uvicorn's handlers are in).
    signal.signal(signal.SIGTERM, _exit_zero)
    from storage.logs import context

    with context.detached():  # each request binds its own id (api/request_id.py), not this command's
        uvicorn.run(
            "api.main:app_from_env", factory=True, host=bind["host"], port=bind["port"], workers=bind["workers"],
            ssl_certfile=certfile, ssl_keyfile=keyfile, log_level=level, timeout_graceful_shutdown=api.graceful_shutdown_seconds,
            timeout_keep_alive=KEEP_ALIVE_SECONDS, log_config=None, access_log=False,  # ours: storage.logs, api/request_id.py
        )


def _serve_logging(settings, log_level: str | None) -> str:  # type: ignore[no-untyped-def]
    """Log as the API server (storage.logs); the chosen format and level go to the worker
    processes through STORAGE_LOGGING__* (api.main.app_from_env configures each the same way)."""
    import os

    from storage.logs import setup

    fmt, level = setup.configure(
        fmt=setup.configured_option("format"), level=log_level, service="storage-api", host=settings.host_name,
        config_format=settings.logging.format, config_level=settings.logging.level, daemon=True,
    )  # fmt: skip
    os.environ["STORAGE_LOGGING__FORMAT"], os.environ["STORAGE_LOGGING__LEVEL"] = fmt, level
    return level


def _exit_zero(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _set_drain(settings, drain: bool, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    from api.routes.health import drain_file

    path = drain_file(settings)
    if drain:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    else:
        path.unlink(missing_ok=True)
    if as_json:
        common.print_json({"draining": drain, "drain_file": str(path)})
    else:
        common.console.print(f"{'draining' if drain else 'not draining'}: {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(token_app, name="token")
    app.add_typer(job_app, name="job")
    app.command("serve")(serve)
