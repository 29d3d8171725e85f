"""Pure views: Cinder's get_pools entry of a scheduler candidate (api/cinder/pools.py) and the
redaction of secrets in job params as readers see them (storage/jobs/pure.py)."""

from __future__ import annotations

import pytest

from api.cinder.pools import pool_view
from storage.jobs.pure import redact_params
from storage.scheduler import Candidate
from tests.api_server import shared_api_server  # noqa: F401 - the fixture

GiB = 1 << 30


@pytest.mark.parametrize(("cand", "expected"), [
    (Candidate("s1", "default", "file", total_bytes=100 * GiB, provisioned_bytes=30 * GiB, overcommit_ratio=0.2,
               capabilities={"thin": True}),
     {"free_capacity_gb": 0.0, "total_capacity_gb": 100.0, "provisioned_capacity_gb": 30.0, "backend_state": "up",
      "thin_provisioning_support": True, "max_over_subscription_ratio": "0.2"}),
    (Candidate("s2", "p", "file", total_bytes=10 * GiB, provisioned_bytes=4 * GiB, capabilities={"thin": True}, up=False),
     {"free_capacity_gb": 6.0, "backend_state": "down", "disabled": False}),
    (Candidate("s3", "vg", "lvm", total_bytes=10 * GiB, free_bytes=GiB // 2, disabled=True, disabled_reason="swap"),
     {"free_capacity_gb": 0.5, "thick_provisioning_support": True, "disabled": True, "disabled_reason": "swap"}),
    (Candidate("s4", "p", "file", error="statvfs failed"), {"backend_state": "down", "error": "statvfs failed"}),
])  # fmt: skip
def test_pool_view(cand: Candidate, expected: dict) -> None:
    view = pool_view(cand, True, "1.0")
    assert view["name"] == f"{cand.host}@{cand.pool}#{cand.pool}"
    caps = view["capabilities"]
    assert {k: caps[k] for k in expected} == expected, caps
    assert caps["pool_name"] == cand.pool and caps["storage_protocol"] == "iSCSI"
    assert pool_view(cand, False, "1.0") == {"name": view["name"]}


@pytest.mark.parametrize(("params", "shown"), [
    ({"method": "export_target", "args": {"spec": {"key": "v1", "chap": {"username": "u", "password": "S3cret"}}}},
     {"method": "export_target", "args": {"spec": {"key": "v1", "chap": {"username": "u", "password": "***"}}}}),
    ({"secret": None, "items": [{"auth_password": "x"}, 3]}, {"secret": None, "items": [{"auth_password": "***"}, 3]}),
    ({"backup_id": "b", "name": "n"}, {"backup_id": "b", "name": "n"}),
    ({"spec": {"chap": {"username": "u", "sealed_password": {"scheme": "x25519-hkdf-aesgcm-v1", "ct": "Zm9v"}}}},
     {"spec": {"chap": {"username": "u", "sealed_password": "***"}}}),  # what a host call holds now: masked too
])  # fmt: skip
def test_redact_params(params: dict, shown: dict) -> None:
    assert redact_params(params) == shown


def test_get_pools_through_cinderclient_on_one_host(shared_api_server) -> None:  # type: ignore[no-untyped-def]
    """One host (no [cluster]): its own pool, admin only, bad query values refused with Cinder's 400."""
    import httpx

    from tests.test_cinder_client import PROJECT, make_client

    (pool,) = make_client(shared_api_server, role="admin").pools.list(detailed=True)
    caps = pool._info["capabilities"]
    assert pool.name.endswith("@default#default") and caps["backend_state"] == "up" and caps["total_capacity_gb"] > 0
    assert [p.name for p in make_client(shared_api_server, role="admin").pools.list()] == [pool.name]
    url = f"{shared_api_server.url}/v3/{PROJECT}/scheduler-stats/get_pools"
    for role, query, status in (("reader", {}, 403), ("operator", {}, 403), ("admin", {"detail": "maybe"}, 400),
                                ("admin", {"name": "x" * 600}, 400), ("admin", {"name": "nope"}, 200)):
        r = httpx.get(url, params=query, headers={"X-Auth-Token": shared_api_server.tokens[role]})
        assert r.status_code == status, (role, query, r.text)
    assert r.json() == {"pools": []}
