"""Our own `tgtd` instance: started in the foreground as a detached child, owned by PID file.

Each instance has its own control index (``tgtd -C N``, socket ``/var/run/tgtd/socket.N``)
and one portal, so it never touches a system tgtd on the default index or port 3260.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from backends.export.tgt.show import parse_portals
from storage.errors import BackendError, InvalidInput, Unsupported

log = logging.getLogger(__name__)

SECRET_FLAGS = ("--password",)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# Children started by this process, so they are reaped (no zombies) when they exit.
_children: dict[int, subprocess.Popen[bytes]] = {}


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line with the value after every secret flag replaced (for logs and errors)."""
    out: list[str] = []
    hide = False
    for arg in argv:
        out.append("***" if hide else arg)
        hide = arg in SECRET_FLAGS
    return out


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise Unsupported(f"{name} is not installed; install the Debian package 'tgt'", tool=name)
    return path


class Tgtadm:
    """Runs `tgtadm -C N --lld iscsi ...`; errors name the command without secrets."""

    def __init__(self, control_port: int, timeout: float = 30.0) -> None:
        self.control_port = control_port
        self.timeout = timeout

    def argv(self, *args: str) -> list[str]:
        return [tool("tgtadm"), "-C", str(self.control_port), "--lld", "iscsi", *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        log.debug("running %s", " ".join(redact_argv(argv)))
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BackendError(
                f"tgtadm timed out after {self.timeout:.0f}s: {' '.join(redact_argv(argv))}"
            ) from None
        if check and proc.returncode != 0:
            raise BackendError(
                f"tgtadm failed (exit {proc.returncode}): {' '.join(redact_argv(argv[1:]))}: "
                f"{proc.stderr.strip() or proc.stdout.strip()}",
                exit_status=proc.returncode,
            )
        return proc

    def answering(self) -> bool:
        try:
            return self.run("--mode", "system", "--op", "show", check=False).returncode == 0
        except BackendError:
            return False

    def portals(self) -> list[str]:
        return parse_portals(self.run("--mode", "portal", "--op", "show").stdout)


def parse_portal(portal: str) -> tuple[str, int]:
    host, sep, port = portal.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"portal {portal!r} is not accepted; accepted: HOST:PORT, e.g. 127.0.0.1:3260", field="portal")
    return host, int(port)


class TgtDaemon:
    """Start, find and stop one tgtd instance."""

    def __init__(self, control_port: int, portal: str, state_dir: Path) -> None:
        parse_portal(portal)
        self.control_port = control_port
        self.portal = portal
        self.state_dir = state_dir
        self.adm = Tgtadm(control_port)

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"tgtd-{self.control_port}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"tgtd-{self.control_port}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) and _comm(pid) == "tgtd" else None

    def start(self) -> int:
        """Start tgtd and wait until it answers on its control socket with exactly our portal."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [tool("tgtd"), "-f", "-C", str(self.control_port), "--iscsi", f"portal={self.portal}"]
        with open(self.log_file, "ab") as logf:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True, close_fds=True
            )
        _children[proc.pid] = proc
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                if self.adm.answering():  # another process started the same instance first
                    return self.pid() or 0
                raise BackendError(
                    f"tgtd -C {self.control_port} exited with status {proc.returncode}: {self._log_tail()}"
                )
            if self.adm.answering():
                break
            time.sleep(0.02)
        else:
            _terminate(proc.pid)
            raise BackendError(f"tgtd -C {self.control_port} did not answer within {START_TIMEOUT:.0f}s")
        portals = self.adm.portals()
        if portals != [self.portal]:
            # tgtd falls back to 0.0.0.0:3260 and [::]:3260 when it cannot bind the portal.
            self._shutdown(proc.pid)
            raise BackendError(
                f"tgtd could not listen on portal {self.portal} (it offered {', '.join(portals) or 'none'}); "
                f"is the port in use? {self._log_tail()}",
                portal=self.portal,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        log.info("started tgtd -C %s on %s (pid %s)", self.control_port, self.portal, proc.pid)
        return proc.pid

    def stop(self) -> None:
        """Ask tgtd to exit (targets must be gone already); kill it if it does not."""
        self._shutdown(self.pid())
        self.pid_file.unlink(missing_ok=True)
        if not self.adm.answering():  # tgtd leaves its control socket and lock file behind
            for suffix in ("", ".lock"):
                Path(f"/var/run/tgtd/socket.{self.control_port}{suffix}").unlink(missing_ok=True)

    def _shutdown(self, pid: int | None) -> None:
        if self.adm.answering():
            self.adm.run("--mode", "system", "--op", "delete", check=False)
        if pid is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            _terminate(pid)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(line for line in text.strip().splitlines()[-lines:])


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
            return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie of another parent is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _terminate(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 3
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _alive(pid):
            break
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=5)
