"""Pure host decisions: up/down/disabled, retry back-off, placement candidates (table-tested)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.hosts.agent import one_line
from storage.hosts.service import validate_host_name, validate_reason
from storage.errors import InvalidInput
from storage.hosts.state import HostInfo, HostState, host_state, placement_candidates, retry_delay
from storage.scheduler import PlacementRequest, schedule

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("last", "down_time", "disabled", "expected"),
    [
        (NOW, 60, False, HostState.UP),
        (NOW - 59 * S, 60, False, HostState.UP),
        (NOW - 60 * S, 60, False, HostState.UP),  # exactly the limit: still up
        (NOW - 61 * S, 60, False, HostState.DOWN),
        (NOW - 3600 * S, 60, False, HostState.DOWN),
        (None, 60, False, HostState.DOWN),  # registered by an admin, never heard from
        (NOW, 60, True, HostState.DISABLED),
        (NOW - 61 * S, 60, True, HostState.DOWN),  # dead wins over disabled: its volumes answer 503
        (None, 60, True, HostState.DOWN),
        (NOW + 30 * S, 60, False, HostState.UP),  # clock skew: a heartbeat "from the future" is now
        (NOW - 2 * S, 1.5, False, HostState.DOWN),  # fractional down times (tests use short ones)
    ],
)
def test_host_state(last: datetime | None, down_time: float, disabled: bool, expected: HostState) -> None:
    assert host_state(last, NOW, down_time, disabled) is expected


@pytest.mark.parametrize(
    ("failures", "interval", "cap", "expected"),
    [(0, 10, 60, 10), (1, 10, 60, 20), (2, 10, 60, 40), (3, 10, 60, 60), (50, 10, 60, 60),
     (1000, 10, 60, 60), (1, 0.2, 1.0, 0.4), (5, 0.2, 1.0, 1.0), (3, 30, 10, 30)],  # cap below interval: interval
)
def test_retry_delay_doubles_and_is_bounded(failures: int, interval: float, cap: float, expected: float) -> None:
    assert retry_delay(failures, interval, cap) == pytest.approx(expected)


def _host(name: str, state: HostState, pools: dict, reason: str | None = None) -> HostInfo:
    return HostInfo(name=name, state=state, disabled=state is HostState.DISABLED, disabled_reason=reason, pools=pools,
                    availability_zone="az1", labels={"rack": name, "tier": "host"})


POOL = {"driver": "file", "capabilities": {"thin": True, "size_granularity": 1}, "total_bytes": 100, "free_bytes": 40,
        "provisioned_bytes": 60, "overcommit_ratio": 1.0, "provisionable_bytes": 40}


def test_candidates_carry_host_state_and_the_scheduler_explains_refusals() -> None:
    hosts = [
        _host("c", HostState.UP, {"p2": POOL, "p1": {**POOL, "free_bytes": 7, "provisionable_bytes": 7,
                                                     "availability_zone": "az9", "labels": {"tier": "ssd"}}}),
        _host("a", HostState.DOWN, {"p": {**POOL, "free_bytes": 90, "provisionable_bytes": 90}}),
        _host("b", HostState.DISABLED, {"p": {**POOL, "free_bytes": 95, "provisionable_bytes": 95}}, "disk swap"),
        _host("d", HostState.UP, {"bad": {"driver": "lvm", "error": "volume group vg0 not found"}, "ok": POOL}),
    ]
    cands = placement_candidates(hosts)
    assert [(c.name, c.up, c.disabled, c.availability_zone, c.labels["tier"]) for c in cands] == [
        ("a#p", False, False, "az1", "host"), ("b#p", True, True, "az1", "host"), ("c#p1", True, False, "az9", "ssd"),
        ("c#p2", True, False, "az1", "host"), ("d#bad", True, False, "az1", "host"), ("d#ok", True, False, "az1", "host"),
    ]
    decision = schedule(cands, PlacementRequest(10))
    refused = {v.name: v.reason for v in decision.refused}
    assert refused == {"a#p": "host 'a' is down", "b#p": "host 'b' is disabled (disk swap)",
                       "c#p1": refused["c#p1"], "d#bad": "the pool did not report its capacity: volume group vg0 not found"}
    assert "c#p1" in refused  # 7 bytes free: too small for 10
    assert decision.chosen is not None and decision.chosen.name in ("c#p2", "d#ok")
    assert placement_candidates([]) == []


@pytest.mark.parametrize("name", ["h1", "storage-01.example.org", "node_3", "a@b"])
def test_host_names_accepted(name: str) -> None:
    assert validate_host_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 256, "ü", "a/b", None, 3])
def test_host_names_refused_with_what_is_accepted(name: object) -> None:
    with pytest.raises(InvalidInput, match="accepted: 1-255 letters"):
        validate_host_name(name)


def test_reason_bounded_and_printable() -> None:
    assert validate_reason(None) is None and validate_reason("") is None
    assert validate_reason("disk swap") == "disk swap"
    for bad in ("x" * 256, "line\nbreak", 5):
        with pytest.raises(InvalidInput, match="255 characters"):
            validate_reason(bad)


def test_one_line_hides_url_passwords_and_tracebacks() -> None:
    exc = RuntimeError("could not connect to postgresql+psycopg://storage:s3cret@db:5432/catalog\nDETAIL: more")
    text = one_line(exc)
    assert "s3cret" not in text and "DETAIL" not in text
    assert text.startswith("RuntimeError: could not connect to postgresql+psycopg://storage:***@db")


# -- volumes a pool's heartbeat has not counted yet -------------------------------------------
from storage.hosts.state import reported_at, unreported, with_pending  # noqa: E402
from storage.scheduler import Candidate  # noqa: E402


@pytest.mark.parametrize(
    ("created", "status", "read_at", "expected"),
    [
        # ``created``: the row's updated_at. A row inserted before the report was read whose device
        # the agent made after it turns available after it too: counted (test_cluster_placement raced on it)
        (NOW + S, "available", NOW, True),  # made (or made available) after the report was read
        (NOW, "available", NOW, True),  # the same instant: counted (errs towards refusing)
        (NOW - S, "available", NOW, False),  # older than the report: in it
        (NOW - 3600 * S, "creating", NOW, True),  # its device may not exist yet
        (NOW - S, "restoring-backup", NOW, False),  # its device is made before the fill: in it
        (NOW + S, "available", None, False),  # the host reports no time (an older agent): trust its figures
        (datetime(2026, 11, 30, 12, 0, 1), "available", NOW, True),  # naive (SQLite) is UTC
    ],
)
def test_unreported(created: datetime, status: str, read_at: datetime | None, expected: bool) -> None:
    assert unreported(created, status, read_at) is expected


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ({"reported_at": NOW.isoformat()}, NOW),
        ({"reported_at": "2026-11-30T12:00:00"}, NOW),
        ({"reported_at": "yesterday"}, None),
        ({"reported_at": 17}, None),
        ({}, None),
    ],
)
def test_reported_at(report: dict, expected: datetime | None) -> None:
    assert reported_at(report) == expected


def test_with_pending_takes_unreported_bytes_off_the_room() -> None:
    M = 1 << 20
    thin = Candidate("ha", "p", total_bytes=100 * M, free_bytes=90 * M, provisioned_bytes=40 * M,
                     capabilities={"thin": True}, provisionable=60 * M)  # fmt: skip
    thin_own = Candidate("hb", "p", total_bytes=100 * M, free_bytes=90 * M, provisioned_bytes=40 * M,
                         capabilities={"thin": True})  # fmt: skip
    thick = Candidate("hc", "p", total_bytes=100 * M, free_bytes=60 * M, provisioned_bytes=40 * M)
    untouched = Candidate("hd", "p", total_bytes=100 * M, free_bytes=60 * M)
    pending = {("ha", "p"): 30 * M, ("hb", "p"): 30 * M, ("hc", "p"): 30 * M, ("hx", "p"): 5 * M}
    a, b, c, d = with_pending([thin, thin_own, thick, untouched], pending)
    assert (a.provisioned_bytes, a.provisionable_bytes, a.free_bytes) == (70 * M, 30 * M, 90 * M)
    assert (b.provisioned_bytes, b.provisionable_bytes, b.free_bytes) == (70 * M, 30 * M, 90 * M)
    assert (c.provisioned_bytes, c.free_bytes) == (70 * M, 30 * M)
    assert d is untouched
    # the scheduler then refuses a 40M volume on each of them, by capacity
    decision = schedule([a, b, c, d], PlacementRequest(40 * M))
    assert decision.chosen is not None and decision.chosen.host == "hd"
    assert {v.host for v in decision.refused} == {"ha", "hb", "hc"}
    assert {v.refused_by for v in decision.refused} == {"capacity"}
