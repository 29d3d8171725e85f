"""Pytest plugin: a real three-node Swift ring in network namespaces (``scripts/swift-ring.sh``).

``swift_ring`` (module scope: a test that kills nodes gets a ring of its own module) starts
three storage nodes (each a namespace on 198.18.0.0/24 with account, container and object
servers and rsync; replicas = 3) and a proxy with tempauth on 127.0.0.1, and yields a
``SwiftRing`` that can kill -9 a node, start it again, run the replicators once and count the
object replicas each node holds. The finalizer stops everything and deletes the namespaces,
veths and bridge, also after a failed test. Devices are on tmpfs when there is one.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RING = ROOT / "scripts" / "swift-ring.sh"
SWIFT_VENV = ROOT / ".cache" / "swift-venv"
ACCESS_LINE = re.compile(r" HTTP/1\.[01] (\d{3}) ")
NODE_PORTS = (6200, 6201, 6202, 873)  # object, container, account, rsync (scripts/swift_aio/ring.py)


@dataclass
class SwiftRing:
    dir: Path
    auth_url: str
    user: str  # account:user
    key: str
    node_ips: dict[int, str]
    devices: Path  # node i's devices: devices/n<i>

    def _run(self, *args: str, timeout: float = 120) -> Any:
        out = subprocess.run([str(RING), *args, "--dir", str(self.dir), "--json"], capture_output=True, text=True,
                             timeout=timeout, check=False)
        if out.returncode != 0:
            raise AssertionError(f"swift-ring {' '.join(args)} failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout) if out.stdout.strip() else None

    def kill_node(self, node: int) -> None:
        """kill -9 node's account, container and object servers and its rsync."""
        self._run("kill-node", str(node))

    def start_node(self, node: int) -> float:
        """Start node's servers again and wait until they answer; returns the seconds it took."""
        return float(self._run("start-node", str(node))["seconds"])

    def replicate(self) -> dict[str, Any]:
        """Run every node's object, container and account replicators once."""
        return dict(self._run("replicate", timeout=600))

    def status(self) -> dict[str, Any]:
        out = subprocess.run([str(RING), "status", "--dir", str(self.dir), "--json"], capture_output=True, text=True,
                             timeout=60, check=False)
        return dict(json.loads(out.stdout))

    def listening(self, node: int) -> dict[int, bool]:
        """Which of node's server ports (object, container, account, rsync) accept a connection."""
        result = {}
        for port in NODE_PORTS:
            try:
                with socket.create_connection((self.node_ips[node], port), timeout=1):
                    result[port] = True
            except OSError:
                result[port] = False
        return result

    def objects_per_node(self) -> dict[int, int]:
        """Object replicas (.data files, SLO segments included) on each node's device."""
        return {i: sum(1 for _ in (self.devices / f"n{i}").glob("*/objects*/*/*/*/*.data")) for i in self.node_ips}

    def client_statuses(self) -> dict[str, int]:
        """HTTP statuses the proxy answered our Swift client (its access log), by status."""
        counts: Counter[str] = Counter()
        try:
            text = (self.dir / "logs" / "proxy.log").read_text(errors="replace")
        except OSError:
            return {}
        for line in text.splitlines():
            match = ACCESS_LINE.search(line)
            if match and "python-swiftclient" in line:
                counts[match.group(1)] += 1
        return dict(sorted(counts.items()))

    def options(self, **extra: Any) -> dict[str, Any]:
        """Swift store options for this ring."""
        return {"auth_url": self.auth_url, "user": self.user, "key": self.key, "retries": 6,
                "starting_backoff": 0.2, "max_backoff": 2, "timeout": 20, **extra}


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the three-node Swift ring needs root (ip netns, bridges, veths)"
    if not (SWIFT_VENV / "bin" / "swift-proxy-server").exists():
        return f"Swift venv {SWIFT_VENV} missing (run scripts/swift-aio.sh install)"
    for tool in ("ip", "memcached", "rsync"):
        if shutil.which(tool) is None:
            return f"{tool} missing (scripts/install-deps.sh installs it); the Swift ring needs it"
    probe = f"swrprobe{os.getpid() % 100000}"
    out = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30, check=False)
    if out.returncode != 0:
        return f"network namespaces are not available here (ip netns add: {out.stderr.strip()[:200]})"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30, check=False)
    return None


@pytest.fixture(scope="module")
def swift_ring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftRing]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("swift-ring")
    shm = Path("/dev/shm")
    devices = Path(tempfile.mkdtemp(prefix="swift-ring-", dir=shm)) if shm.is_dir() else base / "devices"
    try:
        out = subprocess.run([str(RING), "start", "--dir", str(base), "--devices", str(devices), "--json"],
                             check=False, timeout=180, capture_output=True, text=True)
        if out.returncode != 0:
            pytest.fail(f"swift ring did not start: {out.stderr[-2000:]}")
        state = json.loads(out.stdout)
        yield SwiftRing(
            dir=base, auth_url=state["auth_url"], user=f"{state['account']}:{state['user']}", key=state["key"],
            node_ips={int(i): e["node"]["ip"] for i, e in state["nodes"].items()}, devices=devices,
        )
    finally:
        subprocess.run([str(RING), "stop", "--dir", str(base)], check=False, timeout=120)
        shutil.rmtree(devices, ignore_errors=True)
