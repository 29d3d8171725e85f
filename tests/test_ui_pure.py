"""The dashboard's pure parts, table-tested: session cookies, CSRF tokens, forms, what pages show."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from api.ui import forms, is_ui_path, session, views
from storage.errors import InvalidInput

KEY = bytes(range(32))
OTHER = bytes(32)
NOW = 1_800_000_000
TOKEN = "0b8f3c2e-1111-2222-3333-444455556666.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"


def test_a_sealed_token_opens_with_its_key_only() -> None:
    value = session.seal(KEY, TOKEN, NOW, "sid-1")
    assert TOKEN not in value and TOKEN.split(".")[1] not in value
    assert session.unseal(KEY, value, NOW) == session.Sealed(TOKEN, NOW, "sid-1")
    assert session.unseal(OTHER, value, NOW) is None
    assert session.seal(KEY, TOKEN, NOW, "sid-1") != value  # a fresh nonce every time


@pytest.mark.parametrize(
    ("mangle", "now", "opens"),
    [
        (lambda v: v, NOW + session.SESSION_SECONDS, True),
        (lambda v: v, NOW + session.SESSION_SECONDS + 1, False),  # too old
        (lambda v: v, NOW - 3600, False),  # issued in the future (more than a minute of skew)
        (lambda v: v[:-2] + ("A" if v[-2] != "A" else "B") + v[-1], NOW, False),  # one character changed
        (lambda v: v[:20], NOW, False),  # cut short
        (lambda v: "", NOW, False),
        (lambda v: "%%%not-base64%%%", NOW, False),
        (lambda v: "A" * (session.COOKIE_MAX + 1), NOW, False),  # refused before decoding
    ],
)
def test_unseal_refuses_what_it_did_not_seal(mangle, now: int, opens: bool) -> None:  # type: ignore[no-untyped-def]
    value = mangle(session.seal(KEY, TOKEN, NOW, "sid"))
    assert (session.unseal(KEY, value, now) is not None) is opens


@pytest.mark.parametrize(
    ("purpose", "sid", "given_from", "ok"),
    [
        ("csrf", "sid-1", ("csrf", "sid-1"), True),
        ("csrf", "sid-1", ("csrf", "sid-2"), False),  # another session's token
        ("csrf", "sid-1", ("login", "sid-1"), False),  # the login form's token is not a session's
        ("csrf", None, ("csrf", "sid-1"), False),
        ("login", "nonce", ("login", "nonce"), True),
        ("csrf", "sid-1", None, False),
    ],
)
def test_csrf_tokens_are_bound_to_their_session_and_purpose(purpose: str, sid: str | None, given_from, ok: bool) -> None:  # type: ignore[no-untyped-def]
    given = session.csrf_for(KEY, *given_from) if given_from else None
    assert session.csrf_ok(KEY, purpose, sid, given) is ok
    assert session.csrf_ok(KEY, purpose, sid, "x" * 10_000) is False


@pytest.mark.parametrize(("tls", "secure"), [(False, False), (True, True)])
def test_cookie_flags(tls: bool, secure: bool) -> None:
    assert session.cookie_flags(tls) == {"httponly": True, "samesite": "strict", "secure": secure, "path": "/ui"}


def test_the_session_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    key = session.load_key(tmp_path)
    path = tmp_path / "ui" / "session.key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session.load_key(tmp_path) == key
    assert not [p for p in path.parent.iterdir() if p.name != "session.key"]  # no temporary file left
    path.write_bytes(b"short")
    with pytest.raises(Exception, match="not a 32-byte key"):
        session.load_key(tmp_path)
    os.unlink(path)


def test_workers_racing_for_the_first_key_agree(tmp_path: Path) -> None:
    """Several API workers of one data dir start at once: every one must get the same key (the
    race is decided by link(2) in the file system, so threads race exactly as processes do)."""
    from concurrent.futures import ThreadPoolExecutor
    import threading

    start = threading.Barrier(8)

    def first_use(_: int) -> bytes:
        start.wait()
        return session.load_key(tmp_path)

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(first_use, range(8)))
    assert len(keys) == 1 and keys == {session.load_key(tmp_path)}
    assert sorted(p.name for p in (tmp_path / "ui").iterdir()) == ["session.key"]


@pytest.mark.parametrize(
    ("path", "ui"),
    [("/ui", True), ("/ui/", True), ("/ui/volumes", True), ("/uix", False), ("/volumes", False), ("/", False)],
)
def test_which_paths_are_the_dashboards(path: str, ui: bool) -> None:
    assert is_ui_path(path) is ui


@pytest.mark.parametrize(
    ("body", "fields", "error"),
    [
        (b"name=db1&size=10G", {"name": "db1", "size": "10G"}, None),
        (b"labels=tier%3Dgold%2C+team%3Ddb&csrf=", {"labels": "tier=gold, team=db", "csrf": ""}, None),
        (b"name=a&name=b", None, "gives field 'name' twice"),
        (b"\xff\xfe=1", None, "not UTF-8"),
        (b"&".join(b"f%d=1" % i for i in range(forms.FIELDS_MAX + 1)), None, "more than 32 fields"),
        (b"x=" + b"a" * (forms.FIELD_MAX + 1), None, "too long"),
        (b"x=" + b"a" * (forms.FORM_MAX + 1), None, "accepted: at most 65536"),
    ],
)
def test_parse_form(body: bytes, fields: dict | None, error: str | None) -> None:
    if error:
        with pytest.raises(InvalidInput, match=error):
            forms.parse_form(body)
    else:
        assert dict(forms.parse_form(body).fields) == fields


def test_form_fields_are_bounded_and_named_in_errors() -> None:
    form = forms.Form({"name": "  db1 ", "size": "", "mode": "deep", "big": "x" * 200})
    assert form.text("name", 10) == "db1" and form.text("size", 10) is None and form.text("missing", 10) is None
    with pytest.raises(InvalidInput, match="big is 200 characters long; accepted: at most 128"):
        form.text("big", 128)
    with pytest.raises(InvalidInput, match="size is required"):
        form.required("size", 32)
    assert form.choice("mode", ("quick", "deep"), "quick") == "deep"
    with pytest.raises(InvalidInput, match="accepted: quick, deep"):
        forms.Form({"mode": "thorough"}).choice("mode", ("quick", "deep"), "quick")


@pytest.mark.parametrize(
    ("text", "labels", "error"),
    [
        (None, None, None),
        ("", None, None),
        ("tier=gold", {"tier": "gold"}, None),
        ("tier=gold, team=db\nenv=prod", {"tier": "gold", "team": "db", "env": "prod"}, None),
        ("tier", None, "not KEY=VALUE"),
        ("bad key!=x", None, "label"),
        (", ".join(f"k{i}=v" for i in range(65)), None, "65 labels"),
    ],
)
def test_label_text(text: str | None, labels: dict | None, error: str | None) -> None:
    if error:
        with pytest.raises(InvalidInput, match=error):
            forms.parse_label_text(text)
    else:
        assert forms.parse_label_text(text) == labels


@pytest.mark.parametrize(
    ("total", "free", "percent", "level"),
    [
        (100, 100, 0.0, "ok"),
        (100, 21, 79.0, "ok"),
        (100, 20, 80.0, "warn"),
        (100, 5, 95.0, "full"),
        (100, 0, 100.0, "full"),
        (100, 150, 0.0, "ok"),  # a report with more free than total is not negative
        (0, 0, 0.0, "unknown"),
        (None, None, 0.0, "unknown"),
    ],
)
def test_capacity_bar(total: int | None, free: int | None, percent: float, level: str) -> None:
    bar = views.capacity_bar(total, free)
    assert (bar.percent, bar.level) == (percent, level)


def test_status_counts_known_order_first_then_the_rest() -> None:
    statuses = ["error", "available", "available", "zzz", "in-use"]
    assert views.status_counts(statuses, ["available", "in-use", "creating", "error"]) == [
        ("available", 2), ("in-use", 1), ("error", 1), ("zzz", 1),
    ]
    assert views.status_counts([]) == []


def _backup(bid: str, status: str, minutes: int) -> SimpleNamespace:
    return SimpleNamespace(id=bid, status=status, created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
                           volume_name="v", volume_id="vid", source=None)


def test_attention_lists_damaged_backups_first_then_newest() -> None:
    backups = [_backup("a", "available", 0), _backup("b", "lost", 5), _backup("c", "damaged", 1),
               _backup("d", "damaged", 9), _backup("e", "error", 3)]
    assert [b.id for b in views.attention_backups(backups)] == ["d", "c", "b", "e"]
    jobs = [SimpleNamespace(state="failed"), SimpleNamespace(state="succeeded"), SimpleNamespace(state="interrupted")]
    assert [j.state for j in views.attention_jobs(jobs)] == ["failed", "interrupted"]


def _job(state: str, result: object = None, jid: str = "j1", error: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(id=jid, state=state, result=result, finished_at=None, created_at=datetime(2026, 1, 1, tzinfo=UTC),
                           error=error)


@pytest.mark.parametrize(
    ("status", "jobs", "label", "level"),
    [
        ("available", [], "not verified", "none"),
        ("available", [_job("running")], "verifying", "busy"),
        ("available", [_job("succeeded", {"ok": True})], "verified", "ok"),
        ("available", [_job("succeeded", {"ok": False})], "damaged", "bad"),
        ("available", [_job("failed")], "verify failed", "bad"),
        ("available", [_job("failed", error={"code": "data_corruption"})], "damaged", "bad"),  # found damage
        ("available", [_job("failed", error={"code": "backend_error"})], "verify failed", "bad"),
        ("available", [_job("succeeded", {"ok": True}), _job("failed", jid="old")], "verified", "ok"),  # newest counts
        ("damaged", [_job("succeeded", {"ok": True})], "damaged", "bad"),  # the status wins
        ("lost", [], "lost", "bad"),
    ],
)
def test_verify_state(status: str, jobs: list, label: str, level: str) -> None:
    state = views.verify_state(status, jobs)
    assert (state.label, state.level) == (label, level)


@pytest.mark.parametrize(
    ("query", "expect", "error"),
    [
        ({}, views.VolumeFilters(), None),
        ({"status": "in-use", "label": "tier=gold", "host": "h1"},
         views.VolumeFilters("in-use", {"tier": "gold"}, "tier=gold", "h1"), None),
        ({"status": "", "label": " ", "host": ""}, views.VolumeFilters(label_text=""), None),
        ({"status": "broken"}, None, "status 'broken' is not accepted; accepted: creating, available"),
        ({"label": "tier"}, None, "not KEY=VALUE"),
        ({"label": "k=" + "v" * 2000}, None, "label filter is 2002 characters long"),
        ({"host": "h" * 256}, None, "host is 256 characters long"),
    ],
)
def test_volume_filters(query: dict, expect: views.VolumeFilters | None, error: str | None) -> None:
    if error:
        with pytest.raises(InvalidInput, match=error):
            views.volume_filters(query)
    else:
        assert views.volume_filters(query) == expect


def test_job_json_carries_no_params_or_result() -> None:
    job = SimpleNamespace(id="j", kind="backup", state="running", percent=42.5, bytes_done=42, bytes_total=100,
                          message="backup: read 42", error=None, cancel_requested=False,
                          params={"repository": "swift://secret"}, result={"x": 1})
    out = views.job_json(job)
    assert out["active"] is True and out["percent"] == 42.5 and "params" not in out and "result" not in out
    assert "secret" not in str(out)


def test_backups_grouped_by_volume_newest_first() -> None:
    a, b, c = _backup("a", "available", 0), _backup("b", "available", 5), _backup("c", "available", 1)
    c.volume_name = "other"
    assert [(name, [x.id for x in items]) for name, items in views.group_backups([a, b, c])] == [
        ("other", ["c"]), ("v", ["b", "a"]),
    ]


@pytest.mark.parametrize(
    ("percent", "state", "bar"),
    [(42.5, "running", 42.5), (None, "running", None), (None, "succeeded", 100.0), (None, "failed", None), (10.0, "failed", 10.0)],
)
def test_the_job_bar(percent: float | None, state: str, bar: float | None) -> None:
    assert views.bar_value(percent, state) == bar


@pytest.mark.parametrize(
    ("result", "text"),
    [
        (None, ""),
        ({"ok": True, "damaged_backups": []}, ""),
        ({"ok": False, "damaged_backups": ["b1"], "lost_backups": []}, "found damage (1 backup)"),
        ({"ok": False, "damaged_backups": ["b1"], "lost_backups": ["b2"]}, "found damage (2 backups)"),
        ({"ok": False}, "found problems"),
        ("not a dict", ""),
    ],
)
def test_a_finished_jobs_outcome(result: object, text: str) -> None:
    assert views.outcome(SimpleNamespace(result=result)) == text
