"""The QEMU guest tier as pytest fixtures (plugin listed in tests/conftest.py).

- ``guest_images``: builds (or finds cached under .cache/vm/) the kernel, initramfs and rootfs.
- ``run_in_guest(command, timeout=600, disk_sizes=(4 GiB,))``: boots a fresh TCG guest, runs a
  shell command (str) or pytest with the given args (list) in the project tree, and returns a
  ``GuestResult`` that unpacks as ``(exit_code, output)``; ``.describe()`` adds the console.
- ``guest_suite``: runs every tests/guest/test_*.py once in one guest (one boot, one Python
  start) and returns a ``GuestSuite`` with per-file outcomes from the JUnit XML.

Only one guest runs at a time on the host (a lock under .cache/vm/), across pytest sessions.

When a session selects guest suite tests, they are moved to the end of the run and the suite's
guest starts in the background as soon as collection ends: TCG gives the guest one vCPU thread,
so it runs on one core beside the host tests instead of after them (about 11 minutes of CI time
saved). ``STORAGE_GUEST_PREFETCH=0`` turns that off.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

VM_DIR = Path(__file__).resolve().parents[1] / "scripts" / "vm"
GUEST_TESTS = Path(__file__).resolve().parent / "guest"
if str(VM_DIR) not in sys.path:
    sys.path.insert(0, str(VM_DIR))

from vmlib.runner import GuestImages, GuestResult, ensure_images, run_job  # noqa: E402

PYTEST_IN_GUEST = "python -m pytest -p no:cacheprovider"
SUITE_TIMEOUT = float(os.environ.get("STORAGE_GUEST_SUITE_TIMEOUT", "2400"))  # ~11 min + test_cinder_attach ~8.5 + test_nbd_live ~3.5


def guest_unavailable_reason() -> str | None:
    """Why the guest tier cannot run on this host, or None."""
    if os.geteuid() != 0:
        return "the guest tier needs root (debootstrap, chroot)"
    for tool in ("qemu-system-x86_64", "debootstrap", "cpio", "mkfs.ext4", "depmod", "apt-get"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/apt-packages.txt)"
    if not Path("/bin/busybox").exists():
        return "busybox-static is not installed (scripts/apt-packages.txt)"
    return None


def guest_pytest_script(args: Sequence[str]) -> str:
    return f"{PYTEST_IN_GUEST} {shlex.join(list(args))}"


@pytest.fixture(scope="session")
def guest_images() -> GuestImages:
    reason = guest_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return ensure_images(log=lambda msg: print(msg, file=sys.stderr))


RunInGuest = Callable[..., GuestResult]


@pytest.fixture(scope="session")
def run_in_guest(guest_images: GuestImages) -> RunInGuest:
    def run(
        command: str | Sequence[str],
        timeout: float = 600,
        disk_sizes: tuple[int, ...] = (4 * 2**30,),
        keep_results: bool = False,
    ) -> GuestResult:
        script = command if isinstance(command, str) else guest_pytest_script(command)
        return run_job(script, timeout=timeout, disk_sizes=disk_sizes, keep_results=keep_results, log=lambda m: None)

    return run


@dataclass
class GuestSuite:
    result: GuestResult
    # module ("tests.guest.test_x") -> {"passed": n, "failed": n, "error": n, "skipped": n}
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)  # module -> failure texts


def parse_junit(xml_text: str) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """Per-module outcome counts and failure messages from pytest's JUnit XML (pure)."""
    outcomes: dict[str, dict[str, int]] = {}
    failures: dict[str, list[str]] = {}
    root = ET.fromstring(xml_text)
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        parts = classname.split(".")
        module = ".".join(p for p in parts if not p[:1].isupper()) or classname
        counts = outcomes.setdefault(module, {"passed": 0, "failed": 0, "error": 0, "skipped": 0})
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = {"failure": "failed"}.get(child.tag, child.tag)
                if child.tag != "skipped":
                    failures.setdefault(module, []).append(
                        f"{case.get('name')}: {child.get('message', '')}\n{(child.text or '')[-3000:]}"
                    )
                else:
                    failures.setdefault(module, []).append(f"{case.get('name')} skipped: {child.get('message', '')}")
        counts[kind] += 1
    return outcomes, failures


def guest_test_modules() -> list[str]:
    """Every tests/guest/test_*.py, or only those named in $STORAGE_GUEST_ONLY (comma list)."""
    only = {n.strip().removesuffix(".py") for n in os.environ.get("STORAGE_GUEST_ONLY", "").split(",") if n.strip()}
    return sorted(f"tests.guest.{p.stem}" for p in GUEST_TESTS.glob("test_*.py") if not only or p.stem in only)


def suite_script(modules: Sequence[str]) -> str:
    """One pytest process per guest test file, so a file that crashes its process (or is
    killed) cannot hide the results of the others; JUnit XML per file under /results/junit."""
    lines = ["mkdir -p /results/junit", "rc=0"]
    for module in modules:
        path = module.replace(".", "/") + ".py"
        name = module.rsplit(".", 1)[-1]
        lines.append(f"echo '=== {path}'")
        lines.append(
            f"{PYTEST_IN_GUEST} -q -rfEs --junitxml=/results/junit/{name}.xml {shlex.quote(path)} || rc=1"
        )
    lines.append("exit $rc")
    return "\n".join(lines)


def run_suite_job() -> GuestResult:
    """Boot one guest and run every selected guest test file in it (8 GiB disks at /dev/vdb, /dev/vdc)."""
    ensure_images(log=lambda msg: print(msg, file=sys.stderr))
    return run_job(suite_script(guest_test_modules()), timeout=SUITE_TIMEOUT, disk_sizes=(8 * 2**30, 8 * 2**30),
                   keep_results=True, log=lambda m: None)


class _Background:
    """The suite job started at collection time, on a daemon thread (an interrupted session does not wait)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: GuestResult | None = None
        self.error: BaseException | None = None
        threading.Thread(target=self._run, name="guest-suite", daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = run_suite_job()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the fixture
            self.error = exc
        finally:
            self.done.set()

    def wait(self) -> GuestResult:
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


_prefetched: list[_Background] = []


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Guest tests run last; the guest suite starts now, in the background (see the module doc)."""
    guest = [item for item in items if {"guest_suite", "run_in_guest"} & set(getattr(item, "fixturenames", ()))]
    if not guest:
        return
    chosen = set(map(id, guest))
    items[:] = [item for item in items if id(item) not in chosen] + guest
    wants_suite = any("guest_suite" in getattr(item, "fixturenames", ()) for item in guest)
    prefetch = os.environ.get("STORAGE_GUEST_PREFETCH", "1") != "0" and not config.option.collectonly
    if wants_suite and prefetch and guest_unavailable_reason() is None:
        _prefetched.append(_Background())


@pytest.fixture(scope="session")
def guest_suite(run_in_guest: RunInGuest) -> GuestSuite:
    """All guest test files in one boot (started in the background at collection when possible)."""
    result = _prefetched.pop().wait() if _prefetched else run_suite_job()
    suite = GuestSuite(result)
    assert result.results_dir is not None
    for junit in sorted((result.results_dir / "junit").glob("*.xml")):
        outcomes, failures = parse_junit(junit.read_text())
        suite.outcomes.update(outcomes)
        suite.failures.update(failures)
    shutil.rmtree(result.results_dir.parent, ignore_errors=True)
    return suite
