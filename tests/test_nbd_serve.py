"""`backup serve` for real: nbdkit with its Python plugin serves a backup, qemu-img and qemu-io
(qemu-utils) read it over nbd:// and nbd+unix:// and compare it byte for byte with the source, on
plain, encrypted and Swift repositories; a corrupted pack fails the read with an I/O error; a
repository without catalog works; no key or store password reaches nbdkit's command line or output."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import storage
from storage.cli.main import main
from storage.errors import StorageError
from storage.nbd.server import find_nbdkit
from storage.nbd.service import serve
from tests.api_server import free_port
from tests.backup_helpers import MIB, flip_byte, make_image, swift_backup_config



def _missing() -> str | None:
    """Why nbdkit cannot serve here (the check `backup serve` itself makes), or None."""
    if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
        return "qemu-img/qemu-io missing: install qemu-utils (scripts/apt-packages.txt)"
    try:
        find_nbdkit()
    except StorageError as exc:
        return exc.message
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
STORAGECTL = str(Path(sys.executable).parent / "storagectl")
SIZE = 10 * MIB + 4096  # a multiple of 512: qemu rounds an export's size up to sectors


def image(tmp_path: Path) -> Path:
    return make_image(tmp_path / "img", SIZE, seed=5, data_ranges=[(0, 4 * MIB), (7 * MIB, 3 * MIB + 4096)],
                      zero_ranges=[(5 * MIB, MIB)])


def qemu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def identical(source: Path, uri: str) -> bool:
    """qemu-img compare (byte for byte, both whole) and a qemu-io read at an odd offset."""
    cmp = qemu("qemu-img", "compare", "-f", "raw", "-F", "raw", str(source), uri)
    assert cmp.returncode in (0, 1), cmp.stderr
    return cmp.returncode == 0


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_serve_reads_back_the_source(st: storage.Storage, tmp_path: Path, encrypted: bool) -> None:
    src = image(tmp_path)
    key = st.backups.create_key(tmp_path / "key") if encrypted else None
    b = st.backups.create(str(src), repository=f"file://{tmp_path}/data/objects/enc" if key else None,
                          encryption_key_file=str(key) if key else None)
    with serve(st, b.id, port=free_port(), echo=False) as export:
        assert export.uri.startswith("nbd://127.0.0.1:") and export.uri.endswith("/" + b.id)
        assert export.info.encrypted is encrypted and export.info.size_bytes == SIZE
        assert identical(src, export.uri)
        out = tmp_path / "copy.raw"
        conv = qemu("qemu-img", "convert", "-f", "raw", "-O", "raw", export.uri, str(out))
        assert conv.returncode == 0, conv.stderr
        assert out.read_bytes() == src.read_bytes()
        io = qemu("qemu-io", "-r", "-f", "raw", "-c", f"read -P 0 {5 * MIB} {MIB}", "-c", f"read -v {MIB + 4093} 6", export.uri)
        assert io.returncode == 0 and "Pattern verification failed" not in io.stdout, io.stdout + io.stderr
        want = src.read_bytes()[MIB + 4093: MIB + 4099]
        assert " ".join(f"{x:02x}" for x in want) in io.stdout
    assert export.server.proc is not None and export.server.proc.poll() is not None  # stopped with the context
    # read-ahead through nbdkit: the sequential copies took fewer GETs than chunks (neighbours in one ranged GET)
    summary = next(m for m in export.server.messages if "storage-nbd: served" in m)
    fetched, requests = map(int, re.search(r"fetched (\d+) chunks in (\d+) requests", summary).groups())  # type: ignore[union-attr]
    assert fetched == 8 and requests < fetched, summary  # 8 stored chunks, each fetched once (cache)


def test_a_corrupted_pack_fails_the_read_with_an_io_error(st: storage.Storage, tmp_path: Path) -> None:
    src = image(tmp_path)
    b = st.backups.create(str(src))
    repo = st.backups.open_repository(b.repository)
    bad = repo.read_manifest(repo.location.store, b.id).chunks[2]
    assert bad is not None
    flip_byte(repo, bad.id, position=100)
    with serve(st, b.id, port=free_port(), echo=False) as export:
        io = qemu("qemu-io", "-r", "-f", "raw", "-c", f"read {2 * MIB + 8192} 4096", export.uri)
        assert "Input/output error" in io.stdout + io.stderr, io.stdout + io.stderr
        conv = qemu("qemu-img", "convert", "-f", "raw", "-O", "raw", export.uri, str(tmp_path / "copy"))
        assert conv.returncode != 0 and "Input/output error" in conv.stderr
        good = qemu("qemu-io", "-r", "-f", "raw", "-c", "read -v 0 4", export.uri)  # the rest still reads
        assert good.returncode == 0 and " ".join(f"{x:02x}" for x in src.read_bytes()[:4]) in good.stdout
        time.sleep(0.2)
        assert any(f"chunk {bad.id}" in m for m in export.server.messages)
    # like a restore: the backup is marked damaged and that copy quarantined (the next backup re-uploads it)
    assert st.backups.get(b.id).status == "damaged"
    loc = repo.load_index(repo.location.store)
    assert bad.id not in loc.locations and any(bad.id in ids for ids in loc.quarantined.values())


def start_cli(config: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([STORAGECTL, "-c", str(config), "backup", "serve", *args, "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        raise AssertionError(f"serve failed ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
    return proc, json.loads(line)


def stop_cli(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_cli_serves_a_repository_without_catalog_on_a_unix_socket(st: storage.Storage, tmp_path: Path) -> None:
    src = image(tmp_path)
    key = st.backups.create_key(tmp_path / "key")
    url = f"file://{tmp_path}/store/repo"
    b = st.backups.create(str(src), repository=url, encryption_key_file=str(key))
    other = tmp_path / "elsewhere"  # another host's config: an empty catalog, no record of the backup
    other.mkdir()
    (other / "storage.toml").write_text(f'data_dir = "{other}"\n')
    sock = str(tmp_path / "nbd.sock")
    proc, info = start_cli(other / "storage.toml", "--repository", url, "--manifest", b.id, "-k", str(key), "--socket", sock,
                           "--name", "db1-copy")
    try:
        assert info["uri"] == f"nbd+unix:///db1-copy?socket={sock}" and info["backup_id"] == b.id
        assert identical(src, info["uri"])
        wrong = qemu("qemu-io", "-r", "-f", "raw", "-c", "read 0 512", f"nbd+unix:///other?socket={sock}")
        assert wrong.returncode != 0
        cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
        secret = key.read_text().strip()
        assert cmdline[-1].startswith("spec=") and not any(secret in part for part in cmdline)
        assert not Path(cmdline[-1][5:]).exists()  # the spec file is gone once nbdkit serves
        environ = Path(f"/proc/{info['pid']}/environ").read_bytes().decode(errors="replace")
        assert secret not in environ
    finally:
        code, err = stop_cli(proc)
    assert code == 0 and secret not in err
    assert not Path(f"/proc/{info['pid']}").exists() or "zombie" in Path(f"/proc/{info['pid']}/status").read_text().lower()
    repo = st.backups.open_repository(url, key_file=str(key))
    assert list(repo.location.store.list_objects(repo.container, prefix=repo.object_name("locks/"))) == []


def test_swift_store_password_stays_out_of_nbdkit(tmp_path: Path, data_dir: Path, swift_options: dict[str, Any]) -> None:
    """Swift all-in-one (session fixture); the store key lives only in the config file nbdkit's plugin reads."""
    cfg = swift_backup_config(data_dir, swift_options, "swift://swift@nbd-serve")
    src = image(tmp_path)
    with storage.open(cfg) as s:
        b = s.backups.create(str(src))
    proc, info = start_cli(cfg, b.id, "--port", str(free_port()))
    try:
        assert identical(src, info["uri"])
        cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes().decode()
        assert str(swift_options["key"]) not in cmdline
    finally:
        code, err = stop_cli(proc)
    assert code == 0 and str(swift_options["key"]) not in err


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["--port", "0"], 2, "port 0 is not accepted; accepted: 1 to 65535"),
        (["--host", "example.org"], 2, "listen address 'example.org' is not accepted"),
        (["--cache-size", "1K"], 2, "cache size 1024 is not accepted; accepted: 4M to 64G"),
        (["--readahead", "999"], 2, "readahead 999 is out of range; accepted: a number of chunks from 0 to 256"),
        (["--name", "a/b"], 2, "export name 'a/b' is not accepted"),
    ],
)
def test_cli_refuses_bad_options(capsys: pytest.CaptureFixture[str], config_file: Path, args: list[str], code: int,
                                 message: str) -> None:
    got = main(["-c", str(config_file), "backup", "serve", "6f1b8a1e-5d2c-4c3b-9a1f-0e2d3c4b5a69", *args])
    assert got == code and message in capsys.readouterr().err


def test_cli_unknown_backup_is_not_found(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    assert main(["-c", str(config_file), "backup", "serve", "6f1b8a1e-5d2c-4c3b-9a1f-0e2d3c4b5a69"]) == 3
    assert "not found" in capsys.readouterr().err


def test_tls_psk_export_refuses_plain_clients_and_serves_the_keyed_one(st: storage.Storage, tmp_path: Path) -> None:
    src = image(tmp_path)
    b = st.backups.create(str(src))
    creds = tmp_path / "psk"
    creds.mkdir()
    psk = creds / "keys.psk"  # psktool's format; qemu's tls-creds-psk reads DIR/keys.psk
    psk.write_text(f"alice:{os.urandom(32).hex()}\n")
    psk.chmod(0o600)
    port = free_port()
    with serve(st, b.id, port=port, tls_psk=str(psk), echo=False) as export:
        assert export.uri == f"nbds://127.0.0.1:{port}/{b.id}"
        plain = qemu("qemu-io", "-r", "-f", "raw", "-c", "read 0 512", f"nbd://127.0.0.1:{port}/{b.id}")
        assert plain.returncode != 0
        keyed = qemu("qemu-img", "compare", "--object", f"tls-creds-psk,id=tls0,endpoint=client,dir={creds},username=alice",
                     "--image-opts", f"driver=file,filename={src}",
                     f"driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=127.0.0.1,file.server.port={port},"
                     f"file.export={b.id},file.tls-creds=tls0")
        assert keyed.returncode == 0, keyed.stdout + keyed.stderr


def test_tls_psk_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    from storage.errors import InvalidInput
    from storage.nbd.server import check_listen

    psk = tmp_path / "keys.psk"
    psk.write_text("alice:00\n")
    psk.chmod(0o644)
    with pytest.raises(InvalidInput, match="accepted: a regular file of mode 0600"):
        check_listen(None, None, None, str(psk))
    with pytest.raises(InvalidInput, match="cannot be read"):
        check_listen(None, None, None, str(tmp_path / "missing"))


def test_killed_serve_leaves_no_export_behind(st: storage.Storage, config_file: Path, tmp_path: Path) -> None:
    """kill -9 of `storagectl backup serve`: nbdkit (--exit-with-parent) exits too."""
    b = st.backups.create(str(make_image(tmp_path / "img", MIB, seed=3)))
    proc, info = start_cli(config_file, b.id, "--port", str(free_port()))
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{info['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{info['pid']}").exists(), "nbdkit outlived its storagectl"
