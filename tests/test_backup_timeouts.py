"""A frozen object store fails a backup in bounded time, naming the request that failed first (issue 15).

The Swift proxy is stopped with SIGSTOP: it still accepts connections (the kernel's listen
backlog) but never answers, the case that used to hang a backup for good. This module has a
Swift all-in-one of its own so freezing it stops no other test.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

import storage
from backends.object.swift.util import request_bound
from backends.object.timeouts import is_timeout
from storage.errors import BackendError
from tests.backup_helpers import MIB, make_image, swift_backup_config
from tests.fixtures_swift import SwiftServer

pytestmark = pytest.mark.swift

TIMEOUTS = {"connect_timeout": 1, "read_timeout": 2, "retries": 1, "starting_backoff": 0.2, "max_backoff": 0.2}


def _options(server: SwiftServer) -> dict[str, Any]:
    return {"auth_url": server.auth_url, "user": server.user, "key": server.key, **TIMEOUTS}


@pytest.mark.parametrize(
    ("retries", "connect", "read", "start", "most", "bound"),
    [
        (0, 1, 2, 1, 64, 3),
        (1, 1, 2, 0.2, 0.2, 6.2),
        (5, 10, 60, 1, 64, 6 * 70 + 1 + 2 + 4 + 8 + 16),
        (3, 1, 1, 4, 5, 4 * 2 + 4 + 5 + 5),
    ],
)
def test_request_bound(retries: int, connect: float, read: float, start: float, most: float, bound: float) -> None:
    assert request_bound(retries, connect, read, start, most) == pytest.approx(bound)


def _refused() -> BaseException:
    inner = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", inner))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (requests.exceptions.ReadTimeout("read timeout=2"), True),
        (requests.exceptions.ConnectTimeout("connect timeout=1"), True),
        (requests.exceptions.ConnectionError(urllib3.exceptions.ReadTimeoutError(None, "/x", "Read timed out.")), True),  # type: ignore[arg-type]
        (socket.timeout("timed out"), True),
        (_refused(), False),
        (ConnectionResetError(104, "Connection reset by peer"), False),
    ],
)
def test_is_timeout(exc: BaseException, expected: bool) -> None:
    assert is_timeout(exc) is expected


def test_swift_store_refuses_unbounded_timeouts(private_swift_server: SwiftServer) -> None:
    from backends.object.swift.store import SwiftStore

    for key, value in (("read_timeout", "inf"), ("connect_timeout", 0), ("retries", 10**9), ("timeout", "nan")):
        with pytest.raises(storage.errors.InvalidInput, match=key):
            SwiftStore({**_options(private_swift_server), key: value})


@pytest.mark.parametrize("scheme", ["swift", "s3"])
def test_a_frozen_proxy_fails_the_backup_within_the_timeout(private_swift_server: SwiftServer, data_dir: Path,
                                                            tmp_path: Path, scheme: str) -> None:
    server = private_swift_server
    url = f"{scheme}://{scheme}@frozen-{scheme}/r"
    s3 = {"endpoint": server.s3_endpoint, "access_key": server.access_key, "secret_key": server.secret_key,
          "region": server.region, "connect_timeout": 1, "read_timeout": 2, "retries": 1}
    extra = "[object_stores.s3]\ntype = \"s3\"\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in s3.items())
    cfg = swift_backup_config(data_dir, _options(server), url, uploaders=2, extra=extra)
    image = make_image(tmp_path / "img", 8 * MIB, seed=161)
    with storage.open(cfg) as st:
        store = st.objects.open_url(url).store
        bound = store.request_bound()
        assert bound == pytest.approx(6.2 if scheme == "swift" else 6.0)
        frozen: list[float] = []

        def freeze(_progress: object) -> None:
            if not frozen:
                server.freeze_proxy()
                frozen.append(time.monotonic())

        try:
            with pytest.raises(BackendError) as caught:
                st.backups.create(str(image), progress=freeze)
            elapsed = time.monotonic() - frozen[0]
        finally:
            server.thaw_proxy()
        message = caught.value.message
        print(f"{scheme}: backup failed {elapsed:.1f} s after the freeze; one request is bounded by {bound:.1f} s")
        # the first cause: an upload of a pack (or its index), not the lock clean-up that failed after it
        assert f"{scheme} at" in message and "did not answer" in message, message
        assert "packs/" in message or "index/" in message, message
        assert "locks/" not in message
        # the uploads time out (one bound), then the lock delete does (another); nothing waits longer
        assert elapsed < 2 * bound + 4, f"failed after {elapsed:.1f} s; one request is bounded by {bound:.1f} s"
        [row] = st.backups.list()
        assert row.status == "error" and row.error == message
        # the store answers again: the next backup succeeds (the lock object left behind names a dead
        # operation of this process: released, or stale by pid after a kill)
        again = st.backups.create(str(image))
        assert again.status == "available"
