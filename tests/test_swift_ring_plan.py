"""Pure planning of the Swift ring's network namespaces (scripts/swift_aio/netns.py): names,
addresses within 198.18.0.0/24, and picking a /28 slot nobody on this host uses."""

from __future__ import annotations

import importlib.util
import ipaddress
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "swift_aio" / "netns.py"
_SPEC = importlib.util.spec_from_file_location("swift_ring_netns", _PATH)
assert _SPEC and _SPEC.loader
netns = importlib.util.module_from_spec(_SPEC)
sys.modules["swift_ring_netns"] = netns
_SPEC.loader.exec_module(netns)


@pytest.mark.parametrize(
    ("slot", "bridge_ip", "node_ips"),
    [
        (0, "198.18.0.1", ["198.18.0.2", "198.18.0.3", "198.18.0.4"]),
        (1, "198.18.0.17", ["198.18.0.18", "198.18.0.19", "198.18.0.20"]),
        (15, "198.18.0.241", ["198.18.0.242", "198.18.0.243", "198.18.0.244"]),
    ],
)
def test_plan_addresses(slot: int, bridge_ip: str, node_ips: list[str]) -> None:
    p = netns.plan(slot)
    assert p.bridge_ip == bridge_ip and [n.ip for n in p.nodes] == node_ips
    subnet = ipaddress.ip_network(f"{bridge_ip}/{p.prefix}", strict=False)
    assert subnet.subnet_of(ipaddress.ip_network("198.18.0.0/24"))
    assert all(ipaddress.ip_address(ip) in subnet for ip in node_ips)
    assert all(len(name) <= 15 for name in p.names() | {n.peer_veth for n in p.nodes})  # IFNAMSIZ


def test_plan_names_are_distinct_per_slot() -> None:
    assert netns.plan(3).names().isdisjoint(netns.plan(13).names())
    assert [n.netns for n in netns.plan(7).nodes] == ["swr7n1", "swr7n2", "swr7n3"]


@pytest.mark.parametrize(
    ("used_addresses", "used_names", "slot"),
    [
        (set(), set(), 15),  # from the top: other tests use the low addresses
        ({"198.18.0.243"}, set(), 14),  # a node address of slot 15 taken
        ({"198.18.0.241"}, set(), 14),  # its bridge address taken
        ({"198.18.0.1", "198.18.0.2"}, set(), 15),  # the low end is not in the way
        (set(), {"swr15n2"}, 14),  # a namespace of slot 15 left over
        (set(), {"swr15br", "swr14v1"}, 13),
    ],
)
def test_pick_slot(used_addresses: set[str], used_names: set[str], slot: int) -> None:
    assert netns.pick_slot(used_addresses, used_names) == slot


def test_pick_slot_when_all_are_taken_and_bad_numbers() -> None:
    every = {ip for s in range(netns.SLOTS) for ip in netns.plan(s).addresses()}
    with pytest.raises(ValueError, match="no free /28 slot"):
        netns.pick_slot(every, set())
    with pytest.raises(ValueError, match="slot 16 is not accepted; accepted: 0 to 15"):
        netns.plan(16)
    with pytest.raises(ValueError, match="nodes = 0 is not accepted"):
        netns.plan(0, nodes=0)


def test_plan_with_another_prefix() -> None:
    p = netns.plan(2, 4, "e2e")
    assert [n.netns for n in p.nodes] == ["e2e2n1", "e2e2n2", "e2e2n3", "e2e2n4"]
    assert p.bridge == "e2e2br" and p.nodes[3].host_veth == "e2e2v4" and p.nodes[3].ip == "198.18.0.37"
    assert p.names().isdisjoint(netns.plan(2, 4).names())  # the ring's names (swr) differ
    for bad in ("", "E2E", "2e", "toolong", "e-2"):
        with pytest.raises(ValueError, match="prefix"):
            netns.plan(2, 4, bad)
