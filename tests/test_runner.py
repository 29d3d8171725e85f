"""The runner in-process with a controllable clock: snapshot policies on real file-backed volumes."""

from __future__ import annotations

from pathlib import Path

import pytest

import storage
from storage.errors import Busy
from storage.policy.events import EventCollector
from storage.policy.lock import LOCK_NAME, HostLock
from storage.policy.models import POLICY_LABEL, SLOT_LABEL
from tests.policy_helpers import Crash, FakeClock, crash_after, z
from tests.volume_helpers import loop_hygiene, read_at, requires_loop, write_at  # noqa: F401

pytestmark = pytest.mark.both_catalogs


@pytest.fixture
def clock(st: storage.Storage) -> FakeClock:
    c = FakeClock("2024-05-01 09:30")
    st.policies.clock = c
    return c


def snaps_of(st: storage.Storage, policy_id: str, volume: str | None = None) -> list:
    return st.snapshots.list(volume=volume, labels={POLICY_LABEL: policy_id})


def slots_of(st: storage.Storage, policy_id: str, volume: str) -> list[str]:
    return sorted(s.labels[SLOT_LABEL] for s in snaps_of(st, policy_id, volume))


def hourly_policy(st: storage.Storage, **retention: int) -> str:
    st.volumes.create("db1", "4M", labels={"tier": "db"})
    st.volumes.create("db2", "4M", labels={"tier": "db"})
    st.volumes.create("web", "4M", labels={"tier": "web"})
    p = st.policies.create("hourly", "snapshot", "0 * * * *", selector={"labels": {"tier": "db"}},
                           retention=retention or {"keep_last": 3})
    return p.id


def test_slots_due_and_not_due_and_idempotent(st: storage.Storage, clock: FakeClock) -> None:
    pid = hourly_policy(st)
    report = st.policies.run()  # 09:30: the policy was created at 09:30, first slot is 10:00
    assert report.ok and report.policies[0].status == "skipped" and not report.policies[0].due
    assert snaps_of(st, pid) == []
    clock.set("2024-05-01 10:00")
    report = st.policies.run()
    assert report.ok and report.policies[0].status == "succeeded"
    assert slots_of(st, pid, "db1") == ["2024-05-01T10:00:00Z"] and slots_of(st, pid, "db2") == ["2024-05-01T10:00:00Z"]
    assert snaps_of(st, pid, "web") == []  # not selected
    for minute in ("10:00", "10:01", "10:59"):  # same slot: nothing more
        clock.set(f"2024-05-01 {minute}")
        again = st.policies.run()
        assert again.policies[0].status == "skipped" and "already done" in again.policies[0].reason
    assert len(snaps_of(st, pid)) == 2
    runs = st.policies.history("hourly")
    assert [(r.status, r.slot_time, len(r.items_created)) for r in runs] == [("succeeded", z("2024-05-01 10:00"), 2)]


def test_catch_up_once_after_downtime_then_retention(st: storage.Storage, clock: FakeClock) -> None:
    pid = hourly_policy(st, keep_last=2)
    for hour in (10, 11):
        clock.set(f"2024-05-01 {hour}:05")
        assert st.policies.run().ok
    clock.set("2024-05-01 17:20")  # down from 11:05 to 17:20: slots 12..16 missed, 17 is due
    events = EventCollector()
    report = st.policies.run(on_event=events)
    outcome = report.policies[0]
    assert outcome.status == "succeeded" and outcome.slot == z("2024-05-01 17:00")
    assert events.of("start")[0]["missed_slots"] == 5
    assert len(events.of("start")) == 1  # once, not once per missed slot
    assert slots_of(st, pid, "db1") == ["2024-05-01T11:00:00Z", "2024-05-01T17:00:00Z"]
    pruned = events.of("prune")
    assert sorted(e["volume"] for e in pruned) == ["db1", "db2"]
    # items are ordered by when the runner made them (10:05, 11:05, 17:20), not by their slot
    assert all(e["item_time"] == "2024-05-01T10:05:00+00:00" and "keep-last 2" in e["reason"] for e in pruned)
    assert len(st.policies.history("hourly")) == 3


def test_failed_run_prunes_nothing_and_retry_finishes(st: storage.Storage, clock: FakeClock) -> None:
    pid = hourly_policy(st, keep_last=1)
    clock.set("2024-05-01 10:00")
    assert st.policies.run().ok
    first = {s.volume_name: s.id for s in snaps_of(st, pid)}
    # db1 cannot be snapshotted now (a real Conflict from the volume state machine)
    st.volumes.reset_status("db1", "error")
    clock.set("2024-05-01 11:00")
    report = st.policies.run()
    outcome = report.policies[0]
    assert not report.ok and report.exit_code == 4 and outcome.status == "partial"
    assert any("db1" in f for f in report.failures)
    # db1's only good snapshot was kept; db2 succeeded and was pruned to keep-last 1
    assert {s.id for s in snaps_of(st, pid, "db1")} == {first["db1"]}
    assert slots_of(st, pid, "db2") == ["2024-05-01T11:00:00Z"]
    assert st.policies.history("hourly", limit=1)[0].status == "partial"
    # fixed: the same slot is retried, db2's snapshot is reused, db1 is made and then pruned
    st.volumes.reset_status("db1", "available")
    clock.set("2024-05-01 11:10")
    events = EventCollector()
    report = st.policies.run(on_event=events)
    assert report.ok and report.policies[0].status == "succeeded"
    assert [e["reused"] for e in sorted(events.of("item"), key=lambda e: e["volume"])] == [False, True]
    assert slots_of(st, pid, "db1") == ["2024-05-01T11:00:00Z"]
    assert [e["item"] for e in events.of("prune")] == [first["db1"]]
    assert [r.attempt for r in st.policies.history("hourly")] == [2, 1, 1]


def test_failed_slot_is_given_up_after_three_attempts(st: storage.Storage, clock: FakeClock) -> None:
    st.volumes.create("solo", "4M")
    st.policies.create("solo", "snapshot", "0 * * * *", selector={"volumes": ["solo"]}, retention={"keep_last": 1})
    st.volumes.reset_status("solo", "error")
    clock.set("2024-05-01 10:00")
    codes = [st.policies.run().exit_code for _ in range(4)]
    assert codes == [4, 4, 4, 0]  # the fourth call waits for the next slot
    assert [r.status for r in st.policies.history("solo")] == ["failed"] * 3


def test_crash_midway_next_run_finishes_the_job(st: storage.Storage, clock: FakeClock) -> None:
    pid = hourly_policy(st, keep_last=1)
    clock.set("2024-05-01 10:00")
    assert st.policies.run().ok
    before = {s.volume_name: s.id for s in snaps_of(st, pid)}
    clock.set("2024-05-01 11:00")
    with pytest.raises(Crash):
        st.policies.run(on_event=crash_after("item", 1))
    # the crash came after db1's snapshot: nothing was pruned, the run is recorded as interrupted
    assert {s.id for s in snaps_of(st, pid)} >= set(before.values())
    assert st.policies.history("hourly", limit=1)[0].status == "interrupted"
    assert not HostLock(st.settings.data_dir / LOCK_NAME).acquire().release()  # lock was released
    clock.set("2024-05-01 11:02")
    events = EventCollector()
    report = st.policies.run(on_event=events)
    assert report.ok and report.policies[0].trigger == "schedule"
    assert sorted((e["volume"], e["reused"]) for e in events.of("item")) == [("db1", True), ("db2", False)]
    assert slots_of(st, pid, "db1") == ["2024-05-01T11:00:00Z"] and slots_of(st, pid, "db2") == ["2024-05-01T11:00:00Z"]
    assert [r.status for r in st.policies.history("hourly")] == ["succeeded", "interrupted", "succeeded"]


def test_dry_run_lists_runs_and_prunes_with_reasons_and_changes_nothing(st: storage.Storage, clock: FakeClock) -> None:
    st.volumes.create("v", "4M")
    pid = st.policies.create("daily", "snapshot", "0 2 * * *", timezone="Europe/Berlin", selector={"volumes": ["v"]},
                             retention={"keep_daily": 2}).id
    for day in ("02", "03", "04"):
        clock.set(f"2024-05-{day} 00:30")  # 02:30 CEST
        assert st.policies.run().ok
    assert slots_of(st, pid, "v") == ["2024-05-03T00:00:00Z", "2024-05-04T00:00:00Z"]
    clock.set("2024-05-05 06:00")
    report = st.policies.run(dry_run=True)
    plan = report.policies[0]
    assert plan.status == "planned" and plan.slot == z("2024-05-05 00:00")
    assert [(w.volume, w.created_at, "keep-daily 2" in w.reason) for w in plan.would_prune] == [
        ("v", z("2024-05-03 00:30"), True)
    ]
    assert [(k.id, k.reason) for k in plan.would_keep][0] == ("(new)", "daily #1")
    assert plan.would_keep[1].created_at == z("2024-05-04 00:30") and plan.would_keep[1].reason == "daily #2"
    assert len(snaps_of(st, pid)) == 2 and st.policies.history("daily", limit=10)[0].slot_time == z("2024-05-04 00:00")


def test_manual_run_now_and_disabled_policies(st: storage.Storage, clock: FakeClock) -> None:
    st.volumes.create("v", "4M")
    pid = st.policies.create("weekly", "snapshot", "@weekly", selector={"all": True}, retention={"keep_last": 5},
                             enabled=False).id
    clock.set("2024-05-20 12:00")
    report = st.policies.run()
    assert report.policies[0].reason == "disabled" and snaps_of(st, pid) == []
    report = st.policies.run(now_policies=["weekly"])
    assert report.ok and report.policies[0].trigger == "manual" and len(snaps_of(st, pid)) == 1
    assert st.policies.history("weekly")[0].trigger == "manual"


def test_manual_run_in_the_slot_second_does_not_fill_the_scheduled_slot(st: storage.Storage, clock: FakeClock) -> None:
    pid = hourly_policy(st)
    clock.set("2024-05-01 10:00")  # the very second the 10:00 slot fires
    manual = st.policies.run(now_policies=["hourly"])
    assert manual.ok and slots_of(st, pid, "db1") == ["2024-05-01T10:00:00Z"]
    made = {s.id for s in snaps_of(st, pid)}
    assert {s.labels["storage.policy.trigger"] for s in snaps_of(st, pid)} == {"manual"}
    plan = st.policies.run(dry_run=True)
    assert [v.reused for v in plan.policies[0].volumes] == [False, False]
    scheduled = st.policies.run()
    assert scheduled.ok and [v.reused for v in scheduled.policies[0].volumes] == [False, False]
    fresh = {s.id for s in snaps_of(st, pid)} - made
    assert len(fresh) == 2 and all("storage.policy.trigger" not in s.labels for s in snaps_of(st, pid) if s.id in fresh)
    assert sorted(r.trigger for r in st.policies.history("hourly")) == ["manual", "schedule"]  # same fake second


def test_named_volume_that_vanished_is_a_named_failure(st: storage.Storage, clock: FakeClock) -> None:
    st.volumes.create("a", "4M")
    st.volumes.create("b", "4M")
    st.policies.create("ab", "snapshot", "6h", selector={"volumes": ["a", "b"]}, retention={"keep_last": 1})
    st.volumes.delete("b")
    report = st.policies.run()
    assert report.exit_code == 3 and report.policies[0].status == "partial"
    assert report.failures == ["policy ab: volume b: volume 'b' not found (by name or id); see `storagectl volume list`"]


def test_busy_lock_raises_exit_7_or_waits(st: storage.Storage, clock: FakeClock) -> None:
    hourly_policy(st)
    lock = HostLock(st.settings.data_dir / LOCK_NAME).acquire()
    try:
        with pytest.raises(Busy) as info:
            st.policies.run()
        assert info.value.exit_code == 7 and "--wait" in info.value.message
        with pytest.raises(Busy):
            st.policies.run(wait=True, wait_timeout=0.5)
    finally:
        lock.release()
    clock.set("2024-05-01 10:00")
    assert st.policies.run(wait=True, wait_timeout=5).ok


@pytest.mark.loop
@requires_loop
def test_snapshot_policy_on_attached_loop_volume(st: storage.Storage, clock: FakeClock, loop_hygiene: Path) -> None:
    st.volumes.create("live", "8M")
    device = st.volumes.attach("live").attached_device
    assert device and device.startswith("/dev/loop")
    try:
        pid = st.policies.create("live", "snapshot", "every 1h", selector={"volumes": ["live"]},
                                 retention={"keep_last": 2}).id
        contents = []
        for n in range(3):
            data = f"generation {n}".encode().ljust(4096, b".")
            write_at(device, 1024 * 1024, data)
            contents.append(data)
            assert st.policies.run().ok
            clock.advance(hours=1)
        snaps = sorted(snaps_of(st, pid), key=lambda s: s.labels[SLOT_LABEL])
        assert len(snaps) == 2  # the oldest generation was pruned
        for snap, expected in zip(snaps, contents[1:]):
            with st.snapshots.open(snap.id) as path:
                assert read_at(path, 1024 * 1024, 4096) == expected
    finally:
        st.volumes.detach("live")


def test_one_failing_policy_does_not_stop_the_others(st: storage.Storage, clock: FakeClock) -> None:
    st.volumes.create("bad", "4M")
    st.volumes.create("good", "4M")
    st.policies.create("a-bad", "snapshot", "1h", selector={"volumes": ["bad"]}, retention={"keep_last": 1})
    st.policies.create("b-good", "snapshot", "1h", selector={"volumes": ["good"]}, retention={"keep_last": 1})
    st.volumes.reset_status("bad", "error")
    report = st.policies.run()
    assert [(p.policy, p.status) for p in report.policies] == [("a-bad", "failed"), ("b-good", "succeeded")]
    assert report.exit_code == 4 and len(report.failures) == 1 and report.failures[0].startswith("policy a-bad: volume bad:")
    assert len(st.snapshots.list(volume="good")) == 1


def test_time_label_keeps_microseconds_and_reads_whole_seconds() -> None:
    from datetime import UTC, datetime

    from storage.policy.actions import parse_slot_text, time_text

    made = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert time_text(made) == "2024-05-01T10:00:00.123456Z" and parse_slot_text(time_text(made)) == made
    assert parse_slot_text("2024-05-01T10:00:00Z") == made.replace(microsecond=0)  # labels of older items
    assert parse_slot_text("yesterday") is None


def test_a_redelivered_manual_run_reuses_what_its_first_attempt_made(st: storage.Storage, clock: FakeClock) -> None:
    """A manual run submitted as a job carries its job id as run key: when the queue delivers it
    again (its agent died after db1's snapshot), the second attempt reuses db1's item and makes
    only db2's, at a later clock second; another job (another key) makes items of its own."""
    pid = hourly_policy(st)
    clock.set("2024-05-01 10:17")
    with pytest.raises(Crash):
        st.policies.run(now_policies=["hourly"], run_key="job-1", on_event=crash_after("item", 1))
    first = {s.id for s in snaps_of(st, pid)}
    assert len(first) == 1 and {s.labels["storage.policy.run"] for s in snaps_of(st, pid)} == {"job-1"}
    clock.set("2024-05-01 10:19")
    events = EventCollector()
    again = st.policies.run(now_policies=["hourly"], run_key="job-1", on_event=events)
    assert again.ok and sorted((e["volume"], e["reused"]) for e in events.of("item")) == [("db1", True), ("db2", False)]
    assert len(snaps_of(st, pid)) == 2 and first <= {s.id for s in snaps_of(st, pid)}
    other = st.policies.run(now_policies=["hourly"], run_key="job-2")  # a new job: new items
    assert other.ok and not any(v.reused for v in other.policies[0].volumes) and len(snaps_of(st, pid)) == 4
    plain = st.policies.run(now_policies=["hourly"])  # `run --now` without a job: never reuses
    assert plain.ok and not any(v.reused for v in plain.policies[0].volumes)
