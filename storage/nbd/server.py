"""The nbdkit process of an export: its command line (pure, table-tested), start, stop.

nbdkit runs in the foreground as our child with --exit-with-parent (a killed storagectl never
leaves an export behind) and --readonly; the plugin is configured by one spec file path, so
neither the command line nor nbdkit's messages hold a key or a store password.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from storage.errors import BackendError, InvalidInput, Unsupported

PLUGIN = Path(__file__).with_name("plugin.py")
DEFAULT_PORT = 10809
EXPORT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+@-]{0,127}")
INSTALL_HINT = "install the Debian packages nbdkit and nbdkit-plugin-python (scripts/apt-packages.txt)"


@dataclass(frozen=True)
class Listen:
    """Where the export listens: a TCP address and port, or a Unix socket path."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    socket: str | None = None
    tls_psk: str | None = None  # a psktool file (USER:HEXKEY lines): TLS required, PSK authentication

    def uri(self, export_name: str) -> str:
        """The NBD URI clients use (qemu-img, nbdinfo, nbd-client): nbd://HOST:PORT/NAME or
        nbd+unix:///NAME?socket=PATH (nbds... with TLS)."""
        scheme = "nbds" if self.tls_psk else "nbd"
        if self.socket:
            return f"{scheme}+unix:///{export_name}?socket={self.socket}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{export_name}"


def check_listen(host: str | None, port: int | None, socket_path: str | None, tls_psk: str | None = None) -> Listen:
    """Validate the listen options: an IP address (not a name) and a port 1-65535, or an
    absolute socket path (not both); a TLS-PSK file must be a regular file only its owner reads."""
    if tls_psk is not None:
        return replace(check_listen(host, port, socket_path), tls_psk=check_psk_file(tls_psk))
    if socket_path:
        if host is not None or port is not None:
            raise InvalidInput("give either --socket or --host/--port, not both", field="socket")
        if not socket_path.startswith("/") or len(socket_path) > 100 or "\0" in socket_path:
            raise InvalidInput(f"socket path {socket_path[:120]!r} is not accepted; accepted: an absolute path of at most 100 characters",
                               field="socket")
        return Listen(socket=socket_path)
    host = "127.0.0.1" if host is None else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidInput(f"listen address {host[:80]!r} is not accepted; accepted: an IPv4 or IPv6 address such as 127.0.0.1",
                           field="host") from None
    port = DEFAULT_PORT if port is None else port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInput(f"port {port!r} is not accepted; accepted: 1 to 65535", field="port")
    return Listen(host=host, port=port)


def check_psk_file(path: str) -> str:
    """The PSK file's absolute path; refused when missing, not a regular file, or readable by others."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidInput(f"TLS-PSK file {path[:200]!r} cannot be read ({exc.strerror}); accepted: a psktool file of "
                           "USER:HEXKEY lines, mode 0600", field="tls_psk") from None
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
        raise InvalidInput(f"TLS-PSK file {path[:200]!r} is not accepted; accepted: a regular file of mode 0600 "
                           f"(it has {oct(st.st_mode & 0o777)})", field="tls_psk")
    return os.path.abspath(path)


def check_export_name(name: str) -> str:
    if not isinstance(name, str) or not EXPORT_NAME_RE.fullmatch(name):
        raise InvalidInput(f"export name {str(name)[:140]!r} is not accepted; accepted: 1-128 letters, digits and . _ - : + @, "
                           "starting with a letter or digit", field="export_name")
    return name


def nbdkit_command(nbdkit: str, listen: Listen, pidfile: Path, spec_path: Path, *, threads: int = 8,
                   readonly: bool = True, plugin: Path = PLUGIN) -> list[str]:
    """Pure: the nbdkit command line (no secret: the plugin reads everything from spec_path);
    read-only for `backup serve`, read-write with the live-restore plugin."""
    cmd = [nbdkit, "--foreground", *(["--readonly"] if readonly else []), "--exit-with-parent",
           "--pidfile", str(pidfile), "--threads", str(threads)]
    if listen.tls_psk:
        cmd += ["--tls=require", f"--tls-psk={listen.tls_psk}"]
    if listen.socket:
        cmd += ["--unix", listen.socket]
    else:
        cmd += ["--ipaddr", listen.host, "--port", str(listen.port)]
    return cmd + ["python", str(plugin), f"spec={spec_path}"]


def python_version_of(dump: str) -> tuple[int, int] | None:
    """Pure: (major, minor) from `nbdkit python --dump-plugin` output (python_version=3.11.2)."""
    m = re.search(r"^python_version=(\d+)\.(\d+)", dump, re.M)
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.lru_cache(maxsize=1)
def find_nbdkit() -> str:
    """nbdkit's path, once its Python plugin is known to run this interpreter's minor version
    (the plugin imports this installation's compiled modules: blake3, zstandard, cryptography).
    Found once per process (a long-running API host serves many); a refusal is not remembered."""
    nbdkit = shutil.which("nbdkit") or ("/usr/sbin/nbdkit" if os.path.exists("/usr/sbin/nbdkit") else None)
    if nbdkit is None:
        raise Unsupported(f"nbdkit is not installed; {INSTALL_HINT}")
    proc = subprocess.run([nbdkit, "python", "--dump-plugin"], capture_output=True, text=True, timeout=30)
    version = python_version_of(proc.stdout)
    if proc.returncode != 0 or version is None:
        raise Unsupported(f"nbdkit's Python plugin is not installed; {INSTALL_HINT}")
    if version != sys.version_info[:2]:
        raise Unsupported(
            f"nbdkit's Python plugin embeds Python {version[0]}.{version[1]} but this program runs on "
            f"{sys.version_info[0]}.{sys.version_info[1]}; install storage in a Python {version[0]}.{version[1]} virtualenv"
        )
    return nbdkit


class NbdServer:
    """One nbdkit child: started, ready when its pidfile appears, stopped with SIGTERM."""

    def __init__(self, cmd: list[str], pidfile: Path, env: dict[str, str] | None = None,
                 on_line: Callable[[str], None] | None = None) -> None:
        self.cmd, self.pidfile = cmd, pidfile
        self.env = env
        self.on_line = on_line  # called with every line nbdkit writes to stderr (from the pump thread)
        self.proc: subprocess.Popen[bytes] | None = None
        self.messages: deque[str] = deque(maxlen=40)
        self._pump: threading.Thread | None = None

    def start(self, timeout: float = 60.0, echo: bool = True) -> None:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=self.env, start_new_session=True)
        self._pump = threading.Thread(target=self._copy_stderr, args=(echo,), name="nbdkit-stderr", daemon=True)
        self._pump.start()
        deadline = time.monotonic() + timeout
        while not self.pidfile.exists():
            if self.proc.poll() is not None:
                self._pump.join(timeout=2)
                raise BackendError(f"nbdkit exited with status {self.proc.returncode} before serving: {self.last_error()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BackendError(f"nbdkit did not start serving within {timeout:.0f} s: {self.last_error()}")
            time.sleep(0.05)

    def last_error(self) -> str:
        lines = [m for m in self.messages if m.strip()]
        wanted = [m for m in lines if "storage-nbd:" in m or "error" in m.lower()] or lines
        return " / ".join(wanted[-3:]) or "no message"

    def _copy_stderr(self, echo: bool) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.messages.append(line)
            if self.on_line is not None:
                self.on_line(line)
            if echo:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._pump is not None:
            self._pump.join(timeout=2)
