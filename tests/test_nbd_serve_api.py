"""A backup served by the API host (POST /backups/{id}/serve): qemu-img reads it over nbd:// and
nbd+unix:// and compares it byte for byte with the volume; GET /backups/serves lists it, DELETE
stops it (nbdkit gone); a reader may not serve; bad bodies are 422 naming the field; a TTL ends
an export on its own; a killed nbdkit is reaped from the list; the library does the same."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

import storage
from storage import owners
from storage.errors import Busy, Conflict, InvalidInput
from storage.nbd import managed
from tests.api_server import STORAGECTL, ApiServer, api_server, free_port  # noqa: F401 - fixtures
from tests.test_api_backups import fill_volume, wait_job
from tests.test_nbd_serve import _missing, qemu

pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
MiB = 1024 * 1024


def volume_file(config: Path, name: str) -> bytes:
    with storage.open(config) as st:
        vol = st.volumes.get(name)
        with st.host.volume_backend(vol.pool).open_volume(vol.id) as path, open(path, "rb") as fh:
            return fh.read()


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not owners.pid_alive(pid) or Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


def test_serve_through_the_api(api_server: ApiServer, tmp_path: Path) -> None:
    rng = random.Random(17)
    with api_server.client("operator") as c, api_server.client("reader") as r:
        assert c.post("/volumes", json={"name": "sv", "size": "6M"}).status_code == 201
        fill_volume(api_server.config, "sv", rng.randbytes(MiB), 0)
        fill_volume(api_server.config, "sv", rng.randbytes(MiB + 512), 3 * MiB)
        job = c.post("/backups", json={"volume": "sv"}).json()
        assert wait_job(c, job["id"])["state"] == "succeeded"
        backup_id = job["params"]["backup_id"]
        source = tmp_path / "vol.raw"
        source.write_bytes(volume_file(api_server.config, "sv"))

        # a reader sees the list but cannot start or stop an export
        assert r.post(f"/backups/{backup_id}/serve", json={"port": free_port()}).status_code == 403
        # bounded, validated bodies: 422 naming the field
        for bad, field in [({"port": 80}, "port"), ({"host": "0.0.0.0", "port": free_port()}, "host"),
                           ({"socket": "../x"}, "socket"), ({"ttl_seconds": 0}, "ttl_seconds"),
                           ({"cache_size": "2G"}, "cache_size"), ({"export_name": "a b"}, "export_name"),
                           ({"socket": "s", "port": free_port()}, "socket"), ({"colour": 1}, "colour")]:
            resp = c.post(f"/backups/{backup_id}/serve", json=bad)
            assert resp.status_code == 422 and field in resp.text, (bad, resp.text)
        assert c.post("/backups/0c2d3e4f-0000-4000-8000-000000000000/serve", json={}).status_code == 404

        port = free_port()
        resp = c.post(f"/backups/{backup_id}/serve", json={"port": port, "export_name": "sv-copy", "ttl_seconds": 600})
        assert resp.status_code == 201, resp.text
        tcp = resp.json()
        assert tcp["uri"] == f"nbd://127.0.0.1:{port}/sv-copy" and tcp["backup_id"] == backup_id
        assert resp.headers["location"] == f"/backups/serves/{tcp['id']}"
        # same port again: 409, not a second nbdkit failing to bind
        again = c.post(f"/backups/{backup_id}/serve", json={"port": port})
        assert again.status_code == 409 and str(port) in again.text
        busy = c.post(f"/backups/{backup_id}/serve", json={"port": api_server.port})  # the API's own port
        assert busy.status_code == 409 and "another program has it" in busy.text, busy.text
        unix = c.post(f"/backups/{backup_id}/serve", json={"socket": "sv"}).json()
        sock = api_server.config.parent / "run" / "nbd" / "sv.sock"
        assert unix["uri"] == f"nbd+unix:///{backup_id}?socket={sock}"

        for uri in (tcp["uri"], unix["uri"]):
            cmp = qemu("qemu-img", "compare", "-f", "raw", "-F", "raw", str(source), uri)
            assert cmp.returncode == 0, cmp.stdout + cmp.stderr
        io = qemu("qemu-io", "-r", "-f", "raw", "-c", f"read -v {3 * MiB + 4093} 6", tcp["uri"])
        want = source.read_bytes()[3 * MiB + 4093: 3 * MiB + 4099]
        assert io.returncode == 0 and " ".join(f"{x:02x}" for x in want) in io.stdout, io.stdout + io.stderr

        listed = r.get("/backups/serves").json()
        assert {e["id"] for e in listed} == {tcp["id"], unix["id"]}
        assert all(e["pid"] and "nbdkit" in Path(f"/proc/{e['pid']}/cmdline").read_text() for e in listed)

        assert r.delete(f"/backups/serves/{tcp['id']}").status_code == 403
        assert c.delete(f"/backups/serves/{tcp['id']}").status_code == 204
        assert gone(tcp["pid"]), "nbdkit still runs after DELETE"
        assert qemu("qemu-io", "-r", "-f", "raw", "-c", "read 0 512", tcp["uri"]).returncode != 0
        assert [e["id"] for e in c.get("/backups/serves").json()] == [unix["id"]]
        assert c.delete(f"/backups/serves/{tcp['id']}").status_code == 404

        # an nbdkit killed behind the API's back is reaped from the list
        os.kill(unix["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while c.get("/backups/serves").json() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.get("/backups/serves").json() == []

        # the CLI asks the API host (--api): an operator token serves, a reader's is refused with exit 8
        token = tmp_path / "op.token"
        token.write_text(api_server.tokens["operator"])
        reader_token = tmp_path / "reader.token"
        reader_token.write_text(api_server.tokens["reader"])
        cli_port = free_port()
        out = subprocess.run([STORAGECTL, "backup", "serve", backup_id, "--api", api_server.url, "--token-file", str(token),
                              "--port", str(cli_port), "--ttl", "300", "--json"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        cli = json.loads(out.stdout)
        assert cli["uri"] == f"nbd://127.0.0.1:{cli_port}/{backup_id}"
        assert qemu("qemu-img", "compare", "-f", "raw", "-F", "raw", str(source), cli["uri"]).returncode == 0
        assert c.delete(f"/backups/serves/{cli['id']}").status_code == 204 and gone(cli["pid"])
        refused = subprocess.run([STORAGECTL, "backup", "serve", backup_id, "--api", api_server.url, "--token-file",
                                  str(reader_token), "--port", str(free_port())], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 8 and "refused" in refused.stderr, refused.stderr

        # a short TTL: the export stops on its own
        short = c.post(f"/backups/{backup_id}/serve", json={"port": free_port(), "ttl_seconds": 1}).json()
        assert gone(short["pid"], timeout=15), "an expired export still runs"
        assert c.get("/backups/serves").json() == []

        # a graceful API stop ends its exports and drops their rows
        last = c.post(f"/backups/{backup_id}/serve", json={"port": free_port()}).json()
    api_server.stop()
    assert gone(last["pid"])
    with storage.open(api_server.config) as st:
        assert st.backups.serving.count() == 0  # dropped at shutdown, not merely reaped later


def test_library_serve_bounds_and_lifecycle(st: storage.Storage, tmp_path: Path) -> None:
    src = tmp_path / "img"
    src.write_bytes(random.Random(3).randbytes(2 * MiB))
    b = st.backups.create(str(src))
    with pytest.raises(InvalidInput, match="loopback"):
        st.backups.serve(b.id, host="198.18.0.1", port=free_port())
    with pytest.raises(InvalidInput, match="ttl_seconds"):
        st.backups.serve(b.id, port=free_port(), ttl_seconds=managed.TTL_MAX + 1)
    served = st.backups.serve(b.id, port=free_port())
    try:
        assert (served.expires_at - served.started_at).total_seconds() == managed.TTL_DEFAULT
        with pytest.raises(Conflict):
            st.backups.serve(b.id, port=int(served.uri.split(":")[2].split("/")[0]))
        with pytest.raises(Conflict, match="cannot be deleted while its chunks are read by serve at"):  # not from under its readers
            st.backups.delete(b.id)
        st.backups.serving.max_serves = 1  # the bound (8 by default), without starting eight nbdkits
        with pytest.raises(Busy, match="at most 1"):
            st.backups.serve(b.id, port=free_port())
        cmp = qemu("qemu-img", "compare", "-f", "raw", "-F", "raw", str(src), served.uri)
        assert cmp.returncode == 0, cmp.stdout + cmp.stderr
        assert [e.id for e in st.backups.serves(b.id)] == [served.id]
    finally:
        st.backups.stop_serve(served.id)
    assert served.pid is not None and gone(served.pid)
    assert st.backups.serves() == []


@pytest.mark.parametrize("key,expected", [
    (("127.0.0.1", 10809, None), "tcp:127.0.0.1:10809"),
    (("::1", 2000, None), "tcp:::1:2000"),
    ((None, None, "/d/run/nbd/a.sock"), "unix:/d/run/nbd/a.sock"),
])
def test_listen_key(key: tuple, expected: str) -> None:
    from storage.nbd.server import Listen

    host, port, sock = key
    listen = Listen(socket=sock) if sock else Listen(host=host, port=port)
    assert managed.listen_key(listen) == expected


@pytest.mark.parametrize("host,port,ok", [
    ("127.0.0.1", 1024, True), ("127.9.9.9", 65535, True), ("::1", 5000, True), (None, None, True),
    ("0.0.0.0", 5000, False), ("198.18.0.1", 5000, False), ("localhost", 5000, False),
    ("127.0.0.1", 1023, False), ("127.0.0.1", 65536, False), ("127.0.0.1", True, False),
])
def test_check_loopback(host: str | None, port: object, ok: bool) -> None:
    if ok:
        assert managed.check_loopback(host, port)[0] == (host or "127.0.0.1")  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidInput):
            managed.check_loopback(host, port)  # type: ignore[arg-type]


@pytest.mark.parametrize("name,ok", [("a", True), ("db1.x-y_z", True), ("../x", False), ("", False), (".a", False),
                                     ("a" * 65, False), ("a/b", False)])
def test_socket_path(name: str, ok: bool) -> None:
    if ok:
        assert managed.socket_path(Path("/d"), name) == f"/d/run/nbd/{name}.sock"
    else:
        with pytest.raises(InvalidInput):
            managed.socket_path(Path("/d"), name)


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("forbidden", 403, "PermissionDenied"), ("not_found", 404, "NotFound"), ("invalid_input", 422, "InvalidInput"),
    ("busy", 409, "Busy"), (None, 409, "Conflict"), ("made_up", 500, "BackendError"), ("unsupported", 501, "Unsupported"),
])
def test_api_error_class(code: str | None, status: int, expected: str) -> None:
    from storage.nbd.api_client import error_class

    assert error_class(code, status).__name__ == expected
