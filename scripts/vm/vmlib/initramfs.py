"""The guest initramfs: static busybox, the /init script and the kernel modules of modules.txt
with their dependencies, as an uncompressed newc cpio (boots faster under TCG than gzip)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from vmlib.cache import VM_DIR, cache_root, file_inputs, input_key, prune_siblings
from vmlib.kernel import Kernel

MODULES_FILE = VM_DIR / "modules.txt"
INIT_SCRIPT = VM_DIR / "init.sh"
JOB_SCRIPT = VM_DIR / "guest-job.sh"
BUSYBOX = Path("/bin/busybox")


class ModuleError(RuntimeError):
    pass


def read_module_list(text: str) -> list[str]:
    """Module names from modules.txt (comments and blank lines ignored)."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def normalize(name: str) -> str:
    return name.replace("-", "_")


def module_name(path: str) -> str:
    """'kernel/drivers/md/dm-thin-pool.ko' -> 'dm_thin_pool'."""
    base = path.rsplit("/", 1)[-1]
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return normalize(base)


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep -> {name: (path, [dependency paths])}."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        table[module_name(path)] = (path.strip(), deps.split())
    return table


def resolve_modules(wanted: list[str], modules_dep: str, builtin: str = "") -> list[str]:
    """Module paths to insmod in order (every dependency before its users, each once).

    Names built into the kernel (modules.builtin) are skipped; an unknown name raises.
    """
    table = parse_modules_dep(modules_dep)
    builtins = {module_name(p) for p in builtin.split()}
    by_path = {path: name for name, (path, _deps) in table.items()}
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in chain:
            raise ModuleError(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        path, deps = table[name]
        for dep in deps:
            visit(by_path.get(dep, module_name(dep)), chain + (name,))
        seen.add(name)
        order.append(path)

    for raw in wanted:
        name = normalize(raw)
        if name in table:
            visit(name, ())
        elif name not in builtins:
            raise ModuleError(f"kernel module {raw!r} is neither in modules.dep nor built in")
    return order


def initramfs_key(kernel: Kernel) -> str:
    return input_key(kernel.key, file_inputs(MODULES_FILE, INIT_SCRIPT, JOB_SCRIPT, BUSYBOX, Path(__file__)))


def ensure_initramfs(kernel: Kernel, log=print) -> Path:  # type: ignore[no-untyped-def]
    target = cache_root() / f"initramfs-{initramfs_key(kernel)}.cpio"
    if target.is_file():
        return target
    log("vm: building initramfs")
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        work = Path(tmp)
        moddir = kernel.unpack(work / "unpacked")
        order = resolve_modules(
            read_module_list(MODULES_FILE.read_text()),
            (moddir / "modules.dep").read_text(),
            (moddir / "modules.builtin").read_text(),
        )
        root = work / "root"
        dest_mod = root / "lib" / "modules" / kernel.release
        for rel in order:
            (dest_mod / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(moddir / rel, dest_mod / rel)
        for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            shutil.copy2(moddir / name, dest_mod / name)
        subprocess.run(["depmod", "-b", str(root), kernel.release], check=True)
        (root / "etc").mkdir()
        (root / "etc" / "modules.load").write_text("".join(f"{rel}\n" for rel in order))
        (root / "etc" / "kernel-release").write_text(kernel.release + "\n")
        (root / "bin").mkdir()
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        shutil.copy2(INIT_SCRIPT, root / "init")
        shutil.copy2(JOB_SCRIPT, root / "guest-job")
        (root / "init").chmod(0o755)
        (root / "guest-job").chmod(0o755)
        files = subprocess.run(["find", "."], cwd=root, check=True, capture_output=True).stdout
        partial = target.with_suffix(".partial")
        with open(partial, "wb") as out:
            subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=root, input=files, stdout=out, check=True)
        partial.rename(target)
    prune_siblings(target)
    return target
