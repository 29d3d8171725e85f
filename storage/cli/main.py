"""`storagectl`: the admin and cron command line. Every group lives in its own module."""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Annotated, Optional

import click
import typer

from storage.cli import common
from storage.errors import EXIT_CODES, StorageError

try:
    from typer._click.exceptions import ClickException as _VendoredClickException

    _VENDORED_CLICK_ERRORS: tuple[type[Exception], ...] = (_VendoredClickException,)
except ImportError:  # older typer uses click itself
    _VENDORED_CLICK_ERRORS = ()

app = typer.Typer(
    name="storagectl",
    help="Volumes, object stores, backups and policies on this host.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per command group; each exposes register(app).
GROUP_MODULES = [
    "storage.cli.volume",
    "storage.cli.snapshot",
    "storage.cli.inventory",
    "storage.cli.object",
    "storage.cli.backup",
    "storage.cli.policy",
    "storage.cli.api_admin",
    "storage.cli.export",
    "storage.cli.hosts",
    "storage.cli.apply",
]


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Optional[str], typer.Option("--config", "-c", envvar="STORAGE_CONFIG", help="Path of the TOML config file.")
    ] = None,
) -> None:
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


def _register_groups() -> None:
    import importlib

    for name in GROUP_MODULES:
        importlib.import_module(name).register(app)


_register_groups()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
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
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        common.err_console.print("aborted")
        return 130
    except click.ClickException as exc:
        return _click_error(exc, as_json)
    except _VENDORED_CLICK_ERRORS as exc:  # typer >= 0.20 vendors click: its usage errors are not click's
        return _click_error(exc, as_json)
    except KeyboardInterrupt:
        common.err_console.print("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1, no traceback
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
