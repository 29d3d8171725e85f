"""`storagectl`: the admin and cron command line. Every group lives in its own module,
imported only when its command runs (storage/cli/lazy.py), so `--help` starts fast."""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Annotated, Optional

import typer
from typer._click import exceptions as _vendored

from storage.cli import common
from storage.cli.lazy import LazyGroup
from storage.errors import EXIT_CODES, StorageError


def _click_classes() -> tuple[tuple[type[BaseException], ...], ...]:
    """(Exit, Abort, ClickException) classes of typer's vendored click and, once something
    (uvicorn, os-brick) has imported it, of click itself: an exception can only be one of
    click's if click was imported, so `--help` need not import it."""
    exits: tuple[type[BaseException], ...] = (typer.Exit,)
    aborts: tuple[type[BaseException], ...] = (typer.Abort,)
    errors: tuple[type[BaseException], ...] = (_vendored.ClickException,)
    click = sys.modules.get("click")
    if click is not None:
        exits, aborts, errors = exits + (click.exceptions.Exit,), aborts + (click.exceptions.Abort,), errors + (click.ClickException,)
    return exits, aborts, errors


app = typer.Typer(
    name="storagectl",
    help="Volumes, object stores, backups and policies on this host.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Optional[str], typer.Option("--config", "-c", envvar="STORAGE_CONFIG", help="Path of the TOML config file.")
    ] = None,
    log_format: Annotated[
        Optional[str],
        typer.Option("--log-format", help="Log lines on stderr: json (ECS, one object per line) or text. "
                     "Default: [logging] format, else json when stderr is not a terminal (docs/logging.md)."),
    ] = None,
) -> None:
    from storage.logs import setup

    setup.configure(fmt=log_format, service="storagectl")
    ctx.obj = common.State(config)
    ctx.call_on_close(ctx.obj.close)


@app.command("exit-codes")
def exit_codes(as_json: common.JsonOpt = False) -> None:
    """List the exit codes storagectl uses."""
    common.emit(
        {str(k): v for k, v in EXIT_CODES.items()},
        as_json,
        lambda d: common.print_table(d.items(), ["Code", "Meaning"]),
    )


def main(argv: list[str] | None = None) -> int:
    # Looking for pydantic plugins scans every installed package's entry points (~40 ms of each
    # command); storage uses none. Set PYDANTIC_DISABLE_PLUGINS= (empty) to have them loaded.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    from storage.logs import context

    # one id per command (or the caller's STORAGE_REQUEST_ID): every line of this run carries it as trace.id
    with context.bind(trace_id=context.valid_request_id(os.environ.get("STORAGE_REQUEST_ID")) or context.new_request_id()):
        code = _run(args, as_json)
    if argv is None:  # the process's own command (the console script), not a caller's main([...])
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process at once once the command is done: flush, run the atexit handlers (log
    handlers, coverage, temp files), then skip the interpreter's teardown of every module and
    object, which cost about 0.25 CPU-s after a `backup create` (docs/benchmarks.md). Returns
    (the ordinary exit follows) while any non-daemon thread other than this one still runs,
    since the ordinary exit would wait for it."""
    import atexit
    import threading

    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: the ordinary exit reports it as it always did
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def _run(args: list[str], as_json: bool) -> int:
    try:
        # With standalone_mode=False, click returns (not raises) the code of a typer.Exit.
        result = app(args=args, prog_name="storagectl", standalone_mode=False)
        if isinstance(result, int) and not isinstance(result, bool):
            return result
    except StorageError as exc:
        try:
            common.fail(exc, as_json)
        except typer.Exit as ex:
            return ex.exit_code
    except KeyboardInterrupt:
        common.err_console.print("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1, no traceback
        exit_, abort, click_error = _click_classes()
        if isinstance(exc, exit_):
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, abort):
            common.err_console.print("aborted")
            return 130
        if isinstance(exc, click_error):  # typer >= 0.20 vendors click: its usage errors are not click's
            return _click_error(exc, as_json)
        return _unexpected(exc, as_json)
    return 0


def _click_error(exc: Exception, as_json: bool) -> int:
    """A usage error (unknown option, missing argument, value out of range): one line naming the
    problem and where the help is, exit 2 (click's own code)."""
    message = " ".join(str(getattr(exc, "format_message", lambda: str(exc))()).split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    if as_json:
        sys.stdout.write(json.dumps({"error": {"code": "usage", "message": message}}) + "\n")
    common.err_console.print(f"error: {message}", highlight=False, markup=False)
    return int(getattr(exc, "exit_code", 2))


def _unexpected(exc: Exception, as_json: bool) -> int:
    """An error no module typed: one line naming its type (exit 1, "internal error"); the traceback
    only with STORAGE_DEBUG=1. Messages of OS errors name the path, never a secret."""
    if os.environ.get("STORAGE_DEBUG") == "1":
        traceback.print_exc()
    message = f"internal error ({type(exc).__name__}): {str(exc)[:300]}"
    if as_json:
        sys.stdout.write(json.dumps({"error": {"code": "internal_error", "message": message}}) + "\n")
    common.err_console.print(f"error: {message}", highlight=False, markup=False)
    return 1


if __name__ == "__main__":
    sys.exit(main())
