"""The client load of the HA drills: threads listing, creating and deleting volumes through HAProxy.

Half the clients use python-cinderclient (a keystoneauth session; a create's ``Idempotency-Key``
rides in the session's additional headers), half raw HTTP (httpx) on the same Cinder v3 paths.
A client loop: list volumes, create one (a new ``Idempotency-Key`` per create, name derived from
it; on a transport error, a 5xx or 409 ``idempotency_in_progress`` the same request is sent again
with the same key), read it, and delete every other one it made. A GET is sent again by a client
only when its answer stopped after the headers (the replica was killed while sending the body;
HAProxy had forwarded the headers, so no proxy can replay it); every other GET failure must have
been absorbed by HAProxy. Everything a client saw is counted in ``Figures``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

PROJECT = "0123456789abcdef0123456789abcdef"
RETRY_FOR_SECONDS = 60.0  # a create or delete is retried this long before it counts as failed


@dataclass
class Figures:
    tried: Counter = field(default_factory=Counter)  # requests sent, by kind (get, create, delete)
    failed: Counter = field(default_factory=Counter)  # requests that failed (before any client retry)
    retried: Counter = field(default_factory=Counter)  # requests a client sent again
    gave_up: Counter = field(default_factory=Counter)  # operations that never succeeded
    errors: list[str] = field(default_factory=list)  # the first few failures, for the report
    kept: dict[str, str] = field(default_factory=dict)  # key -> volume id the client kept
    deleted: dict[str, str] = field(default_factory=dict)  # key -> volume id the client deleted
    found_after_retry: int = 0  # a retried create found the volume its first attempt made
    cut_mid_body: int = 0  # GETs whose answer stopped after the headers (replica killed while sending)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: str, error: str | None) -> None:
        with self.lock:
            self.tried[kind] += 1
            if error is not None:
                self.failed[kind] += 1
                if len(self.errors) < 20:
                    self.errors.append(f"{kind}: {error}")

    def line(self) -> str:
        kinds = ("get", "create", "delete")
        return ", ".join(f"{k}: tried {self.tried[k]} failed {self.failed[k]} retried {self.retried[k]}" for k in kinds)


class Answer(Exception):
    """A request's failure as the client saw it: HTTP status (0: transport) and text."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text[:200]}")
        self.status = status
        self.text = text


def cut_mid_body(err: Answer) -> bool:
    """A transport failure after the answer's headers: the body stopped short (httpx, requests)."""
    return err.status == 0 and any(m in err.text for m in ("complete message body", "IncompleteRead", "Connection broken"))


def retryable(err: Answer) -> bool:
    return err.status == 0 or err.status >= 500 or (err.status == 409 and "in progress" in err.text)


class RawClient:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/v3/{PROJECT}", headers={"X-Auth-Token": token}, timeout=30)

    def _call(self, method: str, path: str, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise Answer(0, f"{type(exc).__name__}: {exc}") from None
        if r.status_code >= 400:
            raise Answer(r.status_code, r.text)
        return r

    def list(self) -> None:
        self._call("GET", "/volumes/detail")

    def get(self, vid: str) -> str:
        return self._call("GET", f"/volumes/{vid}").json()["volume"]["status"]

    def create(self, name: str, key: str) -> str:
        r = self._call("POST", "/volumes", json={"volume": {"size": 1, "name": name}}, headers={"Idempotency-Key": key})
        return r.json()["volume"]["id"]

    def find(self, name: str) -> str | None:
        vols = self._call("GET", "/volumes", params={"name": name}).json()["volumes"]
        return vols[0]["id"] if vols else None

    def delete(self, vid: str) -> None:
        self._call("DELETE", f"/volumes/{vid}")

    def close(self) -> None:
        self.http.close()


class CinderClient:
    """python-cinderclient over keystoneauth; one client per create carries its Idempotency-Key."""

    def __init__(self, url: str, token: str) -> None:
        self.endpoint, self.token = f"{url}/v3/{PROJECT}", token
        self.cc = self._client(None)

    def _client(self, key: str | None):  # type: ignore[no-untyped-def]
        from cinderclient import client as cinder_client
        from keystoneauth1 import session as ks_session
        from keystoneauth1 import token_endpoint

        headers = {"Idempotency-Key": key} if key else None
        sess = ks_session.Session(auth=token_endpoint.Token(self.endpoint, self.token), additional_headers=headers, timeout=30)
        return cinder_client.Client("3.40", session=sess, os_endpoint=self.endpoint)

    def _call(self, fn):  # type: ignore[no-untyped-def]
        from cinderclient import exceptions as cinder_exc
        from keystoneauth1 import exceptions as ks_exc

        try:
            return fn()
        except cinder_exc.ClientException as exc:
            raise Answer(int(exc.code or 0) or 500, str(exc)) from None
        except ks_exc.ClientException as exc:  # connection refused, reset, timeout
            raise Answer(0, f"{type(exc).__name__}: {exc}") from None

    def list(self) -> None:
        self._call(lambda: self.cc.volumes.list())

    def get(self, vid: str) -> str:
        return self._call(lambda: self.cc.volumes.get(vid)).status

    def create(self, name: str, key: str) -> str:
        cc = self._client(key)
        return self._call(lambda: cc.volumes.create(1, name=name)).id

    def find(self, name: str) -> str | None:
        vols = self._call(lambda: self.cc.volumes.list(search_opts={"name": name}))
        return vols[0].id if vols else None

    def delete(self, vid: str) -> None:
        self._call(lambda: self.cc.volumes.delete(vid))

    def close(self) -> None:
        pass


class Load:
    """``clients`` threads against ``url`` until ``stop`` is set; see the module docstring."""

    def __init__(self, url: str, token: str, clients: int = 20, prefix: str = "d") -> None:
        self.url, self.token, self.clients, self.prefix = url, token, clients, prefix
        self.figures = Figures()
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Load":
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(i,), name=f"drill-client-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def finish(self) -> Figures:
        self.stop.set()
        for t in self._threads:
            t.join(RETRY_FOR_SECONDS + 60)
        return self.figures

    def _client(self, index: int) -> None:
        client = CinderClient(self.url, self.token) if index % 2 == 0 else RawClient(self.url, self.token)
        made = 0
        try:
            while not self.stop.is_set():
                self._get("list", client.list)
                key = str(uuid.uuid4())
                vid = self._create(client, key)
                if vid is None:
                    continue
                self._get("show", lambda: client.get(vid))
                made += 1
                if made % 2 == 0 and self._delete(client, vid):
                    with self.figures.lock:
                        self.figures.deleted[key] = vid
                else:
                    with self.figures.lock:
                        self.figures.kept[key] = vid
        finally:
            client.close()

    def _get(self, what: str, fn) -> None:  # type: ignore[no-untyped-def]
        try:
            fn()
        except Answer as err:
            if not cut_mid_body(err):
                self.figures.note("get", f"{what}: {err}")
                return
            # the replica died while sending the body: HAProxy had forwarded the headers already, so
            # no proxy can replay it; the client reads it again (once), as HTTP clients do
            with self.figures.lock:
                self.figures.cut_mid_body += 1
                self.figures.retried["get"] += 1
            try:
                fn()
            except Answer as again:
                self.figures.note("get", f"{what}: {err}, then {again}")
                return
        self.figures.note("get", None)

    def _create(self, client, key: str) -> str | None:  # type: ignore[no-untyped-def]
        name = f"{self.prefix}-{key}"
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        while True:
            try:
                vid = client.create(name, key)
                self.figures.note("create", None)
                return vid
            except Answer as err:
                self.figures.note("create", str(err))
                if err.status == 409 and "exists already" in err.text:
                    # an earlier attempt (the client's, or HAProxy's replay after empty-response) made it:
                    # its replica died after the volume's row and before the answer was stored
                    vid = client.find(name)
                    if vid is not None:
                        with self.figures.lock:
                            self.figures.found_after_retry += 1
                        return vid
                if not retryable(err) or time.monotonic() > deadline:
                    with self.figures.lock:
                        self.figures.gave_up["create"] += 1
                    return None
            with self.figures.lock:
                self.figures.retried["create"] += 1
            time.sleep(0.2)

    def _delete(self, client, vid: str) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        while True:
            try:
                client.delete(vid)
                self.figures.note("delete", None)
                return True
            except Answer as err:
                self.figures.note("delete", str(err))
                if err.status == 404:
                    return True  # an earlier attempt (the client's, or HAProxy's replay after empty-response) deleted it
                if not (retryable(err) or err.status == 409) or time.monotonic() > deadline:
                    with self.figures.lock:
                        self.figures.gave_up["delete"] += 1
                    return False
            with self.figures.lock:
                self.figures.retried["delete"] += 1
            time.sleep(0.2)
