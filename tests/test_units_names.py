"""Sizes and names: the pure parsing and validation every volume command relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.domain import (
    SNAPSHOT_TRANSITIONS,
    VOLUME_TRANSITIONS,
    SnapshotStatus,
    VolumeStatus,
    can_transition,
    sources_of,
)
from storage.errors import InvalidInput
from storage.names import NAME_MAX, parse_labels, validate_name
from storage.volumes.snapshots import auto_snapshot_name
from storage.units import format_size, parse_size, round_up

MIB = 1024 * 1024


@pytest.mark.parametrize(
    "text, expected",
    [("512M", 512 * MIB), ("10G", 10 * 1024 * MIB), ("1T", 1024**4), ("4096", 4096), (4096, 4096),
     ("1.5G", 1536 * MIB), ("1GB", 10**9), ("2 GiB", 2 * 1024 * MIB), ("1k", 1024)],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", [0, -1, "0", "-1", "10X", "", "G", "1.2.3", "1e9", True, "  ", "-5M"])
def test_parse_size_refuses(bad: object) -> None:
    with pytest.raises(InvalidInput, match="accepted"):
        parse_size(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=2**50))
def test_round_up_to_mib(n: int) -> None:
    r = round_up(n, MIB)
    assert r % MIB == 0 and n <= r < n + MIB


def test_format_size() -> None:
    assert format_size(10 * 1024 * MIB) == "10G" and format_size(1536 * MIB) == "1.5G" and format_size(100) == "100"


@pytest.mark.parametrize("name", ["db1", "a", "web.example-01", "x" * NAME_MAX, "a:b+c@d_e"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a/b", "/abs", "..", "a..b", ".hidden", "-x", "x" * (NAME_MAX + 1), "sp ace", "tab\t", "nul\0", "newline\n",
             "é", "123e4567-e89b-12d3-a456-426614174000"],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_name(name)
    assert "accepted" in exc.value.message or "UUID" in exc.value.message


@given(st.text(min_size=1, max_size=200))
def test_no_accepted_name_escapes_a_directory(name: str) -> None:
    try:
        validate_name(name)
    except InvalidInput:
        return
    assert "/" not in name and ".." not in name and "\0" not in name and len(name) <= NAME_MAX


def test_labels() -> None:
    assert parse_labels(["a=1", "b/c=x=y"]) == {"a": "1", "b/c": "x=y"}
    for bad in (["novalue"], ["=v"], ["bad key=v"], ["k=" + "v" * 256], ["k\n=v"]):
        with pytest.raises(InvalidInput, match="KEY=VALUE"):
            parse_labels(bad)


def test_auto_snapshot_names_fit() -> None:
    name = auto_snapshot_name("v" * NAME_MAX, "20260101T000000Z", "abcdef")
    assert len(name) == NAME_MAX and validate_name(name) == name
    assert auto_snapshot_name("db", "20260101T000000Z", "abcdef") == "db-20260101T000000Z-abcdef"


def test_state_machine() -> None:
    V = VolumeStatus
    assert can_transition(V.AVAILABLE, V.ATTACHING) and can_transition(V.ATTACHING, V.IN_USE)
    assert not can_transition(V.IN_USE, V.ATTACHING)  # attaching twice is a conflict
    assert not can_transition(V.IN_USE, V.REVERTING)  # revert needs a detached volume
    assert not can_transition(V.DELETING, V.DELETING)  # two deletes: one wins
    assert not can_transition(V.AVAILABLE, SnapshotStatus.AVAILABLE)
    assert sources_of(V.IN_USE) == {"attaching", "detaching", "extending", "snapshotting", "cloning", "backing-up"}
    # every status appears in the tables, and every target is a known status
    assert set(VOLUME_TRANSITIONS) == set(VolumeStatus) and set(SNAPSHOT_TRANSITIONS) == set(SnapshotStatus)
    for targets in VOLUME_TRANSITIONS.values():
        assert all(isinstance(t, VolumeStatus) for t in targets)
