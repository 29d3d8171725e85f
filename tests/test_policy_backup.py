"""Backup policies: real backups into a directory repository and into the real Swift all-in-one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from storage.errors import InvalidInput, NotFound
from storage.policy.events import EventCollector
from storage.policy.models import POLICY_LABEL, SLOT_LABEL
from tests.policy_helpers import FakeClock

MIB = 1024 * 1024


def fill(st: storage.Storage, name: str, seed: int, size_mib: int = 4) -> None:
    """Create a volume and write seeded bytes into it through the backend's volume path."""
    st.volumes.create(name, f"{size_mib}M", labels={"backup": "nightly"})
    vol = st.volumes.get(name)
    with st.host.volume_backend(vol.pool).open_volume(vol.id) as path:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, os.urandom(MIB) + bytes([seed]) * MIB, 0)
            os.fsync(fd)
        finally:
            os.close(fd)


def backups_of(st: storage.Storage, policy_id: str, volume: str | None = None) -> list:
    return st.backups.list(volume=volume, labels={POLICY_LABEL: policy_id})


@pytest.fixture
def clock(st: storage.Storage) -> FakeClock:
    c = FakeClock("2024-06-01 00:00")
    st.policies.clock = c
    return c


@pytest.fixture
def repo_url(st: storage.Storage) -> str:
    root = st.settings.data_dir / "objects"
    (root / "policy-repo").mkdir(parents=True)
    return f"file://{root}/policy-repo"


def test_backup_policy_runs_verifies_and_prunes(st: storage.Storage, clock: FakeClock, repo_url: str) -> None:
    fill(st, "db1", 1)
    fill(st, "db2", 2)
    policy = st.policies.create(
        "nightly", "backup", "0 3 * * *", timezone="Europe/Berlin", selector={"labels": {"backup": "nightly"}},
        retention={"keep_daily": 2},
        backup={"repository": repo_url, "verify": "deep", "verify_sample_percent": 50, "max_concurrent": 2,
                "bandwidth_limit": "200M"},
    )
    events = EventCollector()
    for day in ("02", "03", "04"):
        clock.set(f"2024-06-{day} 01:30")  # 03:30 CEST
        report = st.policies.run(on_event=events)
        assert report.ok, report.failures
    for vol in ("db1", "db2"):
        kept = backups_of(st, policy.id, vol)
        assert sorted(b.labels[SLOT_LABEL] for b in kept) == ["2024-06-03T01:00:00Z", "2024-06-04T01:00:00Z"]
        assert all(b.status == "available" and b.repository == repo_url for b in kept)
    finishes = events.of("finish")
    assert finishes[0]["bytes"] > 2 * MIB  # two volumes with 1 MiB of random data each
    assert len(events.of("prune")) == 2 and all("keep-daily 2" in e["reason"] for e in events.of("prune"))
    history = st.policies.history("nightly")
    assert [len(r.items_pruned) for r in history] == [2, 0, 0]
    assert history[-1].bytes == finishes[0]["bytes"]
    for run in history[:2]:  # bytes of a run = what its backups uploaded
        assert run.bytes == sum(st.backups.get(i).stored_bytes for i in run.items_created)
    # the pruned backups are gone from the repository too
    listed = st.backups.list(repository=repo_url)
    assert {b.id for b in listed} == {b.id for b in backups_of(st, policy.id)}


def test_failed_backup_never_prunes_the_last_good_one(st: storage.Storage, clock: FakeClock, repo_url: str,
                                                       tmp_path: Path) -> None:
    good_key = st.backups.create_key(tmp_path / "good.key")
    wrong_key = st.backups.create_key(tmp_path / "wrong.key")
    fill(st, "db", 3)
    policy = st.policies.create("enc", "backup", "@daily", selector={"volumes": ["db"]}, retention={"keep_last": 1},
                                backup={"repository": repo_url, "encryption_key_file": str(good_key), "verify": "quick"})
    clock.set("2024-06-02 00:10")
    assert st.policies.run().ok
    [first] = backups_of(st, policy.id)
    assert first.encrypted
    st.policies.update("enc", backup={"encryption_key_file": str(wrong_key)})
    clock.set("2024-06-03 00:10")
    report = st.policies.run()
    assert not report.ok and report.exit_code == 8, report.failures  # AuthenticationFailed: the key does not match
    assert report.failures[0].startswith("policy enc: volume db:")
    assert [b.id for b in backups_of(st, policy.id) if b.status == "available"] == [first.id]
    assert st.policies.history("enc", limit=1)[0].status == "failed"
    st.policies.update("enc", backup={"encryption_key_file": str(good_key)})
    clock.set("2024-06-03 00:20")  # retry of the same slot
    report = st.policies.run()
    assert report.ok
    [second] = [b for b in backups_of(st, policy.id) if b.status == "available"]
    assert second.id != first.id and second.labels[SLOT_LABEL] == "2024-06-03T00:00:00Z"
    assert report.policies[0].pruned[0].id == first.id


def test_backup_policy_refuses_missing_repository_and_key_file(st: storage.Storage, tmp_path: Path) -> None:
    missing = f"file://{st.settings.data_dir}/objects/no-such-container"
    with pytest.raises(NotFound, match="does not exist") as info:
        st.policies.create("b", "backup", "@daily", selector={"all": True}, retention={"keep_last": 1},
                           backup={"repository": missing})
    assert info.value.details["field"] == "repository"
    with pytest.raises(InvalidInput, match="encryption_key_file") as info2:
        st.policies.create("b", "backup", "@daily", selector={"all": True}, retention={"keep_last": 1},
                           backup={"encryption_key_file": str(tmp_path / "nope.key")})
    assert info2.value.details["field"] == "encryption_key_file"
    with pytest.raises(InvalidInput, match="verify_sample_percent"):
        st.policies.create("b", "backup", "@daily", selector={"all": True}, retention={"keep_last": 1},
                           backup={"verify": "deep", "verify_sample_percent": 0})
    with pytest.raises(InvalidInput, match="backup options"):
        st.policies.create("s", "snapshot", "@daily", selector={"all": True}, retention={"keep_last": 1},
                           backup={"verify": "deep"})
    assert st.policies.list() == []


# -- the real Swift -------------------------------------------------------------------------


@pytest.fixture
def swift_st(objects_config: Path) -> Iterator[storage.Storage]:
    s = storage.open(objects_config)
    try:
        yield s
    finally:
        s.close()


@pytest.mark.swift
def test_backup_policy_against_real_swift(swift_st: storage.Storage) -> None:
    st = swift_st
    clock = FakeClock("2024-06-01 00:00")
    st.policies.clock = clock
    with pytest.raises(NotFound, match="container 'policy-missing' not found"):
        st.policies.create("sw", "backup", "6h", selector={"all": True}, retention={"keep_last": 1},
                           backup={"repository": "swift://swift@policy-missing"})
    store = st.objects.store("swift")
    store.create_container("policy-backups")
    fill(st, "sw1", 4)
    policy = st.policies.create("sw", "backup", "6h", selector={"all": True}, retention={"keep_last": 1},
                                backup={"repository": "swift://swift@policy-backups/nightly", "verify": "quick"})
    ids = []
    for hours in (0, 6):
        clock.set(f"2024-06-01 {hours:02d}:01")
        report = st.policies.run()
        assert report.ok, report.failures
        [current] = backups_of(st, policy.id)
        ids.append(current.id)
    assert ids[0] != ids[1]
    repo = st.backups.open_repository("swift://swift@policy-backups/nightly")
    assert repo.list_manifest_ids() == [ids[1]]  # the pruned backup's manifest is gone from Swift
    [latest] = st.policies.history("sw", limit=1)
    assert latest.items_pruned == [ids[0]] and latest.bytes >= 0
    store.close()


def test_compression_choice_is_checked_against_the_repository(st: storage.Storage, repo_url: str) -> None:
    base = {"selector": {"all": True}, "retention": {"keep_last": 1}}
    with pytest.raises(InvalidInput, match="will be created with") as info:  # no config object yet: settings apply
        st.policies.create("c", "backup", "@daily", backup={"repository": repo_url, "compression": "none"}, **base)
    assert info.value.details["field"] == "compression"
    fill(st, "v", 5)
    st.backups.create("v", repository=repo_url)  # writes the repository's config (zstd, the default)
    with pytest.raises(InvalidInput, match="was fixed when it was created \\('zstd'\\); accepted: 'zstd'"):
        st.policies.create("c", "backup", "@daily", backup={"repository": repo_url, "compression": "none"}, **base)
    p = st.policies.create("c", "backup", "@daily", backup={"repository": repo_url, "compression": "zstd"}, **base)
    assert p.backup is not None and p.backup.compression == "zstd"


def test_verification_after_backup_fails_the_run_and_prunes_nothing(st: storage.Storage, clock: FakeClock,
                                                                     repo_url: str) -> None:
    from tests.backup_helpers import flip_byte, open_repo

    fill(st, "db", 6)
    policy = st.policies.create("checked", "backup", "@daily", selector={"volumes": ["db"]}, retention={"keep_last": 1},
                                backup={"repository": repo_url, "verify": "deep", "verify_sample_percent": 100})
    clock.set("2024-06-02 00:05")
    assert st.policies.run().ok
    [first] = backups_of(st, policy.id)
    repo = open_repo(st, repo_url)
    chunk = next(c for c in repo.read_manifest(repo.location.store, first.id).chunks if c is not None)
    flip_byte(repo, chunk.id)  # bit rot in a chunk the next (deduplicated) backup will share
    clock.set("2024-06-03 00:05")
    report = st.policies.run()
    assert report.exit_code == 9 and "verification" in report.failures[0]  # DataCorruption
    assert f"corrupt chunks: {chunk.id}" in report.failures[0]  # as `backup verify` says it: what is damaged
    assert report.policies[0].pruned == []
    assert {b.id for b in backups_of(st, policy.id)} >= {first.id}  # nothing was removed
    assert st.policies.history("checked", limit=1)[0].status == "failed"
