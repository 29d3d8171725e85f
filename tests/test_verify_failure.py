"""A verify that finds damage ends its job `failed` (as restic check does) with a data_corruption
error naming the damaged backups and the missing/corrupt chunks; a sound verify still succeeds
with the report as its result. The message is built by a pure function, table-tested here."""

from __future__ import annotations

from pathlib import Path

import pytest

import storage
from storage.backup.models import VerifyReport
from storage.backup.verify import NAMED_MAX, verify_failure
from storage.errors import DataCorruption
from tests.backup_helpers import MIB, delete_chunk, flip_byte, make_image


def report(**kw: object) -> VerifyReport:
    base: dict = dict(repository="file:///r", deep=True, sample_percent=100, backups_checked=["b1"], chunks_checked=4,
                      bytes_checked=4, missing_chunks=[], corrupt_chunks=[], damaged_backups=[], ok=True, seconds=0.1)
    return VerifyReport(**{**base, **kw})


@pytest.mark.parametrize(("kw", "named", "absent"), [
    ({}, None, None),
    ({"ok": False, "missing_chunks": ["c1"], "damaged_backups": ["b1"]},
     ["1 missing and 0 corrupt", "damaged backups: b1", "missing chunks: c1"], "corrupt chunks:"),
    ({"ok": False, "corrupt_chunks": ["c2", "c3"], "damaged_backups": ["b1", "b2"]},
     ["0 missing and 2 corrupt", "damaged backups: b1, b2", "corrupt chunks: c2, c3"], "missing chunks:"),
    ({"ok": False, "lost_backups": ["b9"]}, ["damaged backups: none", "(lost): b9"], "chunks:"),
    ({"ok": False, "missing_chunks": [f"c{i}" for i in range(NAMED_MAX + 3)], "damaged_backups": ["b1"]},
     [f"c{NAMED_MAX - 1} and 3 more"], f"c{NAMED_MAX},"),
])
def test_verify_failure_names_the_damage(kw: dict, named: list[str] | None, absent: str | None) -> None:
    exc = verify_failure(report(**kw))
    if named is None:
        assert exc is None
        return
    assert isinstance(exc, DataCorruption) and exc.exit_code == 9
    for text in named:
        assert text in exc.message, exc.message
    assert absent not in exc.message
    assert exc.details["damaged_backups"] == kw.get("damaged_backups", [])


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_verify_job_fails_naming_the_damage(st: storage.Storage, tmp_path: Path, damage: str) -> None:
    src = make_image(tmp_path / "img", 4 * MIB, seed=9)
    b = st.backups.create(str(src))
    sound = st.jobs.wait(st.jobs.submit("verify", target=b.id, params={"backup_id": b.id, "deep": True}).id, timeout=60)
    assert sound.state == "succeeded" and sound.result["ok"] is True, sound

    repo = st.backups.open_repository(b.repository)
    chunk = next(c for c in repo.read_manifest(repo.location.store, b.id).chunks if c)
    delete_chunk(repo, chunk.id) if damage == "missing" else flip_byte(repo, chunk.id, position=50)
    job = st.jobs.wait(st.jobs.submit("verify", target=b.id, params={"backup_id": b.id, "deep": True}).id, timeout=60)
    assert job.state == "failed", job
    assert job.error is not None and job.error["code"] == "data_corruption"
    assert f"damaged backups: {b.id}" in job.error["message"] and chunk.id in job.error["message"], job.error
    assert job.error["details"]["damaged_backups"] == [b.id]
    assert st.backups.get(b.id).status == "damaged"
