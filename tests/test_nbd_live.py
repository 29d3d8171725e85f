"""Live restore for real (`backup restore --new-volume X --live`): nbdkit with the read-write live
plugin serves the new volume at once; qemu-io/qemu-img (qemu-utils) read it over nbd:// and compare
it with the source while the background copy runs (slowed with --copy-rate), write at several
offsets (inside a chunk, a whole chunk, across a chunk boundary, into a zero run, over a chunk
already restored), and the finished volume file is backup + writes; nbdkit or the storagectl
process killed with SIGKILL mid-way leaves the volume error/restoring-backup and `--resume` finishes
it correctly. Plain and encrypted repositories. A running live restore is a served export of kind
live-restore (GET /backups/serves), its backup's delete (409) and its repository's gc are refused
naming it, and its row goes when it finishes, is stopped, fails or its process is killed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import storage
from storage.errors import Conflict, StorageError
from storage.nbd.live_service import live_restore, resume_live, state_dir
from storage.nbd.server import find_nbdkit
from tests.api_server import api_server, free_port  # noqa: F401 - fixture
from tests.backup_helpers import MIB, flip_byte, make_image


def _missing() -> str | None:
    if subprocess.run(["sh", "-c", "command -v qemu-io && command -v qemu-img"], capture_output=True).returncode:
        return "qemu-img/qemu-io missing: install qemu-utils (scripts/apt-packages.txt)"
    try:
        find_nbdkit()
    except StorageError as exc:
        return exc.message
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
STORAGECTL = str(Path(sys.executable).parent / "storagectl")
SIZE = 10 * MIB + 4096
RATE = MIB  # the copy takes ~10 s: every client request below lands while it runs
# (offset, length, pattern byte): inside chunk 9, the whole of chunk 8, across the 3 MiB boundary,
# into the zero run (chunk 5), over chunk 0 (restored first by the copy)
WRITES = [(9 * MIB + 100, 4096, 0xA1), (8 * MIB, MIB, 0xB2), (3 * MIB - 2048, 8192, 0xC3), (5 * MIB + 10, 512, 0xD4),
          (4096, 4096, 0xE5)]


def image(tmp_path: Path) -> Path:
    return make_image(tmp_path / "img", SIZE, seed=7, data_ranges=[(0, 4 * MIB), (7 * MIB, 3 * MIB + 4096)],
                      zero_ranges=[(5 * MIB, MIB)])


def qemu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def write(uri: str, offset: int, length: int, pattern: int) -> None:
    io = qemu("qemu-io", "-f", "raw", "-c", f"write -P {pattern} {offset} {length}", uri)
    assert io.returncode == 0 and "wrote" in io.stdout, io.stdout + io.stderr


def expected(src: Path, writes: list[tuple[int, int, int]]) -> bytes:
    data = bytearray(src.read_bytes())
    for off, length, pattern in writes:
        data[off: off + length] = bytes([pattern]) * length
    return bytes(data)


def same_as(uri: str, want: bytes, tmp_path: Path) -> bool:
    ref = tmp_path / "want.raw"
    ref.write_bytes(want)
    cmp = qemu("qemu-img", "compare", "-f", "raw", "-F", "raw", str(ref), uri)
    assert cmp.returncode in (0, 1), cmp.stderr
    return cmp.returncode == 0


def volume_bytes(st: storage.Storage, name: str) -> bytes:
    vol = st.volumes.get(name)
    with st.host.open_volume(vol.pool, vol.id) as path:
        return Path(path).read_bytes()[:SIZE]


def backup_of(st: storage.Storage, tmp_path: Path, encrypted: bool) -> tuple[Path, str]:
    src = image(tmp_path)
    key = st.backups.create_key(tmp_path / "key") if encrypted else None
    b = st.backups.create(str(src), repository=f"file://{tmp_path}/data/objects/enc" if key else None,
                          encryption_key_file=str(key) if key else None)
    return src, b.id


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_live_restore_is_read_and_written_while_it_copies(st: storage.Storage, tmp_path: Path, encrypted: bool) -> None:
    src, backup_id = backup_of(st, tmp_path, encrypted)
    with live_restore(st, backup_id, "live1", port=free_port(), copy_rate=RATE, echo=False) as run:
        assert run.uri.endswith("/live1") and run.info.encrypted is encrypted and run.info.chunk_count == 11
        assert st.volumes.get("live1").status.value == "restoring-backup"
        # reads before the copy got there: fetched on demand, the source's bytes
        io = qemu("qemu-io", "-r", "-f", "raw", "-c", f"read -v {7 * MIB + 4093} 6", "-c", f"read -P 0 {5 * MIB} {MIB}",
                  run.uri)
        assert io.returncode == 0 and "Pattern verification failed" not in io.stdout, io.stdout + io.stderr
        assert " ".join(f"{x:02x}" for x in src.read_bytes()[7 * MIB + 4093: 7 * MIB + 4099]) in io.stdout
        for off, length, pattern in WRITES:
            write(run.uri, off, length, pattern)
        done, total = run.progress()
        assert done < total, "the copy finished before the client requests: they did not test a live restore"
        want = expected(src, WRITES)
        assert same_as(run.uri, want, tmp_path)  # while the copy runs: backup + writes through the export
        assert run.wait_restored(timeout=60)
        assert st.volumes.get("live1").status.value == "available"
        assert same_as(run.uri, want, tmp_path)  # still served after the end, same bytes
    assert volume_bytes(st, "live1") == want  # the copy never overwrote a written region
    assert not state_dir(st, st.volumes.get("live1").id).exists()
    summary = next(m for m in run.server.messages if "live restore stopped" in m)
    assert "11/11 chunks restored" in summary and "1 overwritten" in summary, summary
    fetched, requests = map(int, re.search(r"fetched (\d+) chunks in (\d+) requests", summary).groups())  # type: ignore[union-attr]
    assert requests < fetched <= 8, summary  # 8 stored chunks; neighbours in one ranged GET (read-ahead, the copy's window)


def test_nbdkit_killed_mid_way_leaves_error_and_resume_finishes(st: storage.Storage, tmp_path: Path) -> None:
    src, backup_id = backup_of(st, tmp_path, False)
    writes = WRITES[:3]
    run = live_restore(st, backup_id, "live2", port=free_port(), copy_rate=RATE, echo=False)
    with run:
        for off, length, pattern in writes:
            write(run.uri, off, length, pattern)
        assert run.server is not None and run.server.pid is not None
        os.kill(run.server.pid, signal.SIGKILL)
        assert run.wait_restored(timeout=30) is False
        assert run.result is not None and "nbdkit exited with status -9" in run.result[1]
    vol = st.volumes.get("live2")
    assert vol.status.value == "error" and "live restore incomplete" in (vol.description or "")
    assert "--resume" in (vol.description or "")
    with resume_live(st, "live2", port=free_port(), echo=False) as again:
        assert st.volumes.get("live2").status.value == "restoring-backup"
        assert 0 < again.info.restored_chunks < again.info.chunk_count  # it goes on from the bitmap
        assert again.wait_restored(timeout=60)
    assert st.volumes.get("live2").status.value == "available" and st.volumes.get("live2").description is None
    assert volume_bytes(st, "live2") == expected(src, writes)


def test_cli_killed_mid_way_is_resumed_by_the_cli(st: storage.Storage, config_file: Path, tmp_path: Path) -> None:
    src, backup_id = backup_of(st, tmp_path, False)
    port = free_port()
    proc = subprocess.Popen([STORAGECTL, "-c", str(config_file), "backup", "restore", backup_id, "--new-volume", "live3",
                             "--live", "--port", str(port), "--copy-rate", "1M", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first, proc.stderr.read() if proc.stderr else ""
    info = json.loads(first)
    assert info["uri"] == f"nbd://127.0.0.1:{port}/live3" and info["volume_name"] == "live3"
    write(info["uri"], *WRITES[0])
    (served,) = st.backups.serves()  # the CLI's row, seen from this process
    assert (served.kind, served.uri, served.pid) == ("live-restore", info["uri"], info["pid"])
    time.sleep(1.5)
    proc.kill()  # SIGKILL: nbdkit follows (--exit-with-parent), its cleanup persists the bitmap
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while st.backups.serves():  # its row is reaped once nbdkit is gone (the listing checks its pid and start time)
        assert time.monotonic() < deadline, "nbdkit outlived its killed parent"
        time.sleep(0.2)
    assert st.backups.serving.count() == 0
    assert st.volumes.get("live3").status.value == "error"  # its owner is dead: reads settle it, never 'available'
    done = subprocess.run([STORAGECTL, "-c", str(config_file), "backup", "restore", "--resume", "live3", "--port",
                           str(free_port()), "--until-restored", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert lines[0]["volume_name"] == "live3" and lines[0]["restored_chunks"] > 0
    assert lines[-1] == {"volume": "live3", "status": "available", "restored_chunks": 11, "chunks": 11}
    assert volume_bytes(st, "live3") == expected(src, WRITES[:1])


def test_bad_live_requests_are_refused_in_one_sentence(st: storage.Storage, config_file: Path, tmp_path: Path) -> None:
    _src, backup_id = backup_of(st, tmp_path, False)
    cases = [
        (["backup", "restore", backup_id, "--live", "--to-path", str(tmp_path / "x")], "--live restores into a new volume only"),
        (["backup", "restore", backup_id, "--live"], "--live needs --new-volume NAME"),
        (["backup", "restore", "--resume", "nosuch"], "not found"),
        (["backup", "restore", backup_id, "--new-volume", "v", "--live", "--copy-rate", "lots"], "copy_rate"),
        (["backup", "restore", backup_id, "--new-volume", "v", "--live", "--host", "example.org"], "example.org"),
    ]
    for args, says in cases:
        proc = subprocess.run([STORAGECTL, "-c", str(config_file), *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode not in (0, 1) and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert says in proc.stderr, (args, proc.stderr)
    st.volumes.create("plain", "1M")
    with pytest.raises(StorageError, match="no live restore to resume"):
        resume_live(st, "plain", port=free_port())
    assert [v.name for v in st.volumes.list()] == ["plain"]  # nothing created by the refused requests


def test_a_chunk_that_does_not_verify_stops_the_copy_and_leaves_error(st: storage.Storage, tmp_path: Path) -> None:
    src, backup_id = backup_of(st, tmp_path, False)
    repo = st.backups.open_repository(st.backups.get(backup_id).repository)
    bad = repo.read_manifest(repo.location.store, backup_id).chunks[2]
    assert bad is not None
    flip_byte(repo, bad.id, position=100)
    with live_restore(st, backup_id, "live4", port=free_port(), echo=False) as run:
        io = qemu("qemu-io", "-f", "raw", "-c", f"read {2 * MIB + 8192} 4096", run.uri)
        assert "Input/output error" in io.stdout + io.stderr, io.stdout + io.stderr  # never other bytes
        assert run.wait_restored(timeout=60) is False
        assert run.result is not None and run.result[0] == "failed" and f"chunk={bad.id}" in run.result[1]
        good = qemu("qemu-io", "-f", "raw", "-c", "read -v 0 4", run.uri)  # the rest still reads
        assert good.returncode == 0 and " ".join(f"{x:02x}" for x in src.read_bytes()[:4]) in good.stdout
    vol = st.volumes.get("live4")
    assert vol.status.value == "error" and bad.id[:20] in (vol.description or ""), vol.description
    assert st.backups.serving.count() == 0  # failed and stopped: its row went with it
    assert st.backups.get(backup_id).status == "damaged"  # as a restore does


def test_a_live_restore_is_a_served_export_that_holds_its_backup(st: storage.Storage, tmp_path: Path, api_server) -> None:  # type: ignore[no-untyped-def]
    _src, backup_id = backup_of(st, tmp_path, False)
    with live_restore(st, backup_id, "live5", port=free_port(), copy_rate=RATE, echo=False) as run:
        vid = run.info.volume_id
        (served,) = st.backups.serves()
        assert run.server is not None and served.id == run.served_id
        assert (served.kind, served.volume_id, served.backup_id, served.uri, served.pid, served.expires_at) == (
            "live-restore", vid, backup_id, run.uri, run.server.pid, None)
        with api_server.client() as c:
            listed = c.get("/backups/serves")
            assert listed.status_code == 200 and [(e["kind"], e["volume_id"], e["id"]) for e in listed.json()] == [
                ("live-restore", vid, served.id)], listed.text
            r = c.delete(f"/backups/{backup_id}")
            assert r.status_code == 409 and f"live restore into volume {vid} at {run.uri}" in r.text, r.text
            r = c.post("/backups/gc", json={})
            assert r.status_code == 409 and f"garbage-collected while its chunks are read by live restore into volume {vid}" in r.text, r.text
        with pytest.raises(Conflict, match=f"backup {backup_id} cannot be deleted while its chunks are read by live restore"):
            st.backups.delete(backup_id)
        with pytest.raises(Conflict, match=f"cannot be garbage-collected while its chunks are read by live restore into volume {vid}"):
            st.backups.gc(grace_seconds=0)
        done, total = run.progress()
        assert done < total, "the restore ended before the refusals: they did not test a running one"
        assert st.backups.get(backup_id).status == "available"
        assert run.wait_restored(timeout=60)
        assert st.backups.serves() == []  # finished: the backup is read no more (the volume is still served)
    with live_restore(st, backup_id, "live6", port=free_port(), copy_rate=RATE, echo=False) as run:
        assert [e.volume_id for e in st.backups.serves()] == [run.info.volume_id]
    assert st.backups.serves() == [] and st.volumes.get("live6").status.value == "error"  # stopped half-way
    st.backups.delete(backup_id)  # nothing reads it now


DURABLE_CASES = [
    (8 * MIB, MIB, 0, [8]),  # a whole chunk: marked, nothing fetched
    (9 * MIB + 100, 4096, 1, [9]),  # part of a chunk: the backup's chunk first, then the write
    (3 * MIB - 2048, 8192, 2, [2, 3]),  # across a boundary: both parts fetched
    (5 * MIB + 10, 512, 0, [5]),  # the zero run: restored from the start
]


def test_a_write_is_durably_marked_before_it_returns(st: storage.Storage, tmp_path: Path) -> None:
    """The engine alone (no nbdkit), one fresh volume per case: after write() returns, the bitmap
    FILE has the chunk's bit (a copy resumed after a crash skips it); the bytes around the write
    are the backup's; a whole chunk is not fetched at all."""
    from storage.nbd.bitmap import RestoreBitmap, read_count
    from storage.nbd.live import LiveVolume
    from storage.nbd.live_service import _fresh_bitmap
    from storage.nbd.reader import BackupReader

    src, backup_id = backup_of(st, tmp_path, False)
    repo = st.backups.open_repository(st.backups.get(backup_id).repository)
    manifest = repo.read_manifest(repo.location.store, backup_id)
    for n, (offset, length, fetched, chunks) in enumerate(DURABLE_CASES):
        target, bits = tmp_path / f"vol{n}.raw", tmp_path / f"bitmap{n}"
        target.write_bytes(b"")
        os.truncate(target, SIZE)
        _fresh_bitmap(bits, manifest)
        before = read_count(bits, 11)
        reader = BackupReader(repo, manifest)
        live = LiveVolume(reader, str(target), RestoreBitmap(bits, 11))
        try:
            live.write(bytes([0x77]) * length, offset)
            assert reader.stats.chunks_fetched == fetched, (offset, length)
            on_disk = RestoreBitmap(bits, 11)  # what a crash right now would leave
            assert all(on_disk.is_set(i) for i in chunks), (offset, length)
            assert read_count(bits, 11) == before + len([i for i in chunks if manifest.chunks[i] is not None])
            on_disk.close()
            want = expected(src, [(offset, length, 0x77)])
            first, last = chunks[0] * MIB, (chunks[-1] + 1) * MIB
            assert target.read_bytes()[first:last] == want[first:last], (offset, length)
        finally:
            live.close()
            reader.close()


def test_states_of_deleted_volumes_are_pruned(st: storage.Storage) -> None:
    from storage.nbd.live_service import prune_states

    kept = st.volumes.create("kept", "1M")
    for vid in (kept.id, "00000000-0000-0000-0000-00000000dead"):
        state_dir(st, vid).mkdir(parents=True)
        (state_dir(st, vid) / "bitmap").write_bytes(b"\0")
    assert prune_states(st) == ["00000000-0000-0000-0000-00000000dead"]
    assert state_dir(st, kept.id).exists() and not state_dir(st, "00000000-0000-0000-0000-00000000dead").exists()
