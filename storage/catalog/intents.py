"""What a keyed request has made so far, recorded in the transaction that made it.

``api/idempotency.py`` sets ``current`` while a POST carrying an ``Idempotency-Key`` runs. A service
that inserts the row of a new thing calls ``record_made(session, "volume", id)`` in that same
transaction, so the pending key row names it (its ``body`` holds ``made:volume:<id>`` until the
answer replaces it): the thing and the note are committed together or not at all. When the process
dies before the answer is stored (kill -9 of an API replica), the retry that takes the key over
after its lease (``storage.catalog.idempotency.claim``) carries the note, and ``resume("volume")``
gives the service that id: it answers with that volume instead of making a second one.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

MARK = "made:"


@dataclass(frozen=True)
class Intent:
    token_id: str
    key: str
    made: str | None = None  # "volume:<id>": what an earlier, dead attempt of this request made


current: ContextVar[Intent | None] = ContextVar("storage_idempotency_intent", default=None)


def made_of(body: str | None) -> str | None:
    """``kind:id`` from a pending row's body, or None. Pure."""
    return body[len(MARK):] if body and body.startswith(MARK) else None


def record_made(session: Any, kind: str, ident: str) -> None:
    """Note on the current request's pending key (if any) that it made ``kind`` ``ident``."""
    intent = current.get()
    if intent is None:
        return
    from storage.catalog.api_tables import IdempotencyKey

    row = session.get(IdempotencyKey, (intent.token_id, intent.key))
    if row is not None and row.state == "pending":
        row.body = f"{MARK}{kind}:{ident}"


def resume(kind: str) -> str | None:
    """The id of the ``kind`` an earlier attempt of the current request made, or None."""
    intent = current.get()
    if intent is None or not intent.made:
        return None
    made_kind, _, ident = intent.made.partition(":")
    return ident if made_kind == kind and ident else None
