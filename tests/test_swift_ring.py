"""The three-node Swift ring (scripts/swift-ring.sh): PUT and GET through our Swift store with
each node in turn killed -9, then the replicators give each node back what it missed.

Listings are eventually consistent in Swift: a GET of the container is answered by one container
replica, and one that was down missed the rows written meanwhile. So the listing is checked
only once the replicators ran, against a node left alone (the other two killed).

Takes 30-60 s (a node start is ~3 s of Swift imports, the replicators ~15 s on a busy machine)."""

from __future__ import annotations

import os

import pytest

from backends.object.swift.store import SwiftStore
from tests.fixtures_swift_ring import SwiftRing

pytestmark = pytest.mark.swift

SEGMENT = 256 * 1024


def test_put_get_with_each_node_killed_in_turn(swift_ring: SwiftRing) -> None:
    store = SwiftStore(swift_ring.options(segment_size=SEGMENT))
    store.create_container("smoke")
    written: dict[str, bytes] = {"before": os.urandom(100_000)}
    store.put_object("smoke", "before", written["before"])
    assert swift_ring.objects_per_node() == {1: 1, 2: 1, 3: 1}
    for node in (1, 2, 3):
        swift_ring.kill_node(node)
        assert not any(swift_ring.listening(node).values())
        before = swift_ring.objects_per_node()
        name = f"while-{node}-down"
        written[name] = os.urandom(3 * SEGMENT + 17)  # a Static Large Object: 4 segments and a manifest
        store.put_object("smoke", name, written[name])
        for key, data in written.items():
            assert store.get_bytes("smoke", key) == data, key
        after = swift_ring.objects_per_node()
        assert after[node] == before[node], "a killed node took writes"
        assert all(after[n] == before[n] + 5 for n in after if n != node), (before, after)
        swift_ring.start_node(node)
        assert all(swift_ring.listening(node).values())
    counts = swift_ring.objects_per_node()
    total = 1 + 3 * 5
    assert counts == {1: total - 5, 2: total - 5, 3: total - 5}  # each missed what was written while it was down
    swift_ring.replicate()
    assert swift_ring.objects_per_node() == {1: total, 2: total, 3: total}
    # node 1 alone (it missed while-1-down): its container replica lists everything, its objects read back
    swift_ring.kill_node(2)
    swift_ring.kill_node(3)
    try:
        assert {o.name for o in store.list_objects("smoke")} == set(written)
        for key, data in written.items():
            assert store.get_bytes("smoke", key) == data, key
    finally:
        swift_ring.start_node(2)
        swift_ring.start_node(3)
