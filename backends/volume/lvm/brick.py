"""os-brick's LVM class with its pitfalls worked around, all in this one module.

os-brick 7.x ``os_brick.local_dev.lvm.LVM`` pitfalls and what we do about each:

1. Its static helpers (``get_lv_info``, ``get_all_volume_groups``, ``get_all_physical_volumes``,
   ``get_lvm_version``) always go through privsep, even with an executor given. ``BrickLVM``
   overrides the three the class calls on itself with methods that use the instance's executor,
   and ``disable_privsep_daemon()`` runs anything left in-process when we are already root.
2. ``revert()`` passes a bare LV name to ``lvconvert --merge``, which fails; Cinder passes
   ``vg/snap``. ``BrickLVM.revert`` qualifies the name.
3. The command prefix (``env LC_ALL=C [LVM_SYSTEM_DIR=...]``) is a class-wide global that each
   constructor overwrites, and some commands (lvchange, lvremove, lvconvert, lvrename) are run
   without it. ``LvmExecutor`` drops whatever ``env`` prefix a command carries and runs every
   command with this instance's own environment: ``LC_ALL=C`` and its own ``LVM_SYSTEM_DIR``.
4. ``activate_lv(permanent=True)`` runs ``lvchange -a y -K -k n``, a combination LVM 2.03
   rejects ("Command does not accept option: --ignoreactivationskip"). ``BrickLVM.activate_lv``
   clears the activation-skip flag in its own ``lvchange -k n`` first, then activates.
5. Sizes come back as GiB strings rounded to two decimals. ``BrickLVM.get_lv_info`` reports
   sizes rounded *up* (so a thick snapshot sized from it is never smaller than its origin);
   exact byte sizes are read with ``lvs --units b --nosuffix`` (``names.LVS_ARGS``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from storage.errors import BackendError, Conflict, InsufficientCapacity, NotFound, StorageError

_privsep_disabled = False


def disable_privsep_daemon() -> None:
    """Run os-brick's privileged functions in-process (we are root; there is no privsep helper)."""
    global _privsep_disabled
    if not _privsep_disabled and os.geteuid() == 0:
        import os_brick.privileged

        os_brick.privileged.default.set_client_mode(False)
        _privsep_disabled = True


def strip_env_prefix(cmd: Sequence[str]) -> list[str]:
    """Drop a leading ``env K=V ...`` (os-brick's class-global prefix) from a command (pure)."""
    args = list(cmd)
    if args[:1] == ["env"]:
        args = args[1:]
        while args and "=" in args[0] and not args[0].startswith("-"):
            args = args[1:]
    return args


def lvm_environment(base: Mapping[str, str], lvm_conf: str | None) -> dict[str, str]:
    """The environment of every LVM command (pure): C locale, our own LVM_SYSTEM_DIR or none."""
    env = {k: v for k, v in base.items() if k != "LVM_SYSTEM_DIR" and not k.startswith("LC_")}
    env["LC_ALL"] = "C"
    env["LVM_SUPPRESS_FD_WARNINGS"] = "1"
    if lvm_conf:
        env["LVM_SYSTEM_DIR"] = os.path.dirname(os.path.abspath(lvm_conf))
    return env


class LvmExecutor:
    """The executor handed to os-brick: subprocess with this backend's environment."""

    def __init__(self, lvm_conf: str | None = None) -> None:
        self.lvm_conf = lvm_conf
        self.env = lvm_environment(os.environ, lvm_conf)

    def __call__(self, *cmd: str, **kwargs: Any) -> tuple[str, str]:
        from oslo_concurrency import processutils as putils

        args = strip_env_prefix(cmd)
        check = kwargs.get("check_exit_code", True)
        try:
            proc = subprocess.run(args, capture_output=True, text=True, env=self.env, check=False, stdin=subprocess.DEVNULL)
        except FileNotFoundError as exc:
            raise putils.ProcessExecutionError(exit_code=127, stderr=str(exc), cmd=" ".join(args)) from None
        allowed = [0] if check is True else ([] if check is False else list(check))
        if allowed and proc.returncode not in allowed:
            raise putils.ProcessExecutionError(
                exit_code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, cmd=" ".join(args)
            )
        return proc.stdout, proc.stderr

    def run(self, args: Sequence[str], what: str) -> str:
        """Run an LVM-related command ourselves; failures become storage errors."""
        from oslo_concurrency import processutils as putils

        try:
            return self(*args)[0]
        except putils.ProcessExecutionError as err:
            raise translate_error(what, err.stderr or err.description or "", err.exit_code) from None


def translate_error(what: str, stderr: str, exit_code: int | None = None) -> StorageError:
    """A storage error for a failed LVM command (pure): capacity, conflict, not found, or backend."""
    text = " ".join(line.strip() for line in (stderr or "").splitlines() if line.strip() and "WARNING" not in line)
    lowered = text.lower()
    if "insufficient free space" in lowered or "insufficient suitable" in lowered or "not enough" in lowered:
        return InsufficientCapacity(f"{what}: not enough space in the volume group ({text})")
    if "already exists" in lowered:
        return Conflict(f"{what}: already exists ({text})")
    if "in use" in lowered or "is open" in lowered or "open count" in lowered or "used by another" in lowered:
        return Conflict(f"{what}: the device is in use ({text})")
    if "not found" in lowered or "failed to find" in lowered:
        return NotFound(f"{what}: not found ({text})")
    return BackendError(f"{what} failed (exit {exit_code}): {text or 'no message'}")


def brick_error(what: str, exc: BaseException) -> StorageError:
    """Map whatever os-brick raised (ProcessExecutionError or BrickException) to a storage error."""
    stderr = getattr(exc, "stderr", None) or str(exc)
    return translate_error(what, stderr, getattr(exc, "exit_code", None))


def _gib_rounded_up(size_bytes: int) -> str:
    from backends.volume.lvm.names import gib_string_rounded_up

    return gib_string_rounded_up(size_bytes)


def make_brick_lvm(
    vg_name: str,
    *,
    lvm_type: str,
    executor: LvmExecutor,
    thin_pool: str | None = None,
    physical_volumes: list[str] | None = None,
) -> Any:
    """An os-brick LVM object for vg_name (creating the VG on physical_volumes if asked)."""
    disable_privsep_daemon()
    from os_brick.local_dev import lvm as brick_lvm

    class BrickLVM(brick_lvm.LVM):  # type: ignore[misc]
        def get_lv_info(self, root_helper: str, vg_name: str | None = None, lv_name: str | None = None) -> list[dict]:
            target = f"{vg_name}/{lv_name}" if vg_name and lv_name else vg_name
            args = ["lvs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|", "-o", "vg_name,lv_name,lv_size"]
            try:
                out, _ = self._execute(*(args + ([target] if target else [])), run_as_root=True)
            except Exception as exc:  # noqa: BLE001 - os-brick treats "not found" as an empty list
                if "not found" in (getattr(exc, "stderr", "") or "") or "Failed to find" in (getattr(exc, "stderr", "") or ""):
                    return []
                raise
            rows = []
            for line in out.splitlines():
                if line.strip():
                    vg, name, size = (p.strip() for p in line.split("|"))
                    rows.append({"vg": vg, "name": name, "size": _gib_rounded_up(int(size)), "size_bytes": int(size)})
            return rows

        def get_all_volume_groups(self, root_helper: str, vg_name: str | None = None) -> list[dict]:
            args = ["vgs", "--noheadings", "--nosuffix", "--units", "g", "--separator", ":", "-o", "name,size,free,lv_count,uuid"]
            out, _ = self._execute(*(args + ([vg_name] if vg_name else [])), run_as_root=True)
            groups = []
            for line in out.splitlines():
                if line.strip():
                    name, size, free, count, vg_uuid = (p.strip() for p in line.split(":"))
                    groups.append({"name": name, "size": float(size), "available": float(free), "lv_count": int(count), "uuid": vg_uuid})
            return groups

        def get_all_physical_volumes(self, root_helper: str, vg_name: str | None = None) -> list[dict]:
            args = ["pvs", "--noheadings", "--nosuffix", "--units", "g", "--separator", "|", "-o", "vg_name,name,size,free"]
            out, _ = self._execute(*args, run_as_root=True)
            pvs = []
            for line in out.splitlines():
                if line.strip():
                    vg, name, size, free = (p.strip() for p in line.split("|"))
                    if vg_name is None or vg == vg_name:
                        pvs.append({"vg": vg, "name": name, "size": float(size), "available": float(free)})
            return pvs

        def activate_lv(self, name: str, is_snapshot: bool = False, permanent: bool = False) -> None:
            if permanent:
                self._execute("lvchange", "-k", "n", f"{self.vg_name}/{self._mangle_lv_name(name)}",
                              root_helper=self._root_helper, run_as_root=True)
            super().activate_lv(name, is_snapshot=is_snapshot, permanent=False)

        def revert(self, snapshot_name: str) -> None:
            name = snapshot_name if "/" in snapshot_name else f"{self.vg_name}/{snapshot_name}"
            self._execute("lvconvert", "--merge", name, root_helper=self._root_helper, run_as_root=True)

    thin = lvm_type == "thin"
    if physical_volumes:
        try:
            executor("vgs", "--noheadings", "-o", "vg_name", vg_name)
            physical_volumes = None  # the VG exists already: use it as it is
        except Exception:  # noqa: BLE001 - not found: os-brick creates it on physical_volumes
            pass
    try:
        lvm = BrickLVM(
            vg_name,
            root_helper="",
            create_vg=bool(physical_volumes),
            physical_volumes=physical_volumes,
            lvm_type="default",  # the thin pool is handled below so its name is ours
            executor=executor,
            lvm_conf=executor.lvm_conf,
        )
        if thin:
            pool = thin_pool or f"{vg_name}-pool"
            if lvm.get_volume(pool) is None:
                lvm.create_thin_pool(pool)
            lvm.vg_thin_pool = pool
            lvm.activate_lv(pool)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - os-brick raises its own and oslo's types
        if type(exc).__name__ == "VolumeGroupNotFound":
            raise NotFound(f"LVM volume group {vg_name!r} does not exist; create it (vgcreate) or set physical_volumes") from None
        raise brick_error(f"opening LVM volume group {vg_name!r}", exc) from None
    return lvm
