"""A cluster on one machine: storage hosts and a compute host in network namespaces (issue 12's test bed).

``ClusterBed`` (fixture ``cluster_bed``, module scope, root only) builds, with every part real:

- one /28 of 198.18.0.0/24 (scripts/swift_aio/netns.py, names ``e2e<slot>...``): a bridge on the
  host at ``.base+1``, storage hosts ``s1``..``sN`` in namespaces ``e2e<slot>n1``.., the compute
  host in the last namespace;
- per storage host: its own ``tgtd`` started inside its namespace, listening on ``<its address>:3260``
  (its control socket, /var/run/tgtd/socket.N, is a file: the agent reaches it from its namespace);
  its own data dir and file pool (``overcommit_ratio`` set so the pool holds ``capacity_gib``), zone
  ``az-<name>``; its own ``storagectl agent`` run inside its namespace (``ip netns exec``);
- PostgreSQL (the session fixture of tests/fixtures_postgres.py) reached through its unix socket,
  which is a file and so the same from every namespace: the catalog URL is
  ``postgresql+psycopg://postgres@/DB?host=SOCKDIR&port=P``;
- the Swift all-in-one (tests/fixtures_swift.py) listens on the host's 127.0.0.1: each storage
  namespace gets a ``Relay`` (a listening socket made inside the namespace, on its own 127.0.0.1 and
  the same port, whose connections are carried to the host's 127.0.0.1), so the auth URL and the
  storage URL Swift hands out work unchanged in every namespace;
- the API (``storagectl serve``, host_name ``api``, ``[cluster] queue = "procrastinate"``) in the
  host's namespace, bound to the bridge address: reachable from every namespace and from the test.

The compute namespace has no agent and no catalog: ``compute_python`` runs python-cinderclient
there, ``compute_run`` anything else (qemu-img with libiscsi: open-iscsi and os-brick's
ISCSIConnector cannot run on this host, which has no iscsi_tcp module; they run in the QEMU guest
tier). docs/cluster.md "The end-to-end test bed" says how to build the same by hand.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.api_server import STORAGECTL, ApiServer, detach_loops_under, make_tokens
from tests.fixtures_tgt import Tgtd, free_control_port, remove_all_targets
from tests.test_hosts_agent import AgentProc, wait_for

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("e2e_bed_netns", ROOT / "scripts" / "swift_aio" / "netns.py")
assert _SPEC and _SPEC.loader
netns = importlib.util.module_from_spec(_SPEC)
sys.modules["e2e_bed_netns"] = netns
_SPEC.loader.exec_module(netns)

GiB = 1 << 30
MiB = 1 << 20
ISCSI_PORT = 3260
API_PORT = 8776
CLONE_NEWNET = 0x40000000
PROJECT = "e2e"
COMPUTE_IQN = "iqn.2026-11.test.e2e:compute1"


def missing() -> str | None:
    """Why the bed cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "the cluster bed needs root (ip netns, veths, tgtd, loop devices)"
    for tool in ("ip", "tgtd", "tgtadm", "qemu-img"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            return f"{tool} missing (scripts/install-deps.sh installs it); the cluster bed needs it"
    probe = f"e2eprobe{os.getpid() % 100000}"
    out = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30, check=False)
    if out.returncode != 0:
        return f"network namespaces are not available here (ip netns add: {out.stderr.strip()[:200]})"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30, check=False)
    return None


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in(netns_name: str, address: str, port: int) -> socket.socket:
    """A listening TCP socket made inside namespace ``netns_name`` (the calling thread goes back to
    its own namespace before returning; the socket stays in the one it was made in)."""
    box: dict[str, Any] = {}

    def make() -> None:  # in a thread of its own: setns changes the calling thread only
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/var/run/netns/{netns_name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((address, port))
                s.listen(64)
                box["sock"] = s
            finally:
                _setns(own)
        except OSError as exc:
            box["error"] = exc
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]


class Relay:
    """Connections to ``127.0.0.1:port`` inside a namespace, carried to ``127.0.0.1:port`` of the host."""

    def __init__(self, netns_name: str, port: int) -> None:
        self.port = port
        self.listener = listen_in(netns_name, "127.0.0.1", port)
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, name=f"relay-{netns_name}", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


class NsAgent(AgentProc):
    """``storagectl agent`` inside a namespace (``ip netns exec`` execs it: the pid is the agent's)."""

    def __init__(self, config: Path, netns_name: str) -> None:
        super().__init__(config)
        self.netns = netns_name

    def start(self) -> "NsAgent":
        env = {k: v for k, v in os.environ.items() if not k.startswith("STORAGE_")}
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, STORAGECTL, "-c", str(self.config), "agent"],
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return self


@dataclass
class NsTgtd(Tgtd):
    """tgtd inside a namespace, listening on that namespace's address."""

    netns: str = ""
    address: str = ""

    @property
    def portal(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "tgtd", "-f", "-C", str(self.control_port), "--iscsi", f"portal={self.portal}"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
            )  # fmt: skip
        from tests.fixtures_tgt import tgt_answering

        deadline = time.monotonic() + 10
        while not tgt_answering(self.control_port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tgtd in {self.netns} did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.02)


class BedApi(ApiServer):
    """``storagectl serve`` bound to the bridge address (reachable from every namespace)."""

    def __init__(self, config: Path, address: str) -> None:
        super().__init__(config)
        self.address = address

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def start(self, *extra: str, timeout: float = 30.0) -> "BedApi":
        super().start("--host", self.address, *extra, timeout=timeout)
        return self


@dataclass
class StorageHost:
    name: str
    ip: str
    netns: str
    pool: Path
    config: Path
    capacity_gib: int
    tgtd: NsTgtd
    agent: NsAgent | None = None

    @property
    def zone(self) -> str:
        return f"az-{self.name}"


@dataclass
class ClusterBed:
    plan: Any
    hosts: dict[str, StorageHost]
    compute_netns: str
    compute_ip: str
    api: BedApi
    catalog_url: str
    root: Path
    relays: list[Relay] = field(default_factory=list)

    @property
    def cinder_endpoint(self) -> str:
        return f"{self.api.url}/v3/{PROJECT}"

    def cinder(self, role: str = "admin", version: str = "3.40"):  # type: ignore[no-untyped-def]
        """A python-cinderclient v3 client (in this process, the host's namespace) with a bed token."""
        from cinderclient import client as cinder_client
        from keystoneauth1 import session as ks_session
        from keystoneauth1 import token_endpoint

        sess = ks_session.Session(auth=token_endpoint.Token(self.cinder_endpoint, self.api.tokens[role]))
        return cinder_client.Client(version, session=sess, os_endpoint=self.cinder_endpoint)

    def compute_run(self, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """argv inside the compute namespace."""
        return subprocess.run(["ip", "netns", "exec", self.compute_netns, *argv], capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    def compute_python(self, code: str, args: dict[str, Any], timeout: float = 120) -> Any:
        """Run ``code`` with this venv's Python in the compute namespace; ``ARGS`` holds ``args``
        (plus the endpoint and an operator token, given on stdin, never in argv); its stdout's last
        line is JSON, returned parsed."""
        payload = json.dumps({**args, "endpoint": self.cinder_endpoint, "token": self.api.tokens["operator"]})
        prog = "import json, sys\nARGS = json.loads(sys.stdin.read())\n" + code
        out = subprocess.run(["ip", "netns", "exec", self.compute_netns, sys.executable, "-c", prog], input=payload,
                             capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
        if out.returncode != 0:
            raise AssertionError(f"compute-side python failed ({out.returncode}): {out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def host_of(self, volume: Any) -> str:
        """The host name of a cinderclient volume (``os-vol-host-attr:host`` = ``host@pool#pool``)."""
        return str(getattr(volume, "os-vol-host-attr:host")).split("@", 1)[0]

    def agent_logs(self) -> str:
        return "\n".join(h.agent.log.read_text() for h in self.hosts.values() if h.agent and h.agent.log.exists())


def _ratio(root: Path, limit: int) -> float:
    vfs = os.statvfs(root)
    return (limit + MiB // 2) / (vfs.f_blocks * vfs.f_frsize)  # total x ratio = the limit (and half a MiB)


def host_config(root: Path, name: str, url: str, pool: Path, capacity_gib: int, portal: str, control_port: int,
                swift: str) -> Path:  # fmt: skip
    etc = root / f"etc-{name}"
    etc.mkdir(parents=True, exist_ok=True)
    path = etc / "storage.toml"
    path.write_text(
        f'host_name = "{name}"\ndata_dir = "{root / f"data-{name}"}"\n'
        f'[catalog]\nurl = "{url}"\n'
        f'[scheduler]\navailability_zone = "az-{name}"\n'
        f'[pools.default]\ndriver = "file"\npath = "{pool}"\novercommit_ratio = {_ratio(root, capacity_gib * GiB)!r}\n'
        f'[export]\ndriver = "tgt"\nportal = "{portal}"\ncontrol_port = {control_port}\nmanage_daemon = false\n'
        f'[cluster]\nheartbeat_interval = 0.5\nservice_down_time = 6\nqueue = "procrastinate"\nremote_call_timeout = 120\n'
        + swift
    )
    return path


def swift_table(swift_server: Any) -> str:
    return (f'[object_stores.swift]\ntype = "swift"\nauth_url = "{swift_server.auth_url}"\nuser = "{swift_server.user}"\n'
            f'key = "{swift_server.key}"\nretries = 6\ntimeout = 60\n')  # fmt: skip


def build(root: Path, postgres_server: Any, swift_server: Any, capacities: dict[str, int]) -> Iterator[ClusterBed]:
    """Build the bed (``capacities``: storage host name -> pool size in GiB), yield it, tear it down."""
    database = postgres_server.create_database()
    sock = postgres_server.dir / "sock"
    url = f"postgresql+psycopg://postgres@/{database}?host={sock}&port={postgres_server.port}"
    names = list(capacities)
    p = netns.plan(netns.pick_slot(*netns.used_on_host(), nodes=len(names) + 1, prefix="e2e"), len(names) + 1, "e2e")
    swift = swift_table(swift_server)
    hosts: dict[str, StorageHost] = {}
    relays: list[Relay] = []
    api: BedApi | None = None
    try:
        netns.create(p)
        for name, node in zip(names, p.nodes):
            pool = root / f"pool-{name}"
            tgtd = NsTgtd(free_control_port(), ISCSI_PORT, root / f"tgtd-{name}.log", netns=node.netns, address=node.ip)
            cfg = host_config(root, name, url, pool, capacities[name], tgtd.portal, tgtd.control_port, swift)
            hosts[name] = StorageHost(name, node.ip, node.netns, pool, cfg, capacities[name], tgtd)
            tgtd.start()
            relays.append(Relay(node.netns, swift_server.proxy_port))
            hosts[name].agent = NsAgent(cfg, node.netns).start()
        compute = p.nodes[len(names)]
        api_cfg = host_config(root, "api", url, root / "pool-of-the-api-never-used", 1, f"{p.bridge_ip}:{ISCSI_PORT}",
                              free_control_port(), swift)  # fmt: skip
        api = BedApi(api_cfg, p.bridge_ip)
        api.port = API_PORT if _port_free(p.bridge_ip, API_PORT) else api.port
        api.tokens = make_tokens(api_cfg)
        api.start()
        bed = ClusterBed(p, hosts, compute.netns, compute.ip, api, url, root, relays)
        with api.client("reader") as c:
            wait_for("every storage host up",
                     lambda: sorted(h["name"] for h in c.get("/hosts").json() if h["state"] == "up") == sorted(names), 60)
        yield bed
    finally:
        if api is not None:
            api.stop()
        for h in hosts.values():
            if h.agent is not None:
                h.agent.stop()
        for h in hosts.values():
            remove_all_targets(h.tgtd.control_port)
            h.tgtd.stop()
        for r in relays:
            r.close()
        detach_loops_under(root)
        left = netns.destroy(p)
        postgres_server.drop_database(database)
        assert not left, f"left behind: {left}"


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def cluster_bed(tmp_path_factory: pytest.TempPathFactory, postgres_server, swift_server) -> Iterator[ClusterBed]:  # type: ignore[no-untyped-def]
    """Three storage hosts (s1 20 GiB, s2 16 GiB, s3 12 GiB) and a compute host; see the module docstring."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    yield from build(tmp_path_factory.mktemp("e2e"), postgres_server, swift_server, {"s1": 20, "s2": 16, "s3": 12})
