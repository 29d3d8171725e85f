"""A backup is never 'available' unless restorable, against a real Swift (issue 15).

Packs deleted behind the engine's back, a flipped byte found by deep verify, a manifest deleted
from the store, and a dry-run GC that must not touch the store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import storage
from storage.backup import format as fmt
from storage.cli.main import main
from tests.backup_helpers import MIB, flip_byte, make_image, same_bytes, swift_backup_config

pytestmark = pytest.mark.swift



@pytest.fixture
def sst(data_dir: Path, swift_options: dict[str, Any], request: pytest.FixtureRequest) -> Any:
    """Storage with a fresh container of the session's Swift as its repository."""
    url = f"swift://swift@integrity-{request.node.name[5:45]}/r"
    with storage.open(swift_backup_config(data_dir, swift_options, url)) as st:
        yield st


def _url(st: storage.Storage) -> str:
    return str(st.backups.settings.repository)


def _restores(st: storage.Storage, backup_id: str, expected: Path, out: Path) -> bool:
    st.backups.restore(backup_id, to_path=str(out))
    ok = same_bytes(out, expected)
    out.unlink()
    return ok


def test_a_pack_deleted_behind_the_engine_is_uploaded_again(sst: storage.Storage, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", 4 * MIB, seed=151)
    first = sst.backups.create(str(image))
    assert first.new_chunk_count == 4
    repo = sst.backups.open_repository()
    store = repo.location.store
    index = repo.load_index(store)
    lost_pack = sorted(index.packs)[1]
    lost_chunks = {e.chunk_id for e in index.packs[lost_pack].index.entries}  # type: ignore[union-attr]
    store.delete_object(repo.container, repo.object_name(fmt.pack_object_name(lost_pack)))

    # the chunk cache is clean and trusted: without the check this backup would dedup against the lost pack
    second = sst.backups.create(str(image))
    assert second.status == "available"
    assert second.new_chunk_count == len(lost_chunks) and second.dedup_chunk_count == 4 - len(lost_chunks)
    assert _restores(sst, second.id, image, tmp_path / "out2")
    assert _restores(sst, first.id, image, tmp_path / "out1")  # the first backup is whole again too
    assert sst.backups.verify(_url(sst), deep=True).ok
    # and the cache now matches the store: a third backup uploads nothing
    third = sst.backups.create(str(image))
    assert third.new_chunk_count == 0


def test_a_corrupt_chunk_found_by_deep_verify_is_never_reused(sst: storage.Storage, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", 3 * MIB, seed=152)
    first = sst.backups.create(str(image))
    repo = sst.backups.open_repository()
    victim = sorted(c.id for c in repo.list_chunks())[0]
    flip_byte(repo, victim)

    assert sst.backups.verify(_url(sst)).ok  # quick: sizes and listings still agree
    deep = sst.backups.verify(_url(sst), deep=True)
    assert deep.corrupt_chunks == [victim] and deep.damaged_backups == [first.id]
    assert sst.backups.get(first.id).status == "damaged"

    second = sst.backups.create(str(image))
    assert second.status == "available"
    assert second.new_chunk_count == 1  # the corrupt copy was not deduplicated against
    assert _restores(sst, second.id, image, tmp_path / "out2")
    again = sst.backups.verify(_url(sst), deep=True)
    assert again.ok, again
    assert sst.backups.get(first.id).status == "available"  # its chunk is readable again
    assert _restores(sst, first.id, image, tmp_path / "out1")
    # GC drops the quarantined copy (its pack holds nothing else live) and the record with it
    report = sst.backups.gc(grace_seconds=0)
    assert report.packs_deleted >= 1
    names = [o.name for o in repo.location.store.list_objects(repo.container, prefix=repo.object_name(fmt.QUARANTINE_DIR))]
    assert names == []
    assert _restores(sst, second.id, image, tmp_path / "out3")


def test_a_lost_manifest_is_reported_and_marked(sst: storage.Storage, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    kept = sst.backups.create(str(make_image(tmp_path / "a", 2 * MIB, seed=153)))
    gone = sst.backups.create(str(make_image(tmp_path / "b", 2 * MIB, seed=154)))
    repo = sst.backups.open_repository()
    repo.location.store.delete_object(repo.container, repo.object_name(fmt.manifest_object_name(gone.id)))

    quick = sst.backups.verify(_url(sst))
    assert not quick.ok and quick.lost_backups == [gone.id] and quick.damaged_backups == []
    statuses = {b.id: b.status for b in sst.backups.list()}
    assert statuses == {kept.id: "available", gone.id: "lost"}
    code = main(["-c", str(sst.settings.config_file), "backup", "list", "--json"])
    listed = {b["id"]: b["status"] for b in json.loads(capsys.readouterr().out)}
    assert code == 0 and listed == statuses
    code = main(["-c", str(sst.settings.config_file), "backup", "verify", _url(sst), "--json"])
    out, err = capsys.readouterr()
    assert code == 9 and json.loads(out)["lost_backups"] == [gone.id] and f"(lost): {gone.id}" in err
    deep = sst.backups.verify(_url(sst), deep=True)
    assert deep.lost_backups == [gone.id] and not deep.ok
    one = sst.backups.verify(gone.id)
    assert one.lost_backups == [gone.id] and not one.ok
    with pytest.raises(storage.errors.Conflict, match="lost"):
        sst.backups.restore(gone.id, to_path=str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_gc_dry_run_changes_nothing_not_even_stale_locks(sst: storage.Storage, tmp_path: Path) -> None:
    backup = sst.backups.create(str(make_image(tmp_path / "a", 2 * MIB, seed=155)))
    sst.backups.delete(backup.id)
    repo = sst.backups.open_repository()
    store = repo.location.store
    stale = json.dumps({"kind": "shared", "host": "gone-host", "pid": 1, "purpose": "old", "refreshed_at": time.time() - 10**6})
    store.put_object(repo.container, repo.object_name(fmt.LOCKS_DIR + "stale-one"), stale.encode())

    def snapshot() -> list[tuple[str, str | None]]:
        return sorted((o.name, o.etag) for o in store.list_objects(repo.container))

    before = snapshot()
    report = sst.backups.gc(grace_seconds=0, dry_run=True)
    assert report.dry_run and report.stale_locks_removed == 0 and report.chunks_unreferenced == 2
    assert snapshot() == before
    done = sst.backups.gc(grace_seconds=0)
    assert done.stale_locks_removed == 1 and done.chunks_deleted == 2


def test_a_corrupt_chunk_found_by_a_restore_is_not_reused(sst: storage.Storage, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img", 2 * MIB, seed=156)
    first = sst.backups.create(str(image))
    repo = sst.backups.open_repository()
    flip_byte(repo, sorted(c.id for c in repo.list_chunks())[1])
    with pytest.raises(storage.errors.DataCorruption, match="content address"):
        sst.backups.restore(first.id, to_path=str(tmp_path / "broken"))
    assert sst.backups.get(first.id).status == "damaged"
    second = sst.backups.create(str(image))
    assert second.new_chunk_count == 1
    assert _restores(sst, second.id, image, tmp_path / "out")
