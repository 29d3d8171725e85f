"""Bad input over every route of the native API and the Cinder subset, against a real server.

Each case states the status it must get. Across the table: 0 HTTP 500s, 0 tracebacks in responses
and 0 in the server's log; unknown fields are refused (``extra="forbid"``), values are bounded
before they reach a parser or the catalog, and job parameters are refused before the job is queued
(422, never a 202). Every example of issue 15 is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.api_server import ApiServer, shared_api_server  # noqa: F401 - fixture

BIG = 2**63
HUGE_DIGITS = "9" * 5000


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    status: int
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    says: str = ""  # words the error message must contain

    def __str__(self) -> str:
        return self.name


def vol(**body: Any) -> dict[str, Any]:
    return {"name": "new-vol", "size": "1M", **body}


def policy(**body: Any) -> dict[str, Any]:
    base = {"name": "p-new", "kind": "snapshot", "schedule": "@daily", "selector": {"all": True}, "retention": {"keep_last": 3}}
    return {**base, **body}


CASES = [
    # -- volumes: sizes --------------------------------------------------------------------
    Case("size 2**63", "POST", "/volumes", 422, vol(size=BIG)),
    Case("size 2**64 as text", "POST", "/volumes", 422, vol(size=str(2**64)), says="size"),
    Case("size 5000 digits (text)", "POST", "/volumes", 422, vol(size=HUGE_DIGITS)),
    Case("size 5000 digits (JSON number)", "POST", "/volumes", 400, content=f'{{"name": "n", "size": {HUGE_DIGITS}}}'.encode(), headers={"Content-Type": "application/json"}),
    Case("size 1e400 (JSON number)", "POST", "/volumes", 422, content=b'{"name": "n", "size": 1e400}', headers={"Content-Type": "application/json"}),
    Case("size whose float is infinite", "POST", "/volumes", 422, vol(size="9" * 25 + ".5P")),
    Case("size true", "POST", "/volumes", 422, vol(size=True)),
    Case("size false", "POST", "/volumes", 422, vol(size=False)),
    Case("size fullwidth digit", "POST", "/volumes", 422, vol(size="８M")),
    Case("size arabic-indic digits", "POST", "/volumes", 422, vol(size="١٠M")),
    Case("size 20 digits with unit", "POST", "/volumes", 422, vol(size="99999999999999999999P"), says="too large"),
    Case("size above the maximum", "POST", "/volumes", 422, vol(size="9P"), says="too large"),
    Case("size float", "POST", "/volumes", 422, vol(size=1.5)),
    Case("size zero", "POST", "/volumes", 422, vol(size=0)),
    Case("size negative", "POST", "/volumes", 422, vol(size=-1)),
    Case("size NaN text", "POST", "/volumes", 422, vol(size="nan")),
    # -- volumes: strings, labels, unknown fields ------------------------------------------------------
    Case("name 10,000 chars", "POST", "/volumes", 422, vol(name="n" * 10000)),
    Case("pool 10,000 chars", "POST", "/volumes", 422, vol(pool="p" * 10000)),
    Case("10,000 labels", "POST", "/volumes", 422, vol(labels={f"k{i}": "v" for i in range(10000)})),
    Case("65 labels", "POST", "/volumes", 422, vol(labels={f"k{i}": "v" for i in range(65)})),
    Case("label key with space", "POST", "/volumes", 422, vol(labels={"bad key": "v"})),
    Case("label value 10,000 chars", "POST", "/volumes", 422, vol(labels={"k": "v" * 10000})),
    Case("label value not a string", "POST", "/volumes", 422, vol(labels={"k": 1})),
    Case("unknown field", "POST", "/volumes", 422, vol(colour="red"), says="colour"),
    Case("unknown 1 MB field", "POST", "/volumes", 422, vol(junk="x" * 1_000_000)),
    Case("copy from two sources", "POST", "/volumes", 422, vol(source_volume="v-base", source_snapshot="s-base")),
    Case("body not an object", "POST", "/volumes", 422, [1, 2]),
    Case("malformed JSON", "POST", "/volumes", 422, content=b'{"name": ', headers={"Content-Type": "application/json"}),
    Case("good volume (control)", "POST", "/volumes", 201, vol(name="control-ok")),
    Case("update: 10,000 labels", "PATCH", "/volumes/v-base", 422, {"labels": {f"k{i}": "v" for i in range(10000)}}),
    Case("update: unknown field", "PATCH", "/volumes/v-base", 422, {"size": "2M"}),
    Case("update: name 200 chars", "PATCH", "/volumes/v-base", 422, {"name": "n" * 200}),
    Case("extend 2**63", "POST", "/volumes/v-base/extend", 422, {"size": BIG}),
    Case("extend true", "POST", "/volumes/v-base/extend", 422, {"size": True}),
    Case("extend fullwidth", "POST", "/volumes/v-base/extend", 422, {"size": "８G"}),
    Case("extend unknown field", "POST", "/volumes/v-base/extend", 422, {"size": "2M", "online": True}),
    Case("clone size 2**63", "POST", "/volumes/v-base/clone", 422, {"name": "c", "size": BIG}),
    Case("clone unknown field", "POST", "/volumes/v-base/clone", 422, {"name": "c", "pool": "default"}),
    Case("revert ref 10,000 chars", "POST", "/volumes/v-base/revert", 422, {"snapshot": "s" * 10000}),
    Case("reset-status unknown status", "POST", "/volumes/v-base/reset-status", 422, {"status": "happy"}),
    Case("path ref 300 chars", "GET", "/volumes/" + "r" * 300, 422),
    Case("list: pool 10,000 chars", "GET", "/volumes?pool=" + "p" * 10000, 422),
    Case("list: 100 label filters", "GET", "/volumes?" + "&".join(f"label=k{i}=v" for i in range(100)), 422),
    Case("list: bad label filter", "GET", "/volumes?label=novalue", 422),
    Case("delete: unknown wipe", "DELETE", "/volumes/v-base?wipe=random", 422),
    # -- snapshots ----------------------------------------------------------------------------------
    Case("snapshot unknown field", "POST", "/snapshots", 422, {"volume": "v-base", "force": True}),
    Case("snapshot name 10,000", "POST", "/snapshots", 422, {"volume": "v-base", "name": "s" * 10000}),
    Case("snapshot 10,000 labels", "POST", "/snapshots", 422, {"volume": "v-base", "labels": {f"k{i}": "v" for i in range(10000)}}),
    Case("snapshot update unknown", "PATCH", "/snapshots/s-base", 422, {"volume": "x"}),
    # -- backups: refused before the job is queued ------------------------------------------------
    Case("backup bandwidth 'fast'", "POST", "/backups", 422, {"volume": "v-base", "bandwidth_limit": "fast"}, says="bandwidth_limit"),
    Case("backup bandwidth 2**63", "POST", "/backups", 422, {"volume": "v-base", "bandwidth_limit": BIG}),
    Case("backup bandwidth true", "POST", "/backups", 422, {"volume": "v-base", "bandwidth_limit": True}),
    Case("backup bandwidth fullwidth", "POST", "/backups", 422, {"volume": "v-base", "bandwidth_limit": "５M"}),
    Case("backup s3:// without an s3 store", "POST", "/backups", 422, {"volume": "v-base", "repository": "s3://bucket/x"}, says="s3"),
    Case("backup unknown swift store", "POST", "/backups", 422, {"volume": "v-base", "repository": "swift://nostore@c"}, says="nostore"),
    Case("backup unknown scheme", "POST", "/backups", 422, {"volume": "v-base", "repository": "ftp://x/y"}),
    Case("backup repository 10,000", "POST", "/backups", 422, {"volume": "v-base", "repository": "swift://" + "c" * 10000}),
    Case("backup both sources", "POST", "/backups", 422, {"volume": "v-base", "snapshot": "s-base"}, says="exactly one"),
    Case("backup no source", "POST", "/backups", 422, {}),
    Case("backup volume null", "POST", "/backups", 422, {"volume": None, "snapshot": "s-base"}),
    Case("backup unknown field", "POST", "/backups", 422, {"volume": "v-base", "incremental": True}),
    Case("backup 10,000 labels", "POST", "/backups", 422, {"volume": "v-base", "labels": {f"k{i}": "v" for i in range(10000)}}),
    Case("backup name bad", "POST", "/backups", 422, {"volume": "v-base", "name": "a/b"}),
    Case("restore both targets", "POST", "/backups/00000000-0000-0000-0000-000000000000/restore", 422, {"to_volume": "a", "new_volume_name": "b"}),
    Case("restore unknown field", "POST", "/backups/00000000-0000-0000-0000-000000000000/restore", 422, {"to_volume": "a", "to_path": "/etc"}),
    Case("restore unknown backup", "POST", "/backups/00000000-0000-0000-0000-000000000000/restore", 404, {"to_volume": "a"}),
    Case("backup description 256", "POST", "/backups", 422, {"volume": "v-base", "description": "d" * 256}, says="description"),
    Case("serve port 80", "POST", "/backups/00000000-0000-0000-0000-000000000000/serve", 422, {"port": 80}, says="port"),
    Case("serve port string", "POST", "/backups/00000000-0000-0000-0000-000000000000/serve", 422, {"port": "10809"}, says="port"),
    Case("serve socket path", "POST", "/backups/00000000-0000-0000-0000-000000000000/serve", 422, {"socket": "/etc/passwd"}, says="socket"),
    Case("serve ttl 0", "POST", "/backups/00000000-0000-0000-0000-000000000000/serve", 422, {"ttl_seconds": 0}, says="ttl_seconds"),
    Case("serve ttl 2**63", "POST", "/backups/00000000-0000-0000-0000-000000000000/serve", 422, {"ttl_seconds": BIG}),
    Case("serve cache 10,000 chars", "POST", "/backups/00000000-0000-0000-0000-000000000000/serve", 422, {"cache_size": "1" * 10000}),
    Case("serve unknown field", "POST", "/backups/00000000-0000-0000-0000-000000000000/serve", 422, {"tls_psk": "/root/k"}),
    Case("serve unknown backup", "POST", "/backups/00000000-0000-0000-0000-000000000000/serve", 404, {}),
    Case("verify sample 0", "POST", "/backups/00000000-0000-0000-0000-000000000000/verify", 422, {"sample_percent": 0}),
    Case("verify sample NaN", "POST", "/backups/00000000-0000-0000-0000-000000000000/verify", 422, content=b'{"sample_percent": NaN}', headers={"Content-Type": "application/json"}),
    Case("verify sample 1e400", "POST", "/backups/00000000-0000-0000-0000-000000000000/verify", 422, content=b'{"sample_percent": 1e400}', headers={"Content-Type": "application/json"}),
    Case("verify unknown field", "POST", "/backups/00000000-0000-0000-0000-000000000000/verify", 422, {"quick": True}),
    Case("gc s3:// without a store", "POST", "/backups/gc", 422, {"repository": "s3://b"}),
    Case("gc unknown field", "POST", "/backups/gc", 422, {"grace": 0}),
    Case("backup list volume 10,000", "GET", "/backups?volume=" + "v" * 10000, 422),
    # -- policies ------------------------------------------------------------------------------------
    Case("timezone 10,000 chars", "POST", "/policies", 422, policy(timezone="Z" * 10000)),
    Case("timezone unknown", "POST", "/policies", 422, policy(timezone="Mars/Olympus")),
    Case("interval 99999999999999999999h", "POST", "/policies", 422, policy(schedule="every 99999999999999999999h")),
    Case("schedule 10,000 chars", "POST", "/policies", 422, policy(schedule="* " * 5000)),
    Case("keep_within 99999999999999d", "POST", "/policies", 422, policy(retention={"keep_within": "99999999999999d"})),
    Case("keep_within 2m (restic habit)", "POST", "/policies", 422, policy(retention={"keep_within": "2m"}), says="2mo"),
    Case("keep_within fullwidth", "POST", "/policies", 422, policy(retention={"keep_within": "２d"})),
    Case("keep_last 2**63", "POST", "/policies", 422, policy(retention={"keep_last": BIG})),
    Case("keep_last true", "POST", "/policies", 422, policy(retention={"keep_last": True})),
    Case("keep_last 5000 digits", "POST", "/policies", 400, content=('{"name":"p","kind":"snapshot","schedule":"@daily","selector":{"all":true},"retention":{"keep_last":' + HUGE_DIGITS + "}}").encode(), headers={"Content-Type": "application/json"}),
    Case("policy unknown field", "POST", "/policies", 422, policy(owner="me")),
    Case("retention unknown field", "POST", "/policies", 422, policy(retention={"keep_last": 1, "keep_forever": True})),
    Case("selector 10,000 labels", "POST", "/policies", 422, policy(selector={"labels": {f"k{i}": "v" for i in range(10000)}})),
    Case("selector 1,000 volumes", "POST", "/policies", 422, policy(selector={"volumes": [f"v{i}" for i in range(1000)]})),
    Case("backup options s3:// without a store", "POST", "/policies", 422, policy(kind="backup", backup={"repository": "s3://b/x"})),
    Case("backup options unknown store", "POST", "/policies", 422, policy(kind="backup", backup={"repository": "swift://nostore@c"})),
    Case("backup options bad bandwidth", "POST", "/policies", 422, policy(kind="backup", backup={"bandwidth_limit": "fast"})),
    Case("backup options bandwidth 2**63", "POST", "/policies", 422, policy(kind="backup", backup={"bandwidth_limit": BIG})),
    Case("backup options concurrency true", "POST", "/policies", 422, policy(kind="backup", backup={"max_concurrent": True})),
    Case("backup options sample inf", "POST", "/policies", 422, content=b'{"name":"p","kind":"backup","schedule":"@daily","selector":{"all":true},"retention":{"keep_last":1},"backup":{"verify_sample_percent":Infinity}}', headers={"Content-Type": "application/json"}),
    Case("update: keep_within 2m", "PATCH", "/policies/p-base", 422, {"retention": {"keep_within": "2m"}}, says="2min"),
    Case("update: backup unknown key", "PATCH", "/policies/p-base", 422, {"backup": {"bogus": 1}}),
    Case("update: timezone 10,000", "PATCH", "/policies/p-base", 422, {"timezone": "Z" * 10000}),
    Case("update: unknown field", "PATCH", "/policies/p-base", 422, {"kind": "backup"}),
    Case("run: unknown field", "POST", "/policies/p-base/run", 422, {"now": True}),
    Case("history limit 2**63", "GET", "/policies/p-base/history?limit=9223372036854775808", 422),
    # -- tokens, jobs, exports --------------------------------------------------------------------------
    Case("token expiry 10**11 days", "POST", "/tokens", 422, {"role": "reader", "expires_in_seconds": 100000000000 * 86400}),
    Case("token expiry true", "POST", "/tokens", 422, {"role": "reader", "expires_in_seconds": True}),
    Case("token unknown field", "POST", "/tokens", 422, {"role": "reader", "scope": "all"}),
    Case("token role unknown", "POST", "/tokens", 422, {"role": "root"}),
    Case("jobs limit 0", "GET", "/jobs?limit=0", 422),
    Case("jobs limit 5000 digits", "GET", "/jobs?limit=" + HUGE_DIGITS, 422),
    Case("job id 300 chars", "GET", "/jobs/" + "j" * 300, 422),
    Case("export unknown field", "POST", "/volumes/v-base/export", 422, {"acl": []}),
    Case("export 1,000 initiators", "POST", "/volumes/v-base/export", 422, {"initiators": [f"iqn.2024-01.x:{i}" for i in range(1000)]}),
    Case("export secret 10,000", "POST", "/volumes/v-base/export", 422, {"chap_secret": "s" * 10000}),
    # -- object stores ----------------------------------------------------------------------------------
    Case("object metadata header 10,000 chars", "PUT", "/object-stores/local/containers/bad-input/objects/o1", 422,
         content=b"data", headers={"X-Object-Meta-Big": "m" * 10000}, says="X-Object-Meta"),
    Case("100 object metadata headers", "PUT", "/object-stores/local/containers/bad-input/objects/o2", 422,
         content=b"data", headers={f"X-Object-Meta-K{i}": "v" for i in range(100)}),
    Case("content type 10,000 chars", "PUT", "/object-stores/local/containers/bad-input/objects/o3", 422,
         content=b"data", headers={"Content-Type": "a/" + "b" * 10000}),
    Case("container metadata 10,000 items", "PUT", "/object-stores/local/containers/bad-input", 422,
         {"metadata": {f"k{i}": "v" for i in range(10000)}}),
    Case("container unknown field", "PUT", "/object-stores/local/containers/bad-input", 422, {"acl": "public"}),
    Case("objects limit 10**30", "GET", "/object-stores/local/containers/bad-input/objects?limit=" + "1" + "0" * 30, 422),
    Case("container name 300 chars", "GET", "/object-stores/local/containers/" + "c" * 300, 422),
    Case("containers prefix 10,000", "GET", "/object-stores/local/containers?prefix=" + "p" * 10000, 422),
    Case("object name 2,000 chars", "GET", "/object-stores/local/containers/bad-input/objects/" + "o" * 2000, 422),
    Case("connection-info show_secret not a bool", "GET", "/volumes/v-base/connection-info?show_secret=maybe", 422),
    Case("reconcile remove_strays not a bool", "POST", "/exports/reconcile?remove_strays=maybe", 422),
    # -- the Cinder subset (Cinder answers 400 for bad input) ------------------------------------------------
    Case("cinder size true", "POST", "/v3/p/volumes", 400, {"volume": {"size": True}}),
    # -- apply: the stack file (YAML or JSON body; docs/apply.md) --------------------------------
    Case("apply: size 2**63", "POST", "/apply?dry_run=true", 422, {"volumes": [vol(size=BIG)]}, says="volumes[0].size"),
    Case("apply: size 5000 digits (YAML)", "POST", "/apply?dry_run=true", 422, content=f"volumes:\n- name: a\n  size: {HUGE_DIGITS}\n".encode(), headers={"Content-Type": "application/yaml"}),
    Case("apply: unknown key, line named", "POST", "/apply?dry_run=true", 422, content=b"volumes:\n- name: a\n  size: 1M\n  colour: red\n", headers={"Content-Type": "application/yaml"}, says="request body:4: volumes[0].colour"),
    Case("apply: 10,000 labels", "POST", "/apply?dry_run=true", 422, {"volumes": [vol(labels={f"k{i}": "v" for i in range(10000)})]}),
    Case("apply: 501 volumes", "POST", "/apply?dry_run=true", 422, {"volumes": [vol(name=f"v{i}") for i in range(501)]}, says="at most 500"),
    Case("apply: stack over 256 KiB", "POST", "/apply?dry_run=true", 413, content=b"#" * (257 * 1024), headers={"Content-Type": "application/yaml"}),
    Case("apply: YAML alias bomb", "POST", "/apply?dry_run=true", 422, content=b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", headers={"Content-Type": "application/yaml"}, says="aliases"),
    Case("apply: nesting 1000 deep", "POST", "/apply?dry_run=true", 422, content=b"a: " + b"[" * 1000 + b"]" * 1000, headers={"Content-Type": "application/yaml"}, says="nesting"),
    Case("apply: python tag", "POST", "/apply?dry_run=true", 422, content=b"a: !!python/object/apply:os.system [id]\n", headers={"Content-Type": "application/yaml"}),
    Case("apply: not a mapping", "POST", "/apply?dry_run=true", 422, [1, 2]),
    Case("apply: not UTF-8", "POST", "/apply?dry_run=true", 422, content=b"\xff\xfe", headers={"Content-Type": "application/yaml"}),
    Case("apply: prune without yes", "POST", "/apply?prune=true", 422, {"version": 1}, says="--yes"),
    Case("cinder size fullwidth", "POST", "/v3/p/volumes", 400, {"volume": {"size": "８"}}),
    Case("cinder size 2**63", "POST", "/v3/p/volumes", 400, {"volume": {"size": BIG}}),
    Case("cinder size 5000 digits", "POST", "/v3/p/volumes", 400, {"volume": {"size": HUGE_DIGITS}}),
    Case("cinder size float", "POST", "/v3/p/volumes", 400, {"volume": {"size": 1.5}}),
    Case("cinder unknown key", "POST", "/v3/p/volumes", 400, {"volume": {"size": 1, "colour": "red"}}, says="colour"),
    Case("cinder unknown top-level key", "POST", "/v3/p/volumes", 400, {"volume": {"size": 1}, "extra": {}}),
    Case("cinder description 10,000", "POST", "/v3/p/volumes", 400, {"volume": {"size": 1, "description": "d" * 10000}}),
    Case("cinder name 10,000", "POST", "/v3/p/volumes", 400, {"volume": {"size": 1, "name": "n" * 10000}}),
    Case("cinder 10,000 metadata", "POST", "/v3/p/volumes", 400, {"volume": {"size": 1, "metadata": {f"k{i}": "v" for i in range(10000)}}}),
    Case("cinder metadata not strings", "POST", "/v3/p/volumes", 400, {"volume": {"size": 1, "metadata": {"k": {"x": 1}}}}),
    Case("cinder update unknown key", "PUT", "/v3/p/volumes/v-base", 400, {"volume": {"size": 2}}),
    Case("cinder extend 2**63", "POST", "/v3/p/volumes/v-base/action", 400, {"os-extend": {"new_size": BIG}}),
    Case("cinder extend unknown arg", "POST", "/v3/p/volumes/v-base/action", 400, {"os-extend": {"new_size": 2, "force": True}}),
    Case("cinder two actions", "POST", "/v3/p/volumes/v-base/action", 400, {"os-extend": {"new_size": 2}, "os-force_delete": {}}),
    Case("cinder snapshot unknown key", "POST", "/v3/p/snapshots", 400, {"snapshot": {"volume_id": "v-base", "colour": "x"}}),
    Case("cinder backup unknown key", "POST", "/v3/p/backups", 400, {"backup": {"volume_id": "v-base", "colour": "x"}}),
    Case("cinder backup s3:// container", "POST", "/v3/p/backups", 400, {"backup": {"volume_id": "v-base", "container": "s3://b"}}),
    Case("cinder volume id 300 chars", "GET", "/v3/p/volumes/" + "i" * 300, 400),
    Case("cinder snapshot id 300 chars", "DELETE", "/v3/p/snapshots/" + "i" * 300, 400),
    Case("cinder backup id 300 chars", "GET", "/v3/p/backups/" + "i" * 300, 400),
    # -- hosts ----------------------------------------------------------------------------------
    Case("host disable: reason 10,000 chars", "POST", "/hosts/bad-input/disable", 422, {"reason": "r" * 10000}),
    Case("host disable: reason with a newline", "POST", "/hosts/bad-input/disable", 422, {"reason": "a\nb"}, says="printable"),
    Case("host disable: unknown field", "POST", "/hosts/bad-input/disable", 422, {"why": "x"}, says="why"),
    Case("host disable: unknown host", "POST", "/hosts/bad-input/disable", 404, {"reason": "x"}, says="not registered"),
    Case("host name 300 chars", "POST", "/hosts/" + "h" * 300 + "/enable", 422),
    Case("host name with a space", "GET", "/hosts/a%20b", 422, says="host name"),
    Case("cinder list volume_id 10,000", "GET", "/v3/p/snapshots?volume_id=" + "v" * 10000, 400),
    Case("cinder restore unknown key", "POST", "/v3/p/backups/00000000-0000-0000-0000-000000000000/restore", 400, {"restore": {"volume_id": "x", "force": True}}),
]


@pytest.fixture(scope="module")
def server(shared_api_server: ApiServer) -> ApiServer:
    with shared_api_server.client("admin") as c:
        assert c.post("/volumes", json={"name": "v-base", "size": "1M"}).status_code == 201
        assert c.post("/snapshots", json={"volume": "v-base", "name": "s-base"}).status_code == 201
        assert c.post("/policies", json=policy(name="p-base")).status_code == 201
    return shared_api_server


def test_the_table_covers_every_route(server: ApiServer) -> None:
    """Every path of the published OpenAPI that takes a body or a query has a bad-input case."""
    import re

    spec = server.client("admin").get("/openapi.json").json()
    fixtures = r"/(v-base|s-base|p-base|local|bad-input|o\d|00000000-[0-9-]+|([a-z])\2{199,})(?=/|$)"
    templated = {re.sub(fixtures, "/{}", re.sub(r"\?.*", "", c.path)) for c in CASES}
    missing = []
    for path, ops in spec["paths"].items():
        takes_input = any("requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", [])) for op in ops.values())
        if takes_input and re.sub(r"\{[^}]+\}", "{}", path) not in templated:
            missing.append(path)
    assert not missing, f"routes without a bad-input case: {missing}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input(server: ApiServer, case: Case) -> None:
    with server.client("admin") as c:
        kwargs: dict[str, Any] = {"headers": case.headers}
        if case.content is not None:
            kwargs["content"] = case.content
        elif case.json is not None:
            kwargs["json"] = case.json
        r = c.request(case.method, case.path, **kwargs)
    assert r.status_code == case.status, f"{case.name}: {r.status_code} {r.text[:500]}"
    assert "Traceback" not in r.text and r.status_code < 500
    if case.status >= 400:
        body = r.json()
        message = body["error"]["message"] if "error" in body else next(iter(body.values()))["message"]
        assert case.says in message, message
        assert len(r.content) < 20_000, "an error must not echo a huge input back"


def test_no_job_was_queued_and_the_log_is_clean(server: ApiServer) -> None:
    """Runs after the table: no refused backup/gc became a job, and the server logged no traceback."""
    with server.client("admin") as c:
        jobs = c.get("/jobs").json()
        volumes = {v["name"] for v in c.get("/volumes").json()}
    assert [j for j in jobs if j["kind"] in ("backup", "gc", "restore", "verify")] == []
    assert "new-vol" not in volumes and "n" not in volumes and "control-ok" in volumes
    assert server.log is not None
    log = server.log.read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
