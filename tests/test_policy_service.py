"""PolicyService: create/list/get/update/delete, validation naming fields, history kept after delete."""

from __future__ import annotations

import pytest

import storage
from storage.errors import Conflict, InvalidInput, NotFound
from tests.policy_helpers import FakeClock

pytestmark = pytest.mark.both_catalogs


def make(st: storage.Storage, name: str = "p", **overrides: object):
    args: dict = {"selector": {"all": True}, "retention": {"keep_daily": 7}}
    args.update(overrides)
    kind = args.pop("kind", "snapshot")
    schedule = args.pop("schedule", "0 2 * * *")
    return st.policies.create(name, kind, schedule, **args)


def test_create_get_list_roundtrip(st: storage.Storage) -> None:
    p = make(st, "nightly", timezone="Europe/Berlin", retention={"keep_daily": 7, "keep_weekly": 4, "keep_within": "2d"})
    assert st.policies.get("nightly") == p == st.policies.get(p.id)
    assert p.retention.keep_daily == 7 and p.retention.keep_within == "2d" and p.timezone == "Europe/Berlin"
    assert p.backup is None and p.enabled
    make(st, "other", kind="backup", schedule="every 6h")
    assert [x.name for x in st.policies.list()] == ["nightly", "other"]
    assert [x.name for x in st.policies.list(kind="backup")] == ["other"]
    assert st.policies.get("other").backup is not None  # defaults filled in for backup policies
    assert p.summary()["retention"] == "keep-daily 7, keep-weekly 4, keep-within 2d"


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"schedule": "61 * * * *"}, "schedule", "not a valid cron expression"),
        ({"schedule": "every 0h"}, "schedule", "longer than zero"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not a known IANA time zone"),
        ({"retention": {"keep_daily": 0}}, "retention.keep_daily", "at least 1"),
        ({"retention": {"keep_last": -3}}, "retention.keep_last", "at least 1"),
        ({"retention": {}}, "retention", "no keep rule given"),
        ({"retention": {"keep_all": True, "keep_last": 2}}, "retention", "cannot be combined"),
        ({"retention": {"keep_within": "2 days"}}, "retention.keep_within", "not a duration"),
        ({"selector": {}}, "selector", "select volumes"),
        ({"selector": {"volumes": ["a"], "pool": "default"}}, "selector", "not both"),
        ({"selector": {"all": True, "labels": {"a": "b"}}}, "selector", "cannot be combined"),
        ({"selector": {"labels": {"bad key!": "x"}}}, "selector.labels", "label"),
        ({"kind": "mirror"}, "kind", "snapshot"),
        ({"kind": "backup", "backup": {"verify": "paranoid"}}, "backup.verify", "quick"),
        ({"kind": "backup", "backup": {"max_concurrent": 0}}, "backup.max_concurrent", "1 to 64"),
        ({"kind": "backup", "backup": {"bandwidth_limit": "fast"}}, "backup.bandwidth_limit", "not a size"),
    ],
)
def test_bad_input_names_the_field(st: storage.Storage, overrides: dict, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        make(st, **overrides)
    message = info.value.message
    assert message.startswith(f"{field}:") or f"; {field}:" in message, message
    assert words in message
    assert st.policies.list() == []


def test_keep_all_is_explicit(st: storage.Storage) -> None:
    p = make(st, retention={"keep_all": True})
    assert p.retention.keep_all and p.retention.describe() == "keep all"


def test_unknown_pool_and_bad_names(st: storage.Storage) -> None:
    with pytest.raises(InvalidInput, match="selector.pool 'nope' is not a configured pool; accepted: default"):
        make(st, selector={"pool": "nope"})
    with pytest.raises(InvalidInput, match="name"):
        make(st, "../etc")


def test_duplicate_name_conflicts(st: storage.Storage) -> None:
    make(st, "dup")
    with pytest.raises(Conflict, match="exists already"):
        make(st, "dup")


def test_update_replaces_rules_and_validates(st: storage.Storage) -> None:
    clock = FakeClock("2024-01-01 00:00")
    st.policies.clock = clock
    make(st, "u", retention={"keep_daily": 7, "keep_weekly": 4})
    clock.advance(minutes=5)
    p = st.policies.update("u", retention={"keep_last": 3}, schedule="@hourly", enabled=False, name="u2")
    assert (p.name, p.schedule, p.enabled) == ("u2", "@hourly", False)
    assert p.retention.keep_last == 3 and p.retention.keep_daily is None  # replaced, not merged
    assert p.updated_at > p.created_at
    with pytest.raises(InvalidInput, match="timezone"):
        st.policies.update("u2", timezone="Nowhere/Land")
    with pytest.raises(InvalidInput, match="cannot update kind"):
        st.policies.update("u2", kind="backup")
    assert st.policies.get("u2").timezone == "UTC"


def test_delete_keeps_history_and_items(st: storage.Storage) -> None:
    st.volumes.create("v", "4M")
    p = make(st, "gone", schedule="1h", retention={"keep_last": 1})
    assert st.policies.run().ok
    st.policies.delete("gone")
    with pytest.raises(NotFound, match="policy 'gone' not found"):
        st.policies.get("gone")
    assert [r.status for r in st.policies.history(p.id)] == ["succeeded"]
    assert [r.policy_name for r in st.policies.history("gone")] == ["gone"]
    assert len(st.snapshots.list(labels={"storage.policy": p.id})) == 1
    with pytest.raises(NotFound):
        st.policies.history("never-existed")
    with pytest.raises(InvalidInput, match="limit"):
        st.policies.history(limit=0)
    with pytest.raises(InvalidInput, match="accepted: running, succeeded, partial, failed, interrupted"):
        st.policies.history(status="ok")
    with pytest.raises(InvalidInput, match="accepted: snapshot, backup"):
        st.policies.list(kind="mirror")
