"""storage.logs: the pure decisions (request ids, redaction, format and level, the ECS document,
ids of an operation's result), table-tested; and the contextvar scopes."""

from __future__ import annotations

import json
import logging
import threading
from types import SimpleNamespace

import pytest

from api.request_id import access_fields, access_level, request_id_of
from storage.errors import InvalidInput, NotFound
from storage.logs import context, ecs, ops, redact, setup


@pytest.mark.parametrize(("value", "ok"), [
    ("abc-123", True), ("req-6f1c2a9e-3b1d-4c55-9d63-0123456789ab", True), ("a", True), ("x" * 128, True),
    ("A.b_c:d-9", True), ("x" * 129, False), ("", False), ("-starts-with-dash", False), ("has space", False),
    ("semi;colon", False), ("new\nline", False), ("é", False), ("a/b", False), ("<script>", False), (None, False),
])  # fmt: skip
def test_valid_request_id(value: str | None, ok: bool) -> None:
    assert context.valid_request_id(value) == (value if ok else None)


@pytest.mark.parametrize(("headers", "taken"), [
    ([(b"x-request-id", b"client-1")], "client-1"),
    ([(b"X-Request-ID", b"client-2")], "client-2"),
    ([(b"x-request-id", b"bad id")], None),
    ([(b"x-request-id", b"\xff\xfe")], None),
    ([(b"x-request-id", b"y" * 500)], None),
    ([], None),
    ([(b"authorization", b"Bearer x")], None),
    ([(b"x-openstack-request-id", b"req-os-1")], "req-os-1"),
    ([(b"x-openstack-request-id", b"req-os-1"), (b"x-request-id", b"mine")], "mine"),
])  # fmt: skip
def test_request_id_of(headers: list[tuple[bytes, bytes]], taken: str | None) -> None:
    rid, was_taken = request_id_of(headers)
    if taken:
        assert (rid, was_taken) == (taken, True)
    else:
        assert was_taken is False and rid.startswith("req-") and context.valid_request_id(rid) == rid


@pytest.mark.parametrize(("path", "status", "level"), [
    ("/healthcheck", 200, logging.DEBUG), ("/healthz", 200, logging.DEBUG), ("/healthcheck", 503, logging.INFO),
    ("/volumes", 200, logging.INFO), ("/healthcheck/x", 200, logging.INFO),
])  # fmt: skip
def test_access_level(path: str, status: int, level: int) -> None:
    assert access_level(path, status) == level


def test_access_fields() -> None:
    principal = SimpleNamespace(token_id="tok-1", name="ops", role="operator")
    scope = {"method": "POST", "path": "/volumes/" + "v" * 2000, "client": ("127.0.0.1", 5555), "state": {"principal": principal}}
    fields = access_fields(scope, 409, 1234)
    assert fields["http.response.status_code"] == 409 and fields["event.outcome"] == "failure"
    assert len(fields["url.path"]) == 1024 and fields["user.id"] == "tok-1" and fields["user.roles"] == ["operator"]
    anonymous = access_fields({"method": "GET", "path": "/healthz"}, 200, 1)
    assert anonymous["event.outcome"] == "success" and anonymous["user.id"] is None and anonymous["client.ip"] is None
    assert set(fields) <= set(ecs.FIELDS)


SECRET = "S3cr3t-Value-9f8e7d"


@pytest.mark.parametrize(("text", "known", "expected"), [
    (f"login with {SECRET} failed", (SECRET,), "login with *** failed"),
    (f"{SECRET}{SECRET}", (SECRET,), "******"),
    ("postgresql://storage:pw%40x@db:5432/storage", (), "postgresql://storage:***@db:5432/storage"),
    ("password=hunter22 user=bob", (), "password=*** user=bob"),
    ('{"secret_key": "abcdEFGH1234"}', (), '{"secret_key": "***"}'),
    ("Authorization: Bearer abc.def-ghi", (), "Authorization: Bearer ***"),
    ("X-Auth-Token: AUTH_tk0123456789", (), "X-Auth-Token: ***"),
    ("chap_password: 'qwertyuiop12'", (), "chap_password: '***'"),
    ("token=abc&x=1", (), "token=***&x=1"),
    ("volume db1 extended to 20G", (SECRET,), "volume db1 extended to 20G"),
    ("passphrase = correct horse", (), "passphrase = *** horse"),
    ("bypass: fine", (), "bypass: fine"),
])  # fmt: skip
def test_scrub(text: str, known: tuple[str, ...], expected: str) -> None:
    assert redact.scrub(text, known) == expected


def test_remember_is_bounded_and_ignores_short_values() -> None:
    redact.remember("short")  # under MIN_KNOWN: would mask ordinary words
    assert "short" not in redact.known()
    redact.remember(SECRET)
    redact.remember(SECRET.encode())  # bytes: their hex form too
    assert SECRET in redact.known() and SECRET.encode().hex() in redact.known()
    assert redact.mask(f"x {SECRET} y") == "x *** y"
    for i in range(redact.MAX_KNOWN + 10):
        redact.remember(f"filler-secret-{i:06d}")
    assert len(redact.known()) == redact.MAX_KNOWN and SECRET not in redact.known()


def test_remember_settings_finds_store_and_catalog_secrets() -> None:
    settings = SimpleNamespace(
        catalog_url="postgresql://u:Catalog-Pw-77@127.0.0.1/db",
        object_stores={"s3": SimpleNamespace(options=lambda: {"access_key": "AKIA0000", "secret_key": "S3-Secret-Key-1", "endpoint": "http://x"})},
        pools={}, backup=SimpleNamespace(model_extra={"nested": {"password": "Nested-Pw-123"}}),
    )  # fmt: skip
    redact.remember_settings(settings)
    assert {"Catalog-Pw-77", "S3-Secret-Key-1", "Nested-Pw-123"} <= set(redact.known())
    assert "http://x" not in redact.known()


@pytest.mark.parametrize(("option", "env", "config", "tty", "expected"), [
    (None, None, None, False, "json"), (None, None, None, True, "text"), ("text", None, None, False, "text"),
    (None, "TEXT", "json", False, "text"), (None, None, "text", False, "text"), ("json", "text", "text", True, "json"),
])  # fmt: skip
def test_choose_format(option: str | None, env: str | None, config: str | None, tty: bool, expected: str) -> None:
    assert setup.choose_format(option, env, config, tty) == expected


@pytest.mark.parametrize(("option", "config", "fmt", "daemon", "expected"), [
    (None, None, "json", False, "info"), (None, None, "text", False, "warning"), (None, None, "text", True, "info"),
    ("debug", "error", "text", False, "debug"), (None, "error", "json", True, "error"),
])  # fmt: skip
def test_choose_level(option: str | None, config: str | None, fmt: str, daemon: bool, expected: str) -> None:
    assert setup.choose_level(option, None, config, fmt, daemon) == expected


def test_bad_format_and_level_are_typed_errors() -> None:
    with pytest.raises(InvalidInput, match="--log-format 'xml' is not accepted; accepted: json, text"):
        setup.choose_format("xml", None, None, False)
    with pytest.raises(InvalidInput, match=r"\[logging\] level 'loud' is not accepted; accepted: debug, info"):
        setup.choose_level(None, None, "loud", "json", False)


def test_document_fields_and_masking() -> None:
    redact.remember(SECRET)
    doc = ecs.document(
        created=0.5, level="WARNING", message=f"bad {SECRET}", logger="storage.ops", service="storagectl", host="h1",
        pid=7, thread="MainThread", scope={"trace.id": "t-1", "storage.volume.id": "v-1", "not.ecs": "dropped"},
        extra={"event.outcome": "failure", "event.duration": "12", "made.up": 1, "message": "no override",
               "user.name": SECRET, "url.path": f"/x/password:{SECRET[:3]}", "storage.volume.name": "db1"},
        error=NotFound(f"volume {SECRET}"),
    )  # fmt: skip
    assert doc["@timestamp"] == "1970-01-01T00:00:00.500Z" and doc["log.level"] == "warning"
    assert doc["message"] == "bad ***" and doc["error.message"] == "volume ***" and doc["error.type"] == "NotFound"
    assert doc["trace.id"] == doc["http.request.id"] == "t-1" and doc["event.duration"] == 12
    assert set(doc) <= set(ecs.FIELDS) and "not.ecs" not in doc and "made.up" not in doc
    assert doc["user.name"] == "***" and doc["url.path"] == "/x/password:***" and doc["storage.volume.name"] == "db1"


def test_formatters_write_one_line() -> None:
    record = logging.LogRecord("storage.ops", logging.ERROR, __file__, 1, "op failed: %s", ("x\ny",), None)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    line = ecs.EcsFormatter("storagectl", "h1").format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["message"] == "op failed: x\ny" and doc["error.type"] == "RuntimeError" and "boom" in doc["error.stack_trace"]
    text = ecs.TextFormatter("storagectl", "h1").format(record)
    assert text.split("\n")[0].endswith("ERROR storage.ops: op failed: x") or "ERROR storage.ops: op failed" in text


@pytest.mark.parametrize(("result", "expected"), [
    (None, {}), ("v1", {}), ((1, 2), {}),
    (type("Volume", (), {"id": "v-1"})(), {"volume_id": "v-1"}),
    (type("Snapshot", (), {"id": "s-1", "volume_id": "v-1"})(), {"snapshot_id": "s-1", "volume_id": "v-1"}),
    (type("Backup", (), {"id": "b-1", "volume_id": "v-1"})(), {"backup_id": "b-1", "volume_id": "v-1"}),
    (type("JobInfo", (), {"id": "j-1"})(), {"job_id": "j-1"}),
    (type("Placed", (), {"volume": type("Volume", (), {"id": "v-2"})()})(), {"volume_id": "v-2"}),
    (type("Other", (), {"id": "o-1"})(), {}),
])  # fmt: skip
def test_ids_of(result: object, expected: dict[str, str]) -> None:
    assert ops.ids_of(result) == expected


@pytest.mark.parametrize(("args", "kwargs", "expected"), [
    ((None, "db1", "20G"), {}, "db1"), ((None, SimpleNamespace(name="nightly"), "manual"), {}, "nightly"),
    ((None,), {"volume_ref": "v"}, "v"), ((None, 3, None), {}, None), ((None, "x" * 300), {}, "x" * 120),
])  # fmt: skip
def test_target_of(args: tuple[object, ...], kwargs: dict[str, object], expected: str | None) -> None:
    assert ops.target_of(args, kwargs) == expected


def test_scopes_nest_and_annotate_only_the_innermost() -> None:
    assert context.current() == {}
    context.annotate(volume_id="ignored")  # outside any scope: nothing to add to
    assert context.current() == {}
    with context.bind(trace_id="t-1", action="outer"):
        with context.bind(action="inner"):
            context.annotate(volume_id="v-1")
            assert context.current() == {"trace.id": "t-1", "event.action": "inner", "storage.volume.id": "v-1"}
        assert context.current() == {"trace.id": "t-1", "event.action": "outer"}
        assert context.carry() == {"trace.id": "t-1"}
        seen: list[dict[str, str]] = []
        thread = threading.Thread(target=lambda: seen.append(context.current()))
        thread.start()
        thread.join()
        assert seen == [{}]  # a new thread starts empty: jobs restore() what they carry
    with context.restore({"trace.id": "bad id!", "other": "x"}, job_id="j-1"):
        assert context.current() == {"storage.job.id": "j-1"}
    with pytest.raises(TypeError, match="unknown log context key"):
        with context.bind(password="x"):
            pass


def test_operation_logs_outcome_duration_and_ids(caplog: pytest.LogCaptureFixture) -> None:
    class Volume:
        id = "v-9"

    @ops.operation("volume.extend")
    def extend(self: object, ref: str) -> Volume:
        context.annotate(volume_id="v-9")
        logging.getLogger("storage.test").info("inside")
        return Volume()

    @ops.operation("volume.delete")
    def delete(self: object, ref: str) -> None:
        raise NotFound(f"volume {ref!r} not found")

    caplog.set_level(logging.INFO)
    with context.bind(trace_id="t-7"):
        extend(None, "db1")
        with pytest.raises(NotFound):
            delete(None, "nope")
    docs = [ecs.document(created=r.created, level=r.levelname, message=r.getMessage(), logger=r.name, service="s", host="h",
                         pid=1, thread="t", scope=r.ecs_scope, extra=getattr(r, "ecs", {})) for r in caplog.records]  # fmt: skip
    inside, ok, failed = docs
    assert inside["event.action"] == "volume.extend" and inside["trace.id"] == "t-7" and inside["storage.volume.id"] == "v-9"
    assert ok["message"] == "volume.extend db1 succeeded" and ok["event.outcome"] == "success" and ok["event.duration"] > 0
    assert failed["log.level"] == "warning" and failed["event.outcome"] == "failure" and failed["error.type"] == "NotFound"


@pytest.fixture(autouse=True)
def _scope_on_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """caplog keeps records: stamp each with the scope it was logged in (the formatter reads it live)."""
    factory = logging.getLogRecordFactory()

    def stamped(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.ecs_scope = context.current()
        return record

    monkeypatch.setattr(logging, "_logRecordFactory", stamped)
