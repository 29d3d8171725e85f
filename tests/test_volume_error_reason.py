"""A volume in ``error`` says why (volumes.error_reason, migration 0015).

Pure: which moves keep, set or clear the reason (``reason_values``) and how a failure reads
(``failure_reason``). Real (file pool, SQLite and PostgreSQL catalogs): a restore whose
repository lost its packs leaves the volume made for it ``error`` with the restore's typed error as the
reason; ``check --repair`` of a volume whose file is gone, and the settling of a ``restoring-backup``
left by a killed process, record theirs; `volume show` (CLI, --json), the admin API's
``GET /volumes/{ref}`` and the listing show it; back to ``available`` clears it. Cinder's volume
view has no such field, so the Cinder API shows none.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from storage.catalog.volumes import MAX_REASON, failure_reason, reason_values
from storage.domain import VolumeStatus as V
from storage.errors import BackendError, NotFound

pytestmark = [pytest.mark.both_catalogs]
LONG = "x" * (MAX_REASON + 50)


@pytest.mark.parametrize(
    ("target", "values", "expected"),
    [
        (V.ERROR, {"error_reason": "create failed: disk full"}, {"error_reason": "create failed: disk full"}),
        (V.ERROR_DELETING, {"error_reason": "delete  failed:\n busy"}, {"error_reason": "delete failed: busy"}),
        (V.ERROR, {"error_reason": LONG}, {"error_reason": "x" * (MAX_REASON - 3) + "..."}),
        (V.ERROR, {}, {}),  # no reason given: whatever was recorded stays
        (V.ERROR, {"error_reason": None, "size_bytes": 5}, {"size_bytes": 5}),
        (V.AVAILABLE, {"error_reason": "ignored"}, {"error_reason": None}),  # good again: cleared
        (V.IN_USE, {}, {"error_reason": None}),
        (V.DELETING, {"error_reason": "ignored"}, {}),  # deleting a volume in error keeps why it was
        (V.EXTENDING, {}, {}),
    ],
)
def test_reason_values(target: V, values: dict, expected: dict) -> None:
    assert reason_values(target, values) == expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (NotFound("pool 'p' has no volume v"), "create failed: pool 'p' has no volume v"),
        (BackendError("losetup: no free loop device"), "create failed: losetup: no free loop device"),
        (OSError(28, "No space left on device"), "create failed: OSError: [Errno 28] No space left on device"),
        (RuntimeError("first line\nsecond line"), "create failed: RuntimeError: first line"),
        (RuntimeError(), "create failed: RuntimeError"),
        (KeyboardInterrupt(), "create interrupted: KeyboardInterrupt"),
    ],
)
def test_failure_reason(exc: BaseException, expected: str) -> None:
    assert failure_reason("create", exc) == expected


def _show_json(config_file: Path, name: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "storage.cli.main", "-c", str(config_file), "volume", "show", name, "--json"],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def api_client(st: storage.Storage) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from api.main import create_app

    app = create_app(st)
    token = st.tokens.create("reader", name="t-reader")[1]
    with TestClient(app) as base, TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c
        del base


def test_error_reason_recorded_shown_and_cleared(st: storage.Storage, config_file: Path, data_dir: Path,
                                                 api_client) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    pool = data_dir / "pools" / "default" / "volumes"
    # 1. a restore into a volume made for it that cannot finish: the repository lost its packs
    src = st.volumes.create("src", "4M")
    (pool / f"{src.id}.img").write_bytes(b"\x5a" * (4 << 20))
    backup = st.backups.create("src")
    packs = [p for p in (data_dir / "objects").rglob("*") if p.is_file() and "/packs+/" in str(p)]
    assert packs, list((data_dir / "objects").rglob("*"))
    for p in packs:
        p.unlink()
    # the volume made restoring-backup before the restore runs (as the Cinder API's restore does): kept in error
    st.volumes.create_explained("r1", backup.size_bytes, restoring=True)
    with pytest.raises(storage.errors.StorageError) as raised:
        st.backups.restore(backup.id, to_volume="r1")
    r1 = st.volumes.get("r1")
    assert r1.status is V.ERROR
    assert r1.error_reason is not None and r1.error_reason.startswith(f"restore of backup {backup.id} failed: chunk ")
    assert "is missing from repository" in r1.error_reason and "is missing from repository" in raised.value.message

    # 2. check --repair: a volume whose file is gone
    gone = st.volumes.create("gone", "4M")
    (pool / f"{gone.id}.img").unlink()
    st.check(repair=True)
    assert st.volumes.get("gone").error_reason == "check: no backing data in pool 'default'"

    # 3. settling a restoring-backup whose process was killed (partial data): error, and why
    from storage.catalog.volumes import VolumeRow

    half = st.volumes.create("half", "4M")
    with st.catalog.session() as s:
        row = s.get(VolumeRow, half.id)
        row.status, row.task_owner = V.RESTORING_BACKUP.value, f"{__import__('socket').gethostname()}:999999999:1"
    settled = st.volumes.get("half")  # the next read settles what a dead process left
    assert settled.status is V.ERROR
    assert settled.error_reason == ("restoring-backup did not finish: its process "
                                    f"({__import__('socket').gethostname()}:999999999:1) is gone; its data may be partial")

    # shown by the CLI (--json), the admin API and the listing
    assert _show_json(config_file, "gone")["error_reason"] == "check: no backing data in pool 'default'"
    got = api_client.get("/volumes/half")  # type: ignore[attr-defined]
    assert got.status_code == 200 and got.json()["error_reason"] == settled.error_reason, got.text
    listed = {v.name: v.error_reason for v in st.volumes.list()}
    assert listed == {"src": None, "r1": r1.error_reason, "gone": "check: no backing data in pool 'default'",
                      "half": settled.error_reason}  # fmt: skip

    # available again (an admin's reset after fixing it): the reason is cleared
    assert st.volumes.reset_status("half", V.AVAILABLE).error_reason is None
    assert st.volumes.get("half").error_reason is None
    assert _show_json(config_file, "half")["error_reason"] is None


def test_failed_restore_over_a_volume_ends_in_error_not_available(st: storage.Storage, data_dir: Path) -> None:
    """Restoring over an available volume: a failure before the first write (too small, a chunk
    found missing before anything is written) gives it back available and untouched; a failure
    once writing began (here: the backup's zero chunks are written first, then a chunk is found
    missing) leaves its data part old, part restored, so it ends in error with the reason."""
    import random

    from tests.backup_helpers import delete_chunk, open_repo

    pool = data_dir / "pools" / "default" / "volumes"
    original = b"\x11" * (8 << 20)

    def backup_of(name: str, data: bytes):  # type: ignore[no-untyped-def]
        vol = st.volumes.create(name, "8M")
        (pool / f"{vol.id}.img").write_bytes(data)
        b = st.backups.create(name)
        repo = open_repo(st, b.repository)
        chunks = [c for c in repo.read_manifest(repo.location.store, b.id).chunks if c is not None]
        return b, repo, chunks

    def target(name: str, size: str = "8M") -> Path:
        path = pool / f"{st.volumes.create(name, size).id}.img"
        path.write_bytes(original[: 4 << 20] if size == "4M" else original)
        return path

    whole, repo, chunks = backup_of("whole", random.Random(7).randbytes(8 << 20))  # 8 distinct chunks, no zeros
    small = target("small", "4M")  # refused before any write: too small for the backup
    with pytest.raises(storage.errors.StorageError, match="the backup needs at least"):
        st.backups.restore(whole.id, to_volume="small")
    assert st.volumes.get("small").status is V.AVAILABLE and small.read_bytes() == original[: 4 << 20]

    delete_chunk(repo, chunks[-1].id)  # found missing before the first write
    untouched = target("untouched")
    with pytest.raises(storage.errors.StorageError, match="is missing"):
        st.backups.restore(whole.id, to_volume="untouched")
    vol = st.volumes.get("untouched")
    assert vol.status is V.AVAILABLE and vol.error_reason is None and untouched.read_bytes() == original

    half, repo, chunks = backup_of("half-zero", random.Random(8).randbytes(4 << 20) + bytes(4 << 20))
    delete_chunk(repo, chunks[0].id)
    over = target("over")
    with pytest.raises(storage.errors.StorageError, match="is missing"):
        st.backups.restore(half.id, to_volume="over")
    vol = st.volumes.get("over")
    assert vol.status is V.ERROR, vol.status
    assert vol.error_reason is not None
    assert vol.error_reason.startswith(f"restore of backup {half.id} over the volume's data failed: "), vol.error_reason
    assert over.read_bytes()[4 << 20:] == bytes(4 << 20)  # its zero chunks were written: available would be a lie
