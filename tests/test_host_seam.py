"""The shape of the code: the control plane / host seam and services built with their collaborators.

These read the source and the real LocalHost; they fail when a service takes the ``Storage``
facade again, when the control plane calls a volume or export driver past ``HostApi``, or when
``LocalHost`` does not implement every ``HostApi`` call.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import storage
from storage.config import ExportConfig, PoolConfig
from storage.errors import InvalidInput, NotFound
from storage.exports.setup import export_setup
from storage.host.api import HostApi
from storage.host.local import LocalHost

ROOT = Path(storage.__file__).resolve().parent
CONTROL_PLANE = ["volumes", "exports", "backup", "policy", "objects", "jobs", "auth", "catalog"]


def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_service_takes_the_storage_facade() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in _modules(*CONTROL_PLANE, "host")
        if "storage.service" in p.read_text() or '"Storage"' in p.read_text()
    ]  # fmt: skip
    assert offenders == []


@pytest.mark.parametrize("path", _modules(*CONTROL_PLANE), ids=lambda p: str(p.relative_to(ROOT)))
def test_control_plane_reaches_devices_only_through_the_host_api(path: Path) -> None:
    imports = _runtime_imports(path)
    drivers = sorted(m for m in imports if m.startswith(("backends.volume", "backends.export")))
    assert drivers == [], f"{path.name} imports device drivers at run time: {drivers}"
    text = path.read_text()
    for needle in ("VOLUME_BACKENDS", "EXPORT_BACKENDS", "export_backend"):
        assert needle not in text, f"{path.name} uses {needle}: device work goes through HostApi"
    if path.name != "check.py":  # the host-local reconcile reads the driver's own listing
        assert ".volume_backend(" not in text


def test_local_host_implements_every_call() -> None:
    assert not inspect.isabstract(LocalHost)
    calls = {n for n, v in vars(HostApi).items() if getattr(v, "__isabstractmethod__", False)}
    assert len(calls) >= 20 and calls <= set(dir(LocalHost))


def test_local_host_names_an_unconfigured_pool(tmp_path: Path) -> None:
    host = LocalHost({"p1": PoolConfig(driver="file", path=str(tmp_path))}, lambda: ("tgt", {}))
    with pytest.raises(NotFound, match="pool 'nope' is not configured; configured pools: p1"):
        host.check_pool("nope")
    caps = host.pool_capabilities("p1")
    assert caps["size_granularity"] == 1024 * 1024 and isinstance(caps["changed_ranges"], bool)
    usage = host.pool_usage("p1")
    assert set(usage) >= {"total_bytes", "free_bytes", "provisioned_bytes", "provisionable_bytes", "extra"}


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ({}, ("iqn.2026-11.host.storage", "127.0.0.1:3260", "127.0.0.1:3260", {})),
        ({"iqn_prefix": "iqn.2026-11.com.example", "advertise_portal": "198.18.0.5:3260", "control_port": 3261},
         ("iqn.2026-11.com.example", "127.0.0.1:3260", "198.18.0.5:3260", {"control_port": 3261})),
    ],
)
def test_export_setup(tmp_path: Path, extra: dict, want: tuple) -> None:
    setup = export_setup(ExportConfig(driver="tgt", portal="127.0.0.1:3260", **extra), tmp_path)
    prefix, listen, advertise, own = want
    assert (setup.iqn_prefix, setup.listen_portal, setup.advertise_portal) == (prefix, listen, advertise)
    assert setup.driver_options == {**own, "portal": listen, "state_dir": str(tmp_path / "exports")}
    assert setup.secrets_path == tmp_path / "secrets" / "export-chap.json"


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"iqn_prefix": "iqn.bad"}, "export iqn_prefix 'iqn.bad' is not accepted"),
        ({"advertise_portal": "nohost"}, "portal 'nohost' is not accepted"),
        ({"portal": "host:0"}, "portal 'host:0' is not accepted"),
    ],
)
def test_export_setup_refuses(tmp_path: Path, extra: dict, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        export_setup(ExportConfig(**extra), tmp_path)
