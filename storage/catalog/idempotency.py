"""The catalog side of ``Idempotency-Key``: claim a key before the work, store the answer after.

``claim`` reads the key and, when it is absent, inserts ``(token_id, key)`` as ``pending``; the
primary key lets exactly one of several concurrent requests win. The others read the row and ``decide`` what they get: the stored
response (``replay``), a refusal because the body differs (``mismatch``), or ``pending`` while the
first is still working. An expired row counts as absent: it is deleted and the claim retried.
A pending row is a lease: it expires ``lease`` seconds after the claim unless the request working
on it ``renew``s it, so the key of a request whose process died (kill -9, a host lost) is free
again within the lease, and a retry does the work instead of waiting for it forever. What the dead
attempt had already made (``storage.catalog.intents``) is carried into the new claim.
The HTTP side (reading the body, replaying, waiting) is api/idempotency.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, delete, or_, select

from storage.catalog import intents
from storage.catalog.api_tables import IdempotencyKey
from storage.catalog.base import utcnow
from storage.catalog.db import Catalog
from storage.errors import Conflict, InvalidInput

MAX_KEY_LENGTH = 255
Outcome = Literal["claimed", "replay", "mismatch", "pending"]


def validate_key(key: str) -> str:
    """1 to 255 printable ASCII characters (space to tilde); anything else is InvalidInput naming it."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        shown = key[:40] + ("..." if len(key) > 40 else "")
        raise InvalidInput(
            f"Idempotency-Key {shown!r} is not accepted: use 1 to {MAX_KEY_LENGTH} printable ASCII characters "
            f"(a UUID is a good choice); this one has {len(key)}",
            field="Idempotency-Key",
        )
    return key


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests "the same": method, path, query string and body bytes."""
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode()):
        h.update(len(part).to_bytes(8, "big") + part)
    h.update(body)
    return h.hexdigest()


def decide(state: str, stored_fingerprint: str, request_fingerprint: str) -> Outcome:
    """What a request gets when its (unexpired) key is held already. Pure; table-tested."""
    if stored_fingerprint != request_fingerprint:
        return "mismatch"
    return "replay" if state == "done" else "pending"


@dataclass(frozen=True)
class Claim:
    outcome: Outcome
    status: int | None = None
    content_type: str | None = None
    body: str | None = None
    location: str | None = None
    method: str | None = None  # of the stored request, for a mismatch message
    path: str | None = None
    made: str | None = None  # claimed over a dead attempt of the same request that made this (intents)


def claim(catalog: Catalog, token_id: str, key: str, fp: str, method: str, path: str, ttl: timedelta,
          now: datetime | None = None) -> Claim:
    """Claim ``key`` for this token, or say what the request gets instead (see ``decide``).

    ``ttl`` is how long the pending claim holds without a ``renew`` (the lease)."""
    made = None
    for _ in range(3):  # a row can expire and be deleted (or claimed) by another request in between
        now_ = now or utcnow()
        # read first: a retry or a request waiting for a pending key (polled) only reads
        with catalog.session() as s:
            row = s.get(IdempotencyKey, (token_id, key))
            if row is not None and row.expires_at <= now_:
                if row.state == "pending" and row.fingerprint == fp:  # the same request, its process dead
                    made = intents.made_of(row.body) or made
                s.execute(delete(IdempotencyKey).where(IdempotencyKey.token_id == token_id,
                                                       IdempotencyKey.key == key,
                                                       IdempotencyKey.expires_at == row.expires_at))
                row = None
            if row is not None:
                outcome = decide(row.state, row.fingerprint, fp)
                return Claim(outcome, row.status, row.content_type, row.body, row.location, row.method, row.path)
        try:
            with catalog.session() as s:
                s.add(IdempotencyKey(token_id=token_id, key=key, fingerprint=fp, method=method, path=path[:1024],
                                     state="pending", created_at=now_, expires_at=now_ + ttl,
                                     body=f"{intents.MARK}{made}" if made else None))
            return Claim("claimed", made=made)
        except Conflict:
            continue  # another request claimed it between the read and the insert: read its row
    raise Conflict(f"Idempotency-Key {key!r} is being claimed and expired concurrently; retry", field="Idempotency-Key")


def renew(catalog: Catalog, token_id: str, key: str, lease: timedelta) -> bool:
    """Extend a pending claim by ``lease`` from now (the request is still working); False when the
    row is gone or answered already."""
    with catalog.session() as s:
        row = s.get(IdempotencyKey, (token_id, key))
        if row is None or row.state != "pending":
            return False
        row.expires_at = utcnow() + lease
        return True


def complete(catalog: Catalog, token_id: str, key: str, status: int, content_type: str | None, body: str,
             ttl: timedelta, location: str | None = None) -> None:
    """Store the first response; retries replay it for ``ttl`` from now (not from the claim)."""
    with catalog.session() as s:
        row = s.get(IdempotencyKey, (token_id, key))
        if row is not None:
            row.state, row.status, row.content_type, row.body = "done", status, content_type, body
            row.location = location[:2048] if location else None
            row.expires_at = utcnow() + ttl


def release(catalog: Catalog, token_id: str, key: str) -> None:
    """Forget a claim whose request failed on the server's side (5xx): a retry does the work again."""
    with catalog.session() as s:
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.token_id == token_id, IdempotencyKey.key == key))


PENDING_GRACE = timedelta(hours=1)


def purge_expired(catalog: Catalog, now: datetime | None = None, limit: int = 1000,
                  pending_grace: timedelta = PENDING_GRACE) -> int:
    """Delete up to ``limit`` expired keys; the number deleted. A pending claim whose lease lapsed
    is kept ``pending_grace`` longer: the retry that takes it over needs its note of what the dead
    attempt made (``storage.catalog.intents``)."""
    now = now or utcnow()
    with catalog.session() as s:
        keys = s.execute(select(IdempotencyKey.token_id, IdempotencyKey.key)
                         .where(or_(and_(IdempotencyKey.state != "pending", IdempotencyKey.expires_at <= now),
                                    IdempotencyKey.expires_at <= now - pending_grace))
                         .limit(limit)).all()
        for token_id, key in keys:
            s.execute(delete(IdempotencyKey).where(IdempotencyKey.token_id == token_id, IdempotencyKey.key == key))
        return len(keys)
