"""``Idempotency-Key`` on POST: a retried request gets the first answer and creates nothing new.

An ASGI middleware inside ``api.edge.EdgeMiddleware`` (so the caller is authenticated and the body
bounded before anything here runs). For a POST carrying the header:

1. The key is checked (1 to 255 printable ASCII characters, else 422 naming it) and the body read
   (bounded by the edge) and fingerprinted with the method, path and query string.
2. ``storage.catalog.idempotency.claim`` records ``(token, key)`` as pending under a primary key:
   of concurrent requests with one key exactly one wins and runs the route.
3. A request whose key is held: same fingerprint and a stored answer -> that answer again (same
   status and body, header ``Idempotent-Replayed: true``); same fingerprint, first request still
   running -> it waits up to ``api.idempotency_wait_seconds`` for the answer, then 409
   ``idempotency_in_progress``; another body, path or method -> 422 ``idempotency_key_reused``.
   The pending claim is a lease of ``api.idempotency_lease_seconds``, renewed every third of it
   while the route runs: when the replica running it dies, a retry claims the key again once the
   lease lapses and does the work (on another replica behind a load balancer); a volume the dead
   attempt had made is answered, not made twice (``storage.catalog.intents``).
4. The winner's response is stored unless it is a 5xx (or the route raised): then the key is
   forgotten and a retry does the work again. Keys expire after ``api.idempotency_key_seconds``.

Keys are per token: two tokens may use one key. ``POST /tokens`` refuses a key (422): its answer
holds a secret shown once, which is never stored, so it could not be replayed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.errors import error_response
from storage.auth.service import Principal
from storage.catalog import idempotency as keys
from storage.catalog import intents
from storage.errors import StorageError
from storage.service import Storage

log = logging.getLogger("storage.api")
HEADER = "idempotency-key"
REFUSING = frozenset({"/tokens"})  # answers carrying a secret shown once
MAX_STORED_BYTES = 1024 * 1024  # a create's answer is small; a larger one is not kept (the key is forgotten)
POLL_SECONDS = 0.05
PURGE_EVERY_SECONDS = 60.0


class IdempotencyMiddleware:
    """See the module docstring."""

    def __init__(self, app: Any, storage: Storage) -> None:
        self.app = app
        self.storage = storage
        self._last_purge = 0.0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw_key = Headers(scope=scope).get(HEADER)
        principal = scope.get("state", {}).get("principal")
        if raw_key is None or not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        try:
            key = keys.validate_key(raw_key)
        except StorageError as exc:
            await _answer_error(scope, receive, send, exc.http_status, exc.code, exc.message)
            return
        if path.rstrip("/") in REFUSING:
            await _answer_error(scope, receive, send, 422, "invalid_input",
                                "POST /tokens does not take an Idempotency-Key: its answer holds a secret that is shown "
                                "once and never stored, so it cannot be replayed; send the request without the header")
            return
        try:
            body = await _read_body(receive)
        except HTTPException as exc:
            await _answer_error(scope, receive, send, exc.status_code, "too_large", str(exc.detail))
            return
        if body is None:  # the client went away
            return
        if path.endswith("/action") and b"os-initialize_connection" in body:
            await _answer_error(scope, receive, send, 422, "invalid_input",
                                "os-initialize_connection does not take an Idempotency-Key: its answer holds the CHAP "
                                "secret, which is never stored; send the request without the header (it is idempotent)")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        fp = keys.fingerprint(scope["method"], path, query, body)
        api = self.storage.settings.api
        await self._purge_now_and_then()
        deadline = time.monotonic() + api.idempotency_wait_seconds
        while True:
            try:
                claim = await run_in_threadpool(keys.claim, self.storage.catalog, principal.token_id, key, fp,
                                                scope["method"], path, timedelta(seconds=api.idempotency_lease_seconds))
            except StorageError as exc:
                await _answer_error(scope, receive, send, exc.http_status, exc.code, exc.message)
                return
            if claim.outcome != "pending" or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        if claim.outcome == "claimed":
            intent = intents.current.set(intents.Intent(principal.token_id, key, claim.made))
            try:
                await self._run_and_store(scope, body, receive, send, principal.token_id, key)
            finally:
                intents.current.reset(intent)
        elif claim.outcome == "replay":
            await _replay(send, claim)
        elif claim.outcome == "mismatch":
            await _answer_error(scope, receive, send, 422, "idempotency_key_reused",
                                f"Idempotency-Key {key!r} was used for a different request ({claim.method} {claim.path} with "
                                f"another body) within the last {api.idempotency_key_seconds} s; use a new key for a new request")
        else:
            await _answer_error(scope, receive, send, 409, "idempotency_in_progress",
                                f"a request with Idempotency-Key {key!r} is still in progress; retry it later with the same key "
                                "to get its answer")

    async def _run_and_store(self, scope: dict, body: bytes, receive: Any, send: Any, token_id: str, key: str) -> None:
        status: int | None = None
        content_type: str | None = None
        location: str | None = None
        chunks: list[bytes] = []
        size = 0
        sent_body = False

        async def replay_receive() -> dict:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture(message: dict) -> None:
            nonlocal status, content_type, location, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = Headers(raw=message.get("headers", []))
                content_type, location = headers.get("content-type"), headers.get("location")
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if size <= MAX_STORED_BYTES:
                    chunks.append(message.get("body", b""))
            await send(message)

        catalog = self.storage.catalog
        renewing = asyncio.ensure_future(self._renew(token_id, key))
        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            renewing.cancel()
            await self._forget(token_id, key)
            raise
        renewing.cancel()
        text = _storable(status, size, b"".join(chunks))
        if status is None or status >= 500 or text is None:
            await self._forget(token_id, key)
            return
        ttl = timedelta(seconds=self.storage.settings.api.idempotency_key_seconds)
        try:
            await run_in_threadpool(keys.complete, catalog, token_id, key, status, content_type, text, ttl, location)
        except StorageError as exc:  # the answer went out; the claim lapses after its lease
            log.warning("storing the answer of Idempotency-Key %r failed: %s", key, exc.message)

    async def _renew(self, token_id: str, key: str) -> None:
        """Keep the claim's lease while the request works (a dead process stops renewing it)."""
        lease = self.storage.settings.api.idempotency_lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if not await run_in_threadpool(keys.renew, self.storage.catalog, token_id, key, timedelta(seconds=lease)):
                    return
            except StorageError as exc:
                log.warning("renewing Idempotency-Key %r failed: %s", key, exc.message)

    async def _forget(self, token_id: str, key: str) -> None:
        """Release the claim; when the catalog cannot be reached, it lapses after its lease."""
        try:
            await run_in_threadpool(keys.release, self.storage.catalog, token_id, key)
        except StorageError as exc:
            log.warning("releasing Idempotency-Key %r failed: %s", key, exc.message)

    async def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_purge >= PURGE_EVERY_SECONDS:
            self._last_purge = now
            await run_in_threadpool(keys.purge_expired, self.storage.catalog)


def _storable(status: int | None, size: int, body: bytes) -> str | None:
    """The body as text to store, or None when it cannot be kept (too large, not UTF-8)."""
    if status is None or size > MAX_STORED_BYTES:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def _read_body(receive: Any) -> bytes | None:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _replay(send: Any, claim: keys.Claim) -> None:
    body = (claim.body or "").encode("utf-8")
    headers = [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    if claim.content_type:
        headers.append((b"content-type", claim.content_type.encode("latin-1")))
    if claim.location:
        headers.append((b"location", claim.location.encode("latin-1")))
    await send({"type": "http.response.start", "status": claim.status or 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _answer_error(scope: dict, receive: Any, send: Any, status: int, code: str, message: str) -> None:
    response = error_response(Request(scope), status, code, message)
    await response(scope, receive, send)
