"""A real uvicorn server (``storagectl serve``) on 127.0.0.1 for API tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import storage

STORAGECTL = str(Path(sys.executable).parent / "storagectl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ApiServer:
    config: Path
    port: int = field(default_factory=free_port)
    log: Path | None = None
    proc: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    wrap: tuple[str, ...] = ()  # a command the server runs under (a UTS namespace with its own host name...)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str, timeout: float = 30.0) -> "ApiServer":
        self.log = self.config.parent / f"server-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
        self.proc = subprocess.Popen(
            [*self.wrap, STORAGECTL, "-c", str(self.config), "serve", "--port", str(self.port), "--log-level", "warning", *extra],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz within {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def client(self, role: str | None = "admin", **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


def make_tokens(config: Path) -> dict[str, str]:
    with storage.open(config) as st:
        return {role: st.tokens.create(role, name=f"test-{role}")[1] for role in ("reader", "operator", "admin")}


def write_config(data_dir: Path, extra: str = "") -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "storage.toml"
    path.write_text(f'data_dir = "{data_dir}"\n' + extra)
    return path


@pytest.fixture
def api_server(config_file: Path) -> Iterator[ApiServer]:
    """A server with its own data dir for one test."""
    yield from _serve(config_file)


@pytest.fixture(scope="module")
def shared_api_server(tmp_path_factory: pytest.TempPathFactory, module_catalog_url: str | None) -> Iterator[ApiServer]:
    """One server per test module (own data dir): starting one costs seconds of a shared CPU. Its
    catalog follows ``catalog_kind`` (SQLite, or PostgreSQL in a ``both_catalogs`` module)."""
    extra = f'\n[catalog]\nurl = "{module_catalog_url}"\n' if module_catalog_url else ""
    yield from _serve(write_config(tmp_path_factory.mktemp("api") / "data", extra))


def _serve(config_file: Path) -> Iterator[ApiServer]:
    server = ApiServer(config_file)
    server.tokens = make_tokens(config_file)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        detach_loops_under(config_file.parent)


def detach_loops_under(root: Path) -> None:
    """Detach loop devices whose backing file lies under root (a test that failed mid-way)."""
    out = subprocess.run(["losetup", "--json", "--list"], capture_output=True, text=True, check=False).stdout
    for dev in json.loads(out or '{"loopdevices": []}').get("loopdevices", []):
        back = (dev.get("back-file") or "").removesuffix(" (deleted)")
        if back.startswith(str(root) + "/"):
            subprocess.run(["losetup", "-d", dev["name"]], check=False)
