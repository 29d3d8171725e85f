"""Owners of transitional statuses (storage.owners) and the settle-on-meet decision (pure, table-driven)."""

from __future__ import annotations

import os

import pytest

from storage import owners
from storage.volumes.settle import orphaned

ALIVE = {100: "5000", 200: "7000"}  # pid -> start time of the running processes


def alive(pid: int) -> bool:
    return pid in ALIVE


def start_of(pid: int) -> str | None:
    return ALIVE.get(pid)


@pytest.mark.parametrize(
    ("owner", "parsed"),
    [
        ("h:100", ("h", 100, None)),
        ("h:100:5000", ("h", 100, "5000")),
        ("h:100:", ("h", 100, None)),
        ("h", None),
        ("h:x", None),
        (":100", None),
        ("h:100:5000:9", None),
        ("h:100:abc", ("h", 100, None)),
    ],
)
def test_parse_owner(owner: str, parsed: tuple[str, int, str | None] | None) -> None:
    assert owners.parse_owner(owner) == parsed


@pytest.mark.parametrize(
    ("owner", "dead"),
    [
        ("h:100:5000", False),  # running
        ("h:100", False),  # old format, pid running
        ("h:300:5000", True),  # gone
        ("h:300", True),
        ("h:100:4999", True),  # pid reused by a process started later
        ("other:300:1", False),  # another host: cannot tell
        (None, False),
        ("", False),
        ("garbage", False),
    ],
)
def test_owner_is_dead(owner: str | None, dead: bool) -> None:
    assert owners.owner_is_dead(owner, "h", alive, start_of) is dead


def test_this_owner_is_alive_and_a_gone_pid_is_dead() -> None:
    me = owners.this_owner()
    host, pid, start = owners.parse_owner(me) or ("", 0, None)
    assert pid == os.getpid() and start == owners.process_start(os.getpid())
    assert not owners.is_dead_here(me)
    assert owners.is_dead_here(f"{host}:{2**22 + 4321}:1")


def test_orphaned_picks_the_volumes_of_dead_owners() -> None:
    rows = [("v1", "h:100:5000"), ("v2", "h:300:1"), ("v3", None), ("v2", "h:300:1"), ("v4", "h:100:1")]
    assert orphaned(rows, lambda o: owners.owner_is_dead(o, "h", alive, start_of)) == {"v2", "v4"}
