"""Where log lines go: ``configure()`` installs one handler on the root logger, writing to stderr.

Format: ``json`` (ECS, one object per line) or ``text``. Chosen, first that applies: the
``--log-format`` option, ``STORAGE_LOGGING__FORMAT``, the config's ``[logging] format``, else
``json`` when stderr is not a terminal (cron, systemd, a container: the lines go to a collector)
and ``text`` when it is. Level: ``--log-level``/``[logging] level``/``STORAGE_LOGGING__LEVEL``,
else ``info`` for JSON and for the servers (``serve``, ``agent``), ``warning`` for text in an
interactive CLI (a person reading a table does not want an "operation succeeded" line under it).

The decisions are pure (``choose_format``, ``choose_level``); ``configure`` applies them.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

FORMATS = ("json", "text")
LEVELS = ("debug", "info", "warning", "error", "critical")
SERVICES = ("storagectl", "storage-api", "storage-agent")
QUIET = {"alembic.runtime.plugins": logging.WARNING}


def choose_format(option: str | None, env: str | None, config: str | None, stderr_is_tty: bool) -> str:
    """The first of option, environment, config that is set; else json unless stderr is a terminal."""
    for value, where in ((option, "--log-format"), (env, "STORAGE_LOGGING__FORMAT"), (config, "[logging] format")):
        if value:
            return check_format(value, where)
    return "text" if stderr_is_tty else "json"


def check_format(value: str, where: str = "--log-format") -> str:
    from storage.errors import InvalidInput

    if value.lower() not in FORMATS:
        raise InvalidInput(f"{where} {value[:40]!r} is not accepted; accepted: {', '.join(FORMATS)}", field="log_format")
    return value.lower()


def choose_level(option: str | None, env: str | None, config: str | None, fmt: str, daemon: bool) -> str:
    for value, where in ((option, "--log-level"), (env, "STORAGE_LOGGING__LEVEL"), (config, "[logging] level")):
        if value:
            return check_level(value, where)
    return "info" if fmt == "json" or daemon else "warning"


def check_level(value: str, where: str = "--log-level") -> str:
    from storage.errors import InvalidInput

    if value.lower() not in LEVELS:
        raise InvalidInput(f"{where} {value[:40]!r} is not accepted; accepted: {', '.join(LEVELS)}", field="log_level")
    return value.lower()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is emitted (a test's capture, a redirect)."""

    storage_logs = True

    def __init__(self, fmt: str = "json", service: str = "storagectl", host: str = "") -> None:
        logging.Handler.__init__(self)
        self._spec = (fmt, service, host)

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is None:  # built on the first line: a command that logs nothing never imports it
            from storage.logs.ecs import EcsFormatter, TextFormatter

            fmt, service, host = self._spec
            self.setFormatter((EcsFormatter if fmt == "json" else TextFormatter)(service, host))
        return super().format(record)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


# What the last configure() chose, and which parts the command line or environment fixed
# (a config file read later changes only the others).
_state: dict[str, Any] = {}


def configure(
    *, fmt: str | None = None, level: str | None = None, service: str = "storagectl", host: str | None = None,
    config_format: str | None = None, config_level: str | None = None, daemon: bool = False,
) -> tuple[str, str]:  # fmt: skip
    """Install (or replace) this package's handler on the root logger; returns (format, level)."""
    env_format, env_level = os.environ.get("STORAGE_LOGGING__FORMAT"), os.environ.get("STORAGE_LOGGING__LEVEL")
    chosen = choose_format(fmt, env_format, config_format, _isatty())
    lvl = choose_level(level, env_level, config_level, chosen, daemon)
    host = host or _state.get("host") or socket.gethostname()
    _state.update(format=fmt, level=level, service=service, host=host, daemon=daemon, chosen=(chosen, lvl))
    handler = StderrHandler(chosen, service, host)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "storage_logs", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl.upper())
    for name, floor in QUIET.items():  # their info lines say nothing an operator needs
        logging.getLogger(name).setLevel(max(floor, root.level))
    return chosen, lvl


def apply_settings(settings: Any) -> None:
    """Once the config is read: its ``[logging]`` table and ``host_name`` (only when configure() ran:
    a library user's own logging setup is left alone)."""
    if not _state:
        return
    cfg = getattr(settings, "logging", None)
    configure(
        fmt=_state["format"], level=_state["level"], service=_state["service"], host=settings.host_name,
        config_format=getattr(cfg, "format", None), config_level=getattr(cfg, "level", None), daemon=_state["daemon"],
    )  # fmt: skip


def configured_option(name: str) -> str | None:
    """What the command line gave for ``format`` or ``level`` in the last configure() (None: not given)."""
    return _state.get(name)


def configured() -> tuple[str, str] | None:
    """(format, level) of the handler installed, or None when configure() never ran."""
    return _state.get("chosen")


def _isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
