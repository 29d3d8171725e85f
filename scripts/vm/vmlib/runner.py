"""Boot the guest under TCG with one job and read back its output and exit code.

The job is a bash script written to the writable 9p share ``results``; the project tree is the
read-only share ``src`` (the guest's cwd). Scratch disks (sparse files) appear in the guest as
/dev/vdb, /dev/vdc, ... and are listed in ``$GUEST_DISKS``. The guest powers off when the job
ends; a guest that outlives ``timeout`` is killed.
"""

from __future__ import annotations

import os
import shlex
import string
import subprocess
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from vmlib.cache import PROJECT_ROOT, cache_root, exclusive
from vmlib.initramfs import ensure_initramfs
from vmlib.kernel import ensure_kernel
from vmlib.rootfs import ensure_rootfs

TIMEOUT_EXIT = 124  # like timeout(1): the guest did not finish in time
NO_RESULT_EXIT = 125  # the guest stopped without recording an exit code


@dataclass(frozen=True)
class GuestImages:
    vmlinux: Path
    initramfs: Path
    rootfs: Path
    kernel_release: str


@dataclass(frozen=True)
class GuestResult:
    exit_code: int
    output: str  # the job's stdout and stderr
    console: str  # the guest's serial console (kernel and guest-job messages)
    seconds: float
    results_dir: Path | None = None  # kept only when keep_results=True

    def __iter__(self):  # type: ignore[no-untyped-def]
        """Unpacks as ``exit_code, output = result``."""
        return iter((self.exit_code, self.output))

    def describe(self) -> str:
        """Everything useful to show when a guest job failed."""
        return (
            f"guest exit code {self.exit_code} after {self.seconds:.1f} s\n"
            f"--- job output ---\n{self.output[-20000:]}\n--- guest console (tail) ---\n{self.console[-4000:]}"
        )


def ensure_images(log=print) -> GuestImages:  # type: ignore[no-untyped-def]
    """Build (or find cached) kernel, initramfs and rootfs; serialised host-wide."""
    with exclusive("build"):
        kernel = ensure_kernel(log)
        initramfs = ensure_initramfs(kernel, log)
        rootfs = ensure_rootfs(log)
    return GuestImages(kernel.vmlinux, initramfs, rootfs, kernel.release)


def entry_points_txt(pyproject: dict) -> str:
    """entry_points.txt content for the project (pure), so storage.registry works in the guest."""
    project = pyproject.get("project", {})
    groups: dict[str, dict[str, str]] = dict(project.get("entry-points", {}))
    if project.get("scripts"):
        groups["console_scripts"] = project["scripts"]
    return "".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items()) + "\n"
        for group, entries in groups.items()
    )


def _write_dist_info(site: Path) -> None:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    project = pyproject.get("project", {})
    info = site / f"{project.get('name', 'storage')}-{project.get('version', '0')}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project.get('name', 'storage')}\nVersion: {project.get('version', '0')}\n"
    )
    (info / "entry_points.txt").write_text(entry_points_txt(pyproject))


def disk_names(count: int) -> list[str]:
    """Guest device names of the scratch disks: vdb, vdc, ... (vda is the rootfs)."""
    return [f"/dev/vd{string.ascii_lowercase[i + 1]}" for i in range(count)]


def qemu_command(
    images: GuestImages, results: Path, console: Path, disks: list[Path], *, smp: int, memory_mib: int
) -> list[str]:
    """The QEMU command line (pure): q35 under TCG, PVH vmlinux, no network device."""
    cmd = [
        "qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-cpu", os.environ.get("STORAGE_VM_CPU", "qemu64"),
        "-smp", str(smp), "-m", str(memory_mib),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", f"file:{console}",
        "-kernel", str(images.vmlinux), "-initrd", str(images.initramfs),
        "-append", "console=ttyS0 panic=-1 quiet loglevel=3 mitigations=off",
        "-drive", f"file={images.rootfs},if=virtio,format=raw,snapshot=on,cache=unsafe",
        "-virtfs", f"local,path={PROJECT_ROOT},mount_tag=src,security_model=none,readonly=on,id=src",
        "-virtfs", f"local,path={results},mount_tag=results,security_model=none,id=results",
    ]
    for disk in disks:
        cmd += ["-drive", f"file={disk},if=virtio,format=raw,cache=unsafe"]
    return cmd


def run_job(
    script: str,
    *,
    timeout: float = 600,
    disk_sizes: tuple[int, ...] = (4 * 2**30,),
    smp: int | None = None,
    memory_mib: int = 2048,
    keep_results: bool = False,
    log=print,  # type: ignore[no-untyped-def]
) -> GuestResult:
    """Boot a guest, run the bash script in it (cwd = project tree), return what it reported."""
    images = ensure_images(log)
    smp = smp or int(os.environ.get("STORAGE_VM_SMP", "1"))
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=cache_root()))
    results = workdir / "results"
    results.mkdir()
    _write_dist_info(results / "site")
    names = disk_names(len(disk_sizes))
    (results / "job.sh").write_text(f"export GUEST_DISKS={shlex.quote(' '.join(names))}\n{script}\n")
    disks = []
    for index, size in enumerate(disk_sizes):
        disk = workdir / f"disk{index}.raw"
        with open(disk, "wb") as fh:
            fh.truncate(size)
        disks.append(disk)
    console = workdir / "console.log"
    cmd = qemu_command(images, results, console, disks, smp=smp, memory_mib=memory_mib)
    started = time.monotonic()
    with exclusive("guest"):
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            qemu_out, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            qemu_out, _ = proc.communicate()
            timed_out = True
        except BaseException:  # interrupted (Ctrl-C, pytest-timeout): never leave the guest running
            proc.kill()
            proc.wait()
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
            raise
    seconds = time.monotonic() - started
    output = _read(results / "output.log")
    console_text = _read(console) + (("\n--- qemu ---\n" + qemu_out.decode(errors="replace")) if qemu_out else "")
    if timed_out:
        code = TIMEOUT_EXIT
        output += f"\n[host] guest killed after the {timeout:.0f} s timeout\n"
    elif (results / "exit_code").is_file():
        code = int((results / "exit_code").read_text().strip() or NO_RESULT_EXIT)
    else:
        code = NO_RESULT_EXIT
        output += f"\n[host] the guest stopped (qemu exit {proc.returncode}) without recording an exit code\n"
    for disk in disks:
        disk.unlink(missing_ok=True)
    if not keep_results:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return GuestResult(code, output, console_text, seconds, results if keep_results else None)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
