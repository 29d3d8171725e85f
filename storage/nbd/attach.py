"""Attach a served backup as a read-only kernel block device ``/dev/nbdN`` (``backup attach``).

Where the kernel has ``nbd``: a ``storagectl backup serve`` child (its own session, the export
on a Unix socket in ``<data_dir>/run/nbd/``, holding the repository's shared lock) and
``qemu-nbd --connect /dev/nbdN --read-only`` (qemu-utils) as the kernel's NBD client. The state
file ``<data_dir>/run/nbd/nbdN.json`` lets ``backup detach`` disconnect the device and stop that
very serve process (pid and start time). Where the kernel has no ``nbd`` (this development
host), attach refuses in one sentence and points to ``backup serve``.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from storage import owners
from storage.errors import BackendError, Busy, Conflict, InvalidInput, NotFound, Unsupported
from storage.paths import private_dir

if TYPE_CHECKING:
    import storage

DEVICE_RE = re.compile(r"/dev/nbd(\d{1,3})")
NO_NBD = ("this host's kernel has no nbd driver (no /sys/module/nbd and `modprobe nbd` failed), so a backup cannot be "
          "attached as /dev/nbdN here; serve it with `storagectl backup serve ID` and read it over nbd:// "
          "(qemu-img, qemu-io, nbdinfo) instead")


@dataclass(frozen=True)
class Attachment:
    device: str
    backup_id: str
    uri: str
    serve_pid: int
    serve_start: str
    read_only: bool = True


def kernel_has_nbd(sys_root: Path = Path("/sys")) -> bool:
    return (sys_root / "module" / "nbd").exists() or (sys_root / "block" / "nbd0").exists()


def ensure_kernel_nbd() -> None:
    if kernel_has_nbd():
        return
    modprobe = shutil.which("modprobe")
    if modprobe:
        subprocess.run([modprobe, "nbd"], capture_output=True, timeout=60)
    if not kernel_has_nbd():
        raise Unsupported(NO_NBD)


def free_device(sys_block: Path = Path("/sys/block")) -> str:
    """The lowest /dev/nbdN with no client connected (the kernel shows a pid file while one is)."""
    numbers = sorted(int(p.name[3:]) for p in sys_block.glob("nbd*") if p.name[3:].isdigit())
    for n in numbers:
        if not (sys_block / f"nbd{n}" / "pid").exists():
            return f"/dev/nbd{n}"
    raise Busy(f"every NBD device ({len(numbers)}) is in use; detach one (`storagectl backup detach /dev/nbdN`)")


def check_device(device: str) -> str:
    if not DEVICE_RE.fullmatch(device):
        raise InvalidInput(f"device {device[:80]!r} is not accepted; accepted: /dev/nbdN", field="device")
    return device


def run_dir(st: "storage.Storage") -> Path:
    return private_dir(Path(st.settings.data_dir) / "run" / "nbd")


def _storagectl() -> list[str]:
    exe = Path(sys.executable).parent / "storagectl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "storage.cli.main"]


def attach(st: "storage.Storage", backup_id: str, *, repository: str | None = None, key_file: str | None = None,
           device: str | None = None, timeout: float = 120.0) -> Attachment:
    if device is not None:
        check_device(device)
    ensure_kernel_nbd()
    qemu_nbd = shutil.which("qemu-nbd")
    if qemu_nbd is None:
        raise Unsupported("qemu-nbd is not installed; install the Debian package qemu-utils")
    device = check_device(device) if device else free_device()
    name = Path(device).name
    where = run_dir(st)
    state = where / f"{name}.json"
    if state.exists():
        raise Conflict(f"{device} is attached already (state {state}); `storagectl backup detach {device}` first")
    sock = where / f"{name}.sock"
    sock.unlink(missing_ok=True)
    cmd = _storagectl()
    if st.settings.config_file:
        cmd += ["-c", str(st.settings.config_file)]
    ident = ["--repository", repository, "--manifest", backup_id] if repository else [backup_id]
    cmd += ["backup", "serve", *ident, "--socket", str(sock), "--name", backup_id, "--json"]
    if key_file:
        cmd += ["--key-file", key_file]
    log = open(where / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    finally:
        log.close()
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()
    if not line:
        _stop(proc.pid, owners.process_start(proc.pid) or "")
        tail = (where / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise BackendError(f"serving backup {backup_id} for {device} failed: {' / '.join(tail) or 'no message'}")
    uri = json.loads(line)["uri"]
    att = Attachment(device, backup_id, uri, proc.pid, owners.process_start(proc.pid) or "")
    connect = subprocess.run([qemu_nbd, f"--connect={device}", "--read-only", "--format=raw", uri],
                             capture_output=True, text=True, timeout=timeout)
    if connect.returncode != 0:
        _stop(att.serve_pid, att.serve_start)
        raise BackendError(f"qemu-nbd could not connect {device}: {connect.stderr.strip()[-300:]}")
    fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(att), f)
    return att


def attachments(st: "storage.Storage") -> list[Attachment]:
    out = []
    for path in sorted((Path(st.settings.data_dir) / "run" / "nbd").glob("nbd*.json")):
        try:
            out.append(Attachment(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return out


def detach(st: "storage.Storage", target: str) -> Attachment:
    """Disconnect /dev/nbdN (or the device a backup id is attached at) and stop its serve process."""
    found = [a for a in attachments(st) if target in (a.device, a.backup_id)]
    if not found:
        raise NotFound(f"{target[:80]!r} is not attached; see `storagectl backup attach`")
    att = found[0]
    qemu_nbd = shutil.which("qemu-nbd")
    if qemu_nbd and Path(f"/sys/block/{Path(att.device).name}/pid").exists():
        done = subprocess.run([qemu_nbd, "--disconnect", att.device], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise BackendError(f"qemu-nbd could not disconnect {att.device}: {done.stderr.strip()[-300:]}")
    _stop(att.serve_pid, att.serve_start)
    name = Path(att.device).name
    for leftover in (f"{name}.json", f"{name}.sock"):
        (run_dir(st) / leftover).unlink(missing_ok=True)
    return att


def _stop(pid: int, start: str, timeout: float = 30.0) -> None:
    """SIGTERM the serve process if it is still the one we started (pid and start time)."""
    if owners.process_start(pid) != start or not start:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while owners.process_start(pid) == start and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
