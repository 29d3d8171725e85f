"""The guest rootfs: a debootstrap'ed Debian bookworm (python3, lvm2, thin-provisioning-tools,
open-iscsi, ...) plus the project's Python dependencies in /opt/venv, as an ext4 image.

The dependencies are the ones installed in the project venv (.venv), copied into a venv made
for the guest's own python3 (``python3 -m venv --without-pip``); this needs the same CPython
minor version on both sides (3.11 in bookworm), which the build checks. The project source is
not in the image: it comes in through a read-only 9p share at run time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vmlib.cache import PROJECT_ROOT, VM_DIR, cache_root, file_inputs, input_key, prune_siblings
from vmlib.initramfs import read_module_list

PACKAGES_FILE = VM_DIR / "guest-packages.txt"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Never copied into the guest venv: packaging tools and the host's editable install.
EXCLUDE_PREFIXES = ("pip", "setuptools", "_distutils_hack", "distutils-precedence", "__editable__", "storage-")


class RootfsError(RuntimeError):
    pass


def host_venv() -> Path:
    return Path(os.environ.get("STORAGE_VM_HOST_VENV") or PROJECT_ROOT / ".venv")


def venv_python_version(venv: Path) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def venv_freeze(venv: Path) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable", "--all"],
        capture_output=True, text=True, check=True,
    )
    return out.stdout


def copied_entries(names: list[str]) -> list[str]:
    """The site-packages entries that go into the guest venv (pure)."""
    return sorted(n for n in names if not n.startswith(EXCLUDE_PREFIXES) and n != "__pycache__")


def image_size_bytes(tree_bytes: int) -> int:
    """ext4 image size for a tree: 30 % headroom plus 1 GiB of scratch space for tests (ext4,
    unlike the guest's tmpfs /tmp, has user xattrs), rounded to 64 MiB (pure; the file is sparse)."""
    raw = int(tree_bytes * 1.3) + 2**30
    return -(-raw // (64 * 2**20)) * (64 * 2**20)


def rootfs_key(venv: Path) -> str:
    return input_key(
        SUITE,
        file_inputs(PACKAGES_FILE, Path(__file__)),
        venv_python_version(venv),
        venv_freeze(venv),
    )


def _tree_bytes(root: Path) -> int:
    out = subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def ensure_rootfs(log=print) -> Path:  # type: ignore[no-untyped-def]
    venv = host_venv()
    target = cache_root() / f"rootfs-{rootfs_key(venv)}.img"
    if target.is_file():
        return target
    packages = read_module_list(PACKAGES_FILE.read_text())
    mirror = os.environ.get("STORAGE_VM_MIRROR", DEFAULT_MIRROR)
    log(f"vm: building rootfs ({SUITE}, {len(packages)} packages) with debootstrap")
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        root = Path(tmp) / "root"
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(root), mirror],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise RootfsError(f"debootstrap failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
        version = venv_python_version(venv)
        if not (root / "usr" / "bin" / f"python{version}").exists():
            raise RootfsError(f"the guest has no python{version}, the version of {venv}; the copied deps would not load")
        subprocess.run(["chroot", str(root), f"python{version}", "-m", "venv", "--without-pip", "/opt/venv"], check=True)
        src_site = venv / "lib" / f"python{version}" / "site-packages"
        dst_site = root / "opt" / "venv" / "lib" / f"python{version}" / "site-packages"
        for name in copied_entries(os.listdir(src_site)):
            src = src_site / name
            if src.is_dir():
                shutil.copytree(src, dst_site / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, dst_site / name)
        # Byte-compile now (natively): the guest runs with PYTHONDONTWRITEBYTECODE and compiling
        # these imports under TCG would cost about a minute per Python start.
        subprocess.run(
            ["chroot", str(root), f"python{version}", "-m", "compileall", "-q", "-j0", "/opt/venv/lib"],
            check=False, capture_output=True,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(root / junk, ignore_errors=True)
            (root / junk).mkdir(parents=True, exist_ok=True)
        (root / "etc" / "hostname").write_text("guest\n")
        size = image_size_bytes(_tree_bytes(root))
        partial = target.with_suffix(".partial")
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-L", "guestroot", "-E", "root_owner=0:0", "-d", str(root), str(partial), str(size // 1024) + "k"],
            check=True,
        )
        partial.rename(target)
    prune_siblings(target)
    log(f"vm: rootfs ready ({size // 2**20} MiB image)")
    return target


if __name__ == "__main__":  # pragma: no cover - manual use
    sys.exit(print(ensure_rootfs()))
