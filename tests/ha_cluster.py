"""API replicas behind a private HAProxy (scripts/haproxy/haproxy.sh), sharing a PostgreSQL catalog.

``HaProxy`` starts and stops the script's instance (own port, stats port, pid file and admin socket
in its own directory) and reads ``show stat`` from the socket: each replica's status (UP, DOWN,
MAINT, ``UP 1/2``...) and its retry (``wretr``) and redispatch (``wredis``) counters.
``ha_cluster`` (module scope) is two real ``storagectl serve`` replicas on one data dir and one
PostgreSQL database (tests/fixtures_postgres.py), each with its own drain file, behind HAProxy.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.api_server import ApiServer, detach_loops_under, free_port, make_tokens

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "haproxy" / "haproxy.sh"
BACKEND = "storage_api_replicas"


@dataclass
class ServerStat:
    status: str  # UP, DOWN, MAINT, "UP 1/2" (going down), "DOWN 1/2" (coming up), NOLB...
    retries: int  # wretr: requests HAProxy sent again after a failure
    redispatches: int  # wredis: ... to another replica
    sessions: int  # stot: requests (sessions) sent to it in all


@dataclass
class HaProxy:
    dir: Path
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.dir / "haproxy.sock"

    def start(self, servers: dict[str, int]) -> "HaProxy":
        args = [str(SCRIPT), "start", "--dir", str(self.dir), "--port", str(self.port),
                "--stats-port", str(self.stats_port), "--json"]
        for name, port in servers.items():
            args += ["--server", f"{name}=127.0.0.1:{port}"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"haproxy did not start: {out.stderr[-2000:]}")
        json.loads(out.stdout)
        return self

    def stop(self) -> None:
        subprocess.run([str(SCRIPT), "stop", "--dir", str(self.dir)], capture_output=True, timeout=30, check=False)

    def stats(self) -> dict[str, ServerStat]:
        """``show stat`` of the replicas' backend, by server name."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.socket_path))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        col = {name: i for i, name in enumerate(header)}
        out = {}
        for line in lines[1:]:
            f = line.split(",")
            if len(f) < len(header) or f[0] != BACKEND or f[1] in ("FRONTEND", "BACKEND"):
                continue
            num = lambda name: int(f[col[name]] or 0)  # noqa: E731
            out[f[1]] = ServerStat(f[col["status"]], num("wretr"), num("wredis"), num("stot"))
        return out

    def wait_status(self, server: str, wanted: str, timeout: float = 30.0) -> float:
        """Seconds until ``server`` shows ``wanted`` (exactly: "UP", "DOWN", "MAINT")."""
        start = time.monotonic()
        while True:
            if self.stats()[server].status == wanted:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"haproxy shows {server} {self.stats()[server].status}, not {wanted}, after {timeout}s")
            time.sleep(0.05)


class StatusWatch:
    """Samples every replica's HAProxy status every 50 ms; ``transitions`` are (monotonic time, server, status)."""

    def __init__(self, proxy: HaProxy) -> None:
        self.proxy = proxy
        self.transitions: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="haproxy-watch", daemon=True)

    def __enter__(self) -> "StatusWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        last: dict[str, str] = {}
        while not self._stop.is_set():
            try:
                stats = self.proxy.stats()
            except OSError:
                stats = {}
            for name, st in stats.items():
                if last.get(name) != st.status:
                    last[name] = st.status
                    self.transitions.append((time.monotonic(), name, st.status))
            self._stop.wait(0.05)

    def first(self, server: str, status: str, after: float) -> float | None:
        """Monotonic time of the first sample at or after ``after`` where ``server`` was ``status``."""
        return next((t for t, n, s in self.transitions if n == server and s == status and t >= after), None)


@dataclass
class Cluster:
    proxy: HaProxy
    replicas: dict[str, ApiServer]
    configs: dict[str, Path]
    data_dir: Path
    tokens: dict[str, str]

    def drain_file(self, name: str) -> Path:
        return self.data_dir / f"api-{name}.drain"


def replica_config(data_dir: Path, name: str, catalog_url: str) -> Path:
    """One replica's config: the shared data dir, pool and catalog; its own drain file."""
    path = data_dir / f"storage-{name}.toml"
    path.write_text(
        f'data_dir = "{data_dir}"\n'
        f'[catalog]\nurl = "{catalog_url}"\n'
        f'[pools.default]\ndriver = "file"\npath = "{data_dir / "pools" / "default"}"\novercommit_ratio = 1000.0\n'
        f'[api]\ndrain_file = "{data_dir / f"api-{name}.drain"}"\ngraceful_shutdown_seconds = 20\n'
    )
    return path


@pytest.fixture(scope="module")
def ha_cluster(tmp_path_factory: pytest.TempPathFactory, postgres_server) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("ha")
    data_dir = base / "data"
    data_dir.mkdir()
    database = postgres_server.create_database()
    url = postgres_server.url(database)
    configs = {name: replica_config(data_dir, name, url) for name in ("r1", "r2")}
    tokens = make_tokens(configs["r1"])
    replicas = {name: ApiServer(cfg) for name, cfg in configs.items()}
    proxy = HaProxy(base / "haproxy")
    try:
        for server in replicas.values():
            server.tokens = tokens
            server.start()
        proxy.start({name: server.port for name, server in replicas.items()})
        for name in replicas:
            proxy.wait_status(name, "UP")
        yield Cluster(proxy, replicas, configs, data_dir, tokens)
    finally:
        proxy.stop()
        for server in replicas.values():
            server.stop()
        detach_loops_under(data_dir)
        postgres_server.drop_database(database)
