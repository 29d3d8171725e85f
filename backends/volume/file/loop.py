"""Loop devices for the ``file`` backend: losetup wrappers and parsing (parsers are pure)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from storage.errors import BackendError, Unsupported


def run(cmd: list[str], *, timeout: float = 60) -> str:
    """Run a host tool; raise BackendError naming the command and its stderr on failure."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise Unsupported(f"{cmd[0]} is not installed on this host (needed for: {' '.join(cmd)})") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{' '.join(cmd)} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise BackendError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout


def check_loop_support() -> None:
    if shutil.which("losetup") is None:
        raise Unsupported("losetup (util-linux) is not installed; the file backend needs it to attach volumes")
    if not os.path.exists("/dev/loop-control"):
        raise Unsupported("/dev/loop-control is missing: this host has no loop device support")
    if os.geteuid() != 0:
        raise Unsupported("attaching loop devices needs root (run storagectl as root)")


def parse_losetup_json(text: str) -> list[dict[str, str]]:
    """[{'name': '/dev/loop0', 'back-file': '/pool/volumes/x.img', ...}] from `losetup --json`."""
    if not text.strip():
        return []
    data = json.loads(text)
    return [dict(d) for d in data.get("loopdevices", [])]


def strip_deleted(back_file: str) -> tuple[str, bool]:
    """losetup shows a removed backing file as 'path (deleted)'."""
    suffix = " (deleted)"
    if back_file.endswith(suffix):
        return back_file[: -len(suffix)], True
    return back_file, False


def list_loops() -> list[dict[str, str]]:
    return parse_losetup_json(run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE,DIO,SIZELIMIT,OFFSET"]))


def devices_for(path: Path) -> list[str]:
    """Loop devices whose backing file is ``path`` (like `losetup -j path`)."""
    if not path.exists():
        return []
    out = run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE", "--associated", str(path)])
    return sorted(d["name"] for d in parse_losetup_json(out))


def attach(path: Path, *, direct_io: str) -> str:
    """`losetup --find --show` with direct I/O when asked ('on'), tried ('auto') or not ('off')."""
    base = ["losetup", "--find", "--show"]
    if direct_io in ("on", "auto"):
        try:
            return run([*base, "--direct-io=on", str(path)]).strip()
        except BackendError:
            if direct_io == "on":
                raise
    return run([*base, str(path)]).strip()


def detach(device: str) -> None:
    flush(device)
    run(["losetup", "--detach", device])


def refresh_size(device: str) -> None:
    run(["losetup", "--set-capacity", device])


def flush(device: str) -> None:
    """Push the loop device's page cache down to the backing file."""
    try:
        fd = os.open(device, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def device_size(device: str) -> int:
    return int(run(["blockdev", "--getsize64", device]).strip())
