"""Backups through the real Swift all-in-one, natively and through its S3 API (runs in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

import storage
from tests.backup_helpers import MIB, chunk_ids, delete_chunk, make_image, overwrite, same_bytes

pytestmark = pytest.mark.swift


@pytest.mark.parametrize(
    ("url", "encrypted"),
    [("swift://swift@backups-sw/team/a", False), ("swift://swift@backups-sw-enc", True), ("s3://s3@backups-s3/p", False)],
)
def test_round_trip_verify_gc_through_object_servers(objects_config: Path, tmp_path: Path, url: str, encrypted: bool) -> None:
    image = make_image(tmp_path / "img", 6 * MIB + 3, seed=31, data_ranges=[(0, 2 * MIB), (4 * MIB, 2 * MIB + 3)])
    overwrite(image, 5 * MIB, b"swift " * 100_000)
    with storage.open(objects_config) as st:
        key = str(st.backups.create_key(tmp_path / "k")) if encrypted else None
        first = st.backups.create(str(image), repository=url, encryption_key_file=key)
        assert first.status == "available" and first.new_chunk_count == 5 and first.zero_chunk_count == 2
        changed = tmp_path / "changed"
        changed.write_bytes(image.read_bytes())
        overwrite(changed, MIB + 17, b"delta")
        second = st.backups.create(str(changed), repository=url)
        assert second.new_chunk_count == 1 and second.dedup_chunk_count == 4
        for b, expected in ((first, image), (second, changed)):
            out = tmp_path / f"out-{b.id}"
            st.backups.restore(b.id, to_path=str(out))
            assert same_bytes(out, expected)
        assert st.backups.verify(url, deep=True).ok
        repo = st.backups.open_repository(url, key_file=key)
        assert len(chunk_ids(repo)) == 6
        st.backups.delete(first.id)
        report = st.backups.gc(url, grace_seconds=0)
        assert report.chunks_deleted == 1 and report.chunks_referenced == 5
        # the catalog is lost: import from the object server and restore
        other = tmp_path / "other"
        other.mkdir()
        cfg = other / "storage.toml"
        cfg.write_text(objects_config.read_text().replace(f'data_dir = "{objects_config.parent}"', f'data_dir = "{other}"'))
        with storage.open(cfg) as st2:
            [imported] = st2.backups.import_repository(url, key_file=key)
            assert imported.id == second.id
            out = tmp_path / "imported"
            st2.backups.restore(imported.id, to_path=str(out))
            assert same_bytes(out, changed)
        delete_chunk(repo, chunk_ids(repo)[0])
        broken = st.backups.verify(second.id)
        assert broken.damaged_backups == [second.id] and len(broken.missing_chunks) == 1
