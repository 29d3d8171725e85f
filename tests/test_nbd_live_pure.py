"""The pure decisions of a live restore (which chunks a request covers, wholly or not; bit counts; the
plugin's outcome lines; nbdkit's command line) and the bitmap file's durability rules, on a real file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from storage.errors import InvalidInput
from storage.nbd.bitmap import Cover, RestoreBitmap, count_bits, covered, read_count
from storage.nbd.live_service import nbdkit_live_command, outcome
from storage.nbd.server import Listen

if TYPE_CHECKING:
    from storage.nbd.managed import ServedExport

K = 1024


@pytest.mark.parametrize(
    ("offset", "length", "size", "want"),
    [
        (0, 0, 4 * K, []),
        (0, K, 4 * K, [Cover(0, True)]),
        (0, 512, 4 * K, [Cover(0, False)]),
        (100, K, 4 * K, [Cover(0, False), Cover(1, False)]),
        (K, 2 * K, 4 * K, [Cover(1, True), Cover(2, True)]),
        (K - 1, K + 2, 4 * K, [Cover(0, False), Cover(1, True), Cover(2, False)]),
        (3 * K, 512, 3 * K + 512, [Cover(3, True)]),  # the short last chunk, wholly
        (3 * K, 256, 3 * K + 512, [Cover(3, False)]),
    ],
)
def test_covered(offset: int, length: int, size: int, want: list[Cover]) -> None:
    assert covered(offset, length, K, size) == want


@pytest.mark.parametrize(("offset", "length"), [(-1, 1), (0, 4 * K + 1), (4 * K, 1)])
def test_covered_refuses_requests_outside_the_image(offset: int, length: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        covered(offset, length, K, 4 * K)


@pytest.mark.parametrize(
    ("data", "n", "want"),
    [(b"", 0, 0), (b"\xff", 8, 8), (b"\xff", 3, 3), (b"\x01\x80", 16, 2), (b"\x01\x80", 9, 1), (b"\xff\xff\x07", 19, 19)],
)
def test_count_bits(data: bytes, n: int, want: int) -> None:
    assert count_bits(data, n) == want


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("nbdkit: python.3: debug: storage-nbd: live restore complete", ("complete", "")),
        ("storage-nbd: live restore failed: chunk abc is corrupt [chunk=ab pack=-]", ("failed", "chunk abc is corrupt [chunk=ab pack=-]")),
        ("storage-nbd: live restore stopped: 3/11 chunks restored", None),
        ("storage-nbd: read of 4096 bytes at 0 failed: x", None),
        ("", None),
    ],
)
def test_outcome_of_plugin_lines(line: str, want: tuple[str, str] | None) -> None:
    assert outcome(line) == want


def test_outcome_reason_is_bounded() -> None:
    found = outcome("storage-nbd: live restore failed: " + "x" * 5000)
    assert found is not None and len(found[1]) == 240


def test_nbdkit_live_command_is_read_write_and_holds_no_secret() -> None:
    cmd = nbdkit_live_command("/usr/sbin/nbdkit", Listen(port=10900), Path("/run/p.pid"), Path("/run/spec.json"))
    assert "--readonly" not in cmd and "--exit-with-parent" in cmd
    assert cmd[-3:-1] == ["python", str(Path(__file__).parent.parent / "storage" / "nbd" / "live_plugin.py")]
    assert cmd[-1] == "spec=/run/spec.json" and cmd[cmd.index("--port") + 1] == "10900"
    unix = nbdkit_live_command("nbdkit", Listen(socket="/run/s.sock"), Path("p"), Path("s"))
    assert unix[unix.index("--unix") + 1] == "/run/s.sock" and "--port" not in unix


def test_bitmap_persists_only_what_it_is_given_and_never_clears_a_bit(tmp_path: Path) -> None:
    path = tmp_path / "bitmap"
    bm = RestoreBitmap(path, 19)
    assert path.stat().st_size == 3 and read_count(path, 19) == 0
    bm.mark(0)
    old = bm.snapshot()  # taken before bit 18 is marked
    bm.mark(18)
    assert bm.count() == 2 and bm.durable_count() == 0 and read_count(path, 19) == 0  # memory ahead of the file
    bm.persist(bm.snapshot())
    assert read_count(path, 19) == 2 and bm.is_durable(18)
    bm.persist(old)  # an older snapshot written late does not clear bit 18
    assert read_count(path, 19) == 2
    bm.close()
    again = RestoreBitmap(path, 19)  # a restart reads the file back
    assert again.is_set(0) and again.is_set(18) and not again.is_set(1) and again.count() == 2
    again.close()


def test_bitmap_of_another_size_is_refused(tmp_path: Path) -> None:
    RestoreBitmap(tmp_path / "b", 16).close()
    with pytest.raises(InvalidInput, match="holds 2 bytes; 17 chunks need 3"):
        RestoreBitmap(tmp_path / "b", 17)
    with pytest.raises(InvalidInput, match="chunk count 0"):
        RestoreBitmap(tmp_path / "c", 0)


def _served(kind: str, n: int = 1) -> "ServedExport":
    from datetime import datetime, timezone

    from storage.nbd.managed import ServedExport

    return ServedExport(id=f"s{n}", backup_id="b1", export_name="x", uri=f"nbd://127.0.0.1:1080{n}/x", host_name="h1",
                        pid=100 + n, cache_bytes=0, size_bytes=1, started_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
                        expires_at=None, kind=kind, volume_id="v1" if kind == "live-restore" else None)  # fmt: skip


@pytest.mark.parametrize(
    ("kinds", "says"),
    [
        ([], None),
        (["serve"], ["refusing: backup b1 cannot be deleted while its chunks are read by serve at nbd://127.0.0.1:10801/x "
                     "(pid 101, host h1, served export s1)", "stop it first (DELETE /backups/serves/s1)"]),
        (["live-restore"], ["read by live restore into volume v1 at nbd://127.0.0.1:10801/x (pid 101",
                            "wait for the live restore to finish", "DELETE /backups/serves/s1: the volume is left in error"]),
        (["serve", "live-restore"], ["serve at nbd://127.0.0.1:10801/x", "; live restore into volume v1 at nbd://127.0.0.1:10802",
                                     "DELETE /backups/serves/s2"]),
    ],
)
def test_refusal_names_each_export_reading_the_backup(kinds: list[str], says: list[str] | None) -> None:
    from storage.nbd.managed import refusal

    text = refusal("backup b1 cannot be deleted", [_served(k, n + 1) for n, k in enumerate(kinds)])
    if says is None:
        assert text is None
    else:
        assert text is not None and all(s in text for s in says), text
