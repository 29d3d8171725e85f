"""Format 3 (BLAKE3 addresses) against repositories written by the format-2 code (SHA-256 / HMAC-SHA256).

The repositories under tests/fixtures/backup-format-2 were written by the format-2 program
(see its README): this one must restore and verify them, back up into them with their own hash
(deduplicating against the old chunks) and leave them readable by format-2 programs (version 2).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import storage
from storage.backup import crypto, format as fmt
from tests.backup_helpers import chunk_ids, make_image, open_repo, overwrite, same_bytes

FIXTURE = Path(__file__).parent / "fixtures" / "backup-format-2"
IMAGE_SHA256 = "3ed25fabe06d7696200a7cbce40a54cda16c0524c72b6085ff09b6811813dc88"
K = 64 * 1024


def fixture_image(path: Path) -> Path:
    """The image the fixture's backups hold (the recipe of make_fixture.py)."""
    img = make_image(path, 4 * K + 100, seed=7, data_ranges=[(0, 20000), (4 * K, 100)], zero_ranges=[(2 * K, K)])
    overwrite(img, 20000, b"old format fixture text " * 1000)
    overwrite(img, 3 * K, b"another compressible chunk " * 2000)
    assert hashlib.sha256(img.read_bytes()).hexdigest() == IMAGE_SHA256, "the image recipe changed; the fixture no longer matches"
    return img


@pytest.fixture
def old_repos(tmp_path: Path) -> Path:
    copy = tmp_path / "old"
    shutil.copytree(FIXTURE, copy)
    (copy / "key").chmod(0o600)
    return copy


@pytest.mark.parametrize("kind", ["plain", "encrypted"])
def test_format_2_repository_restores_verifies_and_takes_new_backups(st: storage.Storage, tmp_path: Path, old_repos: Path,
                                                                      kind: str) -> None:
    url = f"file://{old_repos / kind}"
    key = str(old_repos / "key") if kind == "encrypted" else None
    image = fixture_image(tmp_path / "image.raw")
    config = json.loads((old_repos / kind / "config").read_text())
    assert config["version"] == 2 and config["hash"] == ("hmac-sha256" if key else "sha256")

    [old] = st.backups.import_repository(url, key_file=key)
    out = tmp_path / "restored.raw"
    st.backups.restore(old.id, to_path=str(out))
    assert same_bytes(image, out)
    report = st.backups.verify(url, deep=True, key_file=key)
    assert report.ok and report.backups_checked == [old.id] and report.chunks_checked == 3

    repo = open_repo(st, url, key)
    assert repo.config.hash == config["hash"]
    if key is None:  # the old addresses are plain SHA-256 of the chunk
        data = image.read_bytes()
        assert hashlib.sha256(data[:K]).hexdigest() in chunk_ids(repo)

    # a new backup of the same image with this program: same hash, so every chunk deduplicates
    again = st.backups.create(str(image), repository=url, encryption_key_file=key)
    assert again.new_chunk_count == 0 and again.dedup_chunk_count == 3
    overwrite(image, 5, b"changed")
    changed = st.backups.create(str(image), repository=url, encryption_key_file=key)
    assert changed.new_chunk_count == 1
    st.backups.restore(changed.id, to_path=str(tmp_path / "changed.raw"))
    assert same_bytes(image, tmp_path / "changed.raw")
    after = json.loads((old_repos / kind / "config").read_text())
    assert after["version"] == 2 and after["hash"] == config["hash"]  # format-2 programs still read it
    manifest = repo.read_manifest(repo.location.store, changed.id)
    assert manifest.version == 2
    assert st.backups.verify(url, deep=True, key_file=key).ok


@pytest.mark.parametrize("encrypted", [False, True])
def test_new_repositories_use_blake3(st: storage.Storage, tmp_path: Path, encrypted: bool) -> None:
    key = str(st.backups.create_key(tmp_path / "k")) if encrypted else None
    url = f"file://{tmp_path / 'repos' / 'new'}"
    image = fixture_image(tmp_path / "image.raw")
    b = st.backups.create(str(image), repository=url, encryption_key_file=key)
    config = json.loads((tmp_path / "repos" / "new" / "config").read_text())
    assert config["version"] == fmt.FORMAT_VERSION == 3
    assert config["hash"] == ("keyed-blake3" if encrypted else "blake3")
    repo = open_repo(st, url, key)
    first = image.read_bytes()  # one chunk: the default chunk size is 1 MiB
    ids = chunk_ids(repo)
    import blake3

    assert (blake3.blake3(first).hexdigest() in ids) is not encrypted  # keyed: names leak nothing
    assert hashlib.sha256(first).hexdigest() not in ids
    st.backups.restore(b.id, to_path=str(tmp_path / "out"))
    assert same_bytes(image, tmp_path / "out")


def test_hash_must_be_known_and_fit_the_encryption() -> None:
    crypto.check_hash("blake3", keyed=False)
    crypto.check_hash("hmac-sha256", keyed=True)
    from storage.errors import DataCorruption, Unsupported

    with pytest.raises(Unsupported, match="'md5'.*accepted: sha256, hmac-sha256, blake3, keyed-blake3"):
        crypto.check_hash("md5", keyed=False)
    with pytest.raises(DataCorruption, match="'blake3' does not fit an encrypted"):
        crypto.check_hash("blake3", keyed=True)
    raw = fmt.RepoConfig.new("r", K, "zstd", 3, None).to_json().replace(b'"blake3"', b'"sha512"')
    with pytest.raises(Unsupported, match="sha512"):
        fmt.RepoConfig.from_json(raw, "file:///x")
