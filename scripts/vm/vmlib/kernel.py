"""Debian's kernel for the guest: fetched with ``apt-get download`` and unpacked with
``dpkg -x`` (never installed on the host); the uncompressed ``vmlinux`` (PVH entry) is
extracted from the bzImage because it boots about twice as fast under TCG."""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

from vmlib.cache import cache_root, input_key, prune_siblings

META_PACKAGE = "linux-image-amd64"
ELF_MAGIC = b"\x7fELF"
# Compressed payload magics inside a bzImage, as in the kernel's scripts/extract-vmlinux.
MAGICS: dict[str, bytes] = {
    "xz": b"\xfd7zXZ\x00",
    "gzip": b"\x1f\x8b\x08",
    "zstd": b"\x28\xb5\x2f\xfd",
    "lzma": b"\x5d\x00\x00\x00",
}


class KernelError(RuntimeError):
    pass


def kernel_package_name(depends_output: str) -> str:
    """The versioned image package from ``apt-cache depends linux-image-amd64`` output."""
    match = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)", depends_output)
    if not match:
        raise KernelError(
            f"no linux-image-*-amd64 dependency in `apt-cache depends {META_PACKAGE}` output; "
            "run `apt-get update` first"
        )
    return match.group(1)


def _decompress(kind: str, data: bytes) -> bytes:
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if kind == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside a compressed bzImage (tries every magic offset, like extract-vmlinux)."""
    for kind, magic in MAGICS.items():
        start = bzimage.find(magic)
        while start != -1:
            try:
                out = _decompress(kind, bzimage[start:])
            except Exception:  # noqa: BLE001 - a false magic match; try the next one
                out = b""
            if out.startswith(ELF_MAGIC):
                return out
            start = bzimage.find(magic, start + 1)
    raise KernelError("no compressed ELF kernel found in the bzImage (tried xz, gzip, zstd, lzma)")


def _resolve_package() -> str:
    override = os.environ.get("STORAGE_VM_KERNEL_PACKAGE")
    if override:
        return override
    out = subprocess.run(["apt-cache", "depends", META_PACKAGE], capture_output=True, text=True, check=False)
    return kernel_package_name(out.stdout)


class Kernel:
    """A cached kernel: the .deb, its release string and the extracted vmlinux."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.deb = directory / "kernel.deb"
        self.vmlinux = directory / "vmlinux"
        self.release = (directory / "release").read_text().strip()
        self.key = directory.name.rsplit("-", 1)[1]

    def unpack(self, dest: Path) -> Path:
        """Unpack the .deb into dest, run depmod on it; return the modules directory."""
        subprocess.run(["dpkg", "-x", str(self.deb), str(dest)], check=True)
        subprocess.run(["depmod", "-b", str(dest), self.release], check=True)
        return dest / "lib" / "modules" / self.release


def ensure_kernel(log=print) -> Kernel:  # type: ignore[no-untyped-def]
    package = _resolve_package()
    directory = cache_root() / f"kernel-{input_key(package)}"
    if (directory / "vmlinux").is_file():
        return Kernel(directory)
    log(f"vm: fetching {package} (apt-get download, not installed)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent) as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # apt's _apt user must be able to write the download
        subprocess.run(["apt-get", "download", "-q", package], cwd=work, check=True, capture_output=True)
        deb = next(work.glob("linux-image-*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(work / "x")], check=True)
        bzimage = next((work / "x" / "boot").glob("vmlinuz-*"))
        release = bzimage.name.removeprefix("vmlinuz-")
        stage = work / "out"
        stage.mkdir()
        (stage / "vmlinux").write_bytes(extract_vmlinux(bzimage.read_bytes()))
        (stage / "release").write_text(release + "\n")
        shutil.move(str(deb), stage / "kernel.deb")
        stage.rename(directory)
    prune_siblings(directory)
    return Kernel(directory)
