"""Paths from clients stay inside configured roots; backup data is not readable through object routes.

Pure rules (storage.paths, api.guards) are table-tested; the API cases run against a real server,
the download case against the real directory store.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import httpx
import pytest

import storage
from api.guards import check_key_file, check_repository, repository_container
from storage.config import Settings
from storage.errors import InvalidInput
from storage.paths import confined, encloses, store_root_problem
from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture
from tests.test_api_backups import fill_volume

SPEC = {"kind": "backup", "schedule": "0 * * * *", "selector": {"labels": {"tier": "x"}}, "retention": {"keep_last": 2}}


@pytest.mark.parametrize("outer,inner,inside", [
    ("/a", "/a", True), ("/a", "/a/b", True), ("/a/", "/a/b", True), ("/a", "/ab", False), ("/a/b", "/a", False),
    ("/", "/x", True), ("/a", "/a/../b", False), ("/a/./b", "/a/b/c", True),
])
def test_encloses(outer: str, inner: str, inside: bool) -> None:
    assert encloses(outer, inner) is inside


@pytest.mark.parametrize("root,refused", [
    ("/var/lib/storage", True), ("/var/lib", True), ("/", True), ("/var/lib/storage/objects", False),
    ("/srv/objects", False), ("/var/lib/storage-other", False),
])
def test_store_root_problem(root: str, refused: bool) -> None:
    assert (store_root_problem(root, "/var/lib/storage") is not None) is refused


def test_confined_resolves_symlinks_and_never_says_why(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "k").write_text("x")
    (keys / "sub").mkdir()
    (tmp_path / "outside").write_text("secret")
    os.symlink(tmp_path / "outside", keys / "escape")
    os.symlink(keys / "k", keys / "alias")
    assert confined(str(keys / "k"), [keys]) == keys / "k"
    assert confined(str(keys / "alias"), [keys]) == keys / "k"
    for bad in (str(tmp_path / "outside"), str(keys / "escape"), str(keys / "missing"), str(keys / "sub"),
                "keys/k", "", str(keys / "k") + "\x00", f"{keys}/../outside"):
        assert confined(bad, [keys]) is None, bad


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", object_stores={
        "sw": {"type": "swift", "auth_url": "http://127.0.0.1:1/auth/v1.0"},
        "extra": {"type": "file", "root": str(tmp_path / "extra")},
    })


def test_check_repository(settings: Settings) -> None:
    data = settings.data_dir
    assert check_repository(f"file://{data}/objects/backups", settings)
    assert check_repository("swift://sw@c/p", settings)
    for bad in (f"file://{data}", f"file://{data}/objects", f"file://{data}/pools", "file:///etc",
                f"file://{data}/objects/../keys", "ftp://x/y", "relative"):
        with pytest.raises(InvalidInput, match="not accepted over the API"):
            check_repository(bad, settings)


def test_check_key_file_same_answer_for_missing_and_forbidden(settings: Settings) -> None:
    key_dir = settings.backup.key_dir
    assert key_dir == settings.data_dir / "keys"
    key_dir.mkdir(parents=True)
    (key_dir / "k1").write_text("00" * 32)
    assert check_key_file(str(key_dir / "k1"), settings) == str(key_dir / "k1")
    answers = set()
    for bad in ("/root/.bashrc", "/etc/passwd", "/no/such/file", str(key_dir / "nope"), str(key_dir), "x" * 5000):
        with pytest.raises(InvalidInput) as err:
            check_key_file(bad, settings)
        answers.add(err.value.message)
    assert len(answers) == 1, answers
    assert "/root" not in answers.pop()


@pytest.mark.parametrize("url,expected", [
    ("file://{data}/objects/backups", ("local", "backups")),
    ("file://{data}/objects/backups/deep/prefix", ("local", "backups")),
    ("file://{tmp}/extra/c1/p", ("extra", "c1")),
    ("file:///elsewhere/c", None),
    ("swift://sw@bk/prefix", ("sw", "bk")),
    ("swift://bk", ("sw", "bk")),
    ("swift://nosuch@bk", None),
    ("s3://bucket", None),
])
def test_repository_container(settings: Settings, tmp_path: Path, url: str, expected: tuple[str, str] | None) -> None:
    assert repository_container(url.format(data=settings.data_dir, tmp=tmp_path), settings) == expected


def test_object_store_root_over_the_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for root in (data, tmp_path):
        config = tmp_path / "bad.toml"
        config.write_text(f'data_dir = "{data}"\n[object_stores.x]\ntype = "file"\nroot = "{root}"\n')
        with pytest.raises(InvalidInput, match="is the data dir .* or contains it"):
            storage.load_settings(config)


def test_data_dir_refused_as_repository_in_the_library(st: storage.Storage) -> None:
    for url in (f"file://{st.settings.data_dir}", f"file://{st.settings.data_dir}/pools"):
        with pytest.raises(InvalidInput, match="or contains it"):
            st.objects.open_url(url)
    st.volumes.create("v", "1M")
    with pytest.raises(InvalidInput, match="or contains it"):
        st.backups.create("v", repository=f"file://{st.settings.data_dir}")
    assert not (st.settings.data_dir / "config").exists() and not (st.settings.data_dir / "locks" / "x").exists()


def test_private_modes(st: storage.Storage, tmp_path: Path) -> None:
    data = st.settings.data_dir
    new_data = tmp_path / "fresh"
    with storage.open(storage.load_settings(None, data_dir=str(new_data))) as fresh:
        fresh.volumes.list()
        assert stat.S_IMODE(new_data.stat().st_mode) == 0o700
        assert stat.S_IMODE((new_data / "catalog.db").stat().st_mode) == 0o600
        key = fresh.backups.create_key(fresh.settings.backup.key_dir / "k")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    # an existing catalog readable by others is tightened when its engine is made (a SQLite
    # catalog is opened on first use, so touch the engine of both)
    st.catalog.engine  # noqa: B018
    os.chmod(data / "catalog.db", 0o644)
    with storage.open(st.settings) as again:
        again.catalog.engine  # noqa: B018
    assert stat.S_IMODE((data / "catalog.db").stat().st_mode) == 0o600


def test_object_download_does_not_follow_a_symlink_inside_dest(st: storage.Storage, tmp_path: Path) -> None:
    store = st.objects.store("local")
    store.create_container("dl")
    store.put_object("dl", "a/passwd", b"owned\n", length=6)
    store.put_object("dl", "link", b"replaced\n", length=9)
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "passwd").write_text("original\n")
    (outside / "target").write_text("target\n")
    os.symlink(outside, dest / "a")
    os.symlink(outside / "target", dest / "link")
    loc = st.objects.resolve("local")
    with pytest.raises(InvalidInput, match="symlink"):
        st.objects.download(loc, "dl", ["a/passwd"], dest=dest)
    assert (outside / "passwd").read_text() == "original\n"
    assert not [p for p in outside.iterdir() if p.name.startswith(".download-")]
    st.objects.download(loc, "dl", ["link"], dest=dest)  # the link itself is replaced, its target untouched
    assert (outside / "target").read_text() == "target\n"
    assert not (dest / "link").is_symlink() and (dest / "link").read_text() == "replaced\n"


def test_cli_download_symlink_is_one_line_error(config_file: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    with storage.open(config_file) as st:
        s = st.objects.store("local")
        s.create_container("dl")
        s.put_object("dl", "a/x", b"owned", length=5)
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink("/etc", dest / "a")
    out = subprocess.run([str(Path(sys.executable).parent / "storagectl"), "-c", str(config_file), "object", "download",
                          "dl", "a/x", "--store", "local", "-D", str(dest)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "symlink" in out.stderr and "Traceback" not in out.stderr
    assert not Path("/etc/x").exists()


# -- over the API --------------------------------------------------------------------------


def test_policy_key_file_outside_key_dir_is_refused_alike(shared_api_server: ApiServer) -> None:
    data = shared_api_server.config.parent
    key_dir = data / "keys"
    key_dir.mkdir(exist_ok=True)
    (key_dir / "good").write_text("00" * 32 + "\n")
    os.symlink("/root/.bashrc", key_dir / "sneaky")
    answers = set()
    with shared_api_server.client("operator") as c:
        for i, path in enumerate(["/root/.bashrc", "/root/no-such-file", "/etc/shadow", str(key_dir / "sneaky"),
                                  str(key_dir / "missing"), "relative/key"]):
            r = c.post("/policies", json={**SPEC, "name": f"kf{i}", "backup": {"encryption_key_file": path}})
            assert r.status_code == 422, (path, r.text)
            answers.add(r.json()["error"]["message"])
            r = c.post("/policies", json={**SPEC, "name": "kf-ok-" + str(i), "backup": {}})
            assert r.status_code == 201
            r = c.patch(f"/policies/kf-ok-{i}", json={"backup": {"encryption_key_file": path}})
            assert r.status_code == 422, (path, r.text)
            answers.add(r.json()["error"]["message"])
        assert len(answers) == 1, answers
        r = c.post("/policies", json={**SPEC, "name": "kf-good", "backup": {"encryption_key_file": str(key_dir / "good")}})
        assert r.status_code == 201, r.text


def test_data_dir_refused_as_repository_over_the_api(shared_api_server: ApiServer) -> None:
    data = shared_api_server.config.parent
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "pth-v", "size": "1M"}).status_code == 201
        for url in (f"file://{data}", f"file://{data}/objects", f"file://{data}/pools", f"file://{data}/keys"):
            r = c.post("/backups", json={"volume": "pth-v", "repository": url})
            assert r.status_code == 422, (url, r.text)
            r = c.post("/policies", json={**SPEC, "name": "pth-p", "backup": {"repository": url}})
            assert r.status_code == 422, (url, r.text)
    assert not (data / "config").exists() and not (data / "manifests").exists()


def _wait(c: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError("job still running")


def test_reader_cannot_download_backup_packs(shared_api_server: ApiServer) -> None:
    with shared_api_server.client("operator") as c:
        assert c.post("/volumes", json={"name": "pack-v", "size": "1M"}).status_code == 201
        fill_volume(shared_api_server.config, "pack-v", os.urandom(256 * 1024))
        job = c.post("/backups", json={"volume": "pack-v"}).json()
        assert _wait(c, job["id"])["state"] == "succeeded"
    base = "/object-stores/local/containers/backups"
    with shared_api_server.client("admin") as admin:
        names = [o["name"] for o in admin.get(base + "/objects").json() if o.get("name")]
        packs = [n for n in names if "pack" in n]
        assert packs, names
        assert admin.get(f"{base}/objects/{packs[0]}").status_code == 200
    for role in ("reader", "operator"):
        with shared_api_server.client(role) as c:
            assert c.get(base + "/objects").status_code == 200  # listings stay open
            assert c.head(f"{base}/objects/{packs[0]}").status_code == 200
            r = c.get(f"{base}/objects/{packs[0]}")
            assert r.status_code == 403 and "backup repository" in r.json()["error"]["message"], (role, r.text)
            if role == "operator":
                assert c.delete(f"{base}/objects/{packs[0]}").status_code == 403
                assert c.put(f"{base}/objects/planted", content=b"x").status_code == 403
                assert c.delete(base).status_code == 403
    with shared_api_server.client("operator") as c:  # other containers of the same store are unaffected
        assert c.put("/object-stores/local/containers/free").status_code == 201
        assert c.put("/object-stores/local/containers/free/objects/o", content=b"abc").status_code == 201
    with shared_api_server.client("reader") as c:
        assert c.get("/object-stores/local/containers/free/objects/o").content == b"abc"
