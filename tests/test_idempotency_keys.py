"""The catalog side of Idempotency-Key (storage/catalog/idempotency.py) on a real SQLite catalog."""

from __future__ import annotations

from datetime import timedelta
import pytest

from storage.catalog import idempotency as keys
from storage.catalog.base import utcnow
from storage.catalog.db import Catalog
from storage.errors import InvalidInput

TTL = timedelta(hours=1)
pytestmark = pytest.mark.both_catalogs  # the claim's unique key must hold on PostgreSQL too


@pytest.mark.parametrize("state,stored,request_fp,outcome", [
    ("done", "a", "a", "replay"),
    ("pending", "a", "a", "pending"),
    ("done", "a", "b", "mismatch"),
    ("pending", "a", "b", "mismatch"),
])
def test_decide(state: str, stored: str, request_fp: str, outcome: str) -> None:
    assert keys.decide(state, stored, request_fp) == outcome


@pytest.mark.parametrize("key,ok", [
    ("k", True), ("a" * 255, True), ("3f2a-uuid 1~", True), ("", False), ("a" * 256, False),
    ("tab\there", False), ("né", False), ("nl\n", False), ("\x7f", False),
])
def test_validate_key(key: str, ok: bool) -> None:
    if ok:
        assert keys.validate_key(key) == key
    else:
        with pytest.raises(InvalidInput, match="Idempotency-Key") as exc:
            keys.validate_key(key)
        assert "printable ASCII" in exc.value.message


def test_fingerprint_separates_method_path_query_and_body() -> None:
    base = keys.fingerprint("POST", "/volumes", "", b'{"a":1}')
    assert base == keys.fingerprint("POST", "/volumes", "", b'{"a":1}')
    others = {keys.fingerprint("POST", "/snapshots", "", b'{"a":1}'), keys.fingerprint("POST", "/volumes", "x=1", b'{"a":1}'),
              keys.fingerprint("POST", "/volumes", "", b'{"a":2}'), keys.fingerprint("PUT", "/volumes", "", b'{"a":1}'),
              keys.fingerprint("POST", "/volume", "s", b'{"a":1}')}
    assert base not in others and len(others) == 5


@pytest.fixture
def catalog(catalog_url: str):
    c = Catalog(catalog_url)
    yield c
    c.close()


def test_claim_replay_mismatch_and_release(catalog: Catalog) -> None:
    assert keys.claim(catalog, "t1", "k", "fp", "POST", "/volumes", TTL).outcome == "claimed"
    assert keys.claim(catalog, "t1", "k", "fp", "POST", "/volumes", TTL).outcome == "pending"
    assert keys.claim(catalog, "t2", "k", "fp", "POST", "/volumes", TTL).outcome == "claimed"  # keys are per token
    keys.complete(catalog, "t1", "k", 201, "application/json", '{"id": "v"}', TTL, location="/jobs/j1")
    again = keys.claim(catalog, "t1", "k", "fp", "POST", "/volumes", TTL)
    assert (again.outcome, again.status, again.content_type, again.body, again.location) == (
        "replay", 201, "application/json", '{"id": "v"}', "/jobs/j1")
    other = keys.claim(catalog, "t1", "k", "fp2", "POST", "/volumes", TTL)
    assert (other.outcome, other.method, other.path) == ("mismatch", "POST", "/volumes")
    keys.release(catalog, "t2", "k")
    assert keys.claim(catalog, "t2", "k", "fp2", "POST", "/volumes", TTL).outcome == "claimed"


def test_twenty_concurrent_claims_one_wins(catalog: Catalog) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(lambda _: keys.claim(catalog, "t", "race", "fp", "POST", "/volumes", TTL).outcome, range(20)))
    assert sorted(outcomes) == ["claimed"] + ["pending"] * 19


def test_expired_key_is_claimed_anew_and_purged(catalog: Catalog) -> None:
    now = utcnow()
    assert keys.claim(catalog, "t", "old", "fp", "POST", "/volumes", TTL, now=now).outcome == "claimed"
    keys.complete(catalog, "t", "old", 201, None, "{}", timedelta(seconds=1))
    assert keys.claim(catalog, "t", "old", "other", "POST", "/volumes", TTL, now=now).outcome == "mismatch"
    later = now + timedelta(seconds=5)
    assert keys.claim(catalog, "t", "old", "other", "POST", "/volumes", TTL, now=later).outcome == "claimed"
    keys.claim(catalog, "t", "gone", "fp", "POST", "/volumes", timedelta(seconds=1), now=now)
    keys.claim(catalog, "t", "done", "fp", "POST", "/volumes", TTL, now=now)
    keys.complete(catalog, "t", "done", 201, None, "{}", timedelta(seconds=1))
    assert keys.purge_expired(catalog, now=later) == 1  # the answered one; a lapsed claim waits for its takeover
    assert keys.purge_expired(catalog, now=later) == 0
    assert keys.purge_expired(catalog, now=later + keys.PENDING_GRACE) == 1  # ... for the grace, then it goes
    assert keys.claim(catalog, "t", "old", "other", "POST", "/volumes", TTL, now=later).outcome == "pending"


def test_pending_claim_is_a_lease_renewed_while_working(catalog: Catalog) -> None:
    """A claim whose request died (no renewal) lapses after its lease; a renewed one holds."""
    lease = timedelta(seconds=10)
    now = utcnow()
    assert keys.claim(catalog, "t", "dead", "fp", "POST", "/volumes", lease, now=now).outcome == "claimed"
    assert keys.claim(catalog, "t", "alive", "fp", "POST", "/volumes", lease, now=now).outcome == "claimed"
    assert keys.renew(catalog, "t", "alive", timedelta(seconds=60))  # from the real now: holds past now + 10 s
    later = now + timedelta(seconds=30)
    assert keys.claim(catalog, "t", "alive", "fp", "POST", "/volumes", lease, now=later).outcome == "pending"
    assert keys.claim(catalog, "t", "dead", "fp", "POST", "/volumes", lease, now=later).outcome == "claimed"
    keys.complete(catalog, "t", "alive", 202, None, "{}", TTL)
    assert not keys.renew(catalog, "t", "alive", lease)  # answered: nothing to renew
    assert not keys.renew(catalog, "t", "nobody", lease)


def test_a_takeover_carries_what_the_dead_attempt_made(catalog: Catalog) -> None:
    from storage.catalog import intents

    lease = timedelta(seconds=10)
    now = utcnow()
    assert keys.claim(catalog, "t", "k", "fp", "POST", "/volumes", lease, now=now).outcome == "claimed"
    with catalog.session() as s:
        token = intents.current.set(intents.Intent("t", "k"))
        try:
            intents.record_made(s, "volume", "v-1")
        finally:
            intents.current.reset(token)
    later = now + timedelta(seconds=30)
    assert keys.claim(catalog, "t", "k", "other-body", "POST", "/volumes", lease, now=now).outcome == "mismatch"
    taken = keys.claim(catalog, "t", "k", "fp", "POST", "/volumes", lease, now=later)
    assert (taken.outcome, taken.made) == ("claimed", "volume:v-1")
    # a second takeover still knows; another request (other body) after expiry does not inherit it
    assert keys.claim(catalog, "t", "k", "fp", "POST", "/volumes", lease, now=later + timedelta(seconds=30)).made == "volume:v-1"
    other = keys.claim(catalog, "t", "k", "fp2", "POST", "/volumes", lease, now=later + timedelta(seconds=90))
    assert (other.outcome, other.made) == ("claimed", None)


@pytest.mark.parametrize("made,kind,expected", [
    ("volume:v-1", "volume", "v-1"), ("volume:v-1", "snapshot", None), (None, "volume", None), ("volume:", "volume", None),
])
def test_resume_names_only_its_kind(made: str | None, kind: str, expected: str | None) -> None:
    from storage.catalog import intents

    token = intents.current.set(intents.Intent("t", "k", made))
    try:
        assert intents.resume(kind) == expected
    finally:
        intents.current.reset(token)
    assert intents.resume(kind) is None  # no request: nothing to resume
