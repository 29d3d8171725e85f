"""Network namespaces for the three-node Swift ring (``ring.py``): names, addresses, ``ip`` calls.

One ring takes one /28 "slot" of 198.18.0.0/24 (RFC 2544 benchmark space; never 10.x): the
host end of a bridge gets ``.base+1``, node i (1..3) gets ``.base+1+i``. Slots are tried from
the top (15) down, skipping any whose addresses or names are already on this host, so parallel
rings (and other tests using the low addresses) do not collide. Node i is the namespace
``swr<slot>n<i>`` joined to the bridge ``swr<slot>br`` by the veth pair ``swr<slot>v<i>`` (host)
/ ``swr<slot>p<i>`` (namespace). Planning is pure (``plan``, ``pick_slot``); the rest runs ``ip``.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

NETWORK = ipaddress.ip_network("198.18.0.0/24")
SLOT_PREFIX = 28
SLOTS = 2 ** (SLOT_PREFIX - NETWORK.prefixlen)  # 16
MAX_NODES = 13  # a /28 holds 14 hosts: the bridge and up to 13 nodes


@dataclass(frozen=True)
class Node:
    index: int  # 1-based
    netns: str
    host_veth: str
    peer_veth: str
    ip: str


@dataclass(frozen=True)
class Plan:
    slot: int
    bridge: str
    bridge_ip: str
    prefix: int
    nodes: tuple[Node, ...]

    def names(self) -> set[str]:
        return {self.bridge, *(n.netns for n in self.nodes), *(n.host_veth for n in self.nodes)}

    def addresses(self) -> set[str]:
        return {self.bridge_ip, *(n.ip for n in self.nodes)}


def plan(slot: int, nodes: int = 3, prefix: str = "swr") -> Plan:
    """The names and addresses of ring ``slot`` (0..15) with ``nodes`` nodes; names start with
    ``prefix`` (the ring's ``swr``; the end-to-end bed of tests/cluster_bed.py uses ``e2e``)."""
    if not 0 <= slot < SLOTS:
        raise ValueError(f"slot {slot} is not accepted; accepted: 0 to {SLOTS - 1}")
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"nodes = {nodes} is not accepted; accepted: 1 to {MAX_NODES}")
    if not (1 <= len(prefix) <= 4 and prefix.isascii() and prefix[0].isalpha() and prefix.isalnum() and prefix == prefix.lower()):
        raise ValueError(f"prefix {prefix!r} is not accepted; accepted: 1 to 4 lowercase ASCII letters or digits, a letter first")
    base = int(NETWORK.network_address) + slot * 2 ** (32 - SLOT_PREFIX)
    prefix = f"{prefix}{slot}"
    return Plan(
        slot=slot,
        bridge=f"{prefix}br",
        bridge_ip=str(ipaddress.ip_address(base + 1)),
        prefix=SLOT_PREFIX,
        nodes=tuple(
            Node(i, f"{prefix}n{i}", f"{prefix}v{i}", f"{prefix}p{i}", str(ipaddress.ip_address(base + 1 + i)))
            for i in range(1, nodes + 1)
        ),
    )


def pick_slot(used_addresses: set[str], used_names: set[str], nodes: int = 3, prefix: str = "swr") -> int:
    """The highest slot none of whose addresses or names is in use; ValueError when all are taken."""
    for slot in range(SLOTS - 1, -1, -1):
        candidate = plan(slot, nodes, prefix)
        if not (candidate.addresses() & used_addresses or candidate.names() & used_names):
            return slot
    raise ValueError(f"no free /{SLOT_PREFIX} slot left in {NETWORK} for a swift ring")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and out.returncode != 0:
        raise SystemExit(f"swift-ring: ip {' '.join(args)} failed: {out.stderr.strip()[:300]}")
    return out


def used_on_host() -> tuple[set[str], set[str]]:
    """(IPv4 addresses on this host's interfaces, interface and namespace names)."""
    addresses = set()
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            addresses.add(fields[fields.index("inet") + 1].split("/")[0])
    names = {line.split(":")[1].strip().split("@")[0] for line in _ip("-o", "link", "show").stdout.splitlines()}
    names |= {line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()}
    return addresses, names


def create(p: Plan) -> None:
    """Bridge on the host, one namespace per node with its veth on the bridge, all links up."""
    _ip("link", "add", p.bridge, "type", "bridge")
    _ip("addr", "add", f"{p.bridge_ip}/{p.prefix}", "dev", p.bridge)
    _ip("link", "set", p.bridge, "up")
    for n in p.nodes:
        _ip("netns", "add", n.netns)
        _ip("link", "add", n.host_veth, "type", "veth", "peer", "name", n.peer_veth)
        _ip("link", "set", n.peer_veth, "netns", n.netns)
        _ip("link", "set", n.host_veth, "master", p.bridge)
        _ip("link", "set", n.host_veth, "up")
        _ip("-n", n.netns, "addr", "add", f"{n.ip}/{p.prefix}", "dev", n.peer_veth)
        _ip("-n", n.netns, "link", "set", n.peer_veth, "up")
        _ip("-n", n.netns, "link", "set", "lo", "up")


def destroy(p: Plan) -> list[str]:
    """Delete what ``create`` made (whatever part of it exists); returns what could not be deleted."""
    left = []
    for n in p.nodes:
        _ip("link", "del", n.host_veth, check=False)  # takes its peer with it
        if _ip("netns", "del", n.netns, check=False).returncode != 0 and n.netns in used_on_host()[1]:
            left.append(n.netns)
    _ip("link", "del", p.bridge, check=False)
    names = used_on_host()[1]
    return left + [name for name in (p.bridge, *(n.host_veth for n in p.nodes)) if name in names]


def exec_argv(n: Node, argv: list[str]) -> list[str]:
    """argv run inside node n's namespace (``ip netns exec`` execs it: the pid stays the same)."""
    return ["ip", "netns", "exec", n.netns, *argv]
