"""Pytest plugin: a real OpenStack Swift all-in-one on 127.0.0.1, once per test session.

``swift_server`` starts ``scripts/swift-aio.sh`` on free ports in a temp dir and yields a
``SwiftServer`` (auth URL, users, S3 endpoint and keys, ``stop_proxy()``/``start_proxy()``).
``swift_options``/``s3_options`` are store options for it (small segment/part sizes and
listing pages so tests cross those limits); ``objects_config`` is a config file with both
stores configured as ``swift`` and ``s3``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
AIO = ROOT / "scripts" / "swift-aio.sh"
SWIFT_VENV = ROOT / ".cache" / "swift-venv"
SEGMENT_SIZE = 256 * 1024
PAGE_SIZE = 7


@dataclass
class SwiftServer:
    dir: Path
    auth_url: str
    storage_url: str
    user: str  # account:user
    key: str
    reader_user: str
    reader_key: str
    s3_endpoint: str
    access_key: str
    secret_key: str
    region: str
    proxy_port: int

    def _run(self, command: str) -> None:
        subprocess.run([str(AIO), command, "--dir", str(self.dir)], check=True, timeout=120, capture_output=True)

    def stop_proxy(self) -> None:
        """Kill the proxy server (account/container/object servers keep running)."""
        self._run("proxy-stop")

    def start_proxy(self) -> None:
        """Start the proxy again on the same port and wait until it is healthy."""
        self._run("proxy-start")

    def _proxy_pid(self) -> int:
        return int(json.loads((self.dir / "state.json").read_text())["pids"]["proxy"])

    def freeze_proxy(self) -> None:
        """SIGSTOP the proxy: connections are still accepted (the kernel's backlog) but never answered.
        Only on a private server (``private_swift_server``): every other test would hang."""
        os.killpg(self._proxy_pid(), signal.SIGSTOP)

    def thaw_proxy(self) -> None:
        os.killpg(self._proxy_pid(), signal.SIGCONT)

    @property
    def swift_cli(self) -> Path:
        return SWIFT_VENV / "bin" / "swift"

    def cli_env(self) -> dict[str, str]:
        return {"ST_AUTH": self.auth_url, "ST_USER": self.user, "ST_KEY": self.key}


def _missing() -> str | None:
    if not (SWIFT_VENV / "bin" / "swift-proxy-server").exists():
        return f"Swift venv {SWIFT_VENV} missing (run scripts/swift-aio.sh install)"
    if shutil.which("memcached") is None:
        return "memcached missing (apt install memcached; Swift tempauth needs it)"
    return None


@pytest.fixture(scope="session")
def swift_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftServer]:
    yield from _aio(tmp_path_factory, "swift-aio")


@pytest.fixture(scope="module")
def private_swift_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftServer]:
    """A Swift all-in-one of this module alone, for tests that freeze or break it."""
    yield from _aio(tmp_path_factory, "swift-aio-private")


def _aio(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[SwiftServer]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp(name)
    # Devices on tmpfs when there is one: Swift fsyncs every object, slow on a busy disk.
    shm = Path("/dev/shm")
    devices = Path(tempfile.mkdtemp(prefix="swift-aio-", dir=shm)) if shm.is_dir() else base / "devices"
    out = subprocess.run(
        [str(AIO), "start", "--dir", str(base), "--devices", str(devices), "--json"],
        check=False, timeout=180, capture_output=True, text=True,
    )
    if out.returncode != 0:
        subprocess.run([str(AIO), "stop", "--dir", str(base)], check=False, timeout=60)
        shutil.rmtree(devices, ignore_errors=True)
        pytest.fail(f"swift all-in-one did not start: {out.stderr[-2000:]}")
    state: dict[str, Any] = json.loads(out.stdout)
    server = SwiftServer(
        dir=base,
        auth_url=state["auth_url"],
        storage_url=state["storage_url"],
        user=f"{state['account']}:{state['user']}",
        key=state["key"],
        reader_user=f"{state['account']}:{state['reader_user']}",
        reader_key=state["reader_key"],
        s3_endpoint=state["s3_endpoint"],
        access_key=state["access_key"],
        secret_key=state["secret_key"],
        region=state["region"],
        proxy_port=int(state["ports"]["proxy"]),
    )
    try:
        yield server
    finally:
        try:
            server.thaw_proxy()
        except (OSError, ValueError, KeyError):
            pass
        subprocess.run([str(AIO), "stop", "--dir", str(base)], check=False, timeout=60)
        shutil.rmtree(devices, ignore_errors=True)


@pytest.fixture
def swift_options(swift_server: SwiftServer) -> dict[str, Any]:
    return {
        "auth_url": swift_server.auth_url,
        "user": swift_server.user,
        "key": swift_server.key,
        "segment_size": SEGMENT_SIZE,
        "listing_page_size": PAGE_SIZE,
        "retries": 6,
        "starting_backoff": 0.2,
        "max_backoff": 2,
        "timeout": 20,
    }


@pytest.fixture
def s3_options(swift_server: SwiftServer) -> dict[str, Any]:
    return {
        "endpoint": swift_server.s3_endpoint,
        "access_key": swift_server.access_key,
        "secret_key": swift_server.secret_key,
        "region": swift_server.region,
        "part_size": 5 * 1024 * 1024,
        "multipart_threshold": SEGMENT_SIZE,
        "listing_page_size": PAGE_SIZE,
    }


def _toml_table(name: str, values: dict[str, Any]) -> str:
    lines = [f"[object_stores.{name}]"]
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def objects_config(data_dir: Path, swift_options: dict[str, Any], s3_options: dict[str, Any]) -> Path:
    """A config file with the Swift server configured as store ``swift`` and as S3 store ``s3``."""
    path = data_dir / "objects.toml"  # not storage.toml: the conftest's config_file fixture writes that one
    path.write_text(
        f'data_dir = "{data_dir}"\n\n'
        + _toml_table("swift", {"type": "swift", **swift_options})
        + "\n"
        + _toml_table("s3", {"type": "s3", **s3_options})
    )
    return path
