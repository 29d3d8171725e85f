"""Bad input: invalid names, missing/wrong credentials, unreachable endpoints.

Each is a clear storage.errors type; no secret (key, password, token) ever appears in a
message or a log record.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from backends.object.dir.store import DirectoryStore
from backends.object.s3.store import S3Store
from backends.object.swift.store import SwiftStore
from storage.errors import AuthenticationFailed, BackendError, InvalidInput, PermissionDenied

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Sup3r-Secret-Value-42"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 257, "..", "nul\x00here"])
def test_invalid_container_names_file(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput, match="container name"):
        DirectoryStore({"root": str(tmp_path)}).create_container(bad)


@pytest.mark.swift
@pytest.mark.parametrize("bad", ["", "a/b", "x" * 257])
def test_invalid_container_names_swift_and_s3(swift_options: dict[str, Any], s3_options: dict[str, Any], bad: str) -> None:
    for store in (SwiftStore(swift_options), S3Store(s3_options)):
        with pytest.raises(InvalidInput, match="container name"):
            store.create_container(bad)
    with pytest.raises(InvalidInput, match="bucket name 'Not_A_Bucket' is not accepted by S3; accepted: 3-63"):
        S3Store(s3_options).create_container("Not_A_Bucket")


@pytest.mark.parametrize("bad", ["", "x" * 1025, "a\x00b", "é" * 600])
def test_invalid_object_names(tmp_path: Path, bad: str) -> None:
    store = DirectoryStore({"root": str(tmp_path)})
    store.create_container("c")
    with pytest.raises(InvalidInput, match="object name"):
        store.put_object("c", bad, b"x")


def test_missing_credentials_are_named() -> None:
    with pytest.raises(InvalidInput, match="needs auth_url"):
        SwiftStore({})
    with pytest.raises(InvalidInput, match="tempauth needs both user and key"):
        SwiftStore({"auth_url": "http://127.0.0.1:1/auth/v1.0", "user": "a:b"})
    with pytest.raises(InvalidInput, match="Keystone v3 auth needs username, password and project_name"):
        SwiftStore({"auth_url": "http://127.0.0.1:1/v3", "username": "u"})
    with pytest.raises(InvalidInput, match="needs endpoint, access_key and secret_key"):
        S3Store({"endpoint": "http://127.0.0.1:1"})
    with pytest.raises(InvalidInput, match="unknown swift store option"):
        SwiftStore({"auth_url": "http://x", "user": "a", "key": "b", "colour": "red"})


def test_unreachable_endpoints_fail_fast_and_clearly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = _free_port()
    swift = SwiftStore(
        {"auth_url": f"http://127.0.0.1:{port}/auth/v1.0", "user": "test:tester", "key": SECRET, "retries": 1,
         "starting_backoff": 0.05}
    )
    started = time.monotonic()
    with pytest.raises(BackendError, match=rf"swift at http://127.0.0.1:{port} is unreachable") as exc:
        swift.create_container("c")
    assert time.monotonic() - started < 10
    s3 = S3Store({"endpoint": f"http://127.0.0.1:{port}", "access_key": "test:tester", "secret_key": SECRET, "retries": 1})
    with pytest.raises(BackendError, match=rf"s3 at http://127.0.0.1:{port} is unreachable") as exc2:
        s3.create_container("bucket")
    for text in (exc.value.message, exc2.value.message, caplog.text):
        assert SECRET not in text


def test_keystone_v3_unreachable_is_clear(caplog: pytest.LogCaptureFixture) -> None:
    """The Keystone v3 session path (no Keystone on this host: an unreachable one is what we can test)."""
    caplog.set_level(logging.DEBUG)
    port = _free_port()
    store = SwiftStore(
        {"auth_url": f"http://127.0.0.1:{port}/v3", "username": "admin", "password": SECRET, "project_name": "p",
         "retries": 1, "starting_backoff": 0.05}
    )
    with pytest.raises(BackendError, match=rf"at http://127.0.0.1:{port} is unreachable") as exc:
        store.create_container("c")
    assert SECRET not in exc.value.message and SECRET not in caplog.text


@pytest.mark.swift
def test_preauth_token_and_storage_url(swift_server: Any, swift_options: dict[str, Any]) -> None:
    authed = SwiftStore(swift_options)
    authed.create_container("preauth")
    pre = SwiftStore({"preauth_token": authed.conn.token, "storage_url": authed.conn.url, "retries": 1})
    pre.put_object("preauth", "x", b"via token")
    assert authed.get_bytes("preauth", "x") == b"via token"
    bad = SwiftStore({"preauth_token": "AUTH_tk" + "0" * 32, "storage_url": authed.conn.url, "retries": 1})
    with pytest.raises(AuthenticationFailed):
        bad.head_object("preauth", "x")
    authed.delete_object("preauth", "x")
    authed.delete_container("preauth")


@pytest.mark.swift
def test_wrong_credentials_never_leak_the_secret(swift_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    swift = SwiftStore({"auth_url": swift_server.auth_url, "user": swift_server.user, "key": SECRET, "retries": 1,
                        "starting_backoff": 0.05})
    with pytest.raises(AuthenticationFailed, match="rejected the credentials of user 'test:tester'") as exc:
        swift.list_objects("c").__next__()
    s3 = S3Store({"endpoint": swift_server.s3_endpoint, "access_key": swift_server.access_key, "secret_key": SECRET,
                  "retries": 1})
    with pytest.raises((AuthenticationFailed, PermissionDenied), match="check the access key, secret key") as exc2:
        s3.create_container("some-bucket")  # s3api answers a HEAD with a bare 403: AccessDenied
    for text in (exc.value.message, exc2.value.message, str(exc.value), caplog.text):
        assert SECRET not in text


@pytest.mark.swift
def test_the_token_and_key_stay_out_of_logs_and_errors(swift_options: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = SwiftStore(swift_options)
    c = f"tok-{uuid.uuid4().hex[:8]}"
    store.create_container(c)
    store.put_object(c, "x", b"1")
    token = store.conn.token
    assert token and len(token) > 10
    with pytest.raises(Exception) as exc:
        store.get_bytes(c, "missing")
    store.delete_object(c, "x")
    store.delete_container(c)
    for text in (caplog.text, str(exc.value)):
        assert token not in text and swift_options["key"] not in text.replace("testing", "")  # key is the word 'testing'


@pytest.mark.swift
def test_non_admin_user_is_denied(swift_server: Any, swift_options: dict[str, Any]) -> None:
    admin = SwiftStore(swift_options)
    c = f"acl-{uuid.uuid4().hex[:8]}"
    admin.create_container(c)
    reader = SwiftStore({**swift_options, "user": swift_server.reader_user, "key": swift_server.reader_key})
    try:
        with pytest.raises(PermissionDenied, match="HTTP 403"):
            reader.put_object(c, "x", b"1")
    finally:
        admin.delete_container(c)


@pytest.mark.swift
def test_cli_wrong_key_is_a_clear_error_without_traceback(swift_server: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    env = {**os.environ, "STORAGE_CONFIG": str(cfg), "ST_AUTH": swift_server.auth_url, "ST_USER": swift_server.user,
           "ST_KEY": SECRET}
    out = subprocess.run(
        [sys.executable, "-m", "storage.cli.main", "object", "list", "--json"], env=env, capture_output=True, text=True,
        timeout=120, cwd=ROOT,
    )
    assert out.returncode == 8, out.stderr
    assert "rejected the credentials" in out.stderr and '"code": "unauthenticated"' in out.stdout
    assert "Traceback" not in out.stderr + out.stdout and SECRET not in out.stderr + out.stdout
